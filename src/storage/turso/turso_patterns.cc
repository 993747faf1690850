// TursoBackend's learning tables: patterns merged under their similarity key, heuristics,
// attributions, and the marks of completed episodes not yet extracted. Same semantics as
// SqliteBackend's (src/storage/sqlite/sqlite_patterns.cc); every write is one Hrana batch.
//
// A Hrana batch cannot read, let the client decide, and then write in one transaction, so
// MergePatterns is optimistic: it reads the patterns with their `revision` (bumped by every
// write of a pattern row), calls merge, and sends one batch that first checks, for every
// key, that the revision it read is still the stored one (a guard: the batch aborts with
// "conflict" otherwise) and then writes. A writer that slipped in between makes the batch
// fail whole, and the merge runs again on what that writer left.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"
#include "storage/turso/turso_backend.h"

namespace engram::turso {

namespace {

using nlohmann::json;

// Schema v1, learning. As SQLite's v3 tables, plus patterns.revision (see above). Nested
// values read only whole (context, evidence, body) are JSON text; what filters and
// ordering use are columns. Timestamps are milliseconds. extraction_pending's key order is
// the episodes' age (UUIDv7 ids are time-ordered).
constexpr const char* kSchema[] = {
    R"sql(CREATE TABLE patterns (
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
  updated_at           INTEGER NOT NULL,
  revision             INTEGER NOT NULL DEFAULT 0
))sql",
    "CREATE INDEX patterns_by_domain ON patterns(domain)",
    R"sql(CREATE TABLE heuristics (
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
))sql",
    "CREATE INDEX heuristics_by_confidence ON heuristics(confidence DESC, heuristic_id DESC)",
    R"sql(CREATE TABLE attributions (
  episode_id TEXT NOT NULL,
  pattern_id TEXT NOT NULL,
  applied    INTEGER NOT NULL,
  at         INTEGER NOT NULL,
  credited   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (episode_id, pattern_id)
))sql",
    "CREATE TABLE extraction_pending (episode_id TEXT PRIMARY KEY)",
};

// The pattern columns ReadPatternRow reads, in its order.
#define ENGRAM_PATTERN_COLUMNS                                                                              \
  "pattern_id, type, similarity_key, description, body_json, context_json, occurrences, successes, "       \
  "success_rate, avg_latency_ms, evidence_json, times_retrieved, times_applied, success_when_applied, "    \
  "failure_when_applied, last_used, decay_weight, created_at, updated_at, revision"

// CAST: tursodb 0.6 matches no row of `indexed_text IN (SELECT value FROM json_each(?))` for a
// value that looks like a number.
constexpr const char* kPatternsByKeysSql =
    "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns "
    "WHERE similarity_key IN (SELECT CAST(value AS TEXT) FROM json_each(?))";
constexpr const char* kPatternByIdSql = "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns WHERE pattern_id = ?";
constexpr const char* kListPatternsSql =
    "SELECT " ENGRAM_PATTERN_COLUMNS " FROM patterns "
    "WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR domain = ?2) AND (?3 IS NULL OR success_rate >= ?3) "
    "ORDER BY success_rate * decay_weight DESC, created_at DESC, pattern_id DESC LIMIT ?4";
// The revision MergePatterns read for a key is still the stored one (-1: no row).
constexpr const char* kRevisionChangedSql =
    "COALESCE((SELECT revision FROM patterns WHERE similarity_key = ?), -1) <> ?";
// An upsert on pattern_id only: a pattern whose similarity key belongs to another row
// fails on the UNIQUE constraint (kAlreadyExists) instead of replacing that row.
constexpr const char* kUpsertPatternSql =
    "INSERT INTO patterns (pattern_id, type, similarity_key, description, body_json, context_json, occurrences, "
    "successes, success_rate, avg_latency_ms, evidence_json, times_retrieved, times_applied, success_when_applied, "
    "failure_when_applied, last_used, decay_weight, created_at, updated_at, domain, revision) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, 0) "
    "ON CONFLICT (pattern_id) DO UPDATE SET type = excluded.type, similarity_key = excluded.similarity_key, "
    "description = excluded.description, body_json = excluded.body_json, context_json = excluded.context_json, "
    "occurrences = excluded.occurrences, successes = excluded.successes, success_rate = excluded.success_rate, "
    "avg_latency_ms = excluded.avg_latency_ms, evidence_json = excluded.evidence_json, "
    "times_retrieved = excluded.times_retrieved, times_applied = excluded.times_applied, "
    "success_when_applied = excluded.success_when_applied, failure_when_applied = excluded.failure_when_applied, "
    "last_used = excluded.last_used, decay_weight = excluded.decay_weight, created_at = excluded.created_at, "
    "updated_at = excluded.updated_at, domain = excluded.domain, revision = patterns.revision + 1";
