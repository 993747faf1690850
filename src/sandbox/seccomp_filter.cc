#include "sandbox/seccomp_filter.h"

#include <asm/termbits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <seccomp.h>

namespace engram::sandbox {
namespace {

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                     CLONE_NEWNET | CLONE_NEWCGROUP | 0x00000080 /* CLONE_NEWTIME */;

Status SeccompError(std::string_view what, int rc) {
  return FailedPreconditionError(std::string(what) + ": " + std::strerror(rc < 0 ? -rc : rc));
}

}  // namespace

const std::vector<std::string_view>& RefusedSyscallNames() {
  static const std::vector<std::string_view> kNames = {
      // Network: there is nothing to reach in the empty network namespace, and no socket
      // can be made to try.
      "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom", "sendmsg",
      "recvmsg", "sendmmsg", "recvmmsg", "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown",
      // Other processes' memory and kernel introspection.
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "perf_event_open", "bpf",
      "userfaultfd", "lookup_dcookie", "fanotify_init", "modify_ldt",
      // Mounts and namespaces.
      "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig", "fsmount", "fspick",
      "move_mount", "open_tree", "mount_setattr",
      // Identity and privileges.
      "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
      "capset", "personality",
      // The kernel keyring.
      "keyctl", "add_key", "request_key",
      // The kernel itself.
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
      "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime", "clock_adjtime",
      "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm", "vhangup", "uselib",
      // Leaving the process group the watchdog kills.
      "setsid", "setpgid",
      // File handles bypass path checks.
      "name_to_handle_at", "open_by_handle_at",
      // io_uring runs syscalls the filter never sees.
      "io_uring_setup", "io_uring_enter", "io_uring_register",
  };
  return kNames;
}

Result<int> InstallSeccompFilter(bool monitor_paths) {
  if (seccomp_api_get() < 6) {
    return FailedPreconditionError("seccomp user notification with CONTINUE is not supported (libseccomp API level " +
                                   std::to_string(seccomp_api_get()) + ", need 6)");
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return FailedPreconditionError("seccomp_init failed");
  auto fail = [&](std::string_view what, int rc) {
    seccomp_release(ctx);
    return SeccompError(what, rc);
  };
  int rc = 0;
  for (std::string_view name : RefusedSyscallNames()) {
    int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0)) != 0) return fail("seccomp_rule_add " + std::string(name), rc);
  }
  // Process creation is counted by the supervisor; threads run freely; new namespaces
  // are refused.
  if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))) != 0) {
    return fail("seccomp_rule_add clone", rc);
  }
  for (uint64_t bit = 1; bit != 0; bit <<= 1) {
    if ((kNamespaceFlags & bit) == 0) continue;
    rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
    if (rc != 0 && rc != -EEXIST) return fail("seccomp_rule_add clone(CLONE_NEW*)", rc);
  }
  if (monitor_paths) {
    for (const char* name : FsMonitor::PathSyscallNames()) {
      int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR) continue;
      if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0)) != 0) return fail(std::string("seccomp_rule_add ") + name, rc);
    }
  }
  if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(fork), 0)) != 0) return fail("seccomp_rule_add fork", rc);
  if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(vfork), 0)) != 0) return fail("seccomp_rule_add vfork", rc);
  if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) != 0) {
    return fail("seccomp_rule_add clone3", rc);
  }
  for (unsigned long request : {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(ioctl), 1,
                               SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, request))) != 0) {
      return fail("seccomp_rule_add ioctl", rc);
    }
  }
  if ((rc = seccomp_load(ctx)) != 0) return fail("seccomp_load", rc);
  int fd = seccomp_notify_fd(ctx);
  seccomp_release(ctx);
  if (fd < 0) return SeccompError("seccomp_notify_fd", fd);
  return fd;
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) return "syscall " + std::to_string(nr);
  std::string out(name);
  std::free(name);
  return out;
}

SeccompSupervisor::SeccompSupervisor(int64_t max_processes, Reporter report, const FsMonitor* fs)
    : max_processes_(max_processes), report_(std::move(report)), fs_(fs) {}

void SeccompSupervisor::Report(std::string_view kind, const std::string& detail) {
  if (reported_.size() >= 64) return;  // enough to tell what happened
  if (!reported_.insert(std::string(kind) + ":" + detail).second) return;
  if (report_) report_(kind, detail);
}

SeccompSupervisor::Decision SeccompSupervisor::Decide(int nr, const uint64_t args[6], pid_t pid) {
  if (FsMonitor::IsPathSyscall(nr)) {
    // Landlock decides; this only reports what it is about to refuse.
    if (fs_ != nullptr && pid > 0) {
      if (std::optional<std::string> refused = fs_->Check(pid, nr, args)) Report("filesystem", *refused);
    }
    return {true, 0};
  }
  const uint64_t arg0 = args[0];
  bool creates_process = nr == SYS_fork || nr == SYS_vfork;
  if (nr == SYS_clone) {
    if ((arg0 & kNamespaceFlags) != 0) {
      Report("syscall", "clone with CLONE_NEW* flags: refused (new namespaces)");
      return {false, EPERM};
    }
    if ((arg0 & CLONE_THREAD) != 0) return {true, 0};
    creates_process = true;
  }
  if (creates_process) {
    if (processes_created_ < max_processes_) {
      ++processes_created_;
      return {true, 0};
    }
    Report("process_limit", "process creation refused after " + std::to_string(max_processes_) + " processes");
    return {false, EAGAIN};
  }
  Report("syscall", SyscallName(nr) + ": refused");
  return {false, EPERM};
}

void SeccompSupervisor::Serve(int listener_fd, int child_pidfd) {
  struct seccomp_notif* req = nullptr;
  struct seccomp_notif_resp* resp = nullptr;
  if (seccomp_notify_alloc(&req, &resp) != 0) return;
  for (;;) {
    struct pollfd fds[2] = {{listener_fd, POLLIN, 0}, {child_pidfd, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      // The buffer must be zeroed before each receive (the kernel checks).
      std::memset(req, 0, sizeof(*req));
      if (seccomp_notify_receive(listener_fd, req) != 0) continue;  // the caller died meanwhile
      // Only the native architecture reaches here: the filter kills any other.
      uint64_t args[6];
      for (int i = 0; i < 6; ++i) args[i] = req->data.args[i];
      Decision d = Decide(req->data.nr, args, static_cast<pid_t>(req->pid));
      std::memset(resp, 0, sizeof(*resp));
      resp->id = req->id;
      if (d.allow) {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      } else {
        resp->error = -d.error;
      }
      (void)seccomp_notify_respond(listener_fd, resp);  // ENOENT: the caller died meanwhile
      continue;
    }
    if (fds[0].revents & (POLLHUP | POLLERR)) break;  // no process holds the filter any more
    if (fds[1].revents & POLLIN) break;
  }
  seccomp_notify_free(req, resp);
}

}  // namespace engram::sandbox
