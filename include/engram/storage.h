// StorageBackend: the durable store of episodes and their steps (DESIGN §6).
// Implementations: SqliteBackend (the embedded default, storage/sqlite); later issues
// add PostgreSQL, Turso and the LMDB cache decorator behind this same interface, and the
// backend conformance suite (tests/conformance) runs every one of them.
//
// Every method is one transaction: it happens completely or not at all, and once it
// returns OK the change survives a kill -9 of the process at any moment.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engram/patterns.h"
#include "engram/result.h"
#include "engram/status.h"
#include "engram/types.h"

namespace engram {

// How hard a commit works to survive failures. Backends map it to their own settings.
enum class Durability {
  kFull,    // fsync at every commit: survives power loss. The default.
  kNormal,  // survives a process crash (kill -9) but may lose the last commits on power
            // loss; faster on slow disks.
};
// "full" / "normal". Errors: kInvalidArgument naming the accepted values.
Result<Durability> ParseDurability(std::string_view name);
std::string_view DurabilityName(Durability d);

// Which episodes ListEpisodes yields, newest first (by episode id, which is time-ordered).
struct EpisodeFilter {
  std::optional<std::string> domain;      // exact match
  std::optional<TaskType> task_type;
  std::optional<bool> completed;          // true: completed only; false: in progress only
  std::optional<std::string> before_id;   // keyset pagination: ids strictly older than this
  size_t limit = 0;                       // 0: no limit
  bool include_steps = false;             // steps are loaded only when asked
};

// A forward-only stream of episodes. Holds a read snapshot of the store until destroyed.
// Not thread-safe: owned by one thread.
class EpisodeStream {
 public:
  EpisodeStream(const EpisodeStream&) = delete;
  EpisodeStream& operator=(const EpisodeStream&) = delete;
  virtual ~EpisodeStream() = default;

  // The next episode, or nullopt at the end. Errors: kUnavailable, kDataLoss.
  virtual Result<std::optional<Episode>> Next() = 0;

 protected:
  EpisodeStream() = default;
};

// ---- Retrieval index (schema v2) -------------------------------------------------------
// Every completed episode is in a full-text index, written in the same transaction as the
// completion (CompleteEpisode, PutEpisodes) and removed with the episode. What is indexed
// is model/search_text.h's SearchDocument: normalised words (RetrievalTokens), so every
// backend matches the same words the same way.

struct TextSearchRequest {
  // Words as model/search_text.h's SearchTokens returns them (already normalised). A
  // document matches when it holds at least one of them. Empty: no hits.
  std::vector<std::string> words;
  size_t limit = 100;                        // at most this many hits, best first
  std::optional<std::string> domain;         // hard filter (domain_filter: true)
  std::vector<std::string> allowed_domains;  // empty: all domains
};

struct TextHit {
  std::string episode_id;
  double score = 0;  // BM25, larger is better, > 0
};

// An embedding space: vectors are comparable only within one. Recorded in the store.
struct EmbeddingSpace {
  std::string provider;  // "hashing", "http"
  std::string model;     // provider-specific ("hash-v1", "text-embedding-3-small")
  int dimension = 0;
  // "hashing/hash-v1/256": the key vectors are stored under.
  std::string Key() const { return provider + "/" + model + "/" + std::to_string(dimension); }
  friend bool operator==(const EmbeddingSpace&, const EmbeddingSpace&) = default;
};

struct EpisodeVector {
  std::string episode_id;
  std::vector<float> vector;  // space.dimension values
  // Set by the store: grows with every PutVectors (a replaced vector gets a new seq), so
  // a reader can catch up with ListVectors(space, after_seq). Ignored by PutVectors.
  int64_t seq = 0;
};

// A forward-only stream of the stored vectors of one space, by seq ascending.
class VectorStream {
 public:
  VectorStream(const VectorStream&) = delete;
  VectorStream& operator=(const VectorStream&) = delete;
  virtual ~VectorStream() = default;
  // The next vector, or nullopt at the end.
  virtual Result<std::optional<EpisodeVector>> Next() = 0;

