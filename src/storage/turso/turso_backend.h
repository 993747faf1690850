// TursoBackend: the StorageBackend on one Turso / libSQL database over the Hrana client (see
// include/engram/turso_backend.h for the factory). Internal to storage/turso.
//
// How it splits: turso_backend.cc (episodes, steps, vectors, generation, health, the
// factory), turso_schema.cc (the schema and its migrations over the protocol),
// turso_search.cc (the engram-maintained full-text index: SearchText, GetTermStats and the
// index upkeep that episode writes add to their batch), turso_patterns.cc (learning).
//
// Every write is ONE Hrana batch (HranaClient::Batch: BEGIN ... COMMIT, all or nothing) that
// ends by bumping the generation (RunWrite). Invariants a write depends on are checked
// INSIDE its batch, so no other writer can slip in between a check and the write: a guard
// statement (AddGuard) inserts a row into engram_guard when the condition is violated, and
// a trigger on that table aborts the transaction with "engram_guard:<code>", which GuardCode
// reads back from the error so the caller can return the documented Status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "engram/clock.h"
#include "engram/storage.h"
#include "engram/turso_backend.h"
#include "storage/turso/hrana_client.h"

namespace engram::turso {

// The schema this build writes (engram_schema_migrations holds the version; 1: everything
// below). Older schemas are migrated on open, one version per batch; newer ones are refused.
inline constexpr int kSchemaVersion = 1;

// The tables of this file's part of the schema (turso_schema.cc), for CheckHealth:
//   engram_schema_migrations — the version (one row per migration applied)
//   episodes, steps          — as SQLite's (src/storage/sqlite/sqlite_schema.cc)
//   store_state              — one row (id = 1): generation, space_provider, space_model, space_dimension
//   episode_vectors          — seq INTEGER PRIMARY KEY AUTOINCREMENT, episode_id UNIQUE, space, vector (vector32 blob)
//   engram_guard             — never holds a row: inserting into it aborts (see AddGuard)
// The full-text index (search_docs, ...) and learning tables (patterns, ...) are created by
// the statements of SearchSchemaStatements and LearningSchemaStatements.
inline constexpr const char* kBaseTables[] = {"engram_schema_migrations", "episodes", "steps",
                                              "store_state", "episode_vectors", "engram_guard"};

// ---- Defined in turso_search.cc / turso_patterns.cc: the other tables ----
// The statements creating the full-text index's tables (search_docs: one row per completed
// episode; search_postings, search_terms, search_stats) and the learning tables (patterns,
// heuristics, attributions, extraction_pending, pattern_guard), one statement per string,
// run by the v1 migration in the same batch as the tables above.
std::vector<std::string> SearchSchemaStatements();    // turso_search.cc
std::vector<std::string> LearningSchemaStatements();  // turso_patterns.cc

// ---- Guards: invariants checked inside a batch ----
// The codes a guard may raise; each has a trigger on engram_guard (turso_schema.cc).
inline constexpr const char* kGuardCodes[] = {
    "not_found",       // the episode (or other row) does not exist
    "completed",       // the episode is already completed
    "not_completed",   // the episode is not completed (vectors)
    "step_taken",      // the step number is used
    "step_limit",      // kMaxStepsPerEpisode would be passed
    "number_limit",    // the next step number would pass kMaxStepsPerEpisode (numbers are not reused)
    "byte_limit",      // kMaxEpisodeBytes would be passed
    "steps_changed",   // CompleteEpisode: the stored step count is not the one given
    "space",           // PutVectors: not the recorded embedding space
    "conflict",        // a concurrent write changed what the batch was computed from (MergePatterns)
};
// Appends "INSERT INTO engram_guard (code) SELECT '<code>' WHERE <violated>" to `batch`:
// when `violated` (an SQL condition over `args`, e.g. "NOT EXISTS (SELECT 1 FROM episodes
// WHERE episode_id = ?)") is true, the batch fails and nothing of it is committed.
// REQUIRES: `code` is one of kGuardCodes. Returns the statement's index.
size_t AddGuard(HranaBatch& batch, std::string_view code, std::string_view violated, std::vector<HranaValue> args);
// The guard code a failed batch was aborted by ("not_found", ...), or nullopt if it failed
// for another reason.
std::optional<std::string> GuardCode(const Status& status);

// ---- Index and extraction upkeep added to an episode write's batch (no I/O) ----
// turso_search.cc: drops any full-text entry of e.episode_id, then indexes `e` (its
// SearchDocument, domain, term counts) if it is completed.
void AppendIndexEpisode(HranaBatch& batch, const Episode& e);
// turso_search.cc: removes the episode's full-text entry, if any (not its vector).
void AppendUnindexEpisode(HranaBatch& batch, std::string_view episode_id);
// turso_patterns.cc: marks a completed episode as pending extraction / clears the mark.
void AppendMarkPending(HranaBatch& batch, std::string_view episode_id);
void AppendClearPending(HranaBatch& batch, std::string_view episode_id);

// ---- Episode rows (turso_backend.cc) ----
// The episode columns ReadEpisodeRow reads, in its order: "SELECT <these> FROM episodes ...".
extern const char* const kEpisodeColumns;
// Row `row` of a result selected with kEpisodeColumns, without steps. Errors: kDataLoss.
Result<Episode> ReadEpisodeRow(const HranaResult& r, size_t row);
// The step columns, first the episode id: "SELECT <these> FROM steps ... ORDER BY episode_id, step_number".
extern const char* const kStepColumns;
// Appends every row of `steps` (selected with kStepColumns) to the episode of `by_id` its
// episode_id names (rows of other episodes are skipped). Errors: kDataLoss.
Status ReadStepRows(const HranaResult& steps, const std::function<Episode*(std::string_view)>& by_id);

// Timestamps are stored as milliseconds since the epoch (ToMillis / FromMillis of
// model/stored_columns.h), nested values as JSON text, as in the SQLite schema.

// Thread-safe.
class TursoBackend final : public StorageBackend {
 public:
  TursoBackend(std::unique_ptr<HranaClient> client, TursoOptions options, int schema_version);

