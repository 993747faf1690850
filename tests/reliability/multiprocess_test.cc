// Several engram processes share one SQLite file (DESIGN §6, §11): four writer processes
// record 500 complete episodes of 10 steps each into the same database at the same time.
// Nothing acknowledged may be lost, no process may see an error ("database is locked"
// included), and the file must pass SQLite's integrity check afterwards.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/ids.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "engram/types.h"
#include "reliability/writer_checks.h"
#include "testing/temp_dir.h"


namespace engram {
namespace {

constexpr int kWriters = 4;
constexpr int kEpisodesPerWriter = 500;
constexpr int kStepsPerEpisode = 10;

TEST(MultiprocessTest, FourWritersShareOneStoreWithoutLossOrErrors) {
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string db = dir.File("memory.db");

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = SpawnWriter({"--db", db, "--episodes", std::to_string(kEpisodesPerWriter), "--steps",
                             std::to_string(kStepsPerEpisode), "--tag", "w" + std::to_string(w)},
                            dir.File("out" + std::to_string(w)), dir.File("err" + std::to_string(w)));
    ASSERT_GT(pid, 0) << "cannot start " << ENGRAM_TEST_WRITER;
    pids.push_back(pid);
  }
  for (int w = 0; w < kWriters; ++w) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[w], &status, 0), pids[w]);
    const std::string err = ReadFile(dir.File("err" + std::to_string(w)));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "writer w" << w << " failed (wait status " << status << "): " << err;
    EXPECT_EQ(err, "") << "writer w" << w << " reported errors";
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] " << kWriters << " writers x " << kEpisodesPerWriter << " episodes x " << kStepsPerEpisode
            << " steps took " << seconds << " s\n";

  // Every acknowledged id, by writer.
  std::map<std::string, std::string> writer_of;  // episode id -> tag
  for (int w = 0; w < kWriters; ++w) {
    const std::string tag = "w" + std::to_string(w);
    std::vector<std::string> ids = Lines(ReadFile(dir.File("out" + std::to_string(w))));
    EXPECT_EQ(ids.size(), static_cast<size_t>(kEpisodesPerWriter)) << "acknowledged by writer " << tag;
    for (const std::string& id : ids) {
      EXPECT_TRUE(IsUuid(id)) << "writer " << tag << " printed \"" << id << "\"";
      EXPECT_TRUE(writer_of.emplace(id, tag).second) << "id " << id << " acknowledged twice";
    }
  }
  ASSERT_EQ(writer_of.size(), static_cast<size_t>(kWriters * kEpisodesPerWriter));

  SqliteOptions options;
  options.path = db;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();

  Result<StoreStats> stats = (*store)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->episodes, kWriters * kEpisodesPerWriter);
  EXPECT_EQ(stats->completed_episodes, kWriters * kEpisodesPerWriter);
  EXPECT_EQ(stats->steps, kWriters * kEpisodesPerWriter * kStepsPerEpisode);

  int bad = 0;
  for (const auto& [id, tag] : writer_of) {
    Result<Episode> e = (*store)->GetEpisode(id);
    if (!e.ok()) {
      ADD_FAILURE() << "acknowledged episode " << id << " of " << tag << ": " << e.status().ToString();
    } else {
      ::testing::AssertionResult intact = IsIntact(*e, tag, kStepsPerEpisode);
      if (!intact) ADD_FAILURE() << intact.message();
      if (intact) continue;
    }
    if (++bad >= 10) FAIL() << "stopping after 10 bad episodes";
  }

  // Streaming the whole store yields each writer's episodes and nothing else.
  EpisodeFilter all;
  all.include_steps = true;
  Result<std::unique_ptr<EpisodeStream>> stream = (*store)->ListEpisodes(all);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  std::set<std::string> listed;
  for (;;) {
    Result<std::optional<Episode>> next = (*stream)->Next();
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    if (!next->has_value()) break;
    const Episode& e = **next;
    auto it = writer_of.find(e.episode_id);
    ASSERT_NE(it, writer_of.end()) << "episode " << e.episode_id << " (" << e.task_description
                                   << ") was never acknowledged";
    EXPECT_TRUE(IsIntact(e, it->second, kStepsPerEpisode));
    EXPECT_TRUE(listed.insert(e.episode_id).second) << "listed twice: " << e.episode_id;
  }
  stream->reset();
  EXPECT_EQ(listed.size(), writer_of.size());

  EXPECT_TRUE((*store)->CheckHealth().ok());
  store->reset();
  EXPECT_EQ(IntegrityCheck(db), "ok");
}

}  // namespace
}  // namespace engram
