// SqliteBackend: the StorageBackend on one SQLite file (see include/engram/sqlite_backend.h
// for the factory). Internal to storage/sqlite.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "storage/sqlite/sqlite_connection.h"

namespace engram::sqlite {

// The schema this build writes. Older files are migrated on open; newer ones refused.
inline constexpr int kSchemaVersion = 1;
// PRAGMA application_id of engram files ("engr"), to tell ours from a foreign database.
inline constexpr int32_t kApplicationId = 0x656e6772;

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
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override;
  Result<bool> DeleteEpisode(std::string_view episode_id) override;
  Result<StoreStats> Stats() override;
  Status CheckHealth() override;

 private:
  // Runs `fn(conn)` in a transaction on a pooled connection. Writers in this process
  // queue on write_mu_ rather than spinning on SQLite's file lock.
  Status Write(const std::function<Status(Connection&)>& fn) ENGRAM_LOCKS_EXCLUDED(write_mu_);
  Status Read(const std::function<Status(Connection&)>& fn);

  const std::shared_ptr<ConnectionPool> pool_;
  const SqliteOptions options_;
  const int schema_version_;

  Mutex write_mu_;  // serialises this process's write transactions
};

}  // namespace engram::sqlite
