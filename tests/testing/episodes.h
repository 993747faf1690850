// Builders for test episodes and steps with every field filled, so round trips check
// every column.
#pragma once

#include <string>

#include "common/ids.h"
#include "engram/types.h"

namespace engram::testing {

inline Timestamp At(int64_t ms) { return Timestamp(std::chrono::milliseconds(ms)); }

inline Step MakeStep(int number, const std::string& tool = "bash", StepStatus status = StepStatus::kSuccess) {
  Step s;
  s.step_number = number;
  s.timestamp = At(1'767'225'600'000 + number * 1000);
  s.tool = tool;
  s.action = "run " + tool + " #" + std::to_string(number);
  s.parameters_json = R"({"cmd":"make test","n":)" + std::to_string(number) + "}";
  s.result = StepResult{status, "output of step " + std::to_string(number) + " — ünïcode ✓", std::nullopt};
  if (status != StepStatus::kSuccess) s.result->message = "it failed";
  s.latency_ms = 10 * number;
  s.tokens_used = 100 + number;
  return s;
}

inline Episode MakeEpisode(Clock& clock, int steps = 3, const std::string& domain = "web-api") {
  Episode e;
  e.episode_id = NewUuidV7(clock);
  e.task_description = "Fix the flaky async test in " + domain;
  e.task_type = TaskType::kDebugging;
  e.context.domain = domain;
  e.context.language = "rust";
  e.context.framework = "tokio";
  e.context.complexity = Complexity::kComplex;
  e.context.tags = {"async", "flaky"};
  e.context.repo = "git@example.com:team/web-api.git";
  e.context.commit = "a1b2c3d";
  e.start_time = At(1'767'225'600'000);
  for (int i = 1; i <= steps; ++i) e.steps.push_back(MakeStep(i, i % 2 ? "cargo" : "edit_file"));
  e.tags = {"ci"};
  e.metadata_json = R"({"agent":"claude-code","session":7})";
  return e;
}

inline Episode Completed(Episode e) {
  e.end_time = At(1'767'225'600'000 + 90'000);
  Outcome o;
  o.kind = OutcomeKind::kSuccess;
  o.verdict = "tests pass";
  o.artifacts = {"src/lib.rs"};
  o.verification = Verification{12, 0, true, 0, 83.5};
  e.outcome = o;
  e.reward = Reward{1.25, 1.0, 1.1, 1.2, 1.0, 0.1};
  e.reflection = Reflection{{"Finished in 3 steps"}, {}, {"cargo → edit_file → cargo worked"}};
  e.pattern_ids = {};
  return e;
}

}  // namespace engram::testing
