// SqliteBackend: the StorageBackend on one SQLite file (see include/engram/sqlite_backend.h
// for the factory). Internal to storage/sqlite.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "storage/sqlite/sqlite_connection.h"
#include "storage/sqlite/sqlite_postings.h"
#include "storage/sqlite/sqlite_schema.h"

namespace engram::sqlite {

// Connections handed out one caller at a time. Shared with open streams so a stream may
// outlive a call. Thread-safe.
class ConnectionPool {
 public:
  explicit ConnectionPool(ConnectionOptions options) : options_(std::move(options)) {}
  Result<std::unique_ptr<Connection>> Acquire() ENGRAM_LOCKS_EXCLUDED(mu_);
  void Release(std::unique_ptr<Connection> conn) ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr size_t kMaxIdle = 8;
  const ConnectionOptions options_;
  Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ENGRAM_GUARDED_BY(mu_);
};

// Thread-safe.
class SqliteBackend final : public StorageBackend {
 public:
  // At schema v4 and above, keeps a full-text mirror (sqlite_postings.h) that the first
  // SearchText starts building in the background.
  SqliteBackend(std::shared_ptr<ConnectionPool> pool, SqliteOptions options, int schema_version);

  // StorageBackend
  std::string Name() const override { return "sqlite"; }
  std::string Location() const override { return options_.path; }
  int SchemaVersion() const override { return schema_version_; }
  Status CreateEpisode(const Episode& episode) override;
  Status PutEpisodes(std::span<const Episode> episodes) override;
  Result<int> AppendStep(std::string_view episode_id, const Step& step) override;
  Status CompleteEpisode(const Episode& episode) override;
  Result<Episode> GetEpisode(std::string_view episode_id) override;
  // All of them in one read transaction (one snapshot, one pooled connection).
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids) override;
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override;
  Result<bool> DeleteEpisode(std::string_view episode_id) override;
  Result<StoreStats> Stats() override;

  // Retrieval index (sqlite_search.cc)
  Result<int64_t> Generation() override;
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override;
  Result<TermStats> GetTermStats(std::span<const std::string> words) override;
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override;
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override;
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override;
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override;
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override;

  // Learning (sqlite_patterns.cc)
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

  // The in-memory copy of the full-text index that SearchText answers from once it is built
  // (sqlite_postings.h); null below schema v4.
  PostingsMirror* full_text_mirror() { return mirror_.get(); }

 private:
  // Runs `fn(conn)` in a write transaction on a pooled connection and, unless told not
  // to (a probe that changes nothing), bumps the store generation in that transaction.
  // Writers in this process queue on write_mu_ rather than spinning on SQLite's file lock.
  // `sync` false commits without syncing the log even under Durability::kFull: only for
  // writes that can be derived again from what is synced (see CommitExtraction).
  Status Write(const std::function<Status(Connection&)>& fn, bool bump_generation = true, bool sync = true)
      ENGRAM_LOCKS_EXCLUDED(write_mu_);
  Status Read(const std::function<Status(Connection&)>& fn);
  // kFailedPrecondition when the file is below `version`: only a read-only open of a file
  // an older engram wrote (a writable open migrates it first).
  Status RequireSchema(int version, std::string_view what) const;

  const std::shared_ptr<ConnectionPool> pool_;
  const SqliteOptions options_;
  const int schema_version_;

  Mutex write_mu_;  // serialises this process's write transactions
  // Last member: destroyed (its build stopped and joined) before the rest.
  std::unique_ptr<PostingsMirror> mirror_;
};

}  // namespace engram::sqlite
