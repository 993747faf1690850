// Thin RAII layer over the sqlite3 C API for SqliteBackend: connections with a cache of
// prepared statements, typed binding and reading, and one place that turns SQLite
// result codes into Status. Internal to storage/sqlite.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace engram::sqlite {

// Maps a SQLite result code to a Status; `what` says what was being done.
Status SqliteError(int rc, sqlite3* db, std::string_view what);
// True for SQLITE_BUSY / SQLITE_LOCKED and their extended codes.
bool IsBusy(const Status& status);

class Connection;

// A prepared statement borrowed from a Connection's cache. Resets itself and clears its
// bindings when destroyed. Not thread-safe: owned by one thread.
class Statement {
 public:
  Statement(Statement&& other) noexcept : conn_(other.conn_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based. Text and blobs are copied (SQLITE_TRANSIENT).
  void BindText(int index, std::string_view value);
  void BindOptText(int index, const std::optional<std::string>& value);
  void BindInt(int index, int64_t value);
  void BindOptInt(int index, const std::optional<int64_t>& value);
  void BindDouble(int index, double value);
  void BindBlob(int index, std::string_view bytes);
  void BindNull(int index);

  // Returns true when a row is available, false when done.
  // Errors: mapped by SqliteError (kUnavailable when busy, kAlreadyExists on a
  // uniqueness violation, kDataLoss on corruption).
  Result<bool> Step();
  // Steps to completion, expecting no rows.
  Status Run();

  bool IsNull(int col) const;
  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::optional<std::string> ColumnOptText(int col) const;
  std::optional<int64_t> ColumnOptInt(int col) const;
  // The bytes of a BLOB column, valid until the next Step or the statement's reset.
  std::string_view ColumnBlob(int col) const;

 private:
  friend class Connection;
  Statement(Connection* conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}

  Connection* conn_;
  sqlite3_stmt* stmt_;
};

struct ConnectionOptions {
  std::string path;
  bool read_only = false;
  bool create = true;
  std::chrono::milliseconds busy_timeout{10'000};
  bool synchronous_full = true;
};

// One sqlite3 handle. Not thread-safe: used by one thread at a time (the backend's pool
// hands each out to one caller).
class Connection {
 public:
  // Errors: kUnavailable (cannot open), kDataLoss (not a database / corrupt).
  static Result<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A cached prepared statement for `sql`, which must be a string literal (the cache
  // is keyed by its address).
  Result<Statement> Prepare(const char* sql);
  // Runs one or more statements without results (DDL, PRAGMA, BEGIN/COMMIT).
  Status Exec(const char* sql);
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int64_t Changes();
  // The rowid of the last row inserted on this connection.
  int64_t LastInsertRowid();

  // Runs `fn` inside BEGIN IMMEDIATE ... COMMIT (a write transaction), or BEGIN ...
  // COMMIT when `write` is false. Rolls back if `fn` fails. If SQLite reports the
  // database busy where its busy handler could not wait (WAL recovery, snapshot
  // upgrades), the whole transaction is retried until the busy timeout runs out, so
  // contention never reaches the caller as "database is locked" before that.
  template <typename Fn>
  Status Transaction(bool write, Fn&& fn) {
    return RunTransaction(write, [&]() -> Status { return fn(); });
  }

  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }
  std::chrono::milliseconds busy_timeout() const { return busy_timeout_; }

 private:
  friend class Statement;
  Connection(sqlite3* db, std::string path, std::chrono::milliseconds busy_timeout);
  Status RunTransaction(bool write, const std::function<Status()>& fn);

  sqlite3* db_;
  std::string path_;
  std::chrono::milliseconds busy_timeout_;
  std::chrono::steady_clock::time_point busy_deadline_{};  // of the current wait, for the busy handler
  std::map<const char*, sqlite3_stmt*> statements_;
  friend int BusyHandler(void* arg, int attempts);
};

}  // namespace engram::sqlite
