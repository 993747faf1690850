#include "storage/sqlite/sqlite_connection.h"

#include <sqlite3.h>

#include <thread>

namespace engram::sqlite {

Status SqliteError(int rc, sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(msg + " (another engram process kept the database busy for longer than "
                                    "storage.busy_timeout_ms)");
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) return AlreadyExistsError(msg);
      return InvalidArgumentError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(msg);
    case SQLITE_FULL:
      return ResourceExhaustedError(msg);
    case SQLITE_READONLY:
      return FailedPreconditionError(msg);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_IOERR:
    case SQLITE_AUTH:
      return UnavailableError(msg);
    case SQLITE_TOOBIG:
      return ResourceExhaustedError(msg);
    default:
      return InternalError(msg);
  }
}

bool IsBusy(const Status& status) {
  return status.code() == StatusCode::kUnavailable &&
         status.message().find("storage.busy_timeout_ms") != std::string_view::npos;
}

// Waits with short, growing sleeps until the call's deadline. SQLite's own handler
// sleeps in steps of up to 100 ms, which under several writing processes wastes most
// of the wait.
int BusyHandler(void* arg, int attempts) {
  auto* conn = static_cast<Connection*>(arg);
  auto now = std::chrono::steady_clock::now();
  if (attempts == 0) conn->busy_deadline_ = now + conn->busy_timeout_;
  if (now >= conn->busy_deadline_) return 0;
  int shift = attempts < 6 ? attempts : 6;
  std::this_thread::sleep_for(std::chrono::microseconds(50 << shift));  // 50 us .. 3.2 ms
  return 1;
}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::BindText(int i, std::string_view v) {
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}
void Statement::BindOptText(int i, const std::optional<std::string>& v) {
  if (v) BindText(i, *v); else BindNull(i);
}
void Statement::BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
void Statement::BindOptInt(int i, const std::optional<int64_t>& v) {
  if (v) BindInt(i, *v); else BindNull(i);
}
void Statement::BindDouble(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
void Statement::BindBlob(int i, std::string_view v) {
  sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
}
void Statement::BindNull(int i) { sqlite3_bind_null(stmt_, i); }

Result<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, conn_->raw(), "step");
}

Status Statement::Run() {
  Result<bool> r = Step();
  if (!r.ok()) return r.status();
  return OkStatus();
}

bool Statement::IsNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
int64_t Statement::ColumnInt(int c) const { return sqlite3_column_int64(stmt_, c); }
double Statement::ColumnDouble(int c) const { return sqlite3_column_double(stmt_, c); }
std::string Statement::ColumnText(int c) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c));
  if (p == nullptr) return std::string();
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, c)));
}
std::optional<std::string> Statement::ColumnOptText(int c) const {
  if (IsNull(c)) return std::nullopt;
  return ColumnText(c);
}
std::optional<int64_t> Statement::ColumnOptInt(int c) const {
  if (IsNull(c)) return std::nullopt;
  return ColumnInt(c);
}

std::string_view Statement::ColumnBlob(int c) const {
  const void* p = sqlite3_column_blob(stmt_, c);
  if (p == nullptr) return std::string_view();
  return std::string_view(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, c)));
}

Connection::Connection(sqlite3* db, std::string path, std::chrono::milliseconds busy_timeout)
    : db_(db), path_(std::move(path)), busy_timeout_(busy_timeout) {}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteError(rc, db, "cannot open " + options.path);
    sqlite3_close_v2(db);
    return s;
  }
  std::unique_ptr<Connection> conn(new Connection(db, options.path, options.busy_timeout));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_handler(db, BusyHandler, conn.get());
  // Per-connection settings. In WAL mode FULL syncs the log at every commit; NORMAL
  // only at checkpoints, which still survives a process crash.
  ENGRAM_RETURN_IF_ERROR(conn->Exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  return conn;
}

Result<Statement> Connection::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return Statement(this, it->second);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, "prepare");
  statements_.emplace(sql, stmt);
  return Statement(this, stmt);
}

Status Connection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return OkStatus();
}

int64_t Connection::Changes() { return sqlite3_changes64(db_); }
int64_t Connection::LastInsertRowid() { return sqlite3_last_insert_rowid(db_); }

Status Connection::RunTransaction(bool write, const std::function<Status()>& fn) {
  auto deadline = std::chrono::steady_clock::now() + busy_timeout_;
  for (int attempt = 0;; ++attempt) {
    Status s = Exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
    if (s.ok()) {
      s = fn();
      if (s.ok()) s = Exec("COMMIT");
      if (!s.ok() && !sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
    }
    if (s.ok() || !IsBusy(s) || std::chrono::steady_clock::now() >= deadline) return s;
    std::this_thread::sleep_for(std::chrono::microseconds(100 << (attempt < 5 ? attempt : 5)));
  }
}

}  // namespace engram::sqlite
