// PostgresBackend's learning store (schema v3): patterns merged by similarity key,
// heuristics, attributions, and the extraction marker on episodes.
#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"
#include "storage/postgres/postgres_backend.h"

namespace engram::postgres {

using nlohmann::json;

// Nested values read only whole (context, evidence, the type-specific body) are JSON text
// that round-trips byte for byte; what filters and ordering use (type, domain, success
// rate, decay) are columns. Timestamps are milliseconds, as for episodes.
//
// pattern_attributions ties a pattern shown to (or applied by) an episode to that
// episode's outcome, one row per pair. It does not reference episodes: an attribution is
// recorded while its episode runs, and an episode deleted later simply never credits.
// Rows go with their pattern.
//
// extract_pending marks completed episodes the learning pipeline has not processed yet;
// the partial index serves PendingExtraction without scanning the others.
const char* const kSchemaV3 = R"sql(
ALTER TABLE episodes ADD COLUMN extract_pending boolean NOT NULL DEFAULT false;
UPDATE episodes SET extract_pending = true WHERE outcome_kind IS NOT NULL;
CREATE INDEX episodes_pending ON episodes (episode_id) WHERE extract_pending;
CREATE TABLE patterns (
  pattern_id           text COLLATE "C" PRIMARY KEY,
  type                 text NOT NULL,
  similarity_key       text COLLATE "C" NOT NULL UNIQUE,
  description          text NOT NULL,
  body_json            text NOT NULL,
  context_json         text NOT NULL,
  domain               text NOT NULL,
  occurrences          bigint NOT NULL,
  successes            bigint NOT NULL,
  success_rate         double precision NOT NULL,
  avg_latency_ms       double precision NOT NULL,
  evidence_json        text NOT NULL,
  times_retrieved      bigint NOT NULL,
  times_applied        bigint NOT NULL,
  success_when_applied bigint NOT NULL,
  failure_when_applied bigint NOT NULL,
  last_used            bigint,
  decay_weight         double precision NOT NULL,
  created_at           bigint NOT NULL,
  updated_at           bigint NOT NULL
);
CREATE INDEX patterns_by_type ON patterns (type);
CREATE INDEX patterns_by_domain ON patterns (domain);
CREATE TABLE heuristics (
  heuristic_id      text COLLATE "C" PRIMARY KEY,
  condition         text NOT NULL,
  action            text NOT NULL,
  confidence        double precision NOT NULL,
  evidence_json     text NOT NULL,
  success_rate      double precision NOT NULL,
  sample_size       bigint NOT NULL,
  source_pattern_id text NOT NULL,
  created_at        bigint NOT NULL,
  updated_at        bigint NOT NULL
);
CREATE INDEX heuristics_by_confidence ON heuristics (confidence DESC, heuristic_id DESC);
CREATE TABLE pattern_attributions (
  episode_id text COLLATE "C" NOT NULL,
  pattern_id text COLLATE "C" NOT NULL REFERENCES patterns (pattern_id) ON DELETE CASCADE,
  applied    boolean NOT NULL,
  at         bigint NOT NULL,
  credited   boolean NOT NULL DEFAULT false,
  PRIMARY KEY (episode_id, pattern_id)
);
CREATE INDEX pattern_attributions_by_pattern ON pattern_attributions (pattern_id);
)sql";

