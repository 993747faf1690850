// The parent side of the Linux sandbox: validates a request, runs static analysis, makes a
// scratch directory, starts engram-sandbox (posix_spawn, its own process group, an empty
// environment, only fds 0-3), feeds it the program, reads stdout/stderr with caps and the
// control pipe, kills the whole process group at the wall-clock deadline, then turns what
// happened into an ExecutionResult and one audit log line, and removes the scratch
// directory.
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/strings.h"
#include "engram/sandbox.h"
#include "sandbox/helper_protocol.h"
#include "sandbox/layers.h"  // kSandboxUid/Gid only
#include "sandbox/static_analysis.h"

namespace engram {

std::string_view SandboxLanguageName(SandboxLanguage language) {
  switch (language) {
    case SandboxLanguage::kJavaScript: return "javascript";
    case SandboxLanguage::kPython: return "python";
    case SandboxLanguage::kWasm: return "wasm";
  }
  return "javascript";
}

Result<SandboxLanguage> ParseSandboxLanguage(std::string_view name) {
  std::string n = AsciiLower(StripAsciiWhitespace(name));
  if (n == "javascript" || n == "js") return SandboxLanguage::kJavaScript;
  if (n == "python" || n == "py" || n == "python3") return SandboxLanguage::kPython;
  if (n == "wasm" || n == "wat" || n == "webassembly") return SandboxLanguage::kWasm;
  return InvalidArgumentError("unknown language \"" + std::string(name.substr(0, 64)) +
                              "\" (expected javascript, python or wasm)");
}

namespace {

using Clock = std::chrono::steady_clock;
using sandbox::ControlLine;

// The layers the helper reports in --probe, in the order it sets them up.
constexpr std::string_view kProbedLayers[] = {
    sandbox::kLayerUserNamespace, sandbox::kLayerMountNamespace, sandbox::kLayerPidNamespace,
    sandbox::kLayerIpcUtsNamespace, sandbox::kLayerNetworkNamespace, sandbox::kLayerRlimits,
    sandbox::kLayerNoNewPrivs, sandbox::kLayerLandlock, sandbox::kLayerCapabilities, sandbox::kLayerSeccomp,
};

// How long the helper may take to exit after its process group was killed.
constexpr auto kKillGrace = std::chrono::seconds(2);
// The probe does no work; it only sets every layer up.
constexpr auto kProbeTimeout = std::chrono::seconds(10);

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// write(2) to a pipe whose reader is gone (a helper that exited early) raises SIGPIPE,
// which would end engram itself: it is blocked in this thread for the call, and one it
// raised is consumed. Returns what write returned (EPIPE then).
ssize_t WriteNoSigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  ssize_t n = write(fd, data, size);
  int err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

Status MakePipe(Fd* read_end, Fd* write_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return InternalError(Errno("pipe2"));
  *read_end = Fd(p[0]);
  *write_end = Fd(p[1]);
  return OkStatus();
}

// ---- scratch directories ------------------------------------------------------------

int ChmodDir(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_D || type == FTW_DNR) chmod(path, 0700);
  return 0;
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

// Removes `dir` and everything in it without following symlinks or crossing mounts. The
// code may have left directories it made unreadable, hence the first pass.
void RemoveTree(const std::string& dir) {
  nftw(dir.c_str(), ChmodDir, 16, FTW_PHYS | FTW_MOUNT);
  nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

std::string ScratchRoot(const SandboxOptions& options) {
  if (!options.scratch_root.empty()) return options.scratch_root;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp == '/' ? tmp : "/tmp";
}

class ScratchDir {
 public:
  static Result<ScratchDir> Create(const std::string& root) {
    std::string tmpl = root + "/engram-sandbox-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return InternalError(Errno("scratch directory " + tmpl));
    ScratchDir dir(tmpl);
    if (chmod(tmpl.c_str(), 0700) != 0) return InternalError(Errno("chmod " + tmpl));
    // A root caller's helper runs the code as nobody (layers.h), who must own the folder.
    if (geteuid() == 0 && chown(tmpl.c_str(), sandbox::kSandboxUid, sandbox::kSandboxGid) != 0) {
      return InternalError(Errno("chown " + tmpl));
    }
    return dir;
  }
  ScratchDir(ScratchDir&& o) noexcept : path_(std::exchange(o.path_, std::string())) {}
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir() {
    if (!path_.empty()) RemoveTree(path_);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// ---- running the helper ------------------------------------------------------------

struct HelperRun {
  std::string stdout_text;
  std::string stderr_text;
  std::string control;
  int wait_status = 0;
  bool timed_out = false;
  bool output_exceeded = false;
  bool cancelled = false;
  int64_t duration_ms = 0;
};

struct RunLimits {
  Clock::duration timeout;
  size_t max_output_bytes;
  const std::function<bool()>* cancelled;
};

Result<HelperRun> RunHelper(const std::string& helper, const std::vector<std::string>& args, std::string_view input,
                            const RunLimits& limits) {
  Fd in_r, in_w, out_r, out_w, err_r, err_w, ctl_r, ctl_w;
  ENGRAM_RETURN_IF_ERROR(MakePipe(&in_r, &in_w));
  ENGRAM_RETURN_IF_ERROR(MakePipe(&out_r, &out_w));
  ENGRAM_RETURN_IF_ERROR(MakePipe(&err_r, &err_w));
  ENGRAM_RETURN_IF_ERROR(MakePipe(&ctl_r, &ctl_w));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawn_file_actions_adddup2(&actions, ctl_w.get(), sandbox::kControlFd);
  // Nothing else of engram's (database, sockets, API keys file) reaches the helper.
  posix_spawn_file_actions_addclosefrom_np(&actions, sandbox::kControlFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);  // its own process group, which the watchdog kills
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>("engram-sandbox"));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  char* envp[] = {nullptr};  // engram's environment (API keys, database paths) never reaches it

  auto start = Clock::now();
  pid_t pid = -1;
  int rc = posix_spawn(&pid, helper.c_str(), &actions, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return InternalError("cannot start the sandbox helper " + helper + ": " + std::strerror(rc));
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  ctl_w.Reset();

  HelperRun run;
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) in_w.Reset();
  auto deadline = start + limits.timeout;
  auto kill_deadline = Clock::time_point::max();
  bool killed = false;
  auto kill_group = [&] {
    if (!killed) {
      kill(-pid, SIGKILL);
      killed = true;
      kill_deadline = Clock::now() + kKillGrace;
    }
  };
  char buf[65536];
  while (out_r.get() >= 0 || err_r.get() >= 0 || ctl_r.get() >= 0) {
    auto now = Clock::now();
    if (!killed && now >= deadline) {
      run.timed_out = true;
      kill_group();
    }
    if (!killed && limits.cancelled != nullptr && *limits.cancelled && (*limits.cancelled)()) {
      run.cancelled = true;
      kill_group();
    }
    if (killed && now >= kill_deadline) break;  // something kept a pipe open; stop reading
    struct pollfd fds[4];
    int nfds = 0;
    auto add = [&](const Fd& fd, short events) {
      fds[nfds++] = {fd.get(), events, 0};
    };
    add(out_r, POLLIN);
    add(err_r, POLLIN);
    add(ctl_r, POLLIN);
    add(in_w, POLLOUT);
    auto until = killed ? kill_deadline : deadline;
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(wait_ms, 0, 50));  // also polls `cancelled`
    if (poll(fds, static_cast<nfds_t>(nfds), timeout_ms) < 0 && errno != EINTR) {
      kill_group();
      break;
    }
    // stdin: feed the program, then close so the helper sees EOF.
    if (in_w.get() >= 0 && (fds[3].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = WriteNoSigpipe(in_w.get(), input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) in_w.Reset();
    }
    auto drain = [&](Fd& fd, short revents, std::string* sink, size_t cap) {
      if (fd.get() < 0 || (revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
      ssize_t n = read(fd.get(), buf, sizeof(buf));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
      if (n <= 0) {
        fd.Reset();
        return;
      }
      size_t room = cap > sink->size() ? cap - sink->size() : 0;
      sink->append(buf, std::min(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room && !killed) {
        run.output_exceeded = true;
        kill_group();
      }
    };
    drain(out_r, fds[0].revents, &run.stdout_text, limits.max_output_bytes);
    drain(err_r, fds[1].revents, &run.stderr_text, limits.max_output_bytes);
    drain(ctl_r, fds[2].revents, &run.control, 1 << 20);
  }
  if (!killed && (out_r.get() >= 0 || err_r.get() >= 0 || ctl_r.get() >= 0)) kill_group();
  // The helper's outer process is our child and waits for the sandbox's PID 1, whose exit
  // makes the kernel kill everything left in the PID namespace: once it is reaped, nothing
  // of the execution remains. (No kill after this point: the group id may be reused.)
  while (waitpid(pid, &run.wait_status, 0) < 0 && errno == EINTR) {
  }
  run.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  return run;
}

// ---- control lines -----------------------------------------------------------------

struct ControlEvents {
  bool ready = false;
  std::string error_layer;
  std::string error_detail;
  std::vector<Violation> violations;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::vector<SandboxLayerStatus> layers;
  std::vector<std::pair<std::string, bool>> runtimes;
};

// "a b rest of line" -> ("a", "b rest of line")
std::pair<std::string_view, std::string_view> SplitWord(std::string_view s) {
  size_t sp = s.find(' ');
  if (sp == std::string_view::npos) return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

ControlEvents ParseControl(std::string_view text) {
  ControlEvents ev;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto [kind, rest] = SplitWord(line);
    if (kind == "ready") {
      ev.ready = true;
    } else if (kind == "error") {
      auto [layer, detail] = SplitWord(rest);
      if (ev.error_layer.empty()) {
        ev.error_layer = std::string(layer);
        ev.error_detail = std::string(detail);
      }
    } else if (kind == "violation") {
      auto [vkind, detail] = SplitWord(rest);
      if (ev.violations.size() < 100) ev.violations.push_back({std::string(vkind), std::string(detail)});
    } else if (kind == "exit") {
      ev.exit_code = std::atoi(std::string(rest).c_str());
    } else if (kind == "signal") {
      ev.signal = std::atoi(std::string(rest).c_str());
    } else if (kind == "layer") {
      auto [name, rest2] = SplitWord(rest);
      auto [state, detail] = SplitWord(rest2);
      ev.layers.push_back({std::string(name), state == "ok", std::string(detail)});
    } else if (kind == "runtime") {
      auto [name, rest2] = SplitWord(rest);
      auto [state, detail] = SplitWord(rest2);
      ev.runtimes.emplace_back(std::string(name), state == "ok");
    }
  }
  return ev;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string ViolationsSummary(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) {
    if (!out.empty()) out += ", ";
    out += v.kind + ":" + v.detail.substr(0, 64);
  }
  return out;
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// ---- the sandbox -----------------------------------------------------------------

class LinuxSandbox final : public Sandbox {
 public:
  LinuxSandbox(SandboxOptions options, std::string helper, std::vector<SandboxLayerStatus> layers, Status ready,
               bool wasm)
      : options_(std::move(options)),
        helper_(std::move(helper)),
        layers_(std::move(layers)),
        ready_(std::move(ready)),
        wasm_(wasm) {}

  // Sandbox
  Result<ExecutionResult> Execute(const ExecutionRequest& request, const std::function<bool()>& cancelled) override;
  std::vector<SandboxLayerStatus> Layers() const override { return layers_; }
  Status Ready() const override { return ready_; }
  bool SupportsLanguage(SandboxLanguage language) const override {
    switch (language) {
      case SandboxLanguage::kJavaScript: return true;
      case SandboxLanguage::kWasm: return wasm_;
      case SandboxLanguage::kPython: return access(options_.python_path.c_str(), X_OK) == 0;
    }
    return false;
  }

 private:
  Status Validate(const ExecutionRequest& request) const;

  // All constant after construction.
  const SandboxOptions options_;
  const std::string helper_;
  const std::vector<SandboxLayerStatus> layers_;
  const Status ready_;
  const bool wasm_;
};

Status LinuxSandbox::Validate(const ExecutionRequest& request) const {
  if (request.code.empty()) return InvalidArgumentError("code: must not be empty");
  if (request.code.size() > sandbox::kMaxCodeBytes) {
    return InvalidArgumentError("code: " + std::to_string(request.code.size()) + " bytes is more than the 4 MiB allowed");
  }
  if (request.timeout.has_value() && request.timeout->count() <= 0) {
    return InvalidArgumentError("timeout_ms: must be positive");
  }
  if (request.memory_mb.has_value() && *request.memory_mb <= 0) {
    return InvalidArgumentError("memory_mb: must be positive");
  }
  if (!request.entry.empty() && !IsIdentifier(request.entry)) {
    return InvalidArgumentError("entry: \"" + Ellipsize(request.entry, 64) +
                                "\" is not a function name (letters, digits and _, not starting with a digit)");
  }
  if (request.language == SandboxLanguage::kWasm && request.entry.empty()) {
    return InvalidArgumentError("entry: WebAssembly needs the name of the export to call");
  }
  if (!request.args_json.empty()) {
    nlohmann::json args = nlohmann::json::parse(request.args_json, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded() || !args.is_array()) return InvalidArgumentError("args: expected a JSON array");
    if (request.language == SandboxLanguage::kWasm) {
      for (const auto& a : args) {
        if (!a.is_number()) return InvalidArgumentError("args: WebAssembly exports take numbers only");
      }
    }
    if (request.entry.empty()) return InvalidArgumentError("args: given without entry (the function to call)");
  }
  return OkStatus();
}

Result<ExecutionResult> LinuxSandbox::Execute(const ExecutionRequest& request, const std::function<bool()>& cancelled) {
  ENGRAM_RETURN_IF_ERROR(ready_);
  ENGRAM_RETURN_IF_ERROR(Validate(request));
  std::string language(SandboxLanguageName(request.language));
  if (!SupportsLanguage(request.language)) {
    return UnavailableError(language == "python" ? "python is not installed on this host (" + options_.python_path + ")"
                                                 : language + " is not available in this build of engram");
  }
  auto timeout = std::min(request.timeout.value_or(options_.default_timeout), options_.max_timeout);
  int64_t memory_mb = std::min(request.memory_mb.value_or(options_.default_memory_mb), options_.max_memory_mb);

  auto audit = [&](const ExecutionResult& r, std::string_view outcome) {
    LogInfo("sandbox execution", {{"caller", request.caller},
                                  {"language", language},
                                  {"outcome", std::string(outcome)},
                                  {"code_bytes", std::to_string(request.code.size())},
                                  {"timeout_ms", std::to_string(timeout.count())},
                                  {"memory_mb", std::to_string(memory_mb)},
                                  {"exit_status", std::to_string(r.exit_status)},
                                  {"duration_ms", std::to_string(r.duration_ms)},
                                  {"stdout_bytes", std::to_string(r.stdout_text.size())},
                                  {"stderr_bytes", std::to_string(r.stderr_text.size())},
                                  {"violations", ViolationsSummary(r.violations)}});
  };

  if (options_.static_analysis_for_test) {
    if (std::optional<sandbox::StaticFinding> finding = sandbox::FindEscapeIdiom(request.language, request.code)) {
      ExecutionResult rejected;
      rejected.exit_status = -1;
      rejected.stderr_text = "rejected before running: " + finding->message + "\n";
      rejected.violations.push_back({"static_analysis", finding->message});
      audit(rejected, "rejected");
      return rejected;
    }
  }

  ENGRAM_ASSIGN_OR_RETURN(ScratchDir scratch, ScratchDir::Create(ScratchRoot(options_)));
  std::vector<std::string> args = {
      std::string(sandbox::kFlagLanguage) + language,
      std::string(sandbox::kFlagScratch) + scratch.path(),
      std::string(sandbox::kFlagTimeoutMs) + std::to_string(timeout.count()),
      std::string(sandbox::kFlagMemoryMb) + std::to_string(memory_mb),
      std::string(sandbox::kFlagMaxFileBytes) + std::to_string(options_.max_file_bytes),
      std::string(sandbox::kFlagMaxProcesses) + std::to_string(options_.max_processes),
      std::string(sandbox::kFlagPython) + options_.python_path,
  };
  if (!request.entry.empty()) args.push_back(std::string(sandbox::kFlagEntry) + request.entry);
  if (!request.args_json.empty()) args.push_back(std::string(sandbox::kFlagArgs) + request.args_json);

  RunLimits limits{timeout, static_cast<size_t>(options_.max_output_bytes), cancelled ? &cancelled : nullptr};
  ENGRAM_ASSIGN_OR_RETURN(HelperRun run, RunHelper(helper_, args, request.code, limits));
  ControlEvents ev = ParseControl(run.control);

  ExecutionResult result;
  result.stdout_text = std::move(run.stdout_text);
  result.stderr_text = std::move(run.stderr_text);
  result.duration_ms = run.duration_ms;
  result.violations = std::move(ev.violations);
  if (run.cancelled) {
    audit(result, "cancelled");
    return CancelledError("execute_code was cancelled; the process group was killed");
  }
  if (!ev.error_layer.empty()) {
    audit(result, "setup_failed");
    if (ev.error_layer == sandbox::kLayerRuntime) {
      return UnavailableError("the " + language + " runtime could not start: " + ev.error_detail);
    }
    return FailedPreconditionError("sandbox layer " + ev.error_layer + " could not be set up: " + ev.error_detail +
                                   " (nothing ran)");
  }
  if (!ev.ready && !run.timed_out) {
    audit(result, "helper_failed");
    std::string why = WIFEXITED(run.wait_status) ? "exit status " + std::to_string(WEXITSTATUS(run.wait_status))
                                                 : SignalName(WTERMSIG(run.wait_status));
    return InternalError("the sandbox helper ended (" + why + ") before running the code: " +
                         Ellipsize(result.stderr_text, 256));
  }
  if (ev.exit_code.has_value()) {
    result.exit_status = *ev.exit_code;
  } else if (ev.signal.has_value()) {
    result.exit_status = 128 + *ev.signal;
  } else {
    result.exit_status = 128 + SIGKILL;  // killed with its process group before it could say
  }
  // Python reports an address-space limit as MemoryError, which only its stderr shows.
  if (request.language == SandboxLanguage::kPython && result.exit_status == 1 &&
      (result.stderr_text.starts_with("MemoryError") || result.stderr_text.find("\nMemoryError") != std::string::npos)) {
    result.violations.push_back({"memory", "the memory limit of " + std::to_string(memory_mb) +
                                               " MiB was reached (MemoryError)"});
  }
  if (run.timed_out) {
    result.violations.push_back({"timeout", "the wall-clock limit of " + std::to_string(timeout.count()) +
                                                " ms was reached; the process group was killed"});
  }
  if (run.output_exceeded) {
    result.violations.push_back({"output_limit", "more than " + std::to_string(options_.max_output_bytes) +
                                                     " bytes of output; the process group was killed"});
  }
  if (ev.signal.has_value() && *ev.signal == SIGKILL && !run.timed_out && !run.output_exceeded) {
    result.violations.push_back({"killed", "the process was killed by SIGKILL (a hard resource limit)"});
  }
  audit(result, result.violations.empty() ? "ok" : "violations");
  return result;
}

Result<std::string> FindHelper(const SandboxOptions& options) {
  std::string path = options.helper_path;
  if (path.empty()) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return NotFoundError(Errno("cannot locate the running executable (/proc/self/exe)"));
    exe[n] = '\0';
    std::string dir(exe);
    dir = dir.substr(0, dir.rfind('/'));
    path = dir + "/engram-sandbox";
  }
  if (access(path.c_str(), X_OK) != 0) {
    return NotFoundError("the sandbox helper " + path + " is missing or not executable (build the engram-sandbox target)");
  }
  return path;
}

}  // namespace

Result<std::unique_ptr<Sandbox>> OpenLinuxSandbox(const SandboxOptions& options) {
  if (options.default_timeout.count() <= 0 || options.max_timeout < options.default_timeout) {
    return InvalidArgumentError("sandbox timeouts: the default must be positive and at most the maximum");
  }
  if (options.default_memory_mb <= 0 || options.max_memory_mb < options.default_memory_mb) {
    return InvalidArgumentError("sandbox memory: the default must be positive and at most the maximum");
  }
  if (options.max_output_bytes <= 0 || options.max_file_bytes < 0 || options.max_processes < 0) {
    return InvalidArgumentError("sandbox limits must not be negative");
  }
  ENGRAM_ASSIGN_OR_RETURN(std::string helper, FindHelper(options));
  std::string root = ScratchRoot(options);
  struct stat root_stat;
  if (stat(root.c_str(), &root_stat) != 0 || !S_ISDIR(root_stat.st_mode)) {
    return InvalidArgumentError("sandbox scratch root " + root + " is not a directory");
  }
  if (geteuid() == 0 && (root_stat.st_mode & S_IXOTH) == 0) {
    return InvalidArgumentError("sandbox scratch root " + root +
                                " must be searchable by others (o+x): a root engram runs the code as nobody");
  }

  // Probe: the helper sets up every layer exactly as for a real run and reports each.
  std::vector<SandboxLayerStatus> layers;
  Status ready;
  bool wasm = false;
  Result<ScratchDir> scratch = ScratchDir::Create(root);
  if (!scratch.ok()) return scratch.status();
  std::vector<std::string> args = {std::string(sandbox::kFlagProbe), std::string(sandbox::kFlagScratch) + scratch->path(),
                                   std::string(sandbox::kFlagPython) + options.python_path};
  RunLimits limits{kProbeTimeout, 1 << 16, nullptr};
  Result<HelperRun> run = RunHelper(helper, args, {}, limits);
  if (!run.ok()) return run.status();
  ControlEvents ev = ParseControl(run->control);
  std::string first_missing;
  for (std::string_view name : kProbedLayers) {
    SandboxLayerStatus status{std::string(name), false, ""};
    for (const SandboxLayerStatus& reported : ev.layers) {
      if (reported.name == name && reported.available) status = reported;
    }
    if (!status.available) {
      if (first_missing.empty()) {
        first_missing = status.name;
        status.detail = ev.error_layer == name ? ev.error_detail
                        : !ev.error_layer.empty()
                            ? "not probed: layer " + ev.error_layer + " failed first (" + ev.error_detail + ")"
                            : "the helper did not report it (" + Ellipsize(run->stderr_text, 200) + ")";
        if (ev.error_layer != name && !ev.error_layer.empty()) first_missing = ev.error_layer;
      } else {
        status.detail = "not probed: layer " + first_missing + " failed first";
      }
      if (ready.ok()) {
        ready = FailedPreconditionError("sandbox layer " + first_missing + " is unavailable on this host: " +
                                        (ev.error_layer.empty() ? status.detail : ev.error_detail) +
                                        "; execute_code runs nothing without every layer");
      }
    }
    layers.push_back(std::move(status));
  }
  if (ready.ok() && !ev.ready) ready = FailedPreconditionError("the sandbox helper's probe did not finish");
  layers.push_back({"static-analysis", true, "escape idioms rejected before running"});
  layers.push_back({"monitoring", true, "wall-clock watchdog, output caps, seccomp violations reported"});
  for (const auto& [name, ok] : ev.runtimes) {
    if (name == "wasm") wasm = ok;
  }
  return std::unique_ptr<Sandbox>(new LinuxSandbox(options, std::move(helper), std::move(layers), std::move(ready), wasm));
}

}  // namespace engram
