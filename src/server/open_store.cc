#include "server/open_store.h"

#include "engram/sqlite_backend.h"

namespace engram::server {

Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config) {
  SqliteOptions options;
  options.path = config.db_path;
  options.durability = config.durability;
  options.busy_timeout = config.busy_timeout;
  return OpenSqliteBackend(options);
}

}  // namespace engram::server
