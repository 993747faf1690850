#include "core/reward.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "engram/types.h"

// Every expected value below is worked out by hand from the rules in reward.h. The
// exponentials used, to 16 digits:
//   e^-0.15 = 0.8607079764250578   e^-0.25 = 0.7788007830714049   e^-0.3 = 0.7408182206817179
//   e^-0.5  = 0.6065306597126334   e^-1    = 0.3678794411714423   e^-5   = 0.006737946999085467
//   e^-15   = 3.059023205018258e-07

namespace engram {
namespace {

constexpr double kTolerance = 1e-9;
constexpr int64_t kMinuteMs = 60'000;

const Timestamp kStart{std::chrono::milliseconds{1'700'000'000'000}};

Step MakeStep(int number, std::string tool, std::optional<StepStatus> status) {
  Step step;
  step.step_number = number;
  step.timestamp = kStart + std::chrono::milliseconds{number * 1'000};
  step.tool = std::move(tool);
  step.action = "act";
  if (status) step.result = StepResult{*status, std::nullopt, std::nullopt};
  return step;
}

// Steps numbered 1..n from (tool, status) pairs; std::nullopt status = no result.
std::vector<Step> MakeSteps(const std::vector<std::pair<std::string, std::optional<StepStatus>>>& specs) {
  std::vector<Step> steps;
  for (size_t i = 0; i < specs.size(); ++i) {
    steps.push_back(MakeStep(static_cast<int>(i) + 1, specs[i].first, specs[i].second));
  }
  return steps;
}

Episode MakeEpisode(OutcomeKind kind, Complexity complexity, int64_t duration_ms, std::vector<Step> steps) {
  Episode episode;
  episode.episode_id = "0190b7d4-0000-7000-8000-000000000001";
  episode.task_description = "fix the flaky async test";
  episode.task_type = TaskType::kDebugging;
  episode.context.domain = "web-api";
  episode.context.complexity = complexity;
  episode.start_time = kStart;
  episode.end_time = kStart + std::chrono::milliseconds{duration_ms};
  episode.steps = std::move(steps);
  Outcome outcome;
  outcome.kind = kind;
  episode.outcome = outcome;
  return episode;
}

constexpr auto kOk = StepStatus::kSuccess;
constexpr auto kErr = StepStatus::kError;
constexpr auto kTimeout = StepStatus::kTimeout;
constexpr std::optional<StepStatus> kNoResult = std::nullopt;

TEST(RewardTest, FastCleanSuccessWithVerification) {
  // The worked example of reward.h.
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kModerate, 2 * kMinuteMs,
                          MakeSteps({{"read_file", kOk},
                                     {"edit_file", kOk},
                                     {"run_tests", kOk},
                                     {"edit_file", kOk},
                                     {"run_tests", kOk}}));
  Verification v;
  v.tests_passed = 12;
  v.tests_failed = 0;
  v.build_ok = true;
  e.outcome->verification = v;
  const Reward r = ComputeReward(e);
  // base = 1 (success)
  EXPECT_NEAR(r.base, 1.0, kTolerance);
  // minutes = 2: D = 0.5 + e^-1 = 0.8678794411714423
  // steps = 5:   S = 0.5 + e^-(0.5/2) = 0.5 + e^-0.25 = 1.2788007830714049
  // efficiency = 0.5·0.8678794411714423 + 0.5·1.2788007830714049 = 1.0733401121214236
  EXPECT_NEAR(r.efficiency, 1.0733401121214236, kTolerance);
  // moderate
  EXPECT_NEAR(r.complexity_bonus, 1.1, kTolerance);
  // quality = 1 + 0.2 (12 passed, 0 failed) + 0.1 (build ok) + 0.1 (no failed step) = 1.4;
  // coverage and lint_warnings absent: no adjustment.
  EXPECT_NEAR(r.quality_multiplier, 1.4, kTolerance);
  // learning = 0.1 (3 tools: read_file, edit_file, run_tests) + 0.1 (5/5 = 1 ≥ 0.8)
  //          + 0 (no failed step, no recovery) = 0.2
  EXPECT_NEAR(r.learning_bonus, 0.2, kTolerance);
  // total = 1 × 1.0733401121214236 × 1.1 × 1.4 + 0.2 = 1.6529437726669924 + 0.2
  EXPECT_NEAR(r.total, 1.8529437726669924, kTolerance);
}

TEST(RewardTest, PartialSuccess) {
  Episode e = MakeEpisode(OutcomeKind::kPartialSuccess, Complexity::kSimple, 10 * kMinuteMs,
                          MakeSteps({{"read_file", kOk},    // 1
                                     {"bash", kErr},        // 2 failed, recovered by 3 (next step ok)
                                     {"edit_file", kOk},    // 3
                                     {"bash", kOk},         // 4
                                     {"bash", kOk},         // 5
                                     {"edit_file", kOk},    // 6
                                     {"bash", kTimeout},    // 7 failed, recovered by 8
                                     {"bash", kOk},         // 8
                                     {"read_file", kOk},    // 9
                                     {"bash", kOk}}));      // 10
  e.outcome->completed = {"parse config", "write migration"};
  e.outcome->failed = {"update docs"};
  Verification v;
  v.lint_warnings = 3;
  v.coverage_pct = 70.0;
  e.outcome->verification = v;
  const Reward r = ComputeReward(e);
  // base = 2 / (2 + 1) = 0.6666666666666666
  EXPECT_NEAR(r.base, 2.0 / 3.0, kTolerance);
  // minutes = 10: D = 0.5 + e^-5 = 0.5067379469990855
  // steps = 10:   S = 0.5 + e^-0.5 = 1.1065306597126334
  // efficiency = 0.5·0.5067379469990855 + 0.5·1.1065306597126334 = 0.8066343033558594
  EXPECT_NEAR(r.efficiency, 0.8066343033558594, kTolerance);
  EXPECT_NEAR(r.complexity_bonus, 1.0, kTolerance);
  // quality = 1 + 0.05 (60 < coverage 70 ≤ 80) + 0 (3 lint warnings) − 0.1 (error rate
  //           2/10 = 0.2 > 0.1) = 0.95
  EXPECT_NEAR(r.quality_multiplier, 0.95, kTolerance);
  // learning = 0.1 (3 tools) + 0.1 (8/10 = 0.8 ≥ 0.8) + 2 × 0.1 (steps 2 and 7 recovered) = 0.4
  EXPECT_NEAR(r.learning_bonus, 0.4, kTolerance);
  // total = 0.6666666666666666 × 0.8066343033558594 × 1.0 × 0.95 + 0.4
  //       = 0.5108683921253776 + 0.4 = 0.9108683921253776
  EXPECT_NEAR(r.total, 0.9108683921253776, kTolerance);
}

TEST(RewardTest, PartialSuccessWithoutListsHasBaseOneHalf) {
  Episode e = MakeEpisode(OutcomeKind::kPartialSuccess, Complexity::kSimple, 0, {});
  const Reward r = ComputeReward(e);
  // base = 0.5 (both lists empty); minutes 0, steps 0: D = S = 1.5, efficiency = 1.5;
  // quality = 1 (no steps, no verification); learning = 0
  // total = 0.5 × 1.5 × 1.0 × 1.0 + 0 = 0.75
  EXPECT_NEAR(r.base, 0.5, kTolerance);
  EXPECT_NEAR(r.total, 0.75, kTolerance);
}

TEST(RewardTest, PartialSuccessWithNothingCompletedHasBaseZero) {
  Episode e = MakeEpisode(OutcomeKind::kPartialSuccess, Complexity::kSimple, 0, {});
  e.outcome->failed = {"a", "b"};
  const Reward r = ComputeReward(e);
  // base = 0 / (0 + 2) = 0; total = 0 × ... + 0 = 0
  EXPECT_NEAR(r.base, 0.0, kTolerance);
  EXPECT_NEAR(r.total, 0.0, kTolerance);
}

TEST(RewardTest, FailureEarnsOnlyTheLearningBonusAndQualityHitsItsFloor) {
  Episode e = MakeEpisode(OutcomeKind::kFailure, Complexity::kComplex, 30 * kMinuteMs,
                          MakeSteps({{"cargo test", kErr},        // 1 recovered by 2 (next step ok)
                                     {"edit_file", kOk},          // 2
                                     {"cargo test", kErr},        // 3 recovered by 6 (same tool)
                                     {"cargo test", kNoResult},   // 4 recovered by 6 (same tool)
                                     {"cargo test", kTimeout},    // 5 recovered by 6 (next step ok)
                                     {"cargo test", kOk}}));      // 6
  e.outcome->reason = "tests still flaky";
  Verification v;
  v.tests_passed = 40;
  v.tests_failed = 2;
  v.build_ok = false;
  e.outcome->verification = v;
  const Reward r = ComputeReward(e);
  // base = 0 (failure)
  EXPECT_NEAR(r.base, 0.0, kTolerance);
  // minutes = 30: D = 0.5 + e^-15 = 0.5000003059023205
  // steps = 6:    S = 0.5 + e^-0.3 = 1.2408182206817179
  // efficiency = 0.5·0.5000003059023205 + 0.5·1.2408182206817179 = 0.8704092632920192
  EXPECT_NEAR(r.efficiency, 0.8704092632920192, kTolerance);
  EXPECT_NEAR(r.complexity_bonus, 1.2, kTolerance);
  // quality = 1 − 0.3 (2 tests failed) − 0.2 (build broken) − 0.2 (error rate 4/6 > 0.3)
  //         = 0.3, clamped up to 0.5
  EXPECT_NEAR(r.quality_multiplier, 0.5, kTolerance);
  // learning = 0 (2 tools) + 0 (2/6 < 0.8) + min(4 × 0.1, 0.3) = 0.3
  EXPECT_NEAR(r.learning_bonus, 0.3, kTolerance);
  // total = 0 × 0.8704… × 1.2 × 0.5 + 0.3 = 0.3
  EXPECT_NEAR(r.total, 0.3, kTolerance);
}

TEST(RewardTest, ZeroStepsAndZeroDuration) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kModerate, 0, {});
  const Reward r = ComputeReward(e);
  // minutes 0, steps 0: D = 0.5 + e^0 = 1.5, S = 0.5 + e^0 = 1.5, efficiency = 1.5 (the top)
  EXPECT_NEAR(r.efficiency, 1.5, kTolerance);
  // no steps: error rate 0 but no clean-run bonus; no verification
  EXPECT_NEAR(r.quality_multiplier, 1.0, kTolerance);
  // no tools, no steps, no recoveries
  EXPECT_NEAR(r.learning_bonus, 0.0, kTolerance);
  // total = 1 × 1.5 × 1.1 × 1.0 + 0 = 1.65
  EXPECT_NEAR(r.total, 1.65, kTolerance);
}

