#include "storage/sqlite/sqlite_schema.h"

#include <string_view>

#include "engram/types.h"
#include "storage/sqlite/sqlite_index.h"
#include "storage/sqlite/sqlite_rows.h"

namespace engram::sqlite {

namespace {

// Schema v1. Steps are rows of their own so appending one never rewrites the episode;
// nested values that are only read whole (context, outcome, reward, reflection) are
// JSON text; fields that filters use are columns.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE episodes (
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
);
CREATE INDEX episodes_by_domain ON episodes(domain, episode_id);
CREATE TABLE steps (
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
) WITHOUT ROWID;
)sql";

// Schema v2: the retrieval index.
// - store_state: one row of values every process shares. `generation` grows with every
//   write transaction (caches key on it); `indexed` counts episode_docs rows, so the
//   document count of GetTermStats costs nothing; the embedding space of the vectors.
// - episode_docs: the completed episodes in the full-text index. doc_id is the FTS rowid;
//   an INTEGER PRIMARY KEY, so VACUUM keeps it (it may renumber implicit rowids). Holding
//   the domain here lets searches filter without reading episodes.
// - episode_fts: SearchDocument's title and body. They are already normalised words
//   (model/search_text.h), so the 'ascii' tokenizer, which splits at ASCII non-alphanumerics
//   and keeps bytes >= 0x80 inside words, cuts them exactly as SearchTokens does.
// - episode_fts_terms: per-word document counts for GetTermStats.
// - episode_vectors: one vector per completed episode. seq is AUTOINCREMENT: never reused,
//   so a new or replaced vector always sorts after everything a reader has seen.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE store_state (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  generation      INTEGER NOT NULL,
  indexed         INTEGER NOT NULL,
  space_provider  TEXT,
  space_model     TEXT,
  space_dimension INTEGER
);
INSERT INTO store_state (id, generation, indexed) VALUES (1, 0, 0);
CREATE TABLE episode_docs (
  doc_id     INTEGER PRIMARY KEY,
  episode_id TEXT NOT NULL UNIQUE,
  domain     TEXT NOT NULL
);
CREATE VIRTUAL TABLE episode_fts USING fts5(title, body, tokenize = 'ascii');
CREATE VIRTUAL TABLE episode_fts_terms USING fts5vocab(episode_fts, row);
CREATE TABLE episode_vectors (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  episode_id TEXT NOT NULL UNIQUE,
  space      TEXT NOT NULL,
  vector     BLOB NOT NULL
);
)sql";

constexpr const char* kCompletedEpisodesSql =
    "SELECT episode_id, task_description, task_type, context_json, start_time, end_time, outcome_json, "
    "reward_json, reflection_json, pattern_ids_json, tags_json, metadata_json "
    "FROM episodes WHERE outcome_kind IS NOT NULL ORDER BY episode_id";

// Schema v3: learning. Nested values read only whole (context, evidence, body) are JSON
// text; what filters and ordering use are columns. Timestamps are milliseconds, as for
// episodes. extraction_pending holds the completed episodes the learning pipeline has not
// seen yet; its key order is the episodes' age (UUIDv7 ids are time-ordered).
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE patterns (
  pattern_id           TEXT PRIMARY KEY,
  type                 TEXT NOT NULL,
  similarity_key       TEXT NOT NULL UNIQUE,
  description          TEXT NOT NULL,
  body_json            TEXT NOT NULL,
  domain               TEXT NOT NULL,
  context_json         TEXT NOT NULL,
  occurrences          INTEGER NOT NULL,
  successes            INTEGER NOT NULL,
  success_rate         REAL NOT NULL,
  avg_latency_ms       REAL NOT NULL,
  evidence_json        TEXT NOT NULL,
  times_retrieved      INTEGER NOT NULL,
  times_applied        INTEGER NOT NULL,
  success_when_applied INTEGER NOT NULL,
  failure_when_applied INTEGER NOT NULL,
  last_used            INTEGER,
  decay_weight         REAL NOT NULL,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
CREATE INDEX patterns_by_domain ON patterns(domain);
CREATE TABLE heuristics (
  heuristic_id         TEXT PRIMARY KEY,
  condition            TEXT NOT NULL,
  action               TEXT NOT NULL,
  confidence           REAL NOT NULL,
  evidence_json        TEXT NOT NULL,
  success_rate         REAL NOT NULL,
  sample_size          INTEGER NOT NULL,
  source_pattern_id    TEXT NOT NULL,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
CREATE INDEX heuristics_by_confidence ON heuristics(confidence DESC, heuristic_id DESC);
CREATE TABLE attributions (
  episode_id TEXT NOT NULL,
  pattern_id TEXT NOT NULL,
  applied    INTEGER NOT NULL,
  at         INTEGER NOT NULL,
  credited   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (episode_id, pattern_id)
) WITHOUT ROWID;
CREATE TABLE extraction_pending (
  episode_id TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO extraction_pending (episode_id) SELECT episode_id FROM episode_docs;
)sql";

// Schema v4: the full-text index's change marks, for the in-memory mirror of it
// (sqlite_postings.h). next_doc numbers episode_docs rows, so a doc_id is never used twice
// (a bare INTEGER PRIMARY KEY reuses the largest after it is deleted: re-completing the
// newest episode would keep its doc_id with new text); unindexed counts the rows removed.
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE store_state ADD COLUMN next_doc INTEGER NOT NULL DEFAULT 1;
ALTER TABLE store_state ADD COLUMN unindexed INTEGER NOT NULL DEFAULT 0;
UPDATE store_state SET next_doc = COALESCE((SELECT MAX(doc_id) FROM episode_docs), 0) + 1;
)sql";

// v1 → v2: the tables, then every completed episode already stored into the index.
Status MigrateToV2(Connection& conn) {
  ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV2));
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kCompletedEpisodesSql));
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(stmt));
    ENGRAM_RETURN_IF_ERROR(ReadSteps(conn, e));
    // store_state has no next_doc before v4: rowids number the documents (v4 moves
    // next_doc past them).
    ENGRAM_RETURN_IF_ERROR(IndexEpisode(conn, e, DocNumbering::kRowid));
  }
  return OkStatus();
}

