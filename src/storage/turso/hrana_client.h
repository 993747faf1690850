// HranaClient: the Hrana-over-HTTP pipeline protocol (POST <base>/v2/pipeline) that Turso
// and libSQL servers speak, over libcurl. Internal to storage/turso; TursoBackend is its
// only user.
//
//   HranaClient client(options, SystemClock());
//   HranaBatch batch;                                   // all or nothing
//   batch.Add("INSERT INTO t(a, b) VALUES (?, ?)", {HranaValue::Int(1), HranaValue::Text("x")});
//   batch.Add("UPDATE s SET n = n + 1");
//   ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> results, client.Batch(batch));
//   ENGRAM_ASSIGN_OR_RETURN(HranaResult rows, client.Execute("SELECT a, b FROM t WHERE a = ?", {HranaValue::Int(1)}));
//
// Values travel typed ({"type":"integer","value":"1"}, "float", "text", "blob" as base64,
// "null"); statements are always parameterised. Every request is one HTTP round trip on a
// kept-alive connection from a bounded pool. The auth token is sent as
// "Authorization: Bearer <token>" and never appears in a log line or an error message.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/status.h"

namespace engram::turso {

// One typed Hrana value. Integers are exact 64-bit; blobs are raw bytes.
struct HranaValue {
  enum class Type { kNull, kInteger, kFloat, kText, kBlob };
  Type type = Type::kNull;
  int64_t integer = 0;
  double real = 0;
  std::string bytes;  // kText (UTF-8) or kBlob (raw)

  static HranaValue Null() { return {}; }
  static HranaValue Int(int64_t v) { return {Type::kInteger, v, 0, {}}; }
  static HranaValue Float(double v) { return {Type::kFloat, 0, v, {}}; }
  static HranaValue Text(std::string_view v) { return {Type::kText, 0, 0, std::string(v)}; }
  static HranaValue Blob(std::string_view v) { return {Type::kBlob, 0, 0, std::string(v)}; }
  static HranaValue OptText(const std::optional<std::string>& v) { return v ? Text(*v) : Null(); }
  static HranaValue OptInt(const std::optional<int64_t>& v) { return v ? Int(*v) : Null(); }

  bool is_null() const { return type == Type::kNull; }
};

// The rows one statement returned, plus what it changed.
struct HranaResult {
  std::vector<std::string> columns;
  std::vector<std::vector<HranaValue>> rows;
  int64_t affected_rows = 0;
  std::optional<int64_t> last_insert_rowid;

  // Typed reads of row `row`, column `col`. Errors: kDataLoss naming the column when the
  // cell is missing or of another type (an integer column read as text is an error, not a
  // conversion; a float column accepts an integer cell). Opt* accept null.
  Result<int64_t> Int(size_t row, size_t col) const;
  Result<std::optional<int64_t>> OptInt(size_t row, size_t col) const;
  Result<double> Double(size_t row, size_t col) const;
  Result<std::optional<double>> OptDouble(size_t row, size_t col) const;
  Result<std::string> Text(size_t row, size_t col) const;
  Result<std::optional<std::string>> OptText(size_t row, size_t col) const;
  Result<std::string> Blob(size_t row, size_t col) const;
};

// Statements run as ONE Hrana `batch` request: the client wraps them in BEGIN ... COMMIT
// with step conditions (each step runs only if the one before it succeeded; a ROLLBACK step
// runs if COMMIT did not), so either every statement takes effect or none does.
class HranaBatch {
 public:
  // Appends a statement; returns its index among the added statements (0, 1, ...), which
  // is the index of its result in what Batch returns.
  size_t Add(std::string sql, std::vector<HranaValue> args = {});
  size_t size() const { return statements_.size(); }
  bool empty() const { return statements_.empty(); }

  struct Statement {
    std::string sql;
    std::vector<HranaValue> args;
  };
  const std::vector<Statement>& statements() const { return statements_; }

