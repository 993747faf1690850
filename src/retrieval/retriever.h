// Retriever: hybrid retrieval of past episodes for query_memory, `engram query` and the
// recall prompt (DESIGN §4).
//
//   Retriever retriever(store, clock, provider.get(), index.get(), RankingOptions{});
//   RetrievalQuery q{.text = "flaky async test in the web api", .domain = "web-api"};
//   ENGRAM_ASSIGN_OR_RETURN(RetrievalResult r, retriever.Retrieve(q));
//
// 1. Candidates: the store's full-text index (BM25, RankingOptions::lexical_candidates
//    hits) ∪ the vector index (cosine, RankingOptions::vector_candidates hits at or above
//    RankingOptions::min_similarity).
// 2. Each candidate gets five components in [0, 1]:
//      semantic  cosine similarity of query and episode embeddings / the best among the
//                candidates of this query (0 when below 0)
//      lexical   BM25 / the best BM25 among the hits of this query
//      recency   0.5 ^ (age / recency_half_life), age from the episode's end time
//      reward    reward.total / kMaxRewardTotal
//      context   shares earned of domain, task type, language, framework and tags the
//                query names (0 when it names none)
//      concepts  with a query expander (semantics/query_expander.h): the mean over the
//                query's concept-map facets of the best term of each the episode holds
//                (1 in the task description, 0.75 elsewhere; '~' terms count half)
//      wordnet   the same over the WordNet synonyms of the query's plain words
//    Expansion also adds candidates: one more full-text search for (at most 8 of) the
//    concept facets' words, when the vector side did not already search with them.
//    score = Σ weight · component / Σ weight of the components in play: when semantic
//    ranking is unavailable (no provider, the provider failed, or vectors are stale) the
//    semantic weight drops out, and RetrievalResult::notice says so.
// 3. MMR (λ = mmr_lambda): the next pick maximises λ·score − (1 − λ)·max similarity to
//    what is picked, similarity being the Jaccard overlap of the task descriptions' words.
// 4. `limit`, then the optional `max_tokens` budget (EstimateTokens).
// 5. A query cache keyed on the whole request plus the store's Generation(): any write,
//    by any process, invalidates it.
//
// Domain is a signal unless domain_filter is set. An empty store answers an empty list.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "engram/clock.h"
#include "engram/embedding.h"
#include "engram/result.h"
#include "engram/storage.h"
#include "engram/types.h"

