#include "config/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <utility>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "common/strings.h"

namespace engram {
namespace {

using Getenv = std::function<const char*(const char*)>;

constexpr std::string_view kEnvPrefix = "ENGRAM_";
constexpr std::string_view kConfigEnvVar = "ENGRAM_CONFIG";
constexpr int64_t kMinBusyTimeoutMs = 1;
constexpr int64_t kMaxBusyTimeoutMs = 600000;
constexpr int64_t kDefaultMaxBodyBytes = 4 << 20;
constexpr int64_t kMinBodyBytes = 1024;
constexpr int64_t kMaxBodyBytes = int64_t{1} << 30;
constexpr int64_t kMaxToolCalls = 1'000'000'000;
constexpr int64_t kMaxCacheEntries = 100'000'000;
constexpr int64_t kMaxCacheTtlSeconds = 365 * 24 * 3600;
constexpr int64_t kMaxPoolSize = 1000;

// What a TOML value must be; environment and flag values are text parsed per key.
enum class KeyType { kString, kInteger, kNumber };

// Whether a running `engram serve` applies a new value on reload (SIGHUP or a change of the
// config file), or only a restart does (the store, the listening address, registered tools).
enum class Reload { kLive, kRestart };

// One row of the key table.
struct KeyDef {
  std::string_view key;
  KeyType type;
  Reload reload;
  std::string_view env_alias;  // a short extra variable besides ENGRAM_<KEY>; may be empty
  std::string_view description;
  // The default as text. It may depend on the environment (XDG directories), so it is
  // computed only when no source sets the key.
  Result<std::string> (*default_value)(const Getenv& getenv);
  // Parses `text` into its field of `config`. Errors: kInvalidArgument, without the key or
  // source (the caller adds both).
  Status (*apply)(std::string_view text, const Getenv& getenv, Config& config);
  // The field's value as canonical text, as `config show` prints it.
  std::string (*show)(const Config& config);
};

// nullopt for unset or empty variables: an empty variable means "not set" to most tools.
std::optional<std::string> GetEnv(const Getenv& getenv, const std::string& name) {
  const char* value = getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// XDG base directories must be absolute; relative values are ignored (XDG spec).
std::optional<std::string> XdgDir(const Getenv& getenv, const char* xdg_var, std::string_view home_suffix) {
  std::optional<std::string> dir = GetEnv(getenv, xdg_var);
  if (dir.has_value() && dir->front() == '/') return dir;
  std::optional<std::string> home = GetEnv(getenv, "HOME");
  if (!home.has_value()) return std::nullopt;
  return *home + std::string(home_suffix);
}

Result<std::string> ExpandHome(std::string_view path, const Getenv& getenv) {
  if (path != "~" && !path.starts_with("~/")) return std::string(path);
  std::optional<std::string> home = GetEnv(getenv, "HOME");
  if (!home.has_value()) return InvalidArgumentError("cannot expand \"~\": HOME is not set");
  return *home + std::string(path.substr(1));
}

// Shortest text that reads back as `value` ("0.35", "30").
std::string FormatNumber(double value) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

Result<int64_t> ParseIntInRange(std::string_view text, int64_t min, int64_t max) {
  std::string_view t = StripAsciiWhitespace(text);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec == std::errc::invalid_argument || end != t.data() + t.size()) {
    return InvalidArgumentError("expected an integer, got \"" + std::string(text.substr(0, 64)) + "\"");
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    return InvalidArgumentError("must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                ", got " + std::string(t.substr(0, 64)));
  }
  return value;
}

Result<double> ParseNumberInRange(std::string_view text, double min, double max) {
  std::string t(StripAsciiWhitespace(text));
  char* end = nullptr;
  double value = t.empty() ? 0 : std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(value)) {
    return InvalidArgumentError("expected a number, got \"" + std::string(text.substr(0, 64)) + "\"");
  }
  if (value < min || value > max) {
    return InvalidArgumentError("must be between " + FormatNumber(min) + " and " + FormatNumber(max) + ", got " +
                                t.substr(0, 64));
  }
  return value;
}

// `text` (trimmed, lower-cased) when it is one of `choices`; else an error listing them.
Result<std::string> ParseChoice(std::string_view text, std::initializer_list<std::string_view> choices) {
  std::string value = AsciiLower(StripAsciiWhitespace(text));
  std::string listed;
  size_t i = 0;
  for (std::string_view choice : choices) {
    if (value == choice) return value;
    listed += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string(choice);
    ++i;
  }
  return InvalidArgumentError("expected " + listed + ", got \"" + std::string(text.substr(0, 64)) + "\"");
}

Result<bool> ParseBool(std::string_view text) {
  std::string value = AsciiLower(StripAsciiWhitespace(text));
  if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "0" || value == "no" || value == "off") return false;
  return InvalidArgumentError("expected \"true\" or \"false\", got \"" + std::string(text.substr(0, 64)) + "\"");
}

// server.http: empty, or HOST:PORT with a port 0-65535 ("[::1]:8765" for IPv6 hosts).
Status CheckHostPort(std::string_view address) {
  if (address.empty()) return OkStatus();
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("expected HOST:PORT such as 127.0.0.1:8765, got \"" +
                                std::string(address.substr(0, 64)) + "\" (" + std::string(why) + ")");
  };
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (host.empty()) return bad("no host");
  if (host.find(':') != std::string_view::npos && !(host.front() == '[' && host.back() == ']')) {
    return bad("write IPv6 addresses in brackets");
  }
  if (port.empty() || port.size() > 5) return bad("bad port");
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad("bad port");
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return bad("port above 65535");
  return OkStatus();
}