constexpr const char* kSetDecaySql =
    "UPDATE patterns SET decay_weight = ?2, revision = revision + 1 WHERE pattern_id = ?1";

constexpr const char* kPutHeuristicSql =
    "INSERT OR REPLACE INTO heuristics (heuristic_id, condition, action, confidence, evidence_json, success_rate, "
    "sample_size, source_pattern_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
constexpr const char* kListHeuristicsSql =
    "SELECT heuristic_id, condition, action, confidence, evidence_json, success_rate, sample_size, "
    "source_pattern_id, created_at, updated_at FROM heuristics ORDER BY confidence DESC, heuristic_id DESC LIMIT ?1";

// Only for a known pattern; shown → applied upgrades a pair; nothing downgrades it; `at`
// keeps the latest.
constexpr const char* kRecordAttributionSql =
    "INSERT INTO attributions (episode_id, pattern_id, applied, at, credited) "
    "SELECT ?1, ?2, ?3, ?4, 0 WHERE EXISTS (SELECT 1 FROM patterns WHERE pattern_id = ?2) "
    "ON CONFLICT (episode_id, pattern_id) DO UPDATE SET applied = MAX(applied, excluded.applied), "
    "at = MAX(at, excluded.at)";
constexpr const char* kBumpUseSql =
    "UPDATE patterns SET times_retrieved = times_retrieved + ?2, times_applied = times_applied + ?3, "
    "last_used = MAX(COALESCE(last_used, ?4), ?4), revision = revision + 1 WHERE pattern_id = ?1";
// Credits a pattern only while its attribution is still uncredited, so two processes
// crediting the same episode at once credit it once. RETURNING tells whether it did: tursodb
// answers affected_row_count 0 for every statement.
constexpr const char* kCreditPatternSql =
    "UPDATE patterns SET success_when_applied = success_when_applied + ?2, "
    "failure_when_applied = failure_when_applied + ?3, revision = revision + 1 WHERE pattern_id = ?1 "
    "AND EXISTS (SELECT 1 FROM attributions WHERE episode_id = ?4 AND pattern_id = ?1 AND credited = 0) "
    "RETURNING pattern_id";
constexpr const char* kMarkCreditedSql = "UPDATE attributions SET credited = 1 WHERE episode_id = ? AND pattern_id = ?";

constexpr const char* kMarkPendingSql = "INSERT OR IGNORE INTO extraction_pending (episode_id) VALUES (?)";
constexpr const char* kClearPendingSql = "DELETE FROM extraction_pending WHERE episode_id = ?";
constexpr const char* kPendingSql = "SELECT episode_id FROM extraction_pending ORDER BY episode_id LIMIT ?";
// Completed episodes are those with a full-text entry (turso_search.cc).
constexpr const char* kResetLearningSql[] = {
    "DELETE FROM attributions",
    "DELETE FROM heuristics",
    "DELETE FROM patterns",
    "UPDATE episodes SET pattern_ids_json = '[]' WHERE pattern_ids_json <> '[]'",
    "INSERT OR IGNORE INTO extraction_pending (episode_id) SELECT episode_id FROM search_docs",
};
// CommitExtraction reads what it changes and guards that it is unchanged when its batch
// runs: the episodes' pattern_ids as read, and the attributions still uncredited.
constexpr const char* kEpisodePatternIdsSql =
    "SELECT episode_id, pattern_ids_json FROM episodes "
    "WHERE episode_id IN (SELECT CAST(value AS TEXT) FROM json_each(?))";