// Moves the file from `from` to from + 1. REQUIRES: inside a write transaction.
Status MigrateStep(Connection& conn, int64_t from) {
  switch (from) {
    case 0:
      ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV1));
      return conn.Exec(("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
    case 1:
      return MigrateToV2(conn);
    case 2:
      return conn.Exec(kSchemaV3);
    case 3:
      return conn.Exec(kSchemaV4);
    default:
      return InternalError("no migration from schema " + std::to_string(from));
  }
}

}  // namespace

Result<FileMarks> ReadMarks(Connection& conn) {
  FileMarks m;
  ENGRAM_ASSIGN_OR_RETURN(Statement a, conn.Prepare("PRAGMA application_id"));
  ENGRAM_ASSIGN_OR_RETURN(bool has_a, a.Step());
  if (has_a) m.application_id = a.ColumnInt(0);
  ENGRAM_ASSIGN_OR_RETURN(Statement v, conn.Prepare("PRAGMA user_version"));
  ENGRAM_ASSIGN_OR_RETURN(bool has_v, v.Step());
  if (has_v) m.user_version = v.ColumnInt(0);
  ENGRAM_ASSIGN_OR_RETURN(Statement c, conn.Prepare("SELECT COUNT(*) FROM sqlite_schema"));
  ENGRAM_ASSIGN_OR_RETURN(bool has_c, c.Step());
  if (has_c) m.object_count = c.ColumnInt(0);
  return m;
}

Status CheckMarks(const FileMarks& m, const std::string& path) {
  if (m.application_id == 0 && m.user_version == 0 && m.object_count == 0) return OkStatus();  // new file
  if (m.application_id != kApplicationId) {
    return FailedPreconditionError(path + " is a SQLite database but not an engram memory (application_id " +
                                   std::to_string(m.application_id) +
                                   "); refusing to touch it. Choose another file with --db or ENGRAM_DB.");
  }
  if (m.user_version > kSchemaVersion) {
    return FailedPreconditionError(path + " was written by a newer engram (schema " +
                                   std::to_string(m.user_version) + "; this build knows up to " +
                                   std::to_string(kSchemaVersion) + "). Upgrade engram.");
  }
  return OkStatus();
}

Status Migrate(Connection& conn) {
  for (;;) {
    bool current = false;
    ENGRAM_RETURN_IF_ERROR(conn.Transaction(/*write=*/true, [&]() -> Status {
      ENGRAM_ASSIGN_OR_RETURN(FileMarks m, ReadMarks(conn));
      ENGRAM_RETURN_IF_ERROR(CheckMarks(m, conn.path()));
      if (m.user_version >= kSchemaVersion) {
        current = true;
        return OkStatus();
      }
      ENGRAM_RETURN_IF_ERROR(MigrateStep(conn, m.user_version));
      return conn.Exec(("PRAGMA user_version = " + std::to_string(m.user_version + 1)).c_str());
    }));
    if (current) return OkStatus();
  }
}

}  // namespace engram::sqlite