// `url` with the password of its user info ("postgres://me:secret@host") and any
// `password=` query parameter replaced by "********", for `config show`.
std::string MaskUrlPassword(std::string_view url) {
  std::string out(url);
  size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    size_t start = scheme + 3;
    size_t end = out.find_first_of("/?#", start);
    if (end == std::string::npos) end = out.size();
    size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "********");
    }
  }
  size_t query = out.find('?');
  for (size_t pos = query; pos != std::string::npos && pos < out.size(); pos = out.find('&', pos + 1)) {
    std::string_view param = std::string_view(out).substr(pos + 1);
    if (param.starts_with("password=")) {
      size_t value = pos + 1 + 9;
      size_t value_end = out.find('&', value);
      if (value_end == std::string::npos) value_end = out.size();
      out.replace(value, value_end - value, "********");
    }
  }
  return out;
}

// Names as ParseLogLevel/ParseLogFormat accept them; logging.h has no public inverse.
std::string_view LogLevelText(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "info";
}

std::string_view LogFormatText(LogFormat format) {
  switch (format) {
    case LogFormat::kAuto: return "auto";
    case LogFormat::kText: return "text";
    case LogFormat::kJson: return "json";
  }
  return "auto";
}


// Rows for plain numeric, integer, text and boolean fields of Config.
#define ENGRAM_NUMBER_KEY(NAME, RELOAD, FIELD, DEFAULT, MIN, MAX, DESCRIPTION)                      \
  {NAME, KeyType::kNumber, RELOAD, "", DESCRIPTION,                                                 \
   [](const Getenv&) -> Result<std::string> { return std::string(DEFAULT); },                       \
   [](std::string_view text, const Getenv&, Config& config) -> Status {                             \
     ENGRAM_ASSIGN_OR_RETURN(config.FIELD, ParseNumberInRange(text, MIN, MAX));                     \
     return OkStatus();                                                                             \
   },                                                                                               \
   [](const Config& config) { return FormatNumber(config.FIELD); }}
#define ENGRAM_INTEGER_KEY(NAME, RELOAD, FIELD, DEFAULT, MIN, MAX, DESCRIPTION)                     \
  {NAME, KeyType::kInteger, RELOAD, "", DESCRIPTION,                                                \
   [](const Getenv&) -> Result<std::string> { return std::string(DEFAULT); },                       \
   [](std::string_view text, const Getenv&, Config& config) -> Status {                             \
     ENGRAM_ASSIGN_OR_RETURN(config.FIELD, ParseIntInRange(text, MIN, MAX));                        \
     return OkStatus();                                                                             \
   },                                                                                               \
   [](const Config& config) { return std::to_string(config.FIELD); }}
#define ENGRAM_TEXT_KEY(NAME, RELOAD, FIELD, DEFAULT, DESCRIPTION)                                  \
  {NAME, KeyType::kString, RELOAD, "", DESCRIPTION,                                                 \
   [](const Getenv&) -> Result<std::string> { return std::string(DEFAULT); },                       \
   [](std::string_view text, const Getenv&, Config& config) -> Status {                             \
     config.FIELD = std::string(StripAsciiWhitespace(text));                                        \
     return OkStatus();                                                                             \
   },                                                                                               \
   [](const Config& config) { return config.FIELD; }}
#define ENGRAM_BOOL_KEY(NAME, RELOAD, FIELD, DEFAULT, DESCRIPTION)                                  \
  {NAME, KeyType::kString, RELOAD, "", DESCRIPTION,                                                 \
   [](const Getenv&) -> Result<std::string> { return std::string(DEFAULT); },                       \
   [](std::string_view text, const Getenv&, Config& config) -> Status {                             \
     ENGRAM_ASSIGN_OR_RETURN(config.FIELD, ParseBool(text));                                        \
     return OkStatus();                                                                             \
   },                                                                                               \
   [](const Config& config) { return std::string(config.FIELD ? "true" : "false"); }}

