#include "conformance/backend_factories.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"
#include "engram/turso_backend.h"
#include "testing/postgres.h"
#include "testing/turso_server.h"

namespace engram::testing {
namespace {

// One tursodb per test folder, serving <dir>/turso.db until the process exits: a Turso
// server holds one database, and ctest runs the cases in parallel, so cases sharing one
// server (ENGRAM_TEST_TURSO) could not each start from an empty store. Reopening the same
// folder reaches the same server, hence the same data. The servers are killed when the
// process exits (the static's destructor).
Result<std::string> TursoServerFor(const std::string& dir) {
  static struct {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<TursoServer>> by_dir;
  } servers;
  std::lock_guard<std::mutex> lock(servers.mu);
  auto it = servers.by_dir.find(dir);
  if (it == servers.by_dir.end()) {
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<TursoServer> server, TursoServer::Start(dir + "/turso.db"));
    it = servers.by_dir.emplace(dir, std::move(server)).first;
  }
  return it->second->url();
}

// Turso cases need the tursodb binary (scripts/install-deps); without it they skip loudly,
// or fail (at open) under ENGRAM_REQUIRE_TURSO=1 as `make test` sets.
std::string TursoSkipReason() {
  const std::string binary = TursoBinary();
  if ((!binary.empty() && std::filesystem::exists(binary)) || TursoRequired()) return "";
  return "\n*** SKIPPED: Turso cases need the tursodb binary (\"" + binary +
         "\"): run scripts/install-deps or set ENGRAM_TURSODB ***\n";
}

}  // namespace

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
      // A tursodb of its own per test (TursoServerFor), reached over the Hrana protocol.
      {"Turso",
       [](const std::string& dir) -> Result<std::unique_ptr<StorageBackend>> {
         TursoOptions options;
         ENGRAM_ASSIGN_OR_RETURN(options.url, TursoServerFor(dir));
         return OpenTursoBackend(options);
       },
       TursoSkipReason},
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
