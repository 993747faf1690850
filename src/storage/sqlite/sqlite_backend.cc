#include "storage/sqlite/sqlite_backend.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/episode_json.h"
#include "model/stored_columns.h"
#include "storage/sqlite/sqlite_index.h"
#include "storage/sqlite/sqlite_rows.h"

namespace engram::sqlite {

using nlohmann::json;

namespace {

constexpr const char* kListEpisodesSql =
    "SELECT episode_id, task_description, task_type, context_json, start_time, end_time, outcome_json, "
    "reward_json, reflection_json, pattern_ids_json, tags_json, metadata_json FROM episodes "
    "WHERE (?1 IS NULL OR domain = ?1) AND (?2 IS NULL OR task_type = ?2) "
    "AND (?3 IS NULL OR (outcome_kind IS NOT NULL) = ?3) AND (?4 IS NULL OR episode_id < ?4) "
    "ORDER BY episode_id DESC LIMIT ?5";
constexpr const char* kEpisodeStateSql =
    "SELECT outcome_kind IS NOT NULL, step_count, byte_size, "
    "(SELECT COALESCE(MAX(step_number), 0) FROM steps WHERE episode_id = ?1) "
    "FROM episodes WHERE episode_id = ?1";
constexpr const char* kBumpStepsSql =
    "UPDATE episodes SET step_count = step_count + 1, byte_size = byte_size + ?2 WHERE episode_id = ?1";
constexpr const char* kCompleteSql =
    "UPDATE episodes SET end_time = ?2, outcome_kind = ?3, outcome_json = ?4, reward_total = ?5, "
    "reward_json = ?6, reflection_json = ?7, pattern_ids_json = ?8, tags_json = ?9, metadata_json = ?10 "
    "WHERE episode_id = ?1";
constexpr const char* kDeleteStepsSql = "DELETE FROM steps WHERE episode_id = ?1";
constexpr const char* kDeleteEpisodeSql = "DELETE FROM episodes WHERE episode_id = ?1";
constexpr const char* kStatsSql =
    "SELECT (SELECT COUNT(*) FROM episodes), (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), "
    "(SELECT COUNT(*) FROM steps)";
constexpr const char* kLearningStatsSql = "SELECT (SELECT COUNT(*) FROM patterns), (SELECT COUNT(*) FROM heuristics)";
// The index and its counter agree with the completed episodes (CheckHealth).
constexpr const char* kIndexHealthSql =
    "SELECT (SELECT COUNT(*) FROM episodes WHERE outcome_kind IS NOT NULL), (SELECT COUNT(*) FROM episode_docs), "
    "(SELECT indexed FROM store_state), "
    "(SELECT COUNT(*) FROM episode_docs d LEFT JOIN episodes e ON e.episode_id = d.episode_id "
    " WHERE e.outcome_kind IS NULL)";

// The index and extraction mark of an episode written completed (created, or put whole).
Status IndexCompleted(Connection& conn, const Episode& e) {
  if (!e.completed()) return OkStatus();
  ENGRAM_RETURN_IF_ERROR(IndexEpisode(conn, e));
  return MarkPendingExtraction(conn, e.episode_id);
}

// A stream over one read transaction on a connection taken out of the pool.
class SqliteEpisodeStream final : public EpisodeStream {
 public:
  SqliteEpisodeStream(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> conn,
                      EpisodeFilter filter)
      : pool_(std::move(pool)), conn_(std::move(conn)), filter_(std::move(filter)) {}

  ~SqliteEpisodeStream() override {
    stmt_.reset();
    if (!sqlite3_get_autocommit(conn_->raw())) conn_->Exec("ROLLBACK").IgnoreError();
    pool_->Release(std::move(conn_));
  }

  Status Start() {
    ENGRAM_RETURN_IF_ERROR(conn_->Exec("BEGIN"));
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn_->Prepare(kListEpisodesSql));
    stmt_.emplace(std::move(stmt));
    stmt_->BindOptText(1, filter_.domain);
    if (filter_.task_type) stmt_->BindText(2, TaskTypeName(*filter_.task_type)); else stmt_->BindNull(2);
    if (filter_.completed) stmt_->BindInt(3, *filter_.completed ? 1 : 0); else stmt_->BindNull(3);
    stmt_->BindOptText(4, filter_.before_id);
    stmt_->BindInt(5, filter_.limit == 0 ? -1 : static_cast<int64_t>(filter_.limit));
    return OkStatus();
  }

