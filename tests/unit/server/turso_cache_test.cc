// The LMDB cache in front of a Turso store as `engram serve` opens it (server::OpenStore):
// an episode this process is writing is answered from its own copy, and that copy never
// hides another process's write from a completion (it answers kAborted, the copy is dropped,
// the retry reads the store). Each test runs a tursodb of its own.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "config/config.h"
#include "common/fake_clock.h"
#include "engram/clock.h"
#include "engram/lmdb_cache.h"
#include "server/open_store.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"
#include "testing/turso_server.h"

namespace engram {
namespace {

using testing::Completed;
using testing::MakeEpisode;
using testing::MakeStep;

class TursoCacheTest : public ::testing::Test {
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

  // The store as one `engram serve` process opens it, with its cache under `home`.
  std::unique_ptr<StorageBackend> OpenAsServe(const std::string& name) {
    const std::string home = dir_.File(name);
    std::filesystem::create_directories(home);
    ConfigInputs inputs;
    inputs.getenv = [home](const char* var) -> const char* {
      const std::string_view n(var);
      if (n == "HOME" || n == "XDG_DATA_HOME" || n == "XDG_CONFIG_HOME" || n == "XDG_CACHE_HOME") return home.c_str();
      return nullptr;
    };
    inputs.flags.push_back({"storage.url", server_->url(), "--store"});
    Result<Config> config = LoadConfig(inputs);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    if (!config.ok()) return nullptr;
    // The cache folder is chosen from the process's XDG_CACHE_HOME.
    EXPECT_EQ(setenv("XDG_CACHE_HOME", home.c_str(), 1), 0);
    Result<std::unique_ptr<StorageBackend>> store = server::OpenStore(*config);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    EXPECT_NE(AsLmdbCache(**store), nullptr) << "the cache is on by default";
    return *std::move(store);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TursoServer> server_;
  FakeClock clock_;
};

TEST_F(TursoCacheTest, TheWritersCopyIsWhatTheStoreHolds) {
  auto a = OpenAsServe("a");
  auto b = OpenAsServe("b");
  ASSERT_TRUE(a && b);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(a->CreateEpisode(e).ok());
  Step numbered_by_store = MakeStep(0, "pytest");
  ASSERT_EQ(*a->AppendStep(e.episode_id, numbered_by_store), 2);
  ASSERT_EQ(*a->AppendStep(e.episode_id, MakeStep(3, "git")), 3);
  Result<Episode> mine = a->GetEpisode(e.episode_id);
  Result<Episode> stored = b->GetEpisode(e.episode_id);
  ASSERT_TRUE(mine.ok() && stored.ok());
  EXPECT_EQ(*mine, *stored);  // every field, steps numbered as the store numbered them
}

TEST_F(TursoCacheTest, AnotherWritersStepIsNeverHiddenFromTheCompletion) {
  auto a = OpenAsServe("a");
  auto b = OpenAsServe("b");
  ASSERT_TRUE(a && b);
  Episode e = MakeEpisode(clock_, 2);
  ASSERT_TRUE(a->CreateEpisode(e).ok());
  ASSERT_TRUE(b->AppendStep(e.episode_id, MakeStep(0, "make")).ok());  // a does not know

  // What Memory::CompleteEpisode does: read, complete over the steps read, retry on kAborted.
  Result<Episode> read = a->GetEpisode(e.episode_id);
  ASSERT_TRUE(read.ok());
  // a's own copy answered the read (no round trip), so it holds 2 steps: the store refuses a
  // completion over them, and the copy is dropped.
  EXPECT_EQ(read->steps.size(), 2u);
  EXPECT_EQ(a->CompleteEpisode(Completed(*read)).code(), StatusCode::kAborted);
  Result<Episode> again = a->GetEpisode(e.episode_id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->steps.size(), 3u) << "the retry reads the store, not the copy";
  ASSERT_TRUE(a->CompleteEpisode(Completed(*again)).ok());
  Result<Episode> final_a = a->GetEpisode(e.episode_id);
  Result<Episode> final_b = b->GetEpisode(e.episode_id);
  ASSERT_TRUE(final_a.ok() && final_b.ok());
  EXPECT_TRUE(final_a->completed());
  EXPECT_EQ(final_a->steps.size(), 3u);
  EXPECT_EQ(*final_a, *final_b);
}

TEST_F(TursoCacheTest, AFailedAppendDropsTheCopy) {
  auto a = OpenAsServe("a");
  auto b = OpenAsServe("b");
  ASSERT_TRUE(a && b);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(a->CreateEpisode(e).ok());
  ASSERT_TRUE(b->AppendStep(e.episode_id, MakeStep(2, "make")).ok());
  // Step 2 is taken: the append fails, and a no longer trusts its copy.
  EXPECT_EQ(a->AppendStep(e.episode_id, MakeStep(2, "git")).status().code(), StatusCode::kAlreadyExists);
  Result<Episode> read = a->GetEpisode(e.episode_id);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->steps.size(), 2u);
  EXPECT_EQ(read->steps[1].tool, "make");
}

}  // namespace
}  // namespace engram
