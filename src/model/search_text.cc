#include "model/search_text.h"

#include <unordered_set>

namespace engram {

bool IsSearchStopWord(std::string_view w) {
  // Every stop word has 1 to 5 letters: most words are decided without hashing (this runs
  // for every word of every document indexed or scored).
  if (w.size() > 5 || w.empty() || w.front() < 'a' || w.front() > 'y') return false;
  static const std::unordered_set<std::string_view> kStopWords = {
      "an",   "and",  "are",  "as",   "at",   "be",   "but",  "by",   "can",  "did",  "do",
      "does", "for",  "from", "had",  "has",  "have", "how",  "if",   "in",   "into", "is",
      "it",   "its",  "me",   "my",   "no",   "not",  "of",   "on",   "or",   "our",  "so",
      "that", "the",  "then", "there", "these", "this", "to",  "was",  "we",   "were", "what",
      "when", "where", "which", "who", "why",  "will", "with", "you",  "your", "i"};
  return kStopWords.contains(w);
}

namespace {

bool IsVowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool HasVowel(std::string_view w) {
  for (char c : w) {
    if (IsVowel(c) || c == 'y') return true;
  }
  return false;
}

bool AllAsciiLetters(std::string_view w) {
  for (char c : w) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

}  // namespace

void NormaliseSearchWord(std::string& word) {
  // Only plain English words are stemmed; identifiers with digits, and other scripts,
  // stay as written.
  if (!AllAsciiLetters(word)) return;
  // Plurals: "tests" → "test", "queries" → "query", but not "class", "status", "analysis".
  if (word.size() > 4 && word.ends_with("ies")) {
    word.replace(word.size() - 3, 3, "y");
  } else if (word.size() > 3 && word.back() == 's') {
    char before = word[word.size() - 2];
    if (before != 's' && before != 'u' && before != 'i') word.pop_back();
  }
  // "-ing" and "-ed" (Porter's step 1b, simplified): "deploying", "deployed" → "deploy";
  // "failing", "failed" → "fail"; "running" → "run". The stem keeps a vowel and at least
  // three letters, so "bed", "ring" and "sing" stay whole.
  size_t cut = 0;
  if (word.size() > 5 && word.ends_with("ing")) {
    cut = 3;
  } else if (word.size() > 4 && word.ends_with("ed") && !word.ends_with("eed")) {
    cut = 2;
  }
  if (cut > 0) {
    std::string_view stem(word.data(), word.size() - cut);
    if (stem.size() >= 3 && HasVowel(stem)) {
      word.resize(stem.size());
      // "runn" → "run", "stopp" → "stop"; but "fall", "pass", "buzz" keep their pair.
      size_t n = word.size();
      if (n >= 2 && word[n - 1] == word[n - 2] && !IsVowel(word[n - 1]) && word[n - 1] != 'l' &&
          word[n - 1] != 's' && word[n - 1] != 'z') {
        word.pop_back();
      }
    }
  }
}

std::vector<std::string> SearchTokens(std::string_view text) {
  std::vector<std::string> out;
  ForEachSearchToken(text, [&](const std::string& w) { out.push_back(w); });
  return out;
}

namespace {

void Append(std::string& out, std::string_view text, size_t cap) {
  ForEachSearchToken(text, [&](const std::string& w) {
    if (out.size() + w.size() + 1 > cap) return;
    if (!out.empty()) out.push_back(' ');
    out += w;
  });
}

}  // namespace

SearchDocument BuildSearchDocument(const Episode& e) {
  SearchDocument doc;
  Append(doc.title, e.task_description, kIndexedBodyBytes);
  std::string& b = doc.body;
  const size_t cap = kIndexedBodyBytes;
  if (e.outcome) {
    Append(b, e.outcome->verdict, cap);
    Append(b, e.outcome->reason, cap);
    if (e.outcome->error_details) Append(b, *e.outcome->error_details, cap);
    for (const std::string& s : e.outcome->completed) Append(b, s, cap);
    for (const std::string& s : e.outcome->failed) Append(b, s, cap);
  }
  if (e.reflection) {
    for (const auto* list : {&e.reflection->successes, &e.reflection->improvements, &e.reflection->insights}) {
      for (const std::string& s : *list) Append(b, s, cap);
    }
  }
  if (e.context.language) Append(b, *e.context.language, cap);
  if (e.context.framework) Append(b, *e.context.framework, cap);
  for (const std::string& t : e.context.tags) Append(b, t, cap);
  for (const std::string& t : e.tags) Append(b, t, cap);
  for (const Step& s : e.steps) {
    Append(b, s.tool, cap);
    Append(b, s.action, cap);
    if (s.result) {
      if (s.result->message) Append(b, *s.result->message, cap);
      if (s.result->output) {
        std::string_view out = *s.result->output;
        Append(b, out.substr(0, kIndexedOutputBytes), cap);
      }
    }
  }
  return doc;
}

}  // namespace engram