  Result<std::optional<Episode>> Next() override {
    if (done_) return std::optional<Episode>();
    Result<bool> row = stmt_->Step();
    if (!row.ok()) {
      done_ = true;
      return row.status();
    }
    if (!*row) {
      done_ = true;
      return std::optional<Episode>();
    }
    ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(*stmt_));
    if (filter_.include_steps) ENGRAM_RETURN_IF_ERROR(ReadSteps(*conn_, e));
    return std::optional<Episode>(std::move(e));
  }

 private:
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> conn_;
  EpisodeFilter filter_;
  std::optional<Statement> stmt_;
  bool done_ = false;
};

Status EnsureParentDirectory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return UnavailableError("cannot create the folder " + parent.string() + " for the database: " + ec.message());
  }
  return OkStatus();
}

// journal_mode=WAL is a property of the file, set once; needs a brief exclusive lock the first
// time, so it is retried like a busy transaction.
Status Configure(Connection& conn, const SqliteOptions& options) {
  auto deadline = std::chrono::steady_clock::now() + options.busy_timeout;
  if (!options.read_only) {
    for (;;) {
      Status s = conn.Exec("PRAGMA journal_mode=WAL");
      if (s.ok()) break;
      if (!IsBusy(s) || std::chrono::steady_clock::now() >= deadline) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Connection>> ConnectionPool::Acquire() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
  }
  return Connection::Open(options_);
}

void ConnectionPool::Release(std::unique_ptr<Connection> conn) {
  if (conn == nullptr) return;
  MutexLock lock(mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

SqliteBackend::SqliteBackend(std::shared_ptr<ConnectionPool> pool, SqliteOptions options, int schema_version)
    : pool_(std::move(pool)), options_(std::move(options)), schema_version_(schema_version) {
  // Built at the first search, not at open: every CLI command opens the store, and reading
  // the whole index (seconds and ~260 MiB at 1M episodes) is wasted on one that does not
  // search. `engram serve` searches once at start (server/open_retrieval.cc) so its first
  // queries find it ready. Neither open nor searches wait for it.
  // SqliteOptions::full_text_in_memory = false: FTS5 answers, no memory spent.
  if (schema_version_ >= 4 && options_.full_text_in_memory) mirror_ = std::make_unique<PostingsMirror>(pool_);
}

Status SqliteBackend::Write(const std::function<Status(Connection&)>& fn, bool bump_generation, bool sync) {
  if (options_.read_only) return FailedPreconditionError("the store " + options_.path + " is open read-only");
  MutexLock lock(write_mu_);
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, pool_->Acquire());
  // In WAL mode NORMAL skips the fsync of this commit only; the log is appended in commit
  // order, so the next FULL commit (or checkpoint) syncs this one too, and a power loss
  // can lose only this commit and those after it, never leave a later one without it.
  const bool unsynced = !sync && options_.durability == Durability::kFull;
  if (unsynced) ENGRAM_RETURN_IF_ERROR(conn->Exec("PRAGMA synchronous=NORMAL"));
  Status s = conn->Transaction(/*write=*/true, [&]() -> Status {
    ENGRAM_RETURN_IF_ERROR(fn(*conn));
    return bump_generation ? BumpGeneration(*conn) : OkStatus();
  });
  if (s.ok() && bump_generation && mirror_ != nullptr) mirror_->NoteWrite();
  // A connection that cannot be put back to FULL is closed rather than pooled.
  if (unsynced && !conn->Exec("PRAGMA synchronous=FULL").ok()) return s;
  pool_->Release(std::move(conn));
  return s;
}

Status SqliteBackend::RequireSchema(int version, std::string_view what) const {
  if (schema_version_ >= version) return OkStatus();
  return FailedPreconditionError(options_.path + " is at schema " + std::to_string(schema_version_) + ", which has no " +
                                 std::string(what) + "; open it once writable (engram storage migrate) to upgrade it");
}

Status SqliteBackend::Read(const std::function<Status(Connection&)>& fn) {
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, pool_->Acquire());
  Status s = conn->Transaction(/*write=*/false, [&] { return fn(*conn); });
  pool_->Release(std::move(conn));
  return s;
}

Status SqliteBackend::CreateEpisode(const Episode& episode) {
  ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(episode));
  return Write([&](Connection& conn) -> Status {
    ENGRAM_RETURN_IF_ERROR(InsertEpisode(conn, episode, /*replace=*/false));
    return IndexCompleted(conn, episode);
  });
}

