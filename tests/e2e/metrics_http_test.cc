// GET /metrics end to end: engram's server wiring as `engram serve --http` builds it (the
// configured store with its LMDB cache behind the timing decorator, retrieval, learning,
// every builtin tool, API keys), served over real sockets. Tool calls go to /mcp; the
// test scrapes /metrics, parses the Prometheus text strictly, and checks the counters
// moved by exactly the calls made and agree with get_metrics and health_check.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "config/config.h"
#include "core/event_bus.h"
#include "engram/clock.h"
#include "engram/memory.h"
#include "learning/learning.h"
#include "mcp/auth.h"
#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "server/open_learning.h"
#include "server/open_retrieval.h"
#include "server/open_store.h"
#include "server/register_builtins.h"
#include "storage/timed_storage.h"
#include "testing/prometheus_text.h"
#include "testing/temp_dir.h"
#include "transport/http_transport.h"

namespace engram {
namespace {

using ::testing::StartsWith;
using mcp::Json;
using Labels = std::map<std::string, std::string>;

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.db_path = dir_.File("memory.db");
    config_.cache_enabled = true;
    Result<std::unique_ptr<StorageBackend>> opened = server::OpenStore(config_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = NewTimedStorage(*std::move(opened));
    events_ = std::make_unique<EventBus>(kQueueCapacity);
    memory_ = std::make_unique<Memory>(*store_, SystemClock(), events_.get());
    Result<std::unique_ptr<server::RetrievalStack>> retrieval = server::OpenRetrieval(config_, *store_, SystemClock());
    ASSERT_TRUE(retrieval.ok()) << retrieval.status().ToString();
    retrieval_ = *std::move(retrieval);
    ASSERT_TRUE(retrieval_->OpenIndex().ok());
    retrieval_->SubscribeTo(*events_);
    const LearningOptions learning = server::LearningOptionsFromConfig(config_);
    processor_ = std::make_unique<PatternProcessor>(*store_, SystemClock(), events_.get(), learning);
    ASSERT_TRUE(RegisterBuiltinExtractors(processor_->extractors()).ok());
    ASSERT_TRUE(processor_->Start().ok());

    mcp::ServerOptions options;
    options.disclose_all = true;
    server_ = std::make_unique<mcp::McpServer>(options);
    server::Builtins builtins{.memory = *memory_,
                              .storage = *store_,
                              .retriever = retrieval_->retriever(),
                              .events = events_.get(),
                              .embedding_provider = retrieval_->ProviderName(),
                              .learning = learning,
                              .processor = processor_.get(),
                              .event_queue_capacity = kQueueCapacity};
    builtins.sandbox.sandbox.helper_path = ENGRAM_SANDBOX_HELPER;
    Status registered = server::RegisterBuiltins(*server_, builtins);
    ASSERT_TRUE(registered.ok()) << registered.ToString();

    Result<mcp::ApiKeyStore> keys = mcp::ApiKeyStore::Load(dir_.File("api_keys.json"));
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    keys_ = std::make_unique<mcp::ApiKeyStore>(*std::move(keys));
    Result<mcp::CreatedKey> created = keys_->Create("metrics-test", {});
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    key_ = created->key;

    transport::HttpOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.keys = keys_.get();
    http.metrics = server::PrometheusMetricsFor(*server_, builtins);
    transport_ = std::make_unique<transport::HttpTransport>(*server_, http);
    ASSERT_TRUE(transport_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", transport_->port());
    client_->set_read_timeout(std::chrono::seconds(60));
    Initialize();
  }

  void TearDown() override {
    if (transport_) transport_->Stop();
    if (events_) events_->Flush();
    if (processor_) processor_->Stop();
  }

  httplib::Headers AuthHeaders() const { return {{"X-API-Key", key_}}; }

  // One JSON-RPC request over POST /mcp; returns the response message.
  Json Rpc(const std::string& method, Json params) {
    Json request = {{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", std::move(params)}};
    httplib::Headers headers = AuthHeaders();
    headers.emplace("Accept", "application/json, text/event-stream");
    if (!session_id_.empty()) headers.emplace("Mcp-Session-Id", session_id_);
    auto res = client_->Post("/mcp", headers, request.dump(), "application/json");
    EXPECT_TRUE(res) << method;
    if (!res) return Json::object();
    EXPECT_EQ(res->status, 200) << res->body;
    if (res->has_header("Mcp-Session-Id")) session_id_ = res->get_header_value("Mcp-Session-Id");
    std::string body = res->body;
    if (res->get_header_value("Content-Type").starts_with("text/event-stream")) {
      // The last `data:` line carries the response.
      size_t at = body.rfind("data: ");
      body = at == std::string::npos ? "" : body.substr(at + 6, body.find('\n', at) - at - 6);
    }
    std::optional<Json> reply = mcp::ParseJson(body);
    EXPECT_TRUE(reply.has_value()) << body;
    return reply.value_or(Json::object());
  }

  void Initialize() {
    Json init = Rpc("initialize", {{"protocolVersion", "2025-11-25"},
                                   {"capabilities", Json::object()},
                                   {"clientInfo", {{"name", "metrics-test"}, {"version", "1"}}}});
    ASSERT_TRUE(init.contains("result")) << init.dump();
    ASSERT_FALSE(session_id_.empty());
    httplib::Headers headers = AuthHeaders();
    headers.emplace("Mcp-Session-Id", session_id_);
    auto res = client_->Post("/mcp", headers, R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
                             "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 202);
  }

  // tools/call; returns the result ({content, structuredContent, isError}).
  Json Call(const std::string& tool, Json arguments) {
    Json reply = Rpc("tools/call", {{"name", tool}, {"arguments", std::move(arguments)}});
    EXPECT_TRUE(reply.contains("result")) << reply.dump();
    return reply.value("result", Json::object());
  }
  Json Ok(const std::string& tool, Json arguments) {
    Json result = Call(tool, std::move(arguments));
    EXPECT_FALSE(result.value("isError", true)) << tool << ": " << result.dump();
    return result.value("structuredContent", Json::object());
  }

  testing::ParsedMetrics Scrape() {
    auto res = client_->Get("/metrics", AuthHeaders());
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_THAT(res->get_header_value("Content-Type"), StartsWith("text/plain; version=0.0.4"));
    Result<testing::ParsedMetrics> parsed = testing::ParsePrometheusText(res->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << res->body;
    return parsed.ok() ? *std::move(parsed) : testing::ParsedMetrics{};
  }

  // Background work started by the calls (indexing, pattern extraction) has finished, so
  // two readings taken one after the other see the same store and caches.
  void Settle() {
    events_->Flush();
    processor_->WaitIdle();
    events_->Flush();
  }

  static constexpr size_t kQueueCapacity = 1000;

  testing::TempDir dir_;
  Config config_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<EventBus> events_;
  std::unique_ptr<Memory> memory_;
  std::unique_ptr<server::RetrievalStack> retrieval_;
  std::unique_ptr<PatternProcessor> processor_;
  std::unique_ptr<mcp::McpServer> server_;
  std::unique_ptr<mcp::ApiKeyStore> keys_;
  std::string key_;
  std::unique_ptr<transport::HttpTransport> transport_;
  std::unique_ptr<httplib::Client> client_;
  std::string session_id_;
  int next_id_ = 1;
};

TEST_F(MetricsHttpTest, NeedsTheApiKeyLikeMcp) {
  auto none = client_->Get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"engram\"");
  auto wrong = client_->Get("/metrics", {{"X-API-Key", "engram_000000000000_nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto bearer = client_->Get("/metrics", {{"Authorization", "Bearer " + key_}});
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200);
  EXPECT_THAT(bearer->get_header_value("Content-Type"), StartsWith("text/plain; version=0.0.4"));
  // The Host check of /mcp applies too (DNS rebinding).
  auto rebound = client_->Get("/metrics", {{"X-API-Key", key_}, {"Host", "evil.example"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
}

TEST_F(MetricsHttpTest, CountersMoveByExactlyTheCallsMade) {
  Settle();
  testing::ParsedMetrics before = Scrape();

  std::string a = Ok("create_episode", {{"task_description", "fix the flaky retry test"}, {"domain", "web-api"}})
                      .value("episode_id", "");
  Ok("create_episode", {{"task_description", "add pagination to the list endpoint"}, {"domain", "web-api"}});
  Ok("add_episode_step", {{"episode_id", a}, {"tool", "cargo"}, {"action", "ran cargo test"},
                          {"result", {{"status", "success"}}}});
  Ok("complete_episode", {{"episode_id", a}, {"outcome", "success"}});
  Ok("query_memory", {{"query", "flaky retry test"}});
  // Two that fail: one on its arguments, one in the tool.
  EXPECT_TRUE(Call("create_episode", {{"domain", "web-api"}}).value("isError", false));
  EXPECT_TRUE(Call("get_episode", {{"episode_id", "ep_does_not_exist"}}).value("isError", false));
  Settle();
  testing::ParsedMetrics after = Scrape();

  const std::map<std::pair<std::string, std::string>, double> made = {
      {{"create_episode", "ok"}, 2},     {{"create_episode", "error"}, 1}, {{"add_episode_step", "ok"}, 1},
      {{"complete_episode", "ok"}, 1},   {{"query_memory", "ok"}, 1},      {{"get_episode", "error"}, 1}};
  // Every tool/status series moved by exactly what was made (others not at all).
  ASSERT_EQ(after.families.count("engram_tool_calls_total"), 1u);
  EXPECT_EQ(after.families["engram_tool_calls_total"].type, "counter");
  for (const testing::ParsedSample& s : after.families["engram_tool_calls_total"].samples) {
    auto key = std::make_pair(s.labels.at("tool"), s.labels.at("status"));
    double expected = made.count(key) != 0 ? made.at(key) : 0;
    EXPECT_EQ(s.value - before.Value(s.name, s.labels), expected) << key.first << " " << key.second;
  }
  for (const auto& [key, n] : made) {
    EXPECT_TRUE(after.Find("engram_tool_calls_total", {{"tool", key.first}, {"status", key.second}}).has_value());
  }
  // The latency histograms counted every call, failed ones included.
  EXPECT_EQ(after.families["engram_tool_call_duration_seconds"].type, "histogram");
  EXPECT_EQ(after.Value("engram_tool_call_duration_seconds_count", {{"tool", "create_episode"}}) -
                before.Value("engram_tool_call_duration_seconds_count", {{"tool", "create_episode"}}),
            3);
  EXPECT_EQ(after.Value("engram_tool_call_duration_seconds_bucket", {{"tool", "query_memory"}, {"le", "+Inf"}}),
            1);
  // The store was timed per operation: the two episodes created, the step, the completion.
  EXPECT_EQ(after.families["engram_storage_operation_duration_seconds"].type, "histogram");
  auto storage_delta = [&](const std::string& op) {
    Labels l = {{"operation", op}};
    return after.Value("engram_storage_operation_duration_seconds_count", l) -
           before.Value("engram_storage_operation_duration_seconds_count", l);
  };
  EXPECT_EQ(storage_delta("CreateEpisode"), 2);
  EXPECT_EQ(storage_delta("AppendStep"), 1);
  EXPECT_EQ(storage_delta("CompleteEpisode"), 1);
  EXPECT_GE(storage_delta("SearchText"), 1);  // query_memory's lexical side
  // The store's counts and the queues.
  EXPECT_EQ(after.Value("engram_episodes"), 2);
  EXPECT_EQ(after.Value("engram_completed_episodes"), 1);
  EXPECT_EQ(after.Value("engram_steps"), 1);
  EXPECT_TRUE(after.Find("engram_patterns").has_value());
  EXPECT_EQ(after.Value("engram_event_queue_depth"), 0);
  EXPECT_EQ(after.Value("engram_event_queue_capacity"), kQueueCapacity);
  EXPECT_TRUE(after.Find("engram_learning_queue_depth").has_value());
  EXPECT_EQ(after.Value("engram_learning_extracted_total") - before.Value("engram_learning_extracted_total"), 1);
  EXPECT_GE(after.Value("engram_events_total", {{"result", "published"}}) -
                before.Value("engram_events_total", {{"result", "published"}}),
            1);
  EXPECT_EQ(after.Value("engram_events_total", {{"result", "dropped"}}), 0);
  // Families announced before their first sample: the sandbox ran nothing here.
  EXPECT_EQ(after.families["engram_sandbox_executions_total"].type, "counter");
  EXPECT_TRUE(after.families["engram_sandbox_executions_total"].samples.empty());
  EXPECT_EQ(after.families["engram_sandbox_violations_total"].type, "counter");
  // The hashing provider's breaker is closed.
  EXPECT_EQ(after.Find("engram_embedding_circuit_breaker_state", {{"provider", retrieval_->ProviderName()}}), 0);
  // The LMDB cache is found behind the timing decorator.
  EXPECT_TRUE(after.Find("engram_cache_hits_total", {{"cache", "lmdb"}}).has_value());
  EXPECT_TRUE(after.Find("engram_cache_misses_total", {{"cache", "retrieval"}}).has_value());
}

TEST_F(MetricsHttpTest, ScrapeAgreesWithGetMetricsAndHealthCheck) {
  std::string a = Ok("create_episode", {{"task_description", "speed up the import"}, {"domain", "cli"}})
                      .value("episode_id", "");
  Ok("complete_episode", {{"episode_id", a}, {"outcome", "failure"}, {"reason", "the import format changed"}});
  Ok("get_episode", {{"episode_id", a}});  // an LMDB cache read
  Ok("get_episode", {{"episode_id", a}});
  EXPECT_TRUE(Call("delete_episode", {{"episode_id", a}}).value("isError", false));  // no confirm
  Settle();

  testing::ParsedMetrics scraped = Scrape();
  // Nothing runs in between: get_metrics reads what the scrape read. Its own call is
  // counted once it returns, so it is not in its numbers; its request is.
  Json got = Ok("get_metrics", Json::object());

  EXPECT_EQ(scraped.Value("engram_requests_total") + 1, got["requests"].get<double>());
  ASSERT_TRUE(got["tools"].is_object());
  double calls = 0;
  for (const auto& [tool, stats] : got["tools"].items()) {
    EXPECT_EQ(scraped.Value("engram_tool_calls_total", {{"tool", tool}, {"status", "ok"}}), stats["ok"].get<double>())
        << tool;
    EXPECT_EQ(scraped.Value("engram_tool_calls_total", {{"tool", tool}, {"status", "error"}}),
              stats["errors"].get<double>())
        << tool;
    EXPECT_NEAR(scraped.Value("engram_tool_call_duration_seconds_sum", {{"tool", tool}}),
                stats["latency_sum_ms"].get<double>() / 1000, 1e-9)
        << tool;
    calls += stats["ok"].get<double>() + stats["errors"].get<double>();
  }
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(got["tool_calls"].get<double>(), calls);
  EXPECT_EQ(got["tools"]["delete_episode"]["errors"], 1);
  EXPECT_EQ(scraped.Value("engram_episodes"), got["episodes"].get<double>());
  EXPECT_EQ(scraped.Value("engram_steps"), got["steps"].get<double>());
  EXPECT_EQ(scraped.Value("engram_patterns"), got["patterns"].get<double>());
  ASSERT_TRUE(got["cache"]["enabled"].get<bool>());
  EXPECT_EQ(scraped.Value("engram_cache_hits_total", {{"cache", "lmdb"}}), got["cache"]["hits"].get<double>());
  EXPECT_EQ(scraped.Value("engram_cache_misses_total", {{"cache", "lmdb"}}), got["cache"]["misses"].get<double>());
  EXPECT_GE(got["cache"]["hits"].get<double>(), 1);
  EXPECT_EQ(scraped.Value("engram_cache_hits_total", {{"cache", "retrieval"}}),
            got["retrieval"]["cache_hits"].get<double>());
  EXPECT_EQ(scraped.Value("engram_event_queue_depth"), got["events"]["queued"].get<double>());
  EXPECT_EQ(scraped.Value("engram_learning_queue_depth"), got["learning"]["queue_depth"].get<double>());
  EXPECT_EQ(scraped.Value("engram_learning_extracted_total"), got["learning"]["extracted"].get<double>());
  for (const auto& [op, h] : got["storage_latency"].items()) {
    // get_metrics asked the store for its counts once more than the scrape saw.
    double extra = op == "Stats" ? 1 : 0;
    EXPECT_EQ(scraped.Value("engram_storage_operation_duration_seconds_count", {{"operation", op}}) + extra,
              h["count"].get<double>())
        << op;
  }
  // The latency history covers every call so far (all within this minute or the last).
  double history_calls = 0;
  for (const Json& minute : got["latency_history"]) history_calls += minute["calls"].get<double>();
  EXPECT_EQ(history_calls, calls);
  ASSERT_FALSE(got["latency_history"].empty());
  EXPECT_THAT(got["latency_history"][0]["minute"].get<std::string>(), ::testing::EndsWith(":00.000Z"));

  // health_check's metrics are the same collection: they add only get_metrics' own call.
  Json health = Ok("health_check", {{"detailed", true}});
  ASSERT_TRUE(health.contains("metrics"));
  const Json& hm = health["metrics"];
  EXPECT_EQ(hm["tool_calls"].get<double>(), calls + 1);
  EXPECT_EQ(hm["tools"]["get_metrics"]["ok"], 1);
  EXPECT_EQ(hm["episodes"], got["episodes"]);
  EXPECT_EQ(hm["cache"]["hits"], got["cache"]["hits"]);
  EXPECT_EQ(hm["events"]["queued"], got["events"]["queued"]);
}

TEST_F(MetricsHttpTest, SandboxRunsAndViolationsAreCounted) {
  testing::ParsedMetrics before = Scrape();
  // Rejected by static analysis before running: one run that reached the sandbox, with
  // one violation.
  Json result = Call("execute_code", {{"code", "const fs = require('fs');"}, {"language", "javascript"}});
  testing::ParsedMetrics after = Scrape();
  const Labels js = {{"language", "javascript"}};
  if (result.value("isError", false)) {
    // This host cannot sandbox: nothing reached the sandbox, nothing is counted.
    EXPECT_EQ(after.Value("engram_sandbox_executions_total", js), before.Value("engram_sandbox_executions_total", js));
    GTEST_SKIP() << "this host cannot sandbox: " << result.dump();
  }
  const Json& out = result["structuredContent"];
  ASSERT_FALSE(out["violations"].empty()) << out.dump();
  EXPECT_EQ(after.Value("engram_sandbox_executions_total", js) - before.Value("engram_sandbox_executions_total", js),
            1);
  double violations = 0;
  for (const testing::ParsedSample& s : after.families["engram_sandbox_violations_total"].samples) {
    violations += s.value - before.Value(s.name, s.labels);
  }
  EXPECT_EQ(violations, static_cast<double>(out["violations"].size()));
  std::string kind = out["violations"][0]["kind"];
  EXPECT_GE(after.Value("engram_sandbox_violations_total", {{"kind", kind}}), 1);
  Json got = Ok("get_metrics", Json::object());
  EXPECT_EQ(got["sandbox"]["executions"]["javascript"].get<double>(),
            after.Value("engram_sandbox_executions_total", js));
}

}  // namespace
}  // namespace engram