namespace {

#define ENGRAM_PG_PATTERN_COLUMNS                                                                          \
  "pattern_id, type, similarity_key, description, body_json, context_json, domain, occurrences, successes, " \
  "success_rate, avg_latency_ms, evidence_json, times_retrieved, times_applied, success_when_applied, "      \
  "failure_when_applied, last_used, decay_weight, created_at, updated_at"
#define ENGRAM_PG_HEURISTIC_COLUMNS                                                                  \
  "heuristic_id, condition, action, confidence, evidence_json, success_rate, sample_size, " \
  "source_pattern_id, created_at, updated_at"

// Serialises MergePatterns per key across every process on the database, including the
// insert of a key no row holds yet (which FOR UPDATE alone could not lock). The first
// key names the schema, so stores sharing a database do not wait on each other.
constexpr const char* kKeyLocksSql =
    "SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k ORDER BY h";
constexpr const char* kKeyLockSql =
    "SELECT pg_advisory_xact_lock(hashtext('engram.pattern:' || COALESCE(current_schema(), '')), $1::int)";
constexpr const char* kSelectPatternsByKeySql =
    "SELECT " ENGRAM_PG_PATTERN_COLUMNS " FROM patterns WHERE similarity_key = ANY($1::text[]) "
    "ORDER BY pattern_id FOR UPDATE";
constexpr const char* kUpsertPatternSql =
    "INSERT INTO patterns (" ENGRAM_PG_PATTERN_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, "
    "$9::bigint, $10::float8, $11::float8, $12, $13::bigint, $14::bigint, $15::bigint, $16::bigint, $17::bigint, "
    "$18::float8, $19::bigint, $20::bigint) "
    "ON CONFLICT (pattern_id) DO UPDATE SET type = EXCLUDED.type, similarity_key = EXCLUDED.similarity_key, "
    "description = EXCLUDED.description, body_json = EXCLUDED.body_json, context_json = EXCLUDED.context_json, "
    "domain = EXCLUDED.domain, occurrences = EXCLUDED.occurrences, successes = EXCLUDED.successes, "
    "success_rate = EXCLUDED.success_rate, avg_latency_ms = EXCLUDED.avg_latency_ms, "
    "evidence_json = EXCLUDED.evidence_json, times_retrieved = EXCLUDED.times_retrieved, "
    "times_applied = EXCLUDED.times_applied, success_when_applied = EXCLUDED.success_when_applied, "
    "failure_when_applied = EXCLUDED.failure_when_applied, last_used = EXCLUDED.last_used, "
    "decay_weight = EXCLUDED.decay_weight, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at";
constexpr const char* kSelectPatternSql =
    "SELECT " ENGRAM_PG_PATTERN_COLUMNS " FROM patterns WHERE pattern_id = $1::text";
// Ranks on the ordering columns alone (a top-N sort under a LIMIT) and joins the whole
// rows to the ranked ids after: sorting whole rows carried every body and evidence list
// through the sort (spilling to disk past work_mem at 10k patterns). The rows come back in
// no set order, each with its position (1-based), and ListPatterns puts them in place.
// LIMIT NULL is no limit.
constexpr const char* kListPatternsSql =
    "SELECT " ENGRAM_PG_PATTERN_COLUMNS ", ranked.position FROM ("
    "SELECT pattern_id, row_number() OVER (ORDER BY score DESC, created_at DESC, pattern_id DESC) AS position "
    "FROM (SELECT pattern_id, success_rate * decay_weight AS score, created_at FROM patterns "
    "WHERE ($1::text IS NULL OR type = $1::text) AND ($2::text IS NULL OR domain = $2::text) "
    "AND ($3::float8 IS NULL OR success_rate >= $3::float8) "
    "ORDER BY score DESC, created_at DESC, pattern_id DESC LIMIT $4::bigint) AS top"
    ") AS ranked JOIN patterns USING (pattern_id)";
constexpr int kListPositionColumn = 20;  // ranked.position, after ENGRAM_PG_PATTERN_COLUMNS
constexpr const char* kSetDecaySql =
    "UPDATE patterns p SET decay_weight = u.weight FROM unnest($1::text[], $2::float8[]) AS u(pattern_id, weight) "
    "WHERE p.pattern_id = u.pattern_id";
constexpr const char* kResetLearningSql =
    "DELETE FROM pattern_attributions; DELETE FROM heuristics; DELETE FROM patterns; "
    "UPDATE episodes SET pattern_ids_json = '[]' WHERE pattern_ids_json <> '[]'; "
    "UPDATE episodes SET extract_pending = true WHERE outcome_kind IS NOT NULL AND NOT extract_pending";
// ChangePayloads announces an id it cannot list as " *": every episode changed (a reset
// empties every episode's pattern_ids).
const std::string kEveryEpisode[] = {std::string()};
// The episodes' pattern_ids, rows locked in id order (no deadlock between two batches).
constexpr const char* kLockEpisodePatternIdsSql =
    "SELECT episode_id, pattern_ids_json FROM episodes WHERE episode_id = ANY($1::text[]) "
    "ORDER BY episode_id FOR NO KEY UPDATE";
constexpr const char* kSetEpisodePatternIdsSql =
    "UPDATE episodes e SET pattern_ids_json = u.ids FROM unnest($1::text[], $2::text[]) AS u(episode_id, ids) "
    "WHERE e.episode_id = u.episode_id";
// Credits of a whole batch: the patterns its episodes were shown, locked in id order; the
// attributions marked credited (returning which); the per-pattern counts added.
constexpr const char* kBatchAttributedPatternsSql =
    "SELECT DISTINCT pattern_id FROM pattern_attributions WHERE episode_id = ANY($1::text[]) AND NOT credited";
constexpr const char* kBatchCreditSql =
    "UPDATE pattern_attributions SET credited = true WHERE episode_id = ANY($1::text[]) AND NOT credited "
    "RETURNING episode_id, pattern_id";
constexpr const char* kAddCreditsSql =
    "UPDATE patterns p SET success_when_applied = p.success_when_applied + u.successes, "
    "failure_when_applied = p.failure_when_applied + u.failures "
    "FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(pattern_id, successes, failures) "
    "WHERE p.pattern_id = u.pattern_id";
constexpr const char* kUpsertHeuristicSql =
    "INSERT INTO heuristics (" ENGRAM_PG_HEURISTIC_COLUMNS ") VALUES ($1, $2, $3, $4::float8, $5, $6::float8, "
    "$7::bigint, $8, $9::bigint, $10::bigint) "
    "ON CONFLICT (heuristic_id) DO UPDATE SET condition = EXCLUDED.condition, action = EXCLUDED.action, "
    "confidence = EXCLUDED.confidence, evidence_json = EXCLUDED.evidence_json, "
    "success_rate = EXCLUDED.success_rate, sample_size = EXCLUDED.sample_size, "
    "source_pattern_id = EXCLUDED.source_pattern_id, created_at = EXCLUDED.created_at, "
    "updated_at = EXCLUDED.updated_at";
constexpr const char* kListHeuristicsSql =
    "SELECT " ENGRAM_PG_HEURISTIC_COLUMNS " FROM heuristics ORDER BY confidence DESC, heuristic_id DESC "
    "LIMIT $1::bigint";
// Pattern rows are locked in id order before any attribution changes, so concurrent
// recorders and creditors of overlapping patterns queue instead of deadlocking.
constexpr const char* kLockPatternsSql =
    "SELECT pattern_id FROM patterns WHERE pattern_id = ANY($1::text[]) ORDER BY pattern_id FOR NO KEY UPDATE";
// Inserts the pairs (of known patterns only) or upgrades shown → applied; never downgrades.
constexpr const char* kUpsertAttributionsSql =
    "INSERT INTO pattern_attributions AS a (episode_id, pattern_id, applied, at) "
    "SELECT u.episode_id, u.pattern_id, bool_or(u.applied), max(u.at) "
    "FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[]) AS u(episode_id, pattern_id, applied, at) "
    "JOIN patterns p ON p.pattern_id = u.pattern_id GROUP BY u.episode_id, u.pattern_id "
    "ON CONFLICT (episode_id, pattern_id) DO UPDATE SET applied = a.applied OR EXCLUDED.applied, "
    "at = GREATEST(a.at, EXCLUDED.at)";
constexpr const char* kBumpEffectivenessSql =
    "UPDATE patterns p SET times_retrieved = p.times_retrieved + c.shown, "
    "times_applied = p.times_applied + c.applied, "
    "last_used = GREATEST(COALESCE(p.last_used, c.at), c.at) "
    "FROM (SELECT pattern_id, count(*) FILTER (WHERE NOT applied) AS shown, count(*) FILTER (WHERE applied) AS applied, "
    "max(at) AS at FROM unnest($1::text[], $2::boolean[], $3::bigint[]) AS u(pattern_id, applied, at) "
    "GROUP BY pattern_id) c WHERE p.pattern_id = c.pattern_id";
constexpr const char* kPendingSql =
    "SELECT episode_id FROM episodes WHERE extract_pending ORDER BY episode_id LIMIT $1::bigint";
constexpr const char* kMarkExtractedSql =
    "UPDATE episodes SET extract_pending = false WHERE episode_id = ANY($1::text[]) AND extract_pending";

Result<std::vector<std::string>> DecodeIdList(const std::string& text, const std::string& owner) {
  if (std::optional<std::vector<std::string>> plain = ParsePlainStringList(text)) return *std::move(plain);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return DataLossError(owner + ": stored evidence is not a JSON list");
  std::vector<std::string> out;
  for (const json& item : j) {
    if (!item.is_string()) return DataLossError(owner + ": stored evidence is not a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

// Contexts already decoded by one listing, by their stored text: most patterns share a
// few contexts (domain, language), so a listing parses each once.
using ContextMemo = std::unordered_map<std::string, TaskContext>;

// Reads row `row` of a result selected with ENGRAM_PG_PATTERN_COLUMNS. Errors: kDataLoss.
Result<Pattern> ReadPatternRow(const PgResult& r, int row, ContextMemo* memo = nullptr) {
  Pattern p;
  p.pattern_id = r.Text(row, 0);
  const std::string owner = "pattern " + p.pattern_id;
  Result<PatternType> type = ParsePatternType(r.Text(row, 1));
  if (!type.ok()) return DataLossError(owner + ": bad type \"" + r.Text(row, 1) + "\"");
  p.type = *type;
  p.similarity_key = r.Text(row, 2);
  p.description = r.Text(row, 3);
  p.body_json = r.Text(row, 4);
  std::string context_text = r.Text(row, 5);
  const TaskContext* known = nullptr;
  if (memo != nullptr) {
    auto it = memo->find(context_text);
    if (it != memo->end()) known = &it->second;
  }
  if (known != nullptr) {
    p.context = *known;
  } else {
    json context = json::parse(context_text, nullptr, false);
    if (context.is_discarded()) return DataLossError(owner + ": stored context is not valid JSON");
    Result<TaskContext> decoded = TaskContextFromJson(context, "context");
    if (!decoded.ok()) return DataLossError(owner + ": " + std::string(decoded.status().message()));
    p.context = *std::move(decoded);
    if (memo != nullptr) memo->emplace(std::move(context_text), p.context);
  }
  p.occurrences = r.Int(row, 7);
  p.successes = r.Int(row, 8);
  p.success_rate = r.Double(row, 9);
  p.avg_latency_ms = r.Double(row, 10);
  ENGRAM_ASSIGN_OR_RETURN(p.evidence, DecodeIdList(r.Text(row, 11), owner));
  p.effectiveness.times_retrieved = r.Int(row, 12);
  p.effectiveness.times_applied = r.Int(row, 13);
  p.effectiveness.success_when_applied = r.Int(row, 14);
  p.effectiveness.failure_when_applied = r.Int(row, 15);
  if (!r.IsNull(row, 16)) p.effectiveness.last_used = FromMillis(r.Int(row, 16));
  p.decay_weight = r.Double(row, 17);
  p.created_at = FromMillis(r.Int(row, 18));
  p.updated_at = FromMillis(r.Int(row, 19));
  return p;
}

Status WritePattern(Connection& conn, const Pattern& p) {
  Params q;
  q.Text(p.pattern_id).Text(PatternTypeName(p.type)).Text(p.similarity_key).Text(p.description).Text(p.body_json);
  q.Text(DumpColumn(TaskContextToJson(p.context))).Text(p.context.domain).Int(p.occurrences).Int(p.successes);
  q.Double(p.success_rate).Double(p.avg_latency_ms).Text(DumpColumn(json(p.evidence)));
  const PatternEffectiveness& f = p.effectiveness;
  q.Int(f.times_retrieved).Int(f.times_applied).Int(f.success_when_applied).Int(f.failure_when_applied);
  q.OptInt(f.last_used ? std::optional<int64_t>(ToMillis(*f.last_used)) : std::nullopt);
  q.Double(p.decay_weight).Int(ToMillis(p.created_at)).Int(ToMillis(p.updated_at));
  Result<PgResult> r = conn.Query(kUpsertPatternSql, q);
  if (r.status().code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("another pattern already has the similarity key \"" + p.similarity_key +
                              "\" (pattern " + p.pattern_id + " cannot take it)");
  }
  return r.status();
}

Result<Heuristic> ReadHeuristicRow(const PgResult& r, int row) {
  Heuristic h;
  h.heuristic_id = r.Text(row, 0);
  h.condition = r.Text(row, 1);
  h.action = r.Text(row, 2);
  h.confidence = r.Double(row, 3);
  ENGRAM_ASSIGN_OR_RETURN(h.evidence_episode_ids, DecodeIdList(r.Text(row, 4), "heuristic " + h.heuristic_id));
  h.success_rate = r.Double(row, 5);
  h.sample_size = r.Int(row, 6);
  h.source_pattern_id = r.Text(row, 7);
  h.created_at = FromMillis(r.Int(row, 8));
  h.updated_at = FromMillis(r.Int(row, 9));
  return h;
}

std::vector<std::optional<std::string>> OptStrings(std::span<const std::string> values) {
  return std::vector<std::optional<std::string>>(values.begin(), values.end());
}

// The shortest text that reads back as exactly `v` (as Params::Double spells it).
std::optional<std::string> DoubleText(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

Status CheckHeuristic(const Heuristic& h) {
  if (h.heuristic_id.empty()) return InvalidArgumentError("a heuristic has no heuristic_id");
  return OkStatus();
}

Status WriteHeuristic(Connection& conn, const Heuristic& h) {
  Params p;
  p.Text(h.heuristic_id).Text(h.condition).Text(h.action).Double(h.confidence);
  p.Text(DumpColumn(json(h.evidence_episode_ids))).Double(h.success_rate).Int(h.sample_size);
  p.Text(h.source_pattern_id).Int(ToMillis(h.created_at)).Int(ToMillis(h.updated_at));
  ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kUpsertHeuristicSql, p));
  return OkStatus();
}

// Locks the keys, loads their patterns, calls `merge` and writes back every pattern it
// leaves, inside the caller's write transaction.
Status MergeInTransaction(Connection& conn, const std::vector<std::optional<std::string>>& key_list,
                          const std::function<Status(std::vector<Pattern>&)>& merge) {
  // Advisory locks in ascending order of lock id, one statement each so the order is
  // certain: two merges over overlapping keys queue instead of deadlocking.
  ENGRAM_ASSIGN_OR_RETURN(PgResult hashes, conn.Query(kKeyLocksSql, Params().TextArray(key_list)));
  for (int i = 0; i < hashes.rows(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult locked, conn.Query(kKeyLockSql, Params().Int(hashes.Int(i, 0))));
  }
  // After the locks, in READ COMMITTED: sees every merge that committed before.
  ENGRAM_ASSIGN_OR_RETURN(PgResult rows, conn.Query(kSelectPatternsByKeySql, Params().TextArray(key_list)));
  std::vector<Pattern> patterns;
  ContextMemo memo;
  for (int i = 0; i < rows.rows(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(Pattern p, ReadPatternRow(rows, i, &memo));
    patterns.push_back(std::move(p));
  }
  ENGRAM_RETURN_IF_ERROR(merge(patterns));
  std::set<std::string_view> ids, similarity_keys;
  for (const Pattern& p : patterns) {
    if (p.pattern_id.empty()) return InvalidArgumentError("a merged pattern has no pattern_id");
    if (p.similarity_key.empty()) {
      return InvalidArgumentError("pattern " + p.pattern_id + " has no similarity key");
    }
    if (!ids.insert(p.pattern_id).second) {
      return InvalidArgumentError("the merge returned pattern " + p.pattern_id + " twice");
    }
    if (!similarity_keys.insert(p.similarity_key).second) {
      return AlreadyExistsError("the merge returned two patterns with the similarity key \"" + p.similarity_key +
                                "\"");
    }
  }
  for (const Pattern& p : patterns) ENGRAM_RETURN_IF_ERROR(WritePattern(conn, p));
  return OkStatus();
}

// Appends to each episode's pattern_ids the patterns `pairs` name for it that it does not
// list yet, inside the caller's write transaction; `changed` gets the episodes it changed.
// Episodes not in the store are skipped.
Status AppendEpisodePatterns(Connection& conn, std::span<const std::pair<std::string, std::string>> pairs,
                             std::vector<std::string>* changed) {
  if (pairs.empty()) return OkStatus();
  std::map<std::string, std::vector<std::string>> added = GroupByEpisode(pairs);
  std::vector<std::optional<std::string>> episode_ids;
  for (const auto& [episode_id, patterns] : added) episode_ids.push_back(episode_id);
  ENGRAM_ASSIGN_OR_RETURN(PgResult rows, conn.Query(kLockEpisodePatternIdsSql, Params().TextArray(episode_ids)));
  std::vector<std::optional<std::string>> update_ids, update_lists;
  for (int i = 0; i < rows.rows(); ++i) {
    const std::string episode_id = rows.Text(i, 0);
    ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, DecodeStringList(rows.Text(i, 1), episode_id, "pattern_ids"));
    if (!AppendMissing(ids, added[episode_id])) continue;
    update_ids.push_back(episode_id);
    update_lists.push_back(DumpColumn(json(ids)));
    changed->push_back(episode_id);
  }
  if (update_ids.empty()) return OkStatus();
  ENGRAM_ASSIGN_OR_RETURN(PgResult r,
                          conn.Query(kSetEpisodePatternIdsSql, Params().TextArray(update_ids).TextArray(update_lists)));
  return OkStatus();
}

// Credits the uncredited attributions of the episodes of `outcomes` with their outcomes,
// inside the caller's write transaction. Returns how many it credited.
Result<size_t> CreditEpisodes(Connection& conn, std::span<const std::pair<std::string, bool>> outcomes) {
  if (outcomes.empty()) return size_t{0};
  std::map<std::string, bool> succeeded;
  std::vector<std::optional<std::string>> episode_ids;
  for (const auto& [episode_id, success] : outcomes) {
    if (succeeded.insert_or_assign(episode_id, success).second) episode_ids.push_back(episode_id);
  }
  ENGRAM_ASSIGN_OR_RETURN(PgResult pending, conn.Query(kBatchAttributedPatternsSql, Params().TextArray(episode_ids)));
  if (pending.rows() == 0) return size_t{0};  // most episodes were shown nothing
  std::vector<std::optional<std::string>> pattern_ids;
  for (int i = 0; i < pending.rows(); ++i) pattern_ids.push_back(pending.Text(i, 0));
  // Pattern rows first, in id order, as RecordAttributions locks them.
  ENGRAM_ASSIGN_OR_RETURN(PgResult locked, conn.Query(kLockPatternsSql, Params().TextArray(pattern_ids)));
  // Under the locks: a concurrent credit of the same episode finds nothing left.
  ENGRAM_ASSIGN_OR_RETURN(PgResult marked, conn.Query(kBatchCreditSql, Params().TextArray(episode_ids)));
  std::map<std::string, std::pair<int64_t, int64_t>> counts;  // pattern -> (successes, failures)
  for (int i = 0; i < marked.rows(); ++i) {
    auto& [successes, failures] = counts[marked.Text(i, 1)];
    (succeeded[marked.Text(i, 0)] ? successes : failures) += 1;
  }
  std::vector<std::optional<std::string>> ids, successes, failures;
  for (const auto& [id, count] : counts) {
    ids.push_back(id);
    successes.push_back(std::to_string(count.first));
    failures.push_back(std::to_string(count.second));
  }
  if (ids.empty()) return size_t{0};
  ENGRAM_ASSIGN_OR_RETURN(PgResult added,
                          conn.Query(kAddCreditsSql, Params().TextArray(ids).TextArray(successes).TextArray(failures)));
  return static_cast<size_t>(marked.rows());
}

}  // namespace

// ---- PostgresBackend: learning ----

Status PostgresBackend::MergePatterns(std::span<const std::string> keys,
                                      const std::function<Status(std::vector<Pattern>&)>& merge) {
  std::vector<std::optional<std::string>> key_list = OptStrings(keys);
  return RunWrite([&](Connection& conn) { return MergeInTransaction(conn, key_list, merge); });
}

Result<Pattern> PostgresBackend::GetPattern(std::string_view pattern_id) {
  std::optional<Pattern> out;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kSelectPatternSql, Params().Text(pattern_id)));
    if (r.rows() == 0) return NotFoundError("no pattern " + std::string(pattern_id));
    ENGRAM_ASSIGN_OR_RETURN(Pattern p, ReadPatternRow(r, 0));
    out = std::move(p);
    return OkStatus();
  }));
  return *std::move(out);
}