TEST(RewardTest, NegativeDurationCountsAsZero) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kModerate, -5 * kMinuteMs, {});
  const Reward r = ComputeReward(e);
  // minutes = max(−5, 0) = 0, so the same as ZeroStepsAndZeroDuration: 1 × 1.5 × 1.1 × 1 = 1.65
  EXPECT_NEAR(r.efficiency, 1.5, kTolerance);
  EXPECT_NEAR(r.total, 1.65, kTolerance);
}

TEST(RewardTest, QualityHitsItsCeiling) {
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kComplex, 30'000,
                          MakeSteps({{"grep", kOk}, {"edit_file", kOk}, {"make test", kOk}}));
  Verification v;
  v.tests_passed = 100;
  v.tests_failed = 0;
  v.build_ok = true;
  v.lint_warnings = 0;
  v.coverage_pct = 92.5;
  e.outcome->verification = v;
  const Reward r = ComputeReward(e);
  // minutes = 0.5: D = 0.5 + e^-0.25 = 1.2788007830714049
  // steps = 3:     S = 0.5 + e^-0.15 = 1.3607079764250578
  // efficiency = 0.5·1.2788007830714049 + 0.5·1.3607079764250578 = 1.3197543797482314
  EXPECT_NEAR(r.efficiency, 1.3197543797482314, kTolerance);
  // quality = 1 + 0.2 (tests) + 0.1 (build) + 0.1 (coverage 92.5 > 80) + 0.05 (0 lint)
  //         + 0.1 (clean run) = 1.55, clamped down to 1.5
  EXPECT_NEAR(r.quality_multiplier, 1.5, kTolerance);
  // learning = 0.1 (3 tools) + 0.1 (3/3 ≥ 0.8) = 0.2
  EXPECT_NEAR(r.learning_bonus, 0.2, kTolerance);
  // total = 1 × 1.3197543797482314 × 1.2 × 1.5 + 0.2 = 2.3755578835468165 + 0.2
  EXPECT_NEAR(r.total, 2.5755578835468165, kTolerance);
}

