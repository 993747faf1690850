#include "transport/http_transport.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <exception>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include <httplib.h>

#include "common/logging.h"
#include "common/mutex.h"
#include "common/prometheus.h"
#include "common/strings.h"
#include "common/thread_pool.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"

namespace engram::transport {
namespace {

using mcp::Json;
using SteadyClock = std::chrono::steady_clock;

// The official SDKs answer transport-level failures (bad headers, unknown session) with
// this code; -32001 for an unknown session.
constexpr int kTransportError = -32000;
constexpr int kSessionNotFound = -32001;
// How often blocked handler threads and streams look at the stop flag.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kSweepInterval = std::chrono::seconds(1);
constexpr auto kStartTimeout = std::chrono::seconds(5);
constexpr time_t kKeepAliveSeconds = 2;
constexpr size_t kSessionIdBytes = 16;  // 128 random bits
constexpr const char* kSessionHeader = "Mcp-Session-Id";
constexpr const char* kProtocolHeader = "MCP-Protocol-Version";

void SetError(httplib::Response& res, int http_status, int code, std::string_view message,
              const Json& id = nullptr) {
  res.status = http_status;
  res.set_content(mcp::Dump(mcp::MakeError(id, code, message)), "application/json");
}

std::string SseEvent(std::string_view data) {
  std::string event = "event: message\ndata: ";
  event += data;
  event += "\n\n";
  return event;
}

bool Write(httplib::DataSink& sink, const std::string& text) { return sink.write(text.data(), text.size()); }

struct AcceptedTypes {
  bool json = false;
  bool sse = false;
};

// "q=0", "q=0.0", ...: the client refuses the type.
bool IsZeroQuality(std::string_view param) {
  std::string p = AsciiLower(param);
  p.erase(std::remove(p.begin(), p.end(), ' '), p.end());
  if (!p.starts_with("q=")) return false;
  std::string_view value = std::string_view(p).substr(2);
  if (value.empty()) return false;
  return std::all_of(value.begin(), value.end(), [](char c) { return c == '0' || c == '.'; });
}

AcceptedTypes ParseAccept(const std::string& header) {
  if (StripAsciiWhitespace(header).empty()) return {true, true};  // no Accept: anything goes
  AcceptedTypes out;
  for (const std::string& item : SplitAndTrim(header, ',')) {
    std::vector<std::string> parts = SplitAndTrim(item, ';');
    if (parts.empty()) continue;
    if (std::any_of(parts.begin() + 1, parts.end(), [](const std::string& p) { return IsZeroQuality(p); })) {
      continue;
    }
    std::string type = AsciiLower(parts[0]);
    if (type == "*/*") {
      out.json = out.sse = true;
    } else if (type == "application/json" || type == "application/*") {
      out.json = true;
    } else if (type == "text/event-stream" || type == "text/*") {
      out.sse = true;
    }
  }
  return out;
}

bool IsJsonContentType(const std::string& header) {
  std::string_view type = header;
  size_t semicolon = type.find(';');
  if (semicolon != std::string_view::npos) type = type.substr(0, semicolon);
  return AsciiLower(StripAsciiWhitespace(type)) == "application/json";
}

// "localhost", "127.x.y.z" or "::1" (no brackets), case-insensitive.
bool IsLoopbackName(std::string_view name) {
  std::string host = AsciiLower(name);
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

// The host part of "host", "host:port", "[v6]" or "[v6]:port"; nullopt if malformed.
std::optional<std::string> HostPart(std::string_view authority) {
  if (authority.empty()) return std::nullopt;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    return std::string(authority.substr(1, close - 1));
  }
  size_t colon = authority.find(':');
  if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
    return std::nullopt;  // an IPv6 address must be in brackets
  }
  return std::string(authority.substr(0, colon));
}

// The lower-cased "host[:port]" of an "http://" or "https://" Origin; nullopt for any
// other scheme.
std::optional<std::string> OriginAuthority(std::string_view origin) {
  std::string lower = AsciiLower(origin);
  for (std::string_view scheme : {"http://", "https://"}) {
    if (lower.starts_with(scheme)) return lower.substr(scheme.size());
  }
  return std::nullopt;
}

bool IsLoopbackOrigin(std::string_view origin) {
  std::optional<std::string> authority = OriginAuthority(origin);
  if (!authority.has_value() || authority->find('/') != std::string::npos) return false;
  std::optional<std::string> host = HostPart(*authority);
  return host.has_value() && IsLoopbackName(*host);
}

// An Origin whose authority is exactly the Host header's: a page this server served.
bool IsSameOrigin(std::string_view origin, std::string_view host_header) {
  std::optional<std::string> authority = OriginAuthority(origin);
  return authority.has_value() && !authority->empty() &&
         *authority == AsciiLower(StripAsciiWhitespace(host_header));
}

// Whether an If-None-Match header ("*", or a list of tags, weak or strong) names `etag`.
bool EtagMatches(const std::string& if_none_match, std::string_view etag) {
  for (const std::string& tag : SplitAndTrim(if_none_match, ',')) {
    std::string_view t = tag;
    if (t.starts_with("W/")) t.remove_prefix(2);
    if (t == "*" || t == etag) return true;
  }
  return false;
}

// "2.5" or "10": a rate for messages.
std::string FormatRate(double per_second) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", per_second);
  return buf;
}

