// Retriever with query expansion over a real SQLite store (issue 8).
#include <chrono>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "retrieval/retriever.h"
#include "semantics/query_expander.h"
#include "testing/sqlite_store.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

class ExpansionRetrievalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::OpenTestSqlite(dir_.File("memory.db"));
    ASSERT_NE(store_, nullptr);
    memory_ = std::make_unique<Memory>(*store_, clock_, nullptr);
    Result<ConceptMap> map = ConceptMap::Parse("logged-out: logged out, signed out, session expired\n", "test");
    ASSERT_TRUE(map.ok());
    concepts_ = *std::move(map);
  }

  std::string Record(const std::string& task, const std::string& action) {
    NewEpisode ne;
    ne.task_description = task;
    ne.task_type = TaskType::kDebugging;
    ne.context.domain = "web-api";
    Result<std::string> id = memory_->CreateEpisode(std::move(ne));
    EXPECT_TRUE(id.ok());
    NewStep step;
    step.tool = "bash";
    step.action = action;
    step.result = StepResult{StepStatus::kSuccess, "ok", std::nullopt};
    EXPECT_TRUE(memory_->AddStep(*id, std::move(step)).ok());
    clock_.Advance(std::chrono::seconds(30));
    Outcome o;
    o.kind = OutcomeKind::kSuccess;
    o.verdict = "done";
    EXPECT_TRUE(memory_->CompleteEpisode(*id, o).ok());
    clock_.Advance(std::chrono::seconds(1));
    return *id;
  }

  std::vector<std::string> Ids(Retriever& retriever, const std::string& text) {
    RetrievalQuery q;
    q.text = text;
    q.mode = RetrievalMode::kLexical;
    Result<RetrievalResult> r = retriever.Retrieve(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> ids;
    if (r.ok()) {
      last_ = *r;
      for (const ScoredEpisode& s : r->episodes) ids.push_back(s.episode.episode_id);
    }
    return ids;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
  ConceptMap concepts_;
  RetrievalResult last_;
};

TEST_F(ExpansionRetrievalTest, ConceptFindsAnEpisodeInOtherWords) {
  const std::string target = Record("Session expired after five minutes on the dashboard", "curl the refresh endpoint");
  Record("Add pagination to the orders endpoint", "write the handler");
  RankingOptions options;
  options.weights.concepts = 0.4;
  Retriever retriever(*store_, clock_, nullptr, nullptr, options);

  // Without an expander the query shares no word with the target.
  EXPECT_THAT(Ids(retriever, "users signed out"), ::testing::IsEmpty());

  QueryExpander expander(&concepts_, nullptr);
  retriever.SetExpander(&expander, ExpansionHealth{.detail = "test"});
  EXPECT_TRUE(retriever.Expansion().configured);
  std::vector<std::string> ids = Ids(retriever, "users signed out");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), target);
  EXPECT_GT(last_.expansion_hits, 0u);
  EXPECT_DOUBLE_EQ(last_.episodes.front().concepts, 1.0);  // in the task description

  // A concepts weight of 0 turns the source off.
  options.weights.concepts = 0;
  ASSERT_TRUE(retriever.SetOptions(options).ok());
  EXPECT_THAT(Ids(retriever, "users signed out"), ::testing::IsEmpty());
}

TEST_F(ExpansionRetrievalTest, ExpansionWeightsAreValidated) {
  RankingOptions options;
  options.weights.wordnet = -1;
  EXPECT_EQ(ValidateRankingOptions(options).code(), StatusCode::kInvalidArgument);
  options.weights = {.semantic = 0, .lexical = 0, .context = 0, .reward = 0, .recency = 0, .concepts = 0.5};
  EXPECT_TRUE(ValidateRankingOptions(options).ok());
}

}  // namespace
}  // namespace engram
