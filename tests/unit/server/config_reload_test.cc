// ConfigWatcher (reload on demand, on SIGHUP, on a change of the config file) and
// ApplyLiveConfig over the real parts it changes. Waits poll for the effect with a
// generous deadline; nothing asserts how fast it came.
#include "server/config_reload.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/lmdb_cache.h"
#include "mcp/auth.h"
#include "mcp/server.h"
#include "retrieval/retriever.h"
#include "sandbox/execute_code_tool.h"
#include "server/open_learning.h"
#include "server/open_store.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"
#include "transport/http_transport.h"

namespace engram::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

class ConfigWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.File("etc"));
    path_ = dir_.File("etc/config.toml");
    env_["HOME"] = dir_.path();
  }

  std::string Text(const std::string& extra) const {
    return "[storage]\ndb = \"" + dir_.File("memory.db") + "\"\n" + extra;
  }
  void WriteInPlace(const std::string& extra) const { std::ofstream(path_, std::ios::trunc) << Text(extra); }
  void WriteByRename(const std::string& extra) const {
    std::ofstream(path_ + ".new") << Text(extra);
    std::filesystem::rename(path_ + ".new", path_);
  }

  ConfigInputs Inputs() {
    ConfigInputs inputs;
    inputs.config_file = path_;
    inputs.getenv = [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
    return inputs;
  }

  // A watcher over the current file whose apply function records what it was given.
  std::unique_ptr<ConfigWatcher> MakeWatcher(ConfigWatcherOptions options = {}) {
    Result<Config> running = LoadConfig(Inputs());
    EXPECT_TRUE(running.ok()) << running.status().ToString();
    return std::make_unique<ConfigWatcher>(
        Inputs(), *running,
        [this](const Config& previous, const Config& next) {
          applied_.push_back(next);
          EXPECT_NE(previous.values.size(), 0u);
          return apply_status_;
        },
        options);
  }

  testing::TempDir dir_;
  std::string path_;
  std::map<std::string, std::string> env_;
  std::vector<Config> applied_;
  Status apply_status_;
};

// learning.* keys reach the pipeline's options, the quiet period included.
TEST_F(ConfigWatcherTest, LearningKeysReachThePipelineOptions) {
  WriteInPlace("[learning]\nworkers = 2\nquiet_period_ms = 0\nmax_defer_ms = 1500\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const LearningOptions options = server::LearningOptionsFromConfig(*config);
  EXPECT_EQ(options.workers, 2u);
  EXPECT_EQ(options.quiet_period, std::chrono::milliseconds(0));
  EXPECT_EQ(options.max_defer, std::chrono::milliseconds(1500));
  WriteInPlace("");
  Result<Config> defaults = LoadConfig(Inputs());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(server::LearningOptionsFromConfig(*defaults).quiet_period, kDefaultQuietPeriod);
  EXPECT_EQ(server::LearningOptionsFromConfig(*defaults).max_defer, kDefaultMaxDefer);
}

TEST_F(ConfigWatcherTest, ReloadAppliesChangedLiveKeysAndReportsRestartOnlyOnes) {
  WriteInPlace("[log]\nlevel = \"info\"\n");
  auto watcher = MakeWatcher();
  ReloadOutcome same = watcher->Reload("test");
  EXPECT_TRUE(same.status.ok());
  EXPECT_THAT(same.applied, IsEmpty());
  EXPECT_THAT(applied_, IsEmpty()) << "nothing changed: nothing applied";

  std::ofstream(path_, std::ios::trunc) << "[storage]\ndb = \"" << dir_.File("elsewhere.db")
                                        << "\"\n[log]\nlevel = \"warn\"\n[tools]\ndisclosure = \"all\"\n";
  ReloadOutcome changed = watcher->Reload("test");
  ASSERT_TRUE(changed.status.ok()) << changed.status.ToString();
  EXPECT_THAT(changed.applied, ElementsAre("log.level", "tools.disclosure"));
  EXPECT_THAT(changed.needs_restart, ElementsAre("storage.db"));
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(applied_[0].log_level, LogLevel::kWarn);
  EXPECT_EQ(watcher->current().tools_disclosure, "all");

  // Still different from what the server started with: reported again, not applied again.
  ReloadOutcome again = watcher->Reload("test");
  EXPECT_THAT(again.applied, IsEmpty());
  EXPECT_THAT(again.needs_restart, ElementsAre("storage.db"));
  EXPECT_EQ(applied_.size(), 1u);
  EXPECT_EQ(watcher->reload_count(), 3u);
}

TEST_F(ConfigWatcherTest, InvalidFileKeepsTheRunningConfig) {
  WriteInPlace("[tools]\ndisclosure = \"progressive\"\n");
  auto watcher = MakeWatcher();
  WriteInPlace("[tools]\ndisclosure = \"all\"\n[log\n");
  ReloadOutcome bad = watcher->Reload("test");
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status.message()), HasSubstr(path_ + ":5:"));
  EXPECT_THAT(applied_, IsEmpty());
  EXPECT_EQ(watcher->current().tools_disclosure, "progressive");

  WriteInPlace("[tools]\ndisclosure = \"sometimes\"\n");
  EXPECT_THAT(std::string(watcher->Reload("test").status.message()), HasSubstr("tools.disclosure"));
  std::filesystem::remove(path_);
  EXPECT_EQ(watcher->Reload("test").status.code(), StatusCode::kNotFound);
  EXPECT_THAT(applied_, IsEmpty());
  EXPECT_EQ(watcher->current().tools_disclosure, "progressive");
}