std::string BindHost(const std::string& host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

// The id of a request for an error reply, when it has a usable one.
Json IdOf(const Json& message) {
  if (message.is_object() && message.contains("id") && (message["id"].is_string() || message["id"].is_number())) {
    return message["id"];
  }
  return nullptr;
}

// Messages waiting to be written to one open SSE stream. Thread-safe.
class SseQueue {
 public:
  // False once the stream has closed.
  bool Push(std::string data) ENGRAM_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(mu_);
      if (closed_) return false;
      events_.push_back(std::move(data));
    }
    cv_.SignalAll();
    return true;
  }
  // Waits up to `timeout` for messages and moves them to `out`. False once closed and empty.
  bool Pop(std::deque<std::string>& out, std::chrono::milliseconds timeout) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    if (events_.empty() && !closed_) cv_.WaitFor(mu_, timeout);
    out.swap(events_);
    events_.clear();
    return !closed_ || !out.empty();
  }
  void Close() ENGRAM_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(mu_);
      closed_ = true;
    }
    cv_.SignalAll();
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<std::string> events_ ENGRAM_GUARDED_BY(mu_);
  bool closed_ ENGRAM_GUARDED_BY(mu_) = false;
};

// A live MCP session and the transport's view of it. As a ClientChannel it is the
// session's GET stream: messages not tied to a request. Thread-safe.
class SessionEntry final : public mcp::ClientChannel {
 public:
  SessionEntry(std::string id, std::shared_ptr<mcp::McpSession> session, std::string key_id)
      : id_(std::move(id)), key_id_(std::move(key_id)), session_(std::move(session)) {
    Touch();
  }

  const std::string& id() const { return id_; }
  const std::string& key_id() const { return key_id_; }
  mcp::McpSession& session() const { return *session_; }

  // mcp::ClientChannel: delivered only while a GET stream is open.
  bool Send(const Json& message) override ENGRAM_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<SseQueue> stream = this->stream();
    return stream != nullptr && stream->Push(mcp::Dump(message));
  }
  bool CanRequest() const override ENGRAM_LOCKS_EXCLUDED(mu_) { return stream() != nullptr; }

  // False if a stream is already open.
  bool AttachStream(std::shared_ptr<SseQueue> stream) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    if (stream_ != nullptr) return false;
    stream_ = std::move(stream);
    return true;
  }
  void DetachStream(const std::shared_ptr<SseQueue>& stream) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    if (stream_ == stream) stream_.reset();
  }
  void CloseStream() ENGRAM_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<SseQueue> stream;
    {
      MutexLock lock(mu_);
      stream = std::move(stream_);
    }
    if (stream != nullptr) stream->Close();
  }

  void Touch() {
    last_used_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
  }
  void BeginRequest() { ++active_; }
  void EndRequest() {
    Touch();
    --active_;
  }
  // How long nothing has happened: zero while a request runs or a stream is open.
  SteadyClock::duration IdleFor(SteadyClock::time_point now) const {
    if (active_.load() > 0 || stream() != nullptr) return SteadyClock::duration::zero();
    return now.time_since_epoch() - std::chrono::nanoseconds(last_used_ns_.load());
  }

 private:
  std::shared_ptr<SseQueue> stream() const ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    return stream_;
  }

  const std::string id_;
  const std::string key_id_;  // the API key that created the session; empty without auth
  const std::shared_ptr<mcp::McpSession> session_;

  std::atomic<int> active_{0};
  std::atomic<int64_t> last_used_ns_{0};

  mutable Mutex mu_;
  std::shared_ptr<SseQueue> stream_ ENGRAM_GUARDED_BY(mu_);
};

// Counts a request as running on its session for as long as it lives (handler, worker
// and stream share it).
class ActiveRequest {
 public:
  explicit ActiveRequest(std::shared_ptr<SessionEntry> entry) : entry_(std::move(entry)) { entry_->BeginRequest(); }
  ~ActiveRequest() { entry_->EndRequest(); }
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;

 private:
  std::shared_ptr<SessionEntry> entry_;
};

// One POST that carries requests: the channel its calls write to while they run, and
// their reply. The handler thread waits for whichever comes first — the reply (→ JSON)
// or a message (→ SSE) — and the stream then drains the rest. Thread-safe.
class PostExchange final : public mcp::ClientChannel {
 public:
  PostExchange(bool can_stream, std::shared_ptr<SessionEntry> entry)
      : can_stream_(can_stream), entry_(std::move(entry)) {}

