#include "storage/turso/turso_backend.h"

#include <algorithm>
#include <bit>
#include <deque>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"
#include "storage/vector_blob.h"

namespace engram::turso {

using nlohmann::json;

const char* const kEpisodeColumns =
    "episode_id, task_description, task_type, context_json, start_time, end_time, outcome_json, reward_json, "
    "reflection_json, pattern_ids_json, tags_json, metadata_json";
const char* const kStepColumns =
    "episode_id, step_number, timestamp, tool, action, parameters_json, result_status, result_output, "
    "result_message, latency_ms, tokens_used";

namespace {

constexpr const char* kBumpGenerationSql =
    "UPDATE store_state SET generation = generation + 1 WHERE id = 1 RETURNING generation";
constexpr const char* kInsertEpisodeSql =
    "INSERT INTO episodes (episode_id, task_description, task_type, domain, context_json, start_time, end_time, "
    "outcome_kind, outcome_json, reward_total, reward_json, reflection_json, pattern_ids_json, tags_json, "
    "metadata_json, step_count, byte_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
constexpr const char* kInsertStepSql =
    "INSERT INTO steps (episode_id, step_number, timestamp, tool, action, parameters_json, result_status, "
    "result_output, result_message, latency_ms, tokens_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// A step appended with step_number 0 takes max + 1 (1 for the first), computed inside the
// batch so no concurrent append can take the same number.
constexpr const char* kAppendNextStepSql =
    "INSERT INTO steps (episode_id, step_number, timestamp, tool, action, parameters_json, result_status, "
    "result_output, result_message, latency_ms, tokens_used) "
    "SELECT ?1, COALESCE(MAX(step_number), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM steps WHERE episode_id = ?1";
constexpr const char* kMaxStepSql = "SELECT MAX(step_number) FROM steps WHERE episode_id = ?";
constexpr const char* kBumpStepsSql =
    "UPDATE episodes SET step_count = step_count + 1, byte_size = byte_size + ? WHERE episode_id = ?";
constexpr const char* kCompleteSql =
    "UPDATE episodes SET end_time = ?, outcome_kind = ?, outcome_json = ?, reward_total = ?, reward_json = ?, "
    "reflection_json = ?, pattern_ids_json = ?, tags_json = ?, metadata_json = ? WHERE episode_id = ?";
constexpr const char* kDeleteStepsSql = "DELETE FROM steps WHERE episode_id = ?";
constexpr const char* kDeleteEpisodeSql = "DELETE FROM episodes WHERE episode_id = ?";
constexpr const char* kDeleteVectorSql = "DELETE FROM episode_vectors WHERE episode_id = ?";
constexpr const char* kListFilter =
    "(?1 IS NULL OR domain = ?1) AND (?2 IS NULL OR task_type = ?2) "
    "AND (?3 IS NULL OR (outcome_kind IS NOT NULL) = ?3) AND (?4 IS NULL OR episode_id < ?4)";
constexpr const char* kStatsSql =
    "SELECT (SELECT COUNT(*) FROM episodes), (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), "
    "(SELECT COUNT(*) FROM steps), (SELECT COUNT(*) FROM patterns), (SELECT COUNT(*) FROM heuristics)";
constexpr const char* kGenerationSql = "SELECT generation FROM store_state WHERE id = 1";
constexpr const char* kGetSpaceSql = "SELECT space_provider, space_model, space_dimension FROM store_state WHERE id = 1";
constexpr const char* kSetSpaceSql =
    "UPDATE store_state SET space_provider = ?, space_model = ?, space_dimension = ? WHERE id = 1";
constexpr const char* kDeleteOtherSpacesSql = "DELETE FROM episode_vectors WHERE space <> ?";
// REPLACE drops the old row (UNIQUE episode_id) and AUTOINCREMENT gives the new one a seq
// above every seq ever used. vector32() checks the blob is a float32 vector.
constexpr const char* kPutVectorSql =
    "INSERT OR REPLACE INTO episode_vectors (episode_id, space, vector) VALUES (?, ?, vector32(?))";
constexpr const char* kListVectorsSql =
    "SELECT seq, episode_id, vector FROM episode_vectors WHERE space = ? AND seq > ? ORDER BY seq LIMIT ?";
constexpr const char* kWithoutVectorSql =
    "SELECT e.episode_id FROM episodes e WHERE e.outcome_kind IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM episode_vectors v WHERE v.episode_id = e.episode_id AND v.space = ?) "
    "AND e.episode_id > ? ORDER BY e.episode_id LIMIT ?";
// Ids (a JSON array) that name no completed episode.
constexpr const char* kNotCompletedIdsSql =
    "SELECT CAST(j.value AS TEXT) FROM json_each(?) j WHERE NOT EXISTS "
    "(SELECT 1 FROM episodes e WHERE e.episode_id = CAST(j.value AS TEXT) AND e.outcome_kind IS NOT NULL)";
// The full-text index agrees with the completed episodes (CheckHealth).
constexpr const char* kIndexHealthSql =
    "SELECT (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), (SELECT COUNT(*) FROM search_docs), "
    "(SELECT COUNT(*) FROM search_docs d LEFT JOIN episodes e ON e.episode_id = d.episode_id "
    " WHERE e.outcome_kind IS NULL)";

// Episodes, and vectors, are read in pages of this many rows per request.
constexpr size_t kEpisodePage = 100;
constexpr size_t kVectorPage = 1000;

std::string IdsJson(std::span<const std::string> ids) { return DumpColumn(json(std::vector<std::string>(ids.begin(), ids.end()))); }

std::vector<HranaValue> EpisodeArgs(const Episode& e) {
  return {
      HranaValue::Text(e.episode_id),
      HranaValue::Text(e.task_description),
      HranaValue::Text(TaskTypeName(e.task_type)),
      HranaValue::Text(e.context.domain),
      HranaValue::Text(DumpColumn(TaskContextToJson(e.context))),
      HranaValue::Int(ToMillis(e.start_time)),
      e.end_time ? HranaValue::Int(ToMillis(*e.end_time)) : HranaValue::Null(),
      e.outcome ? HranaValue::Text(OutcomeKindName(e.outcome->kind)) : HranaValue::Null(),
      e.outcome ? HranaValue::Text(DumpColumn(OutcomeToJson(*e.outcome))) : HranaValue::Null(),
      e.reward ? HranaValue::Float(e.reward->total) : HranaValue::Null(),
      e.reward ? HranaValue::Text(DumpColumn(RewardToJson(*e.reward))) : HranaValue::Null(),
      e.reflection ? HranaValue::Text(DumpColumn(ReflectionToJson(*e.reflection))) : HranaValue::Null(),
      HranaValue::Text(DumpColumn(json(e.pattern_ids))),
      HranaValue::Text(DumpColumn(json(e.tags))),
      HranaValue::Text(e.metadata_json),
      HranaValue::Int(static_cast<int64_t>(e.steps.size())),
      HranaValue::Int(static_cast<int64_t>(e.ByteSize())),
  };
}

// The values of a step after its episode id (and, for kInsertStepSql, its number).
void AddStepValues(const Step& s, std::vector<HranaValue>& args) {
  args.push_back(HranaValue::Int(ToMillis(s.timestamp)));
  args.push_back(HranaValue::Text(s.tool));
  args.push_back(HranaValue::Text(s.action));
  args.push_back(HranaValue::Text(s.parameters_json));
  if (s.result) {
    args.push_back(HranaValue::Text(StepStatusName(s.result->status)));
    args.push_back(HranaValue::OptText(s.result->output));
    args.push_back(HranaValue::OptText(s.result->message));
  } else {
    args.push_back(HranaValue::Null());
    args.push_back(HranaValue::Null());
    args.push_back(HranaValue::Null());
  }
  args.push_back(HranaValue::OptInt(s.latency_ms));
  args.push_back(HranaValue::OptInt(s.tokens_used));
}

void AddInsertStep(HranaBatch& batch, std::string_view episode_id, const Step& s) {
  std::vector<HranaValue> args{HranaValue::Text(episode_id), HranaValue::Int(s.step_number)};
  AddStepValues(s, args);
  batch.Add(kInsertStepSql, std::move(args));
}

// The episode row and its steps, to a batch that writes the whole episode.
void AddInsertEpisode(HranaBatch& batch, const Episode& e) {
  batch.Add(kInsertEpisodeSql, EpisodeArgs(e));
  for (const Step& s : e.steps) AddInsertStep(batch, e.episode_id, s);
}

// The first step number `e` holds twice, if any (the write would fail on it).
std::optional<int> DuplicateStep(const Episode& e) {
  std::set<int> seen;
  for (const Step& s : e.steps) {
    if (!seen.insert(s.step_number).second) return s.step_number;
  }
  return std::nullopt;
}

Result<std::optional<EmbeddingSpace>> ReadSpace(const HranaResult& r) {
  if (r.rows.empty()) return DataLossError("the store_state row is missing");
  ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> provider, r.OptText(0, 0));
  if (!provider) return std::optional<EmbeddingSpace>();
  ENGRAM_ASSIGN_OR_RETURN(std::string model, r.Text(0, 1));
  ENGRAM_ASSIGN_OR_RETURN(int64_t dimension, r.Int(0, 2));
  return std::optional<EmbeddingSpace>(EmbeddingSpace{*std::move(provider), std::move(model), static_cast<int>(dimension)});
}

// The arguments of kListFilter for `filter`, reading episodes older than `before`.
std::vector<HranaValue> ListArgs(const EpisodeFilter& filter, const std::optional<std::string>& before, size_t limit) {
  return {HranaValue::OptText(filter.domain),
          filter.task_type ? HranaValue::Text(TaskTypeName(*filter.task_type)) : HranaValue::Null(),
          filter.completed ? HranaValue::Int(*filter.completed ? 1 : 0) : HranaValue::Null(),
          HranaValue::OptText(before), HranaValue::Int(static_cast<int64_t>(limit))};
}

// Episodes newest first, a page (one request) at a time: each page reads the episodes older
// than the last one yielded, with their steps in the same transaction. A write between
// pages shows in later pages (there is no snapshot across requests); keyset paging never
// yields an episode twice.
class TursoEpisodeStream final : public EpisodeStream {
 public:
  TursoEpisodeStream(std::shared_ptr<HranaClient> client, EpisodeFilter filter)
      : client_(std::move(client)), filter_(std::move(filter)), before_(filter_.before_id) {}

