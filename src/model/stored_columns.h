// What every backend that keeps episodes in rows shares: millisecond timestamps, nested
// values (context, outcome, reward, reflection, string lists) stored as JSON text and
// read back with kDataLoss when the stored text is damaged, and the size limits checked
// before a whole episode is written.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engram/result.h"
#include "engram/types.h"

namespace engram {

inline int64_t ToMillis(Timestamp t) { return t.time_since_epoch().count(); }
inline Timestamp FromMillis(int64_t ms) { return Timestamp(std::chrono::milliseconds(ms)); }

// Compact JSON for a column; invalid UTF-8 is replaced, never thrown.
std::string DumpColumn(const nlohmann::json& j);

// kResourceExhausted when `e` has more than kMaxStepsPerEpisode steps or is larger than
// kMaxEpisodeBytes.
Status CheckEpisodeLimits(const Episode& e);

// Parses a JSON column written by a backend. Errors: kDataLoss naming the episode and column.
Result<nlohmann::json> ParseColumn(const std::string& text, const std::string& episode_id, const char* column);

// Decodes an optional JSON column with `decode` (one of the *FromJson functions of
// model/episode_json.h) into `out`; a missing column leaves `out` unset.
// Errors: kDataLoss.
template <typename T, typename Decode>
Status DecodeColumn(const std::optional<std::string>& text, const std::string& id, const char* column, Decode decode,
                    std::optional<T>* out) {
  if (!text) return OkStatus();
  ENGRAM_ASSIGN_OR_RETURN(nlohmann::json j, ParseColumn(*text, id, column));
  Result<T> v = decode(j, column);
  if (!v.ok()) return DataLossError("episode " + id + ": " + std::string(v.status().message()));
  *out = *std::move(v);
  return OkStatus();
}

// A list as DumpColumn writes one of plain ASCII strings (ids): ["a","b"], read without the
// JSON parser (pattern evidence lists are long and read often). nullopt for anything else
// (escapes, other bytes, spacing), which the caller then hands to the JSON parser.
std::optional<std::vector<std::string>> ParsePlainStringList(std::string_view text);

// (episode, pattern) pairs grouped by episode, each episode's patterns in pair order: what
// the backends' CommitExtraction appends to the episodes' pattern_ids.
std::map<std::string, std::vector<std::string>> GroupByEpisode(
    std::span<const std::pair<std::string, std::string>> episode_patterns);

// Appends to `ids` each of `more` it does not hold yet; true when it grew.
bool AppendMissing(std::vector<std::string>& ids, const std::vector<std::string>& more);

// A stored JSON list of strings. Errors: kDataLoss.
Result<std::vector<std::string>> DecodeStringList(const std::string& text, const std::string& id, const char* column);

}  // namespace engram
