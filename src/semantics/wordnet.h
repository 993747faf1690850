// WordNet: read-only access to the Princeton WordNet 3.0 database files as Debian's
// wordnet-base installs them (/usr/share/wordnet: index.{noun,verb,adj,adv},
// data.{noun,verb,adj,adv}, {noun,verb,adj,adv}.exc). Used for query expansion
// (semantics/query_expander.h): the synonyms of a word's most frequent senses.
//
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<WordNet> wn, WordNet::Open("/usr/share/wordnet"));
//   for (const WordNetSense& s : wn->Senses("crash", 2)) ...
//
// The index and data files are memory-mapped, not loaded: opening costs a few
// milliseconds, a lookup is a binary search in the sorted index file plus one read at the
// synset's byte offset in the data file (the offset WordNet's index gives). The small
// exception lists (irregular forms: "ran" → "run") are read into memory.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engram/result.h"

namespace engram {

enum class WordNetPos { kNoun = 0, kVerb = 1, kAdj = 2, kAdv = 3 };

// One sense (synset) of a word.
struct WordNetSense {
  WordNetPos pos = WordNetPos::kNoun;
  int rank = 0;                       // 0: the word's most frequent sense of this part of speech
  std::string lemma;                  // the base form looked up ("run" for "ran")
  std::vector<std::string> synonyms;  // the synset's other words, lower case, '_' → ' '
};

// Immutable after Open. Thread-compatible.
class WordNet {
 public:
  // Opens the database in `dir`. Errors: kNotFound naming the first missing file (install
  // Debian's wordnet-base), kDataLoss for a file that is not a WordNet file.
  static Result<std::unique_ptr<WordNet>> Open(const std::string& dir);

  ~WordNet();
  WordNet(const WordNet&) = delete;
  WordNet& operator=(const WordNet&) = delete;

  // The first `max_senses` senses of `word` for each part of speech, nouns first, found
  // through WordNet's morphology (exception lists, then its suffix rules: "crashes" →
  // "crash", "failed" → "fail"). `word` is one lower-case word (spaces for a collocation).
  // Unknown words and malformed entries give no senses.
  std::vector<WordNetSense> Senses(std::string_view word, int max_senses) const;

  // Base forms of `word` as WordNet knows it for `pos` (the word itself first if it is in
  // the index). Exposed for tests.
  std::vector<std::string> BaseForms(std::string_view word, WordNetPos pos) const;

 private:
  struct Mapped;
  WordNet() = default;
  std::string_view IndexLine(WordNetPos pos, std::string_view lemma) const;
  std::string_view DataLine(WordNetPos pos, size_t offset) const;

  std::unique_ptr<Mapped> index_[4];
  std::unique_ptr<Mapped> data_[4];
  std::unordered_map<std::string, std::vector<std::string>> exceptions_[4];
};

}  // namespace engram