constexpr const char* kPatternIdsChangedSql =
    "COALESCE((SELECT pattern_ids_json FROM episodes WHERE episode_id = ?), '') <> ?";
constexpr const char* kSetEpisodePatternIdsSql = "UPDATE episodes SET pattern_ids_json = ? WHERE episode_id = ?";
constexpr const char* kBatchUncreditedSql =
    "SELECT episode_id, pattern_id FROM attributions WHERE credited = 0 "
    "AND episode_id IN (SELECT CAST(value AS TEXT) FROM json_each(?)) ORDER BY episode_id, pattern_id";

// How many times MergePatterns runs merge again after another writer changed its patterns
// between its read and its batch, and the first pause between tries (doubling, jittered).
constexpr int kMergeAttempts = 64;
constexpr std::chrono::milliseconds kMergeBackoff{2};
constexpr std::chrono::milliseconds kMergeMaxBackoff{100};

int64_t SqlLimit(size_t limit) { return limit == 0 ? -1 : static_cast<int64_t>(limit); }

Result<json> ParseStored(const std::string& text, const char* what, const std::string& id, const char* column) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return DataLossError(std::string(what) + " " + id + ": stored " + column + " is not valid JSON");
  }
  return j;
}

Result<std::vector<std::string>> ParseStoredList(const std::string& text, const char* what, const std::string& id,
                                                 const char* column) {
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

// A pattern row read with ENGRAM_PATTERN_COLUMNS, and its revision.
struct StoredPattern {
  Pattern pattern;
  int64_t revision = 0;
};

Result<StoredPattern> ReadPatternRow(const HranaResult& r, size_t row) {
  StoredPattern stored;
  Pattern& p = stored.pattern;
  ENGRAM_ASSIGN_OR_RETURN(p.pattern_id, r.Text(row, 0));
  ENGRAM_ASSIGN_OR_RETURN(std::string type_name, r.Text(row, 1));
  Result<PatternType> type = ParsePatternType(type_name);
  if (!type.ok()) return DataLossError("pattern " + p.pattern_id + ": bad type \"" + type_name + "\"");
  p.type = *type;
  ENGRAM_ASSIGN_OR_RETURN(p.similarity_key, r.Text(row, 2));
  ENGRAM_ASSIGN_OR_RETURN(p.description, r.Text(row, 3));
  ENGRAM_ASSIGN_OR_RETURN(p.body_json, r.Text(row, 4));
  ENGRAM_ASSIGN_OR_RETURN(std::string context_text, r.Text(row, 5));
  ENGRAM_ASSIGN_OR_RETURN(json context, ParseStored(context_text, "pattern", p.pattern_id, "context"));
  Result<TaskContext> decoded = TaskContextFromJson(context);
  if (!decoded.ok()) return DataLossError("pattern " + p.pattern_id + ": " + std::string(decoded.status().message()));
  p.context = *std::move(decoded);
  ENGRAM_ASSIGN_OR_RETURN(p.occurrences, r.Int(row, 6));
  ENGRAM_ASSIGN_OR_RETURN(p.successes, r.Int(row, 7));
  ENGRAM_ASSIGN_OR_RETURN(p.success_rate, r.Double(row, 8));
  ENGRAM_ASSIGN_OR_RETURN(p.avg_latency_ms, r.Double(row, 9));
  ENGRAM_ASSIGN_OR_RETURN(std::string evidence, r.Text(row, 10));
  ENGRAM_ASSIGN_OR_RETURN(p.evidence, ParseStoredList(evidence, "pattern", p.pattern_id, "evidence"));
  ENGRAM_ASSIGN_OR_RETURN(p.effectiveness.times_retrieved, r.Int(row, 11));
  ENGRAM_ASSIGN_OR_RETURN(p.effectiveness.times_applied, r.Int(row, 12));
  ENGRAM_ASSIGN_OR_RETURN(p.effectiveness.success_when_applied, r.Int(row, 13));
  ENGRAM_ASSIGN_OR_RETURN(p.effectiveness.failure_when_applied, r.Int(row, 14));
  ENGRAM_ASSIGN_OR_RETURN(std::optional<int64_t> last, r.OptInt(row, 15));
  if (last) p.effectiveness.last_used = FromMillis(*last);
  ENGRAM_ASSIGN_OR_RETURN(p.decay_weight, r.Double(row, 16));
  ENGRAM_ASSIGN_OR_RETURN(int64_t created, r.Int(row, 17));
  ENGRAM_ASSIGN_OR_RETURN(int64_t updated, r.Int(row, 18));
  p.created_at = FromMillis(created);
  p.updated_at = FromMillis(updated);
  ENGRAM_ASSIGN_OR_RETURN(stored.revision, r.Int(row, 19));
  return stored;
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
  json body = json::parse(p.body_json, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return bad("body_json is not a JSON object");
  return OkStatus();
}

size_t AddUpsertPattern(HranaBatch& batch, const Pattern& p) {
  const auto& e = p.effectiveness;
  return batch.Add(kUpsertPatternSql,
                   {HranaValue::Text(p.pattern_id), HranaValue::Text(PatternTypeName(p.type)),
                    HranaValue::Text(p.similarity_key), HranaValue::Text(p.description), HranaValue::Text(p.body_json),
                    HranaValue::Text(DumpColumn(TaskContextToJson(p.context))), HranaValue::Int(p.occurrences),
                    HranaValue::Int(p.successes), HranaValue::Float(p.success_rate),
                    HranaValue::Float(p.avg_latency_ms), HranaValue::Text(DumpColumn(json(p.evidence))),
                    HranaValue::Int(e.times_retrieved), HranaValue::Int(e.times_applied),
                    HranaValue::Int(e.success_when_applied), HranaValue::Int(e.failure_when_applied),
                    e.last_used ? HranaValue::Int(ToMillis(*e.last_used)) : HranaValue::Null(),
                    HranaValue::Float(p.decay_weight), HranaValue::Int(ToMillis(p.created_at)),
                    HranaValue::Int(ToMillis(p.updated_at)), HranaValue::Text(p.context.domain)});
}

Status CheckHeuristic(const Heuristic& h) {
  if (h.heuristic_id.empty()) return InvalidArgumentError("a heuristic has no heuristic_id");
  if (!Finite(h.confidence) || !Finite(h.success_rate)) {
    return InvalidArgumentError("heuristic " + h.heuristic_id + ": confidence and success_rate must be finite");
  }
  return OkStatus();
}

void AddPutHeuristic(HranaBatch& batch, const Heuristic& h) {
  batch.Add(kPutHeuristicSql,
            {HranaValue::Text(h.heuristic_id), HranaValue::Text(h.condition), HranaValue::Text(h.action),
             HranaValue::Float(h.confidence), HranaValue::Text(DumpColumn(json(h.evidence_episode_ids))),
             HranaValue::Float(h.success_rate), HranaValue::Int(h.sample_size),
             HranaValue::Text(h.source_pattern_id), HranaValue::Int(ToMillis(h.created_at)),
             HranaValue::Int(ToMillis(h.updated_at))});
}

Result<Heuristic> ReadHeuristicRow(const HranaResult& r, size_t row) {
  Heuristic h;
  ENGRAM_ASSIGN_OR_RETURN(h.heuristic_id, r.Text(row, 0));
  ENGRAM_ASSIGN_OR_RETURN(h.condition, r.Text(row, 1));
  ENGRAM_ASSIGN_OR_RETURN(h.action, r.Text(row, 2));
  ENGRAM_ASSIGN_OR_RETURN(h.confidence, r.Double(row, 3));
  ENGRAM_ASSIGN_OR_RETURN(std::string evidence, r.Text(row, 4));
  ENGRAM_ASSIGN_OR_RETURN(h.evidence_episode_ids, ParseStoredList(evidence, "heuristic", h.heuristic_id, "evidence"));
  ENGRAM_ASSIGN_OR_RETURN(h.success_rate, r.Double(row, 5));
  ENGRAM_ASSIGN_OR_RETURN(h.sample_size, r.Int(row, 6));
  ENGRAM_ASSIGN_OR_RETURN(h.source_pattern_id, r.Text(row, 7));
  ENGRAM_ASSIGN_OR_RETURN(int64_t created, r.Int(row, 8));
  ENGRAM_ASSIGN_OR_RETURN(int64_t updated, r.Int(row, 9));
  h.created_at = FromMillis(created);
  h.updated_at = FromMillis(updated);
  return h;
}

Result<std::vector<std::string>> ReadIds(const HranaResult& r) {
  std::vector<std::string> ids;
  ids.reserve(r.rows.size());
  for (size_t i = 0; i < r.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string id, r.Text(i, 0));
    ids.push_back(std::move(id));
  }
  return ids;
}

}  // namespace

