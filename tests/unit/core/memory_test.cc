// The episode lifecycle through Memory on a real SQLite store.
#include "engram/memory.h"

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "core/event_bus.h"
#include "engram/sqlite_backend.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

class MemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = dir_.File("memory.db");
    auto store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
    memory_ = std::make_unique<Memory>(*store_, clock_, &bus_);
    bus_.Subscribe("recorder", [this](const EpisodeEvent& e) {
      MutexLock lock(mu_);
      events_.push_back(std::string(EpisodeEventName(e)));
      return OkStatus();
    });
  }

  std::string Create(const std::string& task = "Fix the flaky test") {
    NewEpisode ne;
    ne.task_description = task;
    ne.task_type = TaskType::kDebugging;
    ne.context.domain = "web-api";
    auto id = memory_->CreateEpisode(ne);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or("");
  }

  NewStep StepOf(const std::string& tool, StepStatus status) {
    NewStep s;
    s.tool = tool;
    s.action = "run " + tool;
    s.result = StepResult{status, "out", std::nullopt};
    return s;
  }

  // Declared so that the bus is destroyed (draining its queue into the recorder) before
  // what the recorder writes to.
  testing::TempDir dir_;
  FakeClock clock_;
  Mutex mu_;
  std::vector<std::string> events_ ENGRAM_GUARDED_BY(mu_);
  std::unique_ptr<StorageBackend> store_;
  EventBus bus_;
  std::unique_ptr<Memory> memory_;
};

TEST_F(MemoryTest, FullLifecycleScoresReflectsStoresAndPublishes) {
  std::string id = Create();
  ASSERT_EQ(*memory_->AddStep(id, StepOf("bash", StepStatus::kError)), 1);
  clock_.Advance(std::chrono::seconds(30));
  ASSERT_EQ(*memory_->AddStep(id, StepOf("edit_file", StepStatus::kSuccess)), 2);
  ASSERT_EQ(*memory_->AddStep(id, StepOf("bash", StepStatus::kSuccess)), 3);
  clock_.Advance(std::chrono::seconds(90));
  Outcome o;
  o.verdict = "green";
  auto done = memory_->CompleteEpisode(id, o);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_TRUE(done->reward.has_value());
  ASSERT_TRUE(done->reflection.has_value());
  EXPECT_GT(done->reward->total, 0);
  EXPECT_EQ((*done->end_time - done->start_time).count(), 120'000);

  auto stored = memory_->GetEpisode(id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, *done);

  bus_.Flush();
  MutexLock lock(mu_);
  EXPECT_EQ(events_, (std::vector<std::string>{"created", "step_added", "step_added", "step_added", "completed",
                                               "reflection_generated"}));
}

TEST_F(MemoryTest, BadInputIsRefusedAndWritesNothing) {
  NewEpisode empty;
  EXPECT_EQ(memory_->CreateEpisode(empty).status().message(), "task_description: must not be empty");
  NewEpisode blank;
  blank.task_description = "   \n ";
  EXPECT_EQ(memory_->CreateEpisode(blank).status().code(), StatusCode::kInvalidArgument);
  NewEpisode huge;
  huge.task_description = std::string(10'001, 'x');
  EXPECT_NE(memory_->CreateEpisode(huge).status().message().find("the limit is 10000"), std::string_view::npos);
  NewEpisode exactly;
  exactly.task_description = std::string(10'000, 'x');
  EXPECT_TRUE(memory_->CreateEpisode(exactly).ok());
  NewEpisode bad_meta;
  bad_meta.task_description = "ok";
  bad_meta.metadata_json = "[1,2]";
  EXPECT_EQ(memory_->CreateEpisode(bad_meta).status().message(), "metadata: expected a JSON object");
  NewEpisode bad_utf8;
  bad_utf8.task_description = "caf\xc3";
  EXPECT_EQ(memory_->CreateEpisode(bad_utf8).status().message(), "task_description: not valid UTF-8");
  EXPECT_EQ(store_->Stats()->episodes, 1);

  std::string id = Create();
  NewStep no_tool = StepOf("", StepStatus::kSuccess);
  EXPECT_EQ(memory_->AddStep(id, no_tool).status().message(), "tool: must not be empty");
  NewStep bad_params = StepOf("bash", StepStatus::kSuccess);
  bad_params.parameters_json = "{oops";
  EXPECT_EQ(memory_->AddStep(id, bad_params).status().message(), "parameters: not valid JSON");
  NewStep big = StepOf("bash", StepStatus::kSuccess);
  big.result->output = std::string(kMaxStepOutputBytes + 1, 'x');
  EXPECT_EQ(memory_->AddStep(id, big).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(memory_->AddStep("not-an-id", StepOf("bash", StepStatus::kSuccess)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Stats()->steps, 0);

  Outcome failure;
  failure.kind = OutcomeKind::kFailure;  // no reason
  EXPECT_EQ(memory_->CompleteEpisode(id, failure).status().message(), "outcome.reason: must not be empty");
  Outcome bad_cov;
  bad_cov.verification = Verification{1, 0, true, 0, 120.0};
  EXPECT_EQ(memory_->CompleteEpisode(id, bad_cov).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(memory_->GetEpisode(id)->completed());
}

TEST_F(MemoryTest, StepAfterCompletionAndSecondCompletionAreErrors) {
  std::string id = Create();
  ASSERT_TRUE(memory_->CompleteEpisode(id, Outcome{}).ok());
  auto step = memory_->AddStep(id, StepOf("bash", StepStatus::kSuccess));
  EXPECT_EQ(step.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(step.status().message().find("already completed"), std::string_view::npos);
  EXPECT_EQ(memory_->CompleteEpisode(id, Outcome{}).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(MemoryTest, UnknownEpisodeIsNotFound) {
  std::string id = NewUuidV7(clock_);
  EXPECT_EQ(memory_->GetEpisode(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(memory_->AddStep(id, StepOf("bash", StepStatus::kSuccess)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(memory_->CompleteEpisode(id, Outcome{}).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(*memory_->DeleteEpisode(id));
}

TEST_F(MemoryTest, AFailingHandlerNeverLosesTheWrite) {
  bus_.Subscribe("broken", [](const EpisodeEvent&) -> Status { return InternalError("boom"); });
  bus_.Subscribe("thrower", [](const EpisodeEvent&) -> Status { throw std::runtime_error("kaboom"); });
  std::string id = Create();
  ASSERT_TRUE(memory_->CompleteEpisode(id, Outcome{}).ok());
  bus_.Flush();
  EXPECT_TRUE(memory_->GetEpisode(id)->completed());
  EventBusStats stats = bus_.Stats();
  EXPECT_EQ(stats.failed, 2u * 3u);  // two bad handlers × three events
}

}  // namespace
}  // namespace engram
