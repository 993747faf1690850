// TursoBackend beyond the conformance suite (which runs every StorageBackend case on Turso):
// one HTTP request per write, invariants held under concurrent writers from two handles
// (two processes), what a database that is not ours or is newer gets, the token kept out of
// errors, the own-writes record the cache relies on, and a server killed and restarted.
// Each test runs a tursodb of its own (tests/testing/turso_server.h).
#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/ids.h"
#include "engram/clock.h"
#include "engram/turso_backend.h"
#include "storage/turso/hrana_client.h"
#include "storage/turso/turso_backend.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"
#include "testing/turso_server.h"

namespace engram {
namespace {

using testing::Completed;
using testing::MakeEpisode;
using testing::MakeStep;

class TursoBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string binary = testing::TursoBinary();
    if (binary.empty() || !std::filesystem::exists(binary)) {
      if (testing::TursoRequired()) GTEST_FAIL() << "no tursodb binary at \"" << binary << "\": run scripts/install-deps";
      GTEST_SKIP() << "\n*** SKIPPED: no tursodb binary at \"" << binary << "\": run scripts/install-deps ***\n";
    }
    auto server = testing::TursoServer::Start(dir_.File("memory.db"));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = *std::move(server);
  }

  std::unique_ptr<StorageBackend> Open() {
    TursoOptions options;
    options.url = server_->url();
    auto store = OpenTursoBackend(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Requests the backend's client has sent so far.
  static int64_t Requests(StorageBackend& store) {
    return dynamic_cast<turso::TursoBackend&>(store).client().requests_sent();
  }

  // A client of its own on the test's server, to look at or tamper with the database.
  std::unique_ptr<turso::HranaClient> RawClient() {
    turso::HranaOptions options;
    options.url = server_->url();
    auto client = turso::HranaClient::Open(options, SystemClock());
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? *std::move(client) : nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TursoServer> server_;
};

TEST_F(TursoBackendTest, EveryWriteIsOneRequest) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Clock& clock = SystemClock();
  Episode e = MakeEpisode(clock, 2);
  auto one_request = [&](const char* what, const std::function<Status()>& write) {
    const int64_t before = Requests(*store);
    Status s = write();
    EXPECT_TRUE(s.ok()) << what << ": " << s.ToString();
    EXPECT_EQ(Requests(*store) - before, 1) << what;
  };
  one_request("CreateEpisode", [&] { return store->CreateEpisode(e); });
  one_request("AppendStep", [&] { return store->AppendStep(e.episode_id, MakeStep(0)).status(); });
  e.steps.push_back(MakeStep(3));
  one_request("CompleteEpisode", [&] { return store->CompleteEpisode(Completed(e)); });
  std::vector<Episode> batch = {Completed(MakeEpisode(clock, 5)), MakeEpisode(clock, 1), Completed(MakeEpisode(clock, 0))};
  one_request("PutEpisodes", [&] { return store->PutEpisodes(batch); });
  const EmbeddingSpace space{"hashing", "hash-v1", 4};
  one_request("SetEmbeddingSpace", [&] { return store->SetEmbeddingSpace(space); });
  std::vector<EpisodeVector> vectors = {{e.episode_id, {1, 2, 3, 4}, 0}, {batch[0].episode_id, {0.5f, -1, 0, 1e-7f}, 0}};
  one_request("PutVectors", [&] { return store->PutVectors(space, vectors); });
  one_request("DeleteEpisode", [&] { return store->DeleteEpisode(batch[1].episode_id).status(); });
  // A refused write is one request too: its invariants are checked inside the batch.
  const int64_t before = Requests(*store);
  EXPECT_EQ(store->AppendStep(e.episode_id, MakeStep(0)).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Requests(*store) - before, 1);
}

TEST_F(TursoBackendTest, ConcurrentAppendsFromTwoHandlesNumberEveryStepOnce) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Episode e = MakeEpisode(SystemClock(), 0);
  ASSERT_TRUE(a->CreateEpisode(e).ok());
  constexpr int kThreads = 4, kEach = 15;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<int> numbers;
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    StorageBackend* store = t % 2 ? b.get() : a.get();
    threads.emplace_back([&, store] {
      for (int i = 0; i < kEach; ++i) {
        Result<int> n = store->AppendStep(e.episode_id, MakeStep(0));
        if (!n.ok()) {
          ++errors;
          ADD_FAILURE() << n.status().ToString();
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        numbers.push_back(*n);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<int> distinct(numbers.begin(), numbers.end());
  EXPECT_EQ(distinct.size(), numbers.size()) << "a step number was handed out twice";
  auto got = b->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->steps.size(), static_cast<size_t>(kThreads * kEach));
  for (size_t i = 0; i < got->steps.size(); ++i) EXPECT_EQ(got->steps[i].step_number, static_cast<int>(i) + 1);
  // The stored step count agrees: completing with all the steps is accepted.
  EXPECT_TRUE(a->CompleteEpisode(Completed(*got)).ok());
}

TEST_F(TursoBackendTest, RefusesADatabaseHoldingOtherTables) {
  auto raw = RawClient();
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)").ok());
  TursoOptions options;
  options.url = server_->url();
  auto store = OpenTursoBackend(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
  EXPECT_NE(store.status().message().find("invoices"), std::string_view::npos) << store.status().ToString();
  // Nothing of ours was created.
  auto tables = raw->Execute("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'episodes'");
  ASSERT_TRUE(tables.ok());
  EXPECT_EQ(*tables->Int(0, 0), 0);
}

TEST_F(TursoBackendTest, RefusesANewerSchemaAndKeepsItsData) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->SchemaVersion(), turso::kSchemaVersion);
    ASSERT_TRUE(store->CreateEpisode(MakeEpisode(SystemClock(), 1)).ok());
  }
  auto raw = RawClient();
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Execute("INSERT INTO engram_schema_migrations (version, applied_at) VALUES (99, 0)").ok());
  TursoOptions options;
  options.url = server_->url();
  auto store = OpenTursoBackend(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer engram"), std::string_view::npos) << store.status().ToString();
  auto count = raw->Execute("SELECT COUNT(*) FROM episodes");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count->Int(0, 0), 1);
}

