// The Hrana-over-HTTP client (hrana_client.h) over libcurl.
//
//   request   {"requests": [{"type": "execute", "stmt": {...}}, ...]}
//             {"requests": [{"type": "batch", "batch": {"steps": [{"stmt": ..., "condition": ...}]}}]}
//   answer    {"baton": null, "results": [{"type": "ok", "response": {"type": "execute", "result": ...}}
//                                         | {"type": "error", "error": {"message": "...", "code": "..."}}]}
//
// Every answer is type-checked field by field; anything else is kDataLoss quoting at most
// a short, printable prefix of what came back. The auth token is only ever put in the
// Authorization header, and scrubbed from every message this file produces in case a
// server echoes it.
//
// Facts about `tursodb --sync-server` 0.6 (the test server) that shaped this file:
// it closes the connection after every answer (so keep-alive only helps against Turso
// Cloud and sqld), reports affected_row_count 0 and last_insert_rowid null for every
// statement (use RETURNING or changes()), answers a request it cannot parse with HTTP 500
// "Failed to parse pipeline request" (not retried: it would fail again), sends blobs as
// unpadded base64 and an infinite float as "value": null, and reports SQL errors as
// "Runtime error: <message>", a trigger's RAISE(ABORT, msg) included.
#include "storage/turso/hrana_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/circuit_breaker.h"
#include "common/mutex.h"

