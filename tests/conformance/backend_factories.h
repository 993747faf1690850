// The backends the conformance suite runs against. A later issue adds PostgreSQL and the
// LMDB-cached variants here; every case then runs against them too.
#pragma once

#include <functional>
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
};

std::vector<BackendFactory> AllBackendFactories();

}  // namespace engram::testing
