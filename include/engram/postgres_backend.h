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
#include <memory>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

struct PostgresOptions {
  // A libpq connection string: a URL ("postgresql://user@host:5432/db?sslmode=require") or
  // key=value pairs ("host=/run/postgresql dbname=engram"). Tables live in the first schema
  // of the search_path ("options=-csearch_path=team_a" keeps several memories in one
  // database).
  std::string conninfo;
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

}  // namespace engram