namespace engram::turso {
namespace {

using nlohmann::json;

// An answer larger than this is refused (a result set that big is a bug in a query).
constexpr size_t kMaxAnswerBytes = size_t{256} << 20;
constexpr std::chrono::milliseconds kMaxBackoff{10'000};
constexpr size_t kMaxPoolSize = 1'024;
constexpr size_t kExcerptBytes = 80;

void GlobalCurlInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (Lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

// Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF); NUL is allowed.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) | static_cast<unsigned char>(in[i + 2]);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Standard or URL-safe alphabet, padded or not (servers differ; tursodb omits padding).
std::optional<std::string> Base64Decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// At most `max` bytes of `text`, printable, for an error message.
std::string Excerpt(std::string_view text, size_t max = kExcerptBytes) {
  std::string out;
  for (char c : text.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  if (text.size() > max) out += "...";
  return out;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string TypeName(const json& j) { return j.type_name(); }

// The base URL (scheme://host[:port][/path], no trailing "/" nor "/v2/pipeline"), or
// kInvalidArgument. Never echoes a query string (it may hold a token).
Result<std::string> NormaliseUrl(std::string_view url) {
  auto bad = [](const std::string& what) { return InvalidArgumentError("turso url: " + what); };
  if (url.empty()) return bad("is empty");
  if (HasControlChar(url) || url.find(' ') != std::string_view::npos) {
    return bad("holds spaces or control characters");
  }
  std::string out;
  if (StartsWithNoCase(url, "libsql://")) {
    out = "https://" + std::string(url.substr(9));
  } else if (StartsWithNoCase(url, "https://")) {
    out = "https://" + std::string(url.substr(8));
  } else if (StartsWithNoCase(url, "http://")) {
    out = "http://" + std::string(url.substr(7));
  } else {
    size_t scheme = url.find("://");
    return bad("must start with http://, https:// or libsql://, got " +
               (scheme == std::string_view::npos ? std::string("no scheme")
                                                 : "\"" + Excerpt(url.substr(0, scheme), 16) + "://\""));
  }
  if (out.find_first_of("?#") != std::string::npos) {
    return bad("must not carry a query or fragment (put the token in auth_token, not in the url)");
  }
  const size_t host_begin = out.find("://") + 3;
  std::string_view authority = std::string_view(out).substr(host_begin);
  authority = authority.substr(0, authority.find('/'));
  if (authority.find('@') != std::string_view::npos) {
    return bad("must not carry user:password@ (put the token in auth_token)");
  }
  if (authority.empty() || authority.front() == ':') return bad("has no host");
  while (out.size() > host_begin && out.back() == '/') out.pop_back();
  constexpr std::string_view kPipeline = "/v2/pipeline";
  if (out.size() >= kPipeline.size() && std::string_view(out).substr(out.size() - kPipeline.size()) == kPipeline) {
    out.resize(out.size() - kPipeline.size());
  }
  while (out.size() > host_begin && out.back() == '/') out.pop_back();
  return out;
}

Status ValidateOptions(const HranaOptions& o) {
  auto bad = [](const std::string& what) { return InvalidArgumentError("turso options: " + what); };
  if (o.pool_size < 1 || o.pool_size > kMaxPoolSize) {
    return bad("pool_size must be in 1..1024, got " + std::to_string(o.pool_size));
  }
  if (o.connect_timeout.count() < 1) return bad("connect_timeout must be >= 1 ms");
  if (o.request_timeout.count() < 1) return bad("request_timeout must be >= 1 ms");
  if (o.max_retries < 0 || o.max_retries > 10) {
    return bad("max_retries must be in 0..10, got " + std::to_string(o.max_retries));
  }
  if (o.backoff.count() < 0 || o.backoff > kMaxBackoff) {
    return bad("backoff must be in 0..10000 ms, got " + std::to_string(o.backoff.count()));
  }
  // Never echo the token, not even here.
  if (HasControlChar(o.auth_token) || o.auth_token.find(' ') != std::string::npos) {
    return bad("auth_token holds spaces or control characters (a line break from a token file?)");
  }
  return ValidateCircuitBreakerOptions(CircuitBreakerOptions{o.breaker_failure_threshold, o.breaker_open_for},
                                       "turso options: breaker_");
}

// ---- Encoding ----------------------------------------------------------------------

// `where` names the argument in errors ("statement 2, argument 1").
Result<json> EncodeValue(const HranaValue& v, const std::string& where) {
  switch (v.type) {
    case HranaValue::Type::kNull:
      return json{{"type", "null"}};
    case HranaValue::Type::kInteger:
      return json{{"type", "integer"}, {"value", std::to_string(v.integer)}};
    case HranaValue::Type::kFloat:
      if (!std::isfinite(v.real)) return InvalidArgumentError(where + ": a float must be finite");
      return json{{"type", "float"}, {"value", v.real}};
    case HranaValue::Type::kText:
      if (!IsValidUtf8(v.bytes)) return InvalidArgumentError(where + ": text is not valid UTF-8");
      return json{{"type", "text"}, {"value", v.bytes}};
    case HranaValue::Type::kBlob:
      return json{{"type", "blob"}, {"base64", Base64Encode(v.bytes)}};
  }
  return InvalidArgumentError(where + ": unknown value type");
}

Result<json> EncodeStatement(std::string_view sql, const std::vector<HranaValue>& args, size_t index) {
  const std::string where = "statement " + std::to_string(index);
  if (sql.empty()) return InvalidArgumentError(where + ": empty SQL");
  if (!IsValidUtf8(sql)) return InvalidArgumentError(where + ": SQL is not valid UTF-8");
  json encoded_args = json::array();
  for (size_t i = 0; i < args.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(json value, EncodeValue(args[i], where + ", argument " + std::to_string(i + 1)));
    encoded_args.push_back(std::move(value));
  }
  return json{{"sql", std::string(sql)}, {"args", std::move(encoded_args)}, {"want_rows", true}};
}

// ---- Decoding ----------------------------------------------------------------------

Result<HranaValue> DecodeValue(const json& j) {
  if (!j.is_object()) return DataLossError("a value is a JSON " + TypeName(j) + ", not an object");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return DataLossError("a value has no \"type\" string");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "null") return HranaValue::Null();
  if (t == "integer") {
    auto value = j.find("value");
    if (value == j.end()) return DataLossError("an integer value has no \"value\"");
    if (value->is_number_integer()) {
      // Exact only when the JSON number fits int64 (nlohmann keeps an unsigned above it).
      if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t{INT64_MAX}) {
        return DataLossError("an integer value is out of the 64-bit range");
      }
      return HranaValue::Int(value->get<int64_t>());
    }
    if (!value->is_string()) return DataLossError("an integer value is a JSON " + TypeName(*value));
    const std::string& s = value->get_ref<const std::string&>();
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      return DataLossError("an integer value is not a 64-bit decimal: \"" + Excerpt(s, 24) + "\"");
    }
    return HranaValue::Int(n);
  }
  if (t == "float") {
    auto value = j.find("value");
    if (value == j.end()) return DataLossError("a float value has no \"value\"");
    if (value->is_null()) return DataLossError("a float value is null (an infinite or NaN result?)");
    if (!value->is_number()) return DataLossError("a float value is a JSON " + TypeName(*value));
    return HranaValue::Float(value->get<double>());
  }
  if (t == "text") {
    auto value = j.find("value");
    if (value == j.end() || !value->is_string()) return DataLossError("a text value has no \"value\" string");
    return HranaValue::Text(value->get_ref<const std::string&>());
  }
  if (t == "blob") {
    auto value = j.find("base64");
    if (value == j.end() || !value->is_string()) return DataLossError("a blob value has no \"base64\" string");
    std::optional<std::string> bytes = Base64Decode(value->get_ref<const std::string&>());
    if (!bytes) return DataLossError("a blob value is not base64");
    return HranaValue::Blob(*bytes);
  }
  return DataLossError("a value has unknown type \"" + Excerpt(t, 24) + "\"");
}

// An optional integer field ("affected_row_count", "last_insert_rowid"): a JSON number or
// a decimal string.
Result<std::optional<int64_t>> DecodeOptInt(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer() && !(it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX})) {
    return std::optional<int64_t>(it->get<int64_t>());
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return std::optional<int64_t>(n);
  }
  return DataLossError(std::string("\"") + field + "\" is not an integer");
}

Result<HranaResult> DecodeStmtResult(const json& j) {
  if (!j.is_object()) return DataLossError("a statement result is a JSON " + TypeName(j) + ", not an object");
  HranaResult out;
  auto cols = j.find("cols");
  if (cols == j.end() || !cols->is_array()) return DataLossError("a statement result has no \"cols\" array");
  out.columns.reserve(cols->size());
  for (const json& col : *cols) {
    if (!col.is_object()) return DataLossError("a column is a JSON " + TypeName(col) + ", not an object");
    auto name = col.find("name");
    if (name == col.end() || name->is_null()) {
      out.columns.emplace_back();
    } else if (name->is_string()) {
      out.columns.push_back(name->get<std::string>());
    } else {
      return DataLossError("a column name is a JSON " + TypeName(*name));
    }
  }
  auto rows = j.find("rows");
  if (rows == j.end() || !rows->is_array()) return DataLossError("a statement result has no \"rows\" array");
  out.rows.reserve(rows->size());
  for (const json& row : *rows) {
    if (!row.is_array()) return DataLossError("a row is a JSON " + TypeName(row) + ", not an array");
    if (row.size() != out.columns.size()) {
      return DataLossError("a row has " + std::to_string(row.size()) + " values for " +
                           std::to_string(out.columns.size()) + " columns");
    }
    std::vector<HranaValue> values;
    values.reserve(row.size());
    for (const json& cell : row) {
      ENGRAM_ASSIGN_OR_RETURN(HranaValue v, DecodeValue(cell));
      values.push_back(std::move(v));
    }
    out.rows.push_back(std::move(values));
  }
  ENGRAM_ASSIGN_OR_RETURN(std::optional<int64_t> affected, DecodeOptInt(j, "affected_row_count"));
  out.affected_rows = affected.value_or(0);
  ENGRAM_ASSIGN_OR_RETURN(out.last_insert_rowid, DecodeOptInt(j, "last_insert_rowid"));
  return out;
}

struct SqlErrorInfo {
  std::string message;
  std::string code;
};

Result<SqlErrorInfo> DecodeError(const json& j) {
  if (!j.is_object()) return DataLossError("an error is a JSON " + TypeName(j) + ", not an object");
  SqlErrorInfo e;
  auto message = j.find("message");
  if (message == j.end() || !message->is_string()) return DataLossError("an error has no \"message\" string");
  e.message = message->get<std::string>();
  auto code = j.find("code");
  if (code != j.end() && !code->is_null()) {
    if (!code->is_string()) return DataLossError("an error \"code\" is a JSON " + TypeName(*code));
    e.code = code->get<std::string>();
  }
  return e;
}

bool Contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// A SQL error the server reported for statement `index`, as the header's codes.
Status SqlErrorStatus(const SqlErrorInfo& e, std::string_view context) {
  std::string_view text = e.message;
  constexpr std::string_view kRuntime = "Runtime error: ";
  const bool runtime = text.starts_with(kRuntime);
  if (runtime) text.remove_prefix(kRuntime.size());
  const std::string message = std::string(context) + ": " + Excerpt(text, 400);
  const std::string_view code = e.code;
  if (Contains(text, "UNIQUE constraint failed") || Contains(text, "PRIMARY KEY constraint failed") ||
      code == "SQLITE_CONSTRAINT_UNIQUE" || code == "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return AlreadyExistsError(message);
  }
  if (Contains(text, "constraint failed") || code.starts_with("SQLITE_CONSTRAINT")) {
    return FailedPreconditionError(message);
  }
  if (Contains(text, "database is locked") || Contains(text, "database table is locked") ||
      Contains(text, "Database is busy") || code == "SQLITE_BUSY" || code == "SQLITE_LOCKED") {
    return UnavailableError(message);
  }
  // tursodb reports a trigger's RAISE(ABORT, msg) as a bare "Runtime error: msg", like the
  // engine's own runtime errors; those are told apart by their well-known wording.
  static constexpr std::string_view kEngineErrors[] = {
      "integer overflow", "no such ",      "datatype mismatch", "too big",     "out of memory",
      "disk I/O",         "malformed",     "interrupted",       "corrupt",     "cannot ",
      "not supported",    "unsupported",   "Parse error",       "syntax error", "misuse",
      "out of range",     "wrong number of arguments",          "too many ",   "not authorized"};
  if (runtime && std::none_of(std::begin(kEngineErrors), std::end(kEngineErrors),
                              [&](std::string_view w) { return Contains(text, w); })) {
    return FailedPreconditionError(message);
  }
  return InternalError(message);
}

// ---- HTTP --------------------------------------------------------------------------

struct ResponseBuffer {
  std::string body;
  bool overflow = false;
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* buffer = static_cast<ResponseBuffer*>(user);
  size_t n = size * count;
  if (buffer->body.size() + n > kMaxAnswerBytes) {
    buffer->overflow = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  buffer->body.append(data, n);
  return n;
}

// How one HTTP attempt ended.
struct Attempt {
  Status status;                  // OK: `doc` holds the parsed answer
  bool retryable = false;         // a failure a retry may cure
  bool surely_not_sent = false;   // the server cannot have run anything
  bool server_failure = true;     // counts towards opening the breaker
  json doc;
};

}  // namespace

// ---- HranaResult ---------------------------------------------------------------------

namespace {

std::string_view ValueTypeName(HranaValue::Type t) {
  switch (t) {
    case HranaValue::Type::kNull:
      return "null";
    case HranaValue::Type::kInteger:
      return "integer";
    case HranaValue::Type::kFloat:
      return "float";
    case HranaValue::Type::kText:
      return "text";
    case HranaValue::Type::kBlob:
      return "blob";
  }
  return "unknown";
}

Result<const HranaValue*> Cell(const HranaResult& r, size_t row, size_t col) {
  if (row >= r.rows.size()) {
    return DataLossError("no row " + std::to_string(row) + " (the result has " + std::to_string(r.rows.size()) +
                         ")");
  }
  if (col >= r.rows[row].size()) {
    return DataLossError("no column " + std::to_string(col) + " (the result has " +
                         std::to_string(r.rows[row].size()) + ")");
  }
  return &r.rows[row][col];
}

std::string ColumnName(const HranaResult& r, size_t col) {
  return col < r.columns.size() && !r.columns[col].empty() ? "\"" + r.columns[col] + "\""
                                                           : "#" + std::to_string(col);
}

Status WrongType(const HranaResult& r, size_t row, size_t col, std::string_view want, const HranaValue& got) {
  return DataLossError("column " + ColumnName(r, col) + " of row " + std::to_string(row) + " is " +
                       std::string(ValueTypeName(got.type)) + ", expected " + std::string(want));
}

}  // namespace

Result<int64_t> HranaResult::Int(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->type != HranaValue::Type::kInteger) return WrongType(*this, row, col, "integer", *v);
  return v->integer;
}