  Result<std::optional<Episode>> Next() override {
    if (page_.empty() && !exhausted_) {
      Status s = FetchPage();
      if (!s.ok()) {
        exhausted_ = true;
        return s;
      }
    }
    if (page_.empty()) return std::optional<Episode>();
    Episode e = std::move(page_.front());
    page_.pop_front();
    return std::optional<Episode>(std::move(e));
  }

 private:
  Status FetchPage() {
    size_t want = kEpisodePage;
    if (filter_.limit != 0) want = std::min(want, filter_.limit - yielded_);
    if (want == 0) {
      exhausted_ = true;
      return OkStatus();
    }
    const std::string where = std::string(" WHERE ") + kListFilter + " ORDER BY episode_id DESC LIMIT ?5";
    HranaBatch batch;
    batch.Add(std::string("SELECT ") + kEpisodeColumns + " FROM episodes" + where, ListArgs(filter_, before_, want));
    if (filter_.include_steps) {
      batch.Add(std::string("SELECT ") + kStepColumns +
                    " FROM steps WHERE episode_id IN (SELECT episode_id FROM episodes" + where +
                    ") ORDER BY episode_id, step_number",
                ListArgs(filter_, before_, want));
    }
    ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> results, client_->Batch(batch));
    const HranaResult& rows = results[0];
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < rows.rows.size(); ++i) {
      ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(rows, i));
      index.emplace(e.episode_id, page_.size());
      page_.push_back(std::move(e));
    }
    if (filter_.include_steps) {
      ENGRAM_RETURN_IF_ERROR(ReadStepRows(results[1], [&](std::string_view id) -> Episode* {
        auto it = index.find(std::string(id));
        return it == index.end() ? nullptr : &page_[it->second];
      }));
    }
    yielded_ += page_.size();
    if (page_.size() < want) exhausted_ = true;
    if (!page_.empty()) before_ = page_.back().episode_id;
    return OkStatus();
  }

  const std::shared_ptr<HranaClient> client_;
  const EpisodeFilter filter_;
  std::optional<std::string> before_;
  std::deque<Episode> page_;
  size_t yielded_ = 0;
  bool exhausted_ = false;
};

