#include "retrieval/retriever.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/logging.h"
#include "model/search_text.h"
#include "retrieval/episode_text.h"
#include "retrieval/vector_index.h"
#include "semantics/query_expander.h"

namespace engram {

// Parts of the context component: the domain is the strong signal.
namespace {
constexpr double kDomainShare = 0.50;
constexpr double kTaskTypeShare = 0.20;
constexpr double kLanguageShare = 0.10;
constexpr double kFrameworkShare = 0.10;
constexpr double kTagsShare = 0.10;
// Episodes embedded and stored per transaction by IndexPending / Reindex.
constexpr size_t kIndexBatch = 256;
// The expansion's full-text search asks for at most this many concept-map words (the
// query's first facets first): each word adds thousands of postings to rank at 100k
// episodes, and on bench/eval more than 8 found nothing more.
constexpr size_t kExpansionSearchWords = 8;
}  // namespace

struct Retriever::CacheEntry {
  std::string key;
  int64_t generation = 0;
  RetrievalResult result;
};

Status ValidateRankingOptions(const RankingOptions& o) {
  const RankingWeights& w = o.weights;
  for (auto [name, v] : {std::pair{"semantic", w.semantic}, std::pair{"lexical", w.lexical},
                         std::pair{"context", w.context}, std::pair{"reward", w.reward},
                         std::pair{"recency", w.recency}, std::pair{"concepts", w.concepts},
                         std::pair{"wordnet", w.wordnet}}) {
    if (!(v >= 0) || !std::isfinite(v)) {
      return InvalidArgumentError(std::string("retrieval.weights.") + name + ": must be a number >= 0");
    }
  }
  if (w.semantic + w.lexical + w.context + w.reward + w.recency + w.concepts + w.wordnet <= 0) {
    return InvalidArgumentError("retrieval.weights: at least one weight must be above 0");
  }
  if (!(o.mmr_lambda >= 0 && o.mmr_lambda <= 1)) {
    return InvalidArgumentError("retrieval.mmr_lambda: must be between 0 and 1");
  }
  if (!(o.vector_expansion >= 0 && o.vector_expansion <= 10)) {
    return InvalidArgumentError("retrieval.vector_expansion: must be between 0 and 10");
  }
  if (!(o.min_similarity >= -1 && o.min_similarity <= 1)) {
    return InvalidArgumentError("retrieval.min_similarity: must be between -1 and 1");
  }
  if (o.recency_half_life.count() <= 0) return InvalidArgumentError("retrieval.recency_half_life_days: must be > 0");
  if (o.lexical_candidates == 0 && o.vector_candidates == 0) {
    return InvalidArgumentError("retrieval: lexical_candidates and vector_candidates cannot both be 0");
  }
  return OkStatus();
}

std::vector<std::string> RetrievalTokens(std::string_view text) { return SearchTokens(text); }

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

std::vector<size_t> MmrOrder(const std::vector<double>& scores, double lambda, size_t keep,
                             const std::function<double(size_t, size_t)>& similarity) {
  std::vector<size_t> picked;
  std::vector<bool> used(scores.size(), false);
  std::vector<double> max_sim(scores.size(), 0.0);
  keep = std::min(keep, scores.size());
  while (picked.size() < keep) {
    size_t best = scores.size();
    double best_value = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < scores.size(); ++i) {
      if (used[i]) continue;
      const double value = lambda * scores[i] - (1.0 - lambda) * max_sim[i];
      if (value > best_value) {  // strict: ties keep the earlier (better-ranked) item
        best_value = value;
        best = i;
      }
    }
    used[best] = true;
    picked.push_back(best);
    for (size_t i = 0; i < scores.size(); ++i) {
      if (!used[i]) max_sim[i] = std::max(max_sim[i], similarity(i, best));
    }
  }
  return picked;
}

std::string_view CutQuery(std::string_view text) {
  if (text.size() <= kMaxQueryChars) return text;
  size_t end = kMaxQueryChars;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

namespace {

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool DomainAllowed(const std::vector<std::string>& allowed, std::string_view domain) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), domain) != allowed.end();
}

