// PostgresBackend: the StorageBackend on one PostgreSQL database (see
// include/engram/postgres_backend.h for the factory). Internal to storage/postgres.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "engram/postgres_backend.h"
#include "engram/storage.h"
#include "storage/postgres/pg_connection.h"

namespace engram::postgres {

// The schema this build writes. Older schemas are migrated on open, one version per
// transaction (1: episodes and steps; 2: full-text index, term counts, vectors, generation;
// 3: patterns, heuristics, attributions, extraction marker); newer ones are refused.
inline constexpr int kSchemaVersion = 4;
// Every table engram keeps, for CheckHealth, for telling our schema from foreign tables, and
// for what `engram storage vacuum|stats` measure (the schema may hold a team's other tables).
inline constexpr const char* kEngramTables[] = {"engram_schema_migrations", "episodes", "steps", "episode_search",
                                                "search_terms", "engram_state", "episode_vectors", "patterns",
                                                "heuristics", "pattern_attributions"};

class ConnectionPool;

// A connection borrowed from the pool, returned when this dies. Move-only; not
// thread-safe: owned by one thread.
class PooledConnection {
 public:
  PooledConnection(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> conn, bool reused)
      : pool_(std::move(pool)), conn_(std::move(conn)), reused_(reused) {}
  PooledConnection(PooledConnection&&) noexcept = default;
  PooledConnection& operator=(PooledConnection&&) noexcept = delete;
  ~PooledConnection();

  Connection& operator*() const { return *conn_; }
  Connection* operator->() const { return conn_.get(); }
  // True if the connection was idle in the pool (and so may have broken while idle);
  // false if it was just established.
  bool reused() const { return reused_; }

 private:
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> conn_;
  bool reused_;
};

// At most `size` connections at once (a counting semaphore); idle ones are kept for
// reuse. A connection returned broken is dropped together with every idle one, since a
// server restart breaks them all; the next Acquire connects afresh. Shared with open
// streams so a stream may outlive a call. Thread-safe.
class ConnectionPool : public std::enable_shared_from_this<ConnectionPool> {
 public:
  ConnectionPool(ConnectOptions options, size_t size);

  // Waits for a free slot (up to connect_timeout + statement_timeout), then hands out an
  // idle connection or opens a new one.
  // Errors: kUnavailable (no slot in time, or cannot connect).
  Result<PooledConnection> Acquire() ENGRAM_LOCKS_EXCLUDED(mu_);
  // Drops every idle connection (they are reopened on demand).
  void DropIdle() ENGRAM_LOCKS_EXCLUDED(mu_);

  const ConnectOptions& options() const { return options_; }

 private:
  friend class PooledConnection;
  void Release(std::unique_ptr<Connection> conn) ENGRAM_LOCKS_EXCLUDED(mu_);

  const ConnectOptions options_;
  const size_t size_;
  const std::chrono::milliseconds acquire_timeout_;

  Mutex mu_;
  CondVar slot_freed_;
  size_t in_use_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Connection>> idle_ ENGRAM_GUARDED_BY(mu_);
};

// Thread-safe.
class PostgresBackend final : public StorageBackend {
 public:
  // `channel`: where every write transaction announces what it changed (ChangeChannel).
  PostgresBackend(std::shared_ptr<ConnectionPool> pool, int schema_version, std::string channel, std::string writer);

  // StorageBackend
  std::string Name() const override { return "postgres"; }
  std::string Location() const override { return pool_->options().display; }
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
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override;
  Result<TermStats> GetTermStats(std::span<const std::string> words) override;
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override;
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override;
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override;
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override;
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override;
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

 private:
  // RunTransaction(kWrite) that bumps the store's generation as its last statement, so
  // the row lock on the one generation row is held only for the commit.
  // `changed` are the episodes whose stored form the write may change (announced with it).
  Status RunWrite(const std::function<Status(Connection&)>& fn, std::span<const std::string> changed = {});