std::vector<std::string> LearningSchemaStatements() { return {std::begin(kSchema), std::end(kSchema)}; }

// ---- extraction marks (turso_backend.h) ----

void AppendMarkPending(HranaBatch& batch, std::string_view episode_id) {
  batch.Add(kMarkPendingSql, {HranaValue::Text(episode_id)});
}

void AppendClearPending(HranaBatch& batch, std::string_view episode_id) {
  batch.Add(kClearPendingSql, {HranaValue::Text(episode_id)});
}

// ---- TursoBackend: learning ----

Status TursoBackend::MergePatterns(std::span<const std::string> keys,
                                   const std::function<Status(std::vector<Pattern>&)>& merge) {
  ExtractionBatch batch;
  batch.keys.assign(keys.begin(), keys.end());
  batch.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput&) { return merge(patterns); };
  return CommitExtraction(batch).status();
}

// Optimistic as MergePatterns (file comment): reads the patterns of the keys, calls merge,
// reads the pattern_ids of the episodes it fed and the attributions still to credit, and
// sends one batch that guards every one of those reads and then writes. Another writer in
// between makes the batch fail whole, and it all runs again on what that writer left.
Result<size_t> TursoBackend::CommitExtraction(const ExtractionBatch& batch) {
  const std::set<std::string> unique_keys(batch.keys.begin(), batch.keys.end());
  const std::string key_list = DumpColumn(json(std::vector<std::string>(unique_keys.begin(), unique_keys.end())));
  std::vector<std::string> credit_episodes;
  std::map<std::string, bool> succeeded;
  for (const auto& [episode_id, success] : batch.outcomes) {
    if (succeeded.insert_or_assign(episode_id, success).second) credit_episodes.push_back(episode_id);
  }
  const std::string credit_list = DumpColumn(json(credit_episodes));
  std::minstd_rand jitter(std::random_device{}());
  std::chrono::milliseconds pause = kMergeBackoff;
  for (int attempt = 1;; ++attempt) {
    std::map<std::string, int64_t> revisions;  // key -> revision read; absent keys: -1
    std::vector<Pattern> patterns;
    ExtractionOutput out;
    if (batch.merge) {
      ENGRAM_ASSIGN_OR_RETURN(HranaResult rows, client().Execute(kPatternsByKeysSql, {HranaValue::Text(key_list)}));
      for (const std::string& key : unique_keys) revisions[key] = -1;
      for (size_t i = 0; i < rows.rows.size(); ++i) {
        ENGRAM_ASSIGN_OR_RETURN(StoredPattern stored, ReadPatternRow(rows, i));
        revisions[stored.pattern.similarity_key] = stored.revision;
        patterns.push_back(std::move(stored.pattern));
      }
      ENGRAM_RETURN_IF_ERROR(batch.merge(patterns, out));
      for (const Pattern& p : patterns) ENGRAM_RETURN_IF_ERROR(CheckPattern(p));
    }
    for (const Heuristic& h : out.heuristics) ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));

    // The episodes' new pattern_ids, each with the text it replaces.
    std::vector<std::pair<std::string, std::pair<std::string, std::string>>> lists;  // id -> (old, new)
    if (!out.episode_patterns.empty()) {
      std::map<std::string, std::vector<std::string>> added = GroupByEpisode(out.episode_patterns);
      std::vector<std::string> episode_ids;
      for (const auto& [episode_id, ids] : added) episode_ids.push_back(episode_id);
      ENGRAM_ASSIGN_OR_RETURN(HranaResult rows, client().Execute(kEpisodePatternIdsSql,
                                                                 {HranaValue::Text(DumpColumn(json(episode_ids)))}));
      for (size_t i = 0; i < rows.rows.size(); ++i) {
        ENGRAM_ASSIGN_OR_RETURN(std::string episode_id, rows.Text(i, 0));
        ENGRAM_ASSIGN_OR_RETURN(std::string stored, rows.Text(i, 1));
        ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, ParseStoredList(stored, "episode", episode_id,
                                                                              "pattern_ids"));
        if (AppendMissing(ids, added[episode_id])) lists.push_back({episode_id, {std::move(stored), DumpColumn(json(ids))}});
      }
    }
    // Most episodes were shown nothing: one read finds what there is to credit.
    std::vector<std::pair<std::string, std::string>> credits;  // (episode, pattern)
    if (!credit_episodes.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(HranaResult rows, client().Execute(kBatchUncreditedSql, {HranaValue::Text(credit_list)}));
      for (size_t i = 0; i < rows.rows.size(); ++i) {
        ENGRAM_ASSIGN_OR_RETURN(std::string episode_id, rows.Text(i, 0));
        ENGRAM_ASSIGN_OR_RETURN(std::string pattern_id, rows.Text(i, 1));
        credits.emplace_back(std::move(episode_id), std::move(pattern_id));
      }
    }

    HranaBatch write;
    for (const auto& [key, revision] : revisions) {
      AddGuard(write, "conflict", kRevisionChangedSql, {HranaValue::Text(key), HranaValue::Int(revision)});
    }
    for (const auto& [episode_id, change] : lists) {
      AddGuard(write, "conflict", kPatternIdsChangedSql, {HranaValue::Text(episode_id), HranaValue::Text(change.first)});
    }
    // A pattern given a key another row holds (one merge did not load) fails the upsert on
    // the UNIQUE key: kAlreadyExists, as on SQLite.
    for (const Pattern& p : patterns) AddUpsertPattern(write, p);
    for (const Heuristic& h : out.heuristics) AddPutHeuristic(write, h);
    for (const auto& [episode_id, change] : lists) {
      write.Add(kSetEpisodePatternIdsSql, {HranaValue::Text(change.second), HranaValue::Text(episode_id)});
    }
    // Each credit applies only while its attribution is still uncredited (checked in the
    // statement), so a concurrent credit of the same episode counts once.
    std::vector<size_t> credit_steps;
    for (const auto& [episode_id, pattern_id] : credits) {
      const bool success = succeeded[episode_id];
      credit_steps.push_back(write.Add(kCreditPatternSql, {HranaValue::Text(pattern_id),
                                                           HranaValue::Int(success ? 1 : 0),
                                                           HranaValue::Int(success ? 0 : 1),
                                                           HranaValue::Text(episode_id)}));
    }
    for (const auto& [episode_id, pattern_id] : credits) {
      write.Add(kMarkCreditedSql, {HranaValue::Text(episode_id), HranaValue::Text(pattern_id)});
    }
    for (const std::string& id : batch.extracted) AppendClearPending(write, id);
    if (write.size() == 0) return size_t{0};

    Result<std::vector<HranaResult>> written = RunWrite(std::move(write));
    if (written.ok()) {
      size_t credited = 0;
      for (size_t step : credit_steps) {
        if (step < written->size() && !(*written)[step].rows.empty()) ++credited;
      }
      return credited;
    }
    const Status& s = written.status();
    if (s.code() == StatusCode::kAlreadyExists) {
      return AlreadyExistsError("merging patterns: two patterns would have the same similarity key (" +
                                std::string(s.message()) + ")");
    }
    if (GuardCode(s) != "conflict") return s;
    if (attempt >= kMergeAttempts) {
      return AbortedError("merging patterns: other writers changed them " + std::to_string(attempt) +
                          " times in a row; try again");
    }
    std::uniform_int_distribution<int64_t> spread(0, pause.count());
    std::this_thread::sleep_for(pause + std::chrono::milliseconds(spread(jitter)));
    pause = std::min(pause * 2, kMergeMaxBackoff);
  }
}