// The key table. Every key is settable from the file, ENGRAM_<KEY> and --set.
const KeyDef kKeys[] = {
    {"storage.db", KeyType::kString, Reload::kRestart, "ENGRAM_DB", "path of the SQLite database file",
     [](const Getenv& getenv) -> Result<std::string> {
       std::optional<std::string> dir = XdgDir(getenv, "XDG_DATA_HOME", "/.local/share");
       if (!dir.has_value()) {
         return FailedPreconditionError(
             "storage.db: no default location: neither XDG_DATA_HOME nor HOME is set; set "
             "ENGRAM_DB or pass --db");
       }
       return *dir + "/engram/memory.db";
     },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) return InvalidArgumentError("must not be empty");
       ENGRAM_ASSIGN_OR_RETURN(config.db_path, ExpandHome(text, getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.db_path; }},

    {"storage.durability", KeyType::kString, Reload::kRestart, "",
     "full: fsync every commit (survives power loss); normal: survives a process crash only",
     [](const Getenv&) -> Result<std::string> { return std::string("full"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.durability, ParseDurability(text));
       return OkStatus();
     },
     [](const Config& config) { return std::string(DurabilityName(config.durability)); }},

    {"storage.busy_timeout_ms", KeyType::kInteger, Reload::kRestart, "",
     "how long a write waits for another process's lock before failing, in milliseconds",
     [](const Getenv&) -> Result<std::string> { return std::string("10000"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(int64_t ms, ParseIntInRange(text, kMinBusyTimeoutMs, kMaxBusyTimeoutMs));
       config.busy_timeout = std::chrono::milliseconds(ms);
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.busy_timeout.count()); }},

    {"storage.url", KeyType::kString, Reload::kRestart, "ENGRAM_STORE",
     "postgres://user@host/db to keep memory in PostgreSQL, libsql://db.turso.io in Turso, instead of "
     "storage.db; empty: SQLite",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       std::string_view url = StripAsciiWhitespace(text);
       // The value may hold a password: errors never repeat it.
       if (!url.empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") &&
           !url.starts_with("libsql://") && !url.starts_with("https://") && !url.starts_with("http://")) {
         return InvalidArgumentError(
             "expected a postgres:// or postgresql:// URL (PostgreSQL), a libsql://, https:// or http:// URL "
             "(Turso), or empty for the SQLite file in storage.db");
       }
       config.store_url = std::string(url);
       return OkStatus();
     },
     [](const Config& config) { return MaskUrlPassword(config.store_url); }},

    {"storage.password_file", KeyType::kString, Reload::kRestart, "",
     "file whose first line is the PostgreSQL password (else the URL's, PGPASSWORD or ~/.pgpass)",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) {
         config.password_file.clear();
         return OkStatus();
       }
       ENGRAM_ASSIGN_OR_RETURN(config.password_file, ExpandHome(text, getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.password_file; }},

    {"storage.turso_token", KeyType::kString, Reload::kRestart, "ENGRAM_TURSO_TOKEN",
     "auth token of a Turso store (storage.url libsql://...); storage.turso_token_file wins when set",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       config.turso_token = std::string(StripAsciiWhitespace(text));
       return OkStatus();
     },
     [](const Config& config) { return config.turso_token.empty() ? std::string() : std::string("********"); }},

    {"storage.turso_token_file", KeyType::kString, Reload::kRestart, "",
     "file whose first line is the auth token of a Turso store (wins over storage.turso_token)",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) {
         config.turso_token_file.clear();
         return OkStatus();
       }
       ENGRAM_ASSIGN_OR_RETURN(config.turso_token_file, ExpandHome(text, getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.turso_token_file; }},

    {"storage.pool_size", KeyType::kInteger, Reload::kRestart, "",
     "PostgreSQL connections (Turso: requests in flight) each engram process keeps at most; more callers wait",
     [](const Getenv&) -> Result<std::string> { return std::string("10"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.pool_size, ParseIntInRange(text, 1, kMaxPoolSize));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.pool_size); }},

    ENGRAM_BOOL_KEY("storage.full_text_in_memory", Reload::kRestart, full_text_in_memory, "true",
                    "\"true\": a SQLite store's full-text index is also kept in memory, answering searches 15-20 "
                    "times faster (~29 MiB at 100k episodes, ~264 MiB at 1M); \"false\": searched on disk (FTS5) only"),

    ENGRAM_BOOL_KEY("cache.enabled", Reload::kRestart, cache_enabled, "true",
                    "\"true\": keep recently read episodes in an LMDB cache beside the store, shared by every engram "
                    "process (every writer of the store must use it); \"false\": read the store every time"),

    {"cache.max_entries", KeyType::kInteger, Reload::kLive, "",
     "most episodes the cache keeps; past it the least recently used go (0: only its size bound applies)",
     [](const Getenv&) -> Result<std::string> { return std::string("10000"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.cache_max_entries, ParseIntInRange(text, 0, kMaxCacheEntries));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.cache_max_entries); }},

    {"cache.ttl_seconds", KeyType::kInteger, Reload::kLive, "",
     "seconds a cached episode is served before it is read from the store again (0: until a write changes it)",
     [](const Getenv&) -> Result<std::string> { return std::string("3600"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(int64_t seconds, ParseIntInRange(text, 0, kMaxCacheTtlSeconds));
       config.cache_ttl = std::chrono::seconds(seconds);
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.cache_ttl.count()); }},

    {"log.level", KeyType::kString, Reload::kLive, "",
     "least severe log level written to stderr: trace, debug, info, warn, error or off",
     [](const Getenv&) -> Result<std::string> { return std::string("info"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.log_level, ParseLogLevel(text));
       return OkStatus();
     },
     [](const Config& config) { return std::string(LogLevelText(config.log_level)); }},

    {"log.format", KeyType::kString, Reload::kLive, "",
     "log line format: auto (text on a terminal, JSON otherwise), text or json",
     [](const Getenv&) -> Result<std::string> { return std::string("auto"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.log_format, ParseLogFormat(text));
       return OkStatus();
     },
     [](const Config& config) { return std::string(LogFormatText(config.log_format)); }},

    {"server.http", KeyType::kString, Reload::kRestart, "",
     "HOST:PORT where `engram serve` listens for Streamable HTTP; empty serves stdio",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       std::string_view address = StripAsciiWhitespace(text);
       ENGRAM_RETURN_IF_ERROR(CheckHostPort(address));
       config.server_http = std::string(address);
       return OkStatus();
     },
     [](const Config& config) { return config.server_http; }},

    {"server.max_body_bytes", KeyType::kInteger, Reload::kRestart, "",
     "largest HTTP request body accepted, in bytes; larger ones are answered 413",
     [](const Getenv&) -> Result<std::string> { return std::to_string(kDefaultMaxBodyBytes); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.max_body_bytes, ParseIntInRange(text, kMinBodyBytes, kMaxBodyBytes));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.max_body_bytes); }},

    ENGRAM_NUMBER_KEY("server.rate_limit", Reload::kLive, rate_limit, "0", 0.0, 1e6,
                      "HTTP requests per second allowed per API key (per client address without keys); 0: no limit"),
    ENGRAM_INTEGER_KEY("server.rate_limit_burst", Reload::kLive, rate_limit_burst, "20", 1, 1000000,
                       "requests a client may make at once above server.rate_limit before it gets 429"),

    {"auth.keys_file", KeyType::kString, Reload::kLive, "",
     "path of the API keys file (hashed keys for the HTTP transport; see `engram keys`)",
     [](const Getenv& getenv) -> Result<std::string> {
       // Unlike storage.db this is not needed by every command, so no HOME is no error here;
       // the key commands report the empty path when they need it.
       std::optional<std::string> dir = XdgDir(getenv, "XDG_CONFIG_HOME", "/.config");
       if (!dir.has_value()) return std::string();
       return *dir + "/engram/api_keys.json";
     },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) {
         config.keys_file.clear();
         return OkStatus();
       }
       ENGRAM_ASSIGN_OR_RETURN(config.keys_file, ExpandHome(text, getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.keys_file; }},

    {"tools.disclosure", KeyType::kString, Reload::kLive, "",
     "progressive: tools/list grows with use (beginner, advanced, expert); all: every tool from the start",
     [](const Getenv&) -> Result<std::string> { return std::string("progressive"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       std::string value = AsciiLower(StripAsciiWhitespace(text));
       if (value != "progressive" && value != "all") {
         return InvalidArgumentError("unknown disclosure \"" + std::string(text.substr(0, 64)) +
                                     "\" (expected progressive or all)");
       }
       config.tools_disclosure = value;
       return OkStatus();
     },
     [](const Config& config) { return config.tools_disclosure; }},

    {"tools.advanced_after_calls", KeyType::kInteger, Reload::kLive, "",
     "successful tool calls after which a session's tools/list adds the advanced tools",
     [](const Getenv&) -> Result<std::string> { return std::string("3"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.tools_advanced_after_calls, ParseIntInRange(text, 0, kMaxToolCalls));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.tools_advanced_after_calls); }},

    {"tools.expert_after_calls", KeyType::kInteger, Reload::kLive, "",
     "successful tool calls after which a session's tools/list shows every tool",
     [](const Getenv&) -> Result<std::string> { return std::string("10"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.tools_expert_after_calls, ParseIntInRange(text, 0, kMaxToolCalls));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.tools_expert_after_calls); }},

    ENGRAM_BOOL_KEY("sandbox.enabled", Reload::kRestart, sandbox_enabled, "true",
                    "\"true\": offer execute_code (expert tier) when every sandbox layer works on this host; \"false\": never"),

    {"sandbox.max_timeout_ms", KeyType::kInteger, Reload::kLive, "",
     "largest wall-clock limit an execute_code call may ask for, in milliseconds",
     [](const Getenv&) -> Result<std::string> { return std::string("30000"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.sandbox_max_timeout_ms, ParseIntInRange(text, 100, 600000));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.sandbox_max_timeout_ms); }},

    {"sandbox.max_memory_mb", KeyType::kInteger, Reload::kLive, "",
     "largest memory limit an execute_code call may ask for, in MiB",
     [](const Getenv&) -> Result<std::string> { return std::string("512"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.sandbox_max_memory_mb, ParseIntInRange(text, 16, 65536));
       return OkStatus();
     },
     [](const Config& config) { return std::to_string(config.sandbox_max_memory_mb); }},

    ENGRAM_BOOL_KEY("redaction.enabled", Reload::kRestart, redaction.enabled, "true",
                    "\"true\": secrets in stored text are redacted (or refused, see redaction.mode); \"false\": stored as given"),

    {"redaction.mode", KeyType::kString, Reload::kRestart, "",
     "redact: replace each secret with [REDACTED:kind]; reject: refuse the write, naming the field and the kind",
     [](const Getenv&) -> Result<std::string> { return std::string("redact"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(std::string mode, ParseChoice(text, {"redact", "reject"}));
       config.redaction.mode = mode == "redact" ? RedactionMode::kRedact : RedactionMode::kReject;
       return OkStatus();
     },
     [](const Config& config) { return std::string(RedactionModeName(config.redaction.mode)); }},

    {"redaction.allow", KeyType::kString, Reload::kRestart, "",
     "comma-separated exact texts never redacted, e.g. documentation example keys",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       config.redaction.allow = SplitAndTrim(text, ',');
       return OkStatus();
     },
     [](const Config& config) {
       std::string out;
       for (const std::string& entry : config.redaction.allow) out += (out.empty() ? "" : ",") + entry;
       return out;
     }},

    {"redaction.extra_patterns", KeyType::kString, Reload::kRestart, "",
     "comma-separated KIND:PREFIX token shapes to redact too, e.g. acme_key:acme_live_ (PREFIX + 8 or more of "
     "[A-Za-z0-9_-])",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       std::vector<ExtraSecretPrefix> extras;
       for (const std::string& entry : SplitAndTrim(text, ',')) {
         size_t colon = entry.find(':');
         std::string kind = colon == std::string::npos ? std::string() : entry.substr(0, colon);
         std::string prefix = colon == std::string::npos ? std::string() : entry.substr(colon + 1);
         bool kind_ok = !kind.empty() && kind.size() <= 64 &&
                        std::all_of(kind.begin(), kind.end(), [](char c) {
                          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                        });
         if (!kind_ok || prefix.empty()) {
           return InvalidArgumentError("expected KIND:PREFIX entries with KIND of [a-z0-9_], got \"" +
                                       entry.substr(0, 64) + "\"");
         }
         extras.push_back(ExtraSecretPrefix{std::move(kind), std::move(prefix)});
       }
       config.redaction.extra_prefixes = std::move(extras);
       return OkStatus();
     },
     [](const Config& config) {
       std::string out;
       for (const ExtraSecretPrefix& e : config.redaction.extra_prefixes) {
         out += (out.empty() ? "" : ",") + e.kind + ":" + e.prefix;
       }
       return out;
     }},

    ENGRAM_NUMBER_KEY("retrieval.weight_semantic", Reload::kLive, retrieval.weight_semantic, "0.2", 0.0, 100.0,
                      "query_memory: weight of embedding similarity"),
    ENGRAM_NUMBER_KEY("retrieval.weight_lexical", Reload::kLive, retrieval.weight_lexical, "0.7", 0.0, 100.0,
                      "query_memory: weight of full-text (BM25) match"),
    ENGRAM_NUMBER_KEY("retrieval.weight_context", Reload::kLive, retrieval.weight_context, "0.15", 0.0, 100.0,
                      "query_memory: weight of domain / task type / language / framework / tag match"),
    ENGRAM_NUMBER_KEY("retrieval.weight_reward", Reload::kLive, retrieval.weight_reward, "0.1", 0.0, 100.0,
                      "query_memory: weight of the episode's reward"),
    ENGRAM_NUMBER_KEY("retrieval.weight_recency", Reload::kLive, retrieval.weight_recency, "0.05", 0.0, 100.0,
                      "query_memory: weight of recency"),
    ENGRAM_INTEGER_KEY("retrieval.recency_half_life_days", Reload::kLive, retrieval.recency_half_life_days, "30", 1, 36500,
                       "days after which an episode's recency score halves"),
    ENGRAM_NUMBER_KEY("retrieval.mmr_lambda", Reload::kLive, retrieval.mmr_lambda, "0.7", 0.0, 1.0,
                      "relevance vs diversity of results (1: relevance only)"),
    ENGRAM_INTEGER_KEY("retrieval.cache_entries", Reload::kLive, retrieval.cache_entries, "256", 0, 1000000,
                       "query results kept until a write changes the store (0: no query cache)"),
    ENGRAM_INTEGER_KEY("retrieval.lexical_candidates", Reload::kLive, retrieval.lexical_candidates, "50", 0, 10000,
                       "full-text hits considered per query"),
    ENGRAM_INTEGER_KEY("retrieval.vector_candidates", Reload::kLive, retrieval.vector_candidates, "50", 0, 10000,
                       "nearest-neighbour hits considered per query"),
    ENGRAM_INTEGER_KEY("retrieval.exact_below", Reload::kRestart, retrieval.exact_below, "5000", 0, 100000000,
                       "the vector index scans exactly below this many vectors and uses HNSW above"),
    {"retrieval.vector_encoding", KeyType::kString, Reload::kRestart, "",
     "how the HNSW graph keeps vectors: int8 (a byte per dimension, about half the memory) or float32 (exact cosines)",
     [](const Getenv&) -> Result<std::string> { return std::string("int8"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.retrieval.vector_encoding, ParseChoice(text, {"int8", "float32"}));
       return OkStatus();
     },
     [](const Config& config) { return config.retrieval.vector_encoding; }},
    ENGRAM_NUMBER_KEY("retrieval.weight_concepts", Reload::kLive, retrieval.weight_concepts, "0.35", 0.0, 100.0,
                      "query_memory: weight of the software-engineering concept map's synonyms (0: off)"),
    ENGRAM_NUMBER_KEY("retrieval.weight_wordnet", Reload::kLive, retrieval.weight_wordnet, "0", 0.0, 100.0,
                      "query_memory: weight of WordNet synonyms of the query's plain words (0: off; "
                      "needs retrieval.wordnet_dir)"),
    {"retrieval.concepts_file", KeyType::kString, Reload::kRestart, "",
     "a concept file (docs/concepts.md) merged into the built-in concept map; empty: none",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) {
         config.retrieval.concepts_file.clear();
         return OkStatus();
       }
       ENGRAM_ASSIGN_OR_RETURN(config.retrieval.concepts_file, ExpandHome(StripAsciiWhitespace(text), getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.retrieval.concepts_file; }},
    {"retrieval.wordnet_dir", KeyType::kString, Reload::kRestart, "",
     "folder of the WordNet database (Debian wordnet-base: /usr/share/wordnet); empty (the default): no WordNet "
     "expansion",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       if (StripAsciiWhitespace(text).empty()) {
         config.retrieval.wordnet_dir.clear();
         return OkStatus();
       }
       ENGRAM_ASSIGN_OR_RETURN(config.retrieval.wordnet_dir, ExpandHome(StripAsciiWhitespace(text), getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.retrieval.wordnet_dir; }},
    ENGRAM_INTEGER_KEY("retrieval.wordnet_senses", Reload::kRestart, retrieval.wordnet_senses, "1", 1, 5,
                       "WordNet senses expanded per part of speech (the most frequent first)"),
    ENGRAM_NUMBER_KEY("retrieval.vector_expansion", Reload::kLive, retrieval.vector_expansion, "1", 0.0, 10.0,
                      "query_memory: weight of the concept map's alternatives added to the query's vector (0: off)"),
    {"embedding.provider", KeyType::kString, Reload::kRestart, "",
     "embedding provider: hashing (built in, no network), use (the local Universal Sentence Encoder lite "
     "model; falls back to hashing if it cannot start), http (an OpenAI-compatible /v1/embeddings) or none",
     [](const Getenv&) -> Result<std::string> { return std::string("hashing"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.embedding.provider, ParseChoice(text, {"hashing", "use", "http", "none"}));
       return OkStatus();
     },
     [](const Config& config) { return config.embedding.provider; }},
    ENGRAM_INTEGER_KEY("embedding.dimension", Reload::kRestart, embedding.dimension, "256", 0, 4096,
                       "vector length (hashing: 16-4096; http: the length the server returns, 0: any)"),
    ENGRAM_TEXT_KEY("embedding.url", Reload::kRestart, embedding.url, "", "http provider: URL of the /v1/embeddings endpoint"),
    ENGRAM_TEXT_KEY("embedding.model", Reload::kRestart, embedding.model, "", "http provider: model name sent with each request"),
    {"embedding.api_key_file", KeyType::kString, Reload::kRestart, "",
     "http provider: file whose first line is the API key (never logged)",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.embedding.api_key_file, ExpandHome(StripAsciiWhitespace(text), getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.embedding.api_key_file; }},
    {"embedding.model_dir", KeyType::kString, Reload::kRestart, "",
     "use provider: folder of the model files (model.json, shards, vocab.json); empty: the one "
     "scripts/install-deps fills under models/",
     [](const Getenv&) -> Result<std::string> { return std::string(); },
     [](std::string_view text, const Getenv& getenv, Config& config) -> Status {
       ENGRAM_ASSIGN_OR_RETURN(config.embedding.model_dir, ExpandHome(StripAsciiWhitespace(text), getenv));
       return OkStatus();
     },
     [](const Config& config) { return config.embedding.model_dir; }},
    {"embedding.document_text", KeyType::kString, Reload::kRestart, "",
     "what of an episode is embedded: full (task, steps, outcome, reflection), task, task+outcome or "
     "task+lessons, optionally followed by +concepts (the concept map's alternatives of the terms it names); "
     "changing it needs `engram reindex`",
     [](const Getenv&) -> Result<std::string> { return std::string("full"); },
     [](std::string_view text, const Getenv&, Config& config) -> Status {
       // The names of retrieval/episode_text.h (ParseDocumentTextOptions), which config does
       // not link; OpenRetrieval parses the value again.
       std::string value = AsciiLower(StripAsciiWhitespace(text));
       std::string_view base = value;
       if (base.ends_with("+concepts")) base.remove_suffix(std::string_view("+concepts").size());
       if (base != "full" && base != "task" && base != "task+outcome" && base != "task+lessons") {
         return InvalidArgumentError("expected full, task, task+outcome or task+lessons, optionally followed by "
                                     "+concepts, got \"" + std::string(text.substr(0, 64)) + "\"");
       }
       config.embedding.document_text = value;
       return OkStatus();
     },
     [](const Config& config) { return config.embedding.document_text; }},
    ENGRAM_INTEGER_KEY("embedding.timeout_ms", Reload::kRestart, embedding.timeout_ms, "5000", 10, 600000,
                       "http provider: timeout of one request, connect included"),
    ENGRAM_INTEGER_KEY("embedding.batch_size", Reload::kRestart, embedding.batch_size, "32", 1, 2048, "http provider: texts per request"),
    ENGRAM_INTEGER_KEY("embedding.max_retries", Reload::kRestart, embedding.max_retries, "2", 0, 10,
                       "http provider: retries of a failed request (5xx, 429, network)"),
    ENGRAM_INTEGER_KEY("embedding.breaker_failures", Reload::kRestart, embedding.breaker_failures, "5", 1, 1000,
                       "http provider: consecutive failures that open the circuit breaker"),
    ENGRAM_INTEGER_KEY("embedding.breaker_open_seconds", Reload::kRestart, embedding.breaker_open_seconds, "30", 1, 86400,
                       "http provider: seconds the breaker stays open before one probe request"),
    ENGRAM_BOOL_KEY("learning.enabled", Reload::kRestart, learning.enabled, "true",
                    "\"true\": extract patterns from completed episodes; \"false\": never"),
    ENGRAM_NUMBER_KEY("learning.min_success_rate", Reload::kRestart, learning.min_success_rate, "0.7", 0.0, 1.0,
                      "patterns are kept when their success rate is at least this"),
    ENGRAM_NUMBER_KEY("learning.min_error_recovery_rate", Reload::kRestart, learning.min_error_recovery_rate, "0.3", 0.0, 1.0,
                      "error_recovery patterns are kept when their success rate is at least this"),
    ENGRAM_INTEGER_KEY("learning.decay_half_life_days", Reload::kRestart, learning.decay_half_life_days, "30", 1, 36500,
                       "days after which an unused pattern's weight halves"),
    ENGRAM_INTEGER_KEY("learning.queue_capacity", Reload::kRestart, learning.queue_capacity, "1000", 1, 1000000,
                       "completed episodes waiting for extraction before producers wait"),
    ENGRAM_INTEGER_KEY("learning.workers", Reload::kRestart, learning.workers, "1", 1, 64, "pattern extraction threads"),
    ENGRAM_INTEGER_KEY("learning.quiet_period_ms", Reload::kRestart, learning.quiet_period_ms, "10", 0, 60000,
                       "extraction waits until episodes were not created, stepped or completed for this long (0: never waits)"),
    ENGRAM_INTEGER_KEY("learning.max_defer_ms", Reload::kRestart, learning.max_defer_ms, "500", 0, 600000,
                       "the longest extraction waits for such a pause"),
};

