// SqliteBackend's learning tables (schema v3): patterns merged under their similarity
// key, heuristics, attributions, and the marks of completed episodes not yet extracted.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"
#include "storage/sqlite/sqlite_backend.h"
#include "storage/sqlite/sqlite_index.h"

namespace engram::sqlite {

using nlohmann::json;

namespace {

// The pattern columns ReadPatternRow reads, in its order.
#define ENGRAM_PATTERN_COLUMNS                                                                              \
  "pattern_id, type, similarity_key, description, body_json, context_json, occurrences, successes, "       \
  "success_rate, avg_latency_ms, evidence_json, times_retrieved, times_applied, success_when_applied, "    \
  "failure_when_applied, last_used, decay_weight, created_at, updated_at"

constexpr const char* kPatternByKeySql = "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns WHERE similarity_key = ?1";
constexpr const char* kPatternByIdSql = "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns WHERE pattern_id = ?1";
// ListPatterns ranks first and reads rows after: sorting whole rows makes SQLite carry
// every body and evidence list through its sorter (even for a LIMIT of 20, since each row
// is built before the top-N check), while the ranking needs only the columns it orders by.
constexpr const char* kRankPatternsSql =
    "SELECT rowid FROM patterns "
    "WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR domain = ?2) AND (?3 IS NULL OR success_rate >= ?3) "
    "ORDER BY success_rate * decay_weight DESC, created_at DESC, pattern_id DESC LIMIT ?4";
constexpr const char* kPatternByRowidSql = "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns WHERE rowid = ?1";
// An upsert on pattern_id only: a pattern whose similarity key belongs to another row
// fails on the UNIQUE constraint (kAlreadyExists) instead of replacing that row.
constexpr const char* kUpsertPatternSql =
    "INSERT INTO patterns (pattern_id, type, similarity_key, description, body_json, context_json, occurrences, "
    "successes, success_rate, avg_latency_ms, evidence_json, times_retrieved, times_applied, success_when_applied, "
    "failure_when_applied, last_used, decay_weight, created_at, updated_at, domain) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) "
    "ON CONFLICT (pattern_id) DO UPDATE SET type = excluded.type, similarity_key = excluded.similarity_key, "
    "description = excluded.description, body_json = excluded.body_json, context_json = excluded.context_json, "
    "occurrences = excluded.occurrences, successes = excluded.successes, success_rate = excluded.success_rate, "
    "avg_latency_ms = excluded.avg_latency_ms, evidence_json = excluded.evidence_json, "
    "times_retrieved = excluded.times_retrieved, times_applied = excluded.times_applied, "
    "success_when_applied = excluded.success_when_applied, failure_when_applied = excluded.failure_when_applied, "
    "last_used = excluded.last_used, decay_weight = excluded.decay_weight, created_at = excluded.created_at, "
    "updated_at = excluded.updated_at, domain = excluded.domain";
constexpr const char* kSetDecaySql = "UPDATE patterns SET decay_weight = ?2 WHERE pattern_id = ?1";

constexpr const char* kPutHeuristicSql =
    "INSERT OR REPLACE INTO heuristics (heuristic_id, condition, action, confidence, evidence_json, success_rate, "
    "sample_size, source_pattern_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
constexpr const char* kListHeuristicsSql =
    "SELECT heuristic_id, condition, action, confidence, evidence_json, success_rate, sample_size, "
    "source_pattern_id, created_at, updated_at FROM heuristics ORDER BY confidence DESC, heuristic_id DESC LIMIT ?1";

constexpr const char* kPatternExistsSql = "SELECT 1 FROM patterns WHERE pattern_id = ?1";
// Shown → applied upgrades a pair; nothing downgrades it; `at` keeps the latest.
constexpr const char* kRecordAttributionSql =
    "INSERT INTO attributions (episode_id, pattern_id, applied, at, credited) VALUES (?1, ?2, ?3, ?4, 0) "
    "ON CONFLICT (episode_id, pattern_id) DO UPDATE SET applied = MAX(applied, excluded.applied), "
    "at = MAX(at, excluded.at)";
constexpr const char* kBumpUseSql =
    "UPDATE patterns SET times_retrieved = times_retrieved + ?2, times_applied = times_applied + ?3, "
    "last_used = MAX(COALESCE(last_used, ?4), ?4) WHERE pattern_id = ?1";
constexpr const char* kUncreditedSql =
    "SELECT pattern_id FROM attributions WHERE episode_id = ?1 AND credited = 0 ORDER BY pattern_id";
constexpr const char* kCreditPatternSql =
    "UPDATE patterns SET success_when_applied = success_when_applied + ?2, "
    "failure_when_applied = failure_when_applied + ?3 WHERE pattern_id = ?1";
constexpr const char* kMarkCreditedSql = "UPDATE attributions SET credited = 1 WHERE episode_id = ?1 AND credited = 0";

constexpr const char* kMarkPendingSql = "INSERT OR IGNORE INTO extraction_pending (episode_id) VALUES (?1)";
constexpr const char* kClearPendingSql = "DELETE FROM extraction_pending WHERE episode_id = ?1";
constexpr const char* kPendingSql = "SELECT episode_id FROM extraction_pending ORDER BY episode_id LIMIT ?1";
constexpr const char* kResetLearningSql =
    "DELETE FROM attributions; DELETE FROM heuristics; DELETE FROM patterns; "
    "UPDATE episodes SET pattern_ids_json = '[]' WHERE pattern_ids_json <> '[]'; "
    "INSERT OR IGNORE INTO extraction_pending (episode_id) SELECT episode_id FROM episode_docs;";
constexpr const char* kEpisodePatternIdsSql = "SELECT pattern_ids_json FROM episodes WHERE episode_id = ?1";
constexpr const char* kSetEpisodePatternIdsSql = "UPDATE episodes SET pattern_ids_json = ?2 WHERE episode_id = ?1";

int64_t SqlLimit(size_t limit) { return limit == 0 ? -1 : static_cast<int64_t>(limit); }

Result<json> ParseStored(const std::string& text, const char* what, const std::string& id, const char* column) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return DataLossError(std::string(what) + " " + id + ": stored " + column + " is not valid JSON");
  return j;
}

Result<std::vector<std::string>> ParseStoredList(const std::string& text, const char* what, const std::string& id,
                                                 const char* column) {
  if (std::optional<std::vector<std::string>> plain = ParsePlainStringList(text)) return *std::move(plain);
  ENGRAM_ASSIGN_OR_RETURN(json j, ParseStored(text, what, id, column));
  std::vector<std::string> out;
  if (!j.is_array()) return DataLossError(std::string(what) + " " + id + ": stored " + column + " is not a list");
  for (const json& item : j) {
    if (!item.is_string()) {
      return DataLossError(std::string(what) + " " + id + ": stored " + column + " is not a list of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

// Contexts already decoded by one listing, by their stored text: most patterns share a
// few contexts (domain, language), so a listing parses each once.
using ContextMemo = std::unordered_map<std::string, TaskContext>;

Result<Pattern> ReadPatternRow(const Statement& stmt, ContextMemo* memo = nullptr) {
  Pattern p;
  p.pattern_id = stmt.ColumnText(0);
  Result<PatternType> type = ParsePatternType(stmt.ColumnText(1));
  if (!type.ok()) return DataLossError("pattern " + p.pattern_id + ": bad type \"" + stmt.ColumnText(1) + "\"");
  p.type = *type;
  p.similarity_key = stmt.ColumnText(2);
  p.description = stmt.ColumnText(3);
  p.body_json = stmt.ColumnText(4);
  std::string context_text = stmt.ColumnText(5);
  const TaskContext* known = nullptr;
  if (memo != nullptr) {
    auto it = memo->find(context_text);
    if (it != memo->end()) known = &it->second;
  }
  if (known != nullptr) {
    p.context = *known;
  } else {
    ENGRAM_ASSIGN_OR_RETURN(json context, ParseStored(context_text, "pattern", p.pattern_id, "context"));
    Result<TaskContext> decoded = TaskContextFromJson(context);
    if (!decoded.ok()) return DataLossError("pattern " + p.pattern_id + ": " + std::string(decoded.status().message()));
    p.context = *std::move(decoded);
    if (memo != nullptr) memo->emplace(std::move(context_text), p.context);
  }
  p.occurrences = stmt.ColumnInt(6);
  p.successes = stmt.ColumnInt(7);
  p.success_rate = stmt.ColumnDouble(8);
  p.avg_latency_ms = stmt.ColumnDouble(9);
  ENGRAM_ASSIGN_OR_RETURN(p.evidence, ParseStoredList(stmt.ColumnText(10), "pattern", p.pattern_id, "evidence"));
  p.effectiveness.times_retrieved = stmt.ColumnInt(11);
  p.effectiveness.times_applied = stmt.ColumnInt(12);
  p.effectiveness.success_when_applied = stmt.ColumnInt(13);
  p.effectiveness.failure_when_applied = stmt.ColumnInt(14);
  if (std::optional<int64_t> last = stmt.ColumnOptInt(15)) p.effectiveness.last_used = FromMillis(*last);
  p.decay_weight = stmt.ColumnDouble(16);
  p.created_at = FromMillis(stmt.ColumnInt(17));
  p.updated_at = FromMillis(stmt.ColumnInt(18));
  return p;
}

bool Finite(double v) { return std::isfinite(v); }

// What a pattern must be to be stored. Errors: kInvalidArgument naming the pattern.
Status CheckPattern(const Pattern& p) {
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("pattern " + (p.pattern_id.empty() ? "\"" + p.similarity_key + "\"" : p.pattern_id) +
                                ": " + why);
  };
  if (p.pattern_id.empty()) return bad("has no pattern_id");
  if (p.similarity_key.empty()) return bad("has no similarity_key");
  if (!Finite(p.success_rate) || !Finite(p.avg_latency_ms) || !Finite(p.decay_weight)) {
    return bad("success_rate, avg_latency_ms and decay_weight must be finite numbers");
  }
  // Validated without building it (this runs inside the merge's write transaction).
  const size_t first = p.body_json.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || p.body_json[first] != '{' || !json::accept(p.body_json)) {
    return bad("body_json is not a JSON object");
  }
  return OkStatus();
}

Status UpsertPattern(Connection& conn, const Pattern& p) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kUpsertPatternSql));
  stmt.BindText(1, p.pattern_id);
  stmt.BindText(2, PatternTypeName(p.type));
  stmt.BindText(3, p.similarity_key);
  stmt.BindText(4, p.description);
  stmt.BindText(5, p.body_json);
  stmt.BindText(6, DumpColumn(TaskContextToJson(p.context)));
  stmt.BindInt(7, p.occurrences);
  stmt.BindInt(8, p.successes);
  stmt.BindDouble(9, p.success_rate);
  stmt.BindDouble(10, p.avg_latency_ms);
  stmt.BindText(11, DumpColumn(json(p.evidence)));
  stmt.BindInt(12, p.effectiveness.times_retrieved);
  stmt.BindInt(13, p.effectiveness.times_applied);
  stmt.BindInt(14, p.effectiveness.success_when_applied);
  stmt.BindInt(15, p.effectiveness.failure_when_applied);
  stmt.BindOptInt(16, p.effectiveness.last_used ? std::optional<int64_t>(ToMillis(*p.effectiveness.last_used))
                                                : std::nullopt);
  stmt.BindDouble(17, p.decay_weight);
  stmt.BindInt(18, ToMillis(p.created_at));
  stmt.BindInt(19, ToMillis(p.updated_at));
  stmt.BindText(20, p.context.domain);
  Status s = stmt.Run();
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("pattern " + p.pattern_id + ": another pattern already has the similarity key \"" +
                              p.similarity_key + "\"");
  }
  return s;
}

