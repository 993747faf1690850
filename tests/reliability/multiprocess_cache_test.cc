// Several engram processes share one SQLite file and one LMDB cache (DESIGN §6): eight
// writer processes each record 1,000 complete episodes through the cache at the same time.
// Each writer reads its episode back after completing it and, after every episode, reads a
// recent episode of another writer first from SQLite and then through the cache, failing on
// any stale copy (engram_test_writer --cache). Nothing acknowledged may be lost, no process
// may see an error, and afterwards every episode read through the shared cache (whose
// entries the writers filled while the episodes were still growing) must be complete.
//
// Durability normal: at full (an fsync per commit) even 3 steps per episode took 44 s alone
// and 58 s under `ctest -j2` on a 2-core machine, almost all of it waiting for fsync. What
// is tested here is cache coherence between processes, which fsync does not change;
// durability across kill -9 is crash_test's subject. Normal affords 10 steps per episode
// (12 writes, so 12 invalidations racing the other writers' reads) in about 20 s.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/ids.h"
#include "engram/lmdb_cache.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "engram/types.h"
#include "reliability/writer_checks.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

constexpr int kWriters = 8;
constexpr int kEpisodesPerWriter = 1000;
constexpr int kStepsPerEpisode = 10;

TEST(MultiprocessCacheTest, EightWritersThroughOneCacheLoseNothingAndReadNothingStale) {
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string db = dir.File("memory.db");
  const std::string cache = dir.File("memory.db.cache");

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = SpawnWriter({"--db", db, "--cache", cache, "--durability", "normal", "--episodes",
                             std::to_string(kEpisodesPerWriter), "--steps", std::to_string(kStepsPerEpisode),
                             "--tag", "w" + std::to_string(w)},
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
  std::cout << "[ info ] " << kWriters << " cached writers x " << kEpisodesPerWriter << " episodes x "
            << kStepsPerEpisode << " steps took " << seconds << " s\n";

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

  // Read everything back through the same cache the writers filled.
  SqliteOptions options;
  options.path = db;
  Result<std::unique_ptr<StorageBackend>> base = OpenSqliteBackend(options);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  LmdbOptions cache_options;
  cache_options.path = cache;
  Result<std::unique_ptr<StorageBackend>> store = OpenLmdbCache(cache_options, *std::move(base));
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
      if (!intact) ADD_FAILURE() << "read through the cache: " << intact.message();
      if (intact) continue;
    }
    if (++bad >= 10) FAIL() << "stopping after 10 bad episodes";
  }
  const LmdbCacheMetrics m = AsLmdbCache(**store)->Metrics();
  std::cout << "[ info ] reading back through the cache: " << m.hits << " hits, " << m.misses << " misses, "
            << m.errors << " errors\n";
  EXPECT_EQ(m.errors, 0u);
  EXPECT_GT(m.hits, 0u) << "the writers' copies should serve some reads";

  EXPECT_TRUE((*store)->CheckHealth().ok());
  store->reset();
  EXPECT_EQ(IntegrityCheck(db), "ok");
}

}  // namespace
}  // namespace engram
