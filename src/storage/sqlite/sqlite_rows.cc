#include "storage/sqlite/sqlite_rows.h"

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"

namespace engram::sqlite {

using nlohmann::json;

namespace {

constexpr const char* kInsertEpisodeSql =
    "INSERT INTO episodes (episode_id, task_description, task_type, domain, context_json, start_time, "
    "end_time, outcome_kind, outcome_json, reward_total, reward_json, reflection_json, pattern_ids_json, "
    "tags_json, metadata_json, step_count, byte_size) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
constexpr const char* kReplaceEpisodeSql =
    "INSERT OR REPLACE INTO episodes (episode_id, task_description, task_type, domain, context_json, "
    "start_time, end_time, outcome_kind, outcome_json, reward_total, reward_json, reflection_json, "
    "pattern_ids_json, tags_json, metadata_json, step_count, byte_size) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
constexpr const char* kInsertStepSql =
    "INSERT INTO steps (episode_id, step_number, timestamp, tool, action, parameters_json, result_status, "
    "result_output, result_message, latency_ms, tokens_used) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr const char* kSelectStepsSql =
    "SELECT step_number, timestamp, tool, action, parameters_json, result_status, result_output, "
    "result_message, latency_ms, tokens_used FROM steps WHERE episode_id = ?1 ORDER BY step_number";

}  // namespace

Status InsertStep(Connection& conn, std::string_view episode_id, const Step& s) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kInsertStepSql));
  stmt.BindText(1, episode_id);
  stmt.BindInt(2, s.step_number);
  stmt.BindInt(3, ToMillis(s.timestamp));
  stmt.BindText(4, s.tool);
  stmt.BindText(5, s.action);
  stmt.BindText(6, s.parameters_json);
  if (s.result) {
    stmt.BindText(7, StepStatusName(s.result->status));
    stmt.BindOptText(8, s.result->output);
    stmt.BindOptText(9, s.result->message);
  } else {
    stmt.BindNull(7);
    stmt.BindNull(8);
    stmt.BindNull(9);
  }
  stmt.BindOptInt(10, s.latency_ms);
  stmt.BindOptInt(11, s.tokens_used);
  Status st = stmt.Run();
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("step " + std::to_string(s.step_number) + " already exists in episode " +
                              std::string(episode_id));
  }
  return st;
}

Status InsertEpisode(Connection& conn, const Episode& e, bool replace) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(replace ? kReplaceEpisodeSql : kInsertEpisodeSql));
  stmt.BindText(1, e.episode_id);
  stmt.BindText(2, e.task_description);
  stmt.BindText(3, TaskTypeName(e.task_type));
  stmt.BindText(4, e.context.domain);
  stmt.BindText(5, DumpColumn(TaskContextToJson(e.context)));
  stmt.BindInt(6, ToMillis(e.start_time));
  stmt.BindOptInt(7, e.end_time ? std::optional<int64_t>(ToMillis(*e.end_time)) : std::nullopt);
  if (e.outcome) {
    stmt.BindText(8, OutcomeKindName(e.outcome->kind));
    stmt.BindText(9, DumpColumn(OutcomeToJson(*e.outcome)));
  } else {
    stmt.BindNull(8);
    stmt.BindNull(9);
  }
  if (e.reward) {
    stmt.BindDouble(10, e.reward->total);
    stmt.BindText(11, DumpColumn(RewardToJson(*e.reward)));
  } else {
    stmt.BindNull(10);
    stmt.BindNull(11);
  }
  stmt.BindOptText(12, e.reflection ? std::optional<std::string>(DumpColumn(ReflectionToJson(*e.reflection)))
                                    : std::nullopt);
  stmt.BindText(13, DumpColumn(json(e.pattern_ids)));
  stmt.BindText(14, DumpColumn(json(e.tags)));
  stmt.BindText(15, e.metadata_json);
  stmt.BindInt(16, static_cast<int64_t>(e.steps.size()));
  stmt.BindInt(17, static_cast<int64_t>(e.ByteSize()));
  Status st = stmt.Run();
  if (st.code() == StatusCode::kAlreadyExists) return AlreadyExistsError("episode " + e.episode_id + " already exists");
  ENGRAM_RETURN_IF_ERROR(st);
  for (const Step& s : e.steps) ENGRAM_RETURN_IF_ERROR(InsertStep(conn, e.episode_id, s));
  return OkStatus();
}


Result<Episode> ReadEpisodeRow(const Statement& stmt) {
  Episode e;
  e.episode_id = stmt.ColumnText(0);
  e.task_description = stmt.ColumnText(1);
  Result<TaskType> type = ParseTaskType(stmt.ColumnText(2));
  if (!type.ok()) return DataLossError("episode " + e.episode_id + ": bad task_type");
  e.task_type = *type;
  std::optional<TaskContext> context;
  ENGRAM_RETURN_IF_ERROR(DecodeColumn<TaskContext>(stmt.ColumnOptText(3), e.episode_id, "context",
                                                   TaskContextFromJson, &context));
  if (context) e.context = *std::move(context);
  e.start_time = FromMillis(stmt.ColumnInt(4));
  if (!stmt.IsNull(5)) e.end_time = FromMillis(stmt.ColumnInt(5));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<Outcome>(stmt.ColumnOptText(6), e.episode_id, "outcome", OutcomeFromJson, &e.outcome));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<Reward>(stmt.ColumnOptText(7), e.episode_id, "reward", RewardFromJson, &e.reward));
  ENGRAM_RETURN_IF_ERROR(DecodeColumn<Reflection>(stmt.ColumnOptText(8), e.episode_id, "reflection",
                                                  ReflectionFromJson, &e.reflection));
  ENGRAM_ASSIGN_OR_RETURN(e.pattern_ids, DecodeStringList(stmt.ColumnText(9), e.episode_id, "pattern_ids"));
  ENGRAM_ASSIGN_OR_RETURN(e.tags, DecodeStringList(stmt.ColumnText(10), e.episode_id, "tags"));
  e.metadata_json = stmt.ColumnText(11);
  return e;
}

Status ReadSteps(Connection& conn, Episode& e) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kSelectStepsSql));
  stmt.BindText(1, e.episode_id);
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    Step s;
    s.step_number = static_cast<int>(stmt.ColumnInt(0));
    s.timestamp = FromMillis(stmt.ColumnInt(1));
    s.tool = stmt.ColumnText(2);
    s.action = stmt.ColumnText(3);
    s.parameters_json = stmt.ColumnText(4);
    if (!stmt.IsNull(5)) {
      Result<StepStatus> status = ParseStepStatus(stmt.ColumnText(5));
      if (!status.ok()) return DataLossError("episode " + e.episode_id + ": bad step status");
      s.result = StepResult{*status, stmt.ColumnOptText(6), stmt.ColumnOptText(7)};
    }
    s.latency_ms = stmt.ColumnOptInt(8);
    s.tokens_used = stmt.ColumnOptInt(9);
    e.steps.push_back(std::move(s));
  }
  return OkStatus();
}

}  // namespace engram::sqlite
