#include "server/config_reload.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "common/logging.h"
#include "engram/lmdb_cache.h"
#include "mcp/auth.h"
#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "retrieval/retriever.h"
#include "sandbox/execute_code_tool.h"
#include "server/open_retrieval.h"
#include "transport/http_transport.h"

namespace engram::server {
namespace {

constexpr uint32_t kFileEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM;

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// key → value of every key in `config`.
std::map<std::string, const ConfigValue*> ByKey(const Config& config) {
  std::map<std::string, const ConfigValue*> out;
  for (const ConfigValue& value : config.values) out[value.key] = &value;
  return out;
}

std::string ErrnoText(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

void BlockReloadSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

ConfigWatcher::ConfigWatcher(ConfigInputs inputs, Config running, ApplyConfigFn apply, ConfigWatcherOptions options)
    : inputs_(std::move(inputs)),
      started_(running),
      apply_(std::move(apply)),
      options_(options),
      current_(std::move(running)) {}

ConfigWatcher::~ConfigWatcher() { Stop(); }

Status ConfigWatcher::Start() {
  MutexLock lock(mu_);
  if (thread_started_) return FailedPreconditionError("the config watcher was already started");
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return UnavailableError(ErrnoText("config watcher: eventfd"));
  if (options_.on_sighup) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    signal_fd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0) {
      Status error = UnavailableError(ErrnoText("config watcher: signalfd"));
      close(stop_fd_);
      stop_fd_ = -1;
      return error;
    }
  }
  if (options_.on_file_change && !started_.config_file.empty() && !WatchConfigDirectory()) {
    if (inotify_fd_ >= 0) close(inotify_fd_);
    inotify_fd_ = -1;
  }
  thread_started_ = true;
  thread_ = std::thread([this] { Run(); });
  return OkStatus();
}

bool ConfigWatcher::WatchConfigDirectory() {
  const std::filesystem::path file(started_.config_file);
  const std::filesystem::path dir_path = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const std::string dir = dir_path.string();
  watched_name_ = file.filename().string();
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd_ < 0 || inotify_add_watch(inotify_fd_, dir.c_str(), kFileEvents) < 0) {
    LogWarn("config file changes are not watched; send SIGHUP to reload",
            {{"directory", dir}, {"error", std::strerror(errno)}});
    return false;
  }
  LogDebug("watching the config file", {{"file", started_.config_file}});
  return true;
}

