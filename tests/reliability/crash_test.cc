// Acknowledged means durable (DESIGN §11): a writer process is killed with SIGKILL at a
// random moment, again and again on the same database file. After every kill, every
// episode the writer acknowledged (printed after CompleteEpisode returned OK) must be in
// the store, complete and intact; the file must pass SQLite's integrity check; and the
// store must keep accepting writes.
//
// The random schedule comes from a seed printed at the start; rerun a failure with
//   ENGRAM_CRASH_SEED=<seed> ctest -R CrashTest --output-on-failure
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/ids.h"
#include "engram/clock.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "engram/types.h"
#include "reliability/writer_checks.h"
#include "testing/temp_dir.h"


namespace engram {
namespace {

constexpr int kRounds = 20;
constexpr int kSteps = 10;

uint64_t Seed() {
  if (const char* env = std::getenv("ENGRAM_CRASH_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

// A writer child whose stdout is a pipe the parent reads acknowledged ids from.
struct Child {
  pid_t pid = -1;
  int ack_fd = -1;  // read end of the pipe
};

Child SpawnWriter(const std::vector<std::string>& args, const std::string& err_path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Child child;
  child.pid = SpawnTestWriter(args, &actions);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (child.pid < 0) {
    close(fds[0]);
    return {};
  }
  child.ack_fd = fds[0];
  return child;
}

enum class ReadState { kData, kTimeout, kEof };

// Appends what arrives on `fd` within `timeout` to `buffer`.
ReadState ReadSome(int fd, std::string& buffer, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int n = poll(&p, 1, static_cast<int>(timeout.count()));
  if (n == 0 || (n < 0 && errno == EINTR)) return ReadState::kTimeout;
  char chunk[4096];
  ssize_t got = read(fd, chunk, sizeof chunk);
  if (got < 0 && errno == EINTR) return ReadState::kTimeout;
  if (got <= 0) return ReadState::kEof;
  buffer.append(chunk, static_cast<size_t>(got));
  return ReadState::kData;
}

// Complete lines only: a write the child was killed in the middle of is not an ack (the
// writer writes each line with one write(2), well below PIPE_BUF, so this never happens).
std::vector<std::string> CompleteLines(const std::string& buffer) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t nl; (nl = buffer.find('\n', begin)) != std::string::npos; begin = nl + 1) {
    lines.push_back(buffer.substr(begin, nl - begin));
  }
  return lines;
}

TEST(CrashTest, KillNineNeverLosesAnAcknowledgedEpisode) {
  const uint64_t seed = Seed();
  std::cout << "[ seed ] ENGRAM_CRASH_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("reproduce with ENGRAM_CRASH_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string db = dir.File("memory.db");
  SqliteOptions options;
  options.path = db;

  std::map<std::string, std::string> acked;  // episode id -> writer tag
  std::vector<std::string> parent_ids;       // episodes the parent wrote between crashes
  size_t rounds_with_acks = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string tag = "r" + std::to_string(round);
    // Half the rounds kill after a random delay (possibly while the store is still being
    // opened or migrated), half right after the k-th acknowledgement plus a little.
    const bool by_ack = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 150)(rng));
    const size_t kill_after_acks = std::uniform_int_distribution<size_t>(1, 20)(rng);
    const auto extra = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng));
    SCOPED_TRACE("round " + std::to_string(round) + (by_ack ? ": kill after " + std::to_string(kill_after_acks) + " acks + " +
                                                                  std::to_string(extra.count()) + " us"
                                                            : ": kill after " + std::to_string(delay.count()) + " ms"));

    const std::string err_path = dir.File("err-" + tag);
    Child child = SpawnWriter({"--db", db, "--episodes", "1000000", "--steps", std::to_string(kSteps), "--tag", tag},
                              err_path);
    ASSERT_GT(child.pid, 0) << "cannot start " << ENGRAM_TEST_WRITER;

    std::string buffer;
    const auto start = std::chrono::steady_clock::now();
    // With by_ack, give up waiting for k acks after a while: the kill still happens and
    // the round is still checked.
    const auto deadline = start + (by_ack ? std::chrono::milliseconds(30'000) : delay);
    bool open = true;
    while (open && std::chrono::steady_clock::now() < deadline) {
      if (by_ack && CompleteLines(buffer).size() >= kill_after_acks) break;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      open = ReadSome(child.ack_fd, buffer, std::max(left, std::chrono::milliseconds(1))) != ReadState::kEof;
    }
    if (by_ack) std::this_thread::sleep_for(extra);
    ASSERT_EQ(kill(child.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    // The child is dead: drain the pipe up to EOF (or give up after a quiet second).
    while (ReadSome(child.ack_fd, buffer, std::chrono::milliseconds(1000)) == ReadState::kData) {
    }
    close(child.ack_fd);

    const std::string err = ReadFile(err_path);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer ended before it was killed (wait status " << status << "): " << err;
    EXPECT_EQ(err, "") << "the writer reported errors before it was killed";
    std::vector<std::string> ids = CompleteLines(buffer);
    if (!ids.empty()) ++rounds_with_acks;
    for (const std::string& id : ids) {
      ASSERT_TRUE(IsUuid(id)) << "the writer printed \"" << id << "\"";
      ASSERT_TRUE(acked.emplace(id, tag).second) << "id " << id << " acknowledged twice";
    }

    // Reopen after the crash: everything acknowledged so far, in any round, is intact.
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << "reopening after the kill: " << store.status().ToString();
    for (const auto& [id, writer] : acked) {
      Result<Episode> e = (*store)->GetEpisode(id);
      ASSERT_TRUE(e.ok()) << "acknowledged episode " << id << " of " << writer << ": " << e.status().ToString();
      ASSERT_TRUE(IsIntact(*e, writer, kSteps));
    }
    for (const std::string& id : parent_ids) {
      Result<Episode> e = (*store)->GetEpisode(id);
      ASSERT_TRUE(e.ok() && e->completed() && e->steps.size() == 3) << "parent episode " << id;
    }
    ASSERT_TRUE((*store)->CheckHealth().ok());

    // The store keeps accepting writes after the crash.
    {
      Memory memory(**store, SystemClock(), /*events=*/nullptr);
      NewEpisode episode;
      episode.task_description = "after crash " + std::to_string(round);
      Result<std::string> id = memory.CreateEpisode(std::move(episode));
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      for (int j = 1; j <= 3; ++j) {
        NewStep step;
        step.tool = "bash";
        step.action = "step " + std::to_string(j);
        step.result = StepResult{};
        Result<int> n = memory.AddStep(*id, std::move(step));
        ASSERT_TRUE(n.ok()) << n.status().ToString();
      }
      Result<Episode> done = memory.CompleteEpisode(*id, Outcome{});
      ASSERT_TRUE(done.ok()) << done.status().ToString();
      EXPECT_TRUE(done->reward.has_value() && done->reflection.has_value());
      parent_ids.push_back(*id);
    }
    store->reset();
    ASSERT_EQ(IntegrityCheck(db), "ok") << "after round " << round;
  }

  std::cout << "[ info ] " << acked.size() << " acknowledged episodes over " << kRounds << " kills; "
            << rounds_with_acks << " rounds saw at least one ack before the kill" << std::endl;
  // by_ack rounds always have acks; make sure the schedule exercised real work.
  EXPECT_GT(acked.size(), 0u);

  // A last look at the whole store: the counts add up (killed writers may leave one
  // episode in progress each, never a lost completed one).
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Result<StoreStats> stats = (*store)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_GE(stats->completed_episodes, static_cast<int64_t>(acked.size() + parent_ids.size()));
  EXPECT_LE(stats->episodes - stats->completed_episodes, kRounds);
}

}  // namespace
}  // namespace engram