TEST_F(ConfigWatcherTest, ApplyFailureIsRetriedOnTheNextReload) {
  WriteInPlace("");
  auto watcher = MakeWatcher();
  WriteInPlace("[retrieval]\nweight_lexical = 0.9\n");
  apply_status_ = InvalidArgumentError("refused");
  EXPECT_FALSE(watcher->Reload("test").status.ok());
  EXPECT_EQ(watcher->current().retrieval.weight_lexical, Config{}.retrieval.weight_lexical);
  apply_status_ = OkStatus();
  ReloadOutcome retried = watcher->Reload("test");
  EXPECT_TRUE(retried.status.ok());
  EXPECT_THAT(retried.applied, ElementsAre("retrieval.weight_lexical"));
  EXPECT_EQ(watcher->current().retrieval.weight_lexical, 0.9);
}

TEST_F(ConfigWatcherTest, FileReplacedByRenameIsReloaded) {
  WriteInPlace("");
  auto watcher = MakeWatcher({.on_sighup = false});
  ASSERT_TRUE(watcher->Start().ok());
  std::ofstream(dir_.File("etc/unrelated.toml")) << "not ours";
  WriteByRename("[tools]\ndisclosure = \"all\"\n");
  EXPECT_TRUE(Eventually([&] { return watcher->current().tools_disclosure == "all"; }));
  watcher->Stop();
}

TEST_F(ConfigWatcherTest, FileWrittenInPlaceIsReloadedAfterABurst) {
  WriteInPlace("");
  auto watcher = MakeWatcher({.on_sighup = false});
  ASSERT_TRUE(watcher->Start().ok());
  for (int i = 1; i <= 5; ++i) WriteInPlace("[tools]\nadvanced_after_calls = " + std::to_string(i) + "\n");
  EXPECT_TRUE(Eventually([&] { return watcher->current().tools_advanced_after_calls == 5; }));
}

TEST_F(ConfigWatcherTest, SighupReloads) {
  WriteInPlace("");
  BlockReloadSignal();  // before the watcher's thread: it inherits the mask
  auto watcher = MakeWatcher({.on_file_change = false});
  ASSERT_TRUE(watcher->Start().ok());
  WriteInPlace("[log]\nlevel = \"error\"\n");
  ASSERT_EQ(kill(getpid(), SIGHUP), 0);
  EXPECT_TRUE(Eventually([&] { return watcher->current().log_level == LogLevel::kError; }));
  EXPECT_EQ(watcher->Start().code(), StatusCode::kFailedPrecondition);
  watcher->Stop();
  watcher->Stop();  // idempotent
}

TEST(ApplyLiveConfigTest, ChangesEveryRunningPart) {
  testing::TempDir dir;
  Config config;
  config.db_path = dir.File("memory.db");
  config.keys_file = dir.File("keys.json");
  Result<std::unique_ptr<StorageBackend>> store = OpenStore(config);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  LmdbCache* cache = AsLmdbCache(**store);
  ASSERT_NE(cache, nullptr);
  Retriever retriever(**store, SystemClock(), nullptr, nullptr, RankingOptions{});
  mcp::McpServer server(mcp::ServerOptions{});
  sandbox::SandboxLimits limits(30000, 512);
  transport::HttpTransport http(server, transport::HttpOptions{.port = 0});

  Config next = config;
  next.log_level = LogLevel::kWarn;
  next.tools_disclosure = "all";
  next.tools_advanced_after_calls = 1;
  next.tools_expert_after_calls = 2;
  next.retrieval.weight_lexical = 7;
  next.retrieval.mmr_lambda = 0.25;
  next.cache_max_entries = 1;
  next.cache_ttl = std::chrono::seconds(5);
  next.sandbox_max_timeout_ms = 1000;
  next.sandbox_max_memory_mb = 64;
  next.rate_limit = 3;
  next.rate_limit_burst = 4;
  const LiveTargets targets{
      .server = &server, .retriever = &retriever, .cache = cache, .sandbox = &limits, .http = &http};
  ASSERT_TRUE(ApplyLiveConfig(config, next, targets).ok());

  EXPECT_TRUE(server.disclosure().disclose_all);
  EXPECT_EQ(server.disclosure().advanced_after_calls, 1);
  EXPECT_EQ(server.disclosure().expert_after_calls, 2);
  EXPECT_EQ(retriever.options().weights.lexical, 7);
  EXPECT_EQ(retriever.options().mmr_lambda, 0.25);
  EXPECT_EQ(limits.max_timeout_ms(), 1000);
  EXPECT_EQ(limits.max_memory_mb(), 64);
  // The cache keeps one entry now: storing three evicts the older ones.
  FakeClock clock;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*store)->CreateEpisode(testing::MakeEpisode(clock)).ok());
  EXPECT_GE(cache->Metrics().evictions, 2u);

  // Bad ranking options are refused; the rest still applies.
  Config bad = next;
  bad.retrieval.weight_semantic = bad.retrieval.weight_lexical = bad.retrieval.weight_context =
      bad.retrieval.weight_reward = bad.retrieval.weight_recency = bad.retrieval.weight_concepts =
          bad.retrieval.weight_wordnet = 0;
  bad.sandbox_max_timeout_ms = 2000;
  Status refused = ApplyLiveConfig(next, bad, targets);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(retriever.options().weights.lexical, 7);
  EXPECT_EQ(limits.max_timeout_ms(), 2000);

  // An unreadable keys file keeps the old keys and says so.
  std::ofstream(dir.File("broken.json")) << "{not json";
  Config broken_keys = next;
  broken_keys.keys_file = dir.File("broken.json");
  Status keys = ApplyLiveConfig(next, broken_keys, targets);
  EXPECT_FALSE(keys.ok());
  EXPECT_THAT(std::string(keys.message()), HasSubstr("auth.keys_file"));
  InitLogging(LogLevel::kInfo, LogFormat::kAuto);
}

}  // namespace
}  // namespace engram::server
