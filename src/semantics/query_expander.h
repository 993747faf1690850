// QueryExpander: what else a query's words may be called (issue 8). A query becomes a list
// of facets, each a set of weighted alternative terms for one thing it says:
//
//   "users keep getting signed out"
//     concept  session-ended: logged out, logout, session expired, ...   (concept map)
//     wordnet  user: exploiter, drug user                                (first sense)
//
// Retrieval (retrieval/retriever.h) uses the facets twice: their words fetch extra
// candidates from the full-text index, and each candidate scores, per source, the mean
// over facets of the best weighted term it holds (ScoreExpansion).
//
// Rules that keep expansion from doing harm:
// - Concept-map terms are matched as phrases on search words (model/search_text.h), longest
//   first; a group's terms that the query itself says are not alternatives.
// - WordNet expands only plain words: never stop words, generic words ("fix", "issue",
//   "make"), words a concept matched, or identifiers — a whitespace-separated chunk holding a
//   digit, '_', '/', '.', ':', '=', '@', '$', '<', '>', '#', '{', '[', '(', '\', a leading
//   '-', an inner capital (CamelCase) or only capitals (acronyms).
// - Only the first `wordnet_senses` senses of each part of speech count (the most
//   frequent: WordNet orders them by corpus frequency); a later sense's terms weigh half
//   as much as the one before.
// The result depends only on the query, the concept map and WordNet: Expand is
// deterministic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/search_text.h"
#include "semantics/concept_map.h"
#include "semantics/wordnet.h"

namespace engram {

struct ExpansionOptions {
  int wordnet_senses = 1;   // senses per part of speech (0: no WordNet)
  size_t max_facets = 16;   // per source; the query's earlier words first
  size_t max_terms_per_facet = 12;
};

struct ExpansionTerm {
  std::string text;                // readable ("logged out")
  std::vector<std::string> words;  // its search words (a phrase when several)
  double weight = 1.0;             // (0, 1]
};

enum class ExpansionSource { kConcept = 0, kWordNet = 1 };

struct ExpansionFacet {
  ExpansionSource source = ExpansionSource::kConcept;
  std::string label;  // the concept group's name, or the query word WordNet expanded
  std::vector<ExpansionTerm> terms;
};

struct ExpandedQuery {
  std::vector<std::string> words;  // the query's own search words
  std::vector<ExpansionFacet> facets;

  bool Has(ExpansionSource source) const;
  // The distinct search words of `source`'s terms that the query does not hold already,
  // in first-seen order: what the extra full-text pass asks for.
  std::vector<std::string> ExtraWords(ExpansionSource source) const;
};

// Thread-compatible (Expand is const and shares nothing mutable).
class QueryExpander {
 public:
  // Either may be null (that source is off). Both must outlive *this.
  QueryExpander(const ConceptMap* concepts, const WordNet* wordnet, ExpansionOptions options = {});

  ExpandedQuery Expand(std::string_view query) const;

  const ConceptMap* concepts() const { return concepts_; }
  const WordNet* wordnet() const { return wordnet_; }

 private:
  const ConceptMap* concepts_;
  const WordNet* wordnet_;
  ExpansionOptions options_;
};

// True when `chunk` (one whitespace-separated piece of a query, surrounding punctuation
// stripped) is an identifier, number, path or flag rather than a plain word.
bool IsIdentifierChunk(std::string_view chunk);

// The search words of one document, indexed for phrase lookup of the terms of one
// expanded query (only those words are kept, so building it is one pass over the text).
// Built once per query and refilled for each document (Clear, then Add*Word), so scoring
// many candidates allocates little.
class DocumentTerms {
 public:
  // Holds no document yet. `query` must outlive this.
  explicit DocumentTerms(const ExpandedQuery& query);
  // `title` and `body` as SearchDocument has them: space-separated search words.
  DocumentTerms(const ExpandedQuery& query, std::string_view title, std::string_view body);

  // Forgets the document; the query's words stay.
  void Clear();
  // The document's next search word (ForEachSearchDocumentWord's order).
  void AddTitleWord(std::string_view word) { title_.Add(Slot(word)); }
  void AddBodyWord(std::string_view word) { body_.Add(Slot(word)); }

  // 1 when the term is in the title, kBodyPresence when only in the body, else 0.
  double Presence(const ExpansionTerm& term) const;

  static constexpr double kBodyPresence = 0.75;

 private:
  static constexpr int kUnwanted = -1;
  struct Part {
    // Per wanted word (by slot): its positions (word numbers, ascending).
    std::vector<std::vector<uint32_t>> positions;
    uint32_t next = 0;  // the position of the next word
    void Add(int slot) {
      if (slot != kUnwanted) positions[static_cast<size_t>(slot)].push_back(next);
      ++next;
    }
    bool Has(std::span<const int> phrase) const;
  };
  int Slot(std::string_view word) const;

  std::unordered_map<std::string_view, int> wanted_;  // the query's words → slot
  Part title_, body_;
};

struct ExpansionScores {
  double concepts = 0;  // [0, 1]
  double wordnet = 0;  // [0, 1]
};

// Per source: the mean over its facets of max over terms of weight × Presence.
ExpansionScores ScoreExpansion(const ExpandedQuery& query, const DocumentTerms& doc);

}  // namespace engram