#undef ENGRAM_NUMBER_KEY
#undef ENGRAM_INTEGER_KEY
#undef ENGRAM_TEXT_KEY
#undef ENGRAM_BOOL_KEY

const KeyDef* FindKey(std::string_view key) {
  for (const KeyDef& def : kKeys) {
    if (def.key == key) return &def;
  }
  return nullptr;
}

// True if `prefix` names a table that holds known keys ("storage" for "storage.db").
bool IsTablePrefix(std::string_view prefix) {
  for (const KeyDef& def : kKeys) {
    if (def.key.size() > prefix.size() && def.key.starts_with(prefix) && def.key[prefix.size()] == '.') {
      return true;
    }
  }
  return false;
}

std::string KnownKeys() {
  std::string out;
  for (const KeyDef& def : kKeys) {
    if (!out.empty()) out += ", ";
    out += def.key;
  }
  return out;
}

Status UnknownKeyError(std::string_view where, std::string_view key) {
  return InvalidArgumentError(std::string(where) + ": unknown config key \"" +
                              std::string(key.substr(0, 128)) + "\" (known keys: " + KnownKeys() + ")");
}

// "ENGRAM_STORAGE_BUSY_TIMEOUT_MS" for "storage.busy_timeout_ms".
std::string EnvVarName(std::string_view key) {
  std::string name(kEnvPrefix);
  for (char c : key) {
    if (c == '.') {
      name += '_';
    } else if (c >= 'a' && c <= 'z') {
      name += static_cast<char>(c - 'a' + 'A');
    } else {
      name += c;
    }
  }
  return name;
}

