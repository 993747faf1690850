#include "cli/doctor_checks.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "embedding/use_provider.h"
#include "engram/embedding.h"
#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sandbox.h"
#include "engram/sqlite_backend.h"
#include "engram/turso_backend.h"
#include "sandbox/execute_code_tool.h"
#include "server/open_retrieval.h"
#include "server/open_store.h"
#include "storage/sqlite/sqlite_schema.h"

namespace engram::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// What engram serves over HTTP by default (`engram serve --http 127.0.0.1:8765`), for snippets.
constexpr const char* kExampleUrl = "http://127.0.0.1:8765/mcp";

DoctorCheck Ok(std::string name, std::string detail) {
  return {std::move(name), CheckLevel::kOk, std::move(detail), ""};
}
DoctorCheck Info(std::string name, std::string detail) {
  return {std::move(name), CheckLevel::kInfo, std::move(detail), ""};
}
DoctorCheck Warn(std::string name, std::string detail, std::string fix) {
  return {std::move(name), CheckLevel::kWarn, std::move(detail), std::move(fix)};
}
DoctorCheck Fail(std::string name, std::string detail, std::string fix) {
  return {std::move(name), CheckLevel::kFail, std::move(detail), std::move(fix)};
}

std::string Bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  return buf;
}

uint64_t DirSize(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += it->file_size(size_ec);
  }
  return total;
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return !path.empty() && fs::exists(path, ec);
}

// ---------------------------------------------------------------------------------------
// Store and cache

DoctorCheck StoreOpenFailure(const std::string& where, const Status& s) {
  std::string detail = where + ": " + std::string(s.message());
  switch (s.code()) {
    case StatusCode::kFailedPrecondition:
      return Fail("store", detail,
                  "if a newer engram wrote it, upgrade engram (this build knows schema " +
                      std::to_string(sqlite::kSchemaVersion) +
                      "); otherwise point storage.db (--db, ENGRAM_DB) at an engram store or move the file aside");
    case StatusCode::kDataLoss:
      return Fail("store", detail,
                  "move the damaged file aside and restore a backup: engram restore BACKUP (see engram backup)");
    default:
      return Fail("store", detail, "check that the file and its folder exist and are readable and writable by you");
  }
}

// The SQLite store, read-only: a check must not create or migrate it.
std::vector<DoctorCheck> CheckSqliteStore(const Config& config) {
  std::vector<DoctorCheck> out;
  const std::string& db = config.db_path;
  if (!Exists(db)) {
    out.push_back(Ok("store", "sqlite at " + db + ": not created yet (engram creates it on first use)"));
    return out;
  }
  Result<std::unique_ptr<StorageBackend>> opened = OpenSqliteStore(config, /*read_only=*/true, /*with_cache=*/false);
  if (!opened.ok()) {
    out.push_back(StoreOpenFailure("sqlite at " + db, opened.status()));
    return out;
  }
  StorageBackend& store = **opened;
  std::string detail = "sqlite at " + db + ", schema " + std::to_string(store.SchemaVersion());
  if (Result<StoreStats> stats = store.Stats(); stats.ok()) {
    detail += ", " + std::to_string(stats->episodes) + " episodes (" + std::to_string(stats->completed_episodes) +
              " completed), " + std::to_string(stats->steps) + " steps";
  }
  if (Status health = store.CheckHealth(); !health.ok()) {
    out.push_back(Fail("store", detail + ": " + std::string(health.message()),
                       "run engram storage verify to see which episodes are readable; export them "
                       "(engram export -o FILE) or restore a backup (engram restore BACKUP --force)"));
  } else if (store.SchemaVersion() < sqlite::kSchemaVersion) {
    out.push_back(Warn("store", detail + " (this build writes schema " + std::to_string(sqlite::kSchemaVersion) + ")",
                       "engram storage migrate (or any command that writes) brings it up to date"));
  } else {
    out.push_back(Ok("store", detail + ", integrity ok"));
  }
  return out;
}

