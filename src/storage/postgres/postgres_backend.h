// PostgresBackend: the StorageBackend on one PostgreSQL database (see
// include/engram/postgres_backend.h for the factory). Internal to storage/postgres.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "engram/postgres_backend.h"
#include "engram/storage.h"
#include "storage/postgres/pg_connection.h"

namespace engram::postgres {

// The schema this build writes. Older schemas are migrated on open; newer ones refused.
inline constexpr int kSchemaVersion = 1;

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
  PostgresBackend(std::shared_ptr<ConnectionPool> pool, int schema_version);

  // StorageBackend
  std::string Name() const override { return "postgres"; }
  std::string Location() const override { return pool_->options().display; }
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
  const std::shared_ptr<ConnectionPool> pool_;
  const int schema_version_;
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

}  // namespace engram::postgres
