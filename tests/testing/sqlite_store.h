// A SQLite store for unit tests.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "engram/sqlite_backend.h"
#include "engram/storage.h"

namespace engram::testing {

// A store at `path` with durability NORMAL (no fsync per commit: tests do not need it).
// Null, with a test failure naming why, when it cannot be opened.
inline std::unique_ptr<StorageBackend> OpenTestSqlite(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  options.durability = Durability::kNormal;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  if (!store.ok()) {
    ADD_FAILURE() << "cannot open " << path << ": " << store.status().ToString();
    return nullptr;
  }
  return *std::move(store);
}

}  // namespace engram::testing
