// The http embedding provider (DESIGN §4): an OpenAI-compatible POST /v1/embeddings
// client over libcurl.
//
//   request   {"model": "...", "input": ["text", ...]}      at most batch_size texts
//   answer    {"data": [{"embedding": [0.1, ...], "index": 0}, ...]}
//
// A call goes: word-less texts → zero vectors; cached texts → the cache; the rest in
// batches, each allowed by the circuit breaker and sent with retries (connect errors,
// timeouts, HTTP 429 and 5xx; exponential backoff). The API key is sent only in the
// Authorization header and is scrubbed from every message this file produces, even
// when a server echoes it back.
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/circuit_breaker.h"
#include "common/mutex.h"
#include "embedding/embedding_cache.h"
#include "embedding/provider_common.h"
#include "engram/embedding.h"

namespace engram {
namespace {

using nlohmann::json;
using embedding::Redact;

constexpr size_t kMaxIdleHandles = 4;
constexpr std::chrono::milliseconds kMaxBackoff{60'000};

void GlobalCurlInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// The URL as it may appear in messages: no user:password@, no query or fragment.
std::string PrintableUrl(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  std::string_view head = scheme == std::string_view::npos ? "" : url.substr(0, scheme + 3);
  size_t path = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  std::string_view tail = path == std::string_view::npos ? "" : rest.substr(path);
  tail = tail.substr(0, tail.find_first_of("?#"));
  return std::string(head) + std::string(authority) + std::string(tail);
}

// At most `max` bytes of a server's answer, printable, for an error message.
std::string Excerpt(std::string_view body, size_t max = 120) {
  std::string out;
  for (char c : body.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  if (body.size() > max) out += "...";
  return out;
}

Status ValidateOptions(const HttpEmbeddingOptions& o) {
  auto bad = [](const std::string& what) { return InvalidArgumentError("http embedding options: " + what); };
  if (o.url.empty()) return bad("url is required");
  if (!StartsWithNoCase(o.url, "http://") && !StartsWithNoCase(o.url, "https://")) {
    return bad("url must start with http:// or https://, got \"" + PrintableUrl(o.url) + "\"");
  }
  if (HasControlChar(o.url) || o.url.find(' ') != std::string::npos) {
    return bad("url holds spaces or control characters");
  }
  if (o.model.empty()) return bad("model is required");
  if (o.model.size() > 256 || HasControlChar(o.model)) return bad("model must be <= 256 printable characters");
  // Never echo the key itself, not even in this message.
  if (HasControlChar(o.api_key)) return bad("api_key holds control characters (line breaks?)");
  if (o.dimension < 1 || o.dimension > 65'536) {
    return bad("dimension must be in 1..65536, got " + std::to_string(o.dimension));
  }
  if (o.batch_size < 1 || o.batch_size > 2'048) {
    return bad("batch_size must be in 1..2048, got " + std::to_string(o.batch_size));
  }
  if (o.timeout.count() < 1) return bad("timeout must be >= 1 ms, got " + std::to_string(o.timeout.count()));
  if (o.max_retries < 0 || o.max_retries > 10) {
    return bad("max_retries must be in 0..10, got " + std::to_string(o.max_retries));
  }
  if (o.backoff.count() < 0 || o.backoff > kMaxBackoff) {
    return bad("backoff must be in 0..60000 ms, got " + std::to_string(o.backoff.count()));
  }
  ENGRAM_RETURN_IF_ERROR(ValidateCircuitBreakerOptions(
      CircuitBreakerOptions{o.breaker_failure_threshold, o.breaker_open_for}, "http embedding options: breaker_"));
  return OkStatus();
}

// How one attempt ended.
struct Attempt {
  Status status;           // OK: `vectors` holds the answer
  bool retryable = false;  // for a non-OK status
  bool server_answered = false;  // the server is up (its answer was an input error)
  std::vector<std::vector<float>> vectors;
};

struct ResponseBuffer {
  std::string body;
  size_t limit = 0;
  bool overflow = false;
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* buffer = static_cast<ResponseBuffer*>(user);
  size_t n = size * count;
  if (buffer->body.size() + n > buffer->limit) {
    buffer->overflow = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  buffer->body.append(data, n);
  return n;
}

bool IsRetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// Thread-safe.
class HttpProvider final : public EmbeddingProvider {
 public:
  HttpProvider(const HttpEmbeddingOptions& options, Clock& clock)
      : options_(options),
        printable_url_(PrintableUrl(options.url)),
        response_limit_(std::max<size_t>(16u << 20, static_cast<size_t>(options.batch_size) *
                                                         static_cast<size_t>(options.dimension) * 32 + (1u << 20))),
        breaker_(CircuitBreakerOptions{options.breaker_failure_threshold, options.breaker_open_for}, clock),
        cache_("http", options.model, options.cache_entries) {
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
    if (!options.api_key.empty()) {
      headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + options.api_key).c_str());
    }
  }

  ~HttpProvider() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
    curl_slist_free_all(headers_);
  }

  // EmbeddingProvider
  EmbeddingSpace Space() const override { return EmbeddingSpace{"http", options_.model, options_.dimension}; }

  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose) override {
    const size_t dim = static_cast<size_t>(options_.dimension);
    std::vector<std::vector<float>> out(texts.size());

    // Texts to send, each once: a text repeated in one call is sent (or looked up) once
    // and copied.
    std::vector<size_t> to_send;                           // indexes into texts
    std::unordered_map<std::string_view, size_t> source;   // text → the index that gets its vector
    std::vector<std::pair<size_t, size_t>> copies;         // (index, source index)
    for (size_t i = 0; i < texts.size(); ++i) {
      if (!embedding::HasSearchWords(texts[i])) {
        out[i].assign(dim, 0.0f);
        continue;
      }
      auto [it, inserted] = source.emplace(texts[i], i);
      if (!inserted) {
        copies.emplace_back(i, it->second);
      } else if (std::optional<std::vector<float>> hit = cache_.Get(texts[i])) {
        out[i] = *std::move(hit);
      } else {
        to_send.push_back(i);
      }
    }

    const size_t batch = static_cast<size_t>(options_.batch_size);
    for (size_t begin = 0; begin < to_send.size(); begin += batch) {
      const size_t end = std::min(to_send.size(), begin + batch);
      if (Status allowed = breaker_.Allow(); !allowed.ok()) {
        return Fail(UnavailableError("embedding provider unavailable: " + std::string(allowed.message())));
      }
      std::vector<std::string_view> inputs;
      inputs.reserve(end - begin);
      for (size_t k = begin; k < end; ++k) inputs.push_back(texts[to_send[k]]);

      Attempt result = SendWithRetries(inputs);
      if (!result.status.ok()) {
        // An input the server rejected proves the server works; anything else counts
        // towards opening the breaker.
        if (result.server_answered) {
          breaker_.RecordSuccess();
        } else {
          breaker_.RecordFailure();
        }
        return Fail(result.status);
      }
      breaker_.RecordSuccess();
      for (size_t k = begin; k < end; ++k) {
        std::vector<float>& v = result.vectors[k - begin];
        cache_.Put(texts[to_send[k]], v);
        out[to_send[k]] = std::move(v);
      }
    }
    for (auto [i, from] : copies) out[i] = out[from];
    return out;
  }

