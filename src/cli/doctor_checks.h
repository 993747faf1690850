// The checks behind `engram doctor`: each looks at one part of the installation and says
// what is wrong and how to fix it. Kept apart from the command so tests can run them with a
// temp HOME, broken stores and config files of their own.
//
//   DoctorEnvironment env = DoctorEnvironmentFromProcess();
//   std::vector<DoctorCheck> checks = RunDoctorChecks(session.config(), env);
//   std::cout << FormatDoctorText(checks);
//   return DoctorHealthy(checks) ? 0 : 1;
//
// The checks only read: a SQLite store is opened read-only (never created or migrated), and
// the embedding endpoint gets one tiny request. A PostgreSQL store and the LMDB cache (when
// its folder exists) are opened as engram opens them: that creates a missing PostgreSQL
// schema and rebuilds a corrupt cache (it is only a cache).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram::cli {

// kFail is broken (doctor exits 1); kWarn works but needs attention; kInfo is a note, such
// as an MCP client that is not installed.
enum class CheckLevel { kOk, kInfo, kWarn, kFail };
// "ok", "info", "warn", "FAIL".
std::string_view CheckLevelName(CheckLevel level);

struct DoctorCheck {
  std::string name;  // "config", "store", "cache", "embedding", "vectors", "disk", "sandbox.landlock", "claude-code", ...
  CheckLevel level = CheckLevel::kOk;
  std::string detail;  // what was found
  std::string fix;     // how to fix it; empty for kOk and kInfo
};

// Where the MCP client checks look, and what the fixes name. Thread-compatible.
struct DoctorEnvironment {
  std::string home;          // $HOME: ~/.claude.json, ~/.claude; empty: nothing there is read
  std::string config_home;   // $XDG_CONFIG_HOME, else home + "/.config": opencode/opencode.json
  std::string cwd;           // the project: .mcp.json, opencode.json
  std::string path;          // $PATH: where `claude`, `opencode` and bare commands are looked up
  std::string engram_binary; // this engram, for the snippets that add it to a client
  // The embedding endpoint's probe gives up after this (embedding.timeout_ms if shorter).
  std::chrono::milliseconds http_timeout{3000};
};

// The environment of this process (getenv, the current directory, /proc/self/exe).
DoctorEnvironment DoctorEnvironmentFromProcess();

// Every check, in order: config, store, cache, embedding, vectors, disk, sandbox layers,
// MCP clients. With a config error only the config and MCP client checks run (the rest
// need the config). Never fails: what goes wrong is a check.
std::vector<DoctorCheck> RunDoctorChecks(const Result<const Config*>& config, const DoctorEnvironment& env);

// The single checks, for tests.
DoctorCheck CheckConfigFile(const Result<const Config*>& config);
// "store" (and "cache" for SQLite): opens read-only, schema version, integrity.
std::vector<DoctorCheck> CheckStoreAndCache(const Config& config);
// "disk" for `dir` given its free and total bytes: kFail below 100 MiB free, kWarn below
// 1 GiB or 5% of the total.
DoctorCheck CheckFreeSpace(const std::string& dir, uint64_t free_bytes, uint64_t total_bytes);
// "claude-code" and "opencode": whether an MCP server entry runs engram.
std::vector<DoctorCheck> CheckMcpClients(const DoctorEnvironment& env);

// The SQLite store of `config`, opened without creating or migrating it when `read_only`,
// optionally behind the LMDB cache in storage.db + ".cache" as engram opens it (whatever
// cache.enabled says: the folder is shared with processes that use it). Also used by
// `engram restore` to see what it replaces and to clear the cache.
// Errors: OpenSqliteBackend's and OpenLmdbCache's.
Result<std::unique_ptr<StorageBackend>> OpenSqliteStore(const Config& config, bool read_only, bool with_cache);

// True when no check is kFail.
bool DoctorHealthy(const std::vector<DoctorCheck>& checks);
// `ok    store: detail` per check, `  fix: how` under those not ok or info, then a summary line.
std::string FormatDoctorText(const std::vector<DoctorCheck>& checks);
// {"healthy": bool, "checks": [{"name", "level", "ok", "detail", "fix"?}]}.
nlohmann::json DoctorJson(const std::vector<DoctorCheck>& checks);

}  // namespace engram::cli
