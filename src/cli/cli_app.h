// The engram command line: global options, the session a command runs in (config, open
// store, engine), and the registration of every subcommand. main.cc only calls RunCli.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "engram/memory.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace CLI {
class App;
}

namespace engram::server {
class RetrievalStack;
}

namespace engram::cli {

struct GlobalOptions {
  std::optional<std::string> db;
  std::optional<std::string> store;  // --store postgres://... (storage.url)
  std::optional<std::string> config_file;
  std::optional<std::string> durability;
  std::optional<std::string> log_level;
  std::optional<std::string> log_format;
  std::vector<std::string> sets;  // --set key=value
  bool json = false;
};

// What a command works on, built on first use: the effective config, then the store and
// the engine. Not thread-safe: owned by the CLI's one thread.
class Session {
 public:
  explicit Session(const GlobalOptions& options) : options_(options) {}

  Result<const Config*> config();
  // What config() was loaded from (after a successful config()), for `engram serve` to
  // load again on reload.
  const ConfigInputs& config_inputs() const { return config_inputs_; }
  // Opens the configured store (creating it when missing).
  Result<Memory*> memory();
  // Retrieval over the store (embedding provider, vector index opened and caught up).
  Result<server::RetrievalStack*> retrieval();
  bool json() const { return options_.json; }

 private:
  const GlobalOptions& options_;
  std::optional<Config> config_;
  ConfigInputs config_inputs_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
  std::shared_ptr<server::RetrievalStack> retrieval_;
};

// A command's body: runs after parsing; its Status decides the exit code.
using Command = std::function<Status(Session&)>;

// Registers `engram doctor`.
void AddDoctorCommand(CLI::App& app, Command* selected);
// Registers `engram backup PATH` and `engram restore PATH` (the SQLite store, online).
void AddBackupCommands(CLI::App& app, Command* selected);

// Registers `engram episode ...`. `selected` receives the chosen command's body.
void AddEpisodeCommands(CLI::App& app, Command* selected);
// Registers `engram keys create|list|revoke` (API keys for the HTTP transport).
void AddKeysCommands(CLI::App& app, Command* selected);
// Registers `engram query` and `engram reindex`.
void AddQueryCommands(CLI::App& app, Command* selected);
// Registers `engram pattern list|show|search|recommend|playbook|decay|reextract`.
void AddPatternCommands(CLI::App& app, Command* selected);
// Registers `engram export`, `engram import` and `engram storage stats|verify|vacuum|migrate`.
void AddStorageCommands(CLI::App& app, Command* selected);

// Parses argv, runs the command, prints errors as one line on stderr.
// Returns the process exit code: 0 ok, 1 the command failed, 2 bad usage.
int RunCli(int argc, char** argv);

}  // namespace engram::cli
