#include "sandbox/fs_monitor.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace engram::sandbox {
namespace {

std::optional<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return std::nullopt;
  return std::string(buf);
}

bool Under(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root || (path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/');
}

std::optional<std::string> ReadLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

bool ReadProcessMemory(pid_t pid, uint64_t address, void* out, size_t size) {
  struct iovec local = {out, size};
  struct iovec remote = {reinterpret_cast<void*>(address), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

}  // namespace

std::optional<std::string> ReadProcessString(pid_t pid, uint64_t address) {
  std::string out;
  char buf[256];
  while (out.size() < PATH_MAX) {
    // Never read across a page boundary in one go: the next page may be unmapped.
    size_t page_left = 4096 - (address % 4096);
    size_t n = std::min(sizeof(buf), page_left);
    struct iovec local = {buf, n};
    struct iovec remote = {reinterpret_cast<void*>(address), n};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got <= 0) return std::nullopt;
    for (ssize_t i = 0; i < got; ++i) {
      if (buf[i] == '\0') return out;
      out += buf[i];
    }
    address += static_cast<uint64_t>(got);
  }
  return std::nullopt;
}

FsMonitor::FsMonitor(const LandlockPaths& paths, std::string scratch, bool proc_mounted)
    : scratch_(RealPath(scratch).value_or(scratch)), proc_mounted_(proc_mounted) {
  for (const std::string& p : paths.read_only) {
    if (std::optional<std::string> r = RealPath(p)) read_only_.push_back(*r);
  }
  for (const std::string& p : paths.read_write_files) {
    if (std::optional<std::string> r = RealPath(p)) read_write_files_.push_back(*r);
  }
  for (const std::string& p : paths.read_write_dirs) read_write_dirs_.push_back(RealPath(p).value_or(p));
}

bool FsMonitor::Allowed(Access access, const std::string& path) const {
  for (const std::string& d : read_write_dirs_) {
    if (Under(path, d)) return true;
  }
  for (const std::string& f : read_write_files_) {
    if (path == f) return access == Access::kRead || access == Access::kWrite;
  }
  for (const std::string& r : read_only_) {
    if (Under(path, r)) return access == Access::kRead || access == Access::kExecute;
  }
  return false;
}

std::optional<std::string> FsMonitor::Resolve(pid_t pid, int dirfd, const std::string& path, bool may_not_exist) const {
  if (path.empty()) return std::nullopt;
  std::string full;
  if (path.front() == '/') {
    full = path;
    // The caller's /proc/self, not the supervisor's.
    if (full == "/proc/self" || full.starts_with("/proc/self/")) full = "/proc/" + std::to_string(pid) + full.substr(10);
  } else {
    std::optional<std::string> base;
    if (dirfd == AT_FDCWD) {
      base = proc_mounted_ ? ReadLink("/proc/" + std::to_string(pid) + "/cwd") : scratch_;
    } else if (proc_mounted_) {
      base = ReadLink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(dirfd));
    }
    if (!base.has_value()) return std::nullopt;
    full = *base + "/" + path;
  }
  if (std::optional<std::string> r = RealPath(full)) return r;
  // A directory on the way that the code may not search (as nobody: /root): refused by
  // the host's permissions before Landlock even looks; still an attempt worth reporting.
  if (errno == EACCES) return full;
  if (!may_not_exist) return std::nullopt;
  // Being created: resolve the directory it goes in.
  while (full.size() > 1 && full.back() == '/') full.pop_back();
  size_t slash = full.rfind('/');
  std::string parent = slash == 0 ? "/" : full.substr(0, slash);
  std::optional<std::string> r = RealPath(parent);
  if (!r.has_value()) return std::nullopt;
  return (*r == "/" ? "" : *r) + "/" + full.substr(slash + 1);
}

std::optional<std::string> FsMonitor::CheckOne(pid_t pid, int dirfd, uint64_t path_addr, Access access,
                                               const char* verb) const {
  std::optional<std::string> path = ReadProcessString(pid, path_addr);
  if (!path.has_value()) return std::nullopt;
  bool creating = access == Access::kCreate;
  std::optional<std::string> resolved = Resolve(pid, dirfd, *path, creating);
  if (!resolved.has_value()) return std::nullopt;
  if (Allowed(access, *resolved)) return std::nullopt;
  std::string detail = std::string(verb) + " " + *resolved;
  if (*resolved != *path) detail += " (as \"" + path->substr(0, 200) + "\")";
  return detail + ": outside the scratch directory and the runtime's files";
}