Result<std::optional<int64_t>> HranaResult::OptInt(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->is_null()) return std::optional<int64_t>();
  if (v->type != HranaValue::Type::kInteger) return WrongType(*this, row, col, "integer or null", *v);
  return std::optional<int64_t>(v->integer);
}

Result<double> HranaResult::Double(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->type == HranaValue::Type::kFloat) return v->real;
  if (v->type == HranaValue::Type::kInteger) return static_cast<double>(v->integer);
  return WrongType(*this, row, col, "float", *v);
}

Result<std::optional<double>> HranaResult::OptDouble(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->is_null()) return std::optional<double>();
  if (v->type == HranaValue::Type::kFloat) return std::optional<double>(v->real);
  if (v->type == HranaValue::Type::kInteger) return std::optional<double>(static_cast<double>(v->integer));
  return WrongType(*this, row, col, "float or null", *v);
}

Result<std::string> HranaResult::Text(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->type != HranaValue::Type::kText) return WrongType(*this, row, col, "text", *v);
  return v->bytes;
}

Result<std::optional<std::string>> HranaResult::OptText(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->is_null()) return std::optional<std::string>();
  if (v->type != HranaValue::Type::kText) return WrongType(*this, row, col, "text or null", *v);
  return std::optional<std::string>(v->bytes);
}

