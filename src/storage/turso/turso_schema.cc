// The Turso schema and its migrations, run over the Hrana protocol: each version step is one
// batch (one transaction), so a migration that fails leaves the database as it was.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "engram/types.h"
#include "model/stored_columns.h"
#include "storage/turso/turso_backend.h"

namespace engram::turso {

namespace {

// Schema v1, the tables of this file's part (see turso_backend.h). The episode and step
// tables are SQLite's (nested values as JSON text, filter fields as columns); tursodb has
// no WITHOUT ROWID, so steps keep an implicit rowid beside their primary key.
// store_state holds what every process shares: the generation (grows with every write
// batch; caches key on it) and the embedding space of the vectors. episode_vectors.seq is
// AUTOINCREMENT: never reused, so a new or replaced vector sorts after everything a reader
// has seen; vectors are vector32 blobs (raw little-endian float32).
const char* const kSchemaV1[] = {
    "CREATE TABLE engram_schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    R"sql(CREATE TABLE episodes (
  episode_id       TEXT PRIMARY KEY,
  task_description TEXT NOT NULL,
  task_type        TEXT NOT NULL,
  domain           TEXT NOT NULL,
  context_json     TEXT NOT NULL,
  start_time       INTEGER NOT NULL,
  end_time         INTEGER,
  outcome_kind     TEXT,
  outcome_json     TEXT,
  reward_total     REAL,
  reward_json      TEXT,
  reflection_json  TEXT,
  pattern_ids_json TEXT NOT NULL DEFAULT '[]',
  tags_json        TEXT NOT NULL DEFAULT '[]',
  metadata_json    TEXT NOT NULL DEFAULT '{}',
  step_count       INTEGER NOT NULL DEFAULT 0,
  byte_size        INTEGER NOT NULL DEFAULT 0
))sql",
    "CREATE INDEX episodes_by_domain ON episodes(domain, episode_id)",
    R"sql(CREATE TABLE steps (
  episode_id      TEXT NOT NULL,
  step_number     INTEGER NOT NULL,
  timestamp       INTEGER NOT NULL,
  tool            TEXT NOT NULL,
  action          TEXT NOT NULL,
  parameters_json TEXT NOT NULL,
  result_status   TEXT,
  result_output   TEXT,
  result_message  TEXT,
  latency_ms      INTEGER,
  tokens_used     INTEGER,
  PRIMARY KEY (episode_id, step_number)
))sql",
    R"sql(CREATE TABLE store_state (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  generation      INTEGER NOT NULL,
  space_provider  TEXT,
  space_model     TEXT,
  space_dimension INTEGER
))sql",
    "INSERT INTO store_state (id, generation) VALUES (1, 0)",
    R"sql(CREATE TABLE episode_vectors (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  episode_id TEXT NOT NULL UNIQUE,
  space      TEXT NOT NULL,
  vector     BLOB NOT NULL
))sql",
    "CREATE INDEX episode_vectors_by_space ON episode_vectors(space, seq)",
    "CREATE TABLE engram_guard (code TEXT NOT NULL)",
};

// The trigger that turns a guard row of `code` into an abort carrying "engram_guard:<code>".
// RAISE takes a literal message in SQLite's grammar, hence one trigger per code. `code` is
// one of kGuardCodes (letters and '_'), so pasting it into the text is safe.
std::string GuardTrigger(std::string_view code) {
  const std::string c(code);
  return "CREATE TRIGGER engram_guard_" + c + " BEFORE INSERT ON engram_guard WHEN NEW.code = '" + c +
         "' BEGIN SELECT RAISE(ABORT, 'engram_guard:" + c + "'); END";
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the database holds: its tables, and engram's schema version (0: none recorded).
struct DatabaseState {
  std::vector<std::string> tables;
  int64_t version = 0;
};

Result<DatabaseState> ReadState(HranaClient& client) {
  DatabaseState state;
  ENGRAM_ASSIGN_OR_RETURN(HranaResult tables,
                          client.Execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"));
  for (size_t i = 0; i < tables.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string name, tables.Text(i, 0));
    state.tables.push_back(std::move(name));
  }
  if (std::find(state.tables.begin(), state.tables.end(), "engram_schema_migrations") != state.tables.end()) {
    ENGRAM_ASSIGN_OR_RETURN(HranaResult v,
                            client.Execute("SELECT COALESCE(MAX(version), 0) FROM engram_schema_migrations"));
    ENGRAM_ASSIGN_OR_RETURN(state.version, v.Int(0, 0));
  }
  return state;
}

// Refuses a database that holds tables but no engram schema, and one of a newer engram.
Status CheckState(const DatabaseState& state, const std::string& where) {
  if (state.version > kSchemaVersion) {
    return FailedPreconditionError("the Turso database at " + where + " was written by a newer engram (schema " +
                                   std::to_string(state.version) + "; this build knows up to " +
                                   std::to_string(kSchemaVersion) + "). Upgrade engram.");
  }
  if (state.version == 0) {
    std::vector<std::string> foreign;
    for (const std::string& t : state.tables) {
      if (!t.starts_with("sqlite_")) foreign.push_back(t);
    }
    if (!foreign.empty()) {
      std::string names;
      for (size_t i = 0; i < foreign.size() && i < 5; ++i) names += (i ? ", " : "") + foreign[i];
      return FailedPreconditionError("the Turso database at " + where +
                                     " holds tables that are not an engram memory (" + names +
                                     (foreign.size() > 5 ? ", ..." : "") +
                                     "); refusing to touch it. Point --store at an empty database.");
    }
  }
  return OkStatus();
}

// The batch moving the database from `from` to from + 1.
Result<HranaBatch> MigrationBatch(int64_t from) {
  HranaBatch batch;
  switch (from) {
    case 0:
      for (const char* sql : kSchemaV1) batch.Add(sql);
      for (const char* code : kGuardCodes) batch.Add(GuardTrigger(code));
      for (std::string& sql : SearchSchemaStatements()) batch.Add(std::move(sql));
      for (std::string& sql : LearningSchemaStatements()) batch.Add(std::move(sql));
      break;
    default:
      return InternalError("no Turso migration from schema " + std::to_string(from));
  }
  batch.Add("INSERT INTO engram_schema_migrations (version, applied_at) VALUES (?, ?)",
            {HranaValue::Int(from + 1), HranaValue::Int(NowMillis())});
  return batch;
}

}  // namespace

Result<int> Migrate(HranaClient& client) {
  const std::string& where = client.base_url();
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(DatabaseState state, ReadState(client));
    ENGRAM_RETURN_IF_ERROR(CheckState(state, where));
    if (state.version >= kSchemaVersion) return static_cast<int>(state.version);
    ENGRAM_ASSIGN_OR_RETURN(HranaBatch batch, MigrationBatch(state.version));
    Result<std::vector<HranaResult>> done = client.Batch(batch);
    if (done.ok()) continue;
    if (done.status().code() == StatusCode::kUnavailable || done.status().code() == StatusCode::kPermissionDenied) {
      return done.status();
    }
    // Another process may have migrated at the same moment (its CREATE TABLE won): if the
    // version moved, go on from there; otherwise the failure is ours.
    ENGRAM_ASSIGN_OR_RETURN(DatabaseState after, ReadState(client));
    if (after.version <= state.version) {
      return InternalError("migrating the Turso database at " + where + " from schema " +
                           std::to_string(state.version) + " failed: " + std::string(done.status().message()));
    }
  }
}

}  // namespace engram::turso
