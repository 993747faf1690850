// Opens the store the configuration names: the one place that knows every backend
// (SQLite today; PostgreSQL and the LMDB cache decorator plug in here).
#pragma once

#include <memory>

#include "config/config.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram::server {

// Errors: the backend's open errors, unchanged.
Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config);

}  // namespace engram::server