Result<Heuristic> ReadHeuristicRow(const Statement& stmt) {
  Heuristic h;
  h.heuristic_id = stmt.ColumnText(0);
  h.condition = stmt.ColumnText(1);
  h.action = stmt.ColumnText(2);
  h.confidence = stmt.ColumnDouble(3);
  ENGRAM_ASSIGN_OR_RETURN(h.evidence_episode_ids,
                          ParseStoredList(stmt.ColumnText(4), "heuristic", h.heuristic_id, "evidence"));
  h.success_rate = stmt.ColumnDouble(5);
  h.sample_size = stmt.ColumnInt(6);
  h.source_pattern_id = stmt.ColumnText(7);
  h.created_at = FromMillis(stmt.ColumnInt(8));
  h.updated_at = FromMillis(stmt.ColumnInt(9));
  return h;
}

Status CheckHeuristic(const Heuristic& h) {
  if (h.heuristic_id.empty()) return InvalidArgumentError("a heuristic has no heuristic_id");
  if (!Finite(h.confidence) || !Finite(h.success_rate)) {
    return InvalidArgumentError("heuristic " + h.heuristic_id + ": confidence and success_rate must be finite");
  }
  return OkStatus();
}

Status WriteHeuristic(Connection& conn, const Heuristic& h) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kPutHeuristicSql));
  stmt.BindText(1, h.heuristic_id);
  stmt.BindText(2, h.condition);
  stmt.BindText(3, h.action);
  stmt.BindDouble(4, h.confidence);
  stmt.BindText(5, DumpColumn(json(h.evidence_episode_ids)));
  stmt.BindDouble(6, h.success_rate);
  stmt.BindInt(7, h.sample_size);
  stmt.BindText(8, h.source_pattern_id);
  stmt.BindInt(9, ToMillis(h.created_at));
  stmt.BindInt(10, ToMillis(h.updated_at));
  return stmt.Run();
}