Result<std::string> HranaResult::Blob(size_t row, size_t col) const {
  ENGRAM_ASSIGN_OR_RETURN(const HranaValue* v, Cell(*this, row, col));
  if (v->type != HranaValue::Type::kBlob) return WrongType(*this, row, col, "blob", *v);
  return v->bytes;
}

size_t HranaBatch::Add(std::string sql, std::vector<HranaValue> args) {
  statements_.push_back(Statement{std::move(sql), std::move(args)});
  return statements_.size() - 1;
}

// ---- HranaClient -----------------------------------------------------------------------

struct HranaClient::Impl {
  Impl(const HranaOptions& o, std::string base, Clock& clock)
      : options(o),
        base_url(std::move(base)),
        pipeline_url(base_url + "/v2/pipeline"),
        where("turso " + base_url),
        breaker(CircuitBreakerOptions{o.breaker_failure_threshold, o.breaker_open_for}, clock),
        rng(std::random_device{}()) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    if (!o.auth_token.empty()) {
      headers = curl_slist_append(headers, ("Authorization: Bearer " + o.auth_token).c_str());
    }
  }

  ~Impl() {
    for (CURL* h : idle) curl_easy_cleanup(h);
    curl_slist_free_all(headers);
  }

  // `s` with the token scrubbed from its message (a server may echo headers back).
  Status Scrub(const Status& s) const {
    const std::string& token = options.auth_token;
    if (s.ok() || token.size() < 4) return s;
    std::string m(s.message());
    for (size_t at = m.find(token); at != std::string::npos; at = m.find(token, at)) {
      m.replace(at, token.size(), "[token]");
    }
    return Status(s.code(), m);
  }

  // Waits for a free slot of the pool (at most request_timeout); nullptr when none came.
  CURL* AcquireHandle() {
    MutexLock lock(pool_mu);
    const auto deadline = std::chrono::steady_clock::now() + options.request_timeout;
    while (in_use >= options.pool_size) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return nullptr;
      pool_cv.WaitFor(pool_mu, left);
    }
    CURL* h = nullptr;
    if (!idle.empty()) {
      h = idle.back();
      idle.pop_back();
    } else {
      h = curl_easy_init();
      if (h == nullptr) return nullptr;
    }
    ++in_use;
    return h;
  }

  void ReleaseHandle(CURL* h) {
    {
      MutexLock lock(pool_mu);
      --in_use;
      idle.push_back(h);  // at most pool_size handles ever exist
    }
    pool_cv.Signal();
  }

  // One HTTP POST of `body`; parses the answer into `doc`, checking it holds `expected`
  // results. Does not retry.
  Attempt PostOnce(const std::string& body, size_t expected) {
    Attempt a;
    CURL* h = AcquireHandle();
    if (h == nullptr) {
      a.status = UnavailableError(where + ": all " + std::to_string(options.pool_size) +
                                  " connections stayed busy for " + std::to_string(options.request_timeout.count()) +
                                  " ms");
      a.surely_not_sent = true;
      a.server_failure = false;
      return a;
    }
    requests_sent.fetch_add(1, std::memory_order_relaxed);
    ResponseBuffer response;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, pipeline_url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.request_timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long http_status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
    long request_size = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_size);
    // The handle must not keep pointers into this frame.
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    ReleaseHandle(h);

    if (rc != CURLE_OK) {
      if (response.overflow) {
        a.status = DataLossError(where + ": answer larger than " + std::to_string(kMaxAnswerBytes) + " bytes");
        return a;
      }
      std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        detail = "timed out (connect " + std::to_string(options.connect_timeout.count()) + " ms, request " +
                 std::to_string(options.request_timeout.count()) + " ms): " + detail;
      }
      a.status = UnavailableError(where + ": " + detail);
      switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
          a.retryable = true;
          a.surely_not_sent = true;
          break;
        case CURLE_OPERATION_TIMEDOUT:
          a.retryable = true;
          a.surely_not_sent = request_size == 0;
          break;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
          a.retryable = true;
          break;
        default:
          break;  // TLS, a bad URL, ...: a retry would fail the same way
      }
      return a;
    }
    if (http_status < 200 || http_status > 299) {
      std::string what = where + ": HTTP " + std::to_string(http_status);
      if (!response.body.empty()) what += ": " + Excerpt(response.body);
      if (http_status == 401 || http_status == 403) {
        a.status = PermissionDeniedError(what + " (a bad or missing auth token?)");
        a.server_failure = false;
      } else if (http_status == 429) {
        // Refused before it ran: safe to send again, batches included.
        a.status = UnavailableError(what);
        a.retryable = true;
        a.surely_not_sent = true;
      } else if (http_status >= 500 && Contains(response.body, "Failed to parse pipeline request")) {
        // tursodb's answer to a request it cannot read: the same request fails again.
        a.status = InternalError(what);
        a.server_failure = false;
      } else if (http_status >= 500) {
        a.status = UnavailableError(what);
        a.retryable = true;
      } else {
        // 404 (not a Hrana server at this URL), 400, ...: nothing a retry would fix.
        a.status = UnavailableError(what);
      }
      return a;
    }
    json doc = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      a.status = DataLossError(where + ": malformed answer, not JSON (" + std::to_string(response.body.size()) +
                               " bytes): " + Excerpt(response.body));
      return a;
    }
    auto bad = [&](const std::string& what) {
      return DataLossError(where + ": malformed answer: " + what + ": " + Excerpt(response.body));
    };
    if (!doc.is_object()) {
      a.status = bad("a JSON " + TypeName(doc) + ", not an object");
      return a;
    }
    auto results = doc.find("results");
    if (results == doc.end() || !results->is_array()) {
      a.status = bad("no \"results\" array");
      return a;
    }
    if (results->size() != expected) {
      a.status = bad(std::to_string(results->size()) + " results for " + std::to_string(expected) + " requests");
      return a;
    }
    a.doc = std::move(doc);
    return a;
  }

  std::chrono::milliseconds Backoff(int retry) {
    const auto base = std::min<std::chrono::milliseconds>(options.backoff * (int64_t{1} << std::min(retry, 16)),
                                                          kMaxBackoff);
    // Full range jitter in [base/2, base]: clients that failed together retry apart.
    MutexLock lock(rng_mu);
    std::uniform_int_distribution<int64_t> pick(base.count() / 2, base.count());
    return std::chrono::milliseconds(pick(rng));
  }

  // POSTs `request` with retries and the breaker. `idempotent`: a retry after the server
  // may have run it is harmless; otherwise only failures that surely never reached the
  // server are retried. Returns the answer's "results" array.
  Result<json> Post(const json& request, size_t expected, bool idempotent) {
    if (Status allowed = breaker.Allow(); !allowed.ok()) {
      return UnavailableError(where + ": " + std::string(allowed.message()));
    }
    // A server that opens a stream per request (it answers with a baton: sqld, Turso Cloud)
    // gets a "close" request at the end of each pipeline, so no stream lingers until it
    // expires. tursodb opens none and refuses "close", so it is only sent once a baton
    // has been seen.
    const bool close = close_streams.load(std::memory_order_relaxed);
    std::string body;
    if (close) {
      json with_close = request;
      with_close["requests"].push_back(json{{"type", "close"}});
      body = Dump(with_close);
    } else {
      body = Dump(request);
    }
    const int attempts = options.max_retries + 1;
    Attempt last;
    int made = 0;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (attempt > 1) std::this_thread::sleep_for(Backoff(attempt - 2));
      last = PostOnce(body, expected + (close ? 1 : 0));
      ++made;
      if (last.status.ok() || !last.retryable) break;
      if (!idempotent && !last.surely_not_sent) break;
    }
    if (last.status.ok()) {
      breaker.RecordSuccess();
      json results = std::move(last.doc["results"]);
      if (close) {
        results.erase(results.end() - 1);  // the close's own result: nothing in it to read
      } else if (auto baton = last.doc.find("baton"); baton != last.doc.end() && !baton->is_null()) {
        close_streams.store(true, std::memory_order_relaxed);
      }
      return results;
    }
    last.server_failure ? breaker.RecordFailure() : breaker.RecordSuccess();
    std::string message(last.status.message());
    if (made > 1) message += " (" + std::to_string(made) + " attempts)";
    if (!idempotent && !last.surely_not_sent && last.status.code() == StatusCode::kUnavailable) {
      message += "; outcome unknown: the batch may or may not have been committed";
    }
    return Scrub(Status(last.status.code(), message));
  }

  // The "response" of results[i], checked to be of `type` ("execute" or "batch"), or the
  // SQL error the server reported for it.
  Result<const json*> Response(const json& results, size_t i, std::string_view type, std::string_view context) {
    const json& r = results[i];
    auto bad = [&](const std::string& what) {
      return Scrub(DataLossError(where + ": malformed answer: result " + std::to_string(i) + ": " + what + ": " +
                                 Excerpt(Dump(r))));
    };
    if (!r.is_object()) return bad("a JSON " + TypeName(r) + ", not an object");
    auto t = r.find("type");
    if (t == r.end() || !t->is_string()) return bad("no \"type\" string");
    if (*t == "error") {
      auto e = r.find("error");
      if (e == r.end()) return bad("an error without \"error\"");
      Result<SqlErrorInfo> info = DecodeError(*e);
      if (!info.ok()) return bad(std::string(info.status().message()));
      return Scrub(SqlErrorStatus(*info, context));
    }
    if (*t != "ok") return bad("unknown type");
    auto response = r.find("response");
    if (response == r.end() || !response->is_object()) return bad("no \"response\" object");
    auto rt = response->find("type");
    if (rt == response->end() || !rt->is_string() || *rt != type) {
      return bad("the response is not of type \"" + std::string(type) + "\"");
    }
    auto result = response->find("result");
    if (result == response->end() || !result->is_object()) return bad("no \"result\" object");
    return &*result;
  }

  Result<HranaResult> DecodeChecked(const json& j, std::string_view context) {
    Result<HranaResult> r = DecodeStmtResult(j);
    if (!r.ok()) {
      return Scrub(DataLossError(where + ": malformed answer: " + std::string(context) + ": " +
                                 std::string(r.status().message())));
    }
    return r;
  }

  // One try of a batch request. `*busy`: it failed because the database was busy, so it
  // was rolled back whole and may be sent again.
  Result<std::vector<HranaResult>> RunBatchOnce(const json& request, size_t n, bool* busy) {
    *busy = false;
    ENGRAM_ASSIGN_OR_RETURN(json results, Post(request, 1, /*idempotent=*/false));
    ENGRAM_ASSIGN_OR_RETURN(const json* result, Response(results, 0, "batch", "batch"));
    auto bad = [&](const std::string& what) {
      return Scrub(DataLossError(where + ": malformed answer: batch: " + what + ": " + Excerpt(Dump(*result))));
    };
    const size_t steps = n + 3;  // BEGIN, the statements, COMMIT, ROLLBACK
    auto step_results = result->find("step_results");
    auto step_errors = result->find("step_errors");
    if (step_results == result->end() || !step_results->is_array() || step_results->size() != steps) {
      return bad("\"step_results\" is not an array of " + std::to_string(steps));
    }
    if (step_errors == result->end() || !step_errors->is_array() || step_errors->size() != steps) {
      return bad("\"step_errors\" is not an array of " + std::to_string(steps));
    }
    // The first failed step is the cause; the ROLLBACK step's own outcome does not matter.
    for (size_t s = 0; s + 1 < steps; ++s) {
      const json& e = (*step_errors)[s];
      if (e.is_null()) continue;
      Result<SqlErrorInfo> info = DecodeError(e);
      if (!info.ok()) return bad(std::string(info.status().message()));
      std::string context = s == 0       ? std::string("batch BEGIN")
                            : s == n + 1 ? std::string("batch COMMIT")
                                         : "batch statement " + std::to_string(s - 1);
      Status status = Scrub(SqlErrorStatus(*info, context));
      *busy = status.code() == StatusCode::kUnavailable;
      return status;
    }
    if ((*step_results)[n + 1].is_null()) return bad("COMMIT did not run yet no step failed");
    std::vector<HranaResult> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const json& r = (*step_results)[i + 1];
      if (r.is_null()) return bad("statement " + std::to_string(i) + " did not run yet no step failed");
      ENGRAM_ASSIGN_OR_RETURN(HranaResult decoded, DecodeChecked(r, "batch statement " + std::to_string(i)));
      out.push_back(std::move(decoded));
    }
    return out;
  }

  // Constant after construction.
  const HranaOptions options;
  const std::string base_url;
  const std::string pipeline_url;
  const std::string where;  // "turso <base_url>", the prefix of transport errors
  curl_slist* headers = nullptr;  // read by every request; freed in the destructor

  // Thread-safe members.
  CircuitBreaker breaker;
  std::atomic<int64_t> requests_sent{0};
  std::atomic<bool> close_streams{false};  // the server answered with a baton once

  // The pool: at most pool_size handles in use; idle ones keep their connection alive.
  Mutex pool_mu;
  CondVar pool_cv;
  size_t in_use ENGRAM_GUARDED_BY(pool_mu) = 0;
  std::vector<CURL*> idle ENGRAM_GUARDED_BY(pool_mu);

  Mutex rng_mu;
  std::mt19937_64 rng ENGRAM_GUARDED_BY(rng_mu);
};