  // mcp::ClientChannel
  bool Send(const Json& message) override ENGRAM_LOCKS_EXCLUDED(mu_) {
    if (!can_stream_) {
      // A client that takes only JSON cannot get messages about this call. A list_changed
      // notification is not about the call, so the session's GET stream may carry it.
      if (message.is_object() && message.value("method", "").ends_with("/list_changed")) entry_->Send(message);
      return true;
    }
    {
      MutexLock lock(mu_);
      if (closed_) return false;
      events_.push_back(mcp::Dump(message));
    }
    cv_.SignalAll();
    return true;
  }
  bool CanRequest() const override ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    return can_stream_ && !closed_;
  }

  void Finish(std::optional<Json> reply) ENGRAM_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(mu_);
      reply_ = std::move(reply);
      finished_ = true;
    }
    cv_.SignalAll();
  }
  // The client is gone (or the server stops): later Sends fail.
  void Close() ENGRAM_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(mu_);
      closed_ = true;
    }
    cv_.SignalAll();
  }

  enum class First { kReply, kMessage, kStopping };
  First AwaitFirst(const std::atomic<bool>& stopping) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    while (!finished_ && events_.empty()) {
      if (stopping.load()) return First::kStopping;
      cv_.WaitFor(mu_, kPollInterval);
    }
    return events_.empty() ? First::kReply : First::kMessage;
  }
  std::optional<Json> TakeReply() ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    return std::move(reply_);
  }
  // Waits up to `timeout` for something to write; moves queued messages to `out` and,
  // once the call finished and everything before the reply is out, sets `finished` and
  // moves the reply.
  void Next(std::deque<std::string>& out, bool& finished, std::optional<Json>& reply,
            std::chrono::milliseconds timeout) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    if (events_.empty() && !finished_) cv_.WaitFor(mu_, timeout);
    out.swap(events_);
    events_.clear();
    finished = finished_;
    if (finished_) reply = std::move(reply_);
  }

 private:
  const bool can_stream_;
  const std::shared_ptr<SessionEntry> entry_;

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::string> events_ ENGRAM_GUARDED_BY(mu_);
  std::optional<Json> reply_ ENGRAM_GUARDED_BY(mu_);
  bool finished_ ENGRAM_GUARDED_BY(mu_) = false;
  bool closed_ ENGRAM_GUARDED_BY(mu_) = false;
};

// For initialize, which sends nothing while it runs.
class NullChannel final : public mcp::ClientChannel {
 public:
  bool Send(const Json&) override { return false; }
  bool CanRequest() const override { return false; }
};

}  // namespace

class HttpTransport::Impl {
 public:
  Impl(mcp::McpServer& server, HttpOptions options)
      : server_(server),
        options_(std::move(options)),
        loopback_(IsLoopbackName(BindHost(options_.host))),
        bound_port_(options_.port),
        // Not owned: an aliasing pointer that deletes nothing.
        keys_(std::shared_ptr<const mcp::ApiKeyStore>(), options_.keys) {
    rate_limiter_.Set(options_.rate_limit);
  }

  ~Impl() { Stop(); }

  Status Start() ENGRAM_LOCKS_EXCLUDED(stop_mu_, done_mu_);
  int port() const { return bound_port_.load(); }
  void Stop() ENGRAM_LOCKS_EXCLUDED(stop_mu_);
  void Wait() ENGRAM_LOCKS_EXCLUDED(done_mu_) {
    MutexLock lock(done_mu_);
    while (serving_ && !serving_done_) done_cv_.Wait(done_mu_);
  }
  size_t Broadcast(const Json& message) ENGRAM_LOCKS_EXCLUDED(mu_) {
    size_t reached = 0;
    for (const std::shared_ptr<SessionEntry>& entry : Sessions()) reached += entry->Send(message) ? 1 : 0;
    return reached;
  }
  size_t session_count() const ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    return sessions_.size();
  }
  void SetKeys(std::shared_ptr<const mcp::ApiKeyStore> keys) ENGRAM_LOCKS_EXCLUDED(keys_mu_) {
    MutexLock lock(keys_mu_);
    keys_ = std::move(keys);
  }
  void SetRateLimit(RateLimit limit) { rate_limiter_.Set(limit); }

 private:
  void SetUpRoutes();
  void HandlePost(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void HandleGet(const httplib::Request& req, httplib::Response& res);
  void HandleDelete(const httplib::Request& req, httplib::Response& res);
  void HandleStaticFile(const httplib::Request& req, httplib::Response& res) const;
  void HandleMetrics(const httplib::Request& req, httplib::Response& res) const;
  void HandleInitialize(const Json& message, const mcp::Principal& principal, const AcceptedTypes& accept,
                        httplib::Response& res) ENGRAM_LOCKS_EXCLUDED(mu_);
  void StreamReply(const std::shared_ptr<PostExchange>& exchange, std::shared_ptr<ActiveRequest> active,
                   httplib::Response& res);

  // Checks shared by every /mcp request. Each fills `res` with the error and returns
  // false (or nullopt/nullptr) when the request must be refused.
  bool CheckHostAndOrigin(const httplib::Request& req, httplib::Response& res) const;
  std::optional<mcp::Principal> Authenticate(const httplib::Request& req, httplib::Response& res) const;
  bool CheckProtocolVersion(const httplib::Request& req, httplib::Response& res) const;
  std::shared_ptr<SessionEntry> FindSession(const httplib::Request& req, const mcp::Principal& principal,
                                            httplib::Response& res) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Forgets sessions idle for longer than the timeout; at most once a second unless forced.
  void SweepIdle(bool force) ENGRAM_LOCKS_EXCLUDED(mu_);
  // Forgets every session, cancelling their calls and closing their streams.
  void DropAllSessions() ENGRAM_LOCKS_EXCLUDED(mu_);
  std::vector<std::shared_ptr<SessionEntry>> Sessions() const ENGRAM_LOCKS_EXCLUDED(mu_);
  size_t MaxGetStreams() const { return std::max<size_t>(1, options_.http_threads / 2); }
  // The key store requests are checked against now (SetKeys); may be null.
  std::shared_ptr<const mcp::ApiKeyStore> Keys() const ENGRAM_LOCKS_EXCLUDED(keys_mu_) {
    MutexLock lock(keys_mu_);
    return keys_;
  }
  bool AuthRequired(const mcp::ApiKeyStore* keys) const {
    return !loopback_ || (keys != nullptr && keys->HasActiveKeys());
  }
  // Takes a token for `principal`'s client; when there is none, fills `res` with 429 and
  // returns false.
  bool CheckRateLimit(const httplib::Request& req, const mcp::Principal& principal, httplib::Response& res);

  // Constant after construction.
  mcp::McpServer& server_;
  const HttpOptions options_;
  const bool loopback_;

  std::atomic<bool> stopping_{false};
  std::atomic<int> bound_port_;

  // Set up in Start(), torn down in Stop(); used by handler threads in between.
  httplib::Server http_;
  std::unique_ptr<ThreadPool> workers_;
  std::thread listener_;

  // Serialises Start() and Stop().
  Mutex stop_mu_;
  bool started_ ENGRAM_GUARDED_BY(stop_mu_) = false;
  bool stopped_ ENGRAM_GUARDED_BY(stop_mu_) = false;

  // Whether the listener thread is serving, for Wait().
  Mutex done_mu_;
  CondVar done_cv_;
  bool serving_ ENGRAM_GUARDED_BY(done_mu_) = false;
  bool serving_done_ ENGRAM_GUARDED_BY(done_mu_) = false;

  // Changed while serving (config reload).
  mutable Mutex keys_mu_;
  std::shared_ptr<const mcp::ApiKeyStore> keys_ ENGRAM_GUARDED_BY(keys_mu_);
  RateLimiter rate_limiter_;

  // Sessions and streams.
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<SessionEntry>> sessions_ ENGRAM_GUARDED_BY(mu_);
  SteadyClock::time_point last_sweep_ ENGRAM_GUARDED_BY(mu_){};
  size_t get_streams_ ENGRAM_GUARDED_BY(mu_) = 0;
};

