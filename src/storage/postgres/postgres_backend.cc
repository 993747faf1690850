#include "storage/postgres/postgres_backend.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fnv.h"
#include "common/logging.h"
#include "model/episode_json.h"
#include "model/stored_columns.h"

namespace engram::postgres {

using nlohmann::json;

namespace {

// The version table is created first, on its own, so a schema holding tables that merely
// share our names can be told from one engram made.
constexpr const char* kCreateMigrationsSql = R"sql(
CREATE TABLE engram_schema_migrations (
  version     integer PRIMARY KEY,
  description text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)
)sql";

// Schema v1, the same shape as SQLite's: steps are rows of their own so appending one
// never rewrites the episode; nested values read only whole are JSON text (text, not
// jsonb, so they round-trip byte for byte); fields that filters use are columns.
// episode_id sorts bytewise (COLLATE "C") whatever the database locale, so newest-first
// order and keyset pages match SQLite's exactly. search_tsv was v1's full-text document
// (English stemming); v2 replaces it with the episode_search table. This text is what
// v1 created and must not change: stores are migrated from exactly this.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE episodes (
  episode_id       text COLLATE "C" PRIMARY KEY,
  task_description text NOT NULL,
  task_type        text NOT NULL,
  domain           text NOT NULL,
  context_json     text NOT NULL,
  start_time       bigint NOT NULL,
  end_time         bigint,
  outcome_kind     text,
  outcome_json     text,
  reward_total     double precision,
  reward_json      text,
  reflection_json  text,
  pattern_ids_json text NOT NULL DEFAULT '[]',
  tags_json        text NOT NULL DEFAULT '[]',
  metadata_json    text NOT NULL DEFAULT '{}',
  step_count       integer NOT NULL DEFAULT 0,
  byte_size        bigint NOT NULL DEFAULT 0,
  search_tsv       tsvector NOT NULL DEFAULT ''::tsvector
);
CREATE INDEX episodes_by_domain ON episodes (domain, episode_id);
CREATE INDEX episodes_search ON episodes USING GIN (search_tsv);
CREATE TABLE steps (
  episode_id      text COLLATE "C" NOT NULL REFERENCES episodes (episode_id) ON DELETE CASCADE,
  step_number     integer NOT NULL,
  "timestamp"     bigint NOT NULL,
  tool            text NOT NULL,
  action          text NOT NULL,
  parameters_json text NOT NULL,
  result_status   text,
  result_output   text,
  result_message  text,
  latency_ms      bigint,
  tokens_used     bigint,
  PRIMARY KEY (episode_id, step_number)
);
)sql";

// extract_pending (v3) is true exactly while a completed episode awaits the learning
// pipeline: written with the row, so the mark and the completion commit together.
#define ENGRAM_PG_EPISODE_COLUMNS                                                                      \
  "episode_id, task_description, task_type, domain, context_json, start_time, end_time, outcome_kind, " \
  "outcome_json, reward_total, reward_json, reflection_json, pattern_ids_json, tags_json, metadata_json, " \
  "step_count, byte_size, extract_pending"
#define ENGRAM_PG_EPISODE_VALUES                                                                    \
  "VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint, $8, $9, $10::float8, $11, $12, $13, $14, $15, " \
  "$16::int, $17::bigint, $18::boolean)"
#define ENGRAM_PG_SELECT_COLUMNS                                                                     \
  "episode_id, task_description, task_type, context_json, start_time, end_time, outcome_json, " \
  "reward_json, reflection_json, pattern_ids_json, tags_json, metadata_json"
#define ENGRAM_PG_SELECT_EPISODE "SELECT " ENGRAM_PG_SELECT_COLUMNS " FROM episodes "

constexpr const char* kInsertEpisodeSql =
    "INSERT INTO episodes (" ENGRAM_PG_EPISODE_COLUMNS ") " ENGRAM_PG_EPISODE_VALUES;
constexpr const char* kUpsertEpisodeSql =
    "INSERT INTO episodes (" ENGRAM_PG_EPISODE_COLUMNS ") " ENGRAM_PG_EPISODE_VALUES
    " ON CONFLICT (episode_id) DO UPDATE SET task_description = EXCLUDED.task_description, "
    "task_type = EXCLUDED.task_type, domain = EXCLUDED.domain, context_json = EXCLUDED.context_json, "
    "start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, outcome_kind = EXCLUDED.outcome_kind, "
    "outcome_json = EXCLUDED.outcome_json, reward_total = EXCLUDED.reward_total, "
    "reward_json = EXCLUDED.reward_json, reflection_json = EXCLUDED.reflection_json, "
    "pattern_ids_json = EXCLUDED.pattern_ids_json, tags_json = EXCLUDED.tags_json, "
    "metadata_json = EXCLUDED.metadata_json, step_count = EXCLUDED.step_count, "
    "byte_size = EXCLUDED.byte_size, extract_pending = EXCLUDED.extract_pending";
// All of an episode's steps in one statement: one array per column, unnested in step.
constexpr const char* kInsertStepsSql =
    "INSERT INTO steps (episode_id, step_number, \"timestamp\", tool, action, parameters_json, result_status, "
    "result_output, result_message, latency_ms, tokens_used) "
    "SELECT $1::text, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], "
    "$8::text[], $9::text[], $10::bigint[], $11::bigint[])";