// The vectors of one space by seq, a page (one request) at a time.
class TursoVectorStream final : public VectorStream {
 public:
  TursoVectorStream(std::shared_ptr<HranaClient> client, EmbeddingSpace space, int64_t after_seq)
      : client_(std::move(client)), space_(std::move(space)), key_(space_.Key()), after_(after_seq) {}

  Result<std::optional<EpisodeVector>> Next() override {
    if (page_.empty() && !exhausted_) {
      Status s = FetchPage();
      if (!s.ok()) {
        exhausted_ = true;
        return s;
      }
    }
    if (page_.empty()) return std::optional<EpisodeVector>();
    EpisodeVector v = std::move(page_.front());
    page_.pop_front();
    return std::optional<EpisodeVector>(std::move(v));
  }

 private:
  Status FetchPage() {
    ENGRAM_ASSIGN_OR_RETURN(HranaResult r,
                            client_->Execute(kListVectorsSql, {HranaValue::Text(key_), HranaValue::Int(after_),
                                                               HranaValue::Int(static_cast<int64_t>(kVectorPage))}));
    for (size_t i = 0; i < r.rows.size(); ++i) {
      EpisodeVector v;
      ENGRAM_ASSIGN_OR_RETURN(v.seq, r.Int(i, 0));
      ENGRAM_ASSIGN_OR_RETURN(v.episode_id, r.Text(i, 1));
      ENGRAM_ASSIGN_OR_RETURN(std::string blob, r.Blob(i, 2));
      ENGRAM_ASSIGN_OR_RETURN(v.vector, DecodeVectorBlob(blob, space_.dimension, v.episode_id));
      after_ = v.seq;
      page_.push_back(std::move(v));
    }
    if (r.rows.size() < kVectorPage) exhausted_ = true;
    return OkStatus();
  }

  const std::shared_ptr<HranaClient> client_;
  const EmbeddingSpace space_;
  const std::string key_;
  int64_t after_;
  std::deque<EpisodeVector> page_;
  bool exhausted_ = false;
};

}  // namespace

// ---- Guards ----