size_t KeyIndex(const KeyDef& def) { return static_cast<size_t>(&def - kKeys); }

// The source that currently wins for each key, indexed like kKeys.
struct Winner {
  bool set = false;
  ConfigSource source = ConfigSource::kDefault;
  std::string origin;
};

// Parses `text` into `config` and, on success, makes (source, origin) the key's winner.
// Sources are applied from lowest to highest precedence, so the last success wins.
Status ApplyValue(const KeyDef& def, std::string_view text, ConfigSource source, std::string_view origin,
                  std::string_view where, const Getenv& getenv, Config& config,
                  std::vector<Winner>& winners) {
  Status status = def.apply(text, getenv, config);
  if (!status.ok()) return status.WithContext(std::string(where) + ": " + std::string(def.key));
  winners[KeyIndex(def)] = Winner{true, source, std::string(origin)};
  return OkStatus();
}

// "path:line:column" of a node in the config file.
std::string Where(const std::string& path, const toml::source_region& region) {
  return path + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

Status ApplyTomlTable(const toml::table& table, const std::string& prefix, const std::string& path,
                      const Getenv& getenv, Config& config, std::vector<Winner>& winners) {
  for (const auto& [toml_key, node] : table) {
    std::string key =
        prefix.empty() ? std::string(toml_key.str()) : prefix + "." + std::string(toml_key.str());
    // A quoted key holding a dot ("storage.db" = ...) is one TOML key, not a path: unknown.
    bool quoted_dot = toml_key.str().find('.') != std::string::npos;
    const KeyDef* def = quoted_dot ? nullptr : FindKey(key);
    if (def == nullptr) {
      if (quoted_dot || !IsTablePrefix(key)) return UnknownKeyError(Where(path, toml_key.source()), key);
      if (!node.is_table()) {
        return InvalidArgumentError(Where(path, node.source()) + ": " + key + ": expected a table, got " +
                                    std::string(TomlTypeName(node)));
      }
      ENGRAM_RETURN_IF_ERROR(ApplyTomlTable(*node.as_table(), key, path, getenv, config, winners));
      continue;
    }
    std::string where = Where(path, node.source());
    std::string text;
    if (def->type == KeyType::kString && node.is_string()) {
      text = node.as_string()->get();
    } else if (def->type == KeyType::kInteger && node.is_integer()) {
      text = std::to_string(node.as_integer()->get());
    } else if (def->type == KeyType::kNumber && node.is_integer()) {
      text = std::to_string(node.as_integer()->get());
    } else if (def->type == KeyType::kNumber && node.is_floating_point()) {
      text = FormatNumber(node.as_floating_point()->get());
    } else {
      std::string_view expected = def->type == KeyType::kString    ? "a string"
                                  : def->type == KeyType::kInteger ? "an integer"
                                                                   : "a number";
      return InvalidArgumentError(where + ": " + key + ": expected " + std::string(expected) + ", got " +
                                  std::string(TomlTypeName(node)));
    }
    ENGRAM_RETURN_IF_ERROR(ApplyValue(*def, text, ConfigSource::kFile, path, where, getenv, config, winners));
  }
  return OkStatus();
}

// The whole file as text. kNotFound if it does not exist; kUnavailable if it can't be read.
Result<std::string> ReadFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    int err = errno;
    std::string message = "config file " + path + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFoundError(message);
    return UnavailableError(message);
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  bool failed = std::ferror(file) != 0;
  int err = errno;
  std::fclose(file);
  if (failed) return UnavailableError("config file " + path + ": " + std::strerror(err));
  return text;
}