constexpr const char* kInsertStepSql =
    "INSERT INTO steps (episode_id, step_number, \"timestamp\", tool, action, parameters_json, result_status, "
    "result_output, result_message, latency_ms, tokens_used) "
    "VALUES ($1, $2::int, $3::bigint, $4, $5, $6, $7, $8, $9, $10::bigint, $11::bigint)";
constexpr const char* kSelectEpisodeSql = ENGRAM_PG_SELECT_EPISODE "WHERE episode_id = $1::text";
constexpr const char* kSelectEpisodesSql = ENGRAM_PG_SELECT_EPISODE "WHERE episode_id = ANY($1::text[])";
#define ENGRAM_PG_SELECT_STEPS \
  "SELECT step_number, \"timestamp\", tool, action, parameters_json, result_status, result_output, " \
  "result_message, latency_ms, tokens_used, episode_id FROM steps "
constexpr const char* kSelectStepsSql = ENGRAM_PG_SELECT_STEPS "WHERE episode_id = $1::text ORDER BY step_number";
constexpr const char* kSelectStepsOfSql =
    ENGRAM_PG_SELECT_STEPS "WHERE episode_id = ANY($1::text[]) ORDER BY episode_id, step_number";
// Unprepared: with the values known the planner drops the filters that are NULL.
constexpr const char* kDeclareListSql =
    "DECLARE engram_episodes NO SCROLL CURSOR FOR " ENGRAM_PG_SELECT_EPISODE
    "WHERE ($1::text IS NULL OR domain = $1::text) AND ($2::text IS NULL OR task_type = $2::text) "
    "AND ($3::boolean IS NULL OR (outcome_kind IS NOT NULL) = $3::boolean) "
    "AND ($4::text IS NULL OR episode_id < $4::text) ORDER BY episode_id DESC LIMIT $5::bigint";
constexpr const char* kFetchSql = "FETCH 64 FROM engram_episodes";
constexpr int kFetchSize = 64;
// Locks the episode row: appends and completions of one episode take turns, so step
// numbers and the step count checked at completion cannot change underneath.
constexpr const char* kLockEpisodeSql =
    "SELECT outcome_kind IS NOT NULL, step_count, byte_size FROM episodes WHERE episode_id = $1::text FOR UPDATE";
// A statement of its own, after the lock: in READ COMMITTED it then sees every step
// committed by whoever held the lock before.
constexpr const char* kMaxStepSql = "SELECT COALESCE(MAX(step_number), 0) FROM steps WHERE episode_id = $1::text";
constexpr const char* kBumpStepsSql =
    "UPDATE episodes SET step_count = step_count + 1, byte_size = byte_size + $2::bigint WHERE episode_id = $1::text";
constexpr const char* kCompleteSql =
    "UPDATE episodes SET end_time = $2::bigint, outcome_kind = $3, outcome_json = $4, reward_total = $5::float8, "
    "reward_json = $6, reflection_json = $7, pattern_ids_json = $8, tags_json = $9, metadata_json = $10, "
    "extract_pending = true WHERE episode_id = $1::text";
constexpr const char* kDeleteStepsSql = "DELETE FROM steps WHERE episode_id = $1::text";
constexpr const char* kDeleteEpisodeSql = "DELETE FROM episodes WHERE episode_id = $1::text";
constexpr const char* kStatsSql =
    "SELECT (SELECT COUNT(*) FROM episodes), (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), "
    "(SELECT COUNT(*) FROM steps), (SELECT COUNT(*) FROM patterns), (SELECT COUNT(*) FROM heuristics)";

// The step number used twice in `e`, for the message of a steps_pkey violation.
std::optional<int> DuplicateStepNumber(const Episode& e) {
  std::set<int> seen;
  for (const Step& s : e.steps) {
    if (!seen.insert(s.step_number).second) return s.step_number;
  }
  return std::nullopt;
}

Status InsertSteps(Connection& conn, const Episode& e) {
  if (e.steps.empty()) return OkStatus();
  std::vector<std::optional<std::string>> number, timestamp, tool, action, parameters, status, output, message,
      latency, tokens;
  auto opt_int = [](const std::optional<int64_t>& v) {
    return v ? std::optional<std::string>(std::to_string(*v)) : std::nullopt;
  };
  for (const Step& s : e.steps) {
    number.push_back(std::to_string(s.step_number));
    timestamp.push_back(std::to_string(ToMillis(s.timestamp)));
    tool.push_back(s.tool);
    action.push_back(s.action);
    parameters.push_back(s.parameters_json);
    if (s.result) {
      status.push_back(std::string(StepStatusName(s.result->status)));
      output.push_back(s.result->output);
      message.push_back(s.result->message);
    } else {
      status.emplace_back();
      output.emplace_back();
      message.emplace_back();
    }
    latency.push_back(opt_int(s.latency_ms));
    tokens.push_back(opt_int(s.tokens_used));
  }
  Params p;
  p.Text(e.episode_id).TextArray(number).TextArray(timestamp).TextArray(tool).TextArray(action);
  p.TextArray(parameters).TextArray(status).TextArray(output).TextArray(message).TextArray(latency);
  p.TextArray(tokens);
  Result<PgResult> r = conn.Query(kInsertStepsSql, p);
  if (r.status().code() == StatusCode::kAlreadyExists) {
    std::optional<int> dup = DuplicateStepNumber(e);
    return AlreadyExistsError("step " + (dup ? std::to_string(*dup) : std::string("number")) +
                              " already exists in episode " + e.episode_id);
  }
  return r.status().ok() ? OkStatus() : r.status();
}

