// The embedded default store: one SQLite file in WAL mode, shared safely by every
// engram process on the machine.
//
//   SqliteOptions options;
//   options.path = "/home/me/.local/share/engram/memory.db";
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenSqliteBackend(options));
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

struct SqliteOptions {
  // The database file. Its folder is created when missing. ":memory:" is not allowed:
  // a memory that forgets on exit is not a memory.
  std::string path;
  Durability durability = Durability::kFull;
  // How long one call waits for another process's write lock before kUnavailable.
  // Longer waits survive heavier contention at the cost of latency under it.
  std::chrono::milliseconds busy_timeout{10'000};
  // Opens read-only (no migrations; writes fail with kFailedPrecondition).
  bool read_only = false;
  // Keeps an in-memory copy of the full-text index that answers searches exactly as FTS5
  // does, 15-20 times faster (~29 MiB at 100k episodes, ~264 MiB at 1M; built in the
  // background at the first search). false: FTS5 answers every search (storage.full_text_in_memory).
  bool full_text_in_memory = true;
};

// Opens (creating when missing) the store at options.path and migrates it to the
// current schema. Errors: kInvalidArgument (bad path); kFailedPrecondition (not an
// engram database, or a newer schema than this build knows); kDataLoss (corrupt file);
// kUnavailable (cannot create or open the file, e.g. read-only or missing folder).
Result<std::unique_ptr<StorageBackend>> OpenSqliteBackend(const SqliteOptions& options);

}  // namespace engram