TEST_F(TursoBackendTest, OpeningTwiceAtOnceMigratesOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      TursoOptions options;
      options.url = server_->url();
      auto store = OpenTursoBackend(options);
      if (store.ok()) ++opened; else ADD_FAILURE() << store.status().ToString();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(opened.load(), 3);
  auto raw = RawClient();
  ASSERT_NE(raw, nullptr);
  auto versions = raw->Execute("SELECT COUNT(*) FROM engram_schema_migrations");
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions->Int(0, 0), turso::kSchemaVersion);
}

TEST_F(TursoBackendTest, TheTokenStaysOutOfErrorsAndLocation) {
  const std::string token = "sekret-turso-token-77";
  TursoOptions options;
  options.url = server_->url();
  options.auth_token = token;
  auto store = OpenTursoBackend(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Location().find(token), std::string::npos);
  EXPECT_EQ((*store)->Name(), "turso");
  ASSERT_TRUE(server_->Kill().ok());
  Status down = (*store)->CreateEpisode(MakeEpisode(SystemClock(), 1));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_EQ(down.ToString().find(token), std::string::npos) << down.ToString();
  // Opening against a server that is down fails the same way.
  auto unreachable = OpenTursoBackend(options);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(unreachable.status().ToString().find(token), std::string::npos);
}

TEST_F(TursoBackendTest, BadOptionsAreInvalidArgument) {
  TursoOptions options;
  options.url = "ftp://example.com/db";
  EXPECT_EQ(OpenTursoBackend(options).status().code(), StatusCode::kInvalidArgument);
  options.url = server_->url();
  options.pool_size = 0;
  EXPECT_EQ(OpenTursoBackend(options).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsTursoUrl("libsql://memory-acme.turso.io"));
  EXPECT_TRUE(IsTursoUrl("https://memory-acme.turso.io"));
  EXPECT_TRUE(IsTursoUrl("http://127.0.0.1:8080"));
  EXPECT_FALSE(IsTursoUrl("postgresql://db/engram"));
  EXPECT_FALSE(IsTursoUrl("/home/me/memory.db"));
}

TEST_F(TursoBackendTest, OwnWritesAreToldFromOtherHandles) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const int64_t g0 = *a->Generation();
  ASSERT_TRUE(a->CreateEpisode(MakeEpisode(SystemClock(), 1)).ok());
  ASSERT_TRUE(a->CreateEpisode(MakeEpisode(SystemClock(), 1)).ok());
  const int64_t g1 = *a->Generation();
  EXPECT_EQ(g1, g0 + 2);
  EXPECT_TRUE(TursoWritesAreOwn(*a, g0, g1));
  EXPECT_FALSE(TursoWritesAreOwn(*b, g0, g1));
  ASSERT_TRUE(b->CreateEpisode(MakeEpisode(SystemClock(), 1)).ok());
  const int64_t g2 = *a->Generation();
  EXPECT_FALSE(TursoWritesAreOwn(*a, g0, g2));  // b's write is in the range
  EXPECT_TRUE(TursoWritesAreOwn(*b, g1, g2));
  EXPECT_TRUE(TursoWritesAreOwn(*a, g2, g2));   // nothing happened
  // A failed write produced no generation.
  EXPECT_FALSE(a->AppendStep("no-such-episode", MakeStep(0)).ok());
  EXPECT_EQ(*a->Generation(), g2);
}

TEST_F(TursoBackendTest, ServerKilledAndRestartedLosesNothingAcknowledged) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 5; ++i) {
    Episode e = Completed(MakeEpisode(SystemClock(), 2));
    ASSERT_TRUE(store->CreateEpisode(e).ok());
    acknowledged.push_back(e.episode_id);
  }
  ASSERT_TRUE(server_->Kill().ok());
  Status down = store->CreateEpisode(MakeEpisode(SystemClock(), 1));
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_EQ(store->GetEpisode(acknowledged[0]).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Restart().ok());
  // The breaker may hold calls off for a while after the failures: retry until it lets one
  // through (a deadline, not a speed check).
  Result<Episode> back = store->GetEpisode(acknowledged[0]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!back.ok() && back.status().code() == StatusCode::kUnavailable && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    back = store->GetEpisode(acknowledged[0]);
  }
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (const std::string& id : acknowledged) {
    auto got = store->GetEpisode(id);
    ASSERT_TRUE(got.ok()) << id << ": " << got.status().ToString();
    EXPECT_EQ(got->steps.size(), 2u);
  }
  EXPECT_TRUE(store->CreateEpisode(MakeEpisode(SystemClock(), 1)).ok());
  auto stats = store->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->episodes, 6);
  EXPECT_TRUE(store->CheckHealth().ok());
}

}  // namespace
}  // namespace engram