size_t AddGuard(HranaBatch& batch, std::string_view code, std::string_view violated, std::vector<HranaValue> args) {
  return batch.Add("INSERT INTO engram_guard (code) SELECT '" + std::string(code) + "' WHERE " + std::string(violated),
                   std::move(args));
}

std::optional<std::string> GuardCode(const Status& status) {
  if (status.ok()) return std::nullopt;
  constexpr std::string_view kMark = "engram_guard:";
  std::string_view m = status.message();
  size_t at = m.find(kMark);
  if (at == std::string_view::npos) return std::nullopt;
  size_t begin = at + kMark.size(), end = begin;
  while (end < m.size() && ((m[end] >= 'a' && m[end] <= 'z') || m[end] == '_')) ++end;
  if (end == begin) return std::nullopt;
  return std::string(m.substr(begin, end - begin));
}

// ---- Rows ----

Result<Episode> ReadEpisodeRow(const HranaResult& r, size_t row) {
  Episode e;
  ENGRAM_ASSIGN_OR_RETURN(e.episode_id, r.Text(row, 0));
  ENGRAM_ASSIGN_OR_RETURN(e.task_description, r.Text(row, 1));
  ENGRAM_ASSIGN_OR_RETURN(std::string type_name, r.Text(row, 2));
  Result<TaskType> type = ParseTaskType(type_name);
  if (!type.ok()) return DataLossError("episode " + e.episode_id + ": bad task_type");
  e.task_type = *type;
  std::optional<TaskContext> context;
  ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> context_json, r.OptText(row, 3));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<TaskContext>(context_json, e.episode_id, "context", TaskContextFromJson, &context));
  if (context) e.context = *std::move(context);
  ENGRAM_ASSIGN_OR_RETURN(int64_t start, r.Int(row, 4));
  e.start_time = FromMillis(start);
  ENGRAM_ASSIGN_OR_RETURN(std::optional<int64_t> end, r.OptInt(row, 5));
  if (end) e.end_time = FromMillis(*end);
  ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> outcome, r.OptText(row, 6));
  ENGRAM_RETURN_IF_ERROR(DecodeColumn<Outcome>(outcome, e.episode_id, "outcome", OutcomeFromJson, &e.outcome));
  ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> reward, r.OptText(row, 7));
  ENGRAM_RETURN_IF_ERROR(DecodeColumn<Reward>(reward, e.episode_id, "reward", RewardFromJson, &e.reward));
  ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> reflection, r.OptText(row, 8));
  ENGRAM_RETURN_IF_ERROR(
      DecodeColumn<Reflection>(reflection, e.episode_id, "reflection", ReflectionFromJson, &e.reflection));
  ENGRAM_ASSIGN_OR_RETURN(std::string pattern_ids, r.Text(row, 9));
  ENGRAM_ASSIGN_OR_RETURN(e.pattern_ids, DecodeStringList(pattern_ids, e.episode_id, "pattern_ids"));
  ENGRAM_ASSIGN_OR_RETURN(std::string tags, r.Text(row, 10));
  ENGRAM_ASSIGN_OR_RETURN(e.tags, DecodeStringList(tags, e.episode_id, "tags"));
  ENGRAM_ASSIGN_OR_RETURN(e.metadata_json, r.Text(row, 11));
  return e;
}

Status ReadStepRows(const HranaResult& steps, const std::function<Episode*(std::string_view)>& by_id) {
  for (size_t i = 0; i < steps.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string id, steps.Text(i, 0));
    Episode* e = by_id(id);
    if (e == nullptr) continue;
    Step s;
    ENGRAM_ASSIGN_OR_RETURN(int64_t number, steps.Int(i, 1));
    s.step_number = static_cast<int>(number);
    ENGRAM_ASSIGN_OR_RETURN(int64_t at, steps.Int(i, 2));
    s.timestamp = FromMillis(at);
    ENGRAM_ASSIGN_OR_RETURN(s.tool, steps.Text(i, 3));
    ENGRAM_ASSIGN_OR_RETURN(s.action, steps.Text(i, 4));
    ENGRAM_ASSIGN_OR_RETURN(s.parameters_json, steps.Text(i, 5));
    ENGRAM_ASSIGN_OR_RETURN(std::optional<std::string> status, steps.OptText(i, 6));
    if (status) {
      Result<StepStatus> parsed = ParseStepStatus(*status);
      if (!parsed.ok()) return DataLossError("episode " + id + ": bad step status");
      StepResult result{*parsed, std::nullopt, std::nullopt};
      ENGRAM_ASSIGN_OR_RETURN(result.output, steps.OptText(i, 7));
      ENGRAM_ASSIGN_OR_RETURN(result.message, steps.OptText(i, 8));
      s.result = std::move(result);
    }
    ENGRAM_ASSIGN_OR_RETURN(s.latency_ms, steps.OptInt(i, 9));
    ENGRAM_ASSIGN_OR_RETURN(s.tokens_used, steps.OptInt(i, 10));
    e->steps.push_back(std::move(s));
  }
  return OkStatus();
}

// ---- TursoBackend ----