// Drops what retrieval does not return.
void StripBulk(Episode& e) {
  for (Step& s : e.steps) {
    s.parameters_json = "{}";
    if (s.result) s.result->output.reset();
  }
}

std::string CacheKey(const RetrievalQuery& q, std::string_view text) {
  std::string key;
  auto add = [&key](std::string_view part) {
    key += std::to_string(part.size());
    key.push_back(':');
    key.append(part);
  };
  add(text);
  add(q.domain.value_or("\x01"));
  add(q.task_type ? TaskTypeName(*q.task_type) : "\x01");
  add(q.language.value_or("\x01"));
  add(q.framework.value_or("\x01"));
  for (const std::string& t : q.tags) add(t);
  add("|");
  add(q.domain_filter ? "f" : "-");
  add(std::to_string(q.limit));
  add(q.max_tokens ? std::to_string(*q.max_tokens) : "-");
  add(std::to_string(static_cast<int>(q.mode)));
  for (const std::string& d : q.allowed_domains) add(d);
  return key;
}

double Jaccard(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.empty() && b.empty()) return 0;
  size_t common = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) {
      ++common, ++i, ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

std::vector<std::string> SortedWords(std::string_view text) {
  std::vector<std::string> w = SearchTokens(text);
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
  return w;
}

bool ContainsIgnoreCase(const std::vector<std::string>& list, std::string_view value) {
  for (const std::string& s : list) {
    if (s.size() == value.size() &&
        std::equal(s.begin(), s.end(), value.begin(),
                   [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                               std::tolower(static_cast<unsigned char>(b)); })) {
      return true;
    }
  }
  return false;
}

bool EqualsIgnoreCase(const std::optional<std::string>& a, const std::string& b) {
  return a && ContainsIgnoreCase({*a}, b);
}

double ContextScore(const RetrievalQuery& q, const Episode& e) {
  double possible = 0, earned = 0;
  if (q.domain) {
    possible += kDomainShare;
    if (e.context.domain == *q.domain) earned += kDomainShare;
  }
  if (q.task_type) {
    possible += kTaskTypeShare;
    if (e.task_type == *q.task_type) earned += kTaskTypeShare;
  }
  if (q.language) {
    possible += kLanguageShare;
    if (EqualsIgnoreCase(e.context.language, *q.language)) earned += kLanguageShare;
  }
  if (q.framework) {
    possible += kFrameworkShare;
    if (EqualsIgnoreCase(e.context.framework, *q.framework)) earned += kFrameworkShare;
  }
  if (!q.tags.empty()) {
    possible += kTagsShare;
    size_t shared = 0;
    for (const std::string& t : q.tags) {
      if (ContainsIgnoreCase(e.tags, t) || ContainsIgnoreCase(e.context.tags, t)) ++shared;
    }
    earned += kTagsShare * static_cast<double>(shared) / static_cast<double>(q.tags.size());
  }
  return possible > 0 ? earned / possible : 0.0;
}

struct Candidate {
  double lexical_raw = 0;
  std::optional<double> semantic;  // known when the vector side returned it
};

}  // namespace

Retriever::Retriever(StorageBackend& store, Clock& clock, EmbeddingProvider* provider, VectorIndex* index,
                     RankingOptions options)
    : store_(store),
      clock_(clock),
      provider_(provider),
      index_(index),
      options_(std::make_shared<const RankingOptions>(std::move(options))) {}

Retriever::~Retriever() = default;

RankingOptions Retriever::options() const {
  MutexLock lock(mu_);
  return *options_;
}

Status Retriever::SetOptions(RankingOptions options) {
  ENGRAM_RETURN_IF_ERROR(ValidateRankingOptions(options));
  auto next = std::make_shared<const RankingOptions>(std::move(options));
  MutexLock lock(mu_);
  options_ = std::move(next);
  cache_.clear();
  return OkStatus();
}

