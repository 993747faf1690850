// Thin RAII layer over the libpq C API for PostgresBackend: connections with a cache of
// prepared statements, parameters sent out of band (never spliced into SQL text), typed
// reading of text-format results, and the one place that turns SQLSTATEs and lost
// connections into Status. Internal to storage/postgres.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/status.h"

struct pg_conn;
struct pg_result;

namespace engram::postgres {

// The parameters of one statement ($1, $2, ... in order of the calls), all in text
// format. Not thread-safe: owned by one thread.
class Params {
 public:
  Params& Text(std::string_view value);
  Params& OptText(const std::optional<std::string>& value);
  Params& Int(int64_t value);
  Params& OptInt(const std::optional<int64_t>& value);
  Params& Double(double value);
  Params& Bool(bool value);
  Params& Null();
  // A one-dimensional text[] literal ({"a","b",NULL}); every element quoted and escaped.
  Params& TextArray(const std::vector<std::optional<std::string>>& values);

  // kInvalidArgument if a text value held a NUL byte: PostgreSQL text cannot store one,
  // and libpq would silently cut the value there.
  const Status& status() const { return status_; }
  size_t size() const { return values_.size(); }

 private:
  friend class Connection;
  Params& Add(std::string value);

  std::vector<std::string> values_;
  std::vector<bool> null_;
  Status status_;
};

// One statement's result rows, read as text. Move-only; frees the PGresult.
// Not thread-safe: owned by one thread.
class PgResult {
 public:
  explicit PgResult(pg_result* result) : result_(result) {}
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult();

  int rows() const;
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t affected() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  std::optional<std::string> OptText(int row, int col) const;
  // 0 for NULL or a value that is not an integer (never the case for integer columns).
  int64_t Int(int row, int col) const;
  std::optional<int64_t> OptInt(int row, int col) const;
  bool Bool(int row, int col) const;  // "t"
  // 0 for NULL. Exact: the session prints floats in their shortest round-tripping form.
  double Double(int row, int col) const;
  std::optional<double> OptDouble(int row, int col) const;

 private:
  pg_result* result_;
};

struct ConnectOptions {
  std::string conninfo;  // URL or key=value; may hold a password
  std::string password;  // overrides the conninfo's when not empty
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds statement_timeout{30'000};
  std::string display;   // the masked conninfo, for messages
};

// The keyword and value arrays (NULL-terminated, expand_dbname = 1) that libpq's
// PQconnectdbParams / PQconnectStartParams take for `options`. Borrows `options`, which must
// outlive it. Not thread-safe: owned by one thread.
class ConnectParams {
 public:
  explicit ConnectParams(const ConnectOptions& options);
  ConnectParams(const ConnectParams&) = delete;
  ConnectParams& operator=(const ConnectParams&) = delete;

  const char* const* keys() const { return keys_.data(); }
  const char* const* values() const { return values_.data(); }

 private:
  std::string timeout_;
  std::vector<const char*> keys_;
  std::vector<const char*> values_;
};

// One libpq connection. Not thread-safe: the backend's pool hands each to one caller at
// a time.
class Connection {
 public:
  // Connects and applies the session settings (statement_timeout, exact float output).
  // Errors: kUnavailable (cannot connect, with libpq's reason and the masked conninfo).
  static Result<std::unique_ptr<Connection>> Open(const ConnectOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without parameters or rows (BEGIN, COMMIT, DDL).
  Status Exec(const char* sql);
  // Runs `sql`, which must be a string literal: it is prepared once per connection and
  // cached by its address. Errors: see PgError.
  Result<PgResult> Query(const char* sql, const Params& params);
  // Runs `sql` with `params` without preparing it (utility statements such as DECLARE).
  Result<PgResult> QueryOnce(const char* sql, const Params& params);

  // True once the connection is unusable (server gone, restarted, network cut).
  bool broken() const;
  // True when a transaction is open (or failed and not yet rolled back).
  bool in_transaction() const;
  // SQLSTATE of the last failed statement ("40001"), empty if none or the connection broke.
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  // The constraint a failed statement violated ("steps_pkey"), empty if none.
  const std::string& last_constraint() const { return last_constraint_; }

 private:
  Connection(pg_conn* conn, std::string display) : conn_(conn), display_(std::move(display)) {}
  // Checks a result; returns it if it succeeded.
  Result<PgResult> Check(pg_result* result, std::string_view what);

  pg_conn* conn_;
  std::string display_;
  std::map<const char*, std::string> prepared_;  // sql address → statement name
  std::string last_sqlstate_;
  std::string last_constraint_;
};

// A libpq message on one line: libpq's end in a newline and may span lines ("server
// closed the connection unexpectedly\n\tThis probably means..."). "" for nullptr.
std::string OneLine(const char* text);

// True for failures a caller may retry as they are: serialization failures and
// deadlocks (the transaction was rolled back whole).
bool IsTransientConflict(std::string_view sqlstate);

}  // namespace engram::postgres
