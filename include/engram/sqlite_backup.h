// Online backup and restore of the SQLite store (`engram backup` / `engram restore`) with
// SQLite's backup API, so both are safe while other engram processes keep serving:
//
//   SqliteCopyOptions options;
//   ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo copy, BackupSqliteStore(db, "/backups/memory.db", options));
//   ...
//   ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo file, InspectSqliteStore("/backups/memory.db"));
//   ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo restored, RestoreSqliteStore("/backups/memory.db", db, options));
//
// A backup is one self-contained file (rollback-journal mode, no -wal beside it) holding the
// store as it was at one instant: every write acknowledged before the backup started is in
// it, none that committed after it started is half in it. A restore replaces the store's
// content in one write transaction, so other processes see either the old store or the
// restored one, never a mix. Neither touches the LMDB cache or the vector index file: the
// caller drops those after a restore (they describe the replaced content).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "engram/result.h"

namespace engram {

// What an engram SQLite file holds.
struct SqliteStoreInfo {
  std::string path;
  int schema_version = 0;  // PRAGMA user_version
  int64_t bytes = 0;       // size of the file (without a -wal beside it)
  int64_t episodes = 0;
  int64_t completed_episodes = 0;
  int64_t steps = 0;
};

struct SqliteCopyOptions {
  // Pages copied per sqlite3_backup_step. Smaller steps report progress more often; the
  // snapshot (backup) or the write lock (restore) is held across all of them either way.
  int pages_per_step = 1024;
  // How long to wait for another process's lock (restore: the store's write lock).
  std::chrono::milliseconds busy_timeout{10'000};
  // BackupSqliteStore: replace `destination` when it exists. Default false: kAlreadyExists.
  bool overwrite = false;
  // Called after each step with pages copied and pages in all; may be empty.
  std::function<void(int64_t copied, int64_t total)> progress;
};

// Copies the store at `store` to the new file `destination` while other processes may
// read and write the store. The copy is made from one read snapshot (WAL lets writers go
// on), written to `destination` + ".partial", checked with PRAGMA integrity_check, synced,
// and renamed into place; on any failure nothing is left at `destination`.
// Errors: kNotFound (no store file); kAlreadyExists (`destination` exists and
// !options.overwrite); kFailedPrecondition (the store is not an engram store, or has a newer
// schema); kDataLoss (the store or the copy fails its integrity check); kUnavailable (I/O,
// or the store stayed locked past options.busy_timeout).
Result<SqliteStoreInfo> BackupSqliteStore(const std::string& store, const std::string& destination,
                                          const SqliteCopyOptions& options);

// Reads `path` without changing it and checks it is an engram store this build can open:
// its application id, a schema version not newer than this build's, and a full PRAGMA
// integrity_check. Errors: kNotFound (no such file); kFailedPrecondition (not an SQLite
// file, not an engram store, an empty file, or a newer schema); kDataLoss (corrupt);
// kUnavailable (cannot be read).
Result<SqliteStoreInfo> InspectSqliteStore(const std::string& path);

// Replaces the content of the store at `store` (created when missing) with the backup at
// `backup`, after InspectSqliteStore(backup) passes. Copies with the backup API into the
// live store inside one write transaction: other processes wait on the lock (up to their
// busy timeout) and then see the restored store. The store keeps its journal mode (WAL).
// Errors: InspectSqliteStore's for `backup`; kUnavailable (the store stayed locked past
// options.busy_timeout, or I/O); kDataLoss (the restored store fails its integrity check).
Result<SqliteStoreInfo> RestoreSqliteStore(const std::string& backup, const std::string& store,
                                           const SqliteCopyOptions& options);

}  // namespace engram