void Retriever::SetExpander(const QueryExpander* expander, ExpansionHealth health) {
  MutexLock lock(mu_);
  expander_.store(expander, std::memory_order_release);
  expansion_health_ = std::move(health);
  expansion_health_.configured = expander != nullptr;
  cache_.clear();
}

ExpansionHealth Retriever::Expansion() const {
  MutexLock lock(mu_);
  return expansion_health_;
}

RetrievalMetrics Retriever::Metrics() const {
  MutexLock lock(mu_);
  return metrics_;
}

Result<RetrievalResult> Retriever::Retrieve(const RetrievalQuery& query) {
  if (query.text.empty() || IsBlank(query.text)) {
    return InvalidArgumentError("query: must not be empty or only whitespace");
  }
  if (query.limit < 1 || query.limit > kMaxQueryLimit) {
    return InvalidArgumentError("limit: must be between 1 and " + std::to_string(kMaxQueryLimit) + " (got " +
                                std::to_string(query.limit) + ")");
  }
  if (query.max_tokens && *query.max_tokens < 1) return InvalidArgumentError("max_tokens: must be at least 1");
  if (query.domain_filter && !query.domain) {
    return InvalidArgumentError("domain_filter: needs a domain to filter on");
  }
  const std::string_view text = CutQuery(query.text);
  std::shared_ptr<const RankingOptions> options;
  {
    MutexLock lock(mu_);
    options = options_;
  }

  std::string key;
  int64_t generation = 0;
  if (options->cache_entries > 0) {
    ENGRAM_ASSIGN_OR_RETURN(generation, store_.Generation());
    key = CacheKey(query, text);
    MutexLock lock(mu_);
    ++metrics_.queries;
    for (size_t i = 0; i < cache_.size(); ++i) {
      if (cache_[i]->key == key && cache_[i]->generation == generation) {
        ++metrics_.cache_hits;
        std::rotate(cache_.begin(), cache_.begin() + static_cast<std::ptrdiff_t>(i),
                    cache_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        RetrievalResult hit = cache_.front()->result;
        hit.from_cache = true;
        return hit;
      }
    }
    ++metrics_.cache_misses;
  } else {
    MutexLock lock(mu_);
    ++metrics_.queries;
  }

  ENGRAM_ASSIGN_OR_RETURN(RetrievalResult result, Compute(query, text, *options));
  MutexLock lock(mu_);
  if (!result.notice.empty() && query.mode != RetrievalMode::kLexical) ++metrics_.degraded;
  // Not cached if SetOptions ran meanwhile: the result was ranked with the old options.
  if (options->cache_entries > 0 && options_ == options) {
    auto entry = std::make_unique<CacheEntry>(CacheEntry{std::move(key), generation, result});
    // A degraded answer is not cached: the provider may be back for the next query.
    if (result.notice.empty()) {
      cache_.insert(cache_.begin(), std::move(entry));
      if (cache_.size() > options->cache_entries) cache_.pop_back();
    }
  }
  return result;
}

Result<RetrievalResult> Retriever::Compute(const RetrievalQuery& q, std::string_view text,
                                           const RankingOptions& options) {
  RetrievalResult result;
  auto cancelled = [&q] { return q.cancelled && q.cancelled(); };
  const std::vector<std::string> words = SearchTokens(text);
  std::unordered_map<std::string, Candidate> candidates;

  // Lexical side.
  double best_lexical = 0;
  if (q.mode != RetrievalMode::kVector && !words.empty() && options.lexical_candidates > 0) {
    TextSearchRequest req;
    req.words = words;
    req.limit = options.lexical_candidates;
    if (q.domain_filter) req.domain = q.domain;
    req.allowed_domains = q.allowed_domains;
    ENGRAM_ASSIGN_OR_RETURN(std::vector<TextHit> hits, store_.SearchText(req));
    result.lexical_hits = hits.size();
    for (const TextHit& h : hits) {
      candidates[h.episode_id].lexical_raw = h.score;
      best_lexical = std::max(best_lexical, h.score);
    }
  }
  if (cancelled()) return CancelledError("retrieval was cancelled");

  // Expansion: the query's concept-map and WordNet facets, for the sources that weigh
  // something. The concept words may fetch more candidates (after the vector side).
  ExpandedQuery expanded;
  const QueryExpander* const expander = expander_.load(std::memory_order_acquire);
  const RankingWeights& w = options.weights;
  // The concept alternatives also go into the query's vector (vector_expansion).
  std::string vector_extra;
  if (expander != nullptr && (w.concepts > 0 || w.wordnet > 0 || options.vector_expansion > 0)) {
    expanded = expander->Expand(text);
    if (options.vector_expansion > 0 && q.mode != RetrievalMode::kLexical) {
      for (const ExpansionFacet& f : expanded.facets) {
        if (f.source != ExpansionSource::kConcept) continue;
        for (const ExpansionTerm& t : f.terms) vector_extra += (vector_extra.empty() ? "" : ", ") + t.text;
      }
    }
    std::erase_if(expanded.facets, [&w, &q](const ExpansionFacet& f) {
      return q.mode == RetrievalMode::kVector ||
             (f.source == ExpansionSource::kConcept ? w.concepts : w.wordnet) <= 0;
    });
  }
  const bool concepts_in_play = expanded.Has(ExpansionSource::kConcept);
  const bool wordnet_in_play = expanded.Has(ExpansionSource::kWordNet);
  if (cancelled()) return CancelledError("retrieval was cancelled");

  // Vector side.
  std::vector<float> query_vector;
  bool semantic = false;
  VectorIndex* const index = index_.load(std::memory_order_acquire);
  if (q.mode != RetrievalMode::kLexical) {
    std::string why;
    if (provider_ == nullptr) {
      why = "no embedding provider is configured";
    } else if (index == nullptr) {
      why = "the vector index is still loading";
    } else if (Result<bool> stale = VectorsStale(); !stale.ok()) {
      why = std::string(stale.status().message());
    } else if (*stale) {
      why = "the stored vectors were made by another embedding provider; run `engram reindex`";
    } else {
      std::vector<std::string> texts = {std::string(text)};
      if (!vector_extra.empty()) texts.push_back(vector_extra);
      Result<std::vector<std::vector<float>>> v = provider_->Embed(texts, EmbedPurpose::kQuery);
      if (!v.ok()) {
        why = std::string(v.status().message());
      } else if (Status s = index->CatchUp(); !s.ok()) {
        why = "vector index: " + std::string(s.message());
      } else {
        query_vector = std::move(v->front());
        if (v->size() == 2) {
          // query + β · alternatives, unit length again.
          double norm = 0;
          for (size_t i = 0; i < query_vector.size(); ++i) {
            query_vector[i] += static_cast<float>(options.vector_expansion) * (*v)[1][i];
            norm += static_cast<double>(query_vector[i]) * query_vector[i];
          }
          if (norm > 0) {
            const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
            for (float& x : query_vector) x *= inv;
          }
        }
        semantic = true;
      }
    }
    if (!semantic) {
      // No provider configured is a choice (embedding.provider = none), not a degradation.
      if (provider_ != nullptr) result.notice = "semantic ranking unavailable (" + why + "); ranked by lexical match only";
    } else if (options.vector_candidates > 0) {
      ENGRAM_ASSIGN_OR_RETURN(std::vector<VectorHit> hits,
                              index->Search(query_vector, options.vector_candidates, {}));
      for (const VectorHit& h : hits) {
        if (h.similarity < options.min_similarity) continue;
        candidates[h.episode_id].semantic = h.similarity;
        ++result.vector_hits;
      }
    }
  }
  result.semantic_used = semantic;
  if (cancelled()) return CancelledError("retrieval was cancelled");

  // Expansion candidates: one more full-text search for the concept alternatives' words,
  // only when the vector side did not already look for them (its query vector holds the
  // alternatives): on bench/eval that search then added no hit to the top 10, and at 100k
  // episodes it cost as much as the query's own search. WordNet's words are not searched
  // (they weigh little and are many).
  const bool vector_had_alternatives = semantic && options.vector_candidates > 0 && !vector_extra.empty();
  if (concepts_in_play && !vector_had_alternatives && options.lexical_candidates > 0) {
    std::vector<std::string> extra = expanded.ExtraWords(ExpansionSource::kConcept);
    if (extra.size() > kExpansionSearchWords) extra.resize(kExpansionSearchWords);
    if (!extra.empty()) {
      TextSearchRequest req;
      req.words = std::move(extra);
      req.limit = options.lexical_candidates;
      if (q.domain_filter) req.domain = q.domain;
      req.allowed_domains = q.allowed_domains;
      ENGRAM_ASSIGN_OR_RETURN(std::vector<TextHit> hits, store_.SearchText(req));
      result.expansion_hits = hits.size();
      for (const TextHit& h : hits) candidates.try_emplace(h.episode_id);
    }
    if (cancelled()) return CancelledError("retrieval was cancelled");
  }

  // Load and score.
  double weight_total = w.context + w.reward + w.recency;
  if (concepts_in_play) weight_total += w.concepts;
  if (wordnet_in_play) weight_total += w.wordnet;
  if (semantic) weight_total += w.semantic;
  if (q.mode != RetrievalMode::kVector) weight_total += w.lexical;
  const Timestamp now = clock_.Now();
  const double half_life_ms = std::chrono::duration<double, std::milli>(options.recency_half_life).count();

  // Semantic similarity of every candidate (lexical-only ones too), relative to the best,
  // as lexical is: both then range over [0, 1] for this query.
  double best_semantic = 0;
  if (semantic) {
    for (auto& [id, c] : candidates) {
      if (!c.semantic) {
        std::optional<float> sim = index->Similarity(query_vector, id);
        c.semantic = sim ? std::max(0.0f, *sim) : 0.0f;
      }
      best_semantic = std::max(best_semantic, *c.semantic);
    }
  }

  std::vector<ScoredEpisode> scored;
  scored.reserve(candidates.size());
  // All candidates in one read (one round trip on a remote store); one deleted meanwhile is
  // not among them.
  std::vector<std::string> candidate_ids;
  candidate_ids.reserve(candidates.size());
  for (const auto& [id, c] : candidates) candidate_ids.push_back(id);
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Episode> loaded, store_.GetEpisodes(candidate_ids));
  DocumentTerms document_terms(expanded);  // refilled per candidate
  for (Episode& e : loaded) {
    auto found = candidates.find(e.episode_id);
    if (found == candidates.end()) continue;
    Candidate& c = found->second;
    if (!e.end_time) continue;
    if (!DomainAllowed(q.allowed_domains, e.context.domain)) continue;
    if (q.domain_filter && e.context.domain != *q.domain) continue;
    ScoredEpisode s;
    s.lexical = best_lexical > 0 ? std::clamp(c.lexical_raw / best_lexical, 0.0, 1.0) : 0.0;
    if (semantic && best_semantic > 0) s.semantic = std::clamp(*c.semantic / best_semantic, 0.0, 1.0);
    if (e.reward) s.reward = std::clamp(e.reward->total / kMaxRewardTotal, 0.0, 1.0);
    const double age_ms = std::max<double>(0.0, static_cast<double>((now - *e.end_time).count()));
    s.recency = std::pow(0.5, age_ms / half_life_ms);
    s.context = ContextScore(q, e);
    if (concepts_in_play || wordnet_in_play) {
      document_terms.Clear();
      ForEachSearchDocumentWord(
          e, [&](const std::string& word) { document_terms.AddTitleWord(word); },
          [&](const std::string& word) { document_terms.AddBodyWord(word); });
      const ExpansionScores x = ScoreExpansion(expanded, document_terms);
      s.concepts = x.concepts;
      s.wordnet = x.wordnet;
    }
    double sum = w.context * s.context + w.reward * s.reward + w.recency * s.recency;
    if (concepts_in_play) sum += w.concepts * s.concepts;
    if (wordnet_in_play) sum += w.wordnet * s.wordnet;
    if (semantic) sum += w.semantic * s.semantic;
    if (q.mode != RetrievalMode::kVector) sum += w.lexical * s.lexical;
    s.score = weight_total > 0 ? sum / weight_total : 0;
    StripBulk(e);
    s.tokens = EstimateTokens(e);
    s.episode = std::move(e);
    scored.push_back(std::move(s));
  }
  // Best first; ties to the newer episode (ids are time-ordered) so the order is stable.
  std::sort(scored.begin(), scored.end(), [](const ScoredEpisode& a, const ScoredEpisode& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.episode.episode_id > b.episode.episode_id;
  });

  // Diversity.
  std::vector<std::vector<std::string>> titles;
  std::vector<double> scores;
  titles.reserve(scored.size());
  for (const ScoredEpisode& s : scored) {
    titles.push_back(SortedWords(s.episode.task_description));
    scores.push_back(s.score);
  }
  const std::vector<size_t> order = MmrOrder(scores, options.mmr_lambda, q.limit,
                                             [&](size_t i, size_t j) { return Jaccard(titles[i], titles[j]); });

  size_t budget_used = 0;
  for (size_t i : order) {
    ScoredEpisode& s = scored[i];
    if (q.max_tokens && budget_used + s.tokens > *q.max_tokens) break;
    budget_used += s.tokens;
    result.episodes.push_back(std::move(s));
  }
  return result;
}

