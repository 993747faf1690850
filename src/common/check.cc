#include "common/check.h"

#include <cstdio>
#include <cstdlib>

namespace engram::internal {
void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "engram: check failed at %s:%d: %s\n", file, line, condition);
  std::abort();
}
}  // namespace engram::internal