Status InsertStep(Connection& conn, std::string_view episode_id, const Step& s) {
  Params p;
  p.Text(episode_id).Int(s.step_number).Int(ToMillis(s.timestamp)).Text(s.tool).Text(s.action).Text(s.parameters_json);
  if (s.result) {
    p.Text(StepStatusName(s.result->status)).OptText(s.result->output).OptText(s.result->message);
  } else {
    p.Null().Null().Null();
  }
  p.OptInt(s.latency_ms).OptInt(s.tokens_used);
  Result<PgResult> r = conn.Query(kInsertStepSql, p);
  if (r.status().code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("step " + std::to_string(s.step_number) + " already exists in episode " +
                              std::string(episode_id));
  }
  return r.status().ok() ? OkStatus() : r.status();
}

// Writes the episode row and its steps; `replace` overwrites an existing episode whole.
// `index`: also write its full-text entry (PutEpisodes indexes its whole batch at the end).
Status WriteEpisode(Connection& conn, const Episode& e, bool replace, bool index = true) {
  Params p;
  p.Text(e.episode_id).Text(e.task_description).Text(TaskTypeName(e.task_type)).Text(e.context.domain);
  p.Text(DumpColumn(TaskContextToJson(e.context))).Int(ToMillis(e.start_time));
  p.OptInt(e.end_time ? std::optional<int64_t>(ToMillis(*e.end_time)) : std::nullopt);
  if (e.outcome) {
    p.Text(OutcomeKindName(e.outcome->kind)).Text(DumpColumn(OutcomeToJson(*e.outcome)));
  } else {
    p.Null().Null();
  }
  if (e.reward) {
    p.Double(e.reward->total).Text(DumpColumn(RewardToJson(*e.reward)));
  } else {
    p.Null().Null();
  }
  p.OptText(e.reflection ? std::optional<std::string>(DumpColumn(ReflectionToJson(*e.reflection))) : std::nullopt);
  p.Text(DumpColumn(json(e.pattern_ids))).Text(DumpColumn(json(e.tags))).Text(e.metadata_json);
  p.Int(static_cast<int64_t>(e.steps.size())).Int(static_cast<int64_t>(e.ByteSize()));
  p.Bool(e.completed());
  Result<PgResult> r = conn.Query(replace ? kUpsertEpisodeSql : kInsertEpisodeSql, p);
  if (r.status().code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("episode " + e.episode_id + " already exists");
  }
  if (!r.ok()) return r.status();
  if (replace) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult del, conn.Query(kDeleteStepsSql, Params().Text(e.episode_id)));
    // The vector described the text being replaced; EpisodesWithoutVector lists the
    // episode again if it is completed.
    ENGRAM_RETURN_IF_ERROR(DropVector(conn, e.episode_id));
  }
  ENGRAM_RETURN_IF_ERROR(InsertSteps(conn, e));
  // A new episode in progress has no index entry to add or remove.
  if (index && (replace || e.completed())) ENGRAM_RETURN_IF_ERROR(IndexEpisode(conn, e));
  return OkStatus();
}


}  // namespace

const char* const kEpisodeSelectColumns = ENGRAM_PG_SELECT_COLUMNS;

Result<Episode> ReadEpisodeRow(const PgResult& r, int row) {
  Episode e;
  e.episode_id = r.Text(row, 0);
  e.task_description = r.Text(row, 1);
  Result<TaskType> type = ParseTaskType(r.Text(row, 2));
  if (!type.ok()) return DataLossError("episode " + e.episode_id + ": bad task_type");
  e.task_type = *type;
  std::optional<TaskContext> context;
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<TaskContext>(r.OptText(row, 3), e.episode_id, "context", TaskContextFromJson, &context));
  if (context) e.context = *std::move(context);
  e.start_time = FromMillis(r.Int(row, 4));
  if (!r.IsNull(row, 5)) e.end_time = FromMillis(r.Int(row, 5));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<Outcome>(r.OptText(row, 6), e.episode_id, "outcome", OutcomeFromJson, &e.outcome));
  ENGRAM_RETURN_IF_ERROR(DecodeColumn<Reward>(r.OptText(row, 7), e.episode_id, "reward", RewardFromJson, &e.reward));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<Reflection>(r.OptText(row, 8), e.episode_id, "reflection", ReflectionFromJson, &e.reflection));
  ENGRAM_ASSIGN_OR_RETURN(e.pattern_ids, DecodeStringList(r.Text(row, 9), e.episode_id, "pattern_ids"));
  ENGRAM_ASSIGN_OR_RETURN(e.tags, DecodeStringList(r.Text(row, 10), e.episode_id, "tags"));
  e.metadata_json = r.Text(row, 11);
  return e;
}

// Appends the steps in rows [begin, end) of `r` (columns of ENGRAM_PG_SELECT_STEPS) to `e`.
Status AppendStepRows(const PgResult& r, int begin, int end, Episode& e) {
  e.steps.reserve(e.steps.size() + static_cast<size_t>(end - begin));
  for (int i = begin; i < end; ++i) {
    Step s;
    s.step_number = static_cast<int>(r.Int(i, 0));
    s.timestamp = FromMillis(r.Int(i, 1));
    s.tool = r.Text(i, 2);
    s.action = r.Text(i, 3);
    s.parameters_json = r.Text(i, 4);
    if (!r.IsNull(i, 5)) {
      Result<StepStatus> status = ParseStepStatus(r.Text(i, 5));
      if (!status.ok()) return DataLossError("episode " + e.episode_id + ": bad step status");
      s.result = StepResult{*status, r.OptText(i, 6), r.OptText(i, 7)};
    }
    s.latency_ms = r.OptInt(i, 8);
    s.tokens_used = r.OptInt(i, 9);
    e.steps.push_back(std::move(s));
  }
  return OkStatus();
}