Result<bool> Retriever::VectorsStale() {
  if (provider_ == nullptr) return false;
  ENGRAM_ASSIGN_OR_RETURN(std::optional<EmbeddingSpace> recorded, store_.GetEmbeddingSpace());
  return recorded.has_value() && !(*recorded == provider_->Space());
}

Result<size_t> Retriever::IndexBatch(const std::vector<std::string>& ids) {
  std::vector<std::string> texts;
  std::vector<std::string> kept;
  texts.reserve(ids.size());
  for (const std::string& id : ids) {
    Result<Episode> e = store_.GetEpisode(id);
    if (!e.ok()) {
      if (e.status().code() == StatusCode::kNotFound) continue;
      return e.status();
    }
    texts.push_back(EpisodeEmbeddingText(*e, *provider_));
    kept.push_back(id);
  }
  if (kept.empty()) return size_t{0};
  ENGRAM_ASSIGN_OR_RETURN(std::vector<std::vector<float>> vectors, provider_->Embed(texts, EmbedPurpose::kDocument));
  std::vector<EpisodeVector> rows(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    rows[i].episode_id = kept[i];
    rows[i].vector = std::move(vectors[i]);
  }
  Status put = store_.PutVectors(provider_->Space(), rows);
  if (put.code() == StatusCode::kNotFound) {
    // One of them was deleted meanwhile: store the rest one by one.
    size_t n = 0;
    for (const EpisodeVector& r : rows) {
      Status one = store_.PutVectors(provider_->Space(), std::span<const EpisodeVector>(&r, 1));
      if (one.ok()) ++n;
      else if (one.code() != StatusCode::kNotFound) return one;
    }
    return n;
  }
  ENGRAM_RETURN_IF_ERROR(put);
  return rows.size();
}

