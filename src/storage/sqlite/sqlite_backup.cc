#include "engram/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "storage/sqlite/sqlite_connection.h"
#include "storage/sqlite/sqlite_schema.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using sqlite::Connection;
using sqlite::ConnectionOptions;

constexpr const char* kCountsSql =
    "SELECT (SELECT COUNT(*) FROM episodes), (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), "
    "(SELECT COUNT(*) FROM steps)";

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  uintmax_t n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// fsync of a file or a folder (for a rename to be durable, its folder must be synced too).
Status SyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UnavailableError("cannot open " + path + " to sync it: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return UnavailableError("cannot sync " + path + ": " + std::strerror(err));
  return OkStatus();
}

std::string ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Episode and step counts of the engram store open on `conn`.
Status ReadCounts(Connection& conn, SqliteStoreInfo& info) {
  ENGRAM_ASSIGN_OR_RETURN(sqlite::Statement stmt, conn.Prepare(kCountsSql));
  ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (row) {
    info.episodes = stmt.ColumnInt(0);
    info.completed_episodes = stmt.ColumnInt(1);
    info.steps = stmt.ColumnInt(2);
  }
  return OkStatus();
}

// "ok", or the first problems PRAGMA integrity_check (or quick_check) reports.
Result<std::string> IntegrityProblems(Connection& conn, bool quick) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(conn.raw(), quick ? "PRAGMA quick_check(5)" : "PRAGMA integrity_check(5)", -1, &stmt,
                              nullptr);
  if (rc != SQLITE_OK) return sqlite::SqliteError(rc, conn.raw(), "integrity check of " + conn.path());
  std::string problems;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (!problems.empty()) problems += "; ";
    problems += text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return sqlite::SqliteError(rc, conn.raw(), "integrity check of " + conn.path());
  return problems;
}

// A clear error for a file SQLite could not read as a database: another kind of file
// (SQLITE_NOTADB) or a damaged one (SQLITE_CORRUPT); other errors unchanged.
Status Unreadable(const std::string& role, const std::string& path, const Status& s) {
  if (s.code() != StatusCode::kDataLoss) return s;
  if (s.message().find("not a database") != std::string_view::npos) {
    return FailedPreconditionError(role + " " + path + " is not an SQLite database (or its header is damaged): " +
                                   std::string(s.message()));
  }
  return DataLossError(role + " " + path + " is damaged: " + std::string(s.message()));
}

// Checks the marks of an engram store: kFailedPrecondition for anything else. `role` names
// the file in messages ("backup", "store").
Status CheckEngramMarks(Connection& conn, const std::string& role, int& schema_version) {
  Result<sqlite::FileMarks> marks = sqlite::ReadMarks(conn);
  if (!marks.ok()) return Unreadable(role, conn.path(), marks.status());
  if (marks->application_id == 0 && marks->user_version == 0 && marks->object_count == 0) {
    return FailedPreconditionError(role + " " + conn.path() + " is an empty SQLite database, not an engram store");
  }
  if (marks->application_id != sqlite::kApplicationId) {
    return FailedPreconditionError(role + " " + conn.path() + " is an SQLite database but not an engram store (application_id " +
                                   std::to_string(marks->application_id) + ")");
  }
  if (marks->user_version > sqlite::kSchemaVersion) {
    return FailedPreconditionError(role + " " + conn.path() + " was written by a newer engram (schema " +
                                   std::to_string(marks->user_version) + "; this build knows up to " +
                                   std::to_string(sqlite::kSchemaVersion) + "); upgrade engram to use it");
  }
  schema_version = static_cast<int>(marks->user_version);
  return OkStatus();
}