  const std::shared_ptr<ConnectionPool> pool_;
  const int schema_version_;
  const std::string channel_;
  const std::string writer_;  // PostgresOptions::writer_tag
};

enum class TxMode {
  kWrite,     // READ COMMITTED read-write; rows are locked where an invariant needs it
  kSnapshot,  // REPEATABLE READ READ ONLY: every statement sees one snapshot
};

// Runs `fn` in one transaction on a pooled connection and commits. Rolls back if `fn`
// fails. Retries the whole transaction when that is safe and likely to help: after a
// serialization failure or deadlock, and once on a fresh connection when the connection
// broke before COMMIT was sent (the server then rolled it back). A connection lost
// during COMMIT is kUnavailable saying the outcome is unknown.
Status RunTransaction(ConnectionPool& pool, TxMode mode, const std::function<Status(Connection&)>& fn);

// ---- Shared by postgres_backend.cc, postgres_search.cc and postgres_patterns.cc ----

// Adds 1 to the store's generation (engram_state) and announces the write on `channel`
// (NotifyChange). Every write transaction calls it last.
Status BumpGeneration(Connection& conn, const std::string& channel, std::span<const std::string> changed,
                      std::string_view writer = {});

// ---- Change notifications (read by PostgresChangeListener) ----
//
// Every write transaction, as its last statements, sends NOTIFY on the schema's channel
// (delivered to listeners only if and when it commits, in commit order, which is also
// generation order since the generation row stays locked until commit). The payload is
// "<generation>" (or "<generation>@<writer>" when the backend has a writer_tag) followed by " <id>,<id>,..." when the write changed episodes, or by " *"
// when it changed episodes it cannot name (an id with ',' or longer than kMaxNotifiedIdBytes).
// Payloads stay below kMaxNotifyPayload bytes (PostgreSQL's limit is 8000): a longer list is
// split over several notifications, every one but the last marked "<generation>+ ...".

inline constexpr size_t kMaxNotifyPayload = 7900;
inline constexpr size_t kMaxNotifiedIdBytes = 1000;

// The channel of the schema `schema`: "engram_changes_<schema>", or, when that would pass
// PostgreSQL's 63-byte limit on names, "engram_changes_" and a hash of the schema.
std::string ChangeChannel(std::string_view schema);

// The payloads announcing that the write that brought the store to `generation` changed
// `changed` (none: a write that changes no episode, such as a pattern merge).
std::vector<std::string> ChangePayloads(int64_t generation, std::span<const std::string> changed,
                                        std::string_view writer = {});

// Sends the ChangePayloads of a write on `channel`, inside the caller's transaction.
Status NotifyChange(Connection& conn, const std::string& channel, int64_t generation,
                    std::span<const std::string> changed, std::string_view writer = {});

// Brings the full-text entry of `e` in line with it inside the caller's transaction: a
// completed episode's SearchDocument is (re)written, an episode in progress has none.
// search_terms follows through a trigger.
Status IndexEpisode(Connection& conn, const Episode& e);
// IndexEpisode for many at once, in two statements, so the term counts are updated once per
// word for the whole batch (an episode named twice: the last one counts).
Status IndexEpisodes(Connection& conn, std::span<const Episode> episodes);
// Deletes the vector of an episode (a replaced episode's vector described its old text).
Status DropVector(Connection& conn, std::string_view episode_id);

// The tsvector literal of a SearchDocument: every word quoted (so no character is syntax),
// title words weighted A and body words B, positions in document order. Words PostgreSQL
// cannot hold (longer than 2046 bytes) are left out and invalid UTF-8 bytes dropped.
std::string SearchVectorLiteral(std::string_view title, std::string_view body);

// The episode columns ReadEpisodeRow expects, in order: "SELECT <these> FROM episodes ...".
extern const char* const kEpisodeSelectColumns;
// Reads row `row` of a result selected with kEpisodeSelectColumns. Errors: kDataLoss.
Result<Episode> ReadEpisodeRow(const PgResult& r, int row);
// Loads the steps of `e` (by e.episode_id) in step order into e.steps.
Status ReadSteps(Connection& conn, Episode& e);

// Schema v2: the full-text index, term counts, vectors and the generation. Run by the
// migration, which then indexes every completed episode already stored (IndexAllCompleted).
extern const char* const kSchemaV2;
Status IndexAllCompleted(Connection& conn);
// Schema v3: patterns, heuristics, attributions and the extraction marker.
extern const char* const kSchemaV3;
// Schema v4: term counts kept by statement-level triggers (one update per word per statement).
extern const char* const kSchemaV4;

}  // namespace engram::postgres