Status ReadSteps(Connection& conn, Episode& e) {
  ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kSelectStepsSql, Params().Text(e.episode_id)));
  return AppendStepRows(r, 0, r.rows(), e);
}

namespace {

// A stream over a server-side cursor inside one REPEATABLE READ READ ONLY transaction on
// a connection it holds: the episodes are those of the moment ListEpisodes ran, fetched
// kFetchSize at a time.
class PostgresEpisodeStream final : public EpisodeStream {
 public:
  PostgresEpisodeStream(PooledConnection conn, EpisodeFilter filter)
      : conn_(std::move(conn)), filter_(std::move(filter)) {}

  ~PostgresEpisodeStream() override {
    // Ends the transaction (and the cursor with it) before the connection goes back.
    if (!conn_->broken() && conn_->in_transaction()) conn_->Exec("ROLLBACK").IgnoreError();
  }

  Status Start() {
    ENGRAM_RETURN_IF_ERROR(conn_->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    Params p;
    p.OptText(filter_.domain);
    if (filter_.task_type) p.Text(TaskTypeName(*filter_.task_type)); else p.Null();
    if (filter_.completed) p.Bool(*filter_.completed); else p.Null();
    p.OptText(filter_.before_id);
    if (filter_.limit > 0) p.Int(static_cast<int64_t>(filter_.limit)); else p.Null();
    ENGRAM_ASSIGN_OR_RETURN(PgResult declared, conn_->QueryOnce(kDeclareListSql, p));
    return OkStatus();
  }

  bool broken() const { return conn_->broken(); }

  Result<std::optional<Episode>> Next() override {
    if (done_) return std::optional<Episode>();
    if (!batch_ || next_row_ >= batch_->rows()) {
      if (batch_ && batch_->rows() < kFetchSize) return Finish();
      Result<PgResult> fetched = conn_->QueryOnce(kFetchSql, Params());
      if (!fetched.ok()) {
        done_ = true;
        return fetched.status();
      }
      batch_.emplace(*std::move(fetched));
      next_row_ = 0;
      if (batch_->rows() == 0) return Finish();
    }
    Result<Episode> e = ReadEpisodeRow(*batch_, next_row_++);
    if (e.ok() && filter_.include_steps) {
      Status s = ReadSteps(*conn_, *e);
      if (!s.ok()) return s;
    }
    if (!e.ok()) return e.status();
    return std::optional<Episode>(*std::move(e));
  }

 private:
  Result<std::optional<Episode>> Finish() {
    done_ = true;
    batch_.reset();
    return std::optional<Episode>();
  }

  PooledConnection conn_;
  EpisodeFilter filter_;
  std::optional<PgResult> batch_;
  int next_row_ = 0;
  bool done_ = false;
};

// One step of the migration, in the caller's transaction: brings the schema to `target`
// if it is below it (target - 1 must be in place, which the caller's order ensures).
// Concurrent openers of the same schema queue on an advisory lock, and the later ones find
// the work done. Every step first checks the schema is one engram may touch: a UTF8
// database, no foreign tables named like ours, no newer schema than this build knows.
// Sets *version to the version the schema is at afterwards.
Status MigrateStep(Connection& conn, int target, int* version) {
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult locked,
      conn.Query("SELECT pg_advisory_xact_lock(hashtext('engram.migrate'), hashtext(COALESCE(current_schema(), '')))",
                 Params()));
  ENGRAM_ASSIGN_OR_RETURN(PgResult where,
                          conn.Query("SELECT current_schema(), current_setting('server_encoding'), "
                                     "current_database(), current_setting('search_path')",
                                     Params()));
  if (where.IsNull(0, 0)) {
    return FailedPreconditionError("PostgreSQL database " + where.Text(0, 2) +
                                   " has no schema to create engram's tables in (search_path is \"" +
                                   where.Text(0, 3) + "\"); create the schema or fix the search_path");
  }
  const std::string schema = where.Text(0, 0);
  const std::string at = "schema " + schema + " of PostgreSQL database " + where.Text(0, 2);
  if (where.Text(0, 1) != "UTF8") {
    return FailedPreconditionError(at + " uses the " + where.Text(0, 1) +
                                   " encoding; engram needs a UTF8 database (CREATE DATABASE ... ENCODING 'UTF8')");
  }
  std::vector<std::optional<std::string>> names(std::begin(kEngramTables), std::end(kEngramTables));
  ENGRAM_ASSIGN_OR_RETURN(PgResult tables,
                          conn.Query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND "
                                     "tablename = ANY($1::text[])",
                                     Params().TextArray(names)));
  bool has_migrations = false, has_ours = false;
  for (int i = 0; i < tables.rows(); ++i) {
    if (tables.Text(i, 0) == "engram_schema_migrations") has_migrations = true; else has_ours = true;
  }
  int current = 0;
  if (!has_migrations) {
    if (has_ours) {
      return FailedPreconditionError(at + " already has tables named like engram's (episodes, steps, patterns, "
                                          "...) that engram did not create; refusing to touch them. Use another "
                                          "database or schema.");
    }
    ENGRAM_RETURN_IF_ERROR(conn.Exec(kCreateMigrationsSql));
  } else {
    ENGRAM_ASSIGN_OR_RETURN(PgResult v, conn.Query("SELECT COALESCE(MAX(version), 0) FROM engram_schema_migrations",
                                                   Params()));
    current = static_cast<int>(v.Int(0, 0));
  }
  if (current > kSchemaVersion) {
    return FailedPreconditionError(at + " was written by a newer engram (schema " + std::to_string(current) +
                                   "; this build knows up to " + std::to_string(kSchemaVersion) +
                                   "). Upgrade engram.");
  }
  *version = current;
  if (current >= target) return OkStatus();
  const char* description = "";
  switch (target) {
    case 1:
      ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV1));
      description = "episodes and steps, full-text search vector";
      break;
    case 2:
      ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV2));
      ENGRAM_RETURN_IF_ERROR(IndexAllCompleted(conn));
      description = "retrieval index: search words, term counts, vectors, generation";
      break;
    case 3:
      ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV3));
      description = "learning: patterns, heuristics, attributions, extraction marker";
      break;
    case 4:
      ENGRAM_RETURN_IF_ERROR(conn.Exec(kSchemaV4));
      description = "term counts updated once per statement";
      break;
    default:
      return InternalError("no migration to schema " + std::to_string(target));
  }
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult r, conn.Query("INSERT INTO engram_schema_migrations (version, description) VALUES ($1::int, $2)",
                             Params().Int(target).Text(description)));
  *version = target;
  return OkStatus();
}

}  // namespace

