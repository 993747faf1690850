// `engram backup PATH` and `engram restore PATH` for the SQLite store, online: other engram
// processes keep serving while either runs (include/engram/sqlite_backup.h). A PostgreSQL
// store is backed up with PostgreSQL's own tools; both commands say which command to run.
//
// After a restore, what describes the replaced content goes: the LMDB cache is cleared (in
// every process that shares it) and the persisted vector index file is removed, so both
// are rebuilt from the restored store.
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/doctor_checks.h"
#include "cli/output.h"
#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backup.h"
#include "engram/turso_backend.h"

namespace engram::cli {
namespace {

namespace fs = std::filesystem;

struct CopyArgs {
  std::string path;
  bool force = false;
};

std::string ShellQuoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// kFailedPrecondition for a PostgreSQL store, naming the PostgreSQL tool that does the job.
Status PostgresNotCopied(const Config& config, const std::string& what, const std::string& tool_command) {
  return FailedPreconditionError("engram " + what + " copies the SQLite store only; this store is PostgreSQL (" +
                                 MaskPostgresConninfo(config.store_url) + "). Use: " + tool_command +
                                 " (replace ******** with the password, or leave it out and use PGPASSWORD or "
                                 "~/.pgpass)");
}

// kFailedPrecondition for a Turso store: its file lives on the server, so the copy is made
// there or through engram's own portable export.
Status TursoNotCopied(const Config& config, const std::string& what) {
  return FailedPreconditionError("engram " + what + " copies the SQLite store only; this store is Turso (" +
                                 config.store_url + "). Use: engram " + (what == "backup" ? "export" : "import") +
                                 " (JSONL of episodes and what was learned, for any store), or the server's own "
                                 "tools (turso db shell <db> .dump)");
}

SqliteCopyOptions CopyOptions(const Config& config, ProgressBar& bar) {
  SqliteCopyOptions options;
  options.busy_timeout = std::max(config.busy_timeout, std::chrono::milliseconds(1000));
  options.progress = [&bar](int64_t copied, int64_t total) {
    bar.Update(static_cast<size_t>(copied), static_cast<size_t>(std::max<int64_t>(total, 1)));
  };
  return options;
}

nlohmann::json InfoJson(const SqliteStoreInfo& info) {
  return {{"path", info.path},
          {"bytes", info.bytes},
          {"schema_version", info.schema_version},
          {"episodes", info.episodes},
          {"completed_episodes", info.completed_episodes},
          {"steps", info.steps}};
}

std::string InfoText(const SqliteStoreInfo& info) {
  return std::to_string(info.episodes) + " episodes (" + std::to_string(info.completed_episodes) + " completed), " +
         std::to_string(info.steps) + " steps, " + std::to_string(info.bytes) + " bytes, schema " +
         std::to_string(info.schema_version);
}

Status RunBackup(Session& session, const CopyArgs& args) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  if (IsPostgresUrl(config->store_url)) {
    return PostgresNotCopied(*config, "backup",
                             "pg_dump --format=custom --file=" + ShellQuoted(args.path) + " --dbname=" +
                                 ShellQuoted(MaskPostgresConninfo(config->store_url)));
  }
  if (IsTursoUrl(config->store_url)) return TursoNotCopied(*config, "backup");
  ProgressBar bar(ProgressBar::Wanted(session.json()), "pages");
  SqliteCopyOptions options = CopyOptions(*config, bar);
  options.overwrite = args.force;
  ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo info, BackupSqliteStore(config->db_path, args.path, options));
  bar.Finish();
  if (session.json()) {
    nlohmann::json j = InfoJson(info);
    j["store"] = config->db_path;
    j["integrity"] = "ok";
    PrintJson({{"backup", std::move(j)}});
  } else {
    std::cout << "backed up " << config->db_path << " to " << info.path << ": " << InfoText(info)
              << "; integrity check ok\n";
  }
  return OkStatus();
}

// What the configured store holds now, or why it cannot be read (then restoring over it
// needs --force too).
struct TargetState {
  bool exists = false;
  std::optional<StoreStats> stats;
  std::string unreadable;  // why it could not be opened
};

TargetState ReadTarget(const Config& config) {
  TargetState t;
  std::error_code ec;
  t.exists = fs::exists(config.db_path, ec);
  if (!t.exists) return t;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteStore(config, /*read_only=*/true, /*with_cache=*/false);
  if (!store.ok()) {
    t.unreadable = std::string(store.status().message());
    return t;
  }
  Result<StoreStats> stats = (*store)->Stats();
  if (!stats.ok()) {
    t.unreadable = std::string(stats.status().message());
    return t;
  }
  t.stats = *stats;
  return t;
}