Status HttpTransport::Impl::Start() {
  MutexLock lock(stop_mu_);
  if (started_) return FailedPreconditionError("the HTTP transport was already started");
  if (options_.port < 0 || options_.port > 65535) {
    return InvalidArgumentError("port " + std::to_string(options_.port) + " is not between 0 and 65535");
  }
  if (const auto keys = Keys(); !loopback_ && (keys == nullptr || !keys->HasActiveKeys())) {
    return FailedPreconditionError("refusing to listen on " + options_.host +
                                   " without API keys: create one with `engram keys create`");
  }
  SetUpRoutes();
  const std::string host = BindHost(options_.host);
  int port = -1;
  if (options_.port == 0) {
    port = http_.bind_to_any_port(host);
  } else if (http_.bind_to_port(host, options_.port)) {
    port = options_.port;
  }
  if (port <= 0) {
    return UnavailableError("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                            ": the port is in use or the address is not available on this machine");
  }
  bound_port_ = port;
  workers_ = std::make_unique<ThreadPool>(options_.workers);
  started_ = true;
  {
    MutexLock done(done_mu_);
    serving_ = true;
  }
  listener_ = std::thread([this] {
    http_.listen_after_bind();
    {
      MutexLock done(done_mu_);
      serving_done_ = true;
    }
    done_cv_.SignalAll();
  });
  // listen_after_bind marks the server running first thing; until then a Stop() would be
  // lost, so Start returns only once requests are being accepted.
  auto deadline = SteadyClock::now() + kStartTimeout;
  while (!http_.is_running() && SteadyClock::now() < deadline) {
    {
      MutexLock done(done_mu_);
      if (serving_done_) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!http_.is_running()) {
    return UnavailableError("the HTTP server on " + options_.host + ":" + std::to_string(port) + " did not start");
  }
  bool auth = AuthRequired(Keys().get());
  LogInfo("serving MCP over Streamable HTTP", {{"host", options_.host},
                                               {"port", std::to_string(port)},
                                               {"api_keys", auth ? "required" : "not required"}});
  return OkStatus();
}

void HttpTransport::Impl::Stop() {
  MutexLock lock(stop_mu_);
  if (!started_ || stopped_) return;
  stopped_ = true;
  stopping_ = true;
  // Cancelled calls finish quickly, so the threads below can be joined.
  DropAllSessions();
  http_.stop();
  if (listener_.joinable()) listener_.join();
  workers_.reset();  // runs what is queued (all cancelled), then joins
  DropAllSessions();  // any that an initialize added meanwhile
  {
    MutexLock done(done_mu_);
    serving_done_ = true;
  }
  done_cv_.SignalAll();
  LogInfo("HTTP transport stopped");
}

void HttpTransport::Impl::SetUpRoutes() {
  // Only SO_REUSEADDR: cpp-httplib's default also sets SO_REUSEPORT, with which a second
  // server could bind a port that is already taken.
  http_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  size_t threads = std::max<size_t>(2, options_.http_threads);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(options_.max_body_bytes);
  // An idle keep-alive connection holds a thread, and cpp-httplib lets it sit out the whole
  // timeout even after stop(): short, so that Stop() is prompt. Agents pause far longer
  // than this between calls anyway, so a longer one would save few reconnects.
  http_.set_keep_alive_timeout(kKeepAliveSeconds);
  // Responses are small and written in pieces (headers, body, SSE events): without
  // TCP_NODELAY a client that reuses its connection waits ~40 ms for delayed ACKs on each
  // request (measured by bench/mcp: 27 ms -> 0.8 ms per call).
  http_.set_tcp_nodelay(true);

  http_.Post("/mcp", [this](const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& reader) { HandlePost(req, res, reader); });
  http_.Get("/mcp", [this](const httplib::Request& req, httplib::Response& res) { HandleGet(req, res); });
  http_.Delete("/mcp", [this](const httplib::Request& req, httplib::Response& res) { HandleDelete(req, res); });
  http_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
  if (options_.metrics) {
    http_.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) { HandleMetrics(req, res); });
  }
  if (!options_.static_files.empty()) {
    auto serve = [this](const httplib::Request& req, httplib::Response& res) { HandleStaticFile(req, res); };
    http_.Get("/", serve);
    http_.Get(R"(/assets/[^/]+)", serve);
  }

  // Errors cpp-httplib produces itself (unknown path, body too large, unreadable request)
  // get a JSON body like ours; the ones our handlers wrote are left alone.
  size_t max_body = options_.max_body_bytes;
  http_.set_error_handler(httplib::Server::HandlerWithResponse([max_body](const httplib::Request&,
                                                                            httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    switch (res.status) {
      case 404: message = "Not Found: engram serves MCP at /mcp"; break;
      case 413: message = "Payload Too Large: the body exceeds " + std::to_string(max_body) + " bytes"; break;
      default: message = "HTTP error " + std::to_string(res.status); break;
    }
    SetError(res, res.status, kTransportError, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("HTTP handler threw", {{"error", what}});
    SetError(res, 500, mcp::kInternalError, "Internal error");
  });
}

bool HttpTransport::Impl::CheckHostAndOrigin(const httplib::Request& req, httplib::Response& res) const {
  if (loopback_) {
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still
    // sends "Host: evil.example".
    std::optional<std::string> host = HostPart(req.get_header_value("Host"));
    if (!host.has_value() || !IsLoopbackName(*host)) {
      SetError(res, 403, kTransportError, "Forbidden: the Host header must name localhost (DNS rebinding protection)");
      return false;
    }
  }
  if (req.has_header("Origin")) {
    std::string origin = req.get_header_value("Origin");
    // A page served by this server (the dashboard) may call it: beyond loopback its Origin
    // names the Host it was loaded from. That admits a rebound name too, which gains
    // nothing there: every request beyond loopback needs an API key, and a page has only
    // the keys its own origin was given.
    bool allowed = IsLoopbackOrigin(origin) || IsSameOrigin(origin, req.get_header_value("Host"));
    for (const std::string& o : options_.allowed_origins) {
      allowed = allowed || o == "*" || AsciiLower(o) == AsciiLower(origin);
    }
    if (!allowed) {
      SetError(res, 403, kTransportError, "Forbidden: Origin not allowed");
      return false;
    }
  }
  return true;
}

std::optional<mcp::Principal> HttpTransport::Impl::Authenticate(const httplib::Request& req,
                                                                 httplib::Response& res) const {
  const std::shared_ptr<const mcp::ApiKeyStore> keys = Keys();
  const bool required = AuthRequired(keys.get());
  if (!required) return mcp::Principal{};
  std::string presented(StripAsciiWhitespace(req.get_header_value("X-API-Key")));
  if (presented.empty()) {
    std::string authorization = req.get_header_value("Authorization");
    if (authorization.size() > 7 && AsciiLower(authorization.substr(0, 7)) == "bearer ") {
      presented = std::string(StripAsciiWhitespace(std::string_view(authorization).substr(7)));
    }
  }
  if (!presented.empty() && keys != nullptr) {
    Result<mcp::Principal> who = keys->Verify(presented);
    if (who.ok()) return *std::move(who);
    LogWarn("HTTP request with a rejected API key",
            {{"reason", std::string(who.status().message())}, {"remote", req.remote_addr}});
  }
  res.set_header("WWW-Authenticate", "Bearer realm=\"engram\"");
  SetError(res, 401, kTransportError,
           "Unauthorized: send a valid API key as X-API-Key or Authorization: Bearer");
  return std::nullopt;
}

bool HttpTransport::Impl::CheckRateLimit(const httplib::Request& req, const mcp::Principal& principal,
                                         httplib::Response& res) {
  // Keyed by API key where there is one, so clients behind one proxy address don't share
  // a budget; by address otherwise.
  const std::string client = principal.key_id.empty() ? "addr " + req.remote_addr : "key " + principal.key_id;
  std::optional<std::chrono::milliseconds> wait = rate_limiter_.Acquire(client);
  if (!wait.has_value()) return true;
  const int64_t retry_after_s = std::max<int64_t>(1, (wait->count() + 999) / 1000);
  res.set_header("Retry-After", std::to_string(retry_after_s));
  SetError(res, 429, kTransportError,
           "Too Many Requests: over the rate limit of " + FormatRate(rate_limiter_.limit().per_second) +
               " requests per second; retry after " + std::to_string(retry_after_s) + " s");
  LogDebug("HTTP request over the rate limit", {{"client", client}});
  return false;
}

bool HttpTransport::Impl::CheckProtocolVersion(const httplib::Request& req, httplib::Response& res) const {
  // Without the header the client is taken to speak 2025-03-26, as the spec says.
  if (!req.has_header(kProtocolHeader)) return true;
  std::string version = req.get_header_value(kProtocolHeader);
  if (mcp::IsSupportedProtocolVersion(version)) return true;
  std::string supported;
  for (const char* v : mcp::kProtocolVersions) supported += (supported.empty() ? "" : ", ") + std::string(v);
  SetError(res, 400, kTransportError,
           "Bad Request: unsupported MCP-Protocol-Version \"" + version.substr(0, 64) + "\" (supported: " +
               supported + ")");
  return false;
}

std::shared_ptr<SessionEntry> HttpTransport::Impl::FindSession(const httplib::Request& req,
                                                               const mcp::Principal& principal,
                                                               httplib::Response& res) {
  std::string id = req.get_header_value(kSessionHeader);
  if (id.empty()) {
    SetError(res, 400, kTransportError, "Bad Request: Mcp-Session-Id header is required (initialize first)");
    return nullptr;
  }
  SweepIdle(/*force=*/false);
  std::shared_ptr<SessionEntry> entry;
  {
    MutexLock lock(mu_);
    auto it = sessions_.find(id);
    if (it != sessions_.end()) entry = it->second;
  }
  if (entry == nullptr) {
    SetError(res, 404, kSessionNotFound, "Session not found: initialize a new session");
    return nullptr;
  }
  if (entry->key_id() != principal.key_id) {
    SetError(res, 403, kTransportError, "Forbidden: the session belongs to another API key");
    return nullptr;
  }
  entry->Touch();
  return entry;
}

void HttpTransport::Impl::HandlePost(const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
  // The body is read first, whatever the verdict: answering before the client has sent
  // it would reset the connection under the answer. It is capped, chunked or not.
  std::string body;
  bool too_large = false;
  bool read = reader([&](const char* data, size_t length) {
    if (body.size() + length > options_.max_body_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, length);
    return true;
  });
  if (stopping_) {
    SetError(res, 503, kTransportError, "Service Unavailable: the server is stopping");
    return;
  }
  if (!CheckHostAndOrigin(req, res)) return;
  std::optional<mcp::Principal> principal = Authenticate(req, res);
  if (!principal.has_value()) return;
  if (!CheckRateLimit(req, *principal, res)) return;
  if (too_large || res.status == 413) {
    SetError(res, 413, kTransportError,
             "Payload Too Large: the body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
    return;
  }
  if (!read) {
    SetError(res, 400, kTransportError, "Bad Request: the body could not be read");
    return;
  }
  if (!IsJsonContentType(req.get_header_value("Content-Type"))) {
    SetError(res, 415, kTransportError, "Unsupported Media Type: Content-Type must be application/json");
    return;
  }
  const AcceptedTypes accept = ParseAccept(req.get_header_value("Accept"));
  if (!accept.json && !accept.sse) {
    SetError(res, 406, kTransportError,
             "Not Acceptable: the client must accept application/json and text/event-stream");
    return;
  }
  if (!CheckProtocolVersion(req, res)) return;

  std::optional<Json> message = mcp::ParseJson(body);
  if (!message.has_value()) {
    SetError(res, 400, mcp::kParseError, "Parse error: the body is not valid JSON");
    return;
  }
  const bool batch = message->is_array();
  if (batch && message->empty()) {
    SetError(res, 400, mcp::kInvalidRequest, "Invalid Request: empty batch");
    return;
  }
  bool has_request = false;
  bool has_initialize = false;
  for (const Json& m : batch ? *message : Json::array({*message})) {
    switch (mcp::Classify(m)) {
      case mcp::MessageKind::kInvalid:
        SetError(res, 400, mcp::kInvalidRequest, "Invalid Request: not a JSON-RPC 2.0 message", IdOf(m));
        return;
      case mcp::MessageKind::kRequest:
        has_request = true;
        has_initialize = has_initialize || m["method"] == "initialize";
        break;
      case mcp::MessageKind::kNotification:
      case mcp::MessageKind::kResponse:
        break;
    }
  }
  if (has_initialize && batch) {
    SetError(res, 400, mcp::kInvalidRequest, "Invalid Request: initialize must not be part of a batch");
    return;
  }
  if (has_initialize && !req.has_header(kSessionHeader)) {
    HandleInitialize(*message, *principal, accept, res);
    return;
  }

  std::shared_ptr<SessionEntry> entry = FindSession(req, *principal, res);
  if (entry == nullptr) return;
  auto active = std::make_shared<ActiveRequest>(entry);
  if (!has_request) {
    // Notifications and answers to our own requests: quick, and a running call may be
    // waiting for them, so they are handled here rather than queued behind calls. The
    // session answers them only to refuse them (a batch under 2025-06-18 and later).
    std::optional<Json> refusal = entry->session().HandleMessage(*message, *entry);
    if (refusal.has_value()) {
      res.status = 400;
      res.set_content(mcp::Dump(*refusal), "application/json");
      return;
    }
    res.status = 202;
    return;
  }

  auto exchange = std::make_shared<PostExchange>(accept.sse, entry);
  workers_->Submit([exchange, entry, active, message = std::move(*message)] {
    std::optional<Json> reply;
    try {
      reply = entry->session().HandleMessage(message, *exchange);
    } catch (const std::exception& e) {
      LogError("MCP request handler threw", {{"error", e.what()}});
      reply = mcp::MakeError(IdOf(message), mcp::kInternalError, "Internal error");
    } catch (...) {
      LogError("MCP request handler threw");
      reply = mcp::MakeError(IdOf(message), mcp::kInternalError, "Internal error");
    }
    exchange->Finish(std::move(reply));
  });

  switch (exchange->AwaitFirst(stopping_)) {
    case PostExchange::First::kStopping:
      exchange->Close();
      SetError(res, 503, kTransportError, "Service Unavailable: the server is stopping");
      return;
    case PostExchange::First::kReply: {
      std::optional<Json> reply = exchange->TakeReply();
      if (!reply.has_value()) {  // e.g. the client cancelled the request
        res.status = 202;
        return;
      }
      res.status = 200;
      if (accept.json) {
        res.set_content(mcp::Dump(*reply), "application/json");
      } else {
        res.set_header("Cache-Control", "no-cache");
        res.set_content(SseEvent(mcp::Dump(*reply)), "text/event-stream");
      }
      return;
    }
    case PostExchange::First::kMessage:
      StreamReply(exchange, std::move(active), res);
      return;
  }
}

void HttpTransport::Impl::StreamReply(const std::shared_ptr<PostExchange>& exchange,
                                      std::shared_ptr<ActiveRequest> active, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  auto last_write = std::make_shared<SteadyClock::time_point>(SteadyClock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, exchange, active, last_write](size_t, httplib::DataSink& sink) {
        std::deque<std::string> events;
        bool finished = false;
        std::optional<Json> reply;
        exchange->Next(events, finished, reply, kPollInterval);
        for (const std::string& event : events) {
          if (!Write(sink, SseEvent(event))) {
            exchange->Close();  // the client went away: the call's next Send fails
            return false;
          }
        }
        auto now = SteadyClock::now();
        if (!events.empty()) *last_write = now;
        if (finished) {
          if (reply.has_value() && !Write(sink, SseEvent(mcp::Dump(*reply)))) {
            exchange->Close();
            return false;
          }
          sink.done();
          return true;
        }
        if (stopping_) {
          exchange->Close();
          return false;
        }
        if (now - *last_write >= options_.sse_keepalive) {
          if (!Write(sink, ": keepalive\n\n")) {
            exchange->Close();
            return false;
          }
          *last_write = now;
        }
        return true;
      },
      [exchange](bool) { exchange->Close(); });
}

void HttpTransport::Impl::HandleInitialize(const Json& message, const mcp::Principal& principal,
                                           const AcceptedTypes& accept, httplib::Response& res) {
  bool full;
  {
    MutexLock lock(mu_);
    full = sessions_.size() >= options_.max_sessions;
  }
  if (full) {
    SweepIdle(/*force=*/true);
    MutexLock lock(mu_);
    full = sessions_.size() >= options_.max_sessions;
  }
  if (full) {
    SetError(res, 503, kTransportError, "Service Unavailable: too many sessions; try again later", IdOf(message));
    return;
  }
  std::shared_ptr<mcp::McpSession> session = server_.NewSession(principal);
  NullChannel none;
  std::optional<Json> reply = session->HandleMessage(message, none);
  if (!reply.has_value()) {
    res.status = 202;
    return;
  }
  if (reply->is_object() && reply->contains("result")) {
    std::string id = mcp::RandomHex(kSessionIdBytes);
    auto entry = std::make_shared<SessionEntry>(id, std::move(session), principal.key_id);
    {
      MutexLock lock(mu_);
      sessions_[id] = entry;
    }
    res.set_header(kSessionHeader, id);
    LogInfo("MCP session started", {{"session", id.substr(0, 8)}, {"key_id", principal.key_id}});
  }
  res.status = 200;
  if (accept.json) {
    res.set_content(mcp::Dump(*reply), "application/json");
  } else {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(SseEvent(mcp::Dump(*reply)), "text/event-stream");
  }
}

void HttpTransport::Impl::HandleGet(const httplib::Request& req, httplib::Response& res) {
  if (stopping_) {
    SetError(res, 503, kTransportError, "Service Unavailable: the server is stopping");
    return;
  }
  if (!CheckHostAndOrigin(req, res)) return;
  std::optional<mcp::Principal> principal = Authenticate(req, res);
  if (!principal.has_value()) return;
  if (!ParseAccept(req.get_header_value("Accept")).sse) {
    res.set_header("Allow", "GET, POST, DELETE");
    SetError(res, 405, kTransportError, "Method Not Allowed: GET /mcp opens an SSE stream; accept text/event-stream");
    return;
  }
  if (!CheckProtocolVersion(req, res)) return;
  std::shared_ptr<SessionEntry> entry = FindSession(req, *principal, res);
  if (entry == nullptr) return;

  {
    MutexLock lock(mu_);
    if (get_streams_ >= MaxGetStreams()) {
      SetError(res, 503, kTransportError, "Service Unavailable: too many open streams; try again later");
      return;
    }
    ++get_streams_;
  }
  auto stream = std::make_shared<SseQueue>();
  if (!entry->AttachStream(stream)) {
    {
      MutexLock lock(mu_);
      --get_streams_;
    }
    SetError(res, 409, kTransportError, "Conflict: this session already has a GET stream open");
    return;
  }
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  auto last_write = std::make_shared<SteadyClock::time_point>(SteadyClock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, stream, last_write](size_t, httplib::DataSink& sink) {
        std::deque<std::string> events;
        bool open = stream->Pop(events, kPollInterval);
        for (const std::string& event : events) {
          if (!Write(sink, SseEvent(event))) {
            stream->Close();
            return false;
          }
        }
        auto now = SteadyClock::now();
        if (!events.empty()) *last_write = now;
        if (!open) {  // DELETE or expiry closed it: end the stream cleanly
          sink.done();
          return true;
        }
        if (stopping_) {
          stream->Close();
          return false;
        }
        if (now - *last_write >= options_.sse_keepalive) {
          if (!Write(sink, ": keepalive\n\n")) {
            stream->Close();
            return false;
          }
          *last_write = now;
        }
        return true;
      },
      [this, entry, stream](bool) {
        stream->Close();
        entry->DetachStream(stream);
        entry->Touch();
        MutexLock lock(mu_);
        --get_streams_;
      });
}

void HttpTransport::Impl::HandleDelete(const httplib::Request& req, httplib::Response& res) {
  if (!CheckHostAndOrigin(req, res)) return;
  std::optional<mcp::Principal> principal = Authenticate(req, res);
  if (!principal.has_value()) return;
  if (!CheckProtocolVersion(req, res)) return;
  std::shared_ptr<SessionEntry> entry = FindSession(req, *principal, res);
  if (entry == nullptr) return;
  {
    MutexLock lock(mu_);
    sessions_.erase(entry->id());
  }
  entry->session().CancelAll();
  entry->CloseStream();
  LogInfo("MCP session ended by the client", {{"session", entry->id().substr(0, 8)}});
  res.status = 204;
}

void HttpTransport::Impl::HandleMetrics(const httplib::Request& req, httplib::Response& res) const {
  // The counters name tools, operations and volumes: as private as /mcp, so the same gate.
  if (!CheckHostAndOrigin(req, res)) return;
  if (!Authenticate(req, res).has_value()) return;
  res.set_header("Cache-Control", "no-store");
  res.set_content(options_.metrics(), kPrometheusContentType);
}

void HttpTransport::Impl::HandleStaticFile(const httplib::Request& req, httplib::Response& res) const {
  if (!CheckHostAndOrigin(req, res)) return;
  auto file = std::find_if(options_.static_files.begin(), options_.static_files.end(),
                           [&](const StaticFile& f) { return f.path == req.path; });
  if (file == options_.static_files.end()) {
    res.status = 404;
    res.set_content("Not Found: no such file\n", "text/plain; charset=utf-8");
    return;
  }
  // The page shows text recorded by agents: it builds the DOM from text only, and this
  // policy keeps it to its own script and style and to this server for fetches.
  res.set_header("Content-Security-Policy",
                 "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  // Revalidated on every load, so a new binary's files are picked up at once; unchanged
  // files cost a 304.
  res.set_header("Cache-Control", "no-cache");
  if (!file->etag.empty()) {
    res.set_header("ETag", std::string(file->etag));
    if (EtagMatches(req.get_header_value("If-None-Match"), file->etag)) {
      res.status = 304;
      return;
    }
  }
  res.status = 200;
  res.set_content(file->body.data(), file->body.size(), std::string(file->content_type));
}

void HttpTransport::Impl::SweepIdle(bool force) {
  if (options_.session_idle_timeout.count() <= 0) return;
  std::vector<std::shared_ptr<SessionEntry>> expired;
  {
    MutexLock lock(mu_);
    auto now = SteadyClock::now();
    if (!force && now - last_sweep_ < kSweepInterval) return;
    last_sweep_ = now;
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->IdleFor(now) > options_.session_idle_timeout) {
        expired.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const std::shared_ptr<SessionEntry>& entry : expired) {
    entry->session().CancelAll();
    entry->CloseStream();
    LogInfo("MCP session expired", {{"session", entry->id().substr(0, 8)}});
  }
}

void HttpTransport::Impl::DropAllSessions() {
  std::map<std::string, std::shared_ptr<SessionEntry>> sessions;
  {
    MutexLock lock(mu_);
    sessions.swap(sessions_);
  }
  for (auto& [id, entry] : sessions) {
    entry->session().CancelAll();
    entry->CloseStream();
  }
}

std::vector<std::shared_ptr<SessionEntry>> HttpTransport::Impl::Sessions() const {
  MutexLock lock(mu_);
  std::vector<std::shared_ptr<SessionEntry>> out;
  for (const auto& [id, entry] : sessions_) out.push_back(entry);
  return out;
}

HttpTransport::HttpTransport(mcp::McpServer& server, HttpOptions options)
    : impl_(std::make_unique<Impl>(server, std::move(options))) {}

HttpTransport::~HttpTransport() = default;

Status HttpTransport::Start() { return impl_->Start(); }
int HttpTransport::port() const { return impl_->port(); }
void HttpTransport::Stop() { impl_->Stop(); }
void HttpTransport::Wait() { impl_->Wait(); }
size_t HttpTransport::Broadcast(const Json& message) { return impl_->Broadcast(message); }
void HttpTransport::SetKeys(std::shared_ptr<const mcp::ApiKeyStore> keys) { impl_->SetKeys(std::move(keys)); }

void HttpTransport::SetRateLimit(RateLimit limit) { impl_->SetRateLimit(limit); }

size_t HttpTransport::session_count() const { return impl_->session_count(); }

}  // namespace engram::transport