 protected:
  VectorStream() = default;
};

// Document frequencies of words in the full-text index.
struct TermStats {
  int64_t documents = 0;               // indexed (completed) episodes
  std::vector<int64_t> doc_frequency;  // per requested word: documents holding it
};

// ---- Learning (schema v3) --------------------------------------------------------------

struct PatternFilter {
  std::optional<PatternType> type;
  std::optional<std::string> domain;       // exact match on context.domain
  std::optional<double> min_success_rate;  // success_rate >= this
  size_t limit = 0;                        // 0: no limit
};

// What the merge of CommitExtraction produces besides the patterns themselves.
struct ExtractionOutput {
  std::vector<Heuristic> heuristics;  // inserted or replaced (by heuristic_id)
  // (episode_id, pattern_id): the episode fed that pattern (its evidence was merged into it
  // or the pattern was created from it). Appended to the episode's pattern_ids unless it is
  // already there; pairs of episodes not in the store are ignored.
  std::vector<std::pair<std::string, std::string>> episode_patterns;
};

// One batch of the learning pipeline, committed by CommitExtraction in one transaction.
struct ExtractionBatch {
  // Similarity keys of the patterns to load for `merge`, as MergePatterns takes them.
  std::vector<std::string> keys;
  // As MergePatterns' merge, and fills `out` (empty at each call). The store may call it
  // again after a retried transaction; it must start over from what it is given. Not set:
  // nothing is merged.
  std::function<Status(std::vector<Pattern>& patterns, ExtractionOutput& out)> merge;
  // (episode_id, succeeded): each not-yet-credited attribution of the episode is credited
  // with the outcome (success_when_applied or failure_when_applied += 1) and marked
  // credited; a second commit credits nothing.
  std::vector<std::pair<std::string, bool>> outcomes;
  // Episodes whose extraction marks are cleared (ids of no episode are fine).
  std::vector<std::string> extracted;
};

struct StoreStats {
  int64_t episodes = 0;
  int64_t completed_episodes = 0;
  int64_t steps = 0;
  int64_t patterns = 0;
  int64_t heuristics = 0;
};

// Thread-safe. Several processes may open the same store at once; none of them sees
// "database is locked": contention waits (bounded by the busy timeout) and retries.
class StorageBackend {
 public:
  StorageBackend(const StorageBackend&) = delete;
  StorageBackend& operator=(const StorageBackend&) = delete;
  virtual ~StorageBackend() = default;

  // "sqlite", ... and where it stores ("/home/me/.local/share/engram/memory.db").
  virtual std::string Name() const = 0;
  virtual std::string Location() const = 0;
  // The schema version this store is at after opening (migrations already applied).
  virtual int SchemaVersion() const = 0;

  // Inserts a new episode together with any steps it already has.
  // Errors: kAlreadyExists if the id is taken; kUnavailable; kDataLoss.
  virtual Status CreateEpisode(const Episode& episode) = 0;

  // Inserts or replaces whole episodes (steps included) in ONE transaction: all are
  // written or none. For import and batch ingest.
  virtual Status PutEpisodes(std::span<const Episode> episodes) = 0;

  // Appends `step` to an episode in progress and returns its step number. A
  // step_number of 0 takes the next free number (max + 1).
  // Errors: kNotFound (no such episode); kFailedPrecondition (episode completed);
  // kAlreadyExists (step number taken); kResourceExhausted (kMaxStepsPerEpisode or
  // kMaxEpisodeBytes would be exceeded).
  virtual Result<int> AppendStep(std::string_view episode_id, const Step& step) = 0;

  // Records completion: end_time, outcome, reward and reflection of `episode`. Steps
  // are not rewritten. `episode.steps.size()` must equal the stored step count, so a
  // reward is never computed over steps that changed underneath it.
  // Errors: kNotFound; kFailedPrecondition (already completed); kAborted (a step was
  // added meanwhile: reload and retry).
  virtual Status CompleteEpisode(const Episode& episode) = 0;

  // The episode with all its steps in step order. Errors: kNotFound.
  virtual Result<Episode> GetEpisode(std::string_view episode_id) = 0;

  // The episodes of `episode_ids` that exist, each with all its steps, in the order of
  // `episode_ids` (an id named twice comes back once; ids of no episode are left out). For
  // readers that need many at once, such as ranking: a remote store answers in one round
  // trip instead of one per episode. The default calls GetEpisode for each.
  virtual Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids);

