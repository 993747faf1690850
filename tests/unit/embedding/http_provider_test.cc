// The http embedding provider against a real OpenAI-compatible server on 127.0.0.1
// (cpp-httplib), which the test tells how to misbehave: slow past the timeout, 500, 429,
// 400, 401, garbage, truncated JSON, wrong dimension, HTML, echoing the API key. The
// breaker's time is a FakeClock; retry backoff is real but 1 ms.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "common/fnv.h"
#include "engram/embedding.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr int kDim = 8;
constexpr const char* kApiKey = "sk-test-SECRET-4f1b2c";

// The vector the server answers for `text` (not normalised, so the client must).
std::vector<float> ServerVector(const std::string& text, int dim = kDim) {
  const uint64_t h = Fnv1a64(text);
  std::vector<float> v(static_cast<size_t>(dim));
  for (int j = 0; j < dim; ++j) v[static_cast<size_t>(j)] = ((h >> (j % 64)) & 1) ? 2.0f + 0.25f * j : -1.0f - 0.5f * j;
  return v;
}

std::vector<float> Normalised(std::vector<float> v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
  return v;
}

enum class Mode {
  kOk,              // data in reverse order, with "index"
  kOkNoIndex,       // data in order, without "index"
  kSlow,            // sleeps 1 s (past the client's 250 ms timeout), then answers
  k500,
  k429,
  k400,
  k401EchoKey,      // 401 whose body repeats the Authorization header
  k500EchoKey,      // 500 whose body repeats the Authorization header
  kGarbage,
  kTruncated,
  kWrongDimension,
  kHtml,            // 200 with an HTML error page
  kNonNumber,
  kMissingData,
  kWrongCount,
  kDuplicateIndex,
};