Status SqliteBackend::PutEpisodes(std::span<const Episode> episodes) {
  for (const Episode& e : episodes) ENGRAM_RETURN_IF_ERROR(CheckEpisodeLimits(e));
  return Write([&](Connection& conn) -> Status {
    for (const Episode& e : episodes) {
      // A replaced episode leaves the index (and its vector, which described the old
      // text) and its extraction mark; the new one enters them if it is completed.
      ENGRAM_RETURN_IF_ERROR(UnindexEpisode(conn, e.episode_id));
      ENGRAM_RETURN_IF_ERROR(ClearPendingExtraction(conn, e.episode_id));
      ENGRAM_ASSIGN_OR_RETURN(Statement del, conn.Prepare(kDeleteStepsSql));
      del.BindText(1, e.episode_id);
      ENGRAM_RETURN_IF_ERROR(del.Run());
      ENGRAM_RETURN_IF_ERROR(InsertEpisode(conn, e, /*replace=*/true));
      ENGRAM_RETURN_IF_ERROR(IndexCompleted(conn, e));
    }
    return OkStatus();
  });
}

Result<int> SqliteBackend::AppendStep(std::string_view episode_id, const Step& step) {
  int number = 0;
  Status s = Write([&](Connection& conn) -> Status {
    int64_t step_count, byte_size, max_number;
    {
      ENGRAM_ASSIGN_OR_RETURN(Statement state, conn.Prepare(kEpisodeStateSql));
      state.BindText(1, episode_id);
      ENGRAM_ASSIGN_OR_RETURN(bool found, state.Step());
      if (!found) return NotFoundError("no episode " + std::string(episode_id));
      if (state.ColumnInt(0) != 0) {
        return FailedPreconditionError("episode " + std::string(episode_id) +
                                       " is already completed; steps can only be added before complete");
      }
      step_count = state.ColumnInt(1);
      byte_size = state.ColumnInt(2);
      max_number = state.ColumnInt(3);
    }
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
      if (max_number >= static_cast<int64_t>(kMaxStepsPerEpisode)) {
        return ResourceExhaustedError("episode " + std::string(episode_id) + " has used step number 1000, the highest");
      }
      numbered.step_number = static_cast<int>(max_number + 1);
    } else if (numbered.step_number > static_cast<int>(kMaxStepsPerEpisode)) {
      return InvalidArgumentError("step_number " + std::to_string(numbered.step_number) + " is above 1000");
    }
    ENGRAM_RETURN_IF_ERROR(InsertStep(conn, episode_id, numbered));
    ENGRAM_ASSIGN_OR_RETURN(Statement bump, conn.Prepare(kBumpStepsSql));
    bump.BindText(1, episode_id);
    bump.BindInt(2, added);
    ENGRAM_RETURN_IF_ERROR(bump.Run());
    number = numbered.step_number;
    return OkStatus();
  });
  if (!s.ok()) return s;
  return number;
}

