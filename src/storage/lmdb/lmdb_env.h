// Env: the cache's LMDB environment, one folder shared by every engram process on the
// machine and opened once per process. Internal to storage/lmdb.
//
// The folder holds LMDB's data.mdb and lock.mdb and three files of engram's own:
//   engram.lock  every process holds a shared flock(2) on it while the environment is open;
//                rebuilding takes it exclusively, so a file is only ever replaced when no
//                process has it mapped (a process on an unlinked copy would miss the others'
//                invalidations).
//   boot_id      the kernel boot id the file was (re)built under. Commits are not fsynced
//                (MDB_NOSYNC: a cache needs no durability, and a process crash loses
//                nothing), so after a system crash the file may have lost invalidations or be
//                torn: a different boot id makes the next open rebuild it.
//   corrupt      created by a process that met corruption at run time; the next open rebuilds.
//
// Databases: meta (format, store, generation, bytes), entries (id -> codec value),
// atime (id -> last use tick), lru (tick|id -> "", oldest first) and pending (id -> one
// marker per write in progress, DUPSORT).
#pragma once

#include <lmdb.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/status.h"

namespace engram::lmdb {

// The layout of the databases and the invalidation protocol. Changing either bumps this:
// an older file is then rebuilt (once no process of the older build has it open).
inline constexpr uint32_t kFormatVersion = 1;

inline constexpr const char* kMetaDb = "meta";
inline constexpr const char* kEntriesDb = "entries";
inline constexpr const char* kAtimeDb = "atime";
inline constexpr const char* kLruDb = "lru";
inline constexpr const char* kPendingDb = "pending";

inline constexpr std::string_view kFormatKey = "format";          // uint32
inline constexpr std::string_view kStoreKey = "store";            // store identity text
inline constexpr std::string_view kGenerationKey = "generation";  // uint64, bumped by every write
inline constexpr std::string_view kBytesKey = "bytes";            // uint64, sum of entry value sizes

// Env::Write callbacks return an LMDB result code, or kRollback to abort without an error.
inline constexpr int kRollback = 1 << 24;

struct EnvOptions {
  std::string path;                // the folder
  size_t map_size = 0;             // used only when the file is (re)created
  std::string store_id;            // what store the cache belongs to; another one means rebuild
  std::chrono::milliseconds rebuild_wait{10'000};
};

// Thread-safe.
class Env {
 public:
  // The process's Env for options.path, opening it (or rebuilding it) when no cache object
  // of this process has it open. Errors: kInvalidArgument (empty path; the folder is open
  // in this process for another store); kUnavailable (see OpenLmdbCache).
  static Result<std::shared_ptr<Env>> Open(const EnvOptions& options);

  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env();

  const std::string& path() const { return path_; }
  MDB_env* raw() { return env_; }

  // Runs `fn` in a read transaction. Errors: from LMDB, as by Error().
  Status Read(const std::function<int(MDB_txn*)>& fn);
  // Runs `fn` in a write transaction and commits it if `fn` returns 0; kRollback aborts and
  // returns OK. On kResourceExhausted (map full) it clears dead readers' slots and tries once
  // more. Errors: from LMDB, as by Error().
  Status Write(const std::function<int(MDB_txn*)>& fn);

  // A Status for LMDB result `rc` while doing `what`: kResourceExhausted (map full),
  // kDataLoss (corruption; also marks the folder for rebuild at the next open), kUnavailable.
  Status Error(int rc, std::string_view what);

  // Checks the file is readable and of our format. Errors: as Error().
  Status Check();

  MDB_dbi meta = 0;
  MDB_dbi entries = 0;
  MDB_dbi atime = 0;
  MDB_dbi lru = 0;
  MDB_dbi pending = 0;

 private:
  Env(std::string path, std::string store_id, MDB_env* env, int guard_fd);

  const std::string path_;
  const std::string store_id_;
  MDB_env* const env_;
  const int guard_fd_;     // holds the shared flock while open
  const pid_t owner_pid_;  // an Env is never used, nor closed, in a forked child
};

}  // namespace engram::lmdb
