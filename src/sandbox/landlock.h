// Layer 3 (filesystem) with Landlock: the runtime process may read (and execute) the
// runtime's own files, read and write one scratch directory, and nothing else. On ABI 4+
// TCP bind/connect are refused too, and on ABI 6+ signals and abstract UNIX sockets may
// not leave the sandbox. The ABI is probed with landlock_create_ruleset(VERSION).
// Not thread-safe: ApplyLandlock restricts the calling thread (and its future children).
#pragma once

#include <string>
#include <vector>

#include "engram/result.h"

namespace engram::sandbox {

// The Landlock ABI version of the running kernel (1 or more).
// Errors: kFailedPrecondition when Landlock is missing or disabled, with the reason.
Result<int> LandlockAbi();

struct LandlockPaths {
  // Files or directories that may be read and executed (the runtime's binary and
  // libraries). Paths that do not exist are skipped.
  std::vector<std::string> read_only;
  // Files (such as /dev/null) that may be read and written but not created or removed.
  std::vector<std::string> read_write_files;
  // Directories with full access beneath them (the scratch directory), except creating
  // device nodes.
  std::vector<std::string> read_write_dirs;
};

// Restricts the calling process to `paths`. REQUIRES: no_new_privs set (SetNoNewPrivs).
// Errors: kFailedPrecondition (Landlock unavailable, a read_write_dirs path that cannot be
// opened, a kernel refusal).
Status ApplyLandlock(const LandlockPaths& paths);

}  // namespace engram::sandbox