DoctorCheck CheckCache(const Config& config) {
  const std::string folder = config.db_path + ".cache";
  if (!config.cache_enabled) return Info("cache", "cache.enabled = false: every read goes to the store");
  if (!Exists(folder)) return Ok("cache", folder + ": not created yet (made on first use)");
  bool marked_corrupt = Exists(folder + "/corrupt");
  Status s = [&]() -> Status {
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> cached,
                            OpenSqliteStore(config, /*read_only=*/true, /*with_cache=*/true));
    return cached->CheckHealth();
  }();
  const std::string fix = "stop every engram process and delete " + folder + " (it is only a cache; nothing is lost)";
  if (!s.ok()) return Fail("cache", folder + ": " + std::string(s.message()), fix);
  std::string detail = "LMDB at " + folder + ", " + Bytes(DirSize(folder));
  if (marked_corrupt) detail += "; it had been marked corrupt and was rebuilt";
  return Ok("cache", detail);
}

// A store on a server (PostgreSQL or Turso): reachable, schema, health, and the cache in front.
std::vector<DoctorCheck> CheckRemoteStore(const Config& config) {
  const bool postgres = IsPostgresUrl(config.store_url);
  const std::string where =
      postgres ? "postgresql " + MaskPostgresConninfo(config.store_url) : "turso " + config.store_url;
  Result<std::unique_ptr<StorageBackend>> opened = server::OpenStore(config);
  if (!opened.ok()) {
    return {Fail("store", where + ": " + std::string(opened.status().message()),
                 postgres ? "check storage.url, that the server is running and reachable, and the password "
                            "(storage.password_file, PGPASSWORD or ~/.pgpass)"
                          : "check storage.url, that the server is running and reachable, and the token "
                            "(ENGRAM_TURSO_TOKEN, storage.turso_token or storage.turso_token_file)")};
  }
  StorageBackend& store = **opened;
  std::string detail = where + ", schema " + std::to_string(store.SchemaVersion());
  if (Result<StoreStats> stats = store.Stats(); stats.ok()) {
    detail += ", " + std::to_string(stats->episodes) + " episodes (" + std::to_string(stats->completed_episodes) +
              " completed)";
  }
  if (Status health = store.CheckHealth(); !health.ok()) {
    return {Fail("store", detail + ": " + std::string(health.message()),
                 "check the server's log; engram storage verify reads back every episode")};
  }
  const LmdbCache* cache = AsLmdbCache(store);
  if (cache == nullptr) {
    return {Ok("store", detail + ", reachable"), Info("cache", "cache.enabled = false: every read goes to the store")};
  }
  return {Ok("store", detail + ", reachable"),
          Ok("cache", "LMDB at " + cache->CachePath() + ", " + Bytes(DirSize(cache->CachePath())) +
                          (postgres ? ", kept current across hosts by PostgreSQL LISTEN/NOTIFY"
                                    : ", checked against the store's generation before every read"))};
}

// ---------------------------------------------------------------------------------------
// Embeddings