Result<std::vector<Pattern>> PostgresBackend::ListPatterns(const PatternFilter& filter) {
  std::vector<Pattern> out;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    out.clear();
    Params p;
    if (filter.type) p.Text(PatternTypeName(*filter.type)); else p.Null();
    p.OptText(filter.domain);
    if (filter.min_success_rate) p.Double(*filter.min_success_rate); else p.Null();
    if (filter.limit > 0) p.Int(static_cast<int64_t>(filter.limit)); else p.Null();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kListPatternsSql, p));
    const size_t n = static_cast<size_t>(r.rows());
    out.resize(n);
    ContextMemo memo;
    for (int i = 0; i < r.rows(); ++i) {
      const int64_t position = r.Int(i, kListPositionColumn);
      if (position < 1 || static_cast<size_t>(position) > n) {
        return InternalError("pattern listing: rank " + std::to_string(position) + " out of 1.." + std::to_string(n));
      }
      ENGRAM_ASSIGN_OR_RETURN(out[static_cast<size_t>(position) - 1], ReadPatternRow(r, i, &memo));
    }
    return OkStatus();
  }));
  return out;
}

Status PostgresBackend::SetPatternDecay(std::span<const std::pair<std::string, double>> weights) {
  // One weight per id (the last given), so the UPDATE's join meets each row once.
  std::map<std::string, double> latest;
  for (const auto& [id, weight] : weights) latest[id] = weight;
  std::vector<std::optional<std::string>> ids, values;
  for (const auto& [id, weight] : latest) {
    ids.push_back(id);
    values.push_back(DoubleText(weight));
  }
  return RunWrite([&](Connection& conn) -> Status {
    if (ids.empty()) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(PgResult locked, conn.Query(kLockPatternsSql, Params().TextArray(ids)));
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kSetDecaySql, Params().TextArray(ids).TextArray(values)));
    return OkStatus();
  });
}