TursoBackend::TursoBackend(std::unique_ptr<HranaClient> client, TursoOptions options, int schema_version)
    : client_(std::move(client)), options_(std::move(options)), schema_version_(schema_version) {}

Result<std::vector<HranaResult>> TursoBackend::RunWrite(HranaBatch batch) {
  const size_t n = batch.size();
  batch.Add(kBumpGenerationSql);
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> results, client_->Batch(batch));
  if (results.size() != n + 1) {
    return DataLossError("the Turso server answered a batch of " + std::to_string(n + 1) + " statements with " +
                         std::to_string(results.size()) + " results");
  }
  ENGRAM_ASSIGN_OR_RETURN(int64_t generation, results.back().Int(0, 0));
  results.pop_back();
  MutexLock lock(own_mu_);
  own_writes_.insert(generation);
  if (own_writes_.size() > kOwnWritesKept) own_writes_.erase(own_writes_.begin());
  return results;
}

bool TursoBackend::WritesAreOwn(int64_t after, int64_t upto) const {
  if (upto <= after) return true;
  MutexLock lock(own_mu_);
  // Generations are consecutive: all of (after, upto] are ours iff the set holds upto - after
  // of them in that range.
  auto first = own_writes_.upper_bound(after), last = own_writes_.upper_bound(upto);
  return std::distance(first, last) == upto - after;
}

Status TursoBackend::CreateEpisode(const Episode& episode) {
  ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(episode));
  if (std::optional<int> dup = DuplicateStep(episode)) {
    return AlreadyExistsError("step " + std::to_string(*dup) + " already exists in episode " + episode.episode_id);
  }
  HranaBatch batch;
  AddInsertEpisode(batch, episode);
  if (episode.completed()) {
    AppendIndexEpisode(batch, episode);
    AppendMarkPending(batch, episode.episode_id);
  }
  Result<std::vector<HranaResult>> done = RunWrite(std::move(batch));
  if (done.status().code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("episode " + episode.episode_id + " already exists");
  }
  return done.status();
}

Status TursoBackend::PutEpisodes(std::span<const Episode> episodes) {
  for (const Episode& e : episodes) {
    ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(e));
    if (std::optional<int> dup = DuplicateStep(e)) {
      return AlreadyExistsError("step " + std::to_string(*dup) + " already exists in episode " + e.episode_id);
    }
  }
  if (episodes.empty()) return OkStatus();
  HranaBatch batch;
  for (const Episode& e : episodes) {
    // A replaced episode leaves the index (and its vector, which described the old text)
    // and its extraction mark; the new one enters them if it is completed.
    batch.Add(kDeleteVectorSql, {HranaValue::Text(e.episode_id)});
    AppendClearPending(batch, e.episode_id);
    batch.Add(kDeleteStepsSql, {HranaValue::Text(e.episode_id)});
    batch.Add(kDeleteEpisodeSql, {HranaValue::Text(e.episode_id)});
    AddInsertEpisode(batch, e);
    AppendIndexEpisode(batch, e);
    if (e.completed()) AppendMarkPending(batch, e.episode_id);
  }
  return RunWrite(std::move(batch)).status();
}

Result<int> TursoBackend::AppendStep(std::string_view episode_id, const Step& step) {
  if (step.step_number > static_cast<int>(kMaxStepsPerEpisode)) {
    return InvalidArgumentError("step_number " + std::to_string(step.step_number) + " is above 1000");
  }
  const HranaValue id = HranaValue::Text(episode_id);
  const int64_t added = static_cast<int64_t>(step.ByteSize());
  HranaBatch batch;
  AddGuard(batch, "not_found", "NOT EXISTS (SELECT 1 FROM episodes WHERE episode_id = ?)", {id});
  AddGuard(batch, "completed", "EXISTS (SELECT 1 FROM episodes WHERE episode_id = ? AND outcome_kind IS NOT NULL)",
           {id});
  AddGuard(batch, "step_limit", "EXISTS (SELECT 1 FROM episodes WHERE episode_id = ? AND step_count >= ?)",
           {id, HranaValue::Int(static_cast<int64_t>(kMaxStepsPerEpisode))});
  AddGuard(batch, "byte_limit", "EXISTS (SELECT 1 FROM episodes WHERE episode_id = ? AND byte_size + ? > ?)",
           {id, HranaValue::Int(added), HranaValue::Int(static_cast<int64_t>(kMaxEpisodeBytes))});
  size_t number_at = 0;
  if (step.step_number <= 0) {
    AddGuard(batch, "number_limit", "(SELECT COALESCE(MAX(step_number), 0) FROM steps WHERE episode_id = ?) >= ?",
             {id, HranaValue::Int(static_cast<int64_t>(kMaxStepsPerEpisode))});
    std::vector<HranaValue> args{id};
    AddStepValues(step, args);
    batch.Add(kAppendNextStepSql, std::move(args));
    number_at = batch.Add(kMaxStepSql, {id});
  } else {
    AddGuard(batch, "step_taken", "EXISTS (SELECT 1 FROM steps WHERE episode_id = ? AND step_number = ?)",
             {id, HranaValue::Int(step.step_number)});
    AddInsertStep(batch, episode_id, step);
  }
  batch.Add(kBumpStepsSql, {HranaValue::Int(added), id});
  Result<std::vector<HranaResult>> done = RunWrite(std::move(batch));
  if (!done.ok()) {
    const std::string eid(episode_id);
    std::optional<std::string> code = GuardCode(done.status());
    if (code == "not_found") return NotFoundError("no episode " + eid);
    if (code == "completed") {
      return FailedPreconditionError("episode " + eid + " is already completed; steps can only be added before complete");
    }
    if (code == "step_limit") {
      return ResourceExhaustedError("episode " + eid + " already has 1000 steps, the limit per episode");
    }
    if (code == "number_limit") {
      return ResourceExhaustedError("episode " + eid + " has used step number 1000, the highest");
    }
    if (code == "byte_limit") {
      return ResourceExhaustedError("adding this step (" + std::to_string(added) + " bytes) would make episode " + eid +
                                    " larger than 10 MiB, the limit per episode");
    }
    if (code == "step_taken" || done.status().code() == StatusCode::kAlreadyExists) {
      return AlreadyExistsError("step " + std::to_string(step.step_number) + " already exists in episode " + eid);
    }
    return done.status();
  }
  if (step.step_number > 0) return step.step_number;
  ENGRAM_ASSIGN_OR_RETURN(int64_t number, (*done)[number_at].Int(0, 0));
  return static_cast<int>(number);
}