std::optional<std::string> FsMonitor::Check(pid_t pid, int nr, const uint64_t args[6]) const {
  auto fd = [](uint64_t v) { return static_cast<int>(static_cast<int32_t>(v)); };
  auto open_check = [&](int dirfd, uint64_t path_addr, uint64_t flags) -> std::optional<std::string> {
    if (flags & O_PATH) return std::nullopt;  // Landlock does not check O_PATH opens
    bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    if (flags & O_CREAT) {
      std::optional<std::string> path = ReadProcessString(pid, path_addr);
      if (!path.has_value()) return std::nullopt;
      std::optional<std::string> existing = Resolve(pid, dirfd, *path, false);
      if (!existing.has_value()) return CheckOne(pid, dirfd, path_addr, Access::kCreate, "create");
    }
    return CheckOne(pid, dirfd, path_addr, write ? Access::kWrite : Access::kRead,
                    write ? "open for writing" : "open for reading");
  };
  switch (nr) {
#ifdef SYS_open
    case SYS_open: return open_check(AT_FDCWD, args[0], args[1]);
    case SYS_creat: return open_check(AT_FDCWD, args[0], O_CREAT | O_WRONLY | O_TRUNC);
    case SYS_mkdir: return CheckOne(pid, AT_FDCWD, args[0], Access::kCreate, "create directory");
    case SYS_rmdir: return CheckOne(pid, AT_FDCWD, args[0], Access::kRemove, "remove directory");
    case SYS_unlink: return CheckOne(pid, AT_FDCWD, args[0], Access::kRemove, "remove");
    case SYS_rename: {
      if (auto d = CheckOne(pid, AT_FDCWD, args[0], Access::kRemove, "rename")) return d;
      return CheckOne(pid, AT_FDCWD, args[1], Access::kCreate, "rename to");
    }
    case SYS_link: {
      if (auto d = CheckOne(pid, AT_FDCWD, args[0], Access::kRemove, "hard-link")) return d;
      return CheckOne(pid, AT_FDCWD, args[1], Access::kCreate, "hard-link to");
    }
#endif
    case SYS_openat: return open_check(fd(args[0]), args[1], args[2]);
    case SYS_openat2: {
      struct open_how how;
      std::memset(&how, 0, sizeof(how));
      if (!ReadProcessMemory(pid, args[2], &how, sizeof(how.flags))) return std::nullopt;
      return open_check(fd(args[0]), args[1], how.flags);
    }
    case SYS_execve: return CheckOne(pid, AT_FDCWD, args[0], Access::kExecute, "execute");
    case SYS_execveat: return CheckOne(pid, fd(args[0]), args[1], Access::kExecute, "execute");
    case SYS_mkdirat: return CheckOne(pid, fd(args[0]), args[1], Access::kCreate, "create directory");
    case SYS_unlinkat: return CheckOne(pid, fd(args[0]), args[1], Access::kRemove, "remove");
    case SYS_renameat:
    case SYS_renameat2: {
      if (auto d = CheckOne(pid, fd(args[0]), args[1], Access::kRemove, "rename")) return d;
      return CheckOne(pid, fd(args[2]), args[3], Access::kCreate, "rename to");
    }
    case SYS_linkat: {
      if (auto d = CheckOne(pid, fd(args[0]), args[1], Access::kRemove, "hard-link")) return d;
      return CheckOne(pid, fd(args[2]), args[3], Access::kCreate, "hard-link to");
    }
    case SYS_truncate: return CheckOne(pid, AT_FDCWD, args[0], Access::kWrite, "truncate");
    default: return std::nullopt;
  }
}

const std::vector<const char*>& FsMonitor::PathSyscallNames() {
  static const std::vector<const char*> kNames = {
      "open",  "creat", "mkdir",  "rmdir",     "unlink",   "rename",    "link",   "openat",  "openat2",
      "execve", "execveat", "mkdirat", "unlinkat", "renameat", "renameat2", "linkat", "truncate"};
  return kNames;
}

bool FsMonitor::IsPathSyscall(int nr) {
  switch (nr) {
#ifdef SYS_open
    case SYS_open:
    case SYS_creat:
    case SYS_mkdir:
    case SYS_rmdir:
    case SYS_unlink:
    case SYS_rename:
    case SYS_link:
#endif
    case SYS_openat:
    case SYS_openat2:
    case SYS_execve:
    case SYS_execveat:
    case SYS_mkdirat:
    case SYS_unlinkat:
    case SYS_renameat:
    case SYS_renameat2:
    case SYS_linkat:
    case SYS_truncate:
      return true;
    default:
      return false;
  }
}

}  // namespace engram::sandbox
