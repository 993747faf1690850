// Opens the store the configuration names: the one place that knows every backend
// (SQLite or PostgreSQL; the LMDB cache decorator plugs in here).
#pragma once

#include <memory>

#include "config/config.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram::server {

// PostgreSQL when storage.url is a postgres:// or postgresql:// URL (password from
// storage.password_file when set, else the URL, PGPASSWORD or ~/.pgpass), else the SQLite
// file in storage.db.
// Errors: the backend's open errors, unchanged; kNotFound / kUnavailable / kInvalidArgument
// if storage.password_file is missing, unreadable or empty.
Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config);

}  // namespace engram::server
