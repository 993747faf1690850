// Opens the store the configuration names: the one place that knows every backend
// (SQLite or PostgreSQL; the LMDB cache decorator plugs in here).
#pragma once

#include <memory>
#include <string>
#include <string_view>

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

// The first line of `path` without its line ending: a secret kept in a file, such as
// storage.password_file or embedding.api_key_file (`setting` names it in errors).
// Errors: kNotFound / kUnavailable naming the setting and the file (never its content);
// kInvalidArgument when the first line is empty.
Result<std::string> ReadSecretFile(std::string_view setting, const std::string& path);

}  // namespace engram::server