  // Streams episodes matching `filter`, newest first, without loading them all.
  virtual Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) = 0;

  // Deletes the episode and its steps. Returns false if there was none.
  virtual Result<bool> DeleteEpisode(std::string_view episode_id) = 0;

  virtual Result<StoreStats> Stats() = 0;

  // ---- Retrieval index ----

  // A counter that grows with every write transaction of any process on this store
  // (episodes, vectors, patterns). Caches key on it.
  virtual Result<int64_t> Generation() = 0;

  // BM25 over the full-text index of completed episodes. Never fails on the words'
  // characters (they are quoted/escaped). Empty words: empty result.
  virtual Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) = 0;

  // Document frequencies of `words` (normalised as in TextSearchRequest).
  virtual Result<TermStats> GetTermStats(std::span<const std::string> words) = 0;

  // The embedding space recorded in the store (set by SetEmbeddingSpace), if any.
  virtual Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() = 0;
  // Records the space the store's vectors belong to. Vectors of other spaces are deleted
  // in the same transaction (they are stale).
  virtual Status SetEmbeddingSpace(const EmbeddingSpace& space) = 0;
  // Inserts or replaces vectors of `space` (which must be the recorded space, else
  // kFailedPrecondition) in ONE transaction. Vectors of unknown or not-yet-completed
  // episodes: kNotFound and nothing is written. Wrong length: kInvalidArgument.
  virtual Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) = 0;
  // Streams the stored vectors of `space` with seq > after_seq, by seq ascending.
  virtual Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) = 0;
  // Completed episodes with no vector in `space` and an id above `after` ("" = from the
  // first), oldest first, at most `limit`. A caller walking them all passes the last id it
  // got, so the walk reads each episode once instead of rescanning the embedded ones.
  virtual Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after,
                                                                 size_t limit) = 0;

  // ---- Learning ----

  // Atomically merges into the patterns whose similarity keys are `keys`: in one write
  // transaction (no other writer, in any process, in between) loads those that exist,
  // calls `merge(patterns)` (the vector holds the existing ones, in no set order; merge may
  // change them and append new ones — a new one needs a fresh pattern_id), and writes back
  // every pattern the vector then holds. If `merge` returns an error nothing is written.
  // Errors: kAlreadyExists (two patterns with one key); storage errors.
  virtual Status MergePatterns(std::span<const std::string> keys,
                               const std::function<Status(std::vector<Pattern>&)>& merge) = 0;
  virtual Result<Pattern> GetPattern(std::string_view pattern_id) = 0;  // Errors: kNotFound
  // Patterns matching `filter`, by (success_rate × decay_weight) descending, then newest.
  virtual Result<std::vector<Pattern>> ListPatterns(const PatternFilter& filter) = 0;
  // Replaces the decay_weight of patterns in one transaction (unknown ids: ignored).
  virtual Status SetPatternDecay(std::span<const std::pair<std::string, double>> weights) = 0;
  // Deletes every pattern, heuristic and attribution (for re-extraction), empties every
  // episode's pattern_ids and marks every completed episode as pending extraction, in one
  // transaction.
  virtual Status ResetLearning() = 0;

  // Inserts or replaces heuristics (by heuristic_id) in one transaction.
  virtual Status PutHeuristics(std::span<const Heuristic> heuristics) = 0;
  virtual Result<std::vector<Heuristic>> ListHeuristics(size_t limit) = 0;  // by confidence desc

  // Records that patterns were shown to / applied by an episode (an applied record for a
  // pair already shown upgrades it). Bumps times_retrieved / times_applied and last_used of
  // each pattern in the same transaction. Unknown pattern ids: ignored.
  virtual Status RecordAttributions(std::span<const Attribution> attributions) = 0;

  // Completed episodes not yet through the learning pipeline (CompleteEpisode and
  // PutEpisodes of a completed episode mark them; MarkExtracted and CommitExtraction
  // clear), oldest first.
  virtual Result<std::vector<std::string>> PendingExtraction(size_t limit) = 0;
  virtual Status MarkExtracted(std::span<const std::string> episode_ids) = 0;

  // Commits one extraction batch of the learning pipeline in ONE write transaction (no
  // other writer, in any process, in between): merges as MergePatterns does (with
  // `batch.merge`), puts the heuristics the merge returns, appends to each episode's
  // pattern_ids the patterns it fed, credits the attributions of `batch.outcomes` and
  // clears the extraction marks of `batch.extracted`. All of it or nothing: if `merge`
  // fails, nothing is written. Returns how many attributions were credited. The episodes
  // whose pattern_ids changed count as changed episodes for caches.
  // Errors: kAlreadyExists (two patterns with one key); kInvalidArgument (a pattern or
  // heuristic that cannot be stored); storage errors.
  virtual Result<size_t> CommitExtraction(const ExtractionBatch& batch) = 0;

  // Checks the store is reachable and writable, and its structure is intact.
  // Errors: kUnavailable, kDataLoss (with what is wrong).
  virtual Status CheckHealth() = 0;

 protected:
  StorageBackend() = default;
};

}  // namespace engram
