#include "model/stored_columns.h"

#include <algorithm>

namespace engram {

using nlohmann::json;

std::string DumpColumn(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Status CheckEpisodeLimits(const Episode& e) {
  if (e.steps.size() > kMaxStepsPerEpisode) {
    return ResourceExhaustedError("episode " + e.episode_id + " has " + std::to_string(e.steps.size()) +
                                  " steps; the limit is 1000 steps per episode");
  }
  if (e.ByteSize() > kMaxEpisodeBytes) {
    return ResourceExhaustedError("episode " + e.episode_id + " is " + std::to_string(e.ByteSize()) +
                                  " bytes; the limit is 10 MiB per episode");
  }
  return OkStatus();
}

Result<json> ParseColumn(const std::string& text, const std::string& episode_id, const char* column) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return DataLossError("episode " + episode_id + ": stored " + column + " is not valid JSON");
  }
  return j;
}

std::optional<std::vector<std::string>> ParsePlainStringList(std::string_view text) {
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return std::nullopt;
  std::vector<std::string> out;
  size_t pos = 1;
  const size_t end = text.size() - 1;
  if (pos == end) return out;
  for (;;) {
    if (pos >= end || text[pos] != '"') return std::nullopt;
    const size_t begin = ++pos;
    while (pos < end && text[pos] != '"') {
      const auto c = static_cast<unsigned char>(text[pos]);
      if (c < 0x20 || c >= 0x80 || c == '\\') return std::nullopt;
      ++pos;
    }
    if (pos >= end) return std::nullopt;
    out.emplace_back(text.substr(begin, pos - begin));
    ++pos;  // the closing quote
    if (pos == end) return out;
    if (text[pos] != ',') return std::nullopt;
    ++pos;
  }
}

std::map<std::string, std::vector<std::string>> GroupByEpisode(
    std::span<const std::pair<std::string, std::string>> episode_patterns) {
  std::map<std::string, std::vector<std::string>> grouped;
  for (const auto& [episode_id, pattern_id] : episode_patterns) grouped[episode_id].push_back(pattern_id);
  return grouped;
}

bool AppendMissing(std::vector<std::string>& ids, const std::vector<std::string>& more) {
  bool grew = false;
  for (const std::string& id : more) {
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
    ids.push_back(id);
    grew = true;
  }
  return grew;
}

Result<std::vector<std::string>> DecodeStringList(const std::string& text, const std::string& id, const char* column) {
  ENGRAM_ASSIGN_OR_RETURN(json j, ParseColumn(text, id, column));
  if (!j.is_array()) return DataLossError("episode " + id + ": stored " + column + " is not a list");
  std::vector<std::string> out;
  for (const json& item : j) {
    if (!item.is_string()) return DataLossError("episode " + id + ": stored " + column + " is not a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace engram
