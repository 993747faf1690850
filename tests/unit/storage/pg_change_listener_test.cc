// PostgreSQL change notifications: what every write transaction announces (payload
// splitting needs no server), and the PostgresChangeListener against a real server: the ids
// of each kind of write arrive after commit and only then, a terminated connection is
// reconnected and reported so the consumer clears its cache, and Stop ends the thread
// wherever it waits. Cases that need a server use ENGRAM_TEST_PG (a schema per test) and
// skip loudly without it.
#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/postgres_backend.h"
#include "storage/postgres/postgres_backend.h"
#include "testing/episodes.h"
#include "testing/postgres.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

// ---- Payloads (no server) ----

TEST(ChangePayloadsTest, NamesTheGenerationAndTheIds) {
  EXPECT_THAT(postgres::ChangePayloads(7, {}), ElementsAre("7"));
  std::vector<std::string> ids = {"a", "b"};
  EXPECT_THAT(postgres::ChangePayloads(42, ids), ElementsAre("42 a,b"));
}

TEST(ChangePayloadsTest, CarryTheWriterTag) {
  std::vector<std::string> ids = {"a"};
  EXPECT_THAT(postgres::ChangePayloads(42, ids, "w-1"), ElementsAre("42@w-1 a"));
  EXPECT_THAT(postgres::ChangePayloads(7, {}, "w-1"), ElementsAre("7@w-1"));
}

TEST(ChangePayloadsTest, SplitsLongListsBelowTheNotifyLimit) {
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back("0195f3a2-7c4e-7d1a-9b2c-" + std::to_string(100000000000 + i));
  std::vector<std::string> payloads = postgres::ChangePayloads(123456, ids);
  ASSERT_GE(payloads.size(), 5u);
  std::vector<std::string> seen;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const std::string& p = payloads[i];
    EXPECT_LE(p.size(), postgres::kMaxNotifyPayload);
    const std::string head = i + 1 < payloads.size() ? "123456+ " : "123456 ";
    ASSERT_EQ(p.substr(0, head.size()), head) << p.substr(0, 40);
    std::string list = p.substr(head.size());
    for (size_t start = 0; start <= list.size();) {
      size_t comma = list.find(',', start);
      seen.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  EXPECT_EQ(seen, ids);
}

TEST(ChangePayloadsTest, IdsThatCannotBeListedMeanEveryEpisode) {
  std::vector<std::string> comma = {"ok", "a,b"};
  EXPECT_THAT(postgres::ChangePayloads(3, comma), ElementsAre("3 *"));
  std::vector<std::string> huge = {std::string(postgres::kMaxNotifiedIdBytes + 1, 'x')};
  EXPECT_THAT(postgres::ChangePayloads(3, huge), ElementsAre("3 *"));
}

TEST(ChangeChannelTest, IsPerSchemaAndAValidName) {
  EXPECT_EQ(postgres::ChangeChannel("public"), "engram_changes_public");
  EXPECT_NE(postgres::ChangeChannel("team_a"), postgres::ChangeChannel("team_b"));
  std::string long_a(60, 'a'), long_b = std::string(59, 'a') + "b";
  EXPECT_LE(postgres::ChangeChannel(long_a).size(), 63u);
  EXPECT_NE(postgres::ChangeChannel(long_a), postgres::ChangeChannel(long_b));
}

// ---- The listener, on a real server ----

// Everything the listener reported, in order. Thread-safe.
class Recorder {
 public:
  PostgresChangeCallbacks Callbacks() {
    return {.on_connected = [this](int64_t g) { Push("connected " + std::to_string(g)); },
            .on_change =
                [this](const PostgresChange& c) {
                  std::lock_guard<std::mutex> lock(mu_);
                  changes_.push_back(c);
                  events_.push_back("change " + std::to_string(c.generation));
                  cv_.notify_all();
                },
            .on_disconnected = [this](const Status&) { Push("disconnected"); }};
  }

  // Waits (up to a minute: a deadline for a broken build, not a speed check) until `n`
  // events have been reported; returns them all.
  std::vector<std::string> WaitForEvents(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return events_.size() >= n; });
    return events_;
  }

  // Waits for the next change not yet taken.
  std::optional<PostgresChange> NextChange() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return taken_ < changes_.size(); });
    if (taken_ >= changes_.size()) return std::nullopt;
    return changes_[taken_++];
  }

  size_t changes() {
    std::lock_guard<std::mutex> lock(mu_);
    return changes_.size();
  }

 private:
  void Push(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
  std::vector<PostgresChange> changes_;
  size_t taken_ = 0;
};

class PgChangeListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::kPgSkipMessage;
    Result<std::string> conninfo = testing::TestPgSchema(dir_.path());
    ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
    options_.conninfo = *conninfo;
    auto store = OpenPostgresBackend(options_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
  }

  std::unique_ptr<PostgresChangeListener> Listen() {
    auto listener = OpenPostgresChangeListener(options_);
    EXPECT_TRUE(listener.ok()) << listener.status().ToString();
    return listener.ok() ? *std::move(listener) : nullptr;
  }

  // Runs `sql` on a connection of its own; "" or the error.
  static std::string Exec(const std::string& sql) {
    PGconn* conn = PQconnectdb(testing::TestPgConninfo().c_str());
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
    std::string error;
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      error = PQresultErrorMessage(r);
    }
    PQclear(r);
    PQfinish(conn);
    return error;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  PostgresOptions options_;
  std::unique_ptr<StorageBackend> store_;
  Recorder recorder_;
};

TEST_F(PgChangeListenerTest, EveryEpisodeWriteArrivesWithItsIdsAfterCommit) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  EXPECT_EQ(listener->channel(), postgres::ChangeChannel(listener->schema()));
  EXPECT_THAT(listener->schema(), ::testing::StartsWith("engram_test_"));
  Result<int64_t> g0 = store_->Generation();
  ASSERT_TRUE(g0.ok());
  listener->Start(recorder_.Callbacks());
  EXPECT_THAT(recorder_.WaitForEvents(1), ElementsAre("connected " + std::to_string(*g0)));

  auto expect_change = [&](int64_t generation, const std::vector<std::string>& ids) {
    std::optional<PostgresChange> c = recorder_.NextChange();
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->generation, generation);
    EXPECT_FALSE(c->all_episodes);
    EXPECT_THAT(c->episode_ids, UnorderedElementsAreArray(ids));
  };

  Episode e = testing::MakeEpisode(clock_, /*steps=*/0);  // in progress
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  expect_change(*g0 + 1, {e.episode_id});

  Result<int> step = store_->AppendStep(e.episode_id, testing::MakeStep(0));
  ASSERT_TRUE(step.ok()) << step.status().ToString();
  expect_change(*g0 + 2, {e.episode_id});

  Result<Episode> stored = store_->GetEpisode(e.episode_id);
  ASSERT_TRUE(stored.ok());
  Status completed = store_->CompleteEpisode(testing::Completed(*stored));
  ASSERT_TRUE(completed.ok()) << completed.ToString();
  expect_change(*g0 + 3, {e.episode_id});

  // An import large enough to need several notifications arrives as one change.
  std::vector<Episode> batch;
  std::vector<std::string> batch_ids;
  for (int i = 0; i < 300; ++i) {
    batch.push_back(testing::MakeEpisode(clock_, /*steps=*/1));
    batch_ids.push_back(batch.back().episode_id);
  }
  ASSERT_TRUE(store_->PutEpisodes(batch).ok());
  expect_change(*g0 + 4, batch_ids);

  Result<bool> deleted = store_->DeleteEpisode(e.episode_id);
  ASSERT_TRUE(deleted.ok() && *deleted);
  expect_change(*g0 + 5, {e.episode_id});

  // A write that changes no episode moves the generation all the same.
  std::vector<std::string> marked = {batch[2].episode_id};
  ASSERT_TRUE(store_->MarkExtracted(marked).ok());
  expect_change(*g0 + 6, {});

  // An extraction names the episodes whose pattern_ids it changed.
  Pattern p;
  p.pattern_id = "pattern-1";
  p.similarity_key = "bash>edit>bash";
  p.body_json = "{}";
  p.context.domain = "web-api";
  ExtractionBatch extraction;
  extraction.keys = {p.similarity_key};
  extraction.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) {
    patterns.push_back(p);
    out.episode_patterns = {{batch[2].episode_id, p.pattern_id}};
    return OkStatus();
  };
  ASSERT_TRUE(store_->CommitExtraction(extraction).ok());
  expect_change(*g0 + 7, {batch[2].episode_id});

  // A reset empties every episode's pattern_ids: every episode changed.
  ASSERT_TRUE(store_->ResetLearning().ok());
  std::optional<PostgresChange> reset = recorder_.NextChange();
  ASSERT_TRUE(reset.has_value());
  EXPECT_EQ(reset->generation, *g0 + 8);
  EXPECT_TRUE(reset->all_episodes);

  // A failed write is never announced: the next change is the next successful write.
  EXPECT_EQ(store_->CreateEpisode(batch[0]).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->DeleteEpisode(batch[1].episode_id).ok());
  expect_change(*g0 + 9, {batch[1].episode_id});
  EXPECT_EQ(store_->Generation().value_or(-1), *g0 + 9);
}

