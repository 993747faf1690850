// `engram doctor`: checks the installation and says what is wrong and how to fix it.
// Exit code 1 when something is broken. (Operations, issue 9, extends the list.)
#include <sys/statvfs.h>

#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "engram/lmdb_cache.h"
#include "engram/sandbox.h"
#include "sandbox/execute_code_tool.h"
#include "server/open_store.h"

namespace engram::cli {
namespace {

struct Check {
  std::string name;
  bool ok = true;
  std::string detail;
  std::string fix;  // what to do when !ok
};

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

void CheckStore(const Config& config, std::vector<Check>& checks) {
  Result<std::unique_ptr<StorageBackend>> store = server::OpenStore(config);
  if (!store.ok()) {
    checks.push_back({"store", false, std::string(store.status().message()),
                      "fix the path (--db / ENGRAM_DB / storage.db) or move the damaged file aside"});
    return;
  }
  StorageBackend& s = **store;
  Status health = s.CheckHealth();
  Result<StoreStats> stats = s.Stats();
  std::string detail = s.Name() + " at " + s.Location() + ", schema " + std::to_string(s.SchemaVersion());
  if (stats.ok()) {
    detail += ", " + std::to_string(stats->episodes) + " episodes (" + std::to_string(stats->completed_episodes) +
              " completed), " + std::to_string(stats->steps) + " steps";
  }
  checks.push_back({"store", health.ok(), health.ok() ? detail : detail + ": " + std::string(health.message()),
                    "restore from a backup or export what is readable (engram episode list --json)"});
  if (AsLmdbCache(s) != nullptr) {
    checks.push_back({"cache", true, "LMDB cache in front of the store (cache.enabled)", ""});
  } else {
    checks.push_back({"cache", true, "no cache layer (cache.enabled = false or not SQLite)", ""});
  }
}

void CheckDisk(const Config& config, std::vector<Check>& checks) {
  if (config.db_path.empty()) return;
  std::filesystem::path dir = std::filesystem::path(config.db_path).parent_path();
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) return;  // the store check reports a missing folder
  uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  bool ok = free_bytes >= (256ull << 20);
  checks.push_back({"disk", ok, Bytes(free_bytes) + " free in " + dir.string(),
                    "free some space: SQLite needs room for its write-ahead log and checkpoints"});
}

void CheckSandbox(const Config& config, std::vector<Check>& checks) {
  sandbox::SandboxToolOptions options = sandbox::SandboxToolOptionsFromConfig(config);
  if (!options.enabled) {
    checks.push_back({"sandbox", true, "execute_code disabled (sandbox.enabled = false)", ""});
    return;
  }
  Result<std::unique_ptr<Sandbox>> sb = OpenLinuxSandbox(options.sandbox);
  if (!sb.ok()) {
    checks.push_back({"sandbox", false, std::string(sb.status().message()),
                      "install engram-sandbox next to engram, or set sandbox.enabled = false"});
    return;
  }
  for (const SandboxLayerStatus& layer : (*sb)->Layers()) {
    checks.push_back({"sandbox." + layer.name, layer.available,
                      layer.detail.empty() ? (layer.available ? "available" : "missing") : layer.detail,
                      "execute_code fails closed without this kernel feature; enable it or set sandbox.enabled = false"});
  }
}

Status RunDoctor(Session& session) {
  std::vector<Check> checks;
  Result<const Config*> config = session.config();
  if (!config.ok()) {
    checks.push_back({"config", false, std::string(config.status().message()), "fix the named setting"});
  } else {
    const Config& c = **config;
    checks.push_back({"config", true,
                      c.config_file.empty() ? "no config file; defaults, environment and flags"
                                            : "read " + c.config_file,
                      ""});
    CheckStore(c, checks);
    CheckDisk(c, checks);
    CheckSandbox(c, checks);
    checks.push_back({"embeddings", true, "none configured; retrieval is lexical", ""});
  }
  bool healthy = true;
  for (const Check& c : checks) healthy = healthy && c.ok;
  if (session.json()) {
    nlohmann::json list = nlohmann::json::array();
    for (const Check& c : checks) {
      nlohmann::json j = {{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}};
      if (!c.ok) j["fix"] = c.fix;
      list.push_back(std::move(j));
    }
    PrintJson({{"healthy", healthy}, {"checks", std::move(list)}});
  } else {
    for (const Check& c : checks) {
      std::cout << (c.ok ? "ok    " : "FAIL  ") << c.name << ": " << c.detail << "\n";
      if (!c.ok) std::cout << "      fix: " << c.fix << "\n";
    }
    std::cout << (healthy ? "engram looks healthy.\n" : "Something is broken; see FAIL above.\n");
  }
  if (!healthy) return FailedPreconditionError("doctor found problems");
  return OkStatus();
}

}  // namespace

void AddDoctorCommand(CLI::App& app, Command* selected) {
  app.add_subcommand("doctor", "Check the store, disk, sandbox layers and config; say how to fix problems")
      ->callback([selected] { *selected = RunDoctor; });
}

}  // namespace engram::cli