class FakeEmbeddingServer {
 public:
  FakeEmbeddingServer() {
    server_.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    server_.set_tcp_nodelay(true);  // else each keep-alive answer waits ~40 ms for a delayed ACK
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~FakeEmbeddingServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/embeddings"; }

  // Misbehaves as `mode` for the next `times` requests (-1: until told otherwise), then
  // answers correctly.
  void Set(Mode mode, int times = -1) {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = mode;
    remaining_ = times;
  }

  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(inputs_.size());
  }
  // Inputs of each request, in arrival order.
  std::vector<std::vector<std::string>> inputs() {
    std::lock_guard<std::mutex> lock(mu_);
    return inputs_;
  }
  std::string last_authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }
  std::string last_model() {
    std::lock_guard<std::mutex> lock(mu_);
    return model_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    std::vector<std::string> input;
    if (!body.is_discarded() && body.contains("input") && body["input"].is_array()) {
      for (const json& t : body["input"]) input.push_back(t.is_string() ? t.get<std::string>() : "");
    }
    Mode mode;
    {
      std::lock_guard<std::mutex> lock(mu_);
      inputs_.push_back(input);
      authorization_ = req.get_header_value("Authorization");
      model_ = body.is_discarded() ? "" : body.value("model", "");
      mode = remaining_ == 0 ? Mode::kOk : mode_;
      if (remaining_ > 0) --remaining_;
    }
    const std::string auth = req.get_header_value("Authorization");
    switch (mode) {
      case Mode::kOk:
      case Mode::kOkNoIndex:
      case Mode::kSlow:
        if (mode == Mode::kSlow) std::this_thread::sleep_for(milliseconds(1'000));
        res.set_content(Answer(input, mode == Mode::kOkNoIndex).dump(), "application/json");
        return;
      case Mode::k500:
        res.status = 500;
        res.set_content(R"({"error":{"message":"upstream model crashed"}})", "application/json");
        return;
      case Mode::k429:
        res.status = 429;
        res.set_content(R"({"error":{"message":"rate limited"}})", "application/json");
        return;
      case Mode::k400:
        res.status = 400;
        res.set_content(R"({"error":{"message":"input too long"}})", "application/json");
        return;
      case Mode::k401EchoKey:
        res.status = 401;
        res.set_content("invalid key: " + auth, "text/plain");
        return;
      case Mode::k500EchoKey:
        res.status = 500;
        res.set_content("failed for " + auth, "text/plain");
        return;
      case Mode::kGarbage:
        res.set_content("\x01\x02 this is not json " + auth, "application/json");
        return;
      case Mode::kTruncated: {
        std::string full = Answer(input, false).dump();
        res.set_content(full.substr(0, full.size() / 2), "application/json");
        return;
      }
      case Mode::kWrongDimension: {
        json a = Answer(input, false);
        a["data"][0]["embedding"].push_back(1.0);
        res.set_content(a.dump(), "application/json");
        return;
      }
      case Mode::kHtml:
        res.set_content("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html");
        return;
      case Mode::kNonNumber: {
        json a = Answer(input, false);
        a["data"][0]["embedding"][1] = "x";
        res.set_content(a.dump(), "application/json");
        return;
      }
      case Mode::kMissingData:
        res.set_content(R"({"object":"list","model":"m"})", "application/json");
        return;
      case Mode::kWrongCount: {
        json a = Answer(input, false);
        a["data"].erase(a["data"].size() - 1);
        res.set_content(a.dump(), "application/json");
        return;
      }
      case Mode::kDuplicateIndex: {
        json a = Answer(input, false);
        for (json& item : a["data"]) item["index"] = 0;
        res.set_content(a.dump(), "application/json");
        return;
      }
    }
  }

  static json Answer(const std::vector<std::string>& input, bool in_order) {
    json data = json::array();
    for (size_t i = 0; i < input.size(); ++i) {
      json item = {{"object", "embedding"}, {"embedding", ServerVector(input[i])}};
      if (!in_order) item["index"] = i;
      data.push_back(item);
    }
    if (!in_order) std::reverse(data.begin(), data.end());
    return json{{"object", "list"}, {"data", data}, {"model", "m"}};
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;

  std::mutex mu_;
  Mode mode_ = Mode::kOk;
  int remaining_ = -1;
  std::vector<std::vector<std::string>> inputs_;
  std::string authorization_;
  std::string model_;
};

class HttpProviderTest : public ::testing::Test {
 protected:
  HttpEmbeddingOptions Options() {
    HttpEmbeddingOptions o;
    o.url = server_.url();
    o.model = "test-embed-small";
    o.api_key = kApiKey;
    o.dimension = kDim;
    o.batch_size = 2;
    o.timeout = milliseconds(2'000);  // generous: the machine may be busy
    o.max_retries = 2;
    o.backoff = milliseconds(1);
    o.breaker_failure_threshold = 3;
    o.breaker_open_for = milliseconds(30'000);
    return o;
  }

  std::unique_ptr<EmbeddingProvider> Make(const HttpEmbeddingOptions& o) {
    Result<std::unique_ptr<EmbeddingProvider>> p = MakeHttpProvider(o, clock_);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *std::move(p) : nullptr;
  }

  static Result<std::vector<std::vector<float>>> Embed(EmbeddingProvider& p, std::vector<std::string> texts) {
    return p.Embed(texts, EmbedPurpose::kDocument);
  }

  FakeEmbeddingServer server_;
  FakeClock clock_;
};

TEST_F(HttpProviderTest, EmbedsInBatchesInOrderAndNormalises) {
  auto p = Make(Options());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->Space(), (EmbeddingSpace{"http", "test-embed-small", kDim}));
  std::vector<std::string> texts = {"first text", "second text", "third text", "fourth text", "fifth text"};
  Result<std::vector<std::vector<float>>> r = p->Embed(texts, EmbedPurpose::kDocument);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 5u);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<float> want = Normalised(ServerVector(texts[i]));
    ASSERT_EQ((*r)[i].size(), static_cast<size_t>(kDim));
    for (int j = 0; j < kDim; ++j) EXPECT_NEAR((*r)[i][j], want[j], 1e-6) << i << "," << j;
  }
  // batch_size 2: three requests, with the texts in order.
  EXPECT_EQ(server_.inputs(), (std::vector<std::vector<std::string>>{
                                  {"first text", "second text"}, {"third text", "fourth text"}, {"fifth text"}}));
  EXPECT_EQ(server_.last_authorization(), std::string("Bearer ") + kApiKey);
  EXPECT_EQ(server_.last_model(), "test-embed-small");
  EmbeddingHealth h = p->Health();
  EXPECT_EQ(h.requests, 3);
  EXPECT_EQ(h.failures, 0);
  EXPECT_TRUE(h.available);
  EXPECT_EQ(h.breaker, BreakerState::kClosed);
  EXPECT_EQ(h.last_error, "");
}

TEST_F(HttpProviderTest, AnswersWithoutIndexAreTakenInOrder) {
  server_.Set(Mode::kOkNoIndex);
  auto p = Make(Options());
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"alpha one", "beta two"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NEAR((*r)[1][0], Normalised(ServerVector("beta two"))[0], 1e-6);
}

TEST_F(HttpProviderTest, WordlessTextsAreZeroAndNeverSent) {
  auto p = Make(Options());
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"", "the of", "real words here", "  !! "});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0], std::vector<float>(kDim, 0.0f));
  EXPECT_EQ((*r)[1], std::vector<float>(kDim, 0.0f));
  EXPECT_EQ((*r)[3], std::vector<float>(kDim, 0.0f));
  EXPECT_EQ(server_.inputs(), (std::vector<std::vector<std::string>>{{"real words here"}}));
  // Nothing to send: no request at all.
  ASSERT_TRUE(Embed(*p, {"", "a"}).ok());
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(HttpProviderTest, CachedTextsSkipTheNetwork) {
  auto p = Make(Options());
  auto first = Embed(*p, {"cache me", "and more"});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(server_.requests(), 1);
  auto second = Embed(*p, {"cache me", "and more"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(server_.requests(), 1);
  EXPECT_EQ(*first, *second);
  // Only the new text goes out; a text repeated within one call goes out once.
  ASSERT_TRUE(Embed(*p, {"and more", "new one", "new one"}).ok());
  EXPECT_EQ(server_.inputs().back(), (std::vector<std::string>{"new one"}));
  EmbeddingHealth h = p->Health();
  EXPECT_EQ(h.cache_hits, 3);
  EXPECT_EQ(h.cache_misses, 3);
}

TEST_F(HttpProviderTest, CacheIsBoundedAndCanBeOff) {
  HttpEmbeddingOptions o = Options();
  o.cache_entries = 2;
  auto p = Make(o);
  ASSERT_TRUE(Embed(*p, {"one one", "two two"}).ok());
  ASSERT_TRUE(Embed(*p, {"three three"}).ok());  // evicts "one one"
  int before = server_.requests();
  ASSERT_TRUE(Embed(*p, {"two two", "three three"}).ok());
  EXPECT_EQ(server_.requests(), before);
  ASSERT_TRUE(Embed(*p, {"one one"}).ok());
  EXPECT_EQ(server_.requests(), before + 1);

  o.cache_entries = 0;
  auto uncached = Make(o);
  ASSERT_TRUE(Embed(*uncached, {"same text"}).ok());
  ASSERT_TRUE(Embed(*uncached, {"same text"}).ok());
  EXPECT_EQ(server_.requests(), before + 3);
}

TEST_F(HttpProviderTest, ServerErrorsAreRetriedWithBackoff) {
  for (Mode mode : {Mode::k500, Mode::k429}) {
    server_.Set(mode, 2);
    auto p = Make(Options());
    int before = server_.requests();
    Result<std::vector<std::vector<float>>> r = Embed(*p, {"retry me please"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(server_.requests(), before + 3);
    EmbeddingHealth h = p->Health();
    EXPECT_EQ(h.requests, 3);
    EXPECT_EQ(h.failures, 2);
    EXPECT_EQ(h.breaker, BreakerState::kClosed);
  }
}

TEST_F(HttpProviderTest, GivesUpAfterMaxRetries) {
  server_.Set(Mode::k500);
  auto p = Make(Options());
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"doomed text"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("HTTP 500"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("upstream model crashed"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("3 attempts"));
  EXPECT_EQ(server_.requests(), 3);
  EXPECT_EQ(p->Health().failures, 3);
  EXPECT_THAT(p->Health().last_error, HasSubstr("HTTP 500"));
}

TEST_F(HttpProviderTest, TimeoutsAreRetriedAndReported) {
  server_.Set(Mode::kSlow);
  HttpEmbeddingOptions o = Options();
  o.timeout = milliseconds(250);
  o.max_retries = 1;
  auto p = Make(o);
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"slow text"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("timed out after 250 ms"));
  EXPECT_EQ(server_.requests(), 2);

  server_.Set(Mode::kSlow, 1);  // one slow answer, then a good one
  Result<std::vector<std::vector<float>>> ok = Embed(*p, {"slow text"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST_F(HttpProviderTest, ClientErrorsAreNotRetried) {
  server_.Set(Mode::k400);
  auto p = Make(Options());
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"too long, says the server"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("HTTP 400"));
  EXPECT_EQ(server_.requests(), 1);

  server_.Set(Mode::k401EchoKey);
  r = Embed(*p, {"bad key"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("HTTP 401"));
  EXPECT_EQ(server_.requests(), 2);
}

TEST_F(HttpProviderTest, MalformedAnswersAreDataLossAndNotRetried) {
  struct Case {
    Mode mode;
    const char* says;
  };
  const Case cases[] = {
      {Mode::kGarbage, "not JSON"},
      {Mode::kTruncated, "not JSON"},
      {Mode::kHtml, "Content-Type text/html"},
      {Mode::kWrongDimension, "expected dimension 8"},
      {Mode::kNonNumber, "non-number"},
      {Mode::kMissingData, "no \"data\" array"},
      {Mode::kWrongCount, "1 embeddings for 2 inputs"},
      {Mode::kDuplicateIndex, "appears twice"},
  };
  for (const Case& c : cases) {
    server_.Set(c.mode);
    auto p = Make(Options());
    int before = server_.requests();
    Result<std::vector<std::vector<float>>> r = Embed(*p, {"some text", "other text"});
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.says));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("malformed answer"));
    EXPECT_EQ(server_.requests(), before + 1) << c.says;
    // Nothing of a bad answer is cached.
    server_.Set(Mode::kOk);
    ASSERT_TRUE(Embed(*p, {"some text", "other text"}).ok());
    EXPECT_EQ(server_.requests(), before + 2);
  }
}

TEST_F(HttpProviderTest, ConnectionRefusedIsUnavailable) {
  std::string url;
  {
    FakeEmbeddingServer gone;
    url = gone.url();
  }
  HttpEmbeddingOptions o = Options();
  o.url = url;
  auto p = Make(o);
  Result<std::vector<std::vector<float>>> r = Embed(*p, {"anyone there"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("3 attempts"));
  EXPECT_EQ(p->Health().failures, 3);
}

TEST_F(HttpProviderTest, BreakerOpensFailsFastProbesAndRecovers) {
  HttpEmbeddingOptions o = Options();
  o.max_retries = 0;
  auto p = Make(o);
  ASSERT_TRUE(Embed(*p, {"cached before the outage"}).ok());
  server_.Set(Mode::k500);
  int before = server_.requests();
  for (int i = 0; i < 3; ++i) {
    Result<std::vector<std::vector<float>>> r = Embed(*p, {"call " + std::to_string(i)});
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("HTTP 500"));
  }
  EXPECT_EQ(server_.requests(), before + 3);

  // Open: fails at once, sends nothing.
  Result<std::vector<std::vector<float>>> fast = Embed(*p, {"while open"});
  ASSERT_FALSE(fast.ok());
  EXPECT_EQ(fast.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fast.status().message(),
            "embedding provider unavailable: circuit open (3 consecutive failures; retry in 30s)");
  EXPECT_EQ(server_.requests(), before + 3);
  EmbeddingHealth h = p->Health();
  EXPECT_FALSE(h.available);
  EXPECT_EQ(h.breaker, BreakerState::kOpen);
  EXPECT_THAT(h.last_error, HasSubstr("circuit open"));
  // Cached texts are still served.
  EXPECT_TRUE(Embed(*p, {"cached before the outage"}).ok());

  // Half-open after the pause: one probe goes out; it fails and the breaker re-opens.
  clock_.Advance(milliseconds(30'000));
  EXPECT_EQ(p->Health().breaker, BreakerState::kHalfOpen);
  EXPECT_TRUE(p->Health().available);
  Result<std::vector<std::vector<float>>> probe = Embed(*p, {"probe one"});
  ASSERT_FALSE(probe.ok());
  EXPECT_THAT(std::string(probe.status().message()), HasSubstr("HTTP 500"));
  EXPECT_EQ(server_.requests(), before + 4);
  EXPECT_EQ(p->Health().breaker, BreakerState::kOpen);
  EXPECT_THAT(std::string(Embed(*p, {"still open"}).status().message()),
              HasSubstr("circuit open (4 consecutive failures; retry in 30s)"));
  EXPECT_EQ(server_.requests(), before + 4);

  // The server recovers; the next probe closes the breaker.
  server_.Set(Mode::kOk);
  clock_.Advance(milliseconds(30'000));
  Result<std::vector<std::vector<float>>> recovered = Embed(*p, {"probe two", "and more", "and even more"});
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(p->Health().breaker, BreakerState::kClosed);
  EXPECT_TRUE(p->Health().available);
  EXPECT_TRUE(Embed(*p, {"business as usual"}).ok());
}

TEST_F(HttpProviderTest, GarbageAndTimeoutsOpenTheBreakerToo) {
  HttpEmbeddingOptions o = Options();
  o.max_retries = 0;
  o.timeout = milliseconds(250);
  o.breaker_failure_threshold = 2;
  auto p = Make(o);
  server_.Set(Mode::kGarbage);
  EXPECT_EQ(Embed(*p, {"one text"}).status().code(), StatusCode::kDataLoss);
  server_.Set(Mode::kSlow);
  EXPECT_EQ(Embed(*p, {"two text"}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(p->Health().breaker, BreakerState::kOpen);
  EXPECT_THAT(std::string(Embed(*p, {"three text"}).status().message()), HasSubstr("circuit open"));
}

TEST_F(HttpProviderTest, InputErrorsDoNotOpenTheBreaker) {
  HttpEmbeddingOptions o = Options();
  o.breaker_failure_threshold = 1;
  auto p = Make(o);
  server_.Set(Mode::k400);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Embed(*p, {"too long"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p->Health().breaker, BreakerState::kClosed);
}

TEST_F(HttpProviderTest, TheApiKeyNeverAppearsInAnyError) {
  std::vector<std::string> messages;
  for (Mode mode : {Mode::k401EchoKey, Mode::k500EchoKey, Mode::kGarbage, Mode::kSlow, Mode::k400}) {
    server_.Set(mode);
    HttpEmbeddingOptions o = Options();
    o.timeout = milliseconds(250);
    o.max_retries = 0;
    o.breaker_failure_threshold = 1;
    auto p = Make(o);
    Result<std::vector<std::vector<float>>> r = Embed(*p, {"leak test"});
    ASSERT_FALSE(r.ok());
    messages.push_back(r.status().ToString());
    messages.push_back(p->Health().last_error);
    messages.push_back(Embed(*p, {"again"}).status().ToString());  // breaker open (or 400 again)
  }
  for (const std::string& m : messages) {
    EXPECT_THAT(m, Not(HasSubstr(kApiKey))) << m;
    EXPECT_THAT(m, Not(HasSubstr("SECRET"))) << m;
  }
  // The echoing server did see the key (so the test would catch a leak).
  EXPECT_EQ(server_.last_authorization(), std::string("Bearer ") + kApiKey);
  EXPECT_THAT(messages[0], HasSubstr("[redacted]"));

  // Bad options never echo it either.
  HttpEmbeddingOptions bad = Options();
  bad.api_key = std::string(kApiKey) + "\n";
  Result<std::unique_ptr<EmbeddingProvider>> p = MakeHttpProvider(bad, clock_);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().ToString(), Not(HasSubstr("SECRET")));
}

TEST_F(HttpProviderTest, ConcurrentCallersShareTheProvider) {
  HttpEmbeddingOptions o = Options();
  o.batch_size = 4;
  auto p = Make(o);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::vector<std::string> texts;
        for (int k = 0; k < 5; ++k) texts.push_back("thread " + std::to_string(t) + " text " + std::to_string(i * 5 + k));
        Result<std::vector<std::vector<float>>> r = p->Embed(texts, EmbedPurpose::kQuery);
        if (!r.ok() || r->size() != texts.size()) {
          ++bad;
          continue;
        }
        for (size_t k = 0; k < texts.size(); ++k) {
          if (std::fabs((*r)[k][0] - Normalised(ServerVector(texts[k]))[0]) > 1e-6) ++bad;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(server_.requests(), 4 * 20 * 2);
}

TEST(HttpProviderOptionsTest, BadOptionsAreRejectedByName) {
  FakeClock clock;
  HttpEmbeddingOptions good;
  good.url = "http://127.0.0.1:9/v1/embeddings";
  good.model = "m";
  good.dimension = 16;
  ASSERT_TRUE(MakeHttpProvider(good, clock).ok());
  struct Case {
    void (*change)(HttpEmbeddingOptions&);
    const char* field;
  };
  const Case cases[] = {
      {[](HttpEmbeddingOptions& o) { o.url = ""; }, "url"},
      {[](HttpEmbeddingOptions& o) { o.url = "ftp://host/x"; }, "url"},
      {[](HttpEmbeddingOptions& o) { o.url = "http://host/a b"; }, "url"},
      {[](HttpEmbeddingOptions& o) { o.model = ""; }, "model"},
      {[](HttpEmbeddingOptions& o) { o.dimension = 0; }, "dimension"},
      {[](HttpEmbeddingOptions& o) { o.batch_size = 0; }, "batch_size"},
      {[](HttpEmbeddingOptions& o) { o.timeout = milliseconds(0); }, "timeout"},
      {[](HttpEmbeddingOptions& o) { o.max_retries = -1; }, "max_retries"},
      {[](HttpEmbeddingOptions& o) { o.backoff = milliseconds(-5); }, "backoff"},
      {[](HttpEmbeddingOptions& o) { o.breaker_failure_threshold = 0; }, "breaker_failure_threshold"},
      {[](HttpEmbeddingOptions& o) { o.breaker_open_for = milliseconds(0); }, "breaker_open_for"},
  };
  for (const Case& c : cases) {
    HttpEmbeddingOptions o = good;
    c.change(o);
    Result<std::unique_ptr<EmbeddingProvider>> p = MakeHttpProvider(o, clock);
    ASSERT_FALSE(p.ok()) << c.field;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.field));
  }
}

}  // namespace
}  // namespace engram
