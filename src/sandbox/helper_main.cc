// engram-sandbox: the helper engram starts for every execute_code call (helper_protocol.h
// describes how they talk). It is three processes:
//
//   outer       drops root, enters new user, mount, PID, IPC, UTS and network namespaces,
//               waits for the supervisor and exits with its status;
//   supervisor  PID 1 of the new PID namespace: makes mounts private, starts the runtime
//               process, takes its seccomp listener and answers refused syscalls, reporting
//               each as a violation; when it exits the kernel kills whatever is left in the
//               namespace;
//   runtime     sets rlimits, no_new_privs, Landlock, drops capabilities, installs the
//               seccomp filter, clears the environment, closes the control pipe and runs
//               the code (Duktape in process, or execs python3 -I -S).
//
// Any layer that fails writes `error LAYER DETAIL` and exits kExitSetupFailed before
// anything runs. With --probe every layer is set up the same way, reported as
// `layer NAME ok DETAIL`, and nothing runs.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/helper_protocol.h"
#include "sandbox/js_runtime.h"
#include "sandbox/landlock.h"
#include "sandbox/layers.h"
#include "sandbox/runtime_paths.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/wasm_runtime.h"

namespace engram::sandbox {
namespace {

// Address space the runtime itself needs besides the code's memory (libraries, stacks,
// the interpreter's own start-up allocations).
constexpr int64_t kRuntimeBaselineBytes = int64_t{96} << 20;

struct HelperArgs {
  bool probe = false;
  std::string language = "javascript";
  std::string scratch;
  int64_t timeout_ms = 5000;
  int64_t memory_mb = 128;
  int64_t max_file_bytes = int64_t{16} << 20;
  int64_t max_processes = 16;
  std::string python = "/usr/bin/python3";
  std::string entry;
  std::string args_json;
};

void WriteAll(int fd, std::string_view text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void Control(std::string_view kind, std::string_view a, std::string_view detail = {}) {
  WriteAll(kControlFd, ControlLine(kind, a, detail));
}

[[noreturn]] void FailLayer(std::string_view layer, std::string_view detail) {
  Control("error", layer, detail);
  _exit(kExitSetupFailed);
}

// Sets up one layer or fails closed; in probe mode also reports it.
void Require(const HelperArgs& args, std::string_view layer, const Status& status, std::string_view ok_detail = {}) {
  if (!status.ok()) FailLayer(layer, status.message());
  if (args.probe) Control("layer", std::string(layer) + " ok", ok_detail);
}

bool ParseInt(std::string_view text, int64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && *out >= 0;
}

bool ParseArgs(int argc, char** argv, HelperArgs* out, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view flag, std::string* dst) {
      if (!a.starts_with(flag)) return false;
      *dst = std::string(a.substr(flag.size()));
      return true;
    };
    auto number = [&](std::string_view flag, int64_t* dst) {
      if (!a.starts_with(flag)) return false;
      if (!ParseInt(a.substr(flag.size()), dst)) *error = "bad number in " + std::string(a);
      return true;
    };
    if (a == kFlagProbe) {
      out->probe = true;
    } else if (value(kFlagLanguage, &out->language) || value(kFlagScratch, &out->scratch) ||
               value(kFlagPython, &out->python) || value(kFlagEntry, &out->entry) ||
               value(kFlagArgs, &out->args_json) || number(kFlagTimeoutMs, &out->timeout_ms) ||
               number(kFlagMemoryMb, &out->memory_mb) || number(kFlagMaxFileBytes, &out->max_file_bytes) ||
               number(kFlagMaxProcesses, &out->max_processes)) {
      if (!error->empty()) return false;
    } else {
      *error = "unknown argument " + std::string(a.substr(0, 64));
      return false;
    }
  }
  if (out->scratch.empty() || out->scratch.front() != '/') {
    *error = "--scratch must be an absolute directory";
    return false;
  }
  if (out->memory_mb < 1 || out->timeout_ms < 1) {
    *error = "--memory-mb and --timeout-ms must be positive";
    return false;
  }
  return true;
}

std::string ReadStdin() {
  std::string code;
  char buf[65536];
  for (;;) {
    ssize_t n = read(0, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) break;
    code.append(buf, static_cast<size_t>(n));
    if (code.size() > kMaxCodeBytes) FailLayer(kLayerRuntime, "the program is larger than 4 MiB");
  }
  return code;
}

void ResetSignals() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

bool ReadFull(int fd, void* buf, size_t size) {
  auto* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool IsInProcessEngine(const HelperArgs& args) { return args.language == "javascript" || args.language == "wasm"; }

// ---- runtime process ---------------------------------------------------------------------

LandlockPaths RuntimePaths(const HelperArgs& args) {
  LandlockPaths paths;
  paths.read_write_dirs.push_back(args.scratch);
  paths.read_write_files.push_back("/dev/null");
  if (args.language == "python") paths.read_only = PythonReadOnlyPaths(args.python);
  return paths;
}

[[noreturn]] void RunRuntime(const HelperArgs& args, const std::string& code, const LandlockPaths& paths,
                             int to_child, int from_child) {
  // Python reads its program from a file in the scratch directory, written before the
  // file size limit applies.
  if (chdir(args.scratch.c_str()) != 0) {
    FailLayer(kLayerRuntime, "cannot enter the scratch directory " + args.scratch + ": " + std::strerror(errno));
  }
  bool python = args.language == "python";
  if (python && !args.probe) {
    int fd = open("main.py", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) FailLayer(kLayerRuntime, "cannot write main.py: " + std::string(std::strerror(errno)));
    WriteAll(fd, code);
    if (!args.entry.empty()) WriteAll(fd, PythonEntryEpilogue(args.entry, args.args_json));
    close(fd);
  }

  ResourceLimits limits;
  limits.cpu_seconds = (args.timeout_ms + 999) / 1000 + 1;
  limits.address_space_bytes = (args.memory_mb << 20) + kRuntimeBaselineBytes;
  limits.file_size_bytes = args.max_file_bytes;
  limits.open_files = 64;
  // The seccomp supervisor enforces the process budget exactly; RLIMIT_NPROC (which also
  // counts threads and the helper's own processes) is the kernel's backstop.
  limits.processes = args.max_processes + 16;
  Require(args, kLayerRlimits, ApplyResourceLimits(limits));
  Require(args, kLayerNoNewPrivs, SetNoNewPrivs());

  Result<int> abi = LandlockAbi();
  Require(args, kLayerLandlock, ApplyLandlock(paths), abi.ok() ? "ABI " + std::to_string(*abi) : "");
  Require(args, kLayerCapabilities, DropCapabilities());

  Result<int> listener = InstallSeccompFilter();
  if (!listener.ok()) FailLayer(kLayerSeccomp, listener.status().message());
  // Hand the listener to the supervisor (it takes it with pidfd_getfd), then drop ours.
  int32_t fd_number = *listener;
  WriteAll(from_child, std::string_view(reinterpret_cast<const char*>(&fd_number), sizeof(fd_number)));
  char ack = 0;
  if (!ReadFull(to_child, &ack, 1) || ack != 1) _exit(kExitSetupFailed);  // the supervisor reported why
  close(*listener);
  close(to_child);
  close(from_child);

  ClearEnvironment();
  if (args.probe) {
    Control("runtime", "javascript ok");
    if (WasmRuntimeAvailable()) {
      Control("runtime", "wasm ok");
    } else {
      Control("runtime", "wasm missing", "built without wabt");
    }
    if (access(args.python.c_str(), X_OK) == 0) {
      Control("runtime", "python ok");
    } else {
      Control("runtime", "python missing", args.python + " is not installed");
    }
    Control("ready", "");
    _exit(0);
  }
  if (python) {
    if (access(args.python.c_str(), X_OK) != 0) FailLayer(kLayerRuntime, "python3 is not installed at " + args.python);
    Control("ready", "");
    std::string interpreter = args.python;
    char* argv[] = {const_cast<char*>("python3"), const_cast<char*>("-I"), const_cast<char*>("-S"),
                    const_cast<char*>("-B"), const_cast<char*>("main.py"), nullptr};
    // Only what the runtime needs: UTF-8 text, and a time zone that spares /etc/localtime.
    char* envp[] = {const_cast<char*>("LC_CTYPE=C.UTF-8"), const_cast<char*>("TZ=UTC"), nullptr};
    execve(interpreter.c_str(), argv, envp);
    FailLayer(kLayerRuntime, "execve " + interpreter + ": " + std::strerror(errno));
  }
  Control("ready", "");
  close(kControlFd);  // untrusted code never holds the control pipe
  int64_t heap = args.memory_mb << 20;
  if (args.language == "javascript") _exit(RunJavaScript(code, args.entry, args.args_json, heap));
  if (args.language == "wasm") _exit(RunWasm(code, args.entry, args.args_json, heap));
  WriteAll(2, "unknown language " + args.language + "\n");
  _exit(kExitEngineError);
}

// ---- supervisor (PID 1 of the sandbox) ------------------------------------------------

[[noreturn]] void RunSupervisor(const HelperArgs& args, const std::string& code) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getpid() != 1) FailLayer(kLayerPidNamespace, "the supervisor is not PID 1 of a new PID namespace");
  Require(args, kLayerMountNamespace, MakeMountsPrivate());
  const bool proc_mounted = MountSandboxProc();
  const LandlockPaths paths = RuntimePaths(args);
  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
    FailLayer(kLayerRuntime, "pipe: " + std::string(std::strerror(errno)));
  }
  pid_t child = fork();
  if (child < 0) FailLayer(kLayerRuntime, "fork: " + std::string(std::strerror(errno)));
  if (child == 0) {
    close(to_child[1]);
    close(from_child[0]);
    RunRuntime(args, code, paths, to_child[0], from_child[1]);
  }
  close(to_child[0]);
  close(from_child[1]);

  int status = 0;
  int32_t fd_number = -1;
  if (!ReadFull(from_child[0], &fd_number, sizeof(fd_number))) {
    // The runtime process failed to set up a layer and said which.
    waitpid(child, &status, 0);
    _exit(kExitSetupFailed);
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  int listener = pidfd < 0 ? -1 : static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd_number, 0));
  if (listener < 0) {
    kill(child, SIGKILL);
    FailLayer(kLayerSeccomp, "cannot take the seccomp listener from the runtime process: " +
                                 std::string(std::strerror(errno)));
  }
  char ack = 1;
  WriteAll(to_child[1], std::string_view(&ack, 1));
  close(to_child[1]);
  close(from_child[0]);
  if (args.probe) Control("layer", std::string(kLayerSeccomp) + " ok", "user notification");

  FsMonitor fs(paths, args.scratch, proc_mounted);
  SeccompSupervisor supervisor(
      args.max_processes,
      [](std::string_view kind, std::string_view detail) { Control("violation", kind, detail); }, &fs);
  supervisor.Serve(listener, pidfd);
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    int code_out = WEXITSTATUS(status);
    if (code_out == kExitSetupFailed) _exit(kExitSetupFailed);
    if (IsInProcessEngine(args) && code_out == kExitEngineMemory) {
      Control("violation", "memory", "the engine's heap limit of " + std::to_string(args.memory_mb) + " MiB was reached");
    }
    Control("exit", std::to_string(code_out));
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGXCPU) Control("violation", "cpu_time", "the CPU time limit was reached");
    if (sig == SIGXFSZ) Control("violation", "file_size", "a file grew past the size limit");
    if (sig == SIGSYS) Control("violation", "syscall", "killed by seccomp (a foreign-architecture syscall)");
    Control("signal", std::to_string(sig));
  }
  _exit(0);
}

