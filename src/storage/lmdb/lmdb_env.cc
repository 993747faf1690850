#include "storage/lmdb/lmdb_env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/logging.h"

namespace engram::lmdb {
namespace {

namespace fs = std::filesystem;

// MDB_NOSYNC: see lmdb_env.h (boot_id). MDB_NOTLS: transactions are not tied to threads,
// so a worker pool of any size shares the reader table. MDB_NORDAHEAD: reads are random.
constexpr unsigned kEnvFlags = MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD;
constexpr unsigned kMaxReaders = 510;
constexpr mode_t kFileMode = 0600;

constexpr const char* kGuardFile = "engram.lock";
constexpr const char* kBootFile = "boot_id";
constexpr const char* kCorruptFile = "corrupt";

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

bool IsCorruption(int rc) {
  switch (rc) {
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_PANIC:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
      return true;
    default:
      return false;
  }
}

std::string CurrentBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown" : id;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Writes `text` to `path` atomically (temp file + rename); fsync is pointless: the file
// only has to survive as long as the boot it names.
bool WriteSmallFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// flock(fd, op) retried until `wait` elapses. Returns errno, 0 on success, EWOULDBLOCK on timeout.
int FlockWithin(int fd, int op, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (flock(fd, op | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK && errno != EINTR) return errno;
    if (std::chrono::steady_clock::now() >= deadline) return EWOULDBLOCK;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

struct Handles {
  MDB_env* env = nullptr;
  MDB_dbi meta = 0, entries = 0, atime = 0, lru = 0, pending = 0;
};

constexpr std::string_view kNoFile = "there is no cache file yet";

// Why an existing file cannot be used as is. kDataLoss and kFailedPrecondition mean
// "rebuild it"; anything else is reported to the caller.
Status Unusable(std::string_view why) { return DataLossError(why); }

Status EnvOpenError(int rc, const std::string& dir) {
  if (rc == EACCES || rc == EROFS || rc == EPERM || rc == ENOSPC || rc == EMFILE || rc == ENFILE || rc == ENOMEM) {
    return UnavailableError("cannot open the LMDB cache in " + dir + ": " + mdb_strerror(rc));
  }
  return Unusable(std::string("the cache file cannot be opened: ") + mdb_strerror(rc));
}

// Creates and opens an MDB_env on `dir` (map_size 0: the file's own size).
Result<MDB_env*> OpenRawEnv(const std::string& dir, size_t map_size) {
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return UnavailableError(std::string("mdb_env_create: ") + mdb_strerror(rc));
  if (map_size != 0) rc = mdb_env_set_mapsize(env, map_size);
  if (rc == 0) rc = mdb_env_set_maxdbs(env, 8);
  if (rc == 0) rc = mdb_env_set_maxreaders(env, kMaxReaders);
  if (rc == 0) rc = mdb_env_open(env, dir.c_str(), kEnvFlags, kFileMode);
  if (rc != 0) {
    mdb_env_close(env);
    return EnvOpenError(rc, dir);
  }
  int dead = 0;
  mdb_reader_check(env, &dead);  // slots of processes killed in a read
  return env;
}

// Opens the existing file in `dir` without changing it, checking it is ours, intact as far
// as opening can tell, built in this boot, and for `store_id`.
Result<Handles> OpenExisting(const std::string& dir, const std::string& store_id) {
  if (!fs::exists(dir + "/data.mdb")) return Unusable(kNoFile);
  if (fs::exists(dir + "/" + kCorruptFile)) return Unusable("a process found the cache file corrupt");
  const std::string boot = ReadSmallFile(dir + "/" + kBootFile);
  if (boot.empty()) return Unusable("the cache file was not finished");
  if (boot != CurrentBootId()) return Unusable("the cache file was written before the last reboot");

  ENGRAM_ASSIGN_OR_RETURN(MDB_env * env, OpenRawEnv(dir, 0));
  Handles h;
  h.env = env;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  auto fail = [&](Status s) {
    if (txn != nullptr) mdb_txn_abort(txn);
    mdb_env_close(env);
    return s;
  };
  if (rc != 0) return fail(IsCorruption(rc) ? Unusable(mdb_strerror(rc)) : EnvOpenError(rc, dir));
  struct {
    const char* name;
    unsigned flags;
    MDB_dbi* dbi;
  } dbs[] = {{kMetaDb, 0, &h.meta},
             {kEntriesDb, 0, &h.entries},
             {kAtimeDb, 0, &h.atime},
             {kLruDb, 0, &h.lru},
             {kPendingDb, MDB_DUPSORT, &h.pending}};
  for (const auto& db : dbs) {
    rc = mdb_dbi_open(txn, db.name, db.flags, db.dbi);
    if (rc != 0) return fail(Unusable(std::string("database ") + db.name + ": " + mdb_strerror(rc)));
  }
  MDB_val key = Val(kFormatKey), val;
  rc = mdb_get(txn, h.meta, &key, &val);
  uint32_t format = 0;
  if (rc != 0 || val.mv_size != sizeof format) return fail(Unusable("the cache file has no format version"));
  std::memcpy(&format, val.mv_data, sizeof format);
  if (format != kFormatVersion) {
    return fail(Unusable("the cache file has format " + std::to_string(format) + ", this build uses " +
                         std::to_string(kFormatVersion)));
  }
  key = Val(kStoreKey);
  rc = mdb_get(txn, h.meta, &key, &val);
  if (rc != 0 || std::string_view(static_cast<const char*>(val.mv_data), val.mv_size) != store_id) {
    return fail(Unusable("the cache file belongs to another store"));
  }
  rc = mdb_txn_commit(txn);  // keeps the database handles
  txn = nullptr;
  if (rc != 0) return fail(Unusable(mdb_strerror(rc)));
  return h;
}

// Replaces whatever is in `dir` with an empty cache for `store_id`.
// REQUIRES: the exclusive lock on the guard file (no process has the file open).
Result<Handles> Rebuild(const std::string& dir, size_t map_size, const std::string& store_id) {
  std::error_code ec;
  for (const char* name : {kBootFile, "data.mdb", "lock.mdb"}) {
    fs::remove(dir + "/" + name, ec);
    if (ec) return UnavailableError("cannot remove " + dir + "/" + name + ": " + ec.message());
  }
  ENGRAM_ASSIGN_OR_RETURN(MDB_env * env, OpenRawEnv(dir, map_size));
  Handles h;
  h.env = env;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, 0, &txn);
  struct {
    const char* name;
    unsigned flags;
    MDB_dbi* dbi;
  } dbs[] = {{kMetaDb, 0, &h.meta},
             {kEntriesDb, 0, &h.entries},
             {kAtimeDb, 0, &h.atime},
             {kLruDb, 0, &h.lru},
             {kPendingDb, MDB_DUPSORT, &h.pending}};
  for (const auto& db : dbs) {
    if (rc == 0) rc = mdb_dbi_open(txn, db.name, db.flags | MDB_CREATE, db.dbi);
  }
  const uint32_t format = kFormatVersion;
  const uint64_t zero = 0;
  auto put = [&](std::string_view k, const void* data, size_t size) {
    if (rc != 0) return;
    MDB_val key = Val(k);
    MDB_val val{size, const_cast<void*>(data)};
    rc = mdb_put(txn, h.meta, &key, &val, 0);
  };
  put(kFormatKey, &format, sizeof format);
  put(kStoreKey, store_id.data(), store_id.size());
  put(kGenerationKey, &zero, sizeof zero);
  put(kBytesKey, &zero, sizeof zero);
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
  } else if (txn != nullptr) {
    mdb_txn_abort(txn);
  }
  if (rc == 0) rc = mdb_env_sync(env, 1);
  if (rc != 0) {
    mdb_env_close(env);
    return UnavailableError("cannot create the LMDB cache in " + dir + ": " + mdb_strerror(rc));
  }
  fs::remove(dir + "/" + kCorruptFile, ec);
  if (!WriteSmallFile(dir + "/" + kBootFile, CurrentBootId())) {
    mdb_env_close(env);
    return UnavailableError("cannot write " + dir + "/" + kBootFile);
  }
  return h;
}

// One Env per folder per process: LMDB forbids opening an environment twice in a process
// (closing one copy would drop the other's POSIX locks). Forked children start afresh.
struct Registry {
  std::mutex mu;
  pid_t pid = 0;
  std::map<std::string, std::weak_ptr<Env>> envs;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // never destroyed: Envs may outlive statics
  return *registry;
}

// Opens the file in `dir` holding a shared lock on `guard_fd`, rebuilding it first when it
// is unusable. A rebuild needs the exclusive lock, which no process gets while another has
// the file open; so a process that finds the file unusable keeps trying for the exclusive
// lock and, in between, looks again under a shared one: when several processes start on a
// fresh folder, one builds the file and the others find it built.
Result<Handles> OpenUnderLocks(int guard_fd, const std::string& dir, const EnvOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.rebuild_wait;
  auto flock_error = [&](int err) {
    return UnavailableError("flock " + dir + "/" + kGuardFile + ": " + std::strerror(err));
  };
  for (int attempt = 0;; ) {
    // Blocks only while another process rebuilds.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (int err = FlockWithin(guard_fd, LOCK_SH, std::max(left, std::chrono::milliseconds(0))); err != 0) {
      if (err != EWOULDBLOCK) return flock_error(err);
      return UnavailableError("the LMDB cache in " + dir + " is being rebuilt by another process for too long");
    }
    Result<Handles> handles = OpenExisting(dir, options.store_id);
    if (handles.ok() || handles.status().code() != StatusCode::kDataLoss) return handles;

    // Unusable: rebuild it if no other process has it open (flock(2) converts by unlocking
    // first, so this may drop the shared lock; it is taken afresh above).
    if (flock(guard_fd, LOCK_EX | LOCK_NB) == 0) {
      // Look again: another process may have rebuilt it since, and then it stays.
      handles = OpenExisting(dir, options.store_id);
      if (!handles.ok() && handles.status().code() == StatusCode::kDataLoss) {
        if (handles.status().message() == kNoFile) {
          LogDebug("creating the LMDB cache", {{"path", dir}});
        } else {
          LogWarn("rebuilding the LMDB cache", {{"path", dir}, {"reason", std::string(handles.status().message())}});
        }
        handles = Rebuild(dir, options.map_size, options.store_id);
      }
      // Not atomic either: a process that takes the exclusive lock in between looks again,
      // finds the file healthy and keeps it.
      if (flock(guard_fd, LOCK_SH) != 0) {
        const int err = errno;
        if (handles.ok()) mdb_env_close(handles->env);
        return flock_error(err);
      }
      return handles;
    }
    if (errno != EWOULDBLOCK && errno != EINTR) return flock_error(errno);
    if (std::chrono::steady_clock::now() >= deadline) {
      return UnavailableError("the LMDB cache in " + dir + " must be rebuilt (" +
                              std::string(handles.status().message()) +
                              ") but other engram processes still have it open; stop them, or delete the "
                              "folder while none runs");
    }
    flock(guard_fd, LOCK_UN);
    // Jittered, so processes that start together do not keep meeting each other's locks.
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + (getpid() + ++attempt * 7) % 11));
  }
}

}  // namespace

