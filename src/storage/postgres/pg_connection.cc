#include "storage/postgres/pg_connection.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>
#include <limits>
#include <string_view>

#include "common/logging.h"

namespace engram::postgres {
namespace {

std::string Field(const PGresult* result, int field) {
  if (result == nullptr) return std::string();
  const char* v = PQresultErrorField(result, field);
  return v == nullptr ? std::string() : std::string(v);
}

// What a statement does, for messages: its first words.
std::string Describe(std::string_view sql) {
  size_t start = sql.find_first_not_of(" \n");
  if (start == std::string_view::npos) return "statement";
  std::string_view s = sql.substr(start, 40);
  size_t nl = s.find('\n');
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  return std::string(s) + (sql.size() - start > s.size() ? "..." : "");
}

// Server notices ("word is too long to be indexed", ...) would go to stderr by default,
// where a stdio MCP client may show them; they are debug detail.
void NoticeToLog(void*, const char* message) { LogDebug("PostgreSQL notice", {{"notice", OneLine(message)}}); }

}  // namespace

std::string OneLine(const char* text) {
  std::string out;
  if (text == nullptr) return out;
  for (const char* p = text; *p != '\0'; ++p) {
    char c = *p;
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool IsTransientConflict(std::string_view sqlstate) {
  return sqlstate == "40001" || sqlstate == "40P01";  // serialization_failure, deadlock_detected
}

// ---- Params ----

Params& Params::Add(std::string value) {
  values_.push_back(std::move(value));
  null_.push_back(false);
  return *this;
}

Params& Params::Text(std::string_view value) {
  if (value.find('\0') != std::string_view::npos && status_.ok()) {
    status_ = InvalidArgumentError("a text value holds a NUL character (\\u0000), which PostgreSQL cannot store");
  }
  return Add(std::string(value));
}

Params& Params::OptText(const std::optional<std::string>& value) { return value ? Text(*value) : Null(); }
Params& Params::Int(int64_t value) { return Add(std::to_string(value)); }
Params& Params::OptInt(const std::optional<int64_t>& value) { return value ? Int(*value) : Null(); }

Params& Params::Double(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);  // shortest exact form
  return Add(std::string(buf, ec == std::errc() ? end : buf));
}

Params& Params::Bool(bool value) { return Add(value ? "true" : "false"); }

Params& Params::Null() {
  values_.emplace_back();
  null_.push_back(true);
  return *this;
}

Params& Params::TextArray(const std::vector<std::optional<std::string>>& values) {
  std::string literal = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) literal += ',';
    if (!values[i]) {
      literal += "NULL";
      continue;
    }
    if (values[i]->find('\0') != std::string::npos && status_.ok()) {
      status_ = InvalidArgumentError("a text value holds a NUL character (\\u0000), which PostgreSQL cannot store");
    }
    literal += '"';
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  return Add(std::move(literal));
}

// ---- PgResult ----

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() {
  if (result_ != nullptr) PQclear(result_);
}

int PgResult::rows() const { return PQntuples(result_); }

int64_t PgResult::affected() const {
  const char* n = PQcmdTuples(result_);
  int64_t value = 0;
  if (n != nullptr) std::from_chars(n, n + std::strlen(n), value);
  return value;
}

bool PgResult::IsNull(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }

std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col), static_cast<size_t>(PQgetlength(result_, row, col)));
}

std::optional<std::string> PgResult::OptText(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Text(row, col);
}

int64_t PgResult::Int(int row, int col) const {
  const char* v = PQgetvalue(result_, row, col);
  int64_t value = 0;
  std::from_chars(v, v + PQgetlength(result_, row, col), value);
  return value;
}

std::optional<int64_t> PgResult::OptInt(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Int(row, col);
}

bool PgResult::Bool(int row, int col) const {
  return PQgetlength(result_, row, col) > 0 && PQgetvalue(result_, row, col)[0] == 't';
}

double PgResult::Double(int row, int col) const {
  const char* v = PQgetvalue(result_, row, col);
  const int n = PQgetlength(result_, row, col);
  double value = 0;
  // PostgreSQL spells the specials its own way; from_chars reads "nan" and "inf".
  std::string_view text(v, static_cast<size_t>(n));
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  std::from_chars(v, v + n, value);
  return value;
}

std::optional<double> PgResult::OptDouble(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Double(row, col);
}

// ---- Connection ----

