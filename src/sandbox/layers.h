// The process-level layers of the sandbox (DESIGN §8), one function each, called by the
// engram-sandbox helper in the order below and tested one by one (tests/unit/sandbox).
// Each changes the calling process for good, so tests call them in a forked child.
//
//   outer helper:   DropRootIdentity → EnterUserNamespace → EnterNamespace(...) for PID,
//                   mount, IPC+UTS and network
//   supervisor:     MakeMountsPrivate (it is PID 1 of the new PID namespace)
//   runtime child:  ApplyResourceLimits → SetNoNewPrivs → ApplyLandlock (landlock.h) →
//                   DropCapabilities → InstallSeccompFilter (seccomp_filter.h) →
//                   ClearEnvironment → the runtime
//
// Every function returns kFailedPrecondition when the kernel refuses, with the reason;
// the helper then names the layer and runs nothing. Not thread-safe: call them from a
// single-threaded process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "engram/status.h"

namespace engram::sandbox {

// The identity a root caller takes before entering the namespaces, so that even a broken
// layer leaves the code with nobody's rights on the host.
inline constexpr uid_t kSandboxUid = 65534;
inline constexpr gid_t kSandboxGid = 65534;

// When running as root: drops supplementary groups and switches to kSandboxUid/Gid.
// Does nothing otherwise.
Status DropRootIdentity();

// unshare(CLONE_NEWUSER) and maps the current uid and gid to 0 inside (setgroups denied).
Status EnterUserNamespace();

// unshare(flags), e.g. CLONE_NEWPID. A new PID namespace applies to children only.
Status EnterNamespace(int flags);

// Makes every mount in the (new) mount namespace private, so nothing propagates to the
// host, and sets the hostname to "sandbox". REQUIRES: new mount and UTS namespaces.
Status MakeMountsPrivate();

// Mounts a fresh procfs on /proc showing only the new PID namespace, so the supervisor can
// read its children's cwd and descriptors (fs_monitor.h). REQUIRES: PID 1 of a new PID
// namespace in a new mount namespace. Returns false if the kernel refuses (e.g. a host
// /proc with masked entries); file-access reports then assume the scratch directory.
bool MountSandboxProc();

// Limits for the runtime process; each is set as both soft and hard limit, except CPU
// whose hard limit is one second above the soft one (SIGXCPU first, then SIGKILL).
struct ResourceLimits {
  int64_t cpu_seconds = 5;
  int64_t address_space_bytes = int64_t{256} << 20;
  int64_t file_size_bytes = int64_t{16} << 20;
  int64_t open_files = 64;
  int64_t processes = 32;  // RLIMIT_NPROC, counted per user namespace
};
Status ApplyResourceLimits(const ResourceLimits& limits);

// prctl(PR_SET_NO_NEW_PRIVS): execve can never grant privileges again.
Status SetNoNewPrivs();

// Empties the bounding, ambient, inheritable, permitted and effective capability sets
// (in the user namespace, where the process is uid 0) and locks the securebits so that
// exec as uid 0 grants nothing.
Status DropCapabilities();

// Replaces the environment with an empty one.
void ClearEnvironment();

// Sets FD_CLOEXEC on every descriptor from `first` up.
void SetCloexecFrom(int first);

}  // namespace engram::sandbox