Env::Env(std::string path, std::string store_id, MDB_env* env, int guard_fd)
    : path_(std::move(path)), store_id_(std::move(store_id)), env_(env), guard_fd_(guard_fd), owner_pid_(getpid()) {}

Env::~Env() {
  if (getpid() != owner_pid_) return;  // a forked child must not touch its parent's map
  mdb_env_close(env_);
  close(guard_fd_);  // releases the shared flock
}

Result<std::shared_ptr<Env>> Env::Open(const EnvOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("the cache path is empty");
  std::error_code ec;
  const bool created = fs::create_directories(options.path, ec);
  if (ec) return UnavailableError("cannot create the cache folder " + options.path + ": " + ec.message());
  if (!fs::is_directory(options.path, ec)) {
    return InvalidArgumentError("the cache path " + options.path + " is not a folder");
  }
  // Episodes are private; a folder the user made keeps the permissions they gave it.
  if (created) fs::permissions(options.path, fs::perms::owner_all, fs::perm_options::replace, ec);
  const std::string dir = fs::canonical(options.path, ec).string();
  if (ec) return UnavailableError("cannot resolve the cache folder " + options.path + ": " + ec.message());

  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  if (registry.pid != getpid()) {
    registry.envs.clear();  // inherited from the parent across fork: not ours to use
    registry.pid = getpid();
  }
  if (std::shared_ptr<Env> open = registry.envs[dir].lock()) {
    if (open->store_id_ != options.store_id) {
      return InvalidArgumentError("the cache folder " + dir + " is already in use in this process for another store");
    }
    return open;
  }

  const std::string guard_path = dir + "/" + kGuardFile;
  int fd = ::open(guard_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (fd < 0) return UnavailableError("cannot open " + guard_path + ": " + std::strerror(errno));
  auto fail = [&](Status s) {
    close(fd);
    return s;
  };
  Result<Handles> handles = OpenUnderLocks(fd, dir, options);
  if (!handles.ok()) return fail(handles.status());

  std::shared_ptr<Env> env(new Env(dir, options.store_id, handles->env, fd));
  env->meta = handles->meta;
  env->entries = handles->entries;
  env->atime = handles->atime;
  env->lru = handles->lru;
  env->pending = handles->pending;
  registry.envs[dir] = env;
  return env;
}

Status Env::Error(int rc, std::string_view what) {
  std::string message = "LMDB cache " + path_ + ": " + std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) return ResourceExhaustedError(message);
  if (IsCorruption(rc)) {
    // Every process may be reading garbage now; have the next open rebuild the file.
    WriteSmallFile(path_ + "/" + kCorruptFile, message);
    return DataLossError(message + " (the cache is rebuilt when engram next starts)");
  }
  return UnavailableError(message);
}