Status SqliteBackend::CompleteEpisode(const Episode& e) {
  if (!e.outcome || !e.end_time) return InvalidArgumentError("CompleteEpisode needs an outcome and an end time");
  return Write([&](Connection& conn) -> Status {
    {
      ENGRAM_ASSIGN_OR_RETURN(Statement state, conn.Prepare(kEpisodeStateSql));
      state.BindText(1, e.episode_id);
      ENGRAM_ASSIGN_OR_RETURN(bool found, state.Step());
      if (!found) return NotFoundError("no episode " + e.episode_id);
      if (state.ColumnInt(0) != 0) return FailedPreconditionError("episode " + e.episode_id + " is already completed");
      if (state.ColumnInt(1) != static_cast<int64_t>(e.steps.size())) {
        return AbortedError("episode " + e.episode_id + " gained steps while it was being completed");
      }
    }
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kCompleteSql));
    stmt.BindText(1, e.episode_id);
    stmt.BindInt(2, ToMillis(*e.end_time));
    stmt.BindText(3, OutcomeKindName(e.outcome->kind));
    stmt.BindText(4, DumpColumn(OutcomeToJson(*e.outcome)));
    if (e.reward) {
      stmt.BindDouble(5, e.reward->total);
      stmt.BindText(6, DumpColumn(RewardToJson(*e.reward)));
    } else {
      stmt.BindNull(5);
      stmt.BindNull(6);
    }
    stmt.BindOptText(7, e.reflection ? std::optional<std::string>(DumpColumn(ReflectionToJson(*e.reflection)))
                                     : std::nullopt);
    stmt.BindText(8, DumpColumn(json(e.pattern_ids)));
    stmt.BindText(9, DumpColumn(json(e.tags)));
    stmt.BindText(10, e.metadata_json);
    ENGRAM_RETURN_IF_ERROR(stmt.Run());
    // The index gets the completed episode: `e` carries the stored steps (their count was
    // checked above) and the fields just written, so no read-back is needed.
    ENGRAM_RETURN_IF_ERROR(IndexEpisode(conn, e));
    return MarkPendingExtraction(conn, e.episode_id);
  });
}

namespace {

// The episode with its steps, or nullopt when there is none. REQUIRES: inside a transaction.
Result<std::optional<Episode>> ReadEpisode(Connection& conn, std::string_view episode_id) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kSelectEpisodeSql));
  stmt.BindText(1, episode_id);
  ENGRAM_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return std::optional<Episode>();
  ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(stmt));
  ENGRAM_RETURN_IF_ERROR(ReadSteps(conn, e));
  return std::optional<Episode>(std::move(e));
}

}  // namespace

Result<Episode> SqliteBackend::GetEpisode(std::string_view episode_id) {
  std::optional<Episode> out;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(out, ReadEpisode(conn, episode_id));
    return OkStatus();
  }));
  if (!out) return NotFoundError("no episode " + std::string(episode_id));
  return *std::move(out);
}

Result<std::vector<Episode>> SqliteBackend::GetEpisodes(std::span<const std::string> episode_ids) {
  std::vector<Episode> out;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    out.clear();
    std::set<std::string_view> seen;
    for (const std::string& id : episode_ids) {
      if (!seen.insert(id).second) continue;
      ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> e, ReadEpisode(conn, id));
      if (e) out.push_back(*std::move(e));  // one deleted, or never stored, is not in the answer
    }
    return OkStatus();
  }));
  return out;
}

Result<std::unique_ptr<EpisodeStream>> SqliteBackend::ListEpisodes(const EpisodeFilter& filter) {
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, pool_->Acquire());
  auto stream = std::make_unique<SqliteEpisodeStream>(pool_, std::move(conn), filter);
  ENGRAM_RETURN_IF_ERROR(stream->Start());
  return std::unique_ptr<EpisodeStream>(std::move(stream));
}

Result<bool> SqliteBackend::DeleteEpisode(std::string_view episode_id) {
  bool deleted = false;
  ENGRAM_RETURN_IF_ERROR(Write([&](Connection& conn) -> Status {
    ENGRAM_RETURN_IF_ERROR(UnindexEpisode(conn, episode_id));
    ENGRAM_RETURN_IF_ERROR(ClearPendingExtraction(conn, episode_id));
    ENGRAM_ASSIGN_OR_RETURN(Statement del_steps, conn.Prepare(kDeleteStepsSql));
    del_steps.BindText(1, episode_id);
    ENGRAM_RETURN_IF_ERROR(del_steps.Run());
    ENGRAM_ASSIGN_OR_RETURN(Statement del, conn.Prepare(kDeleteEpisodeSql));
    del.BindText(1, episode_id);
    ENGRAM_RETURN_IF_ERROR(del.Run());
    deleted = sqlite3_changes(conn.raw()) > 0;
    return OkStatus();
  }));
  return deleted;
}

Result<StoreStats> SqliteBackend::Stats() {
  StoreStats stats;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kStatsSql));
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (row) {
      stats.episodes = stmt.ColumnInt(0);
      stats.completed_episodes = stmt.ColumnInt(1);
      stats.steps = stmt.ColumnInt(2);
    }
    // A read-only open of an older file has no learning tables yet: nothing learned.
    if (schema_version_ < 3) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(Statement learning, conn.Prepare(kLearningStatsSql));
    ENGRAM_ASSIGN_OR_RETURN(bool has_learning, learning.Step());
    if (has_learning) {
      stats.patterns = learning.ColumnInt(0);
      stats.heuristics = learning.ColumnInt(1);
    }
    return OkStatus();
  }));
  return stats;
}

