// Layer 2 (network) and the syscall half of layer 6 (monitoring) with seccomp: the runtime
// process installs a filter whose refused syscalls are not failed silently but handed to
// the helper's supervisor process through a seccomp user-notification listener. The
// supervisor answers each with an errno and reports it as a violation, so untrusted code
// can neither run them nor hide that it tried (it never holds the listener).
//
// Refused (EPERM, reported as "syscall" violations): the socket family, ptrace and
// process_vm_*, mount and the new mount API, unshare/setns and clone with CLONE_NEW*,
// set*id/setgroups/capset, the kernel keyring, bpf, perf_event_open, userfaultfd,
// io_uring, module and kexec loading, setsid/setpgid, open_by_handle_at, TIOCSTI and a
// few more (RefusedSyscallNames()). Process creation (fork, vfork, clone without
// CLONE_THREAD) is counted: past the budget it fails with EAGAIN and a "process_limit"
// violation. clone3 fails with ENOSYS (its flags are out of a filter's reach) so libc
// falls back to clone. A foreign-architecture syscall (int 0x80) kills the process.
// With path monitoring on, the path-taking syscalls (FsMonitor) also reach the supervisor,
// which lets them run and reports those Landlock refuses.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "sandbox/fs_monitor.h"

namespace engram::sandbox {

// The syscalls the filter refuses outright, by name.
const std::vector<std::string_view>& RefusedSyscallNames();

// Installs the filter on the calling process and returns the listener descriptor (owned by
// the caller). REQUIRES: no_new_privs set, single-threaded.
// Errors: kFailedPrecondition (seccomp or user notification unsupported, kernel refusal).
Result<int> InstallSeccompFilter(bool monitor_paths = true);

// The supervisor's side: decides what each notified syscall gets. Not thread-safe.
class SeccompSupervisor {
 public:
  // `report(kind, detail)` is called once per new violation (each refused syscall name is
  // reported once per execution; the process budget once).
  using Reporter = std::function<void(std::string_view kind, std::string_view detail)>;
  // `fs` (may be null: file accesses are not reported) must outlive the supervisor.
  SeccompSupervisor(int64_t max_processes, Reporter report, const FsMonitor* fs = nullptr);

  struct Decision {
    bool allow = false;  // let the syscall run as asked
    int error = 0;       // the errno returned when not allowed
  };
  // The answer to syscall `nr` with `args` made by `pid` (in the supervisor's PID
  // namespace), on the native architecture.
  Decision Decide(int nr, const uint64_t args[6], pid_t pid = 0);

  // Answers notifications on `listener_fd` until `child_pidfd` becomes readable (the
  // runtime process exited). Returns when that happens or on an unrecoverable error.
  void Serve(int listener_fd, int child_pidfd);

  int64_t processes_created() const { return processes_created_; }

 private:
  void Report(std::string_view kind, const std::string& detail);

  const int64_t max_processes_;
  Reporter report_;
  const FsMonitor* fs_;
  int64_t processes_created_ = 0;
  std::set<std::string> reported_;
};

// "socket" for the native syscall number, or "syscall 123".
std::string SyscallName(int nr);

}  // namespace engram::sandbox