Status Env::Read(const std::function<int(MDB_txn*)>& fn) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc == MDB_READERS_FULL) {
    int dead = 0;
    mdb_reader_check(env_, &dead);
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  }
  if (rc != 0) return Error(rc, "begin read");
  rc = fn(txn);
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND && rc != kRollback) return Error(rc, "read");
  return OkStatus();
}

Status Env::Write(const std::function<int(MDB_txn*)>& fn) {
  for (int attempt = 0;; ++attempt) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc != 0) return Error(rc, "begin write");
    rc = fn(txn);
    if (rc == 0) {
      rc = mdb_txn_commit(txn);
    } else {
      mdb_txn_abort(txn);
    }
    if (rc == 0 || rc == kRollback) return OkStatus();
    if (rc == MDB_MAP_FULL && attempt == 0) {
      // Pages pinned by readers that died in a transaction are freed once their slots are.
      int dead = 0;
      mdb_reader_check(env_, &dead);
      if (dead > 0) continue;
    }
    return Error(rc, "write");
  }
}

Status Env::Check() {
  if (fs::exists(path_ + "/" + kCorruptFile)) {
    return DataLossError("LMDB cache " + path_ + " is corrupt (it is rebuilt when engram next starts)");
  }
  uint32_t format = 0;
  return Read([&](MDB_txn* txn) -> int {
    MDB_val key = Val(kFormatKey), val;
    int rc = mdb_get(txn, meta, &key, &val);
    if (rc != 0) return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    if (val.mv_size != sizeof format) return MDB_CORRUPTED;
    std::memcpy(&format, val.mv_data, sizeof format);
    return format == kFormatVersion ? 0 : MDB_INCOMPATIBLE;
  });
}

}  // namespace engram::lmdb
