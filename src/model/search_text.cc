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

SearchDocument BuildSearchDocument(const Episode& e) {
  SearchDocument doc;
  auto append_to = [](std::string& out) {
    return [&out](const std::string& w) {
      if (!out.empty()) out.push_back(' ');
      out += w;
    };
  };
  ForEachSearchDocumentWord(e, append_to(doc.title), append_to(doc.body));
  return doc;
}

}  // namespace engram