TEST(RewardTest, EfficiencyBottomsOutForLongRuns) {
  std::vector<Step> steps;
  for (int i = 1; i <= 1'000; ++i) steps.push_back(MakeStep(i, "bash", kOk));
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kModerate, 1'000 * kMinuteMs, std::move(steps));
  const Reward r = ComputeReward(e);
  // minutes = 1000: D = 0.5 + e^-500 ≈ 0.5; steps = 1000: S = 0.5 + e^-50 ≈ 0.5 + 2e-22
  // efficiency = 0.5 (the floor)
  EXPECT_NEAR(r.efficiency, 0.5, kTolerance);
  // quality = 1 + 0.1 (clean run) = 1.1; learning = 0.1 (1000/1000 ≥ 0.8; one tool only)
  EXPECT_NEAR(r.quality_multiplier, 1.1, kTolerance);
  EXPECT_NEAR(r.learning_bonus, 0.1, kTolerance);
  // total = 1 × 0.5 × 1.1 × 1.1 + 0.1 = 0.605 + 0.1 = 0.705
  EXPECT_NEAR(r.total, 0.705, kTolerance);
}

TEST(RewardTest, ComplexityLevels) {
  // One step, one minute, success, no verification:
  //   D = 0.5 + e^-0.5 = 1.1065306597126334, S = 0.5 + e^-0.05 = 1.4512294245007140
  //   efficiency = 0.5·1.1065306597126334 + 0.5·1.4512294245007140 = 1.2788800421066737
  //   quality = 1 + 0.1 (clean run) = 1.1; learning = 0.1 (1/1 ≥ 0.8)
  //   total = 1 × 1.2788800421066737 × c × 1.1 + 0.1 = 1.4067680463173411 × c + 0.1
  const struct {
    Complexity complexity;
    double bonus;
    double total;
  } kCases[] = {
      {Complexity::kSimple, 1.0, 1.5067680463173411},   // 1.4067680463173411 × 1.0 + 0.1
      {Complexity::kModerate, 1.1, 1.6474448509490752},  // 1.4067680463173411 × 1.1 + 0.1
      {Complexity::kComplex, 1.2, 1.7881216555808093},   // 1.4067680463173411 × 1.2 + 0.1
  };
  for (const auto& c : kCases) {
    Episode e = MakeEpisode(OutcomeKind::kSuccess, c.complexity, kMinuteMs, MakeSteps({{"bash", kOk}}));
    const Reward r = ComputeReward(e);
    EXPECT_NEAR(r.efficiency, 1.2788800421066737, kTolerance);
    EXPECT_NEAR(r.complexity_bonus, c.bonus, kTolerance) << ComplexityName(c.complexity);
    EXPECT_NEAR(r.total, c.total, kTolerance) << ComplexityName(c.complexity);
  }
}

TEST(RewardTest, ThresholdsAreStrictWhereTheDesignSaysSo) {
  // 10 steps in 1 minute, 1 failed (error rate 0.1, not > 0.1), coverage exactly 80 (not > 80).
  std::vector<Step> steps = MakeSteps({{"bash", kErr}});
  for (int i = 2; i <= 10; ++i) steps.push_back(MakeStep(i, "bash", kOk));
  Episode e = MakeEpisode(OutcomeKind::kSuccess, Complexity::kSimple, kMinuteMs, std::move(steps));
  Verification v;
  v.coverage_pct = 80.0;
  e.outcome->verification = v;
  const Reward r = ComputeReward(e);
  // quality = 1 + 0.05 (60 < 80 ≤ 80) + 0 (0.1 is not > 0.1, and not a clean run) = 1.05
  EXPECT_NEAR(r.quality_multiplier, 1.05, kTolerance);
  // learning = 0 (1 tool) + 0.1 (9/10 ≥ 0.8) + 0.1 (step 1 recovered by step 2) = 0.2
  EXPECT_NEAR(r.learning_bonus, 0.2, kTolerance);
  // D = 0.5 + e^-0.5 = 1.1065306597126334, S = 0.5 + e^-0.5 = 1.1065306597126334,
  // efficiency = 1.1065306597126334
  // total = 1 × 1.1065306597126334 × 1.0 × 1.05 + 0.2 = 1.1618571926982651 + 0.2
  EXPECT_NEAR(r.total, 1.3618571926982651, kTolerance);
}

TEST(RewardTest, RecoveryNeedsTheNextStepOrTheSameTool) {
  const std::vector<Step> steps = MakeSteps({{"bash", kErr},        // 1: next fails, no later bash ok
                                             {"grep", kTimeout},    // 2: next step ok
                                             {"edit_file", kOk},    // 3
                                             {"make", kNoResult},   // 4: next fails, later make ok
                                             {"grep", kErr},        // 5: next step ok
                                             {"make", kOk}});       // 6
  const std::vector<StepRecovery> recoveries = FindStepRecoveries(steps);
  const std::vector<StepRecovery> expected = {{1, 2}, {3, 5}, {4, 5}};
  EXPECT_EQ(recoveries, expected);
}

TEST(RewardTest, HighErrorRateWithoutRecoveryEarnsNothing) {
  // 3 steps, 0 recoveries: bash ok, bash error, make error (nothing after them succeeds).
  Episode e = MakeEpisode(OutcomeKind::kFailure, Complexity::kModerate, 2 * kMinuteMs,
                          MakeSteps({{"bash", kOk}, {"bash", kErr}, {"make", kErr}}));
  const Reward r = ComputeReward(e);
  // quality = 1 − 0.2 (error rate 2/3 > 0.3) = 0.8; learning = 0 (2 tools, 1/3, no recovery)
  EXPECT_NEAR(r.quality_multiplier, 0.8, kTolerance);
  EXPECT_NEAR(r.learning_bonus, 0.0, kTolerance);
  EXPECT_NEAR(r.total, 0.0, kTolerance);
}

}  // namespace
}  // namespace engram