Result<std::unique_ptr<HranaClient>> HranaClient::Open(const HranaOptions& options, Clock& clock) {
  ENGRAM_RETURN_IF_ERROR(ValidateOptions(options));
  ENGRAM_ASSIGN_OR_RETURN(std::string base, NormaliseUrl(options.url));
  GlobalCurlInit();
  return std::unique_ptr<HranaClient>(new HranaClient(std::make_unique<Impl>(options, std::move(base), clock)));
}

HranaClient::HranaClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HranaClient::~HranaClient() = default;

Result<HranaResult> HranaClient::Execute(std::string_view sql, std::vector<HranaValue> args) {
  ENGRAM_ASSIGN_OR_RETURN(json stmt, EncodeStatement(sql, args, 0));
  json request = {{"requests", json::array({json{{"type", "execute"}, {"stmt", std::move(stmt)}}})}};
  ENGRAM_ASSIGN_OR_RETURN(json results, impl_->Post(request, 1, /*idempotent=*/true));
  ENGRAM_ASSIGN_OR_RETURN(const json* result, impl_->Response(results, 0, "execute", "statement"));
  return impl_->DecodeChecked(*result, "statement");
}

Result<std::vector<HranaResult>> HranaClient::Batch(const HranaBatch& batch) {
  const size_t n = batch.size();
  if (n == 0) return std::vector<HranaResult>();
  json steps = json::array();
  steps.push_back(json{{"stmt", json{{"sql", "BEGIN IMMEDIATE"}}}});
  for (size_t i = 0; i < n; ++i) {
    const HranaBatch::Statement& s = batch.statements()[i];
    ENGRAM_ASSIGN_OR_RETURN(json stmt, EncodeStatement(s.sql, s.args, i));
    // Step i + 1 runs only if step i (BEGIN or the statement before) succeeded.
    steps.push_back(json{{"stmt", std::move(stmt)}, {"condition", json{{"type", "ok"}, {"step", i}}}});
  }
  steps.push_back(json{{"stmt", json{{"sql", "COMMIT"}}}, {"condition", json{{"type", "ok"}, {"step", n}}}});
  steps.push_back(json{{"stmt", json{{"sql", "ROLLBACK"}}},
                       {"condition", json{{"type", "not"}, {"cond", json{{"type", "ok"}, {"step", n + 1}}}}}});
  json request = {{"requests", json::array({json{{"type", "batch"}, {"batch", json{{"steps", std::move(steps)}}}}})}};

  // A batch that failed on a busy database was rolled back whole (COMMIT never succeeded),
  // so sending it again is safe.
  bool busy = false;
  Result<std::vector<HranaResult>> out = impl_->RunBatchOnce(request, n, &busy);
  for (int retry = 0; busy && retry < impl_->options.max_retries; ++retry) {
    std::this_thread::sleep_for(impl_->Backoff(retry));
    out = impl_->RunBatchOnce(request, n, &busy);
  }
  return out;
}

