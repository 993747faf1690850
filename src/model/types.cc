#include "engram/types.h"

#include <array>
#include <utility>

#include "engram/patterns.h"

#include "common/strings.h"

namespace engram {
namespace {

template <typename E, size_t N>
Result<E> ParseName(std::string_view name, const std::array<std::pair<std::string_view, E>, N>& names,
                    const char* what) {
  std::string lower = AsciiLower(StripAsciiWhitespace(name));
  for (const auto& [n, e] : names) {
    if (lower == n) return e;
  }
  std::string accepted;
  for (const auto& [n, e] : names) {
    if (!accepted.empty()) accepted += ", ";
    accepted += n;
  }
  return InvalidArgumentError("unknown " + std::string(what) + " \"" + std::string(name.substr(0, 64)) +
                              "\" (expected one of: " + accepted + ")");
}

template <typename E, size_t N>
std::string_view NameOf(E e, const std::array<std::pair<std::string_view, E>, N>& names) {
  for (const auto& [n, v] : names) {
    if (v == e) return n;
  }
  return "unknown";
}

constexpr std::array<std::pair<std::string_view, TaskType>, 7> kTaskTypes{{
    {"code_generation", TaskType::kCodeGeneration},
    {"debugging", TaskType::kDebugging},
    {"refactoring", TaskType::kRefactoring},
    {"testing", TaskType::kTesting},
    {"analysis", TaskType::kAnalysis},
    {"documentation", TaskType::kDocumentation},
    {"other", TaskType::kOther},
}};
constexpr std::array<std::pair<std::string_view, Complexity>, 3> kComplexities{{
    {"simple", Complexity::kSimple},
    {"moderate", Complexity::kModerate},
    {"complex", Complexity::kComplex},
}};
constexpr std::array<std::pair<std::string_view, StepStatus>, 3> kStepStatuses{{
    {"success", StepStatus::kSuccess},
    {"error", StepStatus::kError},
    {"timeout", StepStatus::kTimeout},
}};
constexpr std::array<std::pair<std::string_view, OutcomeKind>, 3> kOutcomeKinds{{
    {"success", OutcomeKind::kSuccess},
    {"partial_success", OutcomeKind::kPartialSuccess},
    {"failure", OutcomeKind::kFailure},
}};

constexpr std::array<std::pair<std::string_view, PatternType>, 4> kPatternTypes{{
    {"tool_sequence", PatternType::kToolSequence},
    {"decision_point", PatternType::kDecisionPoint},
    {"error_recovery", PatternType::kErrorRecovery},
    {"context_pattern", PatternType::kContextPattern},
}};

size_t OptSize(const std::optional<std::string>& s) { return s ? s->size() : 0; }
size_t ListSize(const std::vector<std::string>& v) {
  size_t n = 0;
  for (const auto& s : v) n += s.size();
  return n;
}

}  // namespace

std::string_view TaskTypeName(TaskType t) { return NameOf(t, kTaskTypes); }
std::string_view ComplexityName(Complexity c) { return NameOf(c, kComplexities); }
std::string_view StepStatusName(StepStatus s) { return NameOf(s, kStepStatuses); }
std::string_view OutcomeKindName(OutcomeKind k) { return NameOf(k, kOutcomeKinds); }
Result<TaskType> ParseTaskType(std::string_view n) { return ParseName(n, kTaskTypes, "task_type"); }
Result<Complexity> ParseComplexity(std::string_view n) { return ParseName(n, kComplexities, "complexity"); }
Result<StepStatus> ParseStepStatus(std::string_view n) { return ParseName(n, kStepStatuses, "step status"); }
Result<OutcomeKind> ParseOutcomeKind(std::string_view n) { return ParseName(n, kOutcomeKinds, "outcome"); }
std::string_view PatternTypeName(PatternType t) { return NameOf(t, kPatternTypes); }
Result<PatternType> ParsePatternType(std::string_view n) { return ParseName(n, kPatternTypes, "pattern type"); }

size_t Step::ByteSize() const {
  size_t n = tool.size() + action.size() + parameters_json.size();
  if (result) n += OptSize(result->output) + OptSize(result->message);
  return n;
}

size_t Episode::ByteSize() const {
  size_t n = episode_id.size() + task_description.size() + metadata_json.size() + ListSize(tags) +
             ListSize(pattern_ids) + context.domain.size() + OptSize(context.language) +
             OptSize(context.framework) + ListSize(context.tags) + OptSize(context.repo) +
             OptSize(context.commit);
  for (const Step& s : steps) n += s.ByteSize();
  return n;
}

}  // namespace engram
