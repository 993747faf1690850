#include "semantics/query_expander.h"

#include <algorithm>
#include <span>
#include <unordered_set>

namespace engram {

namespace {

// Words too general to expand: their WordNet synonyms are noise in our field ("fix" →
// "repair", "mend", "doctor"; "issue" → "publication").
bool IsGenericWord(std::string_view w) {
  static const std::unordered_set<std::string_view> kGeneric = {
      "add",     "after",   "again",  "all",     "also",    "any",     "back",    "bad",     "before",
      "being",   "big",     "case",   "change",  "could",   "day",     "different", "done", "each",
      "even",    "every",   "few",    "find",    "first",   "fix",     "get",     "getting", "give",
      "go",      "going",   "good",   "got",     "had",     "happen",  "help",    "here",    "high",
      "issue",   "just",    "keep",   "kind",    "last",    "let",     "like",    "long",    "look",
      "lot",     "low",     "made",   "make",    "many",    "may",     "might",   "more",    "most",
      "much",    "must",    "need",   "new",     "next",    "now",     "old",     "one",     "only",
      "other",   "out",     "over",   "part",    "problem", "put",     "really",  "right",   "same",
      "see",     "seem",    "set",    "should",  "show",    "some",    "something", "start", "still",
      "such",    "take",    "than",   "them",    "they",    "thing",   "those",   "through", "time",
      "too",     "try",     "two",    "under",   "up",      "use",     "used",    "using",   "very",
      "want",    "way",     "well",   "while",   "work",    "would",   "yet",     "been",    "their",
      "again",   "down",    "off",    "since",   "until",   "about",   "without", "because", "around",
      "instead", "whole",   "own",    "say",     "said",    "went",    "come",    "came",    "number",
      // What is left of a contraction once "'" splits it ("don't" → "don").
      "don",     "doesn",   "didn",   "isn",     "wasn",    "aren",    "weren",   "won",     "couldn",
      "shouldn", "wouldn",  "haven",  "hasn",    "ll",      "ve",      "re"};
  return kGeneric.contains(w);
}

bool IsLowerAlpha(std::string_view w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Query chunks: whitespace-separated, with sentence punctuation and quotes around them
// removed.
std::vector<std::string_view> Chunks(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  auto edge = [](char c) {
    return c == ',' || c == ';' || c == '!' || c == '?' || c == '"' || c == '\'' || c == '`' || c == '(' ||
           c == ')' || c == '.' || c == ':';
  };
  while (i < text.size()) {
    while (i < text.size() && space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !space(text[j])) ++j;
    std::string_view c = text.substr(i, j - i);
    while (!c.empty() && edge(c.front())) c.remove_prefix(1);
    while (!c.empty() && edge(c.back())) c.remove_suffix(1);
    if (!c.empty()) out.push_back(c);
    i = j;
  }
  return out;
}

}  // namespace

bool IsIdentifierChunk(std::string_view c) {
  if (c.empty()) return false;
  if (c.front() == '-') return true;
  bool lower = false, upper = false, inner_upper = false;
  for (size_t i = 0; i < c.size(); ++i) {
    const char ch = c[i];
    if (ch >= '0' && ch <= '9') return true;
    switch (ch) {
      case '_': case '/': case '.': case ':': case '=': case '@': case '$': case '<': case '>':
      case '#': case '{': case '[': case '(': case '\\': case '}': case ']': case ')': case '*':
      case '+': case '&': case '|': case '%': case '~':
        return true;
      default: break;
    }
    if (ch >= 'A' && ch <= 'Z') {
      upper = true;
      if (i > 0 && lower) inner_upper = true;
    } else if (ch >= 'a' && ch <= 'z') {
      lower = true;
    }
  }
  if (inner_upper) return true;               // CamelCase, camelCase
  if (upper && !lower && c.size() >= 2) return true;  // acronyms: OOM, CI, API
  return false;
}

bool ExpandedQuery::Has(ExpansionSource source) const {
  return std::any_of(facets.begin(), facets.end(), [&](const ExpansionFacet& f) { return f.source == source; });
}

std::vector<std::string> ExpandedQuery::ExtraWords(ExpansionSource source) const {
  std::unordered_set<std::string_view> seen(words.begin(), words.end());
  std::vector<std::string> out;
  for (const ExpansionFacet& f : facets) {
    if (f.source != source) continue;
    for (const ExpansionTerm& t : f.terms) {
      for (const std::string& w : t.words) {
        if (seen.insert(w).second) out.push_back(w);
      }
    }
  }
  return out;
}

QueryExpander::QueryExpander(const ConceptMap* concepts, const WordNet* wordnet, ExpansionOptions options)
    : concepts_(concepts), wordnet_(wordnet), options_(options) {}

ExpandedQuery QueryExpander::Expand(std::string_view query) const {
  ExpandedQuery out;
  out.words = SearchTokens(query);
  const std::unordered_set<std::string> query_words(out.words.begin(), out.words.end());

  // Concepts: phrase matches on the query's search words.
  std::vector<bool> covered(out.words.size(), false);
  if (concepts_ != nullptr) {
    std::vector<std::vector<size_t>> said;  // per group: the terms the query says
    std::vector<size_t> order;              // groups in first-match order
    std::unordered_map<size_t, size_t> slot;
    for (const ConceptMatch& m : concepts_->Find(out.words)) {
      auto [it, fresh] = slot.emplace(m.group, said.size());
      if (fresh) {
        said.emplace_back();
        order.push_back(m.group);
      }
      said[it->second].push_back(m.term);
      for (size_t i = m.position; i < m.position + m.length; ++i) covered[i] = true;
    }
    for (size_t k = 0; k < order.size() && k < options_.max_facets; ++k) {
      const ConceptGroup& g = concepts_->groups()[order[k]];
      ExpansionFacet facet;
      facet.source = ExpansionSource::kConcept;
      facet.label = g.name;
      for (size_t t = 0; t < g.terms.size(); ++t) {
        if (std::find(said[k].begin(), said[k].end(), t) != said[k].end()) continue;
        facet.terms.push_back(ExpansionTerm{g.terms[t].text, g.terms[t].words, g.terms[t].weight});
      }
      if (!facet.terms.empty()) out.facets.push_back(std::move(facet));
    }
  }

  // WordNet: plain words only.
  if (wordnet_ != nullptr && options_.wordnet_senses > 0) {
    std::unordered_set<std::string> expanded;
    size_t facets = 0;
    for (std::string_view chunk : Chunks(query)) {
      if (facets >= options_.max_facets) break;
      if (IsIdentifierChunk(chunk)) continue;
      // A chunk may still hold several words ("rate-limited", "don't").
      std::string lower(chunk);
      for (char& c : lower) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      std::string word;
      auto flush = [&] {
        std::string raw = std::move(word);
        word.clear();
        if (raw.size() < 3 || !IsLowerAlpha(raw) || IsSearchStopWord(raw) || IsGenericWord(raw)) return;
        std::vector<std::string> own = SearchTokens(raw);
        if (own.size() != 1 || IsGenericWord(own.front())) return;
        // Part of a concept the map matched: the map knows its meaning in our field.
        bool in_concept = false;
        for (size_t i = 0; i < out.words.size(); ++i) {
          if (covered[i] && out.words[i] == own.front()) in_concept = true;
        }
        if (in_concept || !expanded.insert(own.front()).second || facets >= options_.max_facets) return;
        ExpansionFacet facet;
        facet.source = ExpansionSource::kWordNet;
        facet.label = raw;
        for (const WordNetSense& sense : wordnet_->Senses(raw, options_.wordnet_senses)) {
          const double weight = 1.0 / static_cast<double>(1 << sense.rank);
          for (const std::string& synonym : sense.synonyms) {
            if (facet.terms.size() >= options_.max_terms_per_facet) break;
            std::vector<std::string> words = SearchTokens(synonym);
            if (words.empty()) continue;
            if (words.size() == 1 && query_words.contains(words.front())) continue;
            bool dup = false;
            for (ExpansionTerm& t : facet.terms) {
              if (t.words == words) {
                t.weight = std::max(t.weight, weight);
                dup = true;
              }
            }
            if (!dup) facet.terms.push_back(ExpansionTerm{synonym, std::move(words), weight});
          }
        }
        if (!facet.terms.empty()) {
          out.facets.push_back(std::move(facet));
          ++facets;
        }
      };
      for (char c : lower) {
        if (c >= 'a' && c <= 'z') {
          word.push_back(c);
        } else {
          flush();
        }
      }
      flush();
    }
  }
  return out;
}

DocumentTerms::DocumentTerms(const ExpandedQuery& query) {
  for (const ExpansionFacet& f : query.facets) {
    for (const ExpansionTerm& t : f.terms) {
      for (const std::string& w : t.words) wanted_.try_emplace(w, static_cast<int>(wanted_.size()));
    }
  }
  title_.positions.resize(wanted_.size());
  body_.positions.resize(wanted_.size());
}

DocumentTerms::DocumentTerms(const ExpandedQuery& query, std::string_view title, std::string_view body)
    : DocumentTerms(query) {
  auto each_word = [](std::string_view text, const auto& add) {
    size_t i = 0;
    while (i < text.size()) {
      size_t j = text.find(' ', i);
      if (j == std::string_view::npos) j = text.size();
      if (j > i) add(text.substr(i, j - i));
      i = j + 1;
    }
  };
  each_word(title, [this](std::string_view w) { AddTitleWord(w); });
  each_word(body, [this](std::string_view w) { AddBodyWord(w); });
}

void DocumentTerms::Clear() {
  for (Part* part : {&title_, &body_}) {
    for (std::vector<uint32_t>& p : part->positions) p.clear();
    part->next = 0;
  }
}

int DocumentTerms::Slot(std::string_view word) const {
  auto it = wanted_.find(word);
  return it == wanted_.end() ? kUnwanted : it->second;
}

bool DocumentTerms::Part::Has(std::span<const int> phrase) const {
  const std::vector<uint32_t>& first = positions[static_cast<size_t>(phrase.front())];
  if (first.empty()) return false;
  for (size_t k = 1; k < phrase.size(); ++k) {
    if (positions[static_cast<size_t>(phrase[k])].empty()) return false;
  }
  for (uint32_t p : first) {
    bool all = true;
    for (size_t k = 1; k < phrase.size() && all; ++k) {
      const std::vector<uint32_t>& at = positions[static_cast<size_t>(phrase[k])];
      all = std::binary_search(at.begin(), at.end(), p + static_cast<uint32_t>(k));
    }
    if (all) return true;
  }
  return false;
}

double DocumentTerms::Presence(const ExpansionTerm& term) const {
  if (term.words.empty()) return 0;
  // Slots on the stack for the usual phrase of a few words (this runs per term per candidate).
  constexpr size_t kInline = 8;
  int inline_slots[kInline];
  std::vector<int> heap_slots(term.words.size() > kInline ? term.words.size() : 0);
  int* slots = heap_slots.empty() ? inline_slots : heap_slots.data();
  for (size_t k = 0; k < term.words.size(); ++k) {
    slots[k] = Slot(term.words[k]);
    if (slots[k] == kUnwanted) return 0;  // a term of another query
  }
  const std::span<const int> phrase(slots, term.words.size());
  if (title_.Has(phrase)) return 1.0;
  if (body_.Has(phrase)) return kBodyPresence;
  return 0;
}

ExpansionScores ScoreExpansion(const ExpandedQuery& query, const DocumentTerms& doc) {
  double sum[2] = {0, 0};
  size_t count[2] = {0, 0};
  for (const ExpansionFacet& f : query.facets) {
    const int s = static_cast<int>(f.source);
    double best = 0;
    for (const ExpansionTerm& t : f.terms) best = std::max(best, t.weight * doc.Presence(t));
    sum[s] += best;
    ++count[s];
  }
  ExpansionScores out;
  if (count[0] > 0) out.concepts = sum[0] / static_cast<double>(count[0]);
  if (count[1] > 0) out.wordnet = sum[1] / static_cast<double>(count[1]);
  return out;
}

}  // namespace engram