// The toml++ adapter: toml::parse throws toml::parse_error, and this is the only place that
// may see it. Everything past here is Status.
Result<toml::table> ParseToml(const std::string& text, const std::string& path) {
  try {
    return toml::parse(std::string_view(text), std::string_view(path));
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(Where(path, e.source()) + ": invalid TOML: " + std::string(e.description()));
  }
}

Status ApplyConfigFile(const std::string& path, const Getenv& getenv, Config& config,
                       std::vector<Winner>& winners) {
  ENGRAM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  ENGRAM_ASSIGN_OR_RETURN(toml::table table, ParseToml(text, path));
  return ApplyTomlTable(table, "", path, getenv, config, winners);
}

// Chooses the config file: explicit (--config, then ENGRAM_CONFIG) or the default location.
// Sets config.config_file/_origin and returns whether the file must exist; an empty path
// means there is nothing to read.
Result<bool> ChooseConfigFile(const ConfigInputs& inputs, Config& config) {
  std::optional<std::string> explicit_path;
  if (inputs.config_file.has_value()) {
    explicit_path = inputs.config_file;
    config.config_file_origin = "--config";
  } else if (std::optional<std::string> env = GetEnv(inputs.getenv, std::string(kConfigEnvVar))) {
    explicit_path = env;
    config.config_file_origin = std::string(kConfigEnvVar);
  }
  if (explicit_path.has_value()) {
    if (explicit_path->empty()) {
      return InvalidArgumentError(config.config_file_origin + ": config file path is empty");
    }
    Result<std::string> expanded = ExpandHome(*explicit_path, inputs.getenv);
    if (!expanded.ok()) return expanded.status().WithContext(config.config_file_origin);
    config.config_file = *std::move(expanded);
    return true;
  }
  std::optional<std::string> dir = XdgDir(inputs.getenv, "XDG_CONFIG_HOME", "/.config");
  if (dir.has_value()) {
    config.config_file = *dir + "/engram/config.toml";
    config.config_file_origin = "default";
  }
  return false;
}