// Loads the patterns whose similarity keys are `keys` (each key once), calls `merge` and
// writes back every pattern it leaves, inside the caller's write transaction.
Status MergeInTransaction(Connection& conn, const std::set<std::string>& keys,
                          const std::function<Status(std::vector<Pattern>&)>& merge) {
  std::vector<Pattern> patterns;
  ContextMemo memo;
  for (const std::string& key : keys) {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kPatternByKeySql));
    stmt.BindText(1, key);
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) continue;
    ENGRAM_ASSIGN_OR_RETURN(Pattern p, ReadPatternRow(stmt, &memo));
    patterns.push_back(std::move(p));
  }
  ENGRAM_RETURN_IF_ERROR(merge(patterns));
  for (const Pattern& p : patterns) {
    ENGRAM_RETURN_IF_ERROR(CheckPattern(p));
    ENGRAM_RETURN_IF_ERROR(UpsertPattern(conn, p));
  }
  return OkStatus();
}

// Credits the uncredited attributions of `episode_id` with its outcome and marks them
// credited, inside the caller's write transaction. Returns how many patterns it credited.
Result<size_t> CreditEpisode(Connection& conn, const std::string& episode_id, bool success) {
  std::vector<std::string> pending;
  {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kUncreditedSql));
    stmt.BindText(1, episode_id);
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      pending.push_back(stmt.ColumnText(0));
    }
  }
  if (pending.empty()) return size_t{0};
  size_t credited = 0;
  for (const std::string& pattern_id : pending) {
    ENGRAM_ASSIGN_OR_RETURN(Statement credit, conn.Prepare(kCreditPatternSql));
    credit.BindText(1, pattern_id);
    credit.BindInt(2, success ? 1 : 0);
    credit.BindInt(3, success ? 0 : 1);
    ENGRAM_RETURN_IF_ERROR(credit.Run());
    if (conn.Changes() > 0) ++credited;
  }
  ENGRAM_ASSIGN_OR_RETURN(Statement mark, conn.Prepare(kMarkCreditedSql));
  mark.BindText(1, episode_id);
  ENGRAM_RETURN_IF_ERROR(mark.Run());
  return credited;
}

