// Opens the store the configuration names: the one place that knows every backend
// (SQLite, PostgreSQL or Turso; the LMDB cache decorator plugs in here).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "engram/lmdb_cache.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram::server {

// PostgreSQL when storage.url is a postgres:// or postgresql:// URL (password from
// storage.password_file when set, else the URL, PGPASSWORD or ~/.pgpass), else the SQLite
// file in storage.db. With cache.enabled, either sits behind the LMDB cache
// (AsLmdbCache finds it): SQLite's in storage.db + ".cache"; PostgreSQL's in a folder of
// this host named after the store, $XDG_CACHE_HOME/engram/postgres-<hash of the masked
// conninfo and the schema>.cache (~/.cache/engram/... without XDG_CACHE_HOME).
//
// Many hosts on one PostgreSQL: each host's cache is kept true by a PostgresChangeListener
// owned by the returned store. Every write transaction announces the episodes it changed
// and the generation it produced (NOTIFY, delivered on commit); the listener drops those
// copies from this host's cache and records the generation it has applied. A cached copy
// is served only when that generation has reached the store's current one (one
// single-statement round trip per cached read), else the read goes to PostgreSQL. So:
//   - Once a write has been acknowledged on host A, a read that starts afterwards on host B
//     returns the new state: there is no staleness window for reads that check.
//   - What remains is a cost, not staleness: from a commit until B's listener has applied
//     its notification (the delivery delay), B's reads of any episode go to PostgreSQL
//     instead of the cache. bench/pg_notify_bench measures the delay from the writer's
//     COMMIT returning to the listener's callback: on loopback, on this 2-core machine at
//     load ~7.5, p50 50-100 us and p95 0.15-6 ms over 2000 writes. Without the generation
//     check that delay would be the staleness bound. Writes made through B are announced
//     to B too (and so briefly send B's own reads to PostgreSQL).
//   - While the listener is disconnected reads go to PostgreSQL; when it reconnects (with
//     backoff) the host's cache is cleared, since notifications may have been missed. A
//     process opening the store clears the host's cache the same way (CLI commands too).
//   - Several engram processes on one host share its cache folder; each runs a listener.
//
// Turso when storage.url is a libsql://, https:// or http:// URL (token from
// storage.turso_token_file when set, else storage.turso_token / ENGRAM_TURSO_TOKEN). With
// cache.enabled it sits behind the LMDB cache in $XDG_CACHE_HOME/engram/turso-<hash of the
// URL>.cache. Turso sends no notifications, so a cached copy is served only after the store's
// generation (one round trip) shows no write since the cache was known good other than this
// process's own (which went through the cache); any other write drops every copy first.
// Errors: the backend's open errors, unchanged; kNotFound / kUnavailable / kInvalidArgument
// if storage.password_file is missing, unreadable or empty; the cache's and the listener's
// open errors.
Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config);

// The LMDB cache options cache.* of `config` give, for the cache folder `path`.
LmdbOptions CacheOptionsFromConfig(const Config& config, std::string path);

// The first line of `path` without its line ending: a secret kept in a file, such as
// storage.password_file or embedding.api_key_file (`setting` names it in errors).
// Errors: kNotFound / kUnavailable naming the setting and the file (never its content);
// kInvalidArgument when the first line is empty.
Result<std::string> ReadSecretFile(std::string_view setting, const std::string& path);

}  // namespace engram::server
