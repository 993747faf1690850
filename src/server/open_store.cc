#include "server/open_store.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"

namespace engram::server {
namespace {

// `store` behind the LMDB cache in the folder `cache_path` when cache.enabled. Every process
// that writes the store must agree: one writing around the cache is not seen by the others
// until cache.ttl_seconds pass.
Result<std::unique_ptr<StorageBackend>> WithCache(const Config& config, std::unique_ptr<StorageBackend> store,
                                                  std::string cache_path) {
  if (!config.cache_enabled) return store;
  LmdbOptions options;
  options.path = std::move(cache_path);
  options.max_entries = static_cast<size_t>(config.cache_max_entries);
  options.ttl = config.cache_ttl;
  return OpenLmdbCache(options, std::move(store));
}

}  // namespace

Result<std::string> ReadSecretFile(std::string_view setting, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string message = std::string(setting) + " " + path + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFoundError(message);
    return UnavailableError(message);
  }
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return InvalidArgumentError(std::string(setting) + " " + path + " is empty");
  return line;
}

Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config) {
  if (IsPostgresUrl(config.store_url)) {
    PostgresOptions options;
    options.conninfo = config.store_url;
    options.pool_size = static_cast<size_t>(config.pool_size);
    if (!config.password_file.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(options.password, ReadSecretFile("storage.password_file", config.password_file));
    }
    return OpenPostgresBackend(options);
  }
  SqliteOptions options;
  options.path = config.db_path;
  options.durability = config.durability;
  options.busy_timeout = config.busy_timeout;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenSqliteBackend(options));
  return WithCache(config, std::move(store), config.db_path + ".cache");
}

}  // namespace engram::server
