// The backends the conformance suite runs against. A later issue adds PostgreSQL and the
// LMDB-cached variants here; every case then runs against them too.
#pragma once

#include <functional>
#include <ostream>
#include <memory>
#include <string>
#include <vector>

#include "engram/result.h"
#include "engram/storage.h"

namespace engram::testing {

struct BackendFactory {
  std::string name;
  // Opens (or reopens) the store kept in `dir`; the same dir gives the same data.
  std::function<Result<std::unique_ptr<StorageBackend>>(const std::string& dir)> open;
  // Why this backend's cases must skip here (e.g. no server configured), or "" to run.
  // Unset: always run.
  std::function<std::string()> skip_reason;
};

std::vector<BackendFactory> AllBackendFactories();

// So gtest prints the backend's name, not its bytes.
inline void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

}  // namespace engram::testing
