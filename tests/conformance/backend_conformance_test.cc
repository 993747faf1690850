// One suite, every backend: each StorageBackend must pass these same cases (STYLE §6).
#include <algorithm>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "conformance/conformance_fixture.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram::testing {
namespace {

class BackendConformance : public ConformanceTest {
 protected:
  std::vector<Episode> ListAll(EpisodeFilter filter = {}) { return Drain<Episode>(store_->ListEpisodes(filter)); }
};

TEST_P(BackendConformance, CreateThenGetRoundTripsEveryField) {
  Episode e = MakeEpisode(clock_, 4);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  auto got = store_->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, e);
}

TEST_P(BackendConformance, GetEpisodesReturnsTheExistingOnesInTheOrderAsked) {
  Episode a = MakeEpisode(clock_, 3);
  Episode b = MakeEpisode(clock_, 0);
  Episode c = MakeEpisode(clock_, 5, "databases");
  for (const Episode* e : {&a, &b, &c}) ASSERT_TRUE(store_->CreateEpisode(*e).ok());
  const std::vector<std::string> ids = {c.episode_id, "no-such-episode", a.episode_id, c.episode_id, b.episode_id};
  auto got = store_->GetEpisodes(ids);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0], c);  // every field, steps in order
  EXPECT_EQ((*got)[1], a);
  EXPECT_EQ((*got)[2], b);
  auto none = store_->GetEpisodes({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// Ids are text even when they look like numbers: a store must not compare them as integers
// (tursodb 0.6 matched no row for `text_column IN (SELECT value FROM json_each(?))` then).
TEST_P(BackendConformance, GetEpisodesFindsIdsThatLookLikeNumbers) {
  Episode a = MakeEpisode(clock_, 1);
  a.episode_id = "123";
  Episode b = MakeEpisode(clock_, 2);
  b.episode_id = "0042";
  for (const Episode* e : {&a, &b}) ASSERT_TRUE(store_->CreateEpisode(*e).ok());
  const std::vector<std::string> ids = {"0042", "42", "123"};
  auto got = store_->GetEpisodes(ids);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], b);
  EXPECT_EQ((*got)[1], a);
}

TEST_P(BackendConformance, DataSurvivesReopen) {
  Episode e = MakeEpisode(clock_, 2);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  ASSERT_TRUE(store_->AppendStep(e.episode_id, MakeStep(0, "make")).ok());
  Reopen();
  auto got = store_->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->steps.size(), 3u);
  // v2: retrieval index, v3: learning, SQLite v4: full-text change marks; PostgreSQL v4: term
  // counts per statement; Turso v1: all at once.
  const std::string& name = GetParam().name;
  EXPECT_EQ(store_->SchemaVersion(), name == "Turso" ? 1 : 4);
}

TEST_P(BackendConformance, DuplicateIdIsAlreadyExists) {
  Episode e = MakeEpisode(clock_, 0);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  Status s = store_->CreateEpisode(e);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
}

TEST_P(BackendConformance, UnknownEpisodeIsNotFound) {
  std::string id = NewUuidV7(clock_);
  EXPECT_EQ(store_->GetEpisode(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->AppendStep(id, MakeStep(0)).status().code(), StatusCode::kNotFound);
  Episode e = Completed(MakeEpisode(clock_, 0));
  EXPECT_EQ(store_->CompleteEpisode(e).code(), StatusCode::kNotFound);
  auto deleted = store_->DeleteEpisode(id);
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
}

TEST_P(BackendConformance, AppendStepNumbersAutomaticallyAndKeepsOrder) {
  Episode e = MakeEpisode(clock_, 0);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  for (int i = 1; i <= 5; ++i) {
    auto n = store_->AppendStep(e.episode_id, MakeStep(0));
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, i);
  }
  auto explicit_number = store_->AppendStep(e.episode_id, MakeStep(9));
  ASSERT_TRUE(explicit_number.ok());
  EXPECT_EQ(*explicit_number, 9);
  EXPECT_EQ(*store_->AppendStep(e.episode_id, MakeStep(0)), 10);  // max + 1
  auto got = store_->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok());
  std::vector<int> numbers;
  for (const Step& s : got->steps) numbers.push_back(s.step_number);
  EXPECT_EQ(numbers, (std::vector<int>{1, 2, 3, 4, 5, 9, 10}));
}