Result<std::vector<HranaResult>> HranaClient::ExecuteMany(const HranaBatch& statements) {
  const size_t n = statements.size();
  if (n == 0) return std::vector<HranaResult>();
  json requests = json::array();
  for (size_t i = 0; i < n; ++i) {
    const HranaBatch::Statement& s = statements.statements()[i];
    ENGRAM_ASSIGN_OR_RETURN(json stmt, EncodeStatement(s.sql, s.args, i));
    requests.push_back(json{{"type", "execute"}, {"stmt", std::move(stmt)}});
  }
  ENGRAM_ASSIGN_OR_RETURN(json results, impl_->Post(json{{"requests", std::move(requests)}}, n, /*idempotent=*/true));
  std::vector<HranaResult> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string context = "statement " + std::to_string(i);
    ENGRAM_ASSIGN_OR_RETURN(const json* result, impl_->Response(results, i, "execute", context));
    ENGRAM_ASSIGN_OR_RETURN(HranaResult decoded, impl_->DecodeChecked(*result, context));
    out.push_back(std::move(decoded));
  }
  return out;
}

const std::string& HranaClient::base_url() const { return impl_->base_url; }
int64_t HranaClient::requests_sent() const { return impl_->requests_sent.load(std::memory_order_relaxed); }
bool HranaClient::breaker_open() const { return impl_->breaker.state() == CircuitState::kOpen; }

}  // namespace engram::turso
