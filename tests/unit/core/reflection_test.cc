#include "core/reflection.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/reward.h"
#include "engram/types.h"

namespace engram {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr int64_t kSecondMs = 1'000;
constexpr int64_t kMinuteMs = 60'000;
const Timestamp kStart{std::chrono::milliseconds{1'700'000'000'000}};

constexpr auto kOk = StepStatus::kSuccess;
constexpr auto kErr = StepStatus::kError;
constexpr auto kTimeout = StepStatus::kTimeout;
constexpr std::optional<StepStatus> kNoResult = std::nullopt;

struct StepSpec {
  std::string tool;
  std::optional<StepStatus> status;
  std::string message = "";
  std::optional<int64_t> latency_ms = std::nullopt;
};

// Steps numbered 1..n.
std::vector<Step> MakeSteps(const std::vector<StepSpec>& specs) {
  std::vector<Step> steps;
  for (size_t i = 0; i < specs.size(); ++i) {
    Step step;
    step.step_number = static_cast<int>(i) + 1;
    step.timestamp = kStart + std::chrono::seconds{static_cast<int64_t>(i)};
    step.tool = specs[i].tool;
    step.action = "act";
    if (specs[i].status) {
      step.result = StepResult{*specs[i].status, std::nullopt, std::nullopt};
      if (!specs[i].message.empty()) step.result->message = specs[i].message;
    }
    step.latency_ms = specs[i].latency_ms;
    steps.push_back(std::move(step));
  }
  return steps;
}

Episode MakeEpisode(OutcomeKind kind, int64_t duration_ms, std::vector<Step> steps) {
  Episode episode;
  episode.episode_id = "0190b7d4-0000-7000-8000-000000000002";
  episode.task_description = "fix the flaky async test";
  episode.task_type = TaskType::kDebugging;
  episode.context.domain = "web-api";
  episode.start_time = kStart;
  episode.end_time = kStart + std::chrono::milliseconds{duration_ms};
  episode.steps = std::move(steps);
  Outcome outcome;
  outcome.kind = kind;
  episode.outcome = outcome;
  return episode;
}

Reflection Reflect(const Episode& episode) { return GenerateReflection(episode, ComputeReward(episode)); }

void ExpectCapped(const Reflection& r) {
  EXPECT_LE(r.successes.size(), kMaxReflectionItems);
  EXPECT_LE(r.improvements.size(), kMaxReflectionItems);
  EXPECT_LE(r.insights.size(), kMaxReflectionItems);
}

TEST(ReflectionTest, CleanSuccessWithVerification) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, 2 * kMinuteMs,
                          MakeSteps({{"read_file", kOk},
                                     {"edit_file", kOk},
                                     {"run_tests", kOk},
                                     {"edit_file", kOk},
                                     {"run_tests", kOk}}));
  e.context.language = "rust";
  e.outcome->verdict = "flaky test fixed";
  e.outcome->artifacts = {"src/lib.rs"};
  Verification v;
  v.tests_passed = 12;
  v.tests_failed = 0;
  v.build_ok = true;
  e.outcome->verification = v;

  const Reflection r = Reflect(e);
  EXPECT_THAT(r.successes, ElementsAre("Task succeeded in 5 steps over 2.0 min: flaky test fixed; "
                                       "artifacts: src/lib.rs",
                                       "Verified: 12 tests passed, build ok", "All 5 steps succeeded"));
  EXPECT_THAT(r.improvements, IsEmpty());
  // The reward is the worked example of reward.h: 1 × 1.0733 × 1.1 × 1.4 + 0.2 = 1.8529.
  EXPECT_THAT(
      r.insights,
      ElementsAre("Tool sequence that worked for debugging in web-api (rust): read_file → edit_file → "
                  "run_tests → edit_file → run_tests",
                  "Reward 1.85 = base 1.00 × efficiency 1.07 × complexity 1.10 × quality 1.40 + "
                  "learning 0.20"));
}