namespace engram {

class VectorIndex;
class QueryExpander;

// The largest reward total the formula can give (core/reward.h).
inline constexpr double kMaxRewardTotal = 3.2;
inline constexpr size_t kDefaultRetrievalLimit = 10;
// max_tokens counts about this many characters of returned text per token.
inline constexpr size_t kCharsPerToken = 4;
// A query longer than this is cut to it (at a UTF-8 boundary) before anything else.
inline constexpr size_t kMaxQueryChars = 2'000;

// Defaults chosen on bench/eval (`make eval`) with the hashing provider: lexical, semantic,
// concepts and wordnet by `retrieval_eval --tune` on the even half of the queries, checked on
// the odd half; see the note in bench/eval/README.md.
struct RankingWeights {
  double semantic = 0.20;
  double lexical = 0.70;
  double context = 0.15;
  double reward = 0.10;
  double recency = 0.05;
  // Query expansion (issue 8); in play only with an expander and a query it expands.
  double concepts = 0.35;
  double wordnet = 0;  // off: WordNet moved no figure on bench/eval (bench/eval/README.md)
};

struct RankingOptions {
  RankingWeights weights{};
  std::chrono::hours recency_half_life{24 * 30};
  double mmr_lambda = 0.7;            // 1: no diversity
  size_t lexical_candidates = 50;
  size_t vector_candidates = 50;
  // Nearest neighbours less similar than this (cosine) are not candidates: a query about
  // nothing in the store should not get the least unrelated episodes back.
  double min_similarity = 0.10;
  // With a query expander: the query's vector becomes query + vector_expansion ·
  // (its concept-map alternatives), normalised; 0: the query's own vector only.
  double vector_expansion = 1.0;
  size_t cache_entries = 256;         // 0: no query cache
};
// Errors: kInvalidArgument naming the bad option (negative weight, all weights 0, λ outside
// [0, 1], half-life of 0, no candidates).
Status ValidateRankingOptions(const RankingOptions& options);

enum class RetrievalMode { kHybrid, kLexical, kVector };

struct RetrievalQuery {
  std::string text{};                     // what the caller is about to do or wants to know
  std::optional<std::string> domain{};    // boosts episodes of this domain
  std::optional<TaskType> task_type{};    // boosts episodes of this task type
  std::optional<std::string> language{};  // boosts
  std::optional<std::string> framework{}; // boosts
  std::vector<std::string> tags{};        // boosts episodes sharing tags
  bool domain_filter = false;             // true: only episodes of `domain` (needs domain)
  size_t limit = kDefaultRetrievalLimit;  // 1..kMaxQueryLimit
  // Token budget for the returned text: episodes are taken in rank order until the next
  // one would not fit; that one and every later one are left out.
  std::optional<size_t> max_tokens{};
  RetrievalMode mode = RetrievalMode::kHybrid;  // the eval compares the three
  // Domains the caller may see; empty means every domain. Others are never returned.
  std::vector<std::string> allowed_domains{};
  // Polled between stages; returning true ends retrieval with kCancelled. May be empty.
  std::function<bool()> cancelled{};
};

struct ScoredEpisode {
  // The episode as stored, except that steps carry no output and no parameters (bulk that
  // query_memory does not return); GetEpisode has the full episode.
  Episode episode;
  double score = 0;  // the blend, in [0, 1]
  double semantic = 0;
  double lexical = 0;
  double recency = 0;
  double reward = 0;
  double context = 0;
  double concepts = 0;
  double wordnet = 0;
  size_t tokens = 0;  // EstimateTokens(episode)
};

struct RetrievalResult {
  std::vector<ScoredEpisode> episodes;
  bool semantic_used = false;  // the vector side took part
  // Empty, or why the ranking is degraded, e.g. "semantic ranking unavailable (embedding
  // provider unavailable: circuit open ...); ranked by lexical match only".
  std::string notice;
  bool from_cache = false;
  size_t lexical_hits = 0;
  size_t vector_hits = 0;
  size_t expansion_hits = 0;  // hits of the expansion's full-text search (0 when it did not run)
};

// What query expansion can do, for health_check and logs.
struct ExpansionHealth {
  bool configured = false;  // an expander is set
  bool healthy = true;      // false: expansion cannot work as configured
  std::string detail;       // e.g. "concept map (244 groups) and WordNet"
};

// Counters for get_metrics / health_check.
struct RetrievalMetrics {
  int64_t queries = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  int64_t degraded = 0;        // answered without the semantic side when it was wanted
  int64_t indexed = 0;         // vectors written by IndexEpisodes
  int64_t index_failures = 0;
};

// Thread-safe. `provider` and `index` may be null (lexical only); all must outlive *this.
class Retriever {
 public:
  Retriever(StorageBackend& store, Clock& clock, EmbeddingProvider* provider, VectorIndex* index,
            RankingOptions options);

  // Sets the vector index once it is open (engram serve opens it in the background so
  // start-up stays fast; until then queries are lexical-only and say so).
  void SetIndex(VectorIndex* index) { index_.store(index, std::memory_order_release); }
  // Sets the query expander (may be null: no expansion) and how healthy it is. Call before
  // the first query; `expander` must outlive *this.
  void SetExpander(const QueryExpander* expander, ExpansionHealth health) ENGRAM_LOCKS_EXCLUDED(mu_);
  ExpansionHealth Expansion() const ENGRAM_LOCKS_EXCLUDED(mu_);
  ~Retriever();
  Retriever(const Retriever&) = delete;
  Retriever& operator=(const Retriever&) = delete;

  // Errors: kInvalidArgument (empty or whitespace text; limit outside 1..kMaxQueryLimit;
  // max_tokens of 0; domain_filter without a domain); kCancelled; storage errors.
  // Embedding failures are not errors: the result is lexical-only and says so.
  Result<RetrievalResult> Retrieve(const RetrievalQuery& query);