// ---- outer ------------------------------------------------------------------------------

int Main(int argc, char** argv) {
  ResetSignals();
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (fcntl(kControlFd, F_GETFD) < 0) return kExitSetupFailed;  // not started by engram
  SetCloexecFrom(kControlFd);
  HelperArgs args;
  std::string error;
  if (!ParseArgs(argc, argv, &args, &error)) FailLayer(kLayerRuntime, error);
  std::string code = args.probe ? std::string() : ReadStdin();
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || dup2(devnull, 0) < 0) FailLayer(kLayerRuntime, "cannot open /dev/null");
  close(devnull);

  if (Status s = DropRootIdentity(); !s.ok()) FailLayer(kLayerUserNamespace, s.message());
  Require(args, kLayerUserNamespace, EnterUserNamespace());
  if (Status s = EnterNamespace(CLONE_NEWNS); !s.ok()) FailLayer(kLayerMountNamespace, s.message());
  Require(args, kLayerPidNamespace, EnterNamespace(CLONE_NEWPID));
  Require(args, kLayerIpcUtsNamespace, EnterNamespace(CLONE_NEWIPC | CLONE_NEWUTS));
  Require(args, kLayerNetworkNamespace, EnterNamespace(CLONE_NEWNET));

  pid_t supervisor = fork();
  if (supervisor < 0) FailLayer(kLayerPidNamespace, "fork: " + std::string(std::strerror(errno)));
  if (supervisor == 0) RunSupervisor(args, code);
  int status = 0;
  while (waitpid(supervisor, &status, 0) < 0) {
    if (errno != EINTR) return kExitSetupFailed;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace
}  // namespace engram::sandbox

int main(int argc, char** argv) { return engram::sandbox::Main(argc, argv); }
