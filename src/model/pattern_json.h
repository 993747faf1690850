// JSON form of what the learning pipeline stores (DESIGN §2): patterns and heuristics, as
// the MCP pattern tools, the engram://patterns/{pattern_id} resource and `engram pattern
// ... --json` show them. The pattern's body is stored as text; here it is a JSON object
// ("body"), so a reader sees structure, not an escaped string.
//
//   nlohmann::json j = PatternToJson(pattern);   // {"pattern_id": ..., "body": {...}, ...}
//   ENGRAM_ASSIGN_OR_RETURN(Pattern back, PatternFromJson(j));   // back == pattern
//
// Round trips are exact for patterns whose body_json is a compact JSON object (what the
// extractors write). Unknown fields are ignored; a missing required field or a wrong type
// is kInvalidArgument naming the field by its path ("pattern.effectiveness.times_applied: ...").
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engram/patterns.h"
#include "engram/result.h"

namespace engram {

// {pattern_id, type, similarity_key, description, body{}, context{}, occurrences, successes,
//  success_rate, avg_latency_ms, evidence[], effectiveness{times_retrieved, times_applied,
//  success_when_applied, failure_when_applied, last_used?}, decay_weight, created_at,
//  updated_at}. A body that is not a JSON object (never written by engram) shows as {}.
nlohmann::json PatternToJson(const Pattern& pattern);
nlohmann::json PatternEffectivenessToJson(const PatternEffectiveness& effectiveness);

// {heuristic_id, condition, action, confidence, evidence{episode_ids, success_rate,
//  sample_size}, source_pattern_id, created_at, updated_at}.
nlohmann::json HeuristicToJson(const Heuristic& heuristic);

// `path` prefixes error messages. Errors: kInvalidArgument naming the field.
Result<Pattern> PatternFromJson(const nlohmann::json& j, const std::string& path = "pattern");
Result<Heuristic> HeuristicFromJson(const nlohmann::json& j, const std::string& path = "heuristic");

}  // namespace engram