  EmbeddingHealth Health() const override {
    EmbeddingHealth h;
    h.breaker = embedding::ToBreakerState(breaker_.state());
    h.available = h.breaker != BreakerState::kOpen;
    h.cache_hits = cache_.hits();
    h.cache_misses = cache_.misses();
    MutexLock lock(mu_);
    h.requests = requests_;
    h.failures = failures_;
    h.last_error = last_error_;
    return h;
  }

 private:
  // Records `s` (scrubbed of the API key) as the last error and returns it.
  Status Fail(const Status& s) {
    Status scrubbed(s.code(), Redact(std::string(s.message()), options_.api_key));
    MutexLock lock(mu_);
    last_error_ = scrubbed.ToString();
    return scrubbed;
  }

  Attempt SendWithRetries(std::span<const std::string_view> inputs) {
    json request = {{"model", options_.model}, {"input", json::array()}};
    for (std::string_view text : inputs) request["input"].push_back(std::string(text));
    const std::string body = request.dump(-1, ' ', false, json::error_handler_t::replace);

    const int attempts = options_.max_retries + 1;
    Attempt last;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (attempt > 1) {
        auto wait = options_.backoff * (int64_t{1} << std::min(attempt - 2, 20));
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(wait, kMaxBackoff));
      }
      last = SendOnce(body, inputs.size());
      {
        MutexLock lock(mu_);
        ++requests_;
        if (!last.status.ok()) ++failures_;
      }
      if (last.status.ok() || !last.retryable) break;
    }
    if (!last.status.ok() && last.retryable && attempts > 1) {
      last.status = Status(last.status.code(),
                           std::string(last.status.message()) + " (" + std::to_string(attempts) + " attempts)");
    }
    return last;
  }

  Attempt SendOnce(const std::string& body, size_t expected) {
    Attempt a;
    const std::string where = "embedding server " + printable_url_;
    CURL* h = AcquireHandle();
    if (h == nullptr) {
      a.status = UnavailableError(where + ": cannot create an HTTP client handle");
      return a;
    }
    ResponseBuffer response;
    response.limit = response_limit_;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, options_.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    // No Accept-Encoding: gzip of a large float array costs a local server more time than
    // it saves on loopback or a LAN (40 ms for 32 × 256 floats with cpp-httplib here).
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long http_status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
    char* content_type_ptr = nullptr;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &content_type_ptr);
    std::string content_type = content_type_ptr != nullptr ? content_type_ptr : "";
    // The handle must not keep pointers into this frame.
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    ReleaseHandle(h);

    if (rc != CURLE_OK) {
      if (response.overflow) {
        a.status = DataLossError(where + ": answer larger than " + std::to_string(response_limit_) + " bytes");
        return a;
      }
      std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        detail = "timed out after " + std::to_string(options_.timeout.count()) + " ms (" + detail + ")";
      }
      a.status = UnavailableError(where + ": " + detail);
      a.retryable = IsRetryableCurlError(rc);
      return a;
    }
    if (http_status < 200 || http_status > 299) {
      std::string what = where + ": HTTP " + std::to_string(http_status);
      if (!response.body.empty()) what += ": " + Excerpt(response.body);
      if (http_status == 429 || http_status >= 500) {
        a.status = UnavailableError(what);
        a.retryable = true;
      } else if (http_status == 400 || http_status == 413 || http_status == 422) {
        a.status = InvalidArgumentError(what);
        a.server_answered = true;
      } else {
        // 401/403 (the key), 404 (the URL) and the like: nothing a retry or another
        // input would fix.
        a.status = UnavailableError(what);
      }
      return a;
    }
    Result<std::vector<std::vector<float>>> parsed = ParseAnswer(response.body, content_type, expected);
    if (!parsed.ok()) {
      a.status = parsed.status().WithContext(where);
      return a;
    }
    a.vectors = *std::move(parsed);
    return a;
  }

  Result<std::vector<std::vector<float>>> ParseAnswer(const std::string& body, const std::string& content_type,
                                                      size_t expected) const {
    const size_t dim = static_cast<size_t>(options_.dimension);
    json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      std::string type = content_type.empty() ? "no Content-Type" : "Content-Type " + content_type;
      return DataLossError("malformed answer, not JSON (" + type + ", " + std::to_string(body.size()) +
                           " bytes): " + Excerpt(body));
    }
    if (!doc.is_object()) return DataLossError("malformed answer: not a JSON object: " + Excerpt(body));
    auto data = doc.find("data");
    if (data == doc.end() || !data->is_array()) {
      return DataLossError("malformed answer: no \"data\" array: " + Excerpt(body));
    }
    if (data->size() != expected) {
      return DataLossError("malformed answer: " + std::to_string(data->size()) + " embeddings for " +
                           std::to_string(expected) + " inputs");
    }
    // Order by "index"; without any index the array order is taken as it is.
    size_t with_index = 0;
    for (const json& item : *data) {
      if (item.is_object() && item.contains("index")) ++with_index;
    }
    if (with_index != 0 && with_index != expected) {
      return DataLossError("malformed answer: \"index\" present on only " + std::to_string(with_index) + " of " +
                           std::to_string(expected) + " embeddings");
    }
    std::vector<std::vector<float>> out(expected);
    std::vector<bool> seen(expected, false);
    for (size_t k = 0; k < expected; ++k) {
      const json& item = (*data)[k];
      if (!item.is_object()) return DataLossError("malformed answer: data[" + std::to_string(k) + "] is not an object");
      size_t slot = k;
      if (with_index != 0) {
        const json& index = item["index"];
        if (!index.is_number_integer() || index.get<int64_t>() < 0 ||
            static_cast<uint64_t>(index.get<int64_t>()) >= expected) {
          return DataLossError("malformed answer: data[" + std::to_string(k) + "].index is not an integer in 0.." +
                               std::to_string(expected - 1));
        }
        slot = static_cast<size_t>(index.get<int64_t>());
        if (seen[slot]) return DataLossError("malformed answer: index " + std::to_string(slot) + " appears twice");
      }
      seen[slot] = true;
      auto embedding = item.find("embedding");
      if (embedding == item.end() || !embedding->is_array()) {
        return DataLossError("malformed answer: data[" + std::to_string(k) + "] has no \"embedding\" array");
      }
      if (embedding->size() != dim) {
        return DataLossError("malformed answer: embedding " + std::to_string(slot) + " has " +
                             std::to_string(embedding->size()) + " values, expected dimension " + std::to_string(dim));
      }
      std::vector<float>& v = out[slot];
      v.reserve(dim);
      for (const json& x : *embedding) {
        if (!x.is_number()) {
          return DataLossError("malformed answer: embedding " + std::to_string(slot) + " holds a non-number: " +
                               Excerpt(x.dump(-1, ' ', false, json::error_handler_t::replace), 40));
        }
        float f = static_cast<float>(x.get<double>());
        if (!std::isfinite(f)) {
          return DataLossError("malformed answer: embedding " + std::to_string(slot) + " holds a non-finite value");
        }
        v.push_back(f);
      }
      embedding::L2Normalise(v);
    }
    return out;
  }

  CURL* AcquireHandle() {
    {
      MutexLock lock(pool_mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void ReleaseHandle(CURL* h) {
    {
      MutexLock lock(pool_mu_);
      if (idle_.size() < kMaxIdleHandles) {
        idle_.push_back(h);
        return;
      }
    }
    curl_easy_cleanup(h);
  }

  // Constant after construction.
  const HttpEmbeddingOptions options_;
  const std::string printable_url_;
  const size_t response_limit_;
  curl_slist* headers_ = nullptr;  // read by every request; freed in the destructor

  // Thread-safe members.
  CircuitBreaker breaker_;
  embedding::EmbeddingCache cache_;

  // Idle easy handles: each keeps its connection alive for the next request.
  Mutex pool_mu_;
  std::vector<CURL*> idle_ ENGRAM_GUARDED_BY(pool_mu_);

  mutable Mutex mu_;
  int64_t requests_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t failures_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::string last_error_ ENGRAM_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<EmbeddingProvider>> MakeHttpProvider(const HttpEmbeddingOptions& options, Clock& clock) {
  ENGRAM_RETURN_IF_ERROR(ValidateOptions(options));
  GlobalCurlInit();
  return std::unique_ptr<EmbeddingProvider>(new HttpProvider(options, clock));
}

}  // namespace engram
