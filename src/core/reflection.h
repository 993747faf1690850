// The reflection engram writes for a completed episode (DESIGN §2-§3): what went well,
// what to do better and what to remember, as short sentences a coding agent can act on
// when the episode is retrieved later. Rule-based, no LLM, deterministic: the same
// episode and reward always give the same text.
//
// Each list holds at most kMaxReflectionItems (5) items; the rules below are listed in
// priority order and later items are dropped when a list is full. "Failed step" means
// Step::Succeeded() is false (error, timeout or no result). Steps are named by their
// step_number (their 1-based position when it is 0) and their tool; tool names are cut to
// 40 characters, verdicts, reasons and step messages to 120–160, lists to 3 entries plus
// "+N more"; whitespace runs (newlines included) become one space. Durations read
// "850 ms", "93.2 s" (under 2 min), "14.0 min" (under 2 h) or "3.5 h".
//
// successes
//   1. The outcome: "Task succeeded in 4 steps over 2.0 min: <verdict>; artifacts: a, b"
//      ("Task succeeded with no steps recorded" without steps), "Completed 2 of 3 parts:
//      parse config, write tests", or "Partially succeeded: <verdict>" when neither list
//      is given.
//   2. Passing verification: "Verified: 42 tests passed, build ok, coverage 87.5%, no lint
//      warnings" (only the signals that are good: no failed tests, build_ok, coverage > 60,
//      0 lint warnings).
//   3. A clean run: "All 5 steps succeeded" ("The single step succeeded").
//   4. Up to 2 recoveries (FindStepRecoveries in reward.h), grouped by the recovering step:
//      "Recovered from an error in step 3 (cargo test) by step 4 (edit_file)", "... from a
//      timeout ...", "... from a step with no result ...", or "Recovered from failures in
//      steps 2 (bash), 3 (bash) by step 4 (bash)".
//   5. An efficient run (reward.efficiency ≥ 1.2): "Efficient run: 3 steps in 45.0 s
//      (efficiency 1.31)".
// improvements
//   1. The outcome: "Task failed: <reason> (<error_details>)" or "Left unfinished: x, y
//      (2 of 3 parts)".
//   2. No steps at all: "No steps were recorded; record each tool call (add_episode_step) so
//      later tasks can learn from it".
//   3. Failing verification: "Verification problems: 3 of 43 tests failed, build broken,
//      coverage only 45.0%, 12 lint warnings" (tests_failed > 0, build_ok false, coverage
//      ≤ 60, lint_warnings > 0).
//   4. Failed steps by tool: "2 of 10 steps failed: bash (steps 2, 5), cargo test (step 7)".
//   5. Up to 2 failed steps nothing recovered from: "Step 7 (cargo build) failed and was not
//      recovered: <its message or output>", "Step 7 (x) timed out and was not recovered",
//      "Step 7 (x) has no recorded result; record the result of every step".
//   6. A retry loop, the longest run of ≥ 3 consecutive failures of one tool: "bash failed
//      3 times in a row (steps 4-6); change approach sooner instead of retrying".
//   7. A slow run (reward.efficiency < 0.8): "Slow run: 40 steps over 35.0 min (efficiency
//      0.62); look for a shorter path".
// insights
//   1. The tool sequence, consecutive repeats collapsed, at most 8 tools then "…":
//      success: "Tool sequence that worked for debugging in web-api (rust): read_file →
//      edit_file → run_tests" (successful steps only); partial success: "Tool sequence that
//      partly worked for ..."; failure: "Tool sequence that did not succeed for ..." (all
//      steps). The domain is left out when it is "general" or empty.
//   2. The first recovery as a reusable fix: "After cargo test failed in step 3, edit_file in
//      step 4 led to cargo test succeeding in step 7" (when the failed tool later succeeds),
//      "After cargo test failed in step 3, edit_file succeeded next (step 4)", or, when the
//      same tool recovered, "Retrying bash worked after a timeout (step 2 → step 3)".
//   3. The slowest step when a latency_ms ≥ 10 s is recorded: "Slowest step: 4 (cargo
//      build) took 93.2 s".
//   4. A dominant tool, with ≥ 5 steps and one tool in at least half of them: "Most used
//      tool: bash (6 of 10 steps)".
//   5. Always, the reward breakdown: "Reward 1.85 = base 1.00 × efficiency 1.07 ×
//      complexity 1.10 × quality 1.40 + learning 0.20".
#pragma once

#include "engram/types.h"

namespace engram {

// Returns the reflection for `episode`, scored as `reward` (normally ComputeReward's).
// REQUIRES: episode.outcome is set; without it the outcome rules are skipped.
// Thread-safe.
Reflection GenerateReflection(const Episode& episode, const Reward& reward);

}  // namespace engram
