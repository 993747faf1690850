#include "core/retrieval.h"

#include <chrono>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::chrono::hours kDay{24};

class RetrievalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = dir_.File("memory.db");
    options.durability = Durability::kNormal;
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
    memory_ = std::make_unique<Memory>(*store_, clock_, nullptr);
  }

  struct Spec {
    std::string task{};
    std::string domain = "web-api";
    TaskType type = TaskType::kDebugging;
    std::vector<std::pair<std::string, std::string>> steps = {{"bash", "run the tests"}};
    OutcomeKind outcome = OutcomeKind::kSuccess;
    bool complete = true;
  };

  // Records an episode through Memory (so reward and reflection are real) and moves the
  // clock on a second, so ids and times are distinct.
  std::string Record(const Spec& spec) {
    NewEpisode ne;
    ne.task_description = spec.task;
    ne.task_type = spec.type;
    ne.context.domain = spec.domain;
    Result<std::string> id = memory_->CreateEpisode(std::move(ne));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    for (const auto& [tool, action] : spec.steps) {
      NewStep step;
      step.tool = tool;
      step.action = action;
      step.result = StepResult{StepStatus::kSuccess, "ok", std::nullopt};
      EXPECT_TRUE(memory_->AddStep(*id, std::move(step)).ok());
    }
    clock_.Advance(std::chrono::seconds(30));
    if (spec.complete) {
      Outcome o;
      o.kind = spec.outcome;
      if (o.kind == OutcomeKind::kFailure) o.reason = "gave up"; else o.verdict = "done";
      Result<Episode> done = memory_->CompleteEpisode(*id, o);
      EXPECT_TRUE(done.ok()) << done.status().ToString();
    }
    clock_.Advance(std::chrono::seconds(1));
    return *id;
  }

  Result<std::vector<ScoredEpisode>> Retrieve(RetrievalQuery q) { return RetrieveEpisodes(*store_, q, clock_); }

  static std::vector<std::string> Ids(const std::vector<ScoredEpisode>& hits) {
    std::vector<std::string> ids;
    for (const auto& h : hits) ids.push_back(h.episode.episode_id);
    return ids;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
};

TEST(RetrievalTokensTest, LowerCasesDropsStopWordsAndPlurals) {
  EXPECT_THAT(RetrievalTokens("Fix the flaky Tests in web_api (class Status)!"),
              ElementsAre("fix", "flaky", "test", "web", "api", "class", "status"));
  EXPECT_THAT(RetrievalTokens("a I to"), ElementsAre());
  EXPECT_THAT(RetrievalTokens("Größe über"), ElementsAre("größe", "über"));
}

TEST_F(RetrievalTest, EmptyStoreAnswersAnEmptyList) {
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "anything at all"});
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  EXPECT_TRUE(hits->empty());
}

TEST_F(RetrievalTest, RelevantEpisodeRanksFirstAndUnrelatedOnesAreLeftOut) {
  std::string docs = Record({.task = "Write the README section about installation", .type = TaskType::kDocumentation,
                             .steps = {{"edit_file", "wrote README.md"}}});
  std::string flaky = Record({.task = "Fix the flaky async retry test in the payments client",
                              .steps = {{"cargo", "ran cargo test retry"}, {"edit_file", "added a timeout"}}});
  std::string pool = Record({.task = "Refactor the database connection pool", .type = TaskType::kRefactoring});

  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "flaky retry test keeps failing"});
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_FALSE(hits->empty());
  EXPECT_EQ((*hits)[0].episode.episode_id, flaky);
  EXPECT_GT((*hits)[0].lexical, 0);
  for (const ScoredEpisode& h : *hits) {
    EXPECT_NE(h.episode.episode_id, docs) << "shares no word with the query";
    EXPECT_GE(h.score, 0);
    EXPECT_LE(h.score, 1);
    EXPECT_GE(h.reward, 0);
    EXPECT_LE(h.reward, 1);
  }
  // "run the tests" is a step of the pool episode: it matches "test", but ranks lower.
  EXPECT_THAT(Ids(*hits), ElementsAre(flaky, pool));

  // Step tools are searchable too.
  hits = Retrieve({.text = "cargo"});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(flaky));
}

TEST_F(RetrievalTest, DomainIsAStrongSignalButNotAFilter) {
  std::string a = Record({.task = "Fix the login timeout", .domain = "auth-service"});
  std::string b = Record({.task = "Fix the login timeout", .domain = "web-api"});

  RetrievalQuery q{.text = "login timeout"};
  q.domain = "auth-service";
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(a, b)) << "the older episode wins on domain";
  EXPECT_EQ((*hits)[0].context, 1.0);
  EXPECT_EQ((*hits)[1].context, 0.0);

  q.domain = "web-api";
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(b, a));

  q.domain = "auth-service";
  q.domain_filter = true;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(a));

  RetrievalQuery no_domain{.text = "login", .domain_filter = true};
  EXPECT_EQ(Retrieve(no_domain).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RetrievalTest, TaskTypeMatchCounts) {
  std::string testing_ep = Record({.task = "Parser edge cases", .type = TaskType::kTesting});
  std::string docs_ep = Record({.task = "Parser edge cases", .type = TaskType::kDocumentation});
  RetrievalQuery q{.text = "parser edge cases", .task_type = TaskType::kTesting};
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(testing_ep, docs_ep));
}