std::string SourceColumn(const ConfigValue& value) {
  if (value.source == ConfigSource::kDefault) return "default";
  return std::string(ConfigSourceName(value.source)) + " " + value.origin;
}

}  // namespace

std::string_view ConfigSourceName(ConfigSource source) {
  switch (source) {
    case ConfigSource::kDefault: return "default";
    case ConfigSource::kFile: return "file";
    case ConfigSource::kEnv: return "env";
    case ConfigSource::kFlag: return "flag";
  }
  return "default";
}

Result<ConfigFlag> ParseSetFlag(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return InvalidArgumentError("--set: expected KEY=VALUE, got \"" + std::string(text.substr(0, 128)) +
                                "\"");
  }
  std::string_view key = StripAsciiWhitespace(text.substr(0, eq));
  if (key.empty()) {
    return InvalidArgumentError("--set: empty key in \"" + std::string(text.substr(0, 128)) + "\"");
  }
  return ConfigFlag{std::string(key), std::string(text.substr(eq + 1)), "--set"};
}

Result<Config> LoadConfig(const ConfigInputs& inputs) {
  const Getenv& getenv = inputs.getenv;
  Config config;
  std::vector<Winner> winners(std::size(kKeys));

  // Every source is validated even where a higher one overrides it: a broken config file
  // should be reported the first time, not when the overriding variable is unset.
  ENGRAM_ASSIGN_OR_RETURN(bool must_exist, ChooseConfigFile(inputs, config));
  if (!config.config_file.empty()) {
    Status status = ApplyConfigFile(config.config_file, getenv, config, winners);
    if (!must_exist && status.code() == StatusCode::kNotFound) {
      config.config_file.clear();  // the default file is optional
      config.config_file_origin.clear();
    } else if (!status.ok()) {
      return status;
    }
  }

  for (const KeyDef& def : kKeys) {
    // The alias first, so the full name wins when both are set.
    std::string full_name = EnvVarName(def.key);
    for (std::string_view name : {def.env_alias, std::string_view(full_name)}) {
      if (name.empty()) continue;
      std::optional<std::string> value = GetEnv(getenv, std::string(name));
      if (!value.has_value()) continue;
      ENGRAM_RETURN_IF_ERROR(
          ApplyValue(def, *value, ConfigSource::kEnv, name, name, getenv, config, winners));
    }
  }

  for (const ConfigFlag& flag : inputs.flags) {
    std::string_view where = flag.origin.empty() ? std::string_view("flag") : std::string_view(flag.origin);
    const KeyDef* def = FindKey(flag.key);
    if (def == nullptr) return UnknownKeyError(where, flag.key);
    ENGRAM_RETURN_IF_ERROR(
        ApplyValue(*def, flag.value, ConfigSource::kFlag, where, where, getenv, config, winners));
  }

  for (const KeyDef& def : kKeys) {
    Winner& winner = winners[KeyIndex(def)];
    if (!winner.set) {
      ENGRAM_ASSIGN_OR_RETURN(std::string text, def.default_value(getenv));
      ENGRAM_RETURN_IF_ERROR(
          ApplyValue(def, text, ConfigSource::kDefault, "default", "default", getenv, config, winners));
    }
    config.values.push_back(ConfigValue{std::string(def.key), def.show(config), winner.source, winner.origin,
                                        std::string(def.description), def.reload == Reload::kLive});
  }
  if (config.tools_expert_after_calls < config.tools_advanced_after_calls) {
    const ConfigValue* expert = nullptr;
    for (const ConfigValue& value : config.values) {
      if (value.key == "tools.expert_after_calls") expert = &value;
    }
    std::string where = expert == nullptr || expert->source == ConfigSource::kDefault ? "default" : expert->origin;
    return InvalidArgumentError(where + ": tools.expert_after_calls (" +
                                std::to_string(config.tools_expert_after_calls) +
                                ") must not be below tools.advanced_after_calls (" +
                                std::to_string(config.tools_advanced_after_calls) + ")");
  }
  return config;
}

