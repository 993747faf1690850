#include "core/retrieval.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace engram {
namespace {

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Words so common in task descriptions that matching them says nothing.
bool IsStopWord(std::string_view w) {
  static const std::unordered_set<std::string_view> kStopWords = {
      "an",   "and",  "are",  "as",   "at",   "be",   "but",  "by",   "can",  "did",  "do",
      "does", "for",  "from", "had",  "has",  "have", "how",  "if",   "in",   "into", "is",
      "it",   "its",  "me",   "my",   "no",   "not",  "of",   "on",   "or",   "our",  "so",
      "that", "the",  "then", "there", "these", "this", "to",  "was",  "we",   "were", "what",
      "when", "where", "which", "who", "why",  "will", "with", "you",  "your", "i"};
  return kStopWords.contains(w);
}

// Calls `emit` for each retrieval word of `text`.
template <typename Emit>
void ForEachToken(std::string_view text, Emit&& emit) {
  std::string word;
  auto flush = [&] {
    if (word.size() > 1 && !IsStopWord(word)) {
      // A plural "s" only: "tests" → "test", but not "class", "status", "analysis".
      if (word.size() > 3 && word.back() == 's') {
        char before = word[word.size() - 2];
        if (before != 's' && before != 'u' && before != 'i') word.pop_back();
      }
      emit(word);
    }
    word.clear();
  };
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (IsWordByte(c)) {
      word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
    } else {
      flush();
    }
  }
  flush();
}

bool DomainAllowed(const std::vector<std::string>& allowed, std::string_view domain) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), domain) != allowed.end();
}

// Term frequencies of the query's words in one episode, and the episode's length in words.
struct TermCounts {
  std::vector<double> tf;
  double length = 0;
};

// Counts how often each query word occurs in the episode's searchable text.
TermCounts CountTerms(const Episode& e, const std::unordered_map<std::string, size_t>& query_terms) {
  TermCounts counts;
  counts.tf.assign(query_terms.size(), 0.0);
  auto add = [&](std::string_view text, double weight) {
    ForEachToken(text, [&](const std::string& w) {
      counts.length += weight;
      auto it = query_terms.find(w);
      if (it != query_terms.end()) counts.tf[it->second] += weight;
    });
  };
  add(e.task_description, kTaskDescriptionBoost);
  if (e.outcome) {
    add(e.outcome->verdict, 1);
    add(e.outcome->reason, 1);
    if (e.outcome->error_details) add(*e.outcome->error_details, 1);
    for (const std::string& s : e.outcome->completed) add(s, 1);
    for (const std::string& s : e.outcome->failed) add(s, 1);
  }
  if (e.reflection) {
    for (const std::string& s : e.reflection->successes) add(s, 1);
    for (const std::string& s : e.reflection->improvements) add(s, 1);
    for (const std::string& s : e.reflection->insights) add(s, 1);
  }
  for (const Step& s : e.steps) {
    add(s.tool, 1);
    add(s.action, 1);
    if (s.result && s.result->message) add(*s.result->message, 1);
  }
  if (e.context.language) add(*e.context.language, 1);
  if (e.context.framework) add(*e.context.framework, 1);
  for (const std::string& t : e.context.tags) add(t, 1);
  for (const std::string& t : e.tags) add(t, 1);
  return counts;
}

// Drops what retrieval does not return, so a scan of thousands of episodes stays small.
void StripBulk(Episode& e) {
  for (Step& s : e.steps) {
    s.parameters_json = "{}";
    if (s.result) s.result->output.reset();
  }
}

struct Candidate {
  Episode episode;
  TermCounts counts;
};

}  // namespace

std::vector<std::string> RetrievalTokens(std::string_view text) {
  std::vector<std::string> out;
  ForEachToken(text, [&](const std::string& w) { out.push_back(w); });
  return out;
}

size_t EstimateTokens(const Episode& e) {
  // Ids, names, numbers and JSON punctuation of one query_memory entry.
  constexpr size_t kFixedChars = 160;
  size_t chars = kFixedChars + e.task_description.size() + e.context.domain.size();
  if (e.outcome) chars += e.outcome->verdict.size() + e.outcome->reason.size();
  if (e.reflection) {
    for (const auto* list : {&e.reflection->successes, &e.reflection->improvements, &e.reflection->insights}) {
      for (const std::string& s : *list) chars += s.size() + 4;
    }
  }
  return (chars + kCharsPerToken - 1) / kCharsPerToken;
}

