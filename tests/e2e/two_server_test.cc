// Many hosts on one PostgreSQL: two `engram serve --http 127.0.0.1:0` processes, each with
// a cache folder of its own (XDG_CACHE_HOME), stand in for two machines sharing one store.
// What one writes, the other returns at once, from get_episode and from query_memory,
// although it had the episode cached: the caches are kept true through LISTEN/NOTIFY. Each
// server's get_metrics shows it did serve from its cache (a server that never invalidated
// would then return the old copy, and one whose listener never ran would never hit).
// Needs ENGRAM_TEST_PG (a schema per test) and skips loudly without it.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/postgres.h"
#include "testing/serve_process.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using nlohmann::json;

// `conninfo` (URL or key=value) as a postgresql:// URL, the form storage.url takes.
std::string AsPostgresUrl(const std::string& conninfo) {
  if (conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://")) return conninfo;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
  std::string url = "postgresql://?";
  bool first = true;
  for (PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (!first) url += '&';
    first = false;
    url += o->keyword;
    url += '=';
    for (unsigned char c : std::string(o->val)) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        url += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof(hex), "%%%02X", c);
        url += hex;
      }
    }
  }
  PQconninfoFree(options);
  return url;
}

// The outcome type of a get_episode episode, "" while it is in progress.
std::string OutcomeType(const json& episode) {
  const json outcome = episode.value("outcome", json());
  return outcome.is_object() ? outcome.value("type", "") : "";
}

class TwoServerTest : public ::testing::Test {
 protected:
  static std::vector<std::string> ServerEnv(const std::string& store_url) {
    return {"ENGRAM_STORE=" + store_url, "ENGRAM_TOOLS_DISCLOSURE=all", "ENGRAM_LOG_LEVEL=warn"};
  }

  void SetUp() override {
    if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::kPgSkipMessage;
    Result<std::string> conninfo = testing::TestPgSchema(dir_.path());
    ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
    const std::string url = AsPostgresUrl(*conninfo);
    // One after the other: the first creates the schema's tables, the second finds them.
    a_ = std::make_unique<testing::ServeProcess>(ENGRAM_BINARY, dir_.File("host-a"), ServerEnv(url));
    ASSERT_GT(a_->port(), 0) << "host A did not start:\n" << a_->Stderr();
    b_ = std::make_unique<testing::ServeProcess>(ENGRAM_BINARY, dir_.File("host-b"), ServerEnv(url));
    ASSERT_GT(b_->port(), 0) << "host B did not start:\n" << b_->Stderr();
    client_a_ = std::make_unique<testing::HttpMcpClient>(a_->port());
    client_b_ = std::make_unique<testing::HttpMcpClient>(b_->port());
    ASSERT_TRUE(client_a_->Initialize()) << a_->Stderr();
    ASSERT_TRUE(client_b_->Initialize()) << b_->Stderr();
  }

  static int64_t CacheHits(testing::HttpMcpClient& client) {
    json metrics = client.Call("get_metrics", json::object());
    EXPECT_EQ(metrics["cache"].value("enabled", false), true) << "no LMDB cache in front of PostgreSQL: "
                                                              << metrics.dump();
    return metrics["cache"].value("hits", int64_t{0});
  }

  // Reads `id` through `reader` until one read is served from its cache (a deadline for a
  // broken listener, not a speed check); every read, cached or not, must satisfy `check`.
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

  // One episode's life with `writer` writing and `reader` caching it in between: what
  // the writer acknowledges, the reader's next read returns.
  void WriteThroughOneReadThroughTheOther(testing::HttpMcpClient& writer, testing::HttpMcpClient& reader, const std::string& task,
                                          const std::string& query) {
    json created = writer.Call("create_episode", {{"task_description", task},
                                                  {"domain", "payments"},
                                                  {"task_type", "debugging"},
                                                  {"language", "go"}});
    const std::string id = created.value("episode_id", "");
    ASSERT_FALSE(id.empty()) << created.dump();
    writer.Call("add_episode_step",
                {{"episode_id", id}, {"tool", "bash"}, {"action", "go test ./pool/..."},
                 {"result", {{"status", "error"}, {"message", "deadline exceeded waiting for a connection"}}}});

    // The reader caches the episode as it is now.
    ReadUntilCached(reader, id, [&](const json& e) {
      EXPECT_EQ(e.value("episode_id", ""), id);
      EXPECT_EQ(e["steps"].size(), 1u) << e.dump();
      EXPECT_EQ(OutcomeType(e), "") << e.dump();
    });
    if (HasFailure()) return;

    // The writer moves it on; the reader's very next read (no wait) sees it.
    writer.Call("add_episode_step", {{"episode_id", id},
                                     {"tool", "edit_file"},
                                     {"action", "raised the pool size and added an acquire timeout"},
                                     {"result", {{"status", "success"}}}});
    writer.Call("complete_episode", {{"episode_id", id},
                                     {"outcome", "success"},
                                     {"verdict", "the pool no longer starves under load"},
                                     {"verification", {{"tests_passed", 12}, {"tests_failed", 0}, {"build_ok", true}}}});
    json now = reader.Call("get_episode", {{"episode_id", id}})["episode"];
    EXPECT_EQ(now["steps"].size(), 2u) << now.dump();
    EXPECT_EQ(OutcomeType(now), "success") << now.dump();

    // Once its listener caught up the reader serves the episode from its cache again, and
    // the cached copy is the new one (a cache that was never invalidated fails here).
    ReadUntilCached(reader, id, [&](const json& e) {
      EXPECT_EQ(e["steps"].size(), 2u) << e.dump();
      EXPECT_EQ(OutcomeType(e), "success") << e.dump();
    });

    // And the reader's query_memory finds what the writer completed.
    json found = reader.Call("query_memory", {{"query", query}, {"domain", "payments"}, {"limit", 5}});
    bool hit = false;
    for (const json& e : found.value("episodes", json::array())) {
      if (e.value("episode_id", "") == id) {
        hit = true;
        EXPECT_EQ(e.value("outcome", ""), "success") << e.dump();
      }
    }
    EXPECT_TRUE(hit) << "query_memory on the other host: " << found.dump();
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServeProcess> a_, b_;
  std::unique_ptr<testing::HttpMcpClient> client_a_, client_b_;
};

TEST_F(TwoServerTest, WhatOneHostWritesTheOtherReadsAtOnce) {
  WriteThroughOneReadThroughTheOther(*client_a_, *client_b_, "Connection pool starvation in the payments API",
                                     "connection pool starvation payments");
  WriteThroughOneReadThroughTheOther(*client_b_, *client_a_, "Ledger reconciliation job double counts refunds",
                                     "ledger reconciliation refunds double counts");
  // The caches are separate folders, one per host.
  EXPECT_TRUE(std::filesystem::exists(dir_.File("host-a/cache/engram")));
  EXPECT_TRUE(std::filesystem::exists(dir_.File("host-b/cache/engram")));
  // Both shut down cleanly on SIGTERM, their listeners stopped.
  EXPECT_EQ(a_->Stop(), 0) << a_->Stderr();
  EXPECT_EQ(b_->Stop(), 0) << b_->Stderr();
}

}  // namespace
}  // namespace engram
