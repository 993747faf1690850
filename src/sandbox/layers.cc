#include "sandbox/layers.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

extern char** environ;

namespace engram::sandbox {
namespace {

Status Errno(std::string_view what) {
  return FailedPreconditionError(std::string(what) + ": " + std::strerror(errno));
}

Status WriteFile(const char* path, const std::string& text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Errno(std::string("open ") + path);
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    errno = err;
    return Errno(std::string("write ") + path);
  }
  return OkStatus();
}

// Securebits (linux/securebits.h): exec as uid 0 grants no capabilities, and a uid change
// keeps none, both locked.
constexpr unsigned long kSecbitNoRoot = 1 << 0;
constexpr unsigned long kSecbitNoRootLocked = 1 << 1;
constexpr unsigned long kSecbitNoSetuidFixup = 1 << 2;
constexpr unsigned long kSecbitNoSetuidFixupLocked = 1 << 3;
constexpr unsigned long kSecbitKeepCapsLocked = 1 << 5;
constexpr unsigned long kSecbitNoCapAmbientRaise = 1 << 6;
constexpr unsigned long kSecbitNoCapAmbientRaiseLocked = 1 << 7;

}  // namespace

Status DropRootIdentity() {
  if (geteuid() != 0) return OkStatus();
  if (setgroups(0, nullptr) != 0) return Errno("setgroups");
  if (setresgid(kSandboxGid, kSandboxGid, kSandboxGid) != 0) return Errno("setresgid");
  if (setresuid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) return Errno("setresuid");
  // A uid change clears the dumpable flag; the helper's supervisor needs it set to take
  // the seccomp listener from its child (pidfd_getfd), and it is inherited.
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return Errno("prctl(PR_SET_DUMPABLE)");
  return OkStatus();
}

Status EnterUserNamespace() {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (unshare(CLONE_NEWUSER) != 0) return Errno("unshare(CLONE_NEWUSER)");
  ENGRAM_RETURN_IF_ERROR(WriteFile("/proc/self/setgroups", "deny"));
  ENGRAM_RETURN_IF_ERROR(WriteFile("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n"));
  ENGRAM_RETURN_IF_ERROR(WriteFile("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"));
  return OkStatus();
}

Status EnterNamespace(int flags) {
  if (unshare(flags) != 0) return Errno("unshare");
  return OkStatus();
}

Status MakeMountsPrivate() {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return Errno("mount(MS_REC|MS_PRIVATE)");
  static constexpr char kHostname[] = "sandbox";
  if (sethostname(kHostname, sizeof(kHostname) - 1) != 0) return Errno("sethostname");
  return OkStatus();
}

bool MountSandboxProc() {
  return mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
}

Status ApplyResourceLimits(const ResourceLimits& limits) {
  auto set = [](int resource, const char* name, int64_t soft, int64_t hard) -> Status {
    struct rlimit rl;
    rl.rlim_cur = static_cast<rlim_t>(soft);
    rl.rlim_max = static_cast<rlim_t>(hard);
    if (setrlimit(resource, &rl) != 0) return Errno(std::string("setrlimit(") + name + ")");
    return OkStatus();
  };
  if (limits.cpu_seconds <= 0 || limits.address_space_bytes <= 0 || limits.file_size_bytes < 0 ||
      limits.open_files <= 0 || limits.processes <= 0) {
    return InvalidArgumentError("resource limits must be positive");
  }
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_CPU, "RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1));
  ENGRAM_RETURN_IF_ERROR(
      set(RLIMIT_AS, "RLIMIT_AS", limits.address_space_bytes, limits.address_space_bytes));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_FSIZE, "RLIMIT_FSIZE", limits.file_size_bytes, limits.file_size_bytes));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_NOFILE, "RLIMIT_NOFILE", limits.open_files, limits.open_files));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_NPROC, "RLIMIT_NPROC", limits.processes, limits.processes));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_CORE, "RLIMIT_CORE", 0, 0));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 0, 0));
  ENGRAM_RETURN_IF_ERROR(set(RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE", 0, 0));
  return OkStatus();
}

Status SetNoNewPrivs() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Errno("prctl(PR_SET_NO_NEW_PRIVS)");
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return FailedPreconditionError("no_new_privs did not stick");
  return OkStatus();
}

Status DropCapabilities() {
  unsigned long bits = kSecbitNoRoot | kSecbitNoRootLocked | kSecbitNoSetuidFixup | kSecbitNoSetuidFixupLocked |
                       kSecbitKeepCapsLocked | kSecbitNoCapAmbientRaise | kSecbitNoCapAmbientRaiseLocked;
  if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0) return Errno("prctl(PR_SET_SECUREBITS)");
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;  // past the last known capability
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return Errno("prctl(PR_CAPBSET_DROP)");
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return Errno("prctl(PR_CAP_AMBIENT)");
  struct __user_cap_header_struct header;
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  struct __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof(data));
  if (syscall(SYS_capset, &header, data) != 0) return Errno("capset");
  // Check: nothing is left in the effective or permitted set.
  std::memset(data, 0xff, sizeof(data));
  if (syscall(SYS_capget, &header, data) != 0) return Errno("capget");
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      return FailedPreconditionError("capabilities remain after capset");
    }
  }
  return OkStatus();
}

void ClearEnvironment() {
  static char* empty[] = {nullptr};
  environ = empty;
}

void SetCloexecFrom(int first) {
  // close_range(first, ~0U, CLOSE_RANGE_CLOEXEC) marks them all in one call (Linux 5.11).
  if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0) return;
  for (int fd = first; fd < 1024; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace engram::sandbox