// ---- ConnectionPool ----

PooledConnection::~PooledConnection() {
  if (conn_ != nullptr) pool_->Release(std::move(conn_));
}

ConnectionPool::ConnectionPool(ConnectOptions options, size_t size)
    : options_(std::move(options)),
      size_(size),
      acquire_timeout_(options_.connect_timeout + (options_.statement_timeout.count() > 0
                                                       ? options_.statement_timeout
                                                       : std::chrono::milliseconds(60'000))) {}

Result<PooledConnection> ConnectionPool::Acquire() {
  std::unique_ptr<Connection> conn;
  {
    MutexLock lock(mu_);
    auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
    while (in_use_ >= size_) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        return UnavailableError("all " + std::to_string(size_) + " PostgreSQL connections of this process stayed busy for " +
                                std::to_string(acquire_timeout_.count()) + " ms; retry, or raise storage.pool_size");
      }
      slot_freed_.WaitFor(mu_, deadline - now);
    }
    ++in_use_;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (conn != nullptr) return PooledConnection(shared_from_this(), std::move(conn), /*reused=*/true);
  Result<std::unique_ptr<Connection>> opened = Connection::Open(options_);
  if (!opened.ok()) {
    MutexLock lock(mu_);
    --in_use_;
    slot_freed_.Signal();
    return opened.status();
  }
  return PooledConnection(shared_from_this(), *std::move(opened), /*reused=*/false);
}

void ConnectionPool::Release(std::unique_ptr<Connection> conn) {
  std::vector<std::unique_ptr<Connection>> dropped;  // closed outside the lock
  const bool broken = conn->broken();
  {
    MutexLock lock(mu_);
    --in_use_;
    if (broken) {
      // The server likely restarted: the idle connections are as dead as this one, and
      // finding that out one failed call at a time would fail calls needlessly.
      dropped.swap(idle_);
      dropped.push_back(std::move(conn));
    } else if (conn->in_transaction()) {
      dropped.push_back(std::move(conn));  // could not be rolled back: never reuse it
    } else {
      idle_.push_back(std::move(conn));
    }
    slot_freed_.Signal();
  }
  if (broken) {
    LogWarn("lost a PostgreSQL connection; idle ones dropped, reconnecting on next use",
            {{"store", options_.display}, {"dropped", std::to_string(dropped.size())}});
  }
}

void ConnectionPool::DropIdle() {
  std::vector<std::unique_ptr<Connection>> dropped;
  MutexLock lock(mu_);
  dropped.swap(idle_);
}

// ---- Transactions ----

Status RunTransaction(ConnectionPool& pool, TxMode mode, const std::function<Status(Connection&)>& fn) {
  constexpr int kMaxConflictRetries = 10;
  int conflicts = 0;
  bool reconnected = false;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(PooledConnection conn, pool.Acquire());
    bool commit_sent = false;
    // Explicit levels: the locking in AppendStep/CompleteEpisode relies on READ COMMITTED
    // whatever the server's default_transaction_isolation says.
    Status s = conn->Exec(mode == TxMode::kWrite ? "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
                                                 : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (s.ok()) {
      s = fn(*conn);
      if (s.ok()) {
        commit_sent = true;
        s = conn->Exec("COMMIT");
      }
    }
    if (s.ok()) return s;
    const bool broken = conn->broken();
    const std::string sqlstate = conn->last_sqlstate();
    if (!broken && conn->in_transaction()) conn->Exec("ROLLBACK").IgnoreError();
    if (broken) {
      if (commit_sent) {
        return UnavailableError("lost the connection to PostgreSQL (" + pool.options().display +
                                ") while committing: the change may or may not have been saved; check before "
                                "retrying");
      }
      // The server rolled the transaction back with the connection; once on a fresh
      // connection is safe, and rides out a restart that already finished.
      if (!reconnected) {
        reconnected = true;
        continue;
      }
      return s;
    }
    if (IsTransientConflict(sqlstate) && conflicts < kMaxConflictRetries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1 << std::min(conflicts, 6)));
      ++conflicts;
      continue;
    }
    return s;
  }
}