  // Embeds and stores vectors for completed episodes that have none in the provider's
  // space (at most `max` of them; 0: all), adding them to the vector index. Records the
  // space in the store first if none is recorded; if another space is recorded, the
  // store's vectors are stale: nothing is done and kFailedPrecondition says to run
  // `engram reindex`. Returns how many were indexed. `progress(done, total)` may be empty.
  Result<size_t> IndexPending(size_t max, const std::function<void(size_t, size_t)>& progress = {});

  // Makes the provider's space the recorded one (dropping vectors of other spaces) and
  // embeds every completed episode again, replacing its vector. For `engram reindex`.
  Result<size_t> Reindex(const std::function<void(size_t, size_t)>& progress = {});

  // Embeds the given episodes again and replaces their vectors (after their text changed,
  // e.g. `engram storage scan-secrets`, or on completion in `engram serve`). Unknown ids
  // are skipped. Returns how many were stored. Nothing to do without a provider.
  // Episodes of a call that failed (the http provider's server down, its breaker open, a
  // storage error) are remembered, up to kMaxRetryBacklog, and embedded with the next
  // call, so an outage does not leave them without a vector until the next start (whose
  // IndexPending finds any beyond that bound).
  Result<size_t> IndexEpisodes(const std::vector<std::string>& episode_ids);
  static constexpr size_t kMaxRetryBacklog = 10'000;
  // Episodes waiting for a retry of IndexEpisodes.
  size_t RetryBacklog() const;

  // True when the store's recorded space differs from the provider's.
  Result<bool> VectorsStale();

  RetrievalMetrics Metrics() const ENGRAM_LOCKS_EXCLUDED(mu_);
  // The ranking options in force (a snapshot).
  RankingOptions options() const ENGRAM_LOCKS_EXCLUDED(mu_);
  // Replaces the ranking options for every later query (config reload) and empties the
  // query cache, whose results were ranked with the old ones. A query already running
  // finishes with the options it started with.
  // Errors: kInvalidArgument as ValidateRankingOptions; the old options then stay.
  Status SetOptions(RankingOptions options) ENGRAM_LOCKS_EXCLUDED(mu_);
  EmbeddingProvider* provider() const { return provider_; }

 private:
  struct CacheEntry;
  Result<RetrievalResult> Compute(const RetrievalQuery& query, std::string_view text, const RankingOptions& options);
  Result<size_t> IndexBatch(const std::vector<std::string>& ids);

  StorageBackend& store_;
  Clock& clock_;
  EmbeddingProvider* const provider_;
  std::atomic<VectorIndex*> index_;
  std::atomic<const QueryExpander*> expander_{nullptr};

  mutable Mutex mu_;
  // Swapped whole by SetOptions; a query holds the snapshot it started with.
  std::shared_ptr<const RankingOptions> options_ ENGRAM_GUARDED_BY(mu_);
  RetrievalMetrics metrics_ ENGRAM_GUARDED_BY(mu_);
  ExpansionHealth expansion_health_ ENGRAM_GUARDED_BY(mu_);
  // LRU: front is newest.
  std::vector<std::unique_ptr<CacheEntry>> cache_ ENGRAM_GUARDED_BY(mu_);
  // IndexEpisodes' failed episodes, oldest first.
  std::vector<std::string> retry_ ENGRAM_GUARDED_BY(mu_);
};

// `text` cut to at most kMaxQueryChars bytes, never inside a UTF-8 sequence.
std::string_view CutQuery(std::string_view text);

// The words of `text` as retrieval sees them (model/search_text.h).
std::vector<std::string> RetrievalTokens(std::string_view text);

// Approximate tokens of the text query_memory returns for `episode`: its task
// description, outcome verdict or reason, and reflection, plus a fixed allowance for ids
// and numbers, at kCharsPerToken characters per token.
size_t EstimateTokens(const Episode& episode);

// Maximal marginal relevance: reorders `ranked` (best score first) so that each next item
// maximises λ·score − (1 − λ)·max_{picked} similarity(item, picked); keeps at most `keep`.
// `similarity(i, j)` is in [0, 1]. Exposed for tests.
std::vector<size_t> MmrOrder(const std::vector<double>& scores, double lambda, size_t keep,
                             const std::function<double(size_t, size_t)>& similarity);

}  // namespace engram
