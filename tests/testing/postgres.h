// The PostgreSQL server tests run against: the conninfo in ENGRAM_TEST_PG (`make test`
// starts a throwaway cluster with scripts/pg-test-cluster and sets it). Each test gets a
// schema of its own, so tests are independent and may run in parallel; the schemas a
// process created are dropped when it exits.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "common/fnv.h"
#include "engram/result.h"

namespace engram::testing {

inline constexpr const char* kPgSkipMessage =
    "\n*** SKIPPED: PostgreSQL cases need a server. ENGRAM_TEST_PG is unset; run `make test` (it starts a "
    "throwaway cluster), or: scripts/pg-test-cluster start /tmp/pg && export ENGRAM_TEST_PG=\"$(scripts/"
    "pg-test-cluster conninfo /tmp/pg)\" ***\n";

// ENGRAM_TEST_PG, or "" when unset.
inline std::string TestPgConninfo() {
  const char* v = std::getenv("ENGRAM_TEST_PG");
  return v == nullptr ? std::string() : std::string(v);
}

// Why PostgreSQL cases must skip, or "" when they can run.
inline std::string TestPgSkipReason() { return TestPgConninfo().empty() ? kPgSkipMessage : ""; }

// `conninfo` with `schema` first on the search_path (URL or key=value form).
inline std::string WithSearchPath(const std::string& conninfo, const std::string& schema) {
  if (conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://")) {
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
  }
  return conninfo + " options='-csearch_path=" + schema + "'";
}

namespace internal {

// Runs one statement on a fresh connection to `conninfo`. Errors: kUnavailable.
inline Status PgExec(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s = UnavailableError(std::string("cannot connect to ENGRAM_TEST_PG: ") + PQerrorMessage(conn));
    PQfinish(conn);
    return s;
  }
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
  PGresult* r = PQexec(conn, sql.c_str());
  Status s = PQresultStatus(r) == PGRES_COMMAND_OK ? OkStatus()
                                                   : UnavailableError(sql + ": " + PQresultErrorMessage(r));
  PQclear(r);
  PQfinish(conn);
  return s;
}

// Drops the schemas this process created when it exits.
class SchemaJanitor {
 public:
  static SchemaJanitor& Get() {
    static SchemaJanitor janitor;
    return janitor;
  }
  void Add(const std::string& conninfo, const std::string& schema) {
    std::lock_guard<std::mutex> lock(mu_);
    conninfo_ = conninfo;
    schemas_.insert(schema);
  }
  ~SchemaJanitor() {
    for (const std::string& schema : schemas_) {
      PgExec(conninfo_, "DROP SCHEMA IF EXISTS " + schema + " CASCADE").IgnoreError();
    }
  }

 private:
  std::mutex mu_;
  std::string conninfo_;
  std::set<std::string> schemas_;
};

}  // namespace internal

// A conninfo for ENGRAM_TEST_PG whose tables live in a schema named after `key` (a test's
// temp dir: the same key gives the same schema, so reopening finds the same data).
// Errors: kFailedPrecondition if ENGRAM_TEST_PG is unset; kUnavailable if the server
// cannot be reached.
inline Result<std::string> TestPgSchema(const std::string& key) {
  std::string base = TestPgConninfo();
  if (base.empty()) return FailedPreconditionError("ENGRAM_TEST_PG is unset");
  const std::string name = "engram_test_" + Fnv1aHex(key);
  Status created = internal::PgExec(base, std::string("CREATE SCHEMA IF NOT EXISTS ") + name);
  if (!created.ok()) return created;
  internal::SchemaJanitor::Get().Add(base, name);
  return WithSearchPath(base, name);
}

}  // namespace engram::testing