void ConfigWatcher::Stop() {
  MutexLock lock(mu_);
  if (!thread_started_) return;
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) < 0) LogWarn("config watcher: cannot wake the thread", {{"error", std::strerror(errno)}});
  thread_.join();
  for (int* fd : {&stop_fd_, &signal_fd_, &inotify_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  thread_started_ = false;
}

void ConfigWatcher::Run() {
  using Clock = std::chrono::steady_clock;
  bool file_changed = false;  // a change waiting out the debounce, since file_changed_at
  Clock::time_point file_changed_at{};
  while (true) {
    pollfd fds[3] = {{stop_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    int timeout_ms = -1;
    if (file_changed) {
      auto due = file_changed_at + options_.debounce - Clock::now();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(due).count()));
    }
    int ready = poll(fds, 3, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      LogError("config watcher stopped", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) {
      signalfd_siginfo info;
      bool got = false;
      while (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) got = true;
      if (got) {
        file_changed = false;  // this reload reads the file too
        Reload("SIGHUP");
      }
    }
    if (fds[2].revents != 0) {
      alignas(inotify_event) char buffer[16 * 1024];
      ssize_t n;
      while ((n = read(inotify_fd_, buffer, sizeof buffer)) > 0) {
        for (ssize_t at = 0; at < n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
          if (event->len > 0 && watched_name_ == event->name) {
            file_changed = true;
            file_changed_at = Clock::now();
          }
          at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
      }
    }
    if (file_changed && Clock::now() >= file_changed_at + options_.debounce) {
      file_changed = false;
      Reload("file");
    }
  }
}

ReloadOutcome ConfigWatcher::Reload(std::string_view trigger) {
  MutexLock lock(reload_mu_);
  ++reloads_;
  ReloadOutcome outcome;
  Result<Config> loaded = LoadConfig(inputs_);
  if (!loaded.ok()) {
    outcome.status = loaded.status();
    LogError("config reload failed; the running config stays",
             {{"trigger", std::string(trigger)}, {"error", loaded.status().ToString()}});
    return outcome;
  }
  const auto current = ByKey(current_);
  const auto started = ByKey(started_);
  for (const ConfigValue& value : loaded->values) {
    if (value.live) {
      auto it = current.find(value.key);
      if (it == current.end() || it->second->value != value.value) outcome.applied.push_back(value.key);
      continue;
    }
    auto it = started.find(value.key);
    if (it != started.end() && it->second->value != value.value) {
      outcome.needs_restart.push_back(value.key);
      LogWarn("config change needs a restart; not applied",
              {{"key", value.key}, {"running", it->second->value}, {"configured", value.value}});
    }
  }
  if (!outcome.applied.empty()) {
    outcome.status = apply_(current_, *loaded);
    if (!outcome.status.ok()) {
      LogError("config reload: some live settings were not applied; they are retried on the next reload",
               {{"trigger", std::string(trigger)}, {"error", outcome.status.ToString()}});
      return outcome;
    }
    current_ = *std::move(loaded);
  }
  LogInfo(outcome.applied.empty() ? "config reloaded; no live setting changed" : "config reloaded",
          {{"trigger", std::string(trigger)},
           {"file", current_.config_file},
           {"applied", Join(outcome.applied)},
           {"needs_restart", Join(outcome.needs_restart)}});
  return outcome;
}

Config ConfigWatcher::current() const {
  MutexLock lock(reload_mu_);
  return current_;
}

uint64_t ConfigWatcher::reload_count() const {
  MutexLock lock(reload_mu_);
  return reloads_;
}

Status ApplyLiveConfig(const Config& previous, const Config& next, const LiveTargets& targets) {
  Status first_error;
  auto keep = [&first_error](Status s) {
    if (first_error.ok() && !s.ok()) first_error = std::move(s);
  };
  InitLogging(next.log_level, next.log_format);
  if (targets.server != nullptr) {
    targets.server->SetDisclosure({.disclose_all = next.tools_disclosure == "all",
                                   .advanced_after_calls = next.tools_advanced_after_calls,
                                   .expert_after_calls = next.tools_expert_after_calls});
  }
  if (targets.retriever != nullptr) {
    keep(targets.retriever->SetOptions(RankingOptionsFromConfig(next)).WithContext("retrieval"));
  }
  if (targets.cache != nullptr) {
    targets.cache->SetLimits(static_cast<size_t>(next.cache_max_entries), next.cache_ttl);
  }
  if (targets.sandbox != nullptr) targets.sandbox->Set(next.sandbox_max_timeout_ms, next.sandbox_max_memory_mb);
  const bool disclosure_changed = next.tools_disclosure != previous.tools_disclosure ||
                                  next.tools_advanced_after_calls != previous.tools_advanced_after_calls ||
                                  next.tools_expert_after_calls != previous.tools_expert_after_calls;
  if (targets.http != nullptr) {
    // Clients with an open stream hear that tools/list may have changed (MCP listChanged).
    if (disclosure_changed) targets.http->Broadcast(mcp::MakeNotification("notifications/tools/list_changed", nullptr));
    targets.http->SetRateLimit({.per_second = next.rate_limit, .burst = next.rate_limit_burst});
    if (next.keys_file != previous.keys_file) {
      Result<mcp::ApiKeyStore> keys = mcp::ApiKeyStore::Load(next.keys_file);
      if (keys.ok()) {
        targets.http->SetKeys(std::make_shared<const mcp::ApiKeyStore>(*std::move(keys)));
      } else {
        keep(keys.status().WithContext("auth.keys_file " + next.keys_file));
      }
    }
  }
  return first_error;
}

Result<std::unique_ptr<ConfigWatcher>> WatchConfig(const std::optional<ConfigInputs>& inputs, const Config& config,
                                                   const LiveTargets& targets) {
  if (!inputs.has_value()) return std::unique_ptr<ConfigWatcher>();
  auto watcher = std::make_unique<ConfigWatcher>(
      *inputs, config,
      [targets](const Config& previous, const Config& next) { return ApplyLiveConfig(previous, next, targets); });
  ENGRAM_RETURN_IF_ERROR(watcher->Start());
  return watcher;
}

}  // namespace engram::server
