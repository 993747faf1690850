// Invariant checks. ENGRAM_CHECK is always on and aborts with file:line; ENGRAM_DCHECK
// only in debug builds. Never use either on input from clients, files or the network:
// such input gets a Status.
#pragma once

namespace engram::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace engram::internal

#define ENGRAM_CHECK(cond) \
  ((cond) ? (void)0 : ::engram::internal::CheckFailed(__FILE__, __LINE__, #cond))

#ifdef NDEBUG
#define ENGRAM_DCHECK(cond) ((void)0)
#else
#define ENGRAM_DCHECK(cond) ENGRAM_CHECK(cond)
#endif
