// Reporting half of layer 3: Landlock refuses file accesses outside the sandbox but tells
// nobody, so the seccomp supervisor also sees the path-taking syscalls (open, exec, mkdir,
// unlink, rename, link, truncate) of the runtime process, lets every one of them run, and
// reports those that Landlock is about to refuse as "filesystem" violations. It decides
// nothing: the kernel's Landlock check is the boundary; this only explains it.
//
// Paths are read from the calling process's memory and resolved like the kernel would
// (cwd and dirfd from /proc when the supervisor mounted its own, symlinks followed), so a
// symlink in scratch that points at /etc/shadow is reported as /etc/shadow.
// Thread-compatible.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/landlock.h"

namespace engram::sandbox {

class FsMonitor {
 public:
  enum class Access { kRead, kWrite, kCreate, kRemove, kExecute };

  // `paths` as given to ApplyLandlock. `proc_mounted`: /proc shows the sandbox's own PID
  // namespace, so /proc/PID/cwd and /proc/PID/fd/N can be read; otherwise relative paths
  // are taken to start in `scratch` (where the runtime starts).
  FsMonitor(const LandlockPaths& paths, std::string scratch, bool proc_mounted);

  // Whether Landlock lets `access` happen to the absolute, resolved `path`.
  bool Allowed(Access access, const std::string& path) const;

  // The violation detail when syscall `nr` with `args`, made by `pid`, touches a path
  // Landlock refuses ("open /etc/shadow for reading"); nullopt when it is allowed, is not
  // a path syscall, or cannot be resolved (the kernel then fails it with ENOENT).
  std::optional<std::string> Check(pid_t pid, int nr, const uint64_t args[6]) const;

  // True for the syscalls Check looks at.
  static bool IsPathSyscall(int nr);
  // The path syscalls by name, for the seccomp filter.
  static const std::vector<const char*>& PathSyscallNames();

 private:
  std::optional<std::string> Resolve(pid_t pid, int dirfd, const std::string& path, bool may_not_exist) const;
  std::optional<std::string> CheckOne(pid_t pid, int dirfd, uint64_t path_addr, Access access,
                                      const char* verb) const;

  std::vector<std::string> read_only_;
  std::vector<std::string> read_write_files_;
  std::vector<std::string> read_write_dirs_;
  std::string scratch_;
  bool proc_mounted_;
};

// Reads a NUL-terminated string of at most PATH_MAX bytes from `pid`'s memory.
std::optional<std::string> ReadProcessString(pid_t pid, uint64_t address);

}  // namespace engram::sandbox