Status PostgresBackend::ResetLearning() {
  return RunWrite([&](Connection& conn) { return conn.Exec(kResetLearningSql); }, kEveryEpisode);
}

Status PostgresBackend::PutHeuristics(std::span<const Heuristic> heuristics) {
  for (const Heuristic& h : heuristics) ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));
  return RunWrite([&](Connection& conn) -> Status {
    for (const Heuristic& h : heuristics) ENGRAM_RETURN_IF_ERROR(WriteHeuristic(conn, h));
    return OkStatus();
  });
}

Result<std::vector<Heuristic>> PostgresBackend::ListHeuristics(size_t limit) {
  std::vector<Heuristic> out;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    out.clear();
    Params p;
    if (limit > 0) p.Int(static_cast<int64_t>(limit)); else p.Null();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kListHeuristicsSql, p));
    for (int i = 0; i < r.rows(); ++i) {
      ENGRAM_ASSIGN_OR_RETURN(Heuristic h, ReadHeuristicRow(r, i));
      out.push_back(std::move(h));
    }
    return OkStatus();
  }));
  return out;
}

Status PostgresBackend::RecordAttributions(std::span<const Attribution> attributions) {
  std::vector<std::optional<std::string>> episodes, patterns, applied, at;
  for (const Attribution& a : attributions) {
    episodes.push_back(a.episode_id);
    patterns.push_back(a.pattern_id);
    applied.push_back(a.applied ? "true" : "false");
    at.push_back(std::to_string(ToMillis(a.at)));
  }
  return RunWrite([&](Connection& conn) -> Status {
    if (attributions.empty()) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(PgResult locked, conn.Query(kLockPatternsSql, Params().TextArray(patterns)));
    ENGRAM_ASSIGN_OR_RETURN(
        PgResult recorded,
        conn.Query(kUpsertAttributionsSql, Params().TextArray(episodes).TextArray(patterns).TextArray(applied).TextArray(at)));
    // Unknown pattern ids match no row here and are ignored.
    ENGRAM_ASSIGN_OR_RETURN(PgResult bumped,
                            conn.Query(kBumpEffectivenessSql, Params().TextArray(patterns).TextArray(applied).TextArray(at)));
    return OkStatus();
  });
}

