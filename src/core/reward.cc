#include "core/reward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <string>

#include "common/check.h"

namespace engram {
namespace {

// Keep these in step with the table in reward.h: users compute rewards by hand from it.

// base
constexpr double kSuccessBase = 1.0;
constexpr double kFailureBase = 0.0;
constexpr double kPartialBaseWhenUnlisted = 0.5;  // partial_success with empty lists

// efficiency
constexpr double kEfficiencyMin = 0.5;
constexpr double kEfficiencyMax = 1.5;
constexpr double kDurationFloor = 0.5;        // D = 0.5 + e^(−minutes / 2)
constexpr double kDurationScaleMinutes = 2.0;
constexpr double kStepsFloor = 0.5;           // S = 0.5 + e^(−(steps / 10) / 2)
constexpr double kStepsPerUnit = 10.0;
constexpr double kStepsScale = 2.0;

// complexity
constexpr double kSimpleComplexity = 1.0;
constexpr double kModerateComplexity = 1.1;
constexpr double kComplexComplexity = 1.2;

// quality
constexpr double kQualityStart = 1.0;
constexpr double kQualityMin = 0.5;
constexpr double kQualityMax = 1.5;
constexpr double kTestsFailedPenalty = 0.3;
constexpr double kAllTestsPassBonus = 0.2;
constexpr double kBuildOkBonus = 0.1;
constexpr double kBuildBrokenPenalty = 0.2;
constexpr double kHighCoveragePct = 80.0;
constexpr double kHighCoverageBonus = 0.1;
constexpr double kGoodCoveragePct = 60.0;
constexpr double kGoodCoverageBonus = 0.05;
constexpr double kNoLintWarningsBonus = 0.05;
constexpr double kCleanRunBonus = 0.1;
constexpr double kHighErrorRate = 0.3;
constexpr double kHighErrorRatePenalty = 0.2;
constexpr double kModerateErrorRate = 0.1;
constexpr double kModerateErrorRatePenalty = 0.1;

// learning
constexpr size_t kDiversityMinTools = 3;
constexpr double kDiversityBonus = 0.1;
constexpr double kHighStepSuccessRate = 0.8;
constexpr double kHighStepSuccessBonus = 0.1;
constexpr double kRecoveryBonus = 0.1;
constexpr double kMaxRecoveryBonus = 0.3;
constexpr double kMaxLearningBonus = 0.5;

double Base(const Outcome& outcome) {
  switch (outcome.kind) {
    case OutcomeKind::kSuccess:
      return kSuccessBase;
    case OutcomeKind::kPartialSuccess: {
      const size_t total = outcome.completed.size() + outcome.failed.size();
      if (total == 0) return kPartialBaseWhenUnlisted;
      return static_cast<double>(outcome.completed.size()) / static_cast<double>(total);
    }
    case OutcomeKind::kFailure:
      return kFailureBase;
  }
  return kFailureBase;
}

double Minutes(const Episode& episode) {
  if (!episode.end_time) return 0.0;
  const auto ms = (*episode.end_time - episode.start_time).count();
  if (ms <= 0) return 0.0;
  return static_cast<double>(ms) / 60'000.0;
}

double Efficiency(const Episode& episode) {
  const double d = kDurationFloor + std::exp(-Minutes(episode) / kDurationScaleMinutes);
  const double steps = static_cast<double>(episode.steps.size());
  const double s = kStepsFloor + std::exp(-(steps / kStepsPerUnit) / kStepsScale);
  return std::clamp(0.5 * d + 0.5 * s, kEfficiencyMin, kEfficiencyMax);
}

double ComplexityBonus(Complexity complexity) {
  switch (complexity) {
    case Complexity::kSimple:
      return kSimpleComplexity;
    case Complexity::kModerate:
      return kModerateComplexity;
    case Complexity::kComplex:
      return kComplexComplexity;
  }
  return kModerateComplexity;
}

size_t CountFailed(const std::vector<Step>& steps) {
  return static_cast<size_t>(
      std::count_if(steps.begin(), steps.end(), [](const Step& s) { return !s.Succeeded(); }));
}

double Quality(const Episode& episode) {
  double quality = kQualityStart;
  if (episode.outcome && episode.outcome->verification) {
    const Verification& v = *episode.outcome->verification;
    if (v.tests_failed.value_or(0) > 0) {
      quality -= kTestsFailedPenalty;
    } else if (v.tests_passed.value_or(0) > 0) {
      quality += kAllTestsPassBonus;
    }
    if (v.build_ok) quality += *v.build_ok ? kBuildOkBonus : -kBuildBrokenPenalty;
    if (v.coverage_pct) {
      if (*v.coverage_pct > kHighCoveragePct) {
        quality += kHighCoverageBonus;
      } else if (*v.coverage_pct > kGoodCoveragePct) {
        quality += kGoodCoverageBonus;
      }
    }
    if (v.lint_warnings && *v.lint_warnings == 0) quality += kNoLintWarningsBonus;
  }
  if (!episode.steps.empty()) {
    const double error_rate =
        static_cast<double>(CountFailed(episode.steps)) / static_cast<double>(episode.steps.size());
    if (error_rate == 0.0) {
      quality += kCleanRunBonus;
    } else if (error_rate > kHighErrorRate) {
      quality -= kHighErrorRatePenalty;
    } else if (error_rate > kModerateErrorRate) {
      quality -= kModerateErrorRatePenalty;
    }
  }
  return std::clamp(quality, kQualityMin, kQualityMax);
}

double LearningBonus(const Episode& episode) {
  double bonus = 0.0;
  std::set<std::string> tools;
  for (const Step& s : episode.steps) {
    if (!s.tool.empty()) tools.insert(s.tool);
  }
  if (tools.size() >= kDiversityMinTools) bonus += kDiversityBonus;
  if (!episode.steps.empty()) {
    const double success_rate = static_cast<double>(episode.steps.size() - CountFailed(episode.steps)) /
                                static_cast<double>(episode.steps.size());
    if (success_rate >= kHighStepSuccessRate) bonus += kHighStepSuccessBonus;
  }
  const size_t recoveries = FindStepRecoveries(episode.steps).size();
  bonus += std::min(kRecoveryBonus * static_cast<double>(recoveries), kMaxRecoveryBonus);
  return std::min(bonus, kMaxLearningBonus);
}

}  // namespace

std::vector<StepRecovery> FindStepRecoveries(const std::vector<Step>& steps) {
  std::vector<StepRecovery> recoveries;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].Succeeded()) continue;
    if (i + 1 < steps.size() && steps[i + 1].Succeeded()) {
      recoveries.push_back({i, i + 1});
      continue;
    }
    for (size_t j = i + 1; j < steps.size(); ++j) {
      if (steps[j].Succeeded() && steps[j].tool == steps[i].tool) {
        recoveries.push_back({i, j});
        break;
      }
    }
  }
  return recoveries;
}

Reward ComputeReward(const Episode& episode) {
  ENGRAM_DCHECK(episode.outcome.has_value());
  ENGRAM_DCHECK(episode.end_time.has_value());
  Reward reward;
  reward.base = episode.outcome ? Base(*episode.outcome) : kFailureBase;
  reward.efficiency = Efficiency(episode);
  reward.complexity_bonus = ComplexityBonus(episode.context.complexity);
  reward.quality_multiplier = Quality(episode);
  reward.learning_bonus = LearningBonus(episode);
  reward.total = std::max(reward.base, 0.0) * reward.efficiency * reward.complexity_bonus *
                     reward.quality_multiplier +
                 reward.learning_bonus;
  return reward;
}

}  // namespace engram