Result<Pattern> TursoBackend::GetPattern(std::string_view pattern_id) {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client().Execute(kPatternByIdSql, {HranaValue::Text(pattern_id)}));
  if (r.rows.empty()) return NotFoundError("no pattern " + std::string(pattern_id));
  ENGRAM_ASSIGN_OR_RETURN(StoredPattern stored, ReadPatternRow(r, 0));
  return std::move(stored.pattern);
}

Result<std::vector<Pattern>> TursoBackend::ListPatterns(const PatternFilter& filter) {
  ENGRAM_ASSIGN_OR_RETURN(
      HranaResult r,
      client().Execute(kListPatternsSql,
                       {filter.type ? HranaValue::Text(PatternTypeName(*filter.type)) : HranaValue::Null(),
                        HranaValue::OptText(filter.domain),
                        filter.min_success_rate ? HranaValue::Float(*filter.min_success_rate) : HranaValue::Null(),
                        HranaValue::Int(SqlLimit(filter.limit))}));
  std::vector<Pattern> out;
  out.reserve(r.rows.size());
  for (size_t i = 0; i < r.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(StoredPattern stored, ReadPatternRow(r, i));
    out.push_back(std::move(stored.pattern));
  }
  return out;
}

Status TursoBackend::SetPatternDecay(std::span<const std::pair<std::string, double>> weights) {
  for (const auto& [id, weight] : weights) {
    if (!Finite(weight)) return InvalidArgumentError("the decay weight of pattern " + id + " is not a finite number");
  }
  if (weights.empty()) return OkStatus();
  HranaBatch batch;
  for (const auto& [id, weight] : weights) batch.Add(kSetDecaySql, {HranaValue::Text(id), HranaValue::Float(weight)});
  return RunWrite(std::move(batch)).status();
}

