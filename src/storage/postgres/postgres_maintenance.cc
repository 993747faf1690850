// `engram storage vacuum|stats|migrate` for PostgreSQL: what the SQLite path does with the
// database file, done here on engram's tables in the store's schema. Each call uses a
// connection of its own, outside any pool: VACUUM cannot run inside a transaction block,
// and these run once per command.
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engram/postgres_backend.h"
#include "storage/postgres/pg_connection.h"
#include "storage/postgres/postgres_backend.h"

namespace engram {
namespace {

using postgres::Connection;
using postgres::Params;
using postgres::PgResult;

// Only engram's tables (postgres::kEngramTables) are vacuumed and measured. A name that is not (yet)
// in the schema is skipped, so a store at an older schema version is measured as it is.

Params TableNames() {
  std::vector<std::optional<std::string>> names(std::begin(postgres::kEngramTables), std::end(postgres::kEngramTables));
  return std::move(Params().TextArray(names));
}

Result<std::unique_ptr<Connection>> Connect(const PostgresOptions& options) {
  postgres::ConnectOptions connect;
  connect.conninfo = options.conninfo;
  connect.password = options.password;
  connect.connect_timeout = options.connect_timeout;
  connect.statement_timeout = std::chrono::milliseconds(0);  // VACUUM of a large store takes long
  connect.display = MaskPostgresConninfo(options.conninfo);
  return Connection::Open(connect);
}

// The schema engram's tables live in (the first existing schema of the search_path), for
// messages. Errors: kFailedPrecondition if the search_path names no existing schema.
Result<std::string> CurrentSchema(Connection& conn) {
  ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query("SELECT current_schema(), current_setting('search_path')", Params()));
  if (r.IsNull(0, 0)) {
    return FailedPreconditionError("the PostgreSQL search_path (\"" + r.Text(0, 1) +
                                   "\") names no existing schema: there is no engram store there");
  }
  return r.Text(0, 0);
}

Result<std::vector<PostgresTableSize>> TableSizes(Connection& conn) {
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Query("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1::text[]) "
                 "ORDER BY c.relname",
                 TableNames()));
  std::vector<PostgresTableSize> sizes;
  for (int i = 0; i < r.rows(); ++i) sizes.push_back({r.Text(i, 0), r.Int(i, 1)});
  return sizes;
}

int64_t TotalBytes(const std::vector<PostgresTableSize>& sizes) {
  int64_t total = 0;
  for (const PostgresTableSize& s : sizes) total += s.bytes;
  return total;
}

}  // namespace

Result<std::vector<PostgresTableSize>> PostgresTableSizes(const PostgresOptions& options) {
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connect(options));
  ENGRAM_RETURN_IF_ERROR(CurrentSchema(*conn).status());
  return TableSizes(*conn);
}

Result<PostgresVacuumReport> VacuumPostgres(const PostgresOptions& options) {
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connect(options));
  PostgresVacuumReport report;
  ENGRAM_ASSIGN_OR_RETURN(report.schema, CurrentSchema(*conn));
  ENGRAM_ASSIGN_OR_RETURN(std::vector<PostgresTableSize> before, TableSizes(*conn));
  if (before.empty()) {
    return NotFoundError("schema " + report.schema + " holds no engram tables: nothing to vacuum");
  }
  // Identifiers quoted by the server (format %I): the schema name comes from the conninfo.
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult quoted,
      conn->Query("SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY c.relname) "
                  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1::text[])",
                  TableNames()));
  // One statement on its own: a multi-statement string would run as one transaction
  // block, where VACUUM is refused.
  const std::string sql = "VACUUM (ANALYZE) " + quoted.Text(0, 0);
  ENGRAM_RETURN_IF_ERROR(conn->Exec(sql.c_str()));
  ENGRAM_ASSIGN_OR_RETURN(std::vector<PostgresTableSize> after, TableSizes(*conn));
  for (const PostgresTableSize& s : before) report.tables.push_back(s.table);
  report.bytes_before = TotalBytes(before);
  report.bytes_after = TotalBytes(after);
  return report;
}

Result<int> ReadPostgresSchemaVersion(const PostgresOptions& options) {
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connect(options));
  ENGRAM_ASSIGN_OR_RETURN(PgResult where, conn->Query("SELECT current_schema() IS NOT NULL AND EXISTS ("
                                                      "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                                                      "AND tablename = 'engram_schema_migrations')",
                                                      Params()));
  if (!where.Bool(0, 0)) return 0;
  // Unqualified: current_schema() is the first schema of the search_path, so this is its table.
  ENGRAM_ASSIGN_OR_RETURN(PgResult v,
                          conn->Query("SELECT COALESCE(MAX(version), 0) FROM engram_schema_migrations", Params()));
  return static_cast<int>(v.Int(0, 0));
}

}  // namespace engram
