// The data model of engram (DESIGN §2): episodes with their steps and outcome, the
// reward and reflection computed at completion. Plain values, no behaviour; JSON
// conversion lives in core/episode_json.h. Arbitrary JSON objects (step parameters,
// episode metadata) are kept as their serialized text so this header needs no JSON
// library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"

namespace engram {

// Hard limits (DESIGN §2). Going over one is kInvalidArgument or kResourceExhausted
// naming the limit; nothing is half-written.
inline constexpr size_t kMaxTaskDescriptionChars = 10'000;
inline constexpr size_t kMaxStepsPerEpisode = 1'000;
inline constexpr size_t kMaxStepOutputBytes = 1 << 20;         // 1 MiB
inline constexpr size_t kMaxEpisodeBytes = 10 * (1 << 20);     // 10 MiB
inline constexpr size_t kMaxQueryLimit = 100;
inline constexpr size_t kMaxShortFieldChars = 1'000;           // tool, action, domain, tags...
inline constexpr size_t kMaxReflectionItems = 5;

enum class TaskType { kCodeGeneration, kDebugging, kRefactoring, kTesting, kAnalysis, kDocumentation, kOther };
enum class Complexity { kSimple, kModerate, kComplex };
enum class StepStatus { kSuccess, kError, kTimeout };
enum class OutcomeKind { kSuccess, kPartialSuccess, kFailure };

// Names as they appear in JSON and on the command line ("code_generation", ...).
std::string_view TaskTypeName(TaskType t);
std::string_view ComplexityName(Complexity c);
std::string_view StepStatusName(StepStatus s);
std::string_view OutcomeKindName(OutcomeKind k);
// Errors: kInvalidArgument listing the accepted names.
Result<TaskType> ParseTaskType(std::string_view name);
Result<Complexity> ParseComplexity(std::string_view name);
Result<StepStatus> ParseStepStatus(std::string_view name);
Result<OutcomeKind> ParseOutcomeKind(std::string_view name);

struct TaskContext {
  std::string domain = "general";
  std::optional<std::string> language;
  std::optional<std::string> framework;
  Complexity complexity = Complexity::kModerate;
  std::vector<std::string> tags;
  std::optional<std::string> repo;    // where the work happened
  std::optional<std::string> commit;

  friend bool operator==(const TaskContext&, const TaskContext&) = default;
};

struct StepResult {
  StepStatus status = StepStatus::kSuccess;
  std::optional<std::string> output;
  std::optional<std::string> message;

  friend bool operator==(const StepResult&, const StepResult&) = default;
};

struct Step {
  int step_number = 0;  // 1-based; 0 asks the store to number it
  Timestamp timestamp{};
  std::string tool;
  std::string action;
  std::string parameters_json = "{}";  // a JSON object, serialized
  std::optional<StepResult> result;   // none: counts as failed
  std::optional<int64_t> latency_ms;
  std::optional<int64_t> tokens_used;

  // A step succeeded only if it has a result with status success.
  bool Succeeded() const { return result.has_value() && result->status == StepStatus::kSuccess; }
  // Bytes this step adds to its episode, for the size limits.
  size_t ByteSize() const;

  friend bool operator==(const Step&, const Step&) = default;
};

// Real signals from the agent's tools, used by the reward.
struct Verification {
  std::optional<int64_t> tests_passed;
  std::optional<int64_t> tests_failed;
  std::optional<bool> build_ok;
  std::optional<int64_t> lint_warnings;
  std::optional<double> coverage_pct;

  friend bool operator==(const Verification&, const Verification&) = default;
};

struct Outcome {
  OutcomeKind kind = OutcomeKind::kSuccess;
  std::string verdict;                     // success, partial_success
  std::vector<std::string> artifacts;      // success
  std::vector<std::string> completed;      // partial_success
  std::vector<std::string> failed;         // partial_success
  std::string reason;                      // failure
  std::optional<std::string> error_details;  // failure
  std::optional<Verification> verification;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

struct Reward {
  double total = 0;
  double base = 0;
  double efficiency = 1;
  double complexity_bonus = 1;
  double quality_multiplier = 1;
  double learning_bonus = 0;

  friend bool operator==(const Reward&, const Reward&) = default;
};

struct Reflection {
  std::vector<std::string> successes;     // at most kMaxReflectionItems each
  std::vector<std::string> improvements;
  std::vector<std::string> insights;

  friend bool operator==(const Reflection&, const Reflection&) = default;
};

struct Episode {
  std::string episode_id;  // UUIDv7
  std::string task_description;
  TaskType task_type = TaskType::kOther;
  TaskContext context;
  Timestamp start_time{};
  std::optional<Timestamp> end_time;
  std::vector<Step> steps;
  std::optional<Outcome> outcome;
  std::optional<Reward> reward;
  std::optional<Reflection> reflection;
  std::vector<std::string> pattern_ids;
  std::vector<std::string> tags;
  std::string metadata_json = "{}";  // a JSON object, serialized

  bool completed() const { return outcome.has_value(); }
  // Bytes of the episode's own fields and all its steps, for kMaxEpisodeBytes.
  size_t ByteSize() const;

  friend bool operator==(const Episode&, const Episode&) = default;
};

}  // namespace engram