TEST_F(RetrievalTest, LimitDefaultsToTenAndIsChecked) {
  // Two-digit attempt numbers keep every description the same length in words.
  for (int i = 10; i < 22; ++i) Record({.task = "Tune the cache eviction policy, attempt " + std::to_string(i)});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "cache eviction"});
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), kDefaultRetrievalLimit);
  hits = Retrieve({.text = "cache eviction", .limit = 3});
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 3u);
  // Identical relevance: the most recent first.
  EXPECT_THAT((*hits)[0].episode.task_description, HasSubstr("attempt 21"));

  Result<std::vector<ScoredEpisode>> bad = Retrieve({.text = "cache", .limit = 0});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("limit"));
  EXPECT_EQ(Retrieve({.text = "cache", .limit = kMaxQueryLimit + 1}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RetrievalTest, MaxScanBoundsHowFarBackItLooks) {
  std::string old = Record({.task = "Migrate the schema of the orders table"});
  for (int i = 0; i < 5; ++i) Record({.task = "Unrelated chore number " + std::to_string(i)});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "orders schema", .max_scan = 5});
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
  hits = Retrieve({.text = "orders schema", .max_scan = 6});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(old));
}

TEST_F(RetrievalTest, MaxTokensCutsTheListInRankOrder) {
  for (int i = 0; i < 4; ++i) Record({.task = "Speed up the image resize pipeline " + std::to_string(i)});
  Result<std::vector<ScoredEpisode>> all = Retrieve({.text = "image resize"});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  size_t first_two = (*all)[0].tokens + (*all)[1].tokens;
  EXPECT_EQ((*all)[0].tokens, EstimateTokens((*all)[0].episode));

  RetrievalQuery q{.text = "image resize"};
  q.max_tokens = first_two;
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre((*all)[0].episode.episode_id, (*all)[1].episode.episode_id));

  q.max_tokens = 1;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty()) << "nothing fits in one token";
}

TEST_F(RetrievalTest, OnlyCompletedEpisodesAreCandidates) {
  Record({.task = "Investigate the memory leak in the worker", .complete = false});
  std::string done = Record({.task = "Investigate the memory leak in the scheduler"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "memory leak"});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(done));
}

TEST_F(RetrievalTest, RecencyHalvesEveryThirtyDays) {
  std::string old = Record({.task = "Rotate the TLS certificates"});
  clock_.Advance(60 * kDay);
  std::string recent = Record({.task = "Rotate the TLS certificates"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "rotate tls certificates"});
  ASSERT_TRUE(hits.ok());
  ASSERT_THAT(Ids(*hits), ElementsAre(recent, old));
  EXPECT_NEAR((*hits)[0].recency, 1.0, 0.01);
  EXPECT_NEAR((*hits)[1].recency, 0.25, 0.01);
}

TEST_F(RetrievalTest, RewardLiftsSuccessOverFailure) {
  std::string failed = Record({.task = "Upgrade the web framework", .outcome = OutcomeKind::kFailure});
  std::string worked = Record({.task = "Upgrade the web framework", .outcome = OutcomeKind::kSuccess});
  clock_.Advance(std::chrono::seconds(1));
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "upgrade web framework"});
  ASSERT_TRUE(hits.ok());
  ASSERT_THAT(Ids(*hits), ElementsAre(worked, failed));
  EXPECT_GT((*hits)[0].reward, (*hits)[1].reward);
  EXPECT_LT((*hits)[1].reward, 0.1) << "a failure earns at most its learning bonus";
}

TEST_F(RetrievalTest, AllowedDomainsHideOtherDomains) {
  std::string mine = Record({.task = "Rate limit the public endpoints", .domain = "web-api"});
  Record({.task = "Rate limit the admin endpoints", .domain = "secret"});
  RetrievalQuery q{.text = "rate limit endpoints", .allowed_domains = {"web-api"}};
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(mine));

  q.allowed_domains = {"web-api", "other"};  // not pushed down to the store: filtered in the scan
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(mine));

  q.domain = "secret";
  q.domain_filter = true;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
}

TEST_F(RetrievalTest, StepOutputsAreDroppedFromResults) {
  std::string id = Record({.task = "Bisect the regression in the renderer", .steps = {{"git", "bisect run"}}});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "bisect renderer regression"});
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  ASSERT_EQ((*hits)[0].episode.steps.size(), 1u);
  EXPECT_EQ((*hits)[0].episode.steps[0].tool, "git");
  ASSERT_TRUE((*hits)[0].episode.steps[0].result.has_value());
  EXPECT_FALSE((*hits)[0].episode.steps[0].result->output.has_value());
  EXPECT_TRUE((*hits)[0].episode.reflection.has_value());
}

TEST_F(RetrievalTest, QueryWithoutWordsRanksEverything) {
  std::string a = Record({.task = "One"});
  std::string b = Record({.task = "Two"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "the"});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(b, a));
}

TEST_F(RetrievalTest, CancellationStopsTheScan) {
  Record({.task = "Anything"});
  RetrievalQuery q{.text = "anything", .cancelled = [] { return true; }};
  EXPECT_EQ(Retrieve(q).status().code(), StatusCode::kCancelled);
}

}  // namespace
}  // namespace engram
