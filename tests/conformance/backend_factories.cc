#include "conformance/backend_factories.h"

#include "engram/sqlite_backend.h"

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
  };
}

}  // namespace engram::testing