TEST_P(BackendConformance, TakenStepNumberIsAlreadyExistsAndWritesNothing) {
  Episode e = MakeEpisode(clock_, 2);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  auto r = store_->AppendStep(e.episode_id, MakeStep(2));
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetEpisode(e.episode_id)->steps.size(), 2u);
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->steps, 2);
}

TEST_P(BackendConformance, StepAfterCompletionIsRefused) {
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  ASSERT_TRUE(store_->CompleteEpisode(Completed(e)).ok());
  auto r = store_->AppendStep(e.episode_id, MakeStep(0));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetEpisode(e.episode_id)->steps.size(), 1u);
}

TEST_P(BackendConformance, CompleteStoresOutcomeRewardReflection) {
  Episode e = MakeEpisode(clock_, 3);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  Episode done = Completed(e);
  ASSERT_TRUE(store_->CompleteEpisode(done).ok());
  auto got = store_->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, done);
  EXPECT_TRUE(got->completed());
}

TEST_P(BackendConformance, CompleteTwiceIsFailedPrecondition) {
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  ASSERT_TRUE(store_->CompleteEpisode(Completed(e)).ok());
  EXPECT_EQ(store_->CompleteEpisode(Completed(e)).code(), StatusCode::kFailedPrecondition);
}

TEST_P(BackendConformance, CompleteOverStaleStepsIsAborted) {
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  Episode done = Completed(e);  // computed over 1 step
  ASSERT_TRUE(store_->AppendStep(e.episode_id, MakeStep(0)).ok());
  EXPECT_EQ(store_->CompleteEpisode(done).code(), StatusCode::kAborted);
  EXPECT_FALSE(store_->GetEpisode(e.episode_id)->completed());
}

TEST_P(BackendConformance, StepCountLimitIsEnforced) {
  Episode e = MakeEpisode(clock_, 0);
  e.steps.clear();
  for (int i = 1; i <= 999; ++i) {
    Step s = MakeStep(i);
    s.result->output.reset();
    e.steps.push_back(s);
  }
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  ASSERT_TRUE(store_->AppendStep(e.episode_id, MakeStep(0)).ok());  // the 1000th
  auto over = store_->AppendStep(e.episode_id, MakeStep(0));
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("1000"), std::string_view::npos) << over.status().ToString();
  EXPECT_EQ(store_->GetEpisode(e.episode_id)->steps.size(), 1000u);

  Episode too_many = MakeEpisode(clock_, 0);
  for (int i = 1; i <= 1001; ++i) too_many.steps.push_back(MakeStep(i));
  EXPECT_EQ(store_->CreateEpisode(too_many).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->GetEpisode(too_many.episode_id).status().code(), StatusCode::kNotFound);
}

TEST_P(BackendConformance, EpisodeSizeLimitIsEnforced) {
  Episode e = MakeEpisode(clock_, 0);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  Step big = MakeStep(0);
  big.result->output = std::string(kMaxStepOutputBytes, 'x');  // 1 MiB each
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(store_->AppendStep(e.episode_id, big).ok()) << i;
  auto over = store_->AppendStep(e.episode_id, big);  // would pass 10 MiB
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("10 MiB"), std::string_view::npos);
  EXPECT_EQ(store_->GetEpisode(e.episode_id)->steps.size(), 9u);
}

TEST_P(BackendConformance, ListIsNewestFirstWithFiltersAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    clock_.Advance(std::chrono::milliseconds(5));
    Episode e = MakeEpisode(clock_, 1, i % 2 ? "web-api" : "cli");
    if (i == 4) e.task_type = TaskType::kTesting;
    ASSERT_TRUE(store_->CreateEpisode(e).ok());
    if (i < 3) {
      ASSERT_TRUE(store_->CompleteEpisode(Completed(e)).ok());
    }
    ids.push_back(e.episode_id);
  }
  std::vector<Episode> all = ListAll();
  ASSERT_EQ(all.size(), 6u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].episode_id, ids[5 - i]);
  EXPECT_TRUE(all[0].steps.empty()) << "steps load only when asked";

  EXPECT_EQ(ListAll({.domain = "web-api"}).size(), 3u);
  EXPECT_EQ(ListAll({.task_type = TaskType::kTesting}).size(), 1u);
  EXPECT_EQ(ListAll({.completed = true}).size(), 3u);
  EXPECT_EQ(ListAll({.completed = false}).size(), 3u);
  EXPECT_EQ(ListAll({.domain = "cli", .completed = true}).size(), 2u);

  std::vector<Episode> page1 = ListAll({.limit = 4});
  ASSERT_EQ(page1.size(), 4u);
  std::vector<Episode> page2 = ListAll({.before_id = page1.back().episode_id, .limit = 4});
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].episode_id, ids[1]);

  std::vector<Episode> with_steps = ListAll({.limit = 1, .include_steps = true});
  ASSERT_EQ(with_steps.size(), 1u);
  EXPECT_EQ(with_steps[0].steps.size(), 1u);
}