TEST_F(PgChangeListenerTest, ChangesNameTheWriterTagOfTheBackendThatMadeThem) {
  PostgresOptions tagged = options_;
  tagged.writer_tag = "host-a_1";
  auto writer = OpenPostgresBackend(tagged);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  listener->Start(recorder_.Callbacks());
  ASSERT_EQ(recorder_.WaitForEvents(1).size(), 1u);

  // Several notifications of one large write all carry it; an untagged backend's none.
  std::vector<Episode> batch;
  for (int i = 0; i < 300; ++i) batch.push_back(testing::MakeEpisode(clock_, /*steps=*/1));
  ASSERT_TRUE((*writer)->PutEpisodes(batch).ok());
  std::optional<PostgresChange> c = recorder_.NextChange();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->writer, "host-a_1");
  EXPECT_EQ(c->episode_ids.size(), batch.size());
  ASSERT_TRUE(store_->DeleteEpisode(batch[0].episode_id).ok());
  c = recorder_.NextChange();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->writer, "");
  EXPECT_THAT(c->episode_ids, ElementsAre(batch[0].episode_id));

  tagged.writer_tag = "no spaces";
  EXPECT_EQ(OpenPostgresBackend(tagged).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PgChangeListenerTest, ATerminatedConnectionIsReopenedAndReported) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  listener->Start(recorder_.Callbacks());
  ASSERT_EQ(recorder_.WaitForEvents(1).size(), 1u);
  const int pid = listener->backend_pid();
  ASSERT_GT(pid, 0);

  // A write while the listener is cut off is missed: the consumer must learn to clear.
  ASSERT_EQ(Exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")"), "");
  std::vector<std::string> events = recorder_.WaitForEvents(3);
  ASSERT_EQ(events.size(), 3u) << ::testing::PrintToString(events);
  EXPECT_EQ(events[1], "disconnected");
  Result<int64_t> generation = store_->Generation();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(events[2], "connected " + std::to_string(*generation));
  EXPECT_EQ(listener->reconnects(), 1);
  EXPECT_GT(listener->backend_pid(), 0);
  EXPECT_NE(listener->backend_pid(), pid);

  // And it listens again.
  Episode e = testing::MakeEpisode(clock_, /*steps=*/1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  std::optional<PostgresChange> c = recorder_.NextChange();
  ASSERT_TRUE(c.has_value());
  EXPECT_THAT(c->episode_ids, ElementsAre(e.episode_id));
  EXPECT_EQ(c->generation, *generation + 1);
}

TEST_F(PgChangeListenerTest, StopEndsTheThreadWhileItWaitsOnTheServer) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  listener->Start(recorder_.Callbacks());
  ASSERT_EQ(recorder_.WaitForEvents(1).size(), 1u);
  // The thread now sleeps in poll() with no timeout: only the wake fd can end it (a
  // listener that missed it would hang here until the test times out).
  listener->Stop();
  listener->Stop();  // idempotent
  Episode e = testing::MakeEpisode(clock_, /*steps=*/1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  listener.reset();
  EXPECT_EQ(recorder_.changes(), 0u);
}

TEST_F(PgChangeListenerTest, StopEndsTheThreadBetweenReconnectionAttempts) {
  auto listener = Listen();
  ASSERT_NE(listener, nullptr);
  listener->Start(recorder_.Callbacks());
  ASSERT_EQ(recorder_.WaitForEvents(1).size(), 1u);
  // With the schema gone every reconnection fails (no engram_state), so the thread keeps
  // backing off (up to 5 s per wait) until stopped.
  ASSERT_EQ(Exec("DROP SCHEMA " + listener->schema() + " CASCADE"), "");
  ASSERT_EQ(Exec("SELECT pg_terminate_backend(" + std::to_string(listener->backend_pid()) + ")"), "");
  EXPECT_THAT(recorder_.WaitForEvents(2), ElementsAre(::testing::StartsWith("connected"), "disconnected"));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // let it fail a few attempts
  listener->Stop();
  EXPECT_EQ(listener->reconnects(), 0);
  EXPECT_EQ(listener->backend_pid(), 0);
}

TEST_F(PgChangeListenerTest, BadConninfoAndMissingStoreAreClearErrors) {
  PostgresOptions bad;
  bad.conninfo = "host='unterminated";
  EXPECT_EQ(OpenPostgresChangeListener(bad).status().code(), StatusCode::kInvalidArgument);
  bad.conninfo = "";
  EXPECT_EQ(OpenPostgresChangeListener(bad).status().code(), StatusCode::kInvalidArgument);
  // A schema engram never opened has no engram_state to read the generation from.
  Result<std::string> empty = testing::TestPgSchema(dir_.path() + "/never-opened");
  ASSERT_TRUE(empty.ok());
  PostgresOptions fresh;
  fresh.conninfo = *empty;
  Result<std::unique_ptr<PostgresChangeListener>> listener = OpenPostgresChangeListener(fresh);
  EXPECT_EQ(listener.status().code(), StatusCode::kFailedPrecondition) << listener.status().ToString();
}

}  // namespace
}  // namespace engram