// ---- PostgresBackend ----

std::string ChangeChannel(std::string_view schema) {
  constexpr std::string_view kPrefix = "engram_changes_";
  constexpr size_t kMaxName = 63;  // NAMEDATALEN - 1
  if (kPrefix.size() + schema.size() <= kMaxName) return std::string(kPrefix) + std::string(schema);
  return std::string(kPrefix) + Fnv1aHex(schema);
}

std::vector<std::string> ChangePayloads(int64_t generation, std::span<const std::string> changed,
                                        std::string_view writer) {
  std::string gen = std::to_string(generation);
  if (!writer.empty()) gen += "@" + std::string(writer);
  std::vector<std::string> payloads;
  if (changed.empty()) return {gen};
  for (const std::string& id : changed) {
    // Such an id cannot be told apart in the list: listeners drop every cached episode.
    if (id.empty() || id.size() > kMaxNotifiedIdBytes || id.find(',') != std::string::npos) return {gen + " *"};
  }
  std::string current;
  for (const std::string& id : changed) {
    if (!current.empty() && gen.size() + 2 + current.size() + 1 + id.size() > kMaxNotifyPayload) {
      payloads.push_back(gen + "+ " + current);
      current.clear();
    }
    if (!current.empty()) current += ',';
    current += id;
  }
  payloads.push_back(gen + " " + current);
  return payloads;
}

Status NotifyChange(Connection& conn, const std::string& channel, int64_t generation,
                    std::span<const std::string> changed, std::string_view writer) {
  std::vector<std::string> payloads = ChangePayloads(generation, changed, writer);
  if (payloads.size() == 1) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query("SELECT pg_notify($1, $2)", Params().Text(channel).Text(payloads[0])));
    return OkStatus();
  }
  // A large import: every payload in one round trip, sent in array order (a function scan
  // reads the array in order), so the unmarked last one still comes last.
  std::vector<std::optional<std::string>> list(payloads.begin(), payloads.end());
  ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                                                 Params().Text(channel).TextArray(list)));
  return OkStatus();
}

Status BumpGeneration(Connection& conn, const std::string& channel, std::span<const std::string> changed,
                      std::string_view writer) {
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Query("UPDATE engram_state SET generation = generation + 1 WHERE id = 1 RETURNING generation", Params()));
  if (r.rows() != 1) return DataLossError("the engram_state row of the store is missing");
  return NotifyChange(conn, channel, r.Int(0, 0), changed, writer);
}

PostgresBackend::PostgresBackend(std::shared_ptr<ConnectionPool> pool, int schema_version, std::string channel,
                                 std::string writer)
    : pool_(std::move(pool)), schema_version_(schema_version), channel_(std::move(channel)), writer_(std::move(writer)) {}

Status PostgresBackend::RunWrite(const std::function<Status(Connection&)>& fn, std::span<const std::string> changed) {
  return RunTransaction(*pool_, TxMode::kWrite, [&](Connection& conn) -> Status {
    ENGRAM_RETURN_IF_ERROR(fn(conn));
    return BumpGeneration(conn, channel_, changed, writer_);
  });
}

Status PostgresBackend::CreateEpisode(const Episode& episode) {
  ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(episode));
  return RunWrite([&](Connection& conn) { return WriteEpisode(conn, episode, /*replace=*/false); },
                  std::span<const std::string>(&episode.episode_id, 1));
}

Status PostgresBackend::PutEpisodes(std::span<const Episode> episodes) {
  for (const Episode& e : episodes) ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(e));
  std::vector<std::string> ids;
  ids.reserve(episodes.size());
  for (const Episode& e : episodes) ids.push_back(e.episode_id);
  return RunWrite(
      [&](Connection& conn) -> Status {
        for (const Episode& e : episodes) {
          ENGRAM_RETURN_IF_ERROR(WriteEpisode(conn, e, /*replace=*/true, /*index=*/false));
        }
        return IndexEpisodes(conn, episodes);
      },
      ids);
}

Result<int> PostgresBackend::AppendStep(std::string_view episode_id, const Step& step) {
  int number = 0;
  const std::string changed(episode_id);
  Status s = RunWrite([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult state, conn.Query(kLockEpisodeSql, Params().Text(episode_id)));
    if (state.rows() == 0) return NotFoundError("no episode " + std::string(episode_id));
    if (state.Bool(0, 0)) {
      return FailedPreconditionError("episode " + std::string(episode_id) +
                                     " is already completed; steps can only be added before complete");
    }
    const int64_t step_count = state.Int(0, 1);
    const int64_t byte_size = state.Int(0, 2);
    if (step_count >= static_cast<int64_t>(kMaxStepsPerEpisode)) {
      return ResourceExhaustedError("episode " + std::string(episode_id) +
                                    " already has 1000 steps, the limit per episode");
    }
    const int64_t added = static_cast<int64_t>(step.ByteSize());
    if (byte_size + added > static_cast<int64_t>(kMaxEpisodeBytes)) {
      return ResourceExhaustedError("adding this step (" + std::to_string(added) + " bytes) would make episode " +
                                    std::string(episode_id) + " larger than 10 MiB, the limit per episode");
    }
    Step numbered = step;
    if (numbered.step_number <= 0) {
      ENGRAM_ASSIGN_OR_RETURN(PgResult max, conn.Query(kMaxStepSql, Params().Text(episode_id)));
      const int64_t max_number = max.Int(0, 0);
      if (max_number >= static_cast<int64_t>(kMaxStepsPerEpisode)) {
        return ResourceExhaustedError("episode " + std::string(episode_id) + " has used step number 1000, the highest");
      }
      numbered.step_number = static_cast<int>(max_number + 1);
    } else if (numbered.step_number > static_cast<int>(kMaxStepsPerEpisode)) {
      return InvalidArgumentError("step_number " + std::to_string(numbered.step_number) + " is above 1000");
    }
    ENGRAM_RETURN_IF_ERROR(InsertStep(conn, episode_id, numbered));
    ENGRAM_ASSIGN_OR_RETURN(PgResult bumped, conn.Query(kBumpStepsSql, Params().Text(episode_id).Int(added)));
    number = numbered.step_number;
    return OkStatus();
  }, std::span<const std::string>(&changed, 1));
  if (!s.ok()) return s;
  return number;
}