DoctorCheck CheckEmbeddingProvider(const Config& config, const DoctorEnvironment& env) {
  const Config::Embedding& e = config.embedding;
  if (e.provider == "none") {
    return Warn("embedding", "embedding.provider = none: retrieval is lexical only",
                "set embedding.provider = hashing (no model, no network) or http (an OpenAI-compatible endpoint)");
  }
  if (e.provider == "hashing") return Ok("embedding", "hashing, dimension " + std::to_string(e.dimension));
  if (e.provider == "use") {
    const std::string dir = e.model_dir.empty() ? DefaultUseModelDir() : e.model_dir;
    Result<std::unique_ptr<EmbeddingProvider>> use = MakeUseProvider({.model_dir = e.model_dir});
    if (!use.ok()) {
      return Warn("embedding", "use model at " + dir + " cannot start (" + std::string(use.status().message()) +
                                   "): engram falls back to hashing",
                  "run scripts/install-deps (it installs the model under models/), or set embedding.model_dir to a "
                  "folder holding model.json, its weight shards and vocab.json");
    }
    return Ok("embedding", "use (Universal Sentence Encoder lite), dimension " +
                               std::to_string((*use)->Space().dimension) + ", from " + dir);
  }
  HttpEmbeddingOptions options;
  options.url = e.url;
  options.model = e.model;
  options.dimension = static_cast<int>(e.dimension);
  options.timeout = std::min(std::chrono::milliseconds(e.timeout_ms), env.http_timeout);
  options.max_retries = 0;
  options.cache_entries = 0;
  if (!e.api_key_file.empty()) {
    Result<std::string> key = server::ReadSecretFile("embedding.api_key_file", e.api_key_file);
    if (!key.ok()) {
      return Fail("embedding", std::string(key.status().message()),
                  "put the API key on the first line of " + e.api_key_file + ", readable by you (chmod 600)");
    }
    options.api_key = *key;
  }
  const std::string where = "http " + e.url + " model " + e.model;
  const std::string fix = "check embedding.url, embedding.model and embedding.api_key_file, and that the endpoint "
                          "answers POST /v1/embeddings; or set embedding.provider = hashing";
  Result<std::unique_ptr<EmbeddingProvider>> provider = MakeHttpProvider(options, SystemClock());
  if (!provider.ok()) return Fail("embedding", where + ": " + std::string(provider.status().message()), fix);
  const std::string probe = "engram doctor";
  Result<std::vector<std::vector<float>>> v =
      (*provider)->Embed(std::span<const std::string>(&probe, 1), EmbedPurpose::kQuery);
  if (!v.ok()) return Fail("embedding", where + ": " + std::string(v.status().message()), fix);
  return Ok("embedding", where + ": answered, dimension " + std::to_string(v->empty() ? 0 : v->front().size()));
}

// Whether the store's vectors were made by the configured provider. `store` is open.
DoctorCheck CheckVectors(const Config& config, StorageBackend& store) {
  if (config.embedding.provider == "none") return Info("vectors", "no embedding provider: no vectors are kept");
  Config probe = config;
  probe.embedding.api_key_file.clear();  // reading the key is the embedding check's job
  Result<std::unique_ptr<server::RetrievalStack>> stack = server::OpenRetrieval(probe, store, SystemClock());
  if (!stack.ok()) return Fail("vectors", std::string(stack.status().message()), "fix the named retrieval.* or embedding.* setting");
  Result<bool> stale = (*stack)->retriever().VectorsStale();
  if (!stale.ok()) return Warn("vectors", std::string(stale.status().message()), "run engram storage verify");
  Result<std::optional<EmbeddingSpace>> recorded = store.GetEmbeddingSpace();
  const std::string recorded_key = recorded.ok() && *recorded ? (*recorded)->Key() : std::string("none yet");
  if (*stale) {
    return Warn("vectors",
                "the store's vectors are " + recorded_key + " but the provider is " + (*stack)->ProviderName() +
                    ": semantic retrieval is off until they are rebuilt",
                "engram reindex");
  }
  return Ok("vectors", "stored vectors: " + recorded_key);
}

// ---------------------------------------------------------------------------------------
// Disk

// The nearest existing folder at or above `path` (a store not created yet lives there).
std::string ExistingAncestor(fs::path path) {
  std::error_code ec;
  while (!path.empty() && !fs::exists(path, ec)) {
    fs::path parent = path.parent_path();
    if (parent == path) break;
    path = parent;
  }
  return path.empty() ? std::string(".") : path.string();
}

