// The reward engram gives a completed episode (DESIGN §3): one number, `total`, that says
// how well the task went, plus the factors it was built from so a reader can see why.
//
//   total = max(base, 0) × efficiency × complexity_bonus × quality_multiplier + learning_bonus
//
// Every constant below is the exact value used by reward.cc; with them a reward can be
// computed by hand. "Failed step" means a step without a result or with status error or
// timeout (Step::Succeeded() is false). `steps` is episode.steps.size().
//
// base
//   success          1.0
//   partial_success  completed / (completed + failed), the sizes of the outcome's lists;
//                    0.5 when both lists are empty (nothing says how much got done)
//   failure          0.0
//
// efficiency = clamp(0.5·D + 0.5·S, 0.5, 1.5)
//   minutes = (end_time − start_time) in minutes, fractional; a negative duration counts as 0
//   D = 0.5 + e^(−minutes / 2)           (1.5 at 0 min, 0.5 + e^−1 ≈ 0.868 at 2 min)
//   S = 0.5 + e^(−(steps / 10) / 2)      (1.5 at 0 steps, 0.5 + e^−0.5 ≈ 1.107 at 10 steps)
//
// complexity_bonus (episode.context.complexity)
//   simple 1.0, moderate 1.1, complex 1.2
//
// quality_multiplier = clamp(1.0 + Σ adjustments, 0.5, 1.5)
//   From outcome.verification, each signal only when present:
//     tests_failed > 0                              −0.3
//     otherwise tests_passed > 0 (all passing)      +0.2
//     build_ok == true                              +0.1
//     build_ok == false (build broken)              −0.2
//     coverage_pct > 80                             +0.1
//     otherwise coverage_pct > 60                   +0.05
//     lint_warnings == 0                            +0.05
//   From the step error rate r = failed steps / steps (r = 0 when there are no steps):
//     steps > 0 and r == 0 (clean run)              +0.1
//     r > 0.3                                       −0.2
//     otherwise r > 0.1                             −0.1
//   An episode with zero steps gets neither the clean-run bonus nor a penalty.
//
// learning_bonus = min(Σ bonuses, 0.5)
//   ≥ 3 distinct non-empty tool names               +0.1  (tool diversity)
//   steps > 0 and succeeded / steps ≥ 0.8           +0.1  (high step success)
//   +0.1 per recovered failed step, at most +0.3          (error→success recovery)
//   A failed step i is recovered when step i+1 exists and succeeded, or when any later
//   step with the same tool succeeded (see FindStepRecoveries). Steps are taken in the
//   order of episode.steps. The three parts sum to at most 0.5, so the cap is a guard.
//
// Worked example: a moderate success, 5 steps in 2 min, all succeeded with 3 tools, and
// verification {tests_passed: 12, tests_failed: 0, build_ok: true}:
//   base = 1, D = 0.5 + e^−1 = 0.8679, S = 0.5 + e^−0.25 = 1.2788,
//   efficiency = 0.5·0.8679 + 0.5·1.2788 = 1.0733, complexity = 1.1,
//   quality = 1 + 0.2 (tests) + 0.1 (build) + 0.1 (clean run) = 1.4,
//   learning = 0.1 (3 tools) + 0.1 (5/5 ≥ 0.8) = 0.2,
//   total = 1 × 1.0733 × 1.1 × 1.4 + 0.2 = 1.8529.
// The largest possible total is 1 × 1.5 × 1.2 × 1.5 + 0.5 = 3.2; the smallest is 0.
#pragma once

#include <cstddef>
#include <vector>

#include "engram/types.h"

namespace engram {

// Scores a completed episode as described above. Pure and deterministic.
// REQUIRES: episode.outcome and episode.end_time are set (complete_episode sets both
// before it calls this). Checked in debug builds; in release builds a missing outcome
// scores as a failure and a missing end time as a duration of 0.
// Thread-safe.
Reward ComputeReward(const Episode& episode);

// A failed step and the step that recovered from it. Indices are into episode.steps.
struct StepRecovery {
  size_t failed_index = 0;
  // The step right after the failure if it succeeded, otherwise the first later
  // successful step with the same tool.
  size_t recovered_by_index = 0;

  friend bool operator==(const StepRecovery&, const StepRecovery&) = default;
};

// Every failed step that was recovered, in step order: the rule the learning bonus counts
// (one entry per recovered failed step). Shared with the reflection so both agree.
// Thread-safe.
std::vector<StepRecovery> FindStepRecoveries(const std::vector<Step>& steps);

}  // namespace engram