Status TursoBackend::CompleteEpisode(const Episode& e) {
  if (!e.outcome || !e.end_time) return InvalidArgumentError("CompleteEpisode needs an outcome and an end time");
  const HranaValue id = HranaValue::Text(e.episode_id);
  HranaBatch batch;
  AddGuard(batch, "not_found", "NOT EXISTS (SELECT 1 FROM episodes WHERE episode_id = ?)", {id});
  AddGuard(batch, "completed", "EXISTS (SELECT 1 FROM episodes WHERE episode_id = ? AND outcome_kind IS NOT NULL)",
           {id});
  AddGuard(batch, "steps_changed", "EXISTS (SELECT 1 FROM episodes WHERE episode_id = ? AND step_count <> ?)",
           {id, HranaValue::Int(static_cast<int64_t>(e.steps.size()))});
  batch.Add(kCompleteSql,
            {HranaValue::Int(ToMillis(*e.end_time)), HranaValue::Text(OutcomeKindName(e.outcome->kind)),
             HranaValue::Text(DumpColumn(OutcomeToJson(*e.outcome))),
             e.reward ? HranaValue::Float(e.reward->total) : HranaValue::Null(),
             e.reward ? HranaValue::Text(DumpColumn(RewardToJson(*e.reward))) : HranaValue::Null(),
             e.reflection ? HranaValue::Text(DumpColumn(ReflectionToJson(*e.reflection))) : HranaValue::Null(),
             HranaValue::Text(DumpColumn(json(e.pattern_ids))), HranaValue::Text(DumpColumn(json(e.tags))),
             HranaValue::Text(e.metadata_json), id});
  // The index gets the completed episode: `e` carries the stored steps (their count is
  // checked above) and the fields just written, so no read-back is needed.
  AppendIndexEpisode(batch, e);
  AppendMarkPending(batch, e.episode_id);
  Result<std::vector<HranaResult>> done = RunWrite(std::move(batch));
  std::optional<std::string> code = GuardCode(done.status());
  if (code == "not_found") return NotFoundError("no episode " + e.episode_id);
  if (code == "completed") return FailedPreconditionError("episode " + e.episode_id + " is already completed");
  if (code == "steps_changed") {
    return AbortedError("episode " + e.episode_id + " gained steps while it was being completed");
  }
  return done.status();
}

Result<Episode> TursoBackend::GetEpisode(std::string_view episode_id) {
  HranaBatch batch;
  batch.Add(std::string("SELECT ") + kEpisodeColumns + " FROM episodes WHERE episode_id = ?",
            {HranaValue::Text(episode_id)});
  batch.Add(std::string("SELECT ") + kStepColumns + " FROM steps WHERE episode_id = ? ORDER BY step_number",
            {HranaValue::Text(episode_id)});
  // One transaction, so the steps are those of the episode row read.
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> r, client_->Batch(batch));
  if (r[0].rows.empty()) return NotFoundError("no episode " + std::string(episode_id));
  ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(r[0], 0));
  ENGRAM_RETURN_IF_ERROR(ReadStepRows(r[1], [&](std::string_view) { return &e; }));
  return e;
}