TEST(ReflectionTest, FailureNamesStepsToolsAndVerification) {
  Episode e = MakeEpisode(OutcomeKind::kFailure, 14 * kMinuteMs,
                          MakeSteps({{"read_file", kOk},
                                     {"bash", kErr, "permission denied"},
                                     {"cargo test", kErr, "1 failed\n  at line 3"},
                                     {"edit_file", kOk},
                                     {"bash", kTimeout},
                                     {"read_file", kOk},
                                     {"cargo test", kOk, "", 93'200},
                                     {"edit_file", kOk},
                                     {"cargo test", kOk},
                                     {"read_file", kOk}}));
  e.context.language = "rust";
  e.outcome->reason = "race still reproduces";
  e.outcome->error_details = "thread 'main' panicked";
  Verification v;
  v.tests_passed = 40;
  v.tests_failed = 3;
  v.build_ok = true;
  v.coverage_pct = 45.0;
  e.outcome->verification = v;

  const Reflection r = Reflect(e);
  // Recoveries: step 3 by step 4 (next step ok), step 5 by step 6 (next step ok); step 2
  // (bash) is followed by a failure and no later bash step succeeds.
  EXPECT_THAT(r.successes, ElementsAre("Verified: build ok",
                                       "Recovered from an error in step 3 (cargo test) by step 4 (edit_file)",
                                       "Recovered from a timeout in step 5 (bash) by step 6 (read_file)"));
  EXPECT_THAT(r.improvements, ElementsAre("Task failed: race still reproduces (thread 'main' panicked)",
                                          "Verification problems: 3 of 43 tests failed, coverage only 45.0%",
                                          "3 of 10 steps failed: bash (steps 2, 5), cargo test (step 3)",
                                          "Step 2 (bash) failed and was not recovered: permission denied"));
  // Reward: base 0; quality 1 − 0.3 + 0.1 − 0.1 (3/10 > 0.1) = 0.7; learning 0.1 (4 tools)
  // + 0.2 (2 recoveries) = 0.3; efficiency 0.5·(0.5 + e^-7) + 0.5·(0.5 + e^-0.5) = 0.8037.
  EXPECT_THAT(
      r.insights,
      ElementsAre("Tool sequence that did not succeed for debugging in web-api (rust): read_file → bash "
                  "→ cargo test → edit_file → bash → read_file → cargo test → edit_file → …",
                  "After cargo test failed in step 3, edit_file in step 4 led to cargo test succeeding "
                  "in step 7",
                  "Slowest step: 7 (cargo test) took 93.2 s",
                  "Reward 0.30 = base 0.00 × efficiency 0.80 × complexity 1.10 × quality 0.70 + "
                  "learning 0.30"));
}

TEST(ReflectionTest, PartialSuccess) {
  Episode e = MakeEpisode(
      OutcomeKind::kPartialSuccess, 3 * kMinuteMs,
      MakeSteps({{"read_file", kOk}, {"edit_file", kOk}, {"bash", kErr, "exit status 2"}, {"bash", kOk}}));
  e.task_type = TaskType::kCodeGeneration;
  e.context.domain = "general";
  e.context.language = "go";
  e.context.framework = "gin";
  e.outcome->completed = {"parse config", "write migration"};
  e.outcome->failed = {"update docs"};

  const Reflection r = Reflect(e);
  EXPECT_THAT(r.successes, ElementsAre("Completed 2 of 3 parts: parse config, write migration",
                                       "Recovered from an error in step 3 (bash) by step 4 (bash)"));
  EXPECT_THAT(r.improvements, ElementsAre("Left unfinished: update docs (1 of 3 parts)",
                                          "1 of 4 steps failed: bash (step 3)"));
  // "general" is left out of the label. Reward: base 2/3; efficiency 0.5·(0.5 + e^-1.5)
  // + 0.5·(0.5 + e^-0.2) = 1.0209; quality 1 − 0.1 (1/4 > 0.1) = 0.9; learning 0.1 (3 tools)
  // + 0.1 (1 recovery) = 0.2; total = 0.6667 × 1.0209 × 1.1 × 0.9 + 0.2 = 0.8738.
  EXPECT_THAT(r.insights,
              ElementsAre("Tool sequence that partly worked for code generation (go, gin): read_file → "
                          "edit_file → bash",
                          "Retrying bash worked after an error (step 3 → step 4)",
                          "Reward 0.87 = base 0.67 × efficiency 1.02 × complexity 1.10 × quality 0.90 + "
                          "learning 0.20"));
}

TEST(ReflectionTest, ImprovementsAreCappedAtFiveInPriorityOrder) {
  std::vector<StepSpec> specs = {
      {"bash", kErr, "exit 1"}, {"bash", kErr, "exit 1"}, {"bash", kErr, "exit 1"}, {"make", kNoResult}};
  for (int i = 0; i < 16; ++i) specs.push_back({"read_file", kOk});
  Episode e = MakeEpisode(OutcomeKind::kFailure, 60 * kMinuteMs, MakeSteps(specs));
  e.outcome->reason = "linker error";
  Verification v;
  v.build_ok = false;
  e.outcome->verification = v;

  const Reflection r = Reflect(e);
  ExpectCapped(r);
  // Seven rules fire; the retry loop (bash ×3) and the slow run (efficiency 0.68) are dropped.
  EXPECT_THAT(r.improvements, ElementsAre("Task failed: linker error", "Verification problems: build broken",
                                          "4 of 20 steps failed: bash (steps 1, 2, 3), make (step 4)",
                                          "Step 1 (bash) failed and was not recovered: exit 1",
                                          "Step 2 (bash) failed and was not recovered: exit 1"));
  EXPECT_THAT(r.successes, ElementsAre("Recovered from a step with no result in step 4 (make) by step 5 "
                                       "(read_file)"));
  EXPECT_THAT(r.insights, SizeIs(4));
  EXPECT_EQ(r.insights[0],
            "Tool sequence that did not succeed for debugging in web-api: bash → make → read_file");
  EXPECT_EQ(r.insights[1], "After make failed in step 4, read_file succeeded next (step 5)");
  EXPECT_EQ(r.insights[2], "Most used tool: read_file (16 of 20 steps)");
  EXPECT_THAT(r.insights[3], StartsWith("Reward 0.30 = base 0.00 × "));
}

TEST(ReflectionTest, RetryLoopAndSlowRun) {
  std::vector<StepSpec> specs = {{"bash", kErr}, {"bash", kErr}, {"bash", kErr}};
  for (int i = 0; i < 17; ++i) specs.push_back({"bash", kOk});
  Episode e = MakeEpisode(OutcomeKind::kSuccess, 60 * kMinuteMs, MakeSteps(specs));

  const Reflection r = Reflect(e);
  EXPECT_THAT(r.successes,
              ElementsAre("Task succeeded in 20 steps over 60.0 min",
                          "Recovered from failures in steps 1 (bash), 2 (bash), 3 (bash) by step 4 (bash)"));
  // efficiency = 0.5·(0.5 + e^-30) + 0.5·(0.5 + e^-1) = 0.6839
  EXPECT_THAT(
      r.improvements,
      ElementsAre("3 of 20 steps failed: bash (steps 1, 2, 3)",
                  "bash failed 3 times in a row (steps 1-3); change approach sooner instead of retrying",
                  "Slow run: 20 steps over 60.0 min (efficiency 0.68); look for a shorter path"));
  EXPECT_THAT(r.insights, SizeIs(4));
  EXPECT_EQ(r.insights[0], "Tool sequence that worked for debugging in web-api: bash");
  EXPECT_EQ(r.insights[1], "Retrying bash worked after an error (step 1 → step 4)");
  EXPECT_EQ(r.insights[2], "Most used tool: bash (20 of 20 steps)");
  EXPECT_THAT(r.insights[3], StartsWith("Reward "));
}

TEST(ReflectionTest, SuccessesAreCappedAtFiveAndShowTwoRecoveries) {
  Episode e = MakeEpisode(
      OutcomeKind::kPartialSuccess, 30 * kSecondMs,
      MakeSteps(
          {{"bash", kErr}, {"bash", kOk}, {"make", kErr}, {"make", kOk}, {"grep", kErr}, {"grep", kOk}}));
  e.outcome->completed = {"a"};
  e.outcome->failed = {"b"};
  Verification v;
  v.build_ok = true;
  e.outcome->verification = v;

  const Reflection r = Reflect(e);
  ExpectCapped(r);
  // efficiency = 0.5·(0.5 + e^-0.25) + 0.5·(0.5 + e^-0.3) = 1.2598 ≥ 1.2; the third
  // recovery (step 5 by step 6) is not shown.
  EXPECT_THAT(r.successes, ElementsAre("Completed 1 of 2 parts: a", "Verified: build ok",
                                       "Recovered from an error in step 1 (bash) by step 2 (bash)",
                                       "Recovered from an error in step 3 (make) by step 4 (make)",
                                       "Efficient run: 6 steps in 30.0 s (efficiency 1.26)"));
}

TEST(ReflectionTest, LongTextsAreTruncated) {
  const std::string long_tool(100, 'x');
  Episode e =
      MakeEpisode(OutcomeKind::kFailure, 10 * kMinuteMs, MakeSteps({{long_tool, kErr}, {long_tool, kOk}}));
  e.outcome->reason = "line one\n\n   line two " + std::string(300, 'y');

  const Reflection r = Reflect(e);
  // Tool names: 40 characters and "…". Reasons: whitespace collapsed, 160 characters and "…"
  // ("line one line two " is 18 characters, so 142 'y' follow).
  const std::string tool = std::string(40, 'x') + "…";
  ASSERT_THAT(r.improvements, SizeIs(2));
  EXPECT_EQ(r.improvements[0], "Task failed: line one line two " + std::string(142, 'y') + "…");
  EXPECT_EQ(r.improvements[1], "1 of 2 steps failed: " + tool + " (step 1)");
  EXPECT_THAT(r.successes,
              ElementsAre("Recovered from an error in step 1 (" + tool + ") by step 2 (" + tool + ")"));
}

TEST(ReflectionTest, HugeStepOutputIsCut) {
  Episode e = MakeEpisode(OutcomeKind::kFailure, kMinuteMs, MakeSteps({{"bash", kErr}}));
  e.steps[0].result->output = std::string(1 << 20, 'z');  // no message: the output is shown
  const Reflection r = Reflect(e);
  ASSERT_THAT(r.improvements, SizeIs(3));
  EXPECT_EQ(r.improvements[0], "Task failed");  // no reason given
  EXPECT_EQ(r.improvements[1], "1 of 1 step failed: bash (step 1)");
  EXPECT_EQ(r.improvements[2], "Step 1 (bash) failed and was not recovered: " + std::string(120, 'z') + "…");
}

TEST(ReflectionTest, LongListsShowThreeEntries) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, 90 * kSecondMs, MakeSteps({{"edit_file", kOk}}));
  e.outcome->artifacts = {"a.cc", "b.cc", "c.cc", "d.cc", "e.cc"};
  const Reflection r = Reflect(e);
  ASSERT_THAT(r.successes, SizeIs(3));
  EXPECT_EQ(r.successes[0], "Task succeeded in 1 step over 90.0 s; artifacts: a.cc, b.cc, c.cc, +2 more");
  EXPECT_EQ(r.successes[1], "The single step succeeded");
  // efficiency = 0.5·(0.5 + e^-0.75) + 0.5·(0.5 + e^-0.05) = 1.2118
  EXPECT_EQ(r.successes[2], "Efficient run: 1 step in 90.0 s (efficiency 1.21)");
}