size_t Retriever::RetryBacklog() const {
  MutexLock lock(mu_);
  return retry_.size();
}

Result<size_t> Retriever::IndexEpisodes(const std::vector<std::string>& episode_ids) {
  if (provider_ == nullptr || episode_ids.empty()) return size_t{0};
  std::vector<std::string> ids;
  {
    MutexLock lock(mu_);
    ids.swap(retry_);
  }
  ids.insert(ids.end(), episode_ids.begin(), episode_ids.end());
  // What is not stored goes back to the backlog (the newest kMaxRetryBacklog of it).
  size_t done = 0;
  auto keep_rest = [&] {
    MutexLock lock(mu_);
    std::vector<std::string> rest(ids.begin() + static_cast<std::ptrdiff_t>(done), ids.end());
    rest.insert(rest.end(), retry_.begin(), retry_.end());
    if (rest.size() > kMaxRetryBacklog) rest.erase(rest.begin(), rest.end() - kMaxRetryBacklog);
    retry_ = std::move(rest);
  };
  Result<bool> stale = VectorsStale();
  if (!stale.ok()) {
    keep_rest();
    return stale.status();
  }
  if (*stale) return size_t{0};  // `engram reindex` will embed them
  size_t n = 0;
  for (; done < ids.size(); done = std::min(ids.size(), done + kIndexBatch)) {
    std::vector<std::string> batch(
        ids.begin() + static_cast<std::ptrdiff_t>(done),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), done + kIndexBatch)));
    Result<size_t> stored = IndexBatch(batch);
    if (!stored.ok()) {
      keep_rest();
      return stored.status();
    }
    n += *stored;
  }
  VectorIndex* index = index_.load(std::memory_order_acquire);
  if (index != nullptr && n > 0) ENGRAM_RETURN_IF_ERROR(index->CatchUp());
  return n;
}