Status TursoBackend::ResetLearning() {
  HranaBatch batch;
  for (const char* sql : kResetLearningSql) batch.Add(sql);
  return RunWrite(std::move(batch)).status();
}

Status TursoBackend::PutHeuristics(std::span<const Heuristic> heuristics) {
  for (const Heuristic& h : heuristics) ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));
  if (heuristics.empty()) return OkStatus();
  HranaBatch batch;
  for (const Heuristic& h : heuristics) AddPutHeuristic(batch, h);
  return RunWrite(std::move(batch)).status();
}

Result<std::vector<Heuristic>> TursoBackend::ListHeuristics(size_t limit) {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client().Execute(kListHeuristicsSql, {HranaValue::Int(SqlLimit(limit))}));
  std::vector<Heuristic> out;
  out.reserve(r.rows.size());
  for (size_t i = 0; i < r.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(Heuristic h, ReadHeuristicRow(r, i));
    out.push_back(std::move(h));
  }
  return out;
}

Status TursoBackend::RecordAttributions(std::span<const Attribution> attributions) {
  if (attributions.empty()) return OkStatus();
  HranaBatch batch;
  for (const Attribution& a : attributions) {
    const int64_t at = ToMillis(a.at);
    batch.Add(kRecordAttributionSql, {HranaValue::Text(a.episode_id), HranaValue::Text(a.pattern_id),
                                      HranaValue::Int(a.applied ? 1 : 0), HranaValue::Int(at)});
    batch.Add(kBumpUseSql, {HranaValue::Text(a.pattern_id), HranaValue::Int(a.applied ? 0 : 1),
                            HranaValue::Int(a.applied ? 1 : 0), HranaValue::Int(at)});
  }
  return RunWrite(std::move(batch)).status();
}

Result<std::vector<std::string>> TursoBackend::PendingExtraction(size_t limit) {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client().Execute(kPendingSql, {HranaValue::Int(SqlLimit(limit))}));
  return ReadIds(r);
}

Status TursoBackend::MarkExtracted(std::span<const std::string> episode_ids) {
  if (episode_ids.empty()) return OkStatus();
  HranaBatch batch;
  for (const std::string& id : episode_ids) AppendClearPending(batch, id);
  return RunWrite(std::move(batch)).status();
}

}  // namespace engram::turso