Result<std::vector<ScoredEpisode>> RetrieveEpisodes(StorageBackend& storage, const RetrievalQuery& query,
                                                    Clock& clock) {
  if (query.limit < 1 || query.limit > kMaxQueryLimit) {
    return InvalidArgumentError("limit: must be between 1 and " + std::to_string(kMaxQueryLimit) + " (got " +
                                std::to_string(query.limit) + ")");
  }
  if (query.max_scan < 1) return InvalidArgumentError("max_scan: must be at least 1");
  if (query.max_tokens && *query.max_tokens < 1) return InvalidArgumentError("max_tokens: must be at least 1");
  if (query.domain_filter && !query.domain) {
    return InvalidArgumentError("domain_filter: needs a domain to filter on");
  }

  std::unordered_map<std::string, size_t> query_terms;
  ForEachToken(query.text, [&](const std::string& w) { query_terms.emplace(w, query_terms.size()); });
  const bool has_terms = !query_terms.empty();

  EpisodeFilter filter;
  filter.completed = true;
  filter.limit = query.max_scan;
  filter.include_steps = true;
  if (query.domain_filter) {
    if (!DomainAllowed(query.allowed_domains, *query.domain)) return std::vector<ScoredEpisode>{};
    filter.domain = *query.domain;
  } else if (query.allowed_domains.size() == 1) {
    filter.domain = query.allowed_domains.front();  // the store skips the rest for us
  }
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, storage.ListEpisodes(filter));

  // Pass 1: stream newest first, counting query words per episode and across the scan
  // (BM25 needs the average length and document frequencies of the scanned set).
  std::vector<Candidate> candidates;
  std::vector<double> doc_freq(query_terms.size(), 0.0);
  double total_length = 0;
  size_t scanned = 0;
  for (;;) {
    if (query.cancelled && query.cancelled()) return CancelledError("retrieval was cancelled");
    ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> next, stream->Next());
    if (!next) break;
    if (!DomainAllowed(query.allowed_domains, next->context.domain)) continue;
    TermCounts counts = CountTerms(*next, query_terms);
    ++scanned;
    total_length += counts.length;
    bool matched = false;
    for (size_t i = 0; i < counts.tf.size(); ++i) {
      if (counts.tf[i] > 0) {
        doc_freq[i] += 1;
        matched = true;
      }
    }
    if (has_terms && !matched) continue;
    StripBulk(*next);
    candidates.push_back({*std::move(next), std::move(counts)});
  }
  stream.reset();  // releases the read snapshot before scoring
  if (candidates.empty()) return std::vector<ScoredEpisode>{};

  // Pass 2: score.
  const double n = static_cast<double>(scanned);
  const double avg_length = total_length > 0 ? total_length / n : 1.0;
  std::vector<double> idf(query_terms.size());
  double ideal = 0;  // the BM25 score of a document saturated with every query word
  for (size_t i = 0; i < idf.size(); ++i) {
    idf[i] = std::log(1.0 + (n - doc_freq[i] + 0.5) / (doc_freq[i] + 0.5));
    ideal += idf[i] * (kBm25K1 + 1.0);
  }
  const Timestamp now = clock.Now();
  double context_possible = 0;
  if (query.domain) context_possible += kDomainMatchShare;
  if (query.task_type) context_possible += kTaskTypeMatchShare;

  std::vector<ScoredEpisode> scored;
  scored.reserve(candidates.size());
  for (Candidate& c : candidates) {
    ScoredEpisode s;
    if (has_terms && ideal > 0) {
      double bm25 = 0;
      const double norm = kBm25K1 * (1.0 - kBm25B + kBm25B * c.counts.length / avg_length);
      for (size_t i = 0; i < idf.size(); ++i) {
        const double tf = c.counts.tf[i];
        if (tf > 0) bm25 += idf[i] * tf * (kBm25K1 + 1.0) / (tf + norm);
      }
      s.lexical = std::clamp(bm25 / ideal, 0.0, 1.0);
    }
    const Episode& e = c.episode;
    if (e.reward) s.reward = std::clamp(e.reward->total / kMaxRewardTotal, 0.0, 1.0);
    const Timestamp at = e.end_time.value_or(e.start_time);
    const double age_ms = std::max<double>(0.0, static_cast<double>((now - at).count()));
    const double half_life_ms = std::chrono::duration<double, std::milli>(kRecencyHalfLife).count();
    s.recency = std::pow(0.5, age_ms / half_life_ms);
    if (context_possible > 0) {
      double earned = 0;
      if (query.domain && e.context.domain == *query.domain) earned += kDomainMatchShare;
      if (query.task_type && e.task_type == *query.task_type) earned += kTaskTypeMatchShare;
      s.context = earned / context_possible;
    }
    s.score = kLexicalWeight * s.lexical + kRewardWeight * s.reward + kRecencyWeight * s.recency +
              kContextWeight * s.context;
    s.tokens = EstimateTokens(e);
    s.episode = std::move(c.episode);
    scored.push_back(std::move(s));
  }
  // Stable: candidates are newest first, so ties go to the more recent episode.
  std::stable_sort(scored.begin(), scored.end(),
                   [](const ScoredEpisode& a, const ScoredEpisode& b) { return a.score > b.score; });

  std::vector<ScoredEpisode> out;
  size_t budget_used = 0;
  for (ScoredEpisode& s : scored) {
    if (out.size() == query.limit) break;
    if (query.max_tokens && budget_used + s.tokens > *query.max_tokens) break;
    budget_used += s.tokens;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace engram