Status SqliteBackend::CheckHealth() {
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare("PRAGMA quick_check"));
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row || stmt.ColumnText(0) != "ok") {
      return DataLossError(options_.path + " failed its integrity check: " + (row ? stmt.ColumnText(0) : ""));
    }
    if (schema_version_ < 2) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(Statement index, conn.Prepare(kIndexHealthSql));
    ENGRAM_ASSIGN_OR_RETURN(bool index_row, index.Step());
    if (index_row) {
      const int64_t completed = index.ColumnInt(0), docs = index.ColumnInt(1), counted = index.ColumnInt(2),
                    stray = index.ColumnInt(3);
      if (completed != docs || docs != counted || stray != 0) {
        return DataLossError(options_.path + ": the full-text index disagrees with the episodes (" +
                             std::to_string(completed) + " completed episodes, " + std::to_string(docs) +
                             " indexed, counter " + std::to_string(counted) + ", " + std::to_string(stray) +
                             " indexed but not completed)");
      }
    }
    return OkStatus();
  }));
  if (options_.read_only) return OkStatus();
  // Writable: a write transaction that changes nothing still takes the write lock.
  return Write([](Connection& conn) { return conn.Exec("CREATE TEMP TABLE IF NOT EXISTS engram_probe(x)"); },
               /*bump_generation=*/false);
}

}  // namespace engram::sqlite

namespace engram {

Result<std::unique_ptr<StorageBackend>> OpenSqliteBackend(const SqliteOptions& options) {
  using namespace sqlite;
  if (options.path.empty()) return InvalidArgumentError("the database path is empty");
  if (options.path == ":memory:" || options.path.rfind("file:", 0) == 0) {
    return InvalidArgumentError("the database path must be a file, not \"" + options.path + "\"");
  }
  if (!options.read_only) ENGRAM_RETURN_IF_ERROR(EnsureParentDirectory(options.path));
  std::error_code ec;
  if (std::filesystem::is_directory(options.path, ec)) {
    return InvalidArgumentError(options.path + " is a folder; the database path must name a file");
  }

  ConnectionOptions conn_options;
  conn_options.path = options.path;
  conn_options.read_only = options.read_only;
  conn_options.busy_timeout = options.busy_timeout;
  conn_options.synchronous_full = options.durability == Durability::kFull;
  auto pool = std::make_shared<ConnectionPool>(conn_options);

  // Opening touches the file for the first time: whatever fails here is reported with
  // what the user can do about it.
  auto describe = [&](const Status& s) -> Status {
    if (s.code() == StatusCode::kDataLoss) {
      return DataLossError(options.path + " is not a SQLite database or is corrupt (" + std::string(s.message()) +
                           "). Move it aside or choose another file with --db.");
    }
    if (s.code() == StatusCode::kFailedPrecondition && s.message().find("readonly") != std::string_view::npos) {
      return UnavailableError("cannot write to " + options.path + " (read-only file or folder): " +
                              std::string(s.message()));
    }
    return s;
  };
  Result<std::unique_ptr<Connection>> acquired = pool->Acquire();
  if (!acquired.ok()) return describe(acquired.status());
  std::unique_ptr<Connection> conn = *std::move(acquired);
  ENGRAM_RETURN_IF_ERROR(describe(Configure(*conn, options)));
  int version = kSchemaVersion;
  if (options.read_only) {
    Result<FileMarks> marks = ReadMarks(*conn);
    if (!marks.ok()) return describe(marks.status());
    ENGRAM_RETURN_IF_ERROR(CheckMarks(*marks, options.path));
    version = static_cast<int>(marks->user_version);
  } else {
    ENGRAM_RETURN_IF_ERROR(describe(Migrate(*conn)));
  }
  pool->Release(std::move(conn));
  return std::unique_ptr<StorageBackend>(
      std::make_unique<SqliteBackend>(std::move(pool), options, version));
}

}  // namespace engram