std::string FormatConfigTable(const Config& config) {
  std::string out = "config file: ";
  if (config.config_file.empty()) {
    out += "none\n";
  } else {
    out += config.config_file + " (" +
           (config.config_file_origin == "default" ? std::string("default location")
                                                   : config.config_file_origin) +
           ")\n";
  }
  size_t key_width = 3;    // "KEY"
  size_t value_width = 5;  // "VALUE"
  for (const ConfigValue& value : config.values) {
    key_width = std::max(key_width, value.key.size());
    value_width = std::max(value_width, value.value.size());
  }
  auto row = [&](std::string_view key, std::string_view value, std::string_view reload, std::string_view source) {
    out += key;
    out.append(key_width - key.size() + 2, ' ');
    out += value;
    out.append(value_width - value.size() + 2, ' ');
    out += reload;
    out.append(std::string_view("restart").size() - reload.size() + 2, ' ');
    out += source;
    out += '\n';
  };
  row("KEY", "VALUE", "RELOAD", "SOURCE");
  for (const ConfigValue& value : config.values) {
    row(value.key, value.value, value.live ? "live" : "restart", SourceColumn(value));
  }
  return out;
}

std::string FormatConfigJson(const Config& config) {
  nlohmann::ordered_json values = nlohmann::ordered_json::array();
  for (const ConfigValue& value : config.values) {
    nlohmann::ordered_json entry;
    entry["key"] = value.key;
    const KeyDef* def = FindKey(value.key);
    int64_t number = 0;
    auto [end, ec] = std::from_chars(value.value.data(), value.value.data() + value.value.size(), number);
    if (def != nullptr && def->type == KeyType::kInteger && ec == std::errc() &&
        end == value.value.data() + value.value.size()) {
      entry["value"] = number;
    } else {
      entry["value"] = value.value;
    }
    entry["source"] = std::string(ConfigSourceName(value.source));
    entry["origin"] = value.origin;
    entry["description"] = value.description;
    entry["live"] = value.live;
    values.push_back(std::move(entry));
  }
  nlohmann::ordered_json root;
  root["config_file"] = config.config_file.empty() ? nlohmann::ordered_json(nullptr)
                                                   : nlohmann::ordered_json(config.config_file);
  root["config_file_origin"] = config.config_file_origin;
  root["values"] = std::move(values);
  return root.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace engram
