// The remote store: one Turso / libSQL database reached over the Hrana-over-HTTP pipeline
// protocol (DESIGN §6). Same contract, same error codes and the same conformance suite as
// the embedded SQLite store. Every write is ONE HTTP request (a Hrana batch run as one
// transaction, its invariants checked inside the batch); Turso's server has no FTS5, so the
// full-text index is one engram maintains in ordinary tables.
//
//   TursoOptions options;
//   options.url = "libsql://memory-acme.turso.io";          // or "https://...", "http://127.0.0.1:8080"
//   options.auth_token = token;                              // ENGRAM_TURSO_TOKEN, a token file or config
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenTursoBackend(options));
//
// The token is sent as "Authorization: Bearer <token>"; it is never logged and never part
// of Location() or of an error message.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

struct TursoOptions {
  // "libsql://<db>-<org>.turso.io" (means https), "https://..." or "http://host:port" (a
  // local server). A trailing "/" is accepted.
  std::string url;
  // May be empty for a local server that needs none.
  std::string auth_token;
  // Requests in flight at once from this process (callers beyond that wait).
  size_t pool_size = 10;
  std::chrono::milliseconds connect_timeout{5'000};
  // A whole request, connect included; a longer one fails with kUnavailable.
  std::chrono::milliseconds request_timeout{30'000};
  // Retries of failures that surely changed nothing (connection refused, 5xx, 429), with
  // exponential backoff from `backoff`.
  int max_retries = 3;
  std::chrono::milliseconds backoff{100};
};

// Connects, checks the database is empty or an engram store, and migrates its schema to
// the current version over the same protocol.
// Errors: kInvalidArgument (malformed url, pool_size 0); kUnavailable (the server cannot be
// reached); kPermissionDenied (the token was refused); kFailedPrecondition (the database
// holds a newer engram schema than this build knows, or foreign tables named like ours).
//
// The returned backend is thread-safe. A call that cannot reach the server fails with
// kUnavailable, which callers may retry.
Result<std::unique_ptr<StorageBackend>> OpenTursoBackend(const TursoOptions& options);

// For a cache in front of a Turso store (server/open_store.cc): true if `store` is a Turso
// backend and every write that moved the store's generation from `after` to `upto` was made
// through this very object (so a cache all of its writes go through has dropped whatever they
// made stale). False for writes of other processes, and for writes too old to be remembered.
bool TursoWritesAreOwn(const StorageBackend& store, int64_t after, int64_t upto);

// True if `store` names a Turso / libSQL server: "libsql://...", "https://..." or "http://...".
bool IsTursoUrl(std::string_view store);

}  // namespace engram
