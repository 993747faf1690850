// `engram serve --http` on a Turso store: two servers (two hosts, each with an LMDB cache
// folder of its own) on one tursodb of the test's own, driven over MCP. An episode stored,
// stepped and completed through one is returned at once by the other although it had the
// episode cached (the cache checks the store's generation before serving a copy), query_memory
// finds it on both, and the learning pipeline's patterns land in the Turso store. The auth
// token (ENGRAM_TURSO_TOKEN) never shows in a server's log.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/serve_process.h"
#include "testing/temp_dir.h"
#include "testing/turso_server.h"

namespace engram {
namespace {

using nlohmann::json;

constexpr const char* kToken = "turso-e2e-secret-token-4f1c9a";

std::string OutcomeType(const json& episode) {
  const json outcome = episode.value("outcome", json());
  return outcome.is_object() ? outcome.value("type", "") : "";
}

class TursoServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string binary = testing::TursoBinary();
    if (binary.empty() || !std::filesystem::exists(binary)) {
      if (testing::TursoRequired()) GTEST_FAIL() << "no tursodb binary at \"" << binary << "\": run scripts/install-deps";
      GTEST_SKIP() << "\n*** SKIPPED: no tursodb binary at \"" << binary << "\": run scripts/install-deps ***\n";
    }
    auto server = testing::TursoServer::Start(dir_.File("memory.db"));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    turso_ = *std::move(server);
    const std::vector<std::string> env = {"ENGRAM_STORE=" + turso_->url(), std::string("ENGRAM_TURSO_TOKEN=") + kToken,
                                          "ENGRAM_TOOLS_DISCLOSURE=all", "ENGRAM_LOG_LEVEL=debug"};
    // One after the other: the first creates the schema, the second finds it.
    a_ = std::make_unique<testing::ServeProcess>(ENGRAM_BINARY, dir_.File("host-a"), env);
    ASSERT_GT(a_->port(), 0) << "host A did not start:\n" << a_->Stderr();
    b_ = std::make_unique<testing::ServeProcess>(ENGRAM_BINARY, dir_.File("host-b"), env);
    ASSERT_GT(b_->port(), 0) << "host B did not start:\n" << b_->Stderr();
    client_a_ = std::make_unique<testing::HttpMcpClient>(a_->port());
    client_b_ = std::make_unique<testing::HttpMcpClient>(b_->port());
    ASSERT_TRUE(client_a_->Initialize()) << a_->Stderr();
    ASSERT_TRUE(client_b_->Initialize()) << b_->Stderr();
  }

  static int64_t CacheHits(testing::HttpMcpClient& client) {
    json metrics = client.Call("get_metrics", json::object());
    EXPECT_EQ(metrics["cache"].value("enabled", false), true) << "no LMDB cache in front of Turso: " << metrics.dump();
    return metrics["cache"].value("hits", int64_t{0});
  }

  // Reads `id` through `reader` until one read is served from its cache (a deadline, not a
  // speed check); every read must satisfy `check`.
  static void ReadUntilCached(testing::HttpMcpClient& reader, const std::string& id,
                              const std::function<void(const json&)>& check) {
    const int64_t before = CacheHits(reader);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      json got = reader.Call("get_episode", {{"episode_id", id}});
      check(got["episode"]);
      if (::testing::Test::HasFailure()) return;
      if (CacheHits(reader) > before) return;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "no read of " << id << " was served from the cache in 30 s";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TursoServer> turso_;
  std::unique_ptr<testing::ServeProcess> a_, b_;
  std::unique_ptr<testing::HttpMcpClient> client_a_, client_b_;
};

TEST_F(TursoServeTest, StoreCompleteQueryAndPatternsAcrossTwoServers) {
  testing::HttpMcpClient& a = *client_a_;
  testing::HttpMcpClient& b = *client_b_;
  json created = a.Call("create_episode", {{"task_description", "Flaky retry test in the billing worker"},
                                           {"domain", "billing"},
                                           {"task_type", "debugging"},
                                           {"language", "go"}});
  const std::string id = created.value("episode_id", "");
  ASSERT_FALSE(id.empty()) << created.dump() << a_->Stderr();
  a.Call("add_episode_step", {{"episode_id", id},
                              {"tool", "bash"},
                              {"action", "go test ./billing/retry/..."},
                              {"result", {{"status", "error"}, {"message", "TestRetryBackoff timed out"}}}});

  // B caches the episode in progress.
  ReadUntilCached(b, id, [&](const json& e) {
    EXPECT_EQ(e.value("episode_id", ""), id) << e.dump();
    EXPECT_EQ(e["steps"].size(), 1u) << e.dump();
    EXPECT_EQ(OutcomeType(e), "") << e.dump();
  });
  if (HasFailure()) return;

  // A moves it on; B's very next read returns the new state, not its cached copy.
  a.Call("add_episode_step", {{"episode_id", id},
                              {"tool", "edit_file"},
                              {"action", "inject a fake clock into the retry backoff"},
                              {"result", {{"status", "success"}}}});
  a.Call("add_episode_step", {{"episode_id", id},
                              {"tool", "bash"},
                              {"action", "go test ./billing/retry/..."},
                              {"result", {{"status", "success"}}}});
  json done = a.Call("complete_episode", {{"episode_id", id},
                                          {"outcome", "success"},
                                          {"verdict", "the retry test no longer depends on wall time"},
                                          {"verification", {{"tests_passed", 9}, {"tests_failed", 0}, {"build_ok", true}}}});
  ASSERT_FALSE(done.empty()) << a_->Stderr();
  json now = b.Call("get_episode", {{"episode_id", id}})["episode"];
  EXPECT_EQ(now["steps"].size(), 3u) << now.dump();
  EXPECT_EQ(OutcomeType(now), "success") << now.dump();
  // And B serves the new copy from its cache afterwards.
  ReadUntilCached(b, id, [&](const json& e) {
    EXPECT_EQ(e["steps"].size(), 3u) << e.dump();
    EXPECT_EQ(OutcomeType(e), "success") << e.dump();
  });

  // query_memory finds it through either server (the engram-maintained full-text index).
  for (testing::HttpMcpClient* client : {&a, &b}) {
    json found = client->Call("query_memory", {{"query", "flaky retry test billing"}, {"domain", "billing"}, {"limit", 5}});
    bool hit = false;
    for (const json& e : found.value("episodes", json::array())) {
      if (e.value("episode_id", "") == id) hit = true;
    }
    EXPECT_TRUE(hit) << "query_memory: " << found.dump();
  }

  // The learning pipeline extracts patterns from the completed episode into the Turso store;
  // the other server sees them (wait for the background worker: a deadline, not a speed check).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t patterns = 0;
  json analysis;
  while (patterns == 0 && std::chrono::steady_clock::now() < deadline) {
    analysis = b.Call("analyze_patterns", json::object());
    for (const json& t : analysis.value("types", json::array())) patterns += t.value("count", int64_t{0});
    if (patterns == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(patterns, 0) << "no pattern reached the Turso store in 60 s: " << analysis.dump() << "\n" << a_->Stderr();
  json search = b.Call("search_patterns", {{"query", "retry test"}});
  EXPECT_FALSE(search.value("patterns", json::array()).empty()) << search.dump();

  // The token never reaches a log line.
  EXPECT_EQ(a_->Stop(), 0) << a_->Stderr();
  EXPECT_EQ(b_->Stop(), 0) << b_->Stderr();
  EXPECT_EQ(a_->Stderr().find(kToken), std::string::npos);
  EXPECT_EQ(b_->Stderr().find(kToken), std::string::npos);
}

}  // namespace
}  // namespace engram
