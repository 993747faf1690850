// The words retrieval matches on, and the text of an episode that the full-text index
// holds. Every backend indexes SearchDocument and every query is cut into SearchTokens, so
// "Tests", "tests" and "test" match the same way on SQLite, PostgreSQL and Turso.
//
// Words are maximal runs of ASCII letters and digits (bytes ≥ 0x80 join words, so other
// scripts stay whole), lower-cased; one-letter words and common English stop words are
// dropped, and a plural "s" is stripped ("tests" → "test", but not "class", "status").
#pragma once

#include <cstddef>
#include <initializer_list>
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

// Calls `title(const std::string& word)` and `body(const std::string& word)` for the words
// of BuildSearchDocument's title and body, in order, without building the strings (what
// scoring one candidate against a query needs).
void ForEachSearchDocumentWord(const Episode& episode, const auto& title, const auto& body);

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

namespace search_text_internal {

// The words of `text` that fit in `cap` bytes of space-separated text of which `used`
// are taken (a word that does not fit is skipped, a shorter later one may still fit).
void EmitCapped(std::string_view text, size_t cap, size_t& used, const auto& emit) {
  ForEachSearchToken(text, [&](const std::string& w) {
    if (used + w.size() + 1 > cap) return;
    used += (used > 0 ? 1 : 0) + w.size();
    emit(w);
  });
}

}  // namespace search_text_internal

void ForEachSearchDocumentWord(const Episode& e, const auto& title, const auto& body) {
  using search_text_internal::EmitCapped;
  const size_t cap = kIndexedBodyBytes;
  size_t title_used = 0;
  EmitCapped(e.task_description, cap, title_used, title);
  size_t used = 0;
  auto add = [&](std::string_view text) { EmitCapped(text, cap, used, body); };
  if (e.outcome) {
    add(e.outcome->verdict);
    add(e.outcome->reason);
    if (e.outcome->error_details) add(*e.outcome->error_details);
    for (const std::string& s : e.outcome->completed) add(s);
    for (const std::string& s : e.outcome->failed) add(s);
  }
  if (e.reflection) {
    for (const auto* list : {&e.reflection->successes, &e.reflection->improvements, &e.reflection->insights}) {
      for (const std::string& s : *list) add(s);
    }
  }
  if (e.context.language) add(*e.context.language);
  if (e.context.framework) add(*e.context.framework);
  for (const std::string& t : e.context.tags) add(t);
  for (const std::string& t : e.tags) add(t);
  for (const Step& s : e.steps) {
    add(s.tool);
    add(s.action);
    if (s.result) {
      if (s.result->message) add(*s.result->message);
      if (s.result->output) add(std::string_view(*s.result->output).substr(0, kIndexedOutputBytes));
    }
  }
}

}  // namespace engram