TEST_P(BackendConformance, EmptyStoreListsNothing) {
  EXPECT_TRUE(ListAll().empty());
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->episodes, 0);
}

TEST_P(BackendConformance, StreamIsASnapshotAndWritesProceed) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->CreateEpisode(MakeEpisode(clock_, 1)).ok());
  auto stream = store_->ListEpisodes({});
  ASSERT_TRUE(stream.ok());
  auto first = (*stream)->Next();
  ASSERT_TRUE(first.ok() && first->has_value());
  // A write while the stream is open neither blocks nor shows up in the stream.
  ASSERT_TRUE(store_->CreateEpisode(MakeEpisode(clock_, 1)).ok());
  int rest = 0;
  for (;;) {
    auto next = (*stream)->Next();
    ASSERT_TRUE(next.ok());
    if (!next->has_value()) break;
    ++rest;
  }
  EXPECT_EQ(rest, 2);
  EXPECT_EQ(ListAll().size(), 4u);
}

TEST_P(BackendConformance, DeleteRemovesEpisodeAndSteps) {
  Episode e = MakeEpisode(clock_, 3);
  Episode keep = MakeEpisode(clock_, 2);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  ASSERT_TRUE(store_->CreateEpisode(keep).ok());
  auto deleted = store_->DeleteEpisode(e.episode_id);
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  EXPECT_EQ(store_->GetEpisode(e.episode_id).status().code(), StatusCode::kNotFound);
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->episodes, 1);
  EXPECT_EQ(stats->steps, 2);
  EXPECT_FALSE(*store_->DeleteEpisode(e.episode_id));
}

TEST_P(BackendConformance, BatchWriteIsAllOrNothing) {
  std::vector<Episode> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(Completed(MakeEpisode(clock_, 10)));
  ASSERT_TRUE(store_->PutEpisodes(batch).ok());
  auto stats = store_->Stats();
  EXPECT_EQ(stats->episodes, 50);
  EXPECT_EQ(stats->completed_episodes, 50);
  EXPECT_EQ(stats->steps, 500);

  // One bad episode in a batch: nothing of that batch lands.
  std::vector<Episode> bad;
  for (int i = 0; i < 5; ++i) bad.push_back(MakeEpisode(clock_, 1));
  bad[3].steps.clear();
  for (int i = 1; i <= 1001; ++i) bad[3].steps.push_back(MakeStep(i));
  EXPECT_EQ(store_->PutEpisodes(bad).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->Stats()->episodes, 50);

  // Replacing keeps one copy and the new steps.
  Episode replaced = batch[0];
  replaced.steps.resize(2);
  replaced.task_description = "rewritten";
  ASSERT_TRUE(store_->PutEpisodes(std::span<const Episode>(&replaced, 1)).ok());
  auto got = store_->GetEpisode(replaced.episode_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, replaced);
  EXPECT_EQ(store_->Stats()->episodes, 50);
  EXPECT_EQ(store_->Stats()->steps, 492);
}

TEST_P(BackendConformance, ConcurrentWritersInOneProcessLoseNothing) {
  constexpr int kThreads = 4, kEpisodes = 25, kSteps = 5;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEpisodes; ++i) {
        Episode e = MakeEpisode(clock_, 0);
        if (!store_->CreateEpisode(e).ok()) ++errors;
        for (int s = 0; s < kSteps; ++s) {
          if (!store_->AppendStep(e.episode_id, MakeStep(0)).ok()) ++errors;
        }
        e.steps.resize(kSteps);
        if (!store_->CompleteEpisode(Completed(e)).ok()) ++errors;
        ids[t].push_back(e.episode_id);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  auto stats = store_->Stats();
  EXPECT_EQ(stats->episodes, kThreads * kEpisodes);
  EXPECT_EQ(stats->completed_episodes, kThreads * kEpisodes);
  EXPECT_EQ(stats->steps, kThreads * kEpisodes * kSteps);
}

TEST_P(BackendConformance, HealthCheckPasses) {
  Status s = store_->CheckHealth();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendConformance, ::testing::ValuesIn(AllBackendFactories()),
                         BackendName);

}  // namespace
}  // namespace engram::testing
