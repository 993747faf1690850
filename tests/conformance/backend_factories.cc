#include "conformance/backend_factories.h"

#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"
#include "testing/postgres.h"

namespace engram::testing {

std::vector<BackendFactory> AllBackendFactories() {
  return {
      {"Sqlite",
       [](const std::string& dir) {
         SqliteOptions options;
         options.path = dir + "/memory.db";
         return OpenSqliteBackend(options);
       }},
      {"SqliteNormalDurability",
       [](const std::string& dir) {
         SqliteOptions options;
         options.path = dir + "/memory.db";
         options.durability = Durability::kNormal;
         return OpenSqliteBackend(options);
       }},
      // A schema of its own per test on the server in ENGRAM_TEST_PG; skips (loudly) when unset.
      {"Postgres",
       [](const std::string& dir) -> Result<std::unique_ptr<StorageBackend>> {
         PostgresOptions options;
         ENGRAM_ASSIGN_OR_RETURN(options.conninfo, TestPgSchema(dir));
         return OpenPostgresBackend(options);
       },
       TestPgSkipReason},
      // Every case through the LMDB cache decorator, with its folder beside the store.
      {"SqliteWithLmdbCache",
       [](const std::string& dir) -> Result<std::unique_ptr<StorageBackend>> {
         SqliteOptions options;
         options.path = dir + "/memory.db";
         ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> base, OpenSqliteBackend(options));
         LmdbOptions cache;
         cache.path = dir + "/memory.db.cache";
         return OpenLmdbCache(cache, std::move(base));
       }},
  };
}

}  // namespace engram::testing