Result<std::vector<std::string>> PostgresBackend::PendingExtraction(size_t limit) {
  std::vector<std::string> ids;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ids.clear();
    Params p;
    if (limit > 0) p.Int(static_cast<int64_t>(limit)); else p.Null();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kPendingSql, p));
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.Text(i, 0));
    return OkStatus();
  }));
  return ids;
}

Status PostgresBackend::MarkExtracted(std::span<const std::string> episode_ids) {
  std::vector<std::optional<std::string>> ids = OptStrings(episode_ids);
  return RunWrite([&](Connection& conn) -> Status {
    if (ids.empty()) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kMarkExtractedSql, Params().TextArray(ids)));
    return OkStatus();
  });
}

Result<size_t> PostgresBackend::CommitExtraction(const ExtractionBatch& batch) {
  std::vector<std::optional<std::string>> key_list = OptStrings(batch.keys);
  std::vector<std::optional<std::string>> extracted = OptStrings(batch.extracted);
  size_t credited = 0;
  // One transaction; a retried one (conflict, deadlock) starts over and merges again.
  // Other hosts' caches learn which episodes' pattern_ids changed from the notification.
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kWrite, [&](Connection& conn) -> Status {
    credited = 0;
    ExtractionOutput out;
    if (batch.merge) {
      ENGRAM_RETURN_IF_ERROR(MergeInTransaction(conn, key_list, [&](std::vector<Pattern>& patterns) {
        return batch.merge(patterns, out);
      }));
    }
    for (const Heuristic& h : out.heuristics) {
      ENGRAM_RETURN_IF_ERROR(CheckHeuristic(h));
      ENGRAM_RETURN_IF_ERROR(WriteHeuristic(conn, h));
    }
    std::vector<std::string> changed;
    ENGRAM_RETURN_IF_ERROR(AppendEpisodePatterns(conn, out.episode_patterns, &changed));
    ENGRAM_ASSIGN_OR_RETURN(credited, CreditEpisodes(conn, batch.outcomes));
    if (!extracted.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kMarkExtractedSql, Params().TextArray(extracted)));
    }
    return BumpGeneration(conn, channel_, changed, writer_);
  }));
  return credited;
}

}  // namespace engram::postgres
