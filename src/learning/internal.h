// Helpers shared by the learning pipeline's .cc files. Not part of its API.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engram/patterns.h"
#include "engram/types.h"

namespace engram::learning_internal {

// An episode counts as a success for pattern statistics only with a success outcome.
bool EpisodeSucceeded(const Episode& episode);

// Lower-cased, trimmed, whitespace runs and '|' become '_'; "unknown" when empty.
std::string NormaliseTool(std::string_view tool);
// A scope component: lower-cased, trimmed, '|' and ',' become '_'; "-" when empty.
std::string NormaliseScopePart(std::string_view part);
// One search word of a text: `key` is its SearchToken, what similarity keys and matching
// use ("raised" → "rais"); `display` is the word lower-cased as written ("raised"), what
// descriptions and bodies show. SearchTokens(display) is {key}.
struct SearchWord {
  std::string display;
  std::string key;
};
// The search words of `text` in order (stop words and one-letter words left out, as
// SearchTokens leaves them out).
std::vector<SearchWord> SearchWordsOf(std::string_view text);
// The SearchToken of one written word, or the word itself when it has none.
std::string SearchKeyOf(const std::string& word);
// The first kMaxActionKeyWords search words of `action` that hold no digit.
std::vector<SearchWord> ActionWords(std::string_view action);
std::vector<std::string> Keys(const std::vector<SearchWord>& words);
std::vector<std::string> Displays(const std::vector<SearchWord>& words);
std::string Join(const std::vector<std::string>& words, std::string_view sep);

// The body parsed as an object (an empty object when it is not valid JSON or not an object).
nlohmann::json ParseBody(std::string_view body_json);

// "success", "error", "timeout" or "none" (no result).
std::string_view StepOutcomeName(const Step& step);

}  // namespace engram::learning_internal