// Runs the backup `b` to completion, `pages_per_step` pages at a time, retrying while
// either side is locked by another process until `busy_timeout` has passed.
Status RunBackup(sqlite3_backup* b, sqlite3* dest, const SqliteCopyOptions& options, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + options.busy_timeout;
  const int pages = std::max(options.pages_per_step, 1);
  for (;;) {
    int rc = sqlite3_backup_step(b, pages);
    if (rc == SQLITE_OK || rc == SQLITE_DONE) {
      if (options.progress) {
        int64_t total = sqlite3_backup_pagecount(b);
        options.progress(total - sqlite3_backup_remaining(b), total);
      }
      if (rc == SQLITE_DONE) break;
      continue;
    }
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    sqlite3_backup_finish(b);
    return sqlite::SqliteError(rc, dest, what);
  }
  int rc = sqlite3_backup_finish(b);
  if (rc != SQLITE_OK) return sqlite::SqliteError(rc, dest, what);
  return OkStatus();
}

// Copies `source` into `dest` (both open) with the backup API.
Status Copy(Connection& source, Connection& dest, const SqliteCopyOptions& options, const std::string& what) {
  sqlite3_backup* b = sqlite3_backup_init(dest.raw(), "main", source.raw(), "main");
  if (b == nullptr) return sqlite::SqliteError(sqlite3_errcode(dest.raw()), dest.raw(), what);
  return RunBackup(b, dest.raw(), options, what);
}

// Writes the copy of the open store `source` to `partial`, and checks it.
Result<SqliteStoreInfo> WriteCopy(Connection& source, const std::string& partial, const SqliteCopyOptions& options) {
  ConnectionOptions dest_options;
  dest_options.path = partial;
  dest_options.busy_timeout = options.busy_timeout;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> dest, Connection::Open(dest_options));
  ENGRAM_RETURN_IF_ERROR(Copy(source, *dest, options, "backup of " + source.path() + " to " + partial));
  // One self-contained file: no -wal that could be left behind when the copy is moved.
  ENGRAM_RETURN_IF_ERROR(dest->Exec("PRAGMA journal_mode=DELETE"));
  ENGRAM_ASSIGN_OR_RETURN(std::string problems, IntegrityProblems(*dest, /*quick=*/false));
  if (problems != "ok") {
    return DataLossError("the copy of " + source.path() + " failed its integrity check (" + problems +
                         "); the store itself may be damaged: run `engram storage verify`");
  }
  SqliteStoreInfo info;
  ENGRAM_RETURN_IF_ERROR(CheckEngramMarks(*dest, "the copy", info.schema_version));
  ENGRAM_RETURN_IF_ERROR(ReadCounts(*dest, info));
  return info;
}

}  // namespace

Result<SqliteStoreInfo> BackupSqliteStore(const std::string& store, const std::string& destination,
                                          const SqliteCopyOptions& options) {
  std::error_code ec;
  if (!fs::exists(store, ec)) return NotFoundError("no store at " + store);
  if (fs::exists(destination, ec) && !options.overwrite) {
    return AlreadyExistsError(destination + " already exists; choose another path or pass --force to replace it");
  }
  if (fs::equivalent(store, destination, ec)) {
    return InvalidArgumentError("the backup path " + destination + " is the store itself");
  }
  ConnectionOptions source_options;
  source_options.path = store;
  source_options.create = false;
  source_options.busy_timeout = options.busy_timeout;
  Result<std::unique_ptr<Connection>> opened = Connection::Open(source_options);
  if (!opened.ok()) return Unreadable("store", store, opened.status());
  std::unique_ptr<Connection> source = *std::move(opened);
  int schema_version = 0;
  ENGRAM_RETURN_IF_ERROR(CheckEngramMarks(*source, "store", schema_version));

  // One read transaction across every step: all pages come from the same snapshot, and in
  // WAL mode other processes keep writing meanwhile. Without it each step would take a new
  // snapshot and a write in between would restart the copy from the first page.
  ENGRAM_RETURN_IF_ERROR(source->Exec("BEGIN"));
  ENGRAM_RETURN_IF_ERROR(source->Exec("SELECT COUNT(*) FROM sqlite_schema"));

  const std::string partial = destination + ".partial";
  fs::remove(partial, ec);
  fs::remove(partial + "-journal", ec);
  Result<SqliteStoreInfo> info = WriteCopy(*source, partial, options);
  (void)source->Exec("COMMIT");  // ends the read snapshot; nothing was written
  Status done = info.status();
  if (done.ok()) done = SyncPath(partial);
  if (done.ok()) {
    fs::rename(partial, destination, ec);
    if (ec) done = UnavailableError("cannot move " + partial + " to " + destination + ": " + ec.message());
  }
  if (done.ok()) done = SyncPath(ParentOf(destination));
  if (!done.ok()) {
    fs::remove(partial, ec);
    fs::remove(partial + "-journal", ec);
    return done;
  }
  info->path = destination;
  info->bytes = FileSize(destination);
  return info;
}

