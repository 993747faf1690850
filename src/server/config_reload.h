// Live configuration reload (DESIGN §9): `engram serve` loads its configuration again on
// SIGHUP and when the config file changes (inotify), applies the settings that can change
// while serving, and reports the ones that need a restart.
//
//   BlockReloadSignal();  // before any thread starts
//   ConfigWatcher watcher(inputs, config, [&](const Config& previous, const Config& next) {
//     return ApplyLiveConfig(previous, next, targets);
//   });
//   ENGRAM_RETURN_IF_ERROR(watcher.Start());
//
// What a reload does:
//   - LoadConfig(inputs) again, with the same --config, flags and environment as at start.
//     An invalid file (or one that went missing) changes nothing: the error is logged with
//     its file:line, and the running config stays.
//   - Keys marked live (ConfigValue::live, `engram config show`) whose value changed are
//     handed to the apply function, which puts them in force for new requests at once.
//   - Restart-only keys whose value differs from what the server started with are logged
//     as a warning naming each key ("needs a restart"); they are not applied.
//   - One summary line says what changed.
//
// The file is watched through its directory, by name, so editors that write a new file
// and rename it over the old one are seen; a burst of events is taken as one change
// (debounce).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "config/config.h"
#include "engram/status.h"

namespace engram {
class LmdbCache;
class Retriever;
namespace mcp {
class McpServer;
}
namespace sandbox {
class SandboxLimits;
}
namespace transport {
class HttpTransport;
}
}  // namespace engram

namespace engram::server {

// What one reload did.
struct ReloadOutcome {
  // Not OK: the config could not be loaded (nothing changed), or applying it failed
  // (the running config stays, and the next reload tries again).
  Status status;
  std::vector<std::string> applied;        // live keys whose new value is now in force
  std::vector<std::string> needs_restart;  // restart-only keys that differ from the running server's
};

// Puts the live settings of `next` in force; `previous` is what is in force now.
// Errors: whatever could not be applied (the rest is applied anyway).
using ApplyConfigFn = std::function<Status(const Config& previous, const Config& next)>;

struct ConfigWatcherOptions {
  // Reload on SIGHUP (through a signalfd). REQUIRES: SIGHUP blocked in every thread of the
  // process (BlockReloadSignal() before any thread starts), or SIGHUP still ends it.
  bool on_sighup = true;
  // Reload when the config file is written, replaced, created or removed.
  bool on_file_change = true;
  // Events closer together than this are one change; the reload follows the last one.
  std::chrono::milliseconds debounce{150};
};

// Blocks SIGHUP in the calling thread; threads it starts later inherit the mask.
void BlockReloadSignal();

// Thread-safe.
class ConfigWatcher {
 public:
  // `running` is the config the server started with (loaded from `inputs`).
  ConfigWatcher(ConfigInputs inputs, Config running, ApplyConfigFn apply, ConfigWatcherOptions options = {});
  // Stops the watching thread.
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Starts the watching thread. A config file whose directory cannot be watched is logged
  // and left to SIGHUP. Errors: kUnavailable if the signalfd or eventfd cannot be made;
  // kFailedPrecondition if already started.
  Status Start() ENGRAM_LOCKS_EXCLUDED(mu_);
  // Stops and joins the watching thread. Idempotent.
  void Stop() ENGRAM_LOCKS_EXCLUDED(mu_);

  // Reloads now, as SIGHUP does; `trigger` names the cause in the log ("SIGHUP", "file").
  // Serialised with the watching thread's reloads.
  ReloadOutcome Reload(std::string_view trigger) ENGRAM_LOCKS_EXCLUDED(reload_mu_);

  // The config in force: the running one with the applied live values.
  Config current() const ENGRAM_LOCKS_EXCLUDED(reload_mu_);
  // Reloads done (successful or not), for tests and metrics.
  uint64_t reload_count() const ENGRAM_LOCKS_EXCLUDED(reload_mu_);

 private:
  void Run();
  // Adds an inotify watch on the config file's directory; false (logged) if it can't.
  bool WatchConfigDirectory();

  const ConfigInputs inputs_;
  const Config started_;  // restart-only keys are compared with this
  const ApplyConfigFn apply_;
  const ConfigWatcherOptions options_;

  // One reload at a time.
  mutable Mutex reload_mu_;
  Config current_ ENGRAM_GUARDED_BY(reload_mu_);
  uint64_t reloads_ ENGRAM_GUARDED_BY(reload_mu_) = 0;

  // Start/Stop and the descriptors the thread polls (-1: none).
  Mutex mu_;
  bool thread_started_ ENGRAM_GUARDED_BY(mu_) = false;
  // Set by Start() before the thread starts, closed by Stop() after it ends.
  int stop_fd_ = -1;
  int signal_fd_ = -1;
  int inotify_fd_ = -1;
  std::string watched_name_;  // the config file's name within the watched directory
  std::thread thread_;
};

// The running parts a reload changes. Null members are not in use (e.g. no HTTP under
// stdio, no cache when cache.enabled is false). None is owned.
struct LiveTargets {
  mcp::McpServer* server = nullptr;            // tools.disclosure, tools.*_after_calls
  Retriever* retriever = nullptr;              // retrieval.weight_*, recency, mmr, candidates, cache
  LmdbCache* cache = nullptr;                  // cache.max_entries, cache.ttl_seconds
  sandbox::SandboxLimits* sandbox = nullptr;   // sandbox.max_timeout_ms, sandbox.max_memory_mb
  transport::HttpTransport* http = nullptr;    // server.rate_limit*, auth.keys_file
};

// Applies every live setting of `next` to `targets`: log.level and log.format
// (InitLogging), the rest as LiveTargets lists. The API key store is loaded again from
// auth.keys_file when that path changed (a change of the file itself is picked up by the
// store within a second, reload or not).
// Errors: kInvalidArgument for ranking options Retriever refuses; the key store's Load
// errors (the old keys then stay). Everything else is applied in either case.
Status ApplyLiveConfig(const Config& previous, const Config& next, const LiveTargets& targets);

// For `engram serve`: a started watcher that applies reloads to `targets`, or null when
// `inputs` is unset (nothing to reload from). REQUIRES: BlockReloadSignal() was called
// before any thread started. Errors: as ConfigWatcher::Start.
Result<std::unique_ptr<ConfigWatcher>> WatchConfig(const std::optional<ConfigInputs>& inputs, const Config& config,
                                                   const LiveTargets& targets);

}  // namespace engram::server