Status PostgresBackend::CompleteEpisode(const Episode& e) {
  if (!e.outcome || !e.end_time) return InvalidArgumentError("CompleteEpisode needs an outcome and an end time");
  return RunWrite([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult state, conn.Query(kLockEpisodeSql, Params().Text(e.episode_id)));
    if (state.rows() == 0) return NotFoundError("no episode " + e.episode_id);
    if (state.Bool(0, 0)) return FailedPreconditionError("episode " + e.episode_id + " is already completed");
    if (state.Int(0, 1) != static_cast<int64_t>(e.steps.size())) {
      return AbortedError("episode " + e.episode_id + " gained steps while it was being completed");
    }
    Params p;
    p.Text(e.episode_id).Int(ToMillis(*e.end_time)).Text(OutcomeKindName(e.outcome->kind));
    p.Text(DumpColumn(OutcomeToJson(*e.outcome)));
    if (e.reward) {
      p.Double(e.reward->total).Text(DumpColumn(RewardToJson(*e.reward)));
    } else {
      p.Null().Null();
    }
    p.OptText(e.reflection ? std::optional<std::string>(DumpColumn(ReflectionToJson(*e.reflection))) : std::nullopt);
    p.Text(DumpColumn(json(e.pattern_ids))).Text(DumpColumn(json(e.tags))).Text(e.metadata_json);
    ENGRAM_ASSIGN_OR_RETURN(PgResult updated, conn.Query(kCompleteSql, p));
    // The steps in `e` are the stored ones (their count was just checked under the lock).
    return IndexEpisode(conn, e);
  }, std::span<const std::string>(&e.episode_id, 1));
}

Result<Episode> PostgresBackend::GetEpisode(std::string_view episode_id) {
  std::optional<Episode> out;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kSelectEpisodeSql, Params().Text(episode_id)));
    if (r.rows() == 0) return NotFoundError("no episode " + std::string(episode_id));
    ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(r, 0));
    ENGRAM_RETURN_IF_ERROR(ReadSteps(conn, e));
    out = std::move(e);
    return OkStatus();
  }));
  return *std::move(out);
}

Result<std::vector<Episode>> PostgresBackend::GetEpisodes(std::span<const std::string> episode_ids) {
  std::vector<Episode> out;
  if (episode_ids.empty()) return out;
  std::vector<std::optional<std::string>> ids(episode_ids.begin(), episode_ids.end());
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    out.clear();
    ENGRAM_ASSIGN_OR_RETURN(PgResult rows, conn.Query(kSelectEpisodesSql, Params().TextArray(ids)));
    std::map<std::string, Episode, std::less<>> found;
    for (int i = 0; i < rows.rows(); ++i) {
      ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(rows, i));
      std::string id = e.episode_id;
      found.emplace(std::move(id), std::move(e));
    }
    ENGRAM_ASSIGN_OR_RETURN(PgResult steps, conn.Query(kSelectStepsOfSql, Params().TextArray(ids)));
    for (int begin = 0; begin < steps.rows();) {
      const std::string id = steps.Text(begin, 10);
      int end = begin + 1;
      while (end < steps.rows() && steps.Text(end, 10) == id) ++end;
      auto it = found.find(id);
      if (it != found.end()) ENGRAM_RETURN_IF_ERROR(AppendStepRows(steps, begin, end, it->second));
      begin = end;
    }
    for (const std::string& id : episode_ids) {
      auto it = found.find(id);
      if (it == found.end()) continue;  // none, or named before
      out.push_back(std::move(it->second));
      found.erase(it);
    }
    return OkStatus();
  }));
  return out;
}

Result<std::unique_ptr<EpisodeStream>> PostgresBackend::ListEpisodes(const EpisodeFilter& filter) {
  for (int attempt = 0;; ++attempt) {
    ENGRAM_ASSIGN_OR_RETURN(PooledConnection conn, pool_->Acquire());
    const bool reused = conn.reused();
    auto stream = std::make_unique<PostgresEpisodeStream>(std::move(conn), filter);
    Status s = stream->Start();
    if (s.ok()) return std::unique_ptr<EpisodeStream>(std::move(stream));
    // Like RunTransaction: an idle connection that died under a restart is replaced once.
    const bool retry = attempt == 0 && reused && stream->broken();
    stream.reset();
    if (!retry) return s;
  }
}