Result<SqliteStoreInfo> InspectSqliteStore(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return NotFoundError("no file at " + path);
  if (!fs::is_regular_file(st)) return FailedPreconditionError(path + " is not a regular file");
  SqliteStoreInfo info;
  info.path = path;
  info.bytes = FileSize(path);
  if (info.bytes == 0) return FailedPreconditionError(path + " is empty, not an engram store");
  ConnectionOptions options;
  options.path = path;
  options.read_only = true;
  options.create = false;
  Result<std::unique_ptr<Connection>> opened = Connection::Open(options);
  if (!opened.ok()) return Unreadable("file", path, opened.status());
  Connection& conn = **opened;
  ENGRAM_RETURN_IF_ERROR(CheckEngramMarks(conn, "file", info.schema_version));
  Result<std::string> problems = IntegrityProblems(conn, /*quick=*/false);
  if (!problems.ok() && problems.status().code() != StatusCode::kDataLoss) return problems.status();
  if (!problems.ok() || *problems != "ok") {
    return DataLossError(path + " is damaged: its integrity check failed (" +
                         (problems.ok() ? *problems : std::string(problems.status().message())) + ")");
  }
  Status counts = ReadCounts(conn, info);
  if (!counts.ok()) return DataLossError(path + " is not a complete engram store: " + std::string(counts.message()));
  return info;
}

Result<SqliteStoreInfo> RestoreSqliteStore(const std::string& backup, const std::string& store,
                                           const SqliteCopyOptions& options) {
  ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo backup_info, InspectSqliteStore(backup));
  std::error_code ec;
  if (fs::equivalent(backup, store, ec)) return InvalidArgumentError("the backup " + backup + " is the store itself");
  fs::create_directories(ParentOf(store), ec);

  ConnectionOptions source_options;
  source_options.path = backup;
  source_options.read_only = true;
  source_options.create = false;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> source, Connection::Open(source_options));
  ConnectionOptions dest_options;
  dest_options.path = store;
  dest_options.busy_timeout = options.busy_timeout;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> dest, Connection::Open(dest_options));
  // A new store starts in WAL mode like one SqliteBackend made; an existing one already is,
  // and the backup API keeps the destination's journal mode.
  (void)dest->Exec("PRAGMA journal_mode=WAL");
  // The destination's write transaction spans every step and commits at the last one:
  // readers in other processes keep their snapshot of the old store until then.
  ENGRAM_RETURN_IF_ERROR(Copy(*source, *dest, options, "restore of " + backup + " into " + store));

  ENGRAM_ASSIGN_OR_RETURN(std::string problems, IntegrityProblems(*dest, /*quick=*/true));
  if (problems != "ok") return DataLossError("the restored store " + store + " failed its check: " + problems);
  // Move the restored pages from the log into the file where no reader is in the way
  // (PASSIVE never waits); what is left is checkpointed by the next writer as usual.
  (void)dest->Exec("PRAGMA wal_checkpoint(PASSIVE)");
  SqliteStoreInfo info;
  info.path = store;
  ENGRAM_RETURN_IF_ERROR(CheckEngramMarks(*dest, "store", info.schema_version));
  ENGRAM_RETURN_IF_ERROR(ReadCounts(*dest, info));
  info.bytes = FileSize(store);
  return info;
}

}  // namespace engram