// Appends to each episode's pattern_ids the patterns `pairs` name for it that it does not
// list yet, inside the caller's write transaction. Episodes not in the store are skipped.
Status AppendEpisodePatterns(Connection& conn, std::span<const std::pair<std::string, std::string>> pairs) {
  for (const auto& [episode_id, added] : GroupByEpisode(pairs)) {
    std::vector<std::string> ids;
    {
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kEpisodePatternIdsSql));
      stmt.BindText(1, episode_id);
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) continue;
      ENGRAM_ASSIGN_OR_RETURN(ids, ParseStoredList(stmt.ColumnText(0), "episode", episode_id, "pattern_ids"));
    }
    if (!AppendMissing(ids, added)) continue;
    ENGRAM_ASSIGN_OR_RETURN(Statement update, conn.Prepare(kSetEpisodePatternIdsSql));
    update.BindText(1, episode_id);
    update.BindText(2, DumpColumn(json(ids)));
    ENGRAM_RETURN_IF_ERROR(update.Run());
  }
  return OkStatus();
}

}  // namespace

// ---- extraction marks (sqlite_index.h) ----

Status MarkPendingExtraction(Connection& conn, std::string_view episode_id) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kMarkPendingSql));
  stmt.BindText(1, episode_id);
  return stmt.Run();
}