Result<size_t> Retriever::IndexPending(size_t max, const std::function<void(size_t, size_t)>& progress) {
  if (provider_ == nullptr) return size_t{0};
  ENGRAM_ASSIGN_OR_RETURN(std::optional<EmbeddingSpace> recorded, store_.GetEmbeddingSpace());
  const EmbeddingSpace space = provider_->Space();
  if (!recorded) {
    ENGRAM_RETURN_IF_ERROR(store_.SetEmbeddingSpace(space));
  } else if (!(*recorded == space)) {
    return FailedPreconditionError("stored vectors belong to " + recorded->Key() + ", the provider is " +
                                   space.Key() + ": run `engram reindex`");
  }
  size_t done = 0;
  size_t total = max;
  std::string after;  // the walk resumes past what it embedded (or could not)
  for (;;) {
    size_t want = kIndexBatch;
    if (max > 0) want = std::min(want, max - done);
    if (want == 0) break;
    ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, store_.EpisodesWithoutVector(space, after, want));
    if (ids.empty()) break;
    after = ids.back();
    if (max == 0) total = std::max(total, done + ids.size());
    Result<size_t> n = IndexBatch(ids);
    if (!n.ok()) {
      MutexLock lock(mu_);
      ++metrics_.index_failures;
      return n.status();
    }
    done += ids.size();
    {
      MutexLock lock(mu_);
      metrics_.indexed += static_cast<int64_t>(*n);
    }
    if (progress) progress(done, std::max(total, done));
  }
  VectorIndex* index = index_.load(std::memory_order_acquire);
  if (index != nullptr && done > 0) ENGRAM_RETURN_IF_ERROR(index->CatchUp());
  return done;
}

