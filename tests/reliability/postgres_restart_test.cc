// PostgreSQL restarted under load (issue 6, Reliability): while the server is down every
// call fails with kUnavailable and a message saying to retry; once it is back calls
// succeed again on fresh connections without reopening the store; and nothing a call
// acknowledged is lost.
//
// The test restarts a cluster of its own (scripts/pg-test-cluster in a temp folder), not
// the shared one in ENGRAM_TEST_PG, so the other PostgreSQL tests running in parallel
// are not disturbed. It still skips when ENGRAM_TEST_PG is unset: that variable is how a
// run says "a PostgreSQL server can be used here".
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/ids.h"
#include "engram/postgres_backend.h"
#include "engram/storage.h"
#include "testing/episodes.h"
#include "testing/postgres.h"

namespace engram {
namespace {

using namespace std::chrono_literals;

// Runs `scripts/pg-test-cluster CMD DIR`; returns its stdout, or nullopt if it failed.
std::optional<std::string> Cluster(const std::string& cmd, const std::string& dir) {
  std::string line = std::string(ENGRAM_PG_TEST_CLUSTER) + " " + cmd + " " + dir;
  FILE* p = popen(line.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) return std::nullopt;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// What the writers were told succeeded, per episode.
struct Acked {
  int steps = 0;  // steps in the episode as acknowledged (created with + appended)
  bool completed = false;
};

class PostgresRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::kPgSkipMessage;
    char tmpl[] = "/tmp/engram-pgr.XXXXXX";  // short: the socket path must fit 107 bytes
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::optional<std::string> conninfo = Cluster("start", dir_);
    ASSERT_TRUE(conninfo.has_value()) << "could not start a PostgreSQL cluster in " << dir_;
    conninfo_ = *conninfo;
  }

  void TearDown() override {
    if (dir_.empty()) return;
    Cluster("stop", dir_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string dir_;
  std::string conninfo_;
};

TEST_F(PostgresRestartTest, CallsFailRetryablyWhileDownAndNothingAcknowledgedIsLost) {
  PostgresOptions options;
  options.conninfo = conninfo_;
  options.pool_size = 4;
  options.connect_timeout = 2s;
  auto opened = OpenPostgresBackend(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<StorageBackend> store = *std::move(opened);

  constexpr int kWriters = 4;
  std::mutex mu;
  std::map<std::string, Acked> acked;
  std::map<StatusCode, int> errors;
  std::vector<std::string> other_errors;
  std::atomic<bool> stop{false};
  std::atomic<int> successes{0};

  // Each writer records episodes: create with 2 steps, append 2, complete. After any
  // failure it abandons that episode (an unknown outcome would make the step count
  // it completes with stale) and starts the next.
  auto writer = [&] {
    while (!stop) {
      Episode e = testing::MakeEpisode(SystemClock(), 2);
      auto fail = [&](const Status& s) {
        std::lock_guard<std::mutex> lock(mu);
        ++errors[s.code()];
        if (s.code() != StatusCode::kUnavailable && other_errors.size() < 5) other_errors.push_back(s.ToString());
      };
      Status s = store->CreateEpisode(e);
      if (!s.ok()) {
        fail(s);
        std::this_thread::sleep_for(5ms);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        acked[e.episode_id].steps = 2;
      }
      bool abandoned = false;
      for (int i = 0; i < 2 && !abandoned; ++i) {
        Result<int> n = store->AppendStep(e.episode_id, testing::MakeStep(0));
        if (!n.ok()) {
          fail(n.status());
          abandoned = true;
          break;
        }
        e.steps.push_back(testing::MakeStep(*n));
        std::lock_guard<std::mutex> lock(mu);
        acked[e.episode_id].steps = static_cast<int>(e.steps.size());
      }
      if (abandoned) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      s = store->CompleteEpisode(testing::Completed(e));
      if (!s.ok()) {
        fail(s);
        std::this_thread::sleep_for(5ms);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        acked[e.episode_id].completed = true;
      }
      ++successes;
    }
  };
  auto wait_for_successes = [&](int more) {
    int target = successes + more;
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (successes < target && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return successes >= target;
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) threads.emplace_back(writer);
  ASSERT_TRUE(wait_for_successes(20)) << "no load before the restart";

  // 1. A restart in the middle of the load (pg_ctl stop -m fast, then start).
  ASSERT_TRUE(Cluster("restart", dir_).has_value());
  EXPECT_TRUE(wait_for_successes(20)) << "calls did not succeed again after the restart";

  // 2. Down for a while: every kind of call fails with kUnavailable, saying to retry.
  ASSERT_TRUE(Cluster("stop", dir_).has_value());
  std::this_thread::sleep_for(100ms);
  Episode probe = testing::MakeEpisode(SystemClock(), 1);
  Status created = store->CreateEpisode(probe);
  EXPECT_EQ(created.code(), StatusCode::kUnavailable) << created.ToString();
  EXPECT_NE(created.message().find("PostgreSQL"), std::string_view::npos) << created.ToString();
  EXPECT_EQ(store->GetEpisode(probe.episode_id).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->ListEpisodes({}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->Stats().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->CheckHealth().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(Cluster("start", dir_).has_value());

  // 3. Back: the same store object works again.
  EXPECT_TRUE(wait_for_successes(20)) << "calls did not succeed again after the server came back";
  stop = true;
  for (auto& t : threads) t.join();

  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_GT(errors[StatusCode::kUnavailable], 0) << "the writers never saw the outage";
    for (const auto& [code, count] : errors) {
      EXPECT_EQ(code, StatusCode::kUnavailable) << count << " calls failed with " << StatusCodeName(code);
    }
    for (const std::string& e : other_errors) ADD_FAILURE() << "unexpected error: " << e;
  }

  // Nothing acknowledged is lost: every acknowledged episode, step and completion is there.
  int completed = 0;
  for (const auto& [id, want] : acked) {
    Result<Episode> got = store->GetEpisode(id);
    ASSERT_TRUE(got.ok()) << id << ": " << got.status().ToString();
    EXPECT_GE(static_cast<int>(got->steps.size()), want.steps) << id;
    if (want.completed) {
      EXPECT_TRUE(got->completed()) << id;
      ++completed;
    }
  }
  EXPECT_EQ(completed, successes.load());
  Status health = store->CheckHealth();
  EXPECT_TRUE(health.ok()) << health.ToString();
}

}  // namespace
}  // namespace engram