TEST(ReflectionTest, ZeroSteps) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, 0, {});
  const Reflection r = Reflect(e);
  EXPECT_THAT(r.successes, ElementsAre("Task succeeded with no steps recorded"));
  EXPECT_THAT(r.improvements,
              ElementsAre("No steps were recorded; record each tool call (add_episode_step) so "
                          "later tasks can learn from it"));
  // 1 × 1.5 × 1.1 × 1.0 + 0 = 1.65
  EXPECT_THAT(r.insights, ElementsAre("Reward 1.65 = base 1.00 × efficiency 1.50 × complexity 1.10 × quality "
                                      "1.00 + learning 0.00"));
}

TEST(ReflectionTest, TimeoutsMissingResultsAndSlowSteps) {
  Episode e = MakeEpisode(OutcomeKind::kFailure, 5 * kMinuteMs,
                          MakeSteps({{"cargo build", kOk, "", 2 * kMinuteMs},
                                     {"run_tests", kTimeout, "", 5'000},
                                     {"deploy", kNoResult}}));
  e.outcome->reason = "deploy never finished";
  const Reflection r = Reflect(e);
  EXPECT_THAT(r.successes, IsEmpty());
  EXPECT_THAT(r.improvements,
              ElementsAre("Task failed: deploy never finished",
                          "2 of 3 steps failed: run_tests (step 2), deploy (step 3)",
                          "Step 2 (run_tests) timed out and was not recovered",
                          "Step 3 (deploy) has no recorded result; record the result of every step"));
  ASSERT_THAT(r.insights, SizeIs(3));
  EXPECT_EQ(r.insights[0],
            "Tool sequence that did not succeed for debugging in web-api: cargo build → run_tests → deploy");
  EXPECT_EQ(r.insights[1], "Slowest step: 1 (cargo build) took 2.0 min");
}

TEST(ReflectionTest, IsDeterministic) {
  Episode e = MakeEpisode(OutcomeKind::kFailure, 7 * kMinuteMs,
                          MakeSteps({{"grep", kOk}, {"bash", kErr}, {"edit_file", kOk}, {"bash", kTimeout}}));
  const Reward reward = ComputeReward(e);
  const Reflection first = GenerateReflection(e, reward);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(GenerateReflection(e, reward), first);
}

TEST(ReflectionTest, UsesTheRewardItIsGiven) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, kMinuteMs, MakeSteps({{"bash", kOk}}));
  Reward reward;
  reward.total = 2.5;
  reward.base = 1;
  reward.efficiency = 0.75;
  reward.complexity_bonus = 1.2;
  reward.quality_multiplier = 1.5;
  reward.learning_bonus = 0.25;
  const Reflection r = GenerateReflection(e, reward);
  EXPECT_THAT(r.improvements,
              ElementsAre("Slow run: 1 step over 60.0 s (efficiency 0.75); look for a shorter path"));
  EXPECT_EQ(r.insights.back(),
            "Reward 2.50 = base 1.00 × efficiency 0.75 × complexity 1.20 × quality 1.50 + learning 0.25");
}

}  // namespace
}  // namespace engram