Result<std::vector<Episode>> TursoBackend::GetEpisodes(std::span<const std::string> episode_ids) {
  std::vector<Episode> out;
  if (episode_ids.empty()) return out;
  const std::string ids = IdsJson(episode_ids);
  HranaBatch batch;
  batch.Add(std::string("SELECT ") + kEpisodeColumns +
                " FROM episodes WHERE episode_id IN (SELECT CAST(value AS TEXT) FROM json_each(?))",
            {HranaValue::Text(ids)});
  batch.Add(std::string("SELECT ") + kStepColumns +
                " FROM steps WHERE episode_id IN (SELECT CAST(value AS TEXT) FROM json_each(?)) ORDER BY episode_id, step_number",
            {HranaValue::Text(ids)});
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> r, client_->Batch(batch));
  std::unordered_map<std::string, Episode> found;
  for (size_t i = 0; i < r[0].rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(r[0], i));
    std::string key = e.episode_id;
    found.emplace(std::move(key), std::move(e));
  }
  ENGRAM_RETURN_IF_ERROR(ReadStepRows(r[1], [&](std::string_view id) -> Episode* {
    auto it = found.find(std::string(id));
    return it == found.end() ? nullptr : &it->second;
  }));
  for (const std::string& id : episode_ids) {
    auto it = found.find(id);
    if (it == found.end()) continue;  // unknown, or named before (moved out)
    out.push_back(std::move(it->second));
    found.erase(it);
  }
  return out;
}

Result<std::unique_ptr<EpisodeStream>> TursoBackend::ListEpisodes(const EpisodeFilter& filter) {
  return std::unique_ptr<EpisodeStream>(std::make_unique<TursoEpisodeStream>(client_, filter));
}

Result<bool> TursoBackend::DeleteEpisode(std::string_view episode_id) {
  const HranaValue id = HranaValue::Text(episode_id);
  HranaBatch batch;
  AppendUnindexEpisode(batch, episode_id);
  AppendClearPending(batch, episode_id);
  batch.Add(kDeleteVectorSql, {id});
  batch.Add(kDeleteStepsSql, {id});
  // RETURNING, not affected_rows: tursodb reports no affected row counts.
  size_t del = batch.Add(std::string(kDeleteEpisodeSql) + " RETURNING episode_id", {id});
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> r, RunWrite(std::move(batch)));
  return !r[del].rows.empty();
}

Result<StoreStats> TursoBackend::Stats() {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client_->Execute(kStatsSql));
  StoreStats stats;
  if (r.rows.empty()) return stats;
  ENGRAM_ASSIGN_OR_RETURN(stats.episodes, r.Int(0, 0));
  ENGRAM_ASSIGN_OR_RETURN(stats.completed_episodes, r.Int(0, 1));
  ENGRAM_ASSIGN_OR_RETURN(stats.steps, r.Int(0, 2));
  ENGRAM_ASSIGN_OR_RETURN(stats.patterns, r.Int(0, 3));
  ENGRAM_ASSIGN_OR_RETURN(stats.heuristics, r.Int(0, 4));
  return stats;
}

Result<int64_t> TursoBackend::Generation() {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client_->Execute(kGenerationSql));
  if (r.rows.empty()) return DataLossError("the store_state row is missing");
  return r.Int(0, 0);
}

Result<std::optional<EmbeddingSpace>> TursoBackend::GetEmbeddingSpace() {
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client_->Execute(kGetSpaceSql));
  return ReadSpace(r);
}

Status TursoBackend::SetEmbeddingSpace(const EmbeddingSpace& space) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  HranaBatch batch;
  batch.Add(kSetSpaceSql,
            {HranaValue::Text(space.provider), HranaValue::Text(space.model), HranaValue::Int(space.dimension)});
  batch.Add(kDeleteOtherSpacesSql, {HranaValue::Text(space.Key())});
  return RunWrite(std::move(batch)).status();
}

Status TursoBackend::PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  for (const EpisodeVector& v : vectors) {
    if (v.vector.size() != static_cast<size_t>(space.dimension)) {
      return InvalidArgumentError("the vector of episode " + v.episode_id + " has " + std::to_string(v.vector.size()) +
                                  " values; the space " + space.Key() + " has " + std::to_string(space.dimension));
    }
  }
  if (vectors.empty()) return OkStatus();
  const std::string key = space.Key();
  std::vector<std::string> ids;
  for (const EpisodeVector& v : vectors) ids.push_back(v.episode_id);
  const std::string ids_json = IdsJson(ids);
  HranaBatch batch;
  AddGuard(batch, "space",
           "NOT EXISTS (SELECT 1 FROM store_state WHERE id = 1 AND space_provider = ? AND space_model = ? "
           "AND space_dimension = ?)",
           {HranaValue::Text(space.provider), HranaValue::Text(space.model), HranaValue::Int(space.dimension)});
  AddGuard(batch, "not_completed", std::string("EXISTS (") + kNotCompletedIdsSql + ")", {HranaValue::Text(ids_json)});
  for (const EpisodeVector& v : vectors) {
    batch.Add(kPutVectorSql,
              {HranaValue::Text(v.episode_id), HranaValue::Text(key), HranaValue::Blob(EncodeVectorBlob(v.vector))});
  }
  Result<std::vector<HranaResult>> done = RunWrite(std::move(batch));
  std::optional<std::string> code = GuardCode(done.status());
  if (code == "space") {
    // Only on this error path: read what the store holds, for the message.
    Result<std::optional<EmbeddingSpace>> recorded = GetEmbeddingSpace();
    std::string what = !recorded.ok() ? std::string("another one")
                       : *recorded    ? (*recorded)->Key()
                                      : std::string("not set");
    return FailedPreconditionError("vectors of " + key + " cannot be stored: the store's embedding space is " + what +
                                   " (SetEmbeddingSpace first)");
  }
  if (code == "not_completed") {
    std::string which = "an episode of the batch";
    Result<HranaResult> missing = client_->Execute(kNotCompletedIdsSql, {HranaValue::Text(ids_json)});
    if (missing.ok() && !missing->rows.empty()) {
      Result<std::string> first = missing->Text(0, 0);
      if (first.ok()) which = *first;
    }
    return NotFoundError("no completed episode " + which + " to store a vector for");
  }
  return done.status();
}