Result<size_t> Retriever::Reindex(const std::function<void(size_t, size_t)>& progress) {
  if (provider_ == nullptr) return FailedPreconditionError("no embedding provider is configured");
  ENGRAM_RETURN_IF_ERROR(store_.SetEmbeddingSpace(provider_->Space()));
  ENGRAM_ASSIGN_OR_RETURN(StoreStats stats, store_.Stats());
  const size_t total = static_cast<size_t>(stats.completed_episodes);
  // Every completed episode is embedded again (vectors of this space are replaced: the
  // store's IDF may have moved since they were made), newest first, a batch at a time.
  EpisodeFilter filter;
  filter.completed = true;
  filter.include_steps = false;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, store_.ListEpisodes(filter));
  std::vector<std::string> ids;
  while (true) {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> e, stream->Next());
    if (!e) break;
    ids.push_back(std::move(e->episode_id));
  }
  stream.reset();
  size_t done = 0;
  for (size_t i = 0; i < ids.size(); i += kIndexBatch) {
    std::vector<std::string> batch(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                   ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + kIndexBatch)));
    ENGRAM_ASSIGN_OR_RETURN(size_t n, IndexBatch(batch));
    done += batch.size();
    {
      MutexLock lock(mu_);
      metrics_.indexed += static_cast<int64_t>(n);
    }
    if (progress) progress(done, std::max(total, done));
  }
  // Completed while we worked.
  ENGRAM_ASSIGN_OR_RETURN(size_t more, IndexPending(0));
  return done + more;
}

}  // namespace engram