Result<bool> PostgresBackend::DeleteEpisode(std::string_view episode_id) {
  bool deleted = false;
  const std::string changed(episode_id);
  ENGRAM_RETURN_IF_ERROR(RunWrite([&](Connection& conn) -> Status {
    // Steps, the index entry (and its term counts, by trigger) and the vector go with the
    // episode (ON DELETE CASCADE).
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kDeleteEpisodeSql, Params().Text(episode_id)));
    deleted = r.affected() > 0;
    return OkStatus();
  }, std::span<const std::string>(&changed, 1)));
  return deleted;
}

Result<StoreStats> PostgresBackend::Stats() {
  StoreStats stats;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kStatsSql, Params()));
    stats.episodes = r.Int(0, 0);
    stats.completed_episodes = r.Int(0, 1);
    stats.steps = r.Int(0, 2);
    stats.patterns = r.Int(0, 3);
    stats.heuristics = r.Int(0, 4);
    return OkStatus();
  }));
  return stats;
}

Status PostgresBackend::CheckHealth() {
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    std::vector<std::optional<std::string>> names(std::begin(kEngramTables), std::end(kEngramTables));
    ENGRAM_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Query("SELECT (SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND "
                   "tablename = ANY($1::text[])), pg_is_in_recovery()",
                   Params().TextArray(names)));
    if (r.Int(0, 0) != static_cast<int64_t>(std::size(kEngramTables))) {
      return DataLossError("the engram tables in " + pool_->options().display +
                           " are missing (dropped after opening?); reopen to recreate them");
    }
    if (r.Bool(0, 1)) {
      return UnavailableError("PostgreSQL (" + pool_->options().display +
                              ") is a read-only standby; point storage.url at the primary");
    }
    ENGRAM_ASSIGN_OR_RETURN(PgResult state, conn.Query("SELECT COUNT(*) FROM engram_state WHERE id = 1", Params()));
    if (state.Int(0, 0) != 1) {
      return DataLossError("the engram_state row (generation, vector sequence, embedding space) of " +
                           pool_->options().display + " is missing");
    }
    return OkStatus();
  }));
  // Writable: a transaction id is assigned only to a transaction that may write.
  return RunTransaction(*pool_, TxMode::kWrite, [](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query("SELECT txid_current()", Params()));
    return OkStatus();
  });
}

}  // namespace engram::postgres

namespace engram {

namespace {

// libpq's parse errors quote the offending text, which may be part of a password.
std::string WithoutQuotedText(std::string_view message) {
  std::string out;
  bool quoted = false;
  for (char c : message) {
    if (c == '"') {
      out += quoted ? "\"" : "\"...";
      quoted = !quoted;
    } else if (!quoted && c != '\n') {
      out += c;
    }
  }
  return out;
}

}  // namespace

bool IsPostgresUrl(std::string_view store) {
  return store.starts_with("postgres://") || store.starts_with("postgresql://");
}

std::string MaskPostgresConninfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return "<invalid PostgreSQL connection string>";
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    bool secret = o->dispchar != nullptr && std::string_view(o->dispchar) == "*";
    std::string value = secret ? std::string("********") : std::string(o->val);
    bool quote = value.empty() || value.find_first_of(" '\\") != std::string::npos;
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    if (quote) {
      out += '\'';
      for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
      }
      out += '\'';
    } else {
      out += value;
    }
  }
  PQconninfoFree(options);
  return out.empty() ? "<default PostgreSQL connection>" : out;
}

Result<std::unique_ptr<StorageBackend>> OpenPostgresBackend(const PostgresOptions& options) {
  using namespace postgres;
  if (options.conninfo.empty()) return InvalidArgumentError("the PostgreSQL connection string is empty");
  if (options.pool_size == 0) return InvalidArgumentError("the PostgreSQL connection pool size must be at least 1");
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.conninfo.c_str(), &error);
  if (parsed == nullptr) {
    std::string why = error != nullptr ? WithoutQuotedText(error) : std::string("out of memory");
    if (error != nullptr) PQfreemem(error);
    return InvalidArgumentError("invalid PostgreSQL connection string: " + why);
  }
  PQconninfoFree(parsed);
  if (options.writer_tag.size() > 64 ||
      !std::all_of(options.writer_tag.begin(), options.writer_tag.end(),
                   [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'; })) {
    return InvalidArgumentError("PostgreSQL writer tag: letters, digits, '_' and '-' only, at most 64");
  }

  ConnectOptions connect;
  connect.conninfo = options.conninfo;
  connect.password = options.password;
  connect.connect_timeout = options.connect_timeout;
  connect.statement_timeout = options.statement_timeout;
  connect.display = MaskPostgresConninfo(options.conninfo);
  auto pool = std::make_shared<ConnectionPool>(std::move(connect), options.pool_size);
  // One transaction per version: a store is never left between two of them, and a
  // failure leaves it at the last version that completed.
  int version = 0;
  for (int target = 1; target <= kSchemaVersion; ++target) {
    ENGRAM_RETURN_IF_ERROR(
        RunTransaction(*pool, TxMode::kWrite, [&](Connection& conn) { return MigrateStep(conn, target, &version); }));
  }
  std::string schema;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query("SELECT current_schema()", Params()));
    schema = r.Text(0, 0);  // not NULL: the migration checked there is one
    return OkStatus();
  }));
  return std::unique_ptr<StorageBackend>(
      std::make_unique<PostgresBackend>(std::move(pool), version, ChangeChannel(schema), options.writer_tag));
}

}  // namespace engram