// Drops every cached copy, in every process sharing the cache folder. A folder that does
// not exist has nothing to drop.
Status ClearCache(const Config& config, bool& cleared) {
  const std::string folder = config.db_path + ".cache";
  std::error_code ec;
  cleared = false;
  if (!fs::exists(folder, ec)) return OkStatus();
  Status s = [&]() -> Status {
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> cached,
                            OpenSqliteStore(config, /*read_only=*/false, /*with_cache=*/true));
    return AsLmdbCache(*cached)->Clear();
  }();
  if (!s.ok()) {
    return UnavailableError("the store was restored, but its cache " + folder +
                            " could not be cleared and may serve replaced episodes: " + std::string(s.message()) +
                            ". Stop every engram process and delete that folder (it is only a cache).");
  }
  cleared = true;
  return OkStatus();
}

Status RunRestore(Session& session, const CopyArgs& args) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  if (IsPostgresUrl(config->store_url)) {
    return PostgresNotCopied(*config, "restore",
                             "pg_restore --clean --if-exists --dbname=" +
                                 ShellQuoted(MaskPostgresConninfo(config->store_url)) + " " + ShellQuoted(args.path));
  }
  if (IsTursoUrl(config->store_url)) return TursoNotCopied(*config, "restore");
  // The backup is checked before anything else is looked at or touched.
  ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo backup, InspectSqliteStore(args.path));
  TargetState target = ReadTarget(*config);
  if (!args.force) {
    if (!target.unreadable.empty()) {
      return FailedPreconditionError("the store " + config->db_path + " cannot be read (" + target.unreadable +
                                     "); pass --force to replace it with " + args.path);
    }
    if (target.stats && target.stats->episodes > 0) {
      return FailedPreconditionError("the store " + config->db_path + " holds " +
                                     std::to_string(target.stats->episodes) +
                                     " episodes that would be replaced by the backup's " +
                                     std::to_string(backup.episodes) + "; back it up first (engram backup PATH) "
                                     "and pass --force to restore");
    }
  }
  ProgressBar bar(ProgressBar::Wanted(session.json()), "pages");
  ENGRAM_ASSIGN_OR_RETURN(SqliteStoreInfo restored,
                          RestoreSqliteStore(args.path, config->db_path, CopyOptions(*config, bar)));
  bar.Finish();
  bool cache_cleared = false;
  ENGRAM_RETURN_IF_ERROR(ClearCache(*config, cache_cleared));
  const std::string index_file = config->db_path + ".vectors.hnsw";
  std::error_code ec;
  bool index_removed = fs::remove(index_file, ec);
  if (ec) return UnavailableError("the store was restored, but " + index_file + " could not be removed: " + ec.message());

  const int64_t replaced = target.stats ? target.stats->episodes : 0;
  if (session.json()) {
    PrintJson({{"restored", InfoJson(restored)},
               {"from", args.path},
               {"replaced_episodes", replaced},
               {"cache_cleared", cache_cleared},
               {"vector_index_removed", index_removed}});
  } else {
    std::cout << "restored " << args.path << " into " << restored.path << ": " << InfoText(restored) << "\n";
    if (target.exists) {
      std::cout << "replaced " << (target.stats ? std::to_string(replaced) + " episodes" : "an unreadable store")
                << "\n";
    }
    if (cache_cleared) std::cout << "cache cleared: " << config->db_path << ".cache\n";
    if (index_removed) std::cout << "vector index removed: " << index_file << " (rebuilt on next use)\n";
    std::cout << "Restart running engram servers so their in-memory vector index is rebuilt.\n";
  }
  return OkStatus();
}

}  // namespace

void AddBackupCommands(CLI::App& app, Command* selected) {
  auto backup = std::make_shared<CopyArgs>();
  auto* b = app.add_subcommand("backup", "Copy the SQLite store to PATH while it serves (consistent, verified)");
  b->add_option("path", backup->path, "The backup file to write")->required();
  b->add_flag("--force", backup->force, "Replace PATH if it exists");
  b->callback([=] { *selected = [backup](Session& s) { return RunBackup(s, *backup); }; });

  auto restore = std::make_shared<CopyArgs>();
  auto* r = app.add_subcommand("restore", "Replace the SQLite store with a backup from engram backup");
  r->add_option("path", restore->path, "The backup file to restore")->required();
  r->add_flag("--force", restore->force, "Replace a store that holds episodes (or cannot be read)");
  r->callback([=] { *selected = [restore](Session& s) { return RunRestore(s, *restore); }; });
}

}  // namespace engram::cli
