// The scale-out store: one PostgreSQL database shared by every engram process on every
// host of a team (DESIGN §6). Same contract, same error codes and the same conformance
// suite as the embedded SQLite store; full-text search over a table of tsvectors (the
// normalised words of model/search_text.h) with a GIN index, term counts kept by a
// trigger; a bounded pool of libpq connections.
//
//   PostgresOptions options;
//   options.conninfo = "postgresql://engram@db.internal/engram";   // or "host=... dbname=..."
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenPostgresBackend(options));
//
// The password comes, in this order, from `options.password`, the conninfo, the
// PGPASSWORD variable or ~/.pgpass (libpq's own lookup). It is never logged and never part
// of Location() or of an error message.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

struct PostgresOptions {
  // A libpq connection string: a URL ("postgresql://user@host:5432/db?sslmode=require") or
  // key=value pairs ("host=/run/postgresql dbname=engram"). Tables live in the first schema
  // of the search_path ("options=-csearch_path=team_a" keeps several memories in one
  // database).
  std::string conninfo;
  // Sent with the change notification of every write this backend makes (PostgresChange::
  // writer), so a cache can tell its own process's writes, which it has already dropped or
  // refreshed, from other hosts'. Letters, digits, '_' and '-', at most 64; empty: none.
  std::string writer_tag;
  // Overrides any password in `conninfo` and PGPASSWORD when not empty (storage.password_file).
  std::string password;
  // Connections this process holds at most; callers beyond that wait for one to be
  // returned (up to connect_timeout + statement_timeout, then kUnavailable). An open
  // EpisodeStream holds one connection until it is destroyed. More connections serve more
  // concurrent calls at the cost of server memory (each is a PostgreSQL process).
  size_t pool_size = 10;
  // How long establishing one connection may take before kUnavailable (libpq rounds it
  // up to whole seconds, at least 2).
  std::chrono::milliseconds connect_timeout{10'000};
  // The server cancels any one statement that runs longer (kDeadlineExceeded). 0: no limit.
  std::chrono::milliseconds statement_timeout{30'000};
};

// Connects, checks the database is one engram can use (UTF8 encoding) and migrates its
// schema to the current version one version at a time (v1 → v2 → v3), each step in its
// own transaction, serialised with other openers by an advisory lock.
// Errors: kInvalidArgument (malformed conninfo, pool_size 0); kUnavailable (cannot
// connect: server down, refused, authentication failed; the message says which, without
// the password); kFailedPrecondition (the schema holds foreign tables named like ours, a
// newer schema version than this build knows, or a non-UTF8 database).
//
// The returned backend is Thread-safe. A connection that breaks (server restarted,
// network cut) is dropped from the pool and replaced on next use; a call that cannot
// reach the server fails with kUnavailable, which callers may retry.
Result<std::unique_ptr<StorageBackend>> OpenPostgresBackend(const PostgresOptions& options);

// True if `store` names a PostgreSQL URL ("postgres://..." or "postgresql://...").
bool IsPostgresUrl(std::string_view store);

// `conninfo` with every secret (password, sslpassword) replaced by "********", in
// key=value form, for logs and messages. A string libpq cannot parse yields
// "<invalid PostgreSQL connection string>".
std::string MaskPostgresConninfo(const std::string& conninfo);

// ---- Maintenance (`engram storage`), each on a connection of its own ----
// They act on engram's tables in the first schema of the search_path, and only on those
// (the schema may hold other tables). None of them creates or migrates anything.

// One of engram's tables and its pg_total_relation_size (table, indexes, TOAST) in bytes.
struct PostgresTableSize {
  std::string table;
  int64_t bytes = 0;
};

// engram's tables in the store's schema, by name. Empty for a schema engram never opened.
// Errors: kUnavailable (cannot connect); kFailedPrecondition (the search_path names no
// existing schema).
Result<std::vector<PostgresTableSize>> PostgresTableSizes(const PostgresOptions& options);

struct PostgresVacuumReport {
  std::string schema;
  std::vector<std::string> tables;  // those vacuumed
  int64_t bytes_before = 0;         // summed pg_total_relation_size
  int64_t bytes_after = 0;
};

// VACUUM (ANALYZE) of engram's tables: makes dead rows' space reusable (and returns
// trailing empty pages to the OS) and refreshes the planner's statistics. It takes no
// lock that blocks readers or writers, so other engram processes keep working. A table the
// user does not own is skipped by the server with a warning (logged).
// Errors: kUnavailable; kFailedPrecondition (no such schema); kNotFound (no engram tables
// in the schema).
Result<PostgresVacuumReport> VacuumPostgres(const PostgresOptions& options);

// The schema version recorded in the store's schema, 0 when engram never created it.
// Errors: kUnavailable.
Result<int> ReadPostgresSchemaVersion(const PostgresOptions& options);

// ---- Change notifications, for caches on many hosts ----
// Every write transaction of a PostgresBackend ends with a NOTIFY on its schema's channel,
// delivered only when it commits, in commit order, naming the episodes it changed and the
// store generation it produced. A PostgresChangeListener reads them on a dedicated
// connection (not from any pool) so a host can drop its cached copies of what other hosts
// wrote (server/open_store.cc wires it to the LMDB cache).

// One committed write transaction as announced.
struct PostgresChange {
  int64_t generation = 0;                // the store's generation after it (Generation())
  std::vector<std::string> episode_ids;  // the episodes it created, changed or deleted
  bool all_episodes = false;             // it changed episodes it could not name: treat all as changed
  std::string writer;                    // PostgresOptions::writer_tag of the backend that wrote it
};

// What a listener reports, each from its own thread, one call at a time, never after
// Stop() returns. They must not call Stop().
struct PostgresChangeCallbacks {
  // LISTEN is active (again) and `generation` is the store's generation read after that:
  // every write up to it committed before this call, and every later one is delivered to
  // on_change. Changes made before, or while the listener was disconnected, are not
  // delivered: a cache must drop every copy it holds from before this call.
  std::function<void(int64_t generation)> on_connected;
  // A committed write, in commit (= generation) order. Writes made through this process
  // are delivered too.
  std::function<void(const PostgresChange& change)> on_change;
  // The connection broke (`why` says how); notifications may be missed until the next
  // on_connected. The listener reconnects with backoff (100 ms doubling up to 5 s).
  std::function<void(const Status& why)> on_disconnected;
};

// A thread listening to one store's change channel. Thread-safe.
class PostgresChangeListener {
 public:
  PostgresChangeListener(const PostgresChangeListener&) = delete;
  PostgresChangeListener& operator=(const PostgresChangeListener&) = delete;
  // Stops (see Stop).
  virtual ~PostgresChangeListener() = default;

  // The schema the store's tables live in (current_schema() of its connections) and the
  // channel its writes are announced on.
  virtual const std::string& schema() const = 0;
  virtual const std::string& channel() const = 0;

  // Starts the listening thread; its first report is on_connected for the connection
  // OpenPostgresChangeListener made. REQUIRES: called at most once.
  virtual void Start(PostgresChangeCallbacks callbacks) = 0;
  // Ends the thread within about a poll wake-up, even while it waits on the server or
  // between reconnection attempts, and closes the connection. Idempotent.
  virtual void Stop() = 0;

  // How many times the thread has reconnected after losing the connection.
  virtual int64_t reconnects() const = 0;
  // The backend process id of the listening connection (for pg_terminate_backend in
  // tests), 0 while disconnected.
  virtual int backend_pid() const = 0;

 protected:
  PostgresChangeListener() = default;
};

// Connects to the store options.conninfo names (options.password and connect_timeout as
// for OpenPostgresBackend; pool_size is not used) and LISTENs on its channel. Nothing is
// reported until Start().
// Errors: kInvalidArgument (malformed conninfo); kUnavailable (cannot connect);
// kFailedPrecondition (the search_path names no existing schema, or one without an engram
// store: OpenPostgresBackend creates it).
Result<std::unique_ptr<PostgresChangeListener>> OpenPostgresChangeListener(const PostgresOptions& options);

}  // namespace engram
