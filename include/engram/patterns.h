// What the learning pipeline stores (DESIGN §2, §5): patterns merged across episodes,
// heuristics derived from them, and attribution records that tie a pattern shown to (or
// applied by) a later episode to that episode's outcome.
//
// These are plain values; StorageBackend persists them and src/learning computes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/types.h"

namespace engram {

enum class PatternType { kToolSequence, kDecisionPoint, kErrorRecovery, kContextPattern };
// "tool_sequence", "decision_point", "error_recovery", "context_pattern".
std::string_view PatternTypeName(PatternType t);
Result<PatternType> ParsePatternType(std::string_view name);

// How a pattern fared when it was shown to, or applied by, later episodes.
struct PatternEffectiveness {
  int64_t times_retrieved = 0;       // shown by query_memory / recommend_* / search_patterns
  int64_t times_applied = 0;         // named as applied_pattern_id by a step
  int64_t success_when_applied = 0;  // credited outcomes of episodes that were shown or applied it
  int64_t failure_when_applied = 0;
  std::optional<Timestamp> last_used;  // last shown or applied
  friend bool operator==(const PatternEffectiveness&, const PatternEffectiveness&) = default;
};

struct Pattern {
  std::string pattern_id;  // UUIDv7
  PatternType type = PatternType::kToolSequence;
  // Patterns with the same key are the same pattern: observations merge into one row.
  // Unique per store. Built by the extractor from normalised tools/actions + context.
  std::string similarity_key;
  std::string description;     // one line a person (or model) can read
  std::string body_json = "{}";  // type-specific body, a JSON object (see src/learning)
  TaskContext context;         // the context the pattern was seen in (domain, language, ...)
  int64_t occurrences = 0;     // episodes that showed the pattern
  int64_t successes = 0;       // of those, how many succeeded (success_rate = successes / occurrences)
  double success_rate = 0;
  double avg_latency_ms = 0;   // mean latency of the steps the pattern covers
  // Episode ids that showed the pattern, oldest first; capped at kMaxPatternEvidence
  // (the newest are kept).
  std::vector<std::string> evidence;
  PatternEffectiveness effectiveness;
  // 1.0 when fresh; multiplied down by decay while the pattern is not used (see learning).
  double decay_weight = 1.0;
  Timestamp created_at{};
  Timestamp updated_at{};
  friend bool operator==(const Pattern&, const Pattern&) = default;
};
inline constexpr size_t kMaxPatternEvidence = 100;

struct Heuristic {
  std::string heuristic_id;  // UUIDv7
  std::string condition;     // "when <check> fails"
  std::string action;        // "do <action>"
  double confidence = 0;     // success_rate × √n, normalised to [0, 1] (see learning)
  std::vector<std::string> evidence_episode_ids;
  double success_rate = 0;
  int64_t sample_size = 0;
  std::string source_pattern_id;  // the decision_point pattern it was derived from
  Timestamp created_at{};
  Timestamp updated_at{};
  friend bool operator==(const Heuristic&, const Heuristic&) = default;
};

// `pattern_id` was shown to (applied == false) or applied by (applied == true) the
// episode `episode_id`. Credited once, when that episode completes.
struct Attribution {
  std::string episode_id;
  std::string pattern_id;
  bool applied = false;
  Timestamp at{};
  friend bool operator==(const Attribution&, const Attribution&) = default;
};

}  // namespace engram
