// The words retrieval matches on, and the text of an episode that the full-text index
// holds. Every backend indexes SearchDocument and every query is cut into SearchTokens, so
// "Tests", "tests" and "test" match the same way on SQLite, PostgreSQL and Turso.
//
// Words are maximal runs of ASCII letters and digits (bytes ≥ 0x80 join words, so other
// scripts stay whole), lower-cased; one-letter words and common English stop words are
// dropped, and a plural "s" is stripped ("tests" → "test", but not "class", "status").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engram/types.h"

namespace engram {

// Calls `emit(const std::string& word)` for each search word of `text`, in order.
void ForEachSearchToken(std::string_view text, const auto& emit);

std::vector<std::string> SearchTokens(std::string_view text);

// At most this many bytes of one step's output, and of the whole body, are indexed.
inline constexpr size_t kIndexedOutputBytes = 2'048;
inline constexpr size_t kIndexedBodyBytes = 64 * 1024;

// What the full-text index holds for one episode, as space-separated search words.
struct SearchDocument {
  std::string title;  // the task description (weighted higher)
  // Outcome (verdict, reason, error details, completed, failed), reflection, steps' tools,
  // actions, messages and the first kIndexedOutputBytes of outputs, context language,
  // framework and tags, episode tags; cut at kIndexedBodyBytes.
  std::string body;
};
SearchDocument BuildSearchDocument(const Episode& episode);

// ---- implementation of the template ----
bool IsSearchStopWord(std::string_view word);
void NormaliseSearchWord(std::string& word);  // the plural rule

void ForEachSearchToken(std::string_view text, const auto& emit) {
  std::string word;
  auto flush = [&] {
    if (word.size() > 1 && !IsSearchStopWord(word)) {
      NormaliseSearchWord(word);
      emit(static_cast<const std::string&>(word));
    }
    word.clear();
  };
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      word.push_back(ch);
    } else if (c >= 'A' && c <= 'Z') {
      word.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      flush();
    }
  }
  flush();
}

}  // namespace engram