 private:
  std::vector<Statement> statements_;
};

struct HranaOptions {
  // The server: "http://127.0.0.1:8080" or "https://<db>-<org>.turso.io"; a "libsql://host"
  // URL means "https://host". A trailing "/" and a "/v2/pipeline" suffix are accepted.
  std::string url;
  std::string auth_token;  // may be empty (a local server); never logged
  size_t pool_size = 10;   // concurrent requests at most (a semaphore); kept-alive handles are reused
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{30'000};  // whole request, connect included
  int max_retries = 3;                      // retries of retryable failures only (see below)
  std::chrono::milliseconds backoff{100};   // first retry waits this, then doubles (with jitter)
  int breaker_failure_threshold = 5;        // consecutive failed requests that open the breaker
  std::chrono::milliseconds breaker_open_for{10'000};
};

// Thread-safe.
class HranaClient {
 public:
  // `clock` must outlive the client (the breaker reads it).
  // Errors: kInvalidArgument (a malformed url, pool_size 0).
  static Result<std::unique_ptr<HranaClient>> Open(const HranaOptions& options, Clock& clock);
  ~HranaClient();
  HranaClient(const HranaClient&) = delete;
  HranaClient& operator=(const HranaClient&) = delete;

  // One statement in its own request (autocommit). Retried on every retryable failure
  // (even after the server may have run it), so it is for reads and idempotent statements
  // (CREATE ... IF NOT EXISTS); a write that must not happen twice goes in a Batch.
  Result<HranaResult> Execute(std::string_view sql, std::vector<HranaValue> args = {});

  // Every statement of `batch`, atomically, in one request. Returns one result per added
  // statement. If any statement fails, nothing is committed and the error is that
  // statement's, with its index: SQLite constraint failures become kAlreadyExists (UNIQUE /
  // PRIMARY KEY) or kFailedPrecondition (CHECK, NOT NULL, a RAISE(ABORT, msg) in a trigger:
  // msg is kept), other SQL errors kInternal.
  Result<std::vector<HranaResult>> Batch(const HranaBatch& batch);

  // Several read-only statements in one request, each in autocommit (no transaction; for
  // reads that need no common snapshot). A failing statement fails the call.
  Result<std::vector<HranaResult>> ExecuteMany(const HranaBatch& statements);

  // Errors of every call:
  //   kUnavailable: the server cannot be reached, timed out, answered 5xx / 429 after the
  //     retries, or the breaker is open. Retryable by the caller. Batches are retried only
  //     when the request surely did not run (connect failure, 429) — never after it
  //     may have committed — and say "outcome unknown" otherwise.
  //   kPermissionDenied: 401/403 (a bad or missing token).
  //   kDataLoss: an answer that is not the protocol's JSON (an HTML error page, truncated or
  //     wrong-typed JSON), described without echoing more than a short prefix of it.
  //   kInvalidArgument / kAlreadyExists / kFailedPrecondition / kInternal: SQL errors (above).
  //     kInvalidArgument is the client's own refusal before sending: text or SQL that is not
  //     UTF-8, a NaN or infinite float, empty SQL. A busy database ("database is locked")
  //     is kUnavailable; Batch re-sends such a batch itself (it was rolled back whole).
  // Messages: SQL errors read "statement 2: UNIQUE constraint failed: t.a (19)" (Batch:
  // "batch statement 2: ...", a trigger's RAISE message verbatim after the colon); the
  // others start with "turso <base_url>". tursodb 0.6 reports affected_rows 0 and no
  // last_insert_rowid for every statement: use RETURNING or changes() instead.

  // The base URL, for Location() (no token).
  const std::string& base_url() const;
  // Requests sent (retries included), for tests and the benchmark's requests-per-write.
  int64_t requests_sent() const;
  bool breaker_open() const;

 private:
  struct Impl;
  explicit HranaClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace engram::turso