ConnectParams::ConnectParams(const ConnectOptions& options) {
  // dbname comes first and is expanded as a whole connection string (URL or key=value);
  // the keywords after it override what it says.
  int64_t timeout_s = (options.connect_timeout.count() + 999) / 1000;
  timeout_ = std::to_string(timeout_s < 2 ? 2 : timeout_s);
  keys_ = {"dbname", "connect_timeout", "client_encoding", "fallback_application_name"};
  values_ = {options.conninfo.c_str(), timeout_.c_str(), "UTF8", "engram"};
  if (!options.password.empty()) {
    keys_.push_back("password");
    values_.push_back(options.password.c_str());
  }
  keys_.push_back(nullptr);
  values_.push_back(nullptr);
}

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectOptions& options) {
  ConnectParams params(options);
  PGconn* conn = PQconnectdbParams(params.keys(), params.values(), /*expand_dbname=*/1);
  if (conn == nullptr) return UnavailableError("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string reason = OneLine(PQerrorMessage(conn));
    PQfinish(conn);
    return UnavailableError("cannot connect to PostgreSQL (" + options.display + "): " + reason);
  }
  PQsetNoticeProcessor(conn, NoticeToLog, nullptr);
  std::unique_ptr<Connection> c(new Connection(conn, options.display));
  Params timeout_param;
  timeout_param.Text(std::to_string(options.statement_timeout.count()));
  // extra_float_digits > 0 makes the server print every float in its shortest form that
  // reads back exactly (PostgreSQL 12+), whatever the server's default: stored doubles
  // (success rates, decay weights) round-trip bit for bit.
  Result<PgResult> set = c->QueryOnce(
      "SELECT set_config('statement_timeout', $1, false), set_config('extra_float_digits', '3', false)",
      timeout_param);
  if (!set.ok()) return set.status();
  return c;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

bool Connection::in_transaction() const {
  PGTransactionStatusType t = PQtransactionStatus(conn_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

Result<PgResult> Connection::Check(PGresult* raw, std::string_view what) {
  PgResult result(raw);
  ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    last_sqlstate_.clear();
    last_constraint_.clear();
    return result;
  }
  last_sqlstate_ = Field(raw, PG_DIAG_SQLSTATE);
  last_constraint_ = Field(raw, PG_DIAG_CONSTRAINT_NAME);
  std::string message = raw != nullptr ? Field(raw, PG_DIAG_MESSAGE_PRIMARY) : std::string();
  if (message.empty()) message = OneLine(PQerrorMessage(conn_));
  const std::string& state = last_sqlstate_;
  std::string context = std::string(what) + ": " + message;

  // A connection that broke (server shut down or crashed, network cut) says so through
  // PQstatus; 57P0x is the server announcing it is going away, 08xxx a protocol-level loss.
  if (broken() || state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return UnavailableError("lost the connection to PostgreSQL (" + display_ + ") during " + context +
                            "; the server is restarting or unreachable: retry the call");
  }
  if (IsTransientConflict(state)) {
    return UnavailableError("PostgreSQL aborted the transaction to resolve a conflict with a concurrent one (" +
                            context + "); retry the call");
  }
  if (state == "23505") return AlreadyExistsError(context);
  if (state.starts_with("23")) return InvalidArgumentError(context);
  if (state == "22021" || state == "22P05") return InvalidArgumentError(context);
  if (state == "57014") {
    return DeadlineExceededError(context + " (the statement ran longer than the statement timeout)");
  }
  if (state == "55P03" || state == "53300" || state == "57P04") return UnavailableError(context);
  if (state == "53100" || state == "53200" || state == "54000") return ResourceExhaustedError(context);
  if (state == "25006") return FailedPreconditionError(context + " (the server or the transaction is read-only)");
  if (state.starts_with("42501")) return FailedPreconditionError(context + " (permission denied)");
  if (state == "XX001" || state == "XX002") return DataLossError(context);
  return InternalError("PostgreSQL " + (state.empty() ? std::string() : "error " + state + " ") + "during " + context);
}

Status Connection::Exec(const char* sql) {
  Result<PgResult> r = Check(PQexec(conn_, sql), Describe(sql));
  return r.ok() ? OkStatus() : r.status();
}

Result<PgResult> Connection::Query(const char* sql, const Params& params) {
  if (!params.status().ok()) return params.status();
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "engram_" + std::to_string(prepared_.size() + 1);
    Result<PgResult> prepared =
        Check(PQprepare(conn_, name.c_str(), sql, static_cast<int>(params.size()), nullptr), Describe(sql));
    if (!prepared.ok()) return prepared.status();
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values(params.size());
  for (size_t i = 0; i < params.size(); ++i) values[i] = params.null_[i] ? nullptr : params.values_[i].c_str();
  return Check(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                              nullptr, /*resultFormat=*/0),
               Describe(sql));
}

Result<PgResult> Connection::QueryOnce(const char* sql, const Params& params) {
  if (!params.status().ok()) return params.status();
  std::vector<const char*> values(params.size());
  for (size_t i = 0; i < params.size(); ++i) values[i] = params.null_[i] ? nullptr : params.values_[i].c_str();
  return Check(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr,
                            /*resultFormat=*/0),
               Describe(sql));
}

}  // namespace engram::postgres