std::vector<DoctorCheck> CheckDisks(const Config& config) {
  std::vector<DoctorCheck> out;
  if (IsPostgresUrl(config.store_url) || IsTursoUrl(config.store_url)) return out;  // the store lives on the server
  std::vector<std::string> dirs = {ExistingAncestor(fs::path(config.db_path).parent_path())};
  if (config.cache_enabled) dirs.push_back(ExistingAncestor(fs::path(config.db_path + ".cache")));
  std::vector<unsigned long> seen;  // one check per file system
  for (const std::string& dir : dirs) {
    struct statvfs st {};
    if (statvfs(dir.c_str(), &st) != 0) {
      out.push_back(Warn("disk", "cannot read the free space of " + dir + ": " + std::strerror(errno),
                         "check that the folder exists and is readable"));
      continue;
    }
    if (std::find(seen.begin(), seen.end(), st.f_fsid) != seen.end()) continue;
    seen.push_back(st.f_fsid);
    out.push_back(CheckFreeSpace(dir, static_cast<uint64_t>(st.f_bavail) * st.f_frsize,
                                 static_cast<uint64_t>(st.f_blocks) * st.f_frsize));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Sandbox

std::vector<DoctorCheck> CheckSandbox(const Config& config) {
  std::vector<DoctorCheck> out;
  sandbox::SandboxToolOptions options = sandbox::SandboxToolOptionsFromConfig(config);
  if (!options.enabled) {
    out.push_back(Info("sandbox", "execute_code disabled (sandbox.enabled = false)"));
    return out;
  }
  Result<std::unique_ptr<Sandbox>> sb = OpenLinuxSandbox(options.sandbox);
  if (!sb.ok()) {
    out.push_back(Fail("sandbox", std::string(sb.status().message()),
                       "install engram-sandbox next to engram, or set sandbox.enabled = false"));
    return out;
  }
  for (const SandboxLayerStatus& layer : (*sb)->Layers()) {
    std::string detail = layer.detail.empty() ? (layer.available ? "available" : "missing") : layer.detail;
    if (layer.available) {
      out.push_back(Ok("sandbox." + layer.name, detail));
    } else {
      out.push_back(Fail("sandbox." + layer.name, detail,
                         "execute_code fails closed without this kernel feature; enable it or set "
                         "sandbox.enabled = false"));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// MCP clients

// A JSON file with comments allowed (opencode.jsonc style). nullopt when missing; a
// string error when unreadable or malformed.
struct JsonFile {
  bool present = false;
  json value;
  std::string error;
};

JsonFile ReadJsonFile(const std::string& path) {
  JsonFile f;
  if (!Exists(path)) return f;
  f.present = true;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    f.error = path + " cannot be read: " + std::strerror(errno);
    return f;
  }
  std::stringstream text;
  text << in.rdbuf();
  f.value = json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (f.value.is_discarded()) f.error = path + " is not valid JSON";
  return f;
}

// Where `command` runs from: itself when it has a '/', else the first match on `path`.
std::string ResolveCommand(const std::string& command, const std::string& path, const std::string& cwd) {
  if (command.find('/') != std::string::npos) {
    fs::path p(command);
    if (p.is_relative() && !cwd.empty()) p = fs::path(cwd) / p;
    return access(p.c_str(), X_OK) == 0 ? p.string() : "";
  }
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + command;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool ContainsEngram(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("engram") != std::string::npos;
}

// One MCP server entry that runs engram, as found in a client's config.
struct EngramEntry {
  std::string where;    // "~/.claude.json (user)"
  std::string summary;  // "engram serve" or the URL
  std::string problem;  // why it cannot work; empty when it looks right
};

// Looks at every entry of `servers` (name -> entry): command (a string plus "args", or an
// array) or url. An entry counts as engram's when its command's file name or its URL
// mentions engram, or its name does.
void FindEngramEntries(const json& servers, const std::string& where, const DoctorEnvironment& env,
                       std::vector<EngramEntry>& found) {
  if (!servers.is_object()) return;
  for (const auto& [name, entry] : servers.items()) {
    if (!entry.is_object()) continue;
    std::vector<std::string> argv;
    if (entry.contains("command")) {
      const json& command = entry["command"];
      if (command.is_string()) {
        argv.push_back(command.get<std::string>());
      } else if (command.is_array()) {
        for (const json& a : command) argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
      }
      if (entry.contains("args") && entry["args"].is_array()) {
        for (const json& a : entry["args"]) argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
      }
    }
    std::string url = entry.contains("url") && entry["url"].is_string() ? entry["url"].get<std::string>() : "";
    bool engram_command = !argv.empty() && ContainsEngram(fs::path(argv[0]).filename().string());
    if (!engram_command && !ContainsEngram(url) && !ContainsEngram(name)) continue;
    EngramEntry e;
    e.where = where + " \"" + name + "\"";
    if (entry.contains("enabled") && entry["enabled"] == false) e.problem = "the entry is disabled (\"enabled\": false)";
    if (!argv.empty()) {
      for (const std::string& a : argv) e.summary += (e.summary.empty() ? "" : " ") + a;
      if (e.problem.empty() && ResolveCommand(argv[0], env.path, env.cwd).empty()) {
        e.problem = "runs " + argv[0] + ", which is not an executable file here";
      } else if (e.problem.empty() && engram_command && std::find(argv.begin(), argv.end(), "serve") == argv.end()) {
        e.problem = "runs engram without `serve`";
      }
    } else if (!url.empty()) {
      e.summary = url + " (an engram HTTP server: engram serve --http HOST:PORT)";
    } else {
      e.problem = "has neither a command nor a url";
    }
    found.push_back(std::move(e));
  }
}

DoctorCheck ClientCheck(const std::string& name, bool installed, const std::vector<EngramEntry>& found,
                        const std::vector<std::string>& file_errors, const std::string& not_installed,
                        const std::string& add_fix) {
  std::vector<std::string> broken;
  std::vector<std::string> working;
  for (const EngramEntry& e : found) {
    if (e.problem.empty()) {
      working.push_back(e.where + ": " + e.summary);
    } else {
      broken.push_back(e.where + ": " + e.problem);
    }
  }
  auto join = [](const std::vector<std::string>& parts) {
    std::string s;
    for (const std::string& p : parts) s += (s.empty() ? "" : "; ") + p;
    return s;
  };
  if (!broken.empty()) return Fail(name, join(broken), "fix the entry, or replace it: " + add_fix);
  if (!working.empty()) return Ok(name, join(working));
  if (!file_errors.empty()) return Warn(name, join(file_errors), "fix the file, then: " + add_fix);
  if (!installed) return Info(name, not_installed);
  return Warn(name, "installed, but no MCP server entry runs engram", add_fix);
}

DoctorCheck CheckClaudeCode(const DoctorEnvironment& env) {
  std::vector<EngramEntry> found;
  std::vector<std::string> errors;
  bool installed = !ResolveCommand("claude", env.path, env.cwd).empty();
  if (!env.home.empty()) {
    const std::string user_file = env.home + "/.claude.json";
    installed = installed || Exists(env.home + "/.claude");
    JsonFile user = ReadJsonFile(user_file);
    installed = installed || user.present;
    if (!user.error.empty()) {
      errors.push_back(user.error);
    } else if (user.present && user.value.is_object()) {
      if (user.value.contains("mcpServers")) FindEngramEntries(user.value["mcpServers"], "~/.claude.json (user)", env, found);
      // Servers added with `claude mcp add` in a project (local scope) live under its path.
      const json& projects = user.value.contains("projects") ? user.value["projects"] : json();
      if (projects.is_object() && projects.contains(env.cwd) && projects[env.cwd].is_object() &&
          projects[env.cwd].contains("mcpServers")) {
        FindEngramEntries(projects[env.cwd]["mcpServers"], "~/.claude.json (local, this project)", env, found);
      }
    }
  }
  if (!env.cwd.empty()) {
    JsonFile project = ReadJsonFile(env.cwd + "/.mcp.json");
    if (!project.error.empty()) {
      errors.push_back(project.error);
    } else if (project.present && project.value.is_object() && project.value.contains("mcpServers")) {
      FindEngramEntries(project.value["mcpServers"], ".mcp.json (project)", env, found);
    }
  }
  std::string fix = "claude mcp add --scope user engram -- " + env.engram_binary +
                    " serve   (or, to an engram HTTP server: claude mcp add --transport http engram " + kExampleUrl + ")";
  return ClientCheck("claude-code", installed, found, errors,
                     "Claude Code not found (no claude on PATH, no ~/.claude.json): nothing to configure", fix);
}

DoctorCheck CheckOpenCode(const DoctorEnvironment& env) {
  std::vector<EngramEntry> found;
  std::vector<std::string> errors;
  bool installed = !ResolveCommand("opencode", env.path, env.cwd).empty();
  const std::string global_dir = env.config_home.empty() ? "" : env.config_home + "/opencode";
  installed = installed || Exists(global_dir);
  auto look = [&](const std::string& dir, const std::string& label) {
    if (dir.empty()) return;
    for (const char* file : {"opencode.json", "opencode.jsonc"}) {
      JsonFile f = ReadJsonFile(dir + "/" + file);
      if (!f.error.empty()) {
        errors.push_back(f.error);
      } else if (f.present && f.value.is_object() && f.value.contains("mcp")) {
        FindEngramEntries(f.value["mcp"], dir + "/" + file + " (" + label + ")", env, found);
      }
    }
  };
  look(global_dir, "global");
  look(env.cwd, "project");
  std::string file = global_dir.empty() ? "opencode.json" : global_dir + "/opencode.json";
  std::string fix = "add to " + file + ": {\"mcp\": {\"engram\": {\"type\": \"local\", \"command\": [\"" +
                    env.engram_binary + "\", \"serve\"]}}}   (or an engram HTTP server: {\"type\": \"remote\", \"url\": \"" +
                    kExampleUrl + "\"})";
  return ClientCheck("opencode", installed, found, errors,
                     "OpenCode not found (no opencode on PATH, no " + (global_dir.empty() ? "~/.config/opencode" : global_dir) +
                         "): nothing to configure",
                     fix);
}

}  // namespace

std::string_view CheckLevelName(CheckLevel level) {
  switch (level) {
    case CheckLevel::kOk: return "ok";
    case CheckLevel::kInfo: return "info";
    case CheckLevel::kWarn: return "warn";
    case CheckLevel::kFail: return "FAIL";
  }
  return "FAIL";
}

DoctorEnvironment DoctorEnvironmentFromProcess() {
  DoctorEnvironment env;
  auto get = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  env.home = get("HOME");
  env.config_home = get("XDG_CONFIG_HOME");
  if (env.config_home.empty() && !env.home.empty()) env.config_home = env.home + "/.config";
  env.path = get("PATH");
  std::error_code ec;
  env.cwd = fs::current_path(ec).string();
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  env.engram_binary = ec ? "engram" : self.string();
  return env;
}

DoctorCheck CheckConfigFile(const Result<const Config*>& config) {
  if (!config.ok()) {
    return Fail("config", std::string(config.status().message()),
                "fix the named file, variable or flag (engram config show lists every key and where it came from)");
  }
  const Config& c = **config;
  if (c.config_file.empty()) return Ok("config", "no config file; defaults, environment and flags");
  return Ok("config", "read " + c.config_file + " (" + c.config_file_origin + ")");
}

std::vector<DoctorCheck> CheckStoreAndCache(const Config& config) {
  if (IsPostgresUrl(config.store_url) || IsTursoUrl(config.store_url)) return CheckRemoteStore(config);
  std::vector<DoctorCheck> out = CheckSqliteStore(config);
  // A store that cannot be opened leaves the cache unchecked: it is rebuilt from the store.
  if (out.back().level != CheckLevel::kFail) out.push_back(CheckCache(config));
  return out;
}

DoctorCheck CheckFreeSpace(const std::string& dir, uint64_t free_bytes, uint64_t total_bytes) {
  std::string detail = Bytes(free_bytes) + " free of " + Bytes(total_bytes) + " in " + dir;
  const std::string fix = "free some space there: SQLite needs room for its write-ahead log, checkpoints and vacuum";
  if (free_bytes < 100 * kMiB) return Fail("disk", detail, fix);
  if (free_bytes < kGiB || free_bytes < total_bytes / 20) return Warn("disk", detail, fix);
  return Ok("disk", detail);
}

std::vector<DoctorCheck> CheckMcpClients(const DoctorEnvironment& env) {
  return {CheckClaudeCode(env), CheckOpenCode(env)};
}

std::vector<DoctorCheck> RunDoctorChecks(const Result<const Config*>& config, const DoctorEnvironment& env) {
  std::vector<DoctorCheck> checks = {CheckConfigFile(config)};
  if (config.ok()) {
    const Config& c = **config;
    std::vector<DoctorCheck> store_checks = CheckStoreAndCache(c);
    const bool store_ok = store_checks.front().level != CheckLevel::kFail;
    for (DoctorCheck& check : store_checks) checks.push_back(std::move(check));
    checks.push_back(CheckEmbeddingProvider(c, env));
    // The vectors check needs the store; it is read-only when it is a SQLite file.
    const bool remote = IsPostgresUrl(c.store_url) || IsTursoUrl(c.store_url);
    if (store_ok && (remote || Exists(c.db_path))) {
      Result<std::unique_ptr<StorageBackend>> store =
          remote ? server::OpenStore(c) : OpenSqliteStore(c, /*read_only=*/true, /*with_cache=*/false);
      if (store.ok()) checks.push_back(CheckVectors(c, **store));
    }
    for (DoctorCheck& check : CheckDisks(c)) checks.push_back(std::move(check));
    for (DoctorCheck& check : CheckSandbox(c)) checks.push_back(std::move(check));
  }
  for (DoctorCheck& check : CheckMcpClients(env)) checks.push_back(std::move(check));
  return checks;
}

Result<std::unique_ptr<StorageBackend>> OpenSqliteStore(const Config& config, bool read_only, bool with_cache) {
  SqliteOptions sqlite;
  sqlite.path = config.db_path;
  sqlite.read_only = read_only;
  sqlite.durability = config.durability;
  sqlite.busy_timeout = config.busy_timeout;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenSqliteBackend(sqlite));
  if (!with_cache) return store;
  return OpenLmdbCache(server::CacheOptionsFromConfig(config, config.db_path + ".cache"), std::move(store));
}

bool DoctorHealthy(const std::vector<DoctorCheck>& checks) {
  return std::none_of(checks.begin(), checks.end(), [](const DoctorCheck& c) { return c.level == CheckLevel::kFail; });
}

std::string FormatDoctorText(const std::vector<DoctorCheck>& checks) {
  std::string out;
  for (const DoctorCheck& c : checks) {
    std::string level(CheckLevelName(c.level));
    level.resize(6, ' ');
    out += level + c.name + ": " + c.detail + "\n";
    if (!c.fix.empty()) out += "  fix: " + c.fix + "\n";
  }
  out += DoctorHealthy(checks) ? "engram looks healthy.\n" : "Something is broken; see FAIL above.\n";
  return out;
}

json DoctorJson(const std::vector<DoctorCheck>& checks) {
  json list = json::array();
  for (const DoctorCheck& c : checks) {
    json j = {{"name", c.name},
              {"level", std::string(CheckLevelName(c.level))},
              {"ok", c.level != CheckLevel::kFail},
              {"detail", c.detail}};
    if (!c.fix.empty()) j["fix"] = c.fix;
    list.push_back(std::move(j));
  }
  return {{"healthy", DoctorHealthy(checks)}, {"checks", std::move(list)}};
}

}  // namespace engram::cli
