#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace engram::sandbox {
namespace {

// Debian 12's linux/landlock.h stops at ABI 2, so the UAPI is spelled out here.
constexpr long kSysCreateRuleset = 444;
constexpr long kSysAddRule = 445;
constexpr long kSysRestrictSelf = 446;
constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

// Filesystem rights, by the ABI that introduced them.
constexpr uint64_t kFsExecute = 1ull << 0;
constexpr uint64_t kFsWriteFile = 1ull << 1;
constexpr uint64_t kFsReadFile = 1ull << 2;
constexpr uint64_t kFsReadDir = 1ull << 3;
constexpr uint64_t kFsRemoveDir = 1ull << 4;
constexpr uint64_t kFsRemoveFile = 1ull << 5;
constexpr uint64_t kFsMakeChar = 1ull << 6;
constexpr uint64_t kFsMakeDir = 1ull << 7;
constexpr uint64_t kFsMakeReg = 1ull << 8;
constexpr uint64_t kFsMakeSock = 1ull << 9;
constexpr uint64_t kFsMakeFifo = 1ull << 10;
constexpr uint64_t kFsMakeBlock = 1ull << 11;
constexpr uint64_t kFsMakeSym = 1ull << 12;
constexpr uint64_t kFsRefer = 1ull << 13;     // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;  // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;  // ABI 5
constexpr uint64_t kFsAbi1 = (1ull << 13) - 1;

// Network rights (ABI 4) and scopes (ABI 6).
constexpr uint64_t kNetBindTcp = 1ull << 0;
constexpr uint64_t kNetConnectTcp = 1ull << 1;
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0;
constexpr uint64_t kScopeSignal = 1ull << 1;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

uint64_t HandledFs(int abi) {
  uint64_t fs = kFsAbi1;
  if (abi >= 2) fs |= kFsRefer;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  return fs;
}

// The rights that apply to a file (as opposed to a directory).
constexpr uint64_t kFileRights = kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;

Status Errno(std::string_view what) {
  return FailedPreconditionError(std::string(what) + ": " + std::strerror(errno));
}

// Adds a path-beneath rule; a missing path is skipped when `optional`.
Status AddPathRule(int ruleset_fd, const std::string& path, uint64_t access, uint64_t handled, bool optional) {
  int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (optional && (errno == ENOENT || errno == ENOTDIR)) return OkStatus();
    return Errno("landlock: open " + path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Errno("landlock: stat " + path);
  }
  PathBeneathAttr attr;
  attr.allowed_access = access & handled;
  if (!S_ISDIR(st.st_mode)) attr.allowed_access &= kFileRights;
  attr.parent_fd = fd;
  long rc = syscall(kSysAddRule, ruleset_fd, kRulePathBeneath, &attr, 0);
  int err = errno;
  close(fd);
  if (rc != 0) {
    errno = err;
    return Errno("landlock_add_rule " + path);
  }
  return OkStatus();
}

}  // namespace

Result<int> LandlockAbi() {
  long abi = syscall(kSysCreateRuleset, nullptr, 0, kCreateRulesetVersion);
  if (abi < 0) {
    if (errno == ENOSYS) return FailedPreconditionError("the kernel has no Landlock (landlock_create_ruleset: ENOSYS)");
    if (errno == EOPNOTSUPP) return FailedPreconditionError("Landlock is disabled at boot (EOPNOTSUPP)");
    return Errno("landlock_create_ruleset");
  }
  if (abi < 1) return FailedPreconditionError("Landlock reports ABI " + std::to_string(abi));
  return static_cast<int>(abi);
}

Status ApplyLandlock(const LandlockPaths& paths) {
  ENGRAM_ASSIGN_OR_RETURN(int abi, LandlockAbi());
  RulesetAttr attr{};
  attr.handled_access_fs = HandledFs(abi);
  size_t attr_size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    attr_size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    attr_size = sizeof(RulesetAttr);
  }
  long ruleset = syscall(kSysCreateRuleset, &attr, attr_size, 0);
  if (ruleset < 0) return Errno("landlock_create_ruleset");
  int fd = static_cast<int>(ruleset);
  const uint64_t handled = attr.handled_access_fs;
  const uint64_t read_only = kFsExecute | kFsReadFile | kFsReadDir;
  const uint64_t read_write_file = kFsReadFile | kFsWriteFile | kFsTruncate;
  const uint64_t read_write_dir = handled & ~(kFsMakeChar | kFsMakeBlock);
  Status status;
  for (const std::string& p : paths.read_only) {
    if (status.ok()) status = AddPathRule(fd, p, read_only, handled, /*optional=*/true);
  }
  for (const std::string& p : paths.read_write_files) {
    if (status.ok()) status = AddPathRule(fd, p, read_write_file, handled, /*optional=*/true);
  }
  for (const std::string& p : paths.read_write_dirs) {
    if (status.ok()) status = AddPathRule(fd, p, read_write_dir, handled, /*optional=*/false);
  }
  if (status.ok() && syscall(kSysRestrictSelf, fd, 0) != 0) status = Errno("landlock_restrict_self");
  close(fd);
  return status;
}

}  // namespace engram::sandbox