Result<std::unique_ptr<VectorStream>> TursoBackend::ListVectors(const EmbeddingSpace& space, int64_t after_seq) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  return std::unique_ptr<VectorStream>(std::make_unique<TursoVectorStream>(client_, space, after_seq));
}

Result<std::vector<std::string>> TursoBackend::EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) {
  std::vector<std::string> ids;
  if (limit == 0) return ids;
  ENGRAM_ASSIGN_OR_RETURN(HranaResult r, client_->Execute(kWithoutVectorSql, {HranaValue::Text(space.Key()), HranaValue::Text(std::string(after)),
                                                                              HranaValue::Int(static_cast<int64_t>(limit))}));
  for (size_t i = 0; i < r.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string id, r.Text(i, 0));
    ids.push_back(std::move(id));
  }
  return ids;
}

Status TursoBackend::CheckHealth() {
  const std::string where = client_->base_url();
  ENGRAM_ASSIGN_OR_RETURN(HranaResult tables, client_->Execute("SELECT name FROM sqlite_schema WHERE type = 'table'"));
  std::set<std::string> present;
  for (size_t i = 0; i < tables.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string name, tables.Text(i, 0));
    present.insert(std::move(name));
  }
  for (const char* t : kBaseTables) {
    if (!present.contains(t)) return DataLossError("the Turso database at " + where + " has lost engram's table " + t);
  }
  ENGRAM_ASSIGN_OR_RETURN(HranaResult index, client_->Execute(kIndexHealthSql));
  if (!index.rows.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(int64_t completed, index.Int(0, 0));
    ENGRAM_ASSIGN_OR_RETURN(int64_t docs, index.Int(0, 1));
    ENGRAM_ASSIGN_OR_RETURN(int64_t stray, index.Int(0, 2));
    if (completed != docs || stray != 0) {
      return DataLossError("the Turso database at " + where + ": the full-text index disagrees with the episodes (" +
                           std::to_string(completed) + " completed episodes, " + std::to_string(docs) + " indexed, " +
                           std::to_string(stray) + " indexed but not completed)");
    }
  }
  // Writable: a write transaction that changes nothing (and so bumps no generation).
  HranaBatch probe;
  probe.Add("UPDATE store_state SET generation = generation WHERE id = 1");
  return client_->Batch(probe).status();
}

}  // namespace engram::turso

namespace engram {

bool TursoWritesAreOwn(const StorageBackend& store, int64_t after, int64_t upto) {
  const auto* turso = dynamic_cast<const turso::TursoBackend*>(&store);
  return turso != nullptr && turso->WritesAreOwn(after, upto);
}

bool IsTursoUrl(std::string_view store) {
  return store.starts_with("libsql://") || store.starts_with("https://") || store.starts_with("http://");
}

Result<std::unique_ptr<StorageBackend>> OpenTursoBackend(const TursoOptions& options) {
  using namespace turso;
  if (!IsTursoUrl(options.url)) {
    return InvalidArgumentError("a Turso store URL starts with libsql://, https:// or http:// (got \"" +
                                options.url.substr(0, 100) + "\")");
  }
  if (options.pool_size == 0) return InvalidArgumentError("the Turso pool size must be at least 1");
  HranaOptions hrana;
  hrana.url = options.url;
  hrana.auth_token = options.auth_token;
  hrana.pool_size = options.pool_size;
  hrana.connect_timeout = options.connect_timeout;
  hrana.request_timeout = options.request_timeout;
  hrana.max_retries = options.max_retries;
  hrana.backoff = options.backoff;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<HranaClient> client, HranaClient::Open(hrana, SystemClock()));
  ENGRAM_ASSIGN_OR_RETURN(int version, Migrate(*client));
  return std::unique_ptr<StorageBackend>(std::make_unique<TursoBackend>(std::move(client), options, version));
}

}  // namespace engram