  // StorageBackend
  std::string Name() const override { return "turso"; }
  std::string Location() const override { return client_->base_url(); }
  int SchemaVersion() const override { return schema_version_; }
  Status CreateEpisode(const Episode& episode) override;
  Status PutEpisodes(std::span<const Episode> episodes) override;
  Result<int> AppendStep(std::string_view episode_id, const Step& step) override;
  Status CompleteEpisode(const Episode& episode) override;
  Result<Episode> GetEpisode(std::string_view episode_id) override;
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids) override;
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override;
  Result<bool> DeleteEpisode(std::string_view episode_id) override;
  Result<StoreStats> Stats() override;
  Result<int64_t> Generation() override;
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override;    // turso_search.cc
  Result<TermStats> GetTermStats(std::span<const std::string> words) override;           // turso_search.cc
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override;
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override;
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override;
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override;
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override;
  // Learning: turso_patterns.cc.
  Status MergePatterns(std::span<const std::string> keys,
                       const std::function<Status(std::vector<Pattern>&)>& merge) override;
  Result<Pattern> GetPattern(std::string_view pattern_id) override;
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter& filter) override;
  Status SetPatternDecay(std::span<const std::pair<std::string, double>> weights) override;
  Status ResetLearning() override;
  Status PutHeuristics(std::span<const Heuristic> heuristics) override;
  Result<std::vector<Heuristic>> ListHeuristics(size_t limit) override;
  Status RecordAttributions(std::span<const Attribution> attributions) override;
  Result<std::vector<std::string>> PendingExtraction(size_t limit) override;
  Status MarkExtracted(std::span<const std::string> episode_ids) override;
  Result<size_t> CommitExtraction(const ExtractionBatch& batch) override;
  Status CheckHealth() override;

  HranaClient& client() { return *client_; }

  // See TursoWritesAreOwn (include/engram/turso_backend.h).
  bool WritesAreOwn(int64_t after, int64_t upto) const ENGRAM_LOCKS_EXCLUDED(own_mu_);

 private:
  // Runs `batch` plus a last statement that adds 1 to the generation, as ONE request (all
  // or nothing), and records the generation it produced as this object's. Returns the results of the statements of `batch` (same indices). Errors:
  // the client's (a guard's abort is kFailedPrecondition: see GuardCode).
  Result<std::vector<HranaResult>> RunWrite(HranaBatch batch);

  // Shared with open streams, so a stream may outlive a call.
  const std::shared_ptr<HranaClient> client_;
  const TursoOptions options_;
  const int schema_version_;

  // The generations the latest writes of this object produced (at most kOwnWritesKept).
  static constexpr size_t kOwnWritesKept = 4096;
  mutable Mutex own_mu_;
  std::set<int64_t> own_writes_ ENGRAM_GUARDED_BY(own_mu_);
};

// ---- Schema (turso_schema.cc) ----
// Brings the database to kSchemaVersion, each version step one batch. Returns the version
// it is at. Errors: kFailedPrecondition (newer schema; tables named like ours without our
// version table); the client's.
Result<int> Migrate(HranaClient& client);

}  // namespace engram::turso