Status ClearPendingExtraction(Connection& conn, std::string_view episode_id) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kClearPendingSql));
  stmt.BindText(1, episode_id);
  return stmt.Run();
}

// ---- SqliteBackend: learning ----

Status SqliteBackend::MergePatterns(std::span<const std::string> keys,
                                    const std::function<Status(std::vector<Pattern>&)>& merge) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  const std::set<std::string> unique_keys(keys.begin(), keys.end());
  // Write() holds this process's write mutex and SQLite's write lock (BEGIN IMMEDIATE) from
  // the reads below to the commit, so no writer of any process runs in between. If the
  // transaction is retried after a busy error, the patterns are reloaded and merge runs again.
  return Write([&](Connection& conn) { return MergeInTransaction(conn, unique_keys, merge); });
}

Result<Pattern> SqliteBackend::GetPattern(std::string_view pattern_id) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  std::optional<Pattern> out;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kPatternByIdSql));
    stmt.BindText(1, pattern_id);
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return NotFoundError("no pattern " + std::string(pattern_id));
    ENGRAM_ASSIGN_OR_RETURN(out, ReadPatternRow(stmt));
    return OkStatus();
  }));
  return *std::move(out);
}

Result<std::vector<Pattern>> SqliteBackend::ListPatterns(const PatternFilter& filter) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  std::vector<Pattern> out;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    out.clear();
    // One read transaction: the rows read are the rows ranked.
    std::vector<int64_t> ranked;
    {
      ENGRAM_ASSIGN_OR_RETURN(Statement rank, conn.Prepare(kRankPatternsSql));
      if (filter.type) rank.BindText(1, PatternTypeName(*filter.type)); else rank.BindNull(1);
      rank.BindOptText(2, filter.domain);
      if (filter.min_success_rate) rank.BindDouble(3, *filter.min_success_rate); else rank.BindNull(3);
      rank.BindInt(4, SqlLimit(filter.limit));
      for (;;) {
        ENGRAM_ASSIGN_OR_RETURN(bool row, rank.Step());
        if (!row) break;
        ranked.push_back(rank.ColumnInt(0));
      }
    }
    out.reserve(ranked.size());
    ContextMemo memo;
    for (int64_t rowid : ranked) {
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kPatternByRowidSql));
      stmt.BindInt(1, rowid);
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return InternalError("pattern row " + std::to_string(rowid) + " vanished inside a read transaction");
      ENGRAM_ASSIGN_OR_RETURN(Pattern p, ReadPatternRow(stmt, &memo));
      out.push_back(std::move(p));
    }
    return OkStatus();
  }));
  return out;
}

Status SqliteBackend::SetPatternDecay(std::span<const std::pair<std::string, double>> weights) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  for (const auto& [id, weight] : weights) {
    if (!Finite(weight)) return InvalidArgumentError("the decay weight of pattern " + id + " is not a finite number");
  }
  if (weights.empty()) return OkStatus();
  return Write([&](Connection& conn) -> Status {
    for (const auto& [id, weight] : weights) {
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kSetDecaySql));
      stmt.BindText(1, id);
      stmt.BindDouble(2, weight);
      ENGRAM_RETURN_IF_ERROR(stmt.Run());
    }
    return OkStatus();
  });
}

Status SqliteBackend::ResetLearning() {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  return Write([&](Connection& conn) { return conn.Exec(kResetLearningSql); });
}

Status SqliteBackend::PutHeuristics(std::span<const Heuristic> heuristics) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "heuristics"));
  for (const Heuristic& h : heuristics) ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));
  if (heuristics.empty()) return OkStatus();
  return Write([&](Connection& conn) -> Status {
    for (const Heuristic& h : heuristics) ENGRAM_RETURN_IF_ERROR(WriteHeuristic(conn, h));
    return OkStatus();
  });
}

Result<std::vector<Heuristic>> SqliteBackend::ListHeuristics(size_t limit) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "heuristics"));
  std::vector<Heuristic> out;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kListHeuristicsSql));
    stmt.BindInt(1, SqlLimit(limit));
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      ENGRAM_ASSIGN_OR_RETURN(Heuristic h, ReadHeuristicRow(stmt));
      out.push_back(std::move(h));
    }
    return OkStatus();
  }));
  return out;
}

Status SqliteBackend::RecordAttributions(std::span<const Attribution> attributions) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "attributions"));
  if (attributions.empty()) return OkStatus();
  return Write([&](Connection& conn) -> Status {
    for (const Attribution& a : attributions) {
      {
        ENGRAM_ASSIGN_OR_RETURN(Statement exists, conn.Prepare(kPatternExistsSql));
        exists.BindText(1, a.pattern_id);
        ENGRAM_ASSIGN_OR_RETURN(bool known, exists.Step());
        if (!known) continue;
      }
      {
        ENGRAM_ASSIGN_OR_RETURN(Statement record, conn.Prepare(kRecordAttributionSql));
        record.BindText(1, a.episode_id);
        record.BindText(2, a.pattern_id);
        record.BindInt(3, a.applied ? 1 : 0);
        record.BindInt(4, ToMillis(a.at));
        ENGRAM_RETURN_IF_ERROR(record.Run());
      }
      ENGRAM_ASSIGN_OR_RETURN(Statement bump, conn.Prepare(kBumpUseSql));
      bump.BindText(1, a.pattern_id);
      bump.BindInt(2, a.applied ? 0 : 1);
      bump.BindInt(3, a.applied ? 1 : 0);
      bump.BindInt(4, ToMillis(a.at));
      ENGRAM_RETURN_IF_ERROR(bump.Run());
    }
    return OkStatus();
  });
}

Result<std::vector<std::string>> SqliteBackend::PendingExtraction(size_t limit) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "extraction marks"));
  std::vector<std::string> ids;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kPendingSql));
    stmt.BindInt(1, SqlLimit(limit));
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      ids.push_back(stmt.ColumnText(0));
    }
    return OkStatus();
  }));
  return ids;
}

Status SqliteBackend::MarkExtracted(std::span<const std::string> episode_ids) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "extraction marks"));
  if (episode_ids.empty()) return OkStatus();
  return Write([&](Connection& conn) -> Status {
    for (const std::string& id : episode_ids) ENGRAM_RETURN_IF_ERROR(ClearPendingExtraction(conn, id));
    return OkStatus();
  });
}

Result<size_t> SqliteBackend::CommitExtraction(const ExtractionBatch& batch) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(3, "patterns"));
  const std::set<std::string> unique_keys(batch.keys.begin(), batch.keys.end());
  size_t credited = 0;
  // One write transaction (one commit, one wait for the write lock) for the whole batch.
  // A retried transaction starts over: patterns reloaded, merge called again.
  // It commits without an fsync (Write's sync=false): everything it writes is derived from
  // synced episodes, and the extraction marks it clears are in the same transaction, so a
  // power loss that takes this commit leaves the episodes pending and they are extracted
  // again. Completions queued behind it on the write lock then no longer wait for a sync.
  ENGRAM_RETURN_IF_ERROR(Write(
      [&](Connection& conn) -> Status {
        credited = 0;
        ExtractionOutput out;
        if (batch.merge) {
          ENGRAM_RETURN_IF_ERROR(MergeInTransaction(conn, unique_keys, [&](std::vector<Pattern>& patterns) {
            return batch.merge(patterns, out);
          }));
        }
        for (const Heuristic& h : out.heuristics) {
          ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));
          ENGRAM_RETURN_IF_ERROR(WriteHeuristic(conn, h));
        }
        ENGRAM_RETURN_IF_ERROR(AppendEpisodePatterns(conn, out.episode_patterns));
        for (const auto& [episode_id, success] : batch.outcomes) {
          ENGRAM_ASSIGN_OR_RETURN(size_t n, CreditEpisode(conn, episode_id, success));
          credited += n;
        }
        for (const std::string& id : batch.extracted) ENGRAM_RETURN_IF_ERROR(ClearPendingExtraction(conn, id));
        return OkStatus();
      },
      /*bump_generation=*/true, /*sync=*/false));
  return credited;
}

}  // namespace engram::sqlite
