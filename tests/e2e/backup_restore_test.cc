// `engram backup` and `engram restore` through the built binary: a backup taken while
// another process writes holds every episode acknowledged before it began and passes
// integrity_check; a restore reproduces the store exactly (compared by `engram export`),
// drops the cache and the vector index file, and refuses what it must refuse (a non-empty
// store without --force, foreign, corrupt and newer files) without touching the store.
// Also `engram doctor`'s exit code.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engram/sqlite_backend.h"
#include "reliability/writer_checks.h"
#include "testing/shell.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

constexpr int kSteps = 4;

// Runs `sql` on the SQLite file at `path` with the C API (not engram's code).
void Sql(const std::string& path, const char* sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(h, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  sqlite3_close(h);
}

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class BackupRestoreTest : public ::testing::Test {
 protected:
  // Runs `engram ARGS` with no config file and a HOME of its own.
  CliRun Engram(const std::string& args) {
    std::string err_file = dir_.File("stderr.txt");
    std::string cmd = "env -u ENGRAM_CONFIG -u ENGRAM_DB -u ENGRAM_STORE HOME=" + testing::ShellQuote(dir_.File("home")) +
                      " XDG_CONFIG_HOME=" + testing::ShellQuote(dir_.File("home/.config")) + " " ENGRAM_BINARY " " +
                      args + " 2>" + testing::ShellQuote(err_file);
    testing::ShellResult shell = testing::RunShell(cmd);
    CliRun r{shell.exit_code, std::move(shell.out), ReadFile(err_file)};
    return r;
  }
  CliRun On(const std::string& db, const std::string& args) {
    return Engram("--db " + testing::ShellQuote(db) + " " + args);
  }
  // `engram export` of the store at `db`: one line per episode, then its patterns and
  // heuristics and a last learning record (docs/export-format.md), deterministic.
  std::string Export(const std::string& db) {
    CliRun r = On(db, "export");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // `episodes` complete episodes written by engram_test_writer with tag `tag`.
  void Write(const std::string& db, const std::string& tag, int episodes) {
    pid_t pid = SpawnWriter({"--db", db, "--episodes", std::to_string(episodes), "--steps", std::to_string(kSteps),
                             "--tag", tag, "--durability", "normal"},
                            dir_.File(tag + ".out"), dir_.File(tag + ".err"));
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(dir_.File(tag + ".err"));
  }

  // Ids printed so far by a writer (acknowledged), without a line still being written.
  std::vector<std::string> Acknowledged(const std::string& out_file) {
    std::string text = ReadFile(out_file);
    text.resize(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
    return Lines(text);
  }

  testing::TempDir dir_;
};

TEST_F(BackupRestoreTest, BackupWhileAnotherProcessWritesHoldsEveryAcknowledgedEpisode) {
  const std::string db = dir_.File("live.db");
  // More episodes than the test waits for: the writer is still writing during every
  // backup, and is stopped at the end.
  pid_t writer = SpawnWriter({"--db", db, "--episodes", "1000000", "--steps", std::to_string(kSteps), "--tag", "live",
                              "--durability", "normal"},
                             dir_.File("live.out"), dir_.File("live.err"));
  ASSERT_GT(writer, 0);
  int status = 0;
  for (int round = 1; round <= 4; ++round) {
    while (Acknowledged(dir_.File("live.out")).size() < static_cast<size_t>(round * 40)) {
      ASSERT_EQ(waitpid(writer, &status, WNOHANG), 0) << "the writer ended early: " << ReadFile(dir_.File("live.err"));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::vector<std::string> before = Acknowledged(dir_.File("live.out"));
    const std::string copy = dir_.File("backup-" + std::to_string(round) + ".db");
    CliRun r = On(db, "backup " + testing::ShellQuote(copy));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("integrity check ok"));
    EXPECT_FALSE(fs::exists(copy + "-wal")) << "a backup is one self-contained file";
    EXPECT_EQ(IntegrityCheck(copy), "ok");

    SqliteOptions options;
    options.path = copy;
    options.read_only = true;
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (const std::string& id : before) {
      Result<Episode> e = (*store)->GetEpisode(id);
      ASSERT_TRUE(e.ok()) << "round " << round << ": acknowledged episode " << id << " missing from the backup: "
                          << e.status().ToString();
      EXPECT_TRUE(IsIntact(*e, "live", kSteps));
    }
    Result<StoreStats> stats = (*store)->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_GE(stats->completed_episodes, static_cast<int64_t>(before.size()));
  }
  // Still writing after the last backup, so every backup ran alongside it.
  ASSERT_EQ(waitpid(writer, &status, WNOHANG), 0) << ReadFile(dir_.File("live.err"));
  kill(writer, SIGKILL);
  ASSERT_EQ(waitpid(writer, &status, 0), writer);
}

TEST_F(BackupRestoreTest, RestoreReproducesTheStoreExactly) {
  const std::string a = dir_.File("a.db");
  Write(a, "a", 30);
  const std::string backup = dir_.File("a.backup");
  CliRun b = On(a, "--json backup " + testing::ShellQuote(backup));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(b.out, HasSubstr("\"episodes\":30"));

  // A second backup to the same path needs --force.
  CliRun again = On(a, "backup " + testing::ShellQuote(backup));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  EXPECT_EQ(On(a, "backup --force " + testing::ShellQuote(backup)).exit_code, 0);

  const std::string c = dir_.File("restored/c.db");  // its folder does not exist yet
  CliRun r = On(c, "restore " + testing::ShellQuote(backup));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("30 episodes (30 completed)"));
  const std::string expected = Export(a);
  EXPECT_EQ(std::count(expected.begin(), expected.end(), '\n'), 30 + 1);  // + the learning record
  EXPECT_EQ(Export(c), expected);
  EXPECT_EQ(IntegrityCheck(c), "ok");
}

TEST_F(BackupRestoreTest, RestoreOverAStoreNeedsForceAndDropsItsCacheAndVectorIndex) {
  const std::string old_db = dir_.File("old.db");
  const std::string new_db = dir_.File("new.db");
  Write(old_db, "old", 12);
  Write(new_db, "new", 5);
  const std::string backup = dir_.File("new.backup");
  ASSERT_EQ(On(new_db, "backup " + testing::ShellQuote(backup)).exit_code, 0);

  // Read an old episode through the CLI, so the LMDB cache holds a copy of it.
  const std::string old_id = Lines(ReadFile(dir_.File("old.out"))).front();
  ASSERT_EQ(On(old_db, "episode get " + old_id).exit_code, 0);
  ASSERT_TRUE(fs::exists(old_db + ".cache"));
  std::ofstream(old_db + ".vectors.hnsw") << "an index of the old content";
  const std::string before = Export(old_db);

  CliRun refused = On(old_db, "restore " + testing::ShellQuote(backup));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("holds 12 episodes"));
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_EQ(Export(old_db), before) << "a refused restore changes nothing";

  CliRun forced = On(old_db, "restore --force " + testing::ShellQuote(backup));
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_THAT(forced.out, HasSubstr("replaced 12 episodes"));
  EXPECT_THAT(forced.out, HasSubstr("cache cleared"));
  EXPECT_EQ(Export(old_db), Export(new_db));
  EXPECT_FALSE(fs::exists(old_db + ".vectors.hnsw"));
  // The cache no longer serves the replaced episode.
  CliRun gone = On(old_db, "episode get " + old_id);
  EXPECT_EQ(gone.exit_code, 1) << gone.out;
}

TEST_F(BackupRestoreTest, RestoreRefusesForeignCorruptAndNewerFilesAndLosesNothing) {
  const std::string db = dir_.File("keep.db");
  Write(db, "keep", 8);
  const std::string before = Export(db);

  const std::string text = dir_.File("notes.txt");
  std::ofstream(text) << std::string(8192, 'x');
  CliRun r1 = On(db, "restore --force " + testing::ShellQuote(text));
  EXPECT_EQ(r1.exit_code, 1);
  EXPECT_THAT(r1.err, HasSubstr("not an SQLite database"));

  const std::string other = dir_.File("other.sqlite");
  Sql(other, "CREATE TABLE notes(x); INSERT INTO notes VALUES (1)");  // another program's database
  CliRun r2 = On(db, "restore --force " + testing::ShellQuote(other));
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_THAT(r2.err, HasSubstr("not an engram store"));

  // A real backup, then its pages after the first zeroed: the header still says engram.
  const std::string damaged = dir_.File("damaged.backup");
  ASSERT_EQ(On(db, "backup " + testing::ShellQuote(damaged)).exit_code, 0);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    f.seekp(4096);
    f << std::string(static_cast<size_t>(size - 4096), '\0');
  }
  CliRun r3 = On(db, "restore --force " + testing::ShellQuote(damaged));
  EXPECT_EQ(r3.exit_code, 1);
  EXPECT_THAT(r3.err, HasSubstr("damaged"));

  const std::string newer = dir_.File("newer.backup");
  ASSERT_EQ(On(db, "backup " + testing::ShellQuote(newer)).exit_code, 0);
  Sql(newer, "PRAGMA user_version = 99");
  CliRun r4 = On(db, "restore --force " + testing::ShellQuote(newer));
  EXPECT_EQ(r4.exit_code, 1);
  EXPECT_THAT(r4.err, HasSubstr("newer engram"));

  CliRun r5 = On(db, "restore " + testing::ShellQuote(dir_.File("missing.backup")));
  EXPECT_EQ(r5.exit_code, 1);
  EXPECT_THAT(r5.err, HasSubstr("no file at"));

  EXPECT_EQ(Export(db), before);
  EXPECT_EQ(IntegrityCheck(db), "ok");
}

TEST_F(BackupRestoreTest, PostgresStoresGetThePgDumpCommandWithTheirPasswordMasked) {
  CliRun b = Engram("--store 'postgresql://mem:s3cret-pw@db.example/engram' backup /tmp/x.dump");
  EXPECT_EQ(b.exit_code, 1);
  EXPECT_THAT(b.err, HasSubstr("pg_dump --format=custom"));
  EXPECT_THAT(b.err, HasSubstr("dbname=engram"));
  EXPECT_THAT(b.err, Not(HasSubstr("s3cret-pw")));
  CliRun r = Engram("--store 'postgresql://mem:s3cret-pw@db.example/engram' restore /tmp/x.dump");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("pg_restore"));
  EXPECT_THAT(r.err, Not(HasSubstr("s3cret-pw")));
}

TEST_F(BackupRestoreTest, DoctorExitCodeFollowsFailures) {
  const std::string db = dir_.File("doc.db");
  Write(db, "doc", 2);
  CliRun ok = On(db, "--set sandbox.enabled=false doctor");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("ok    store: sqlite at " + db));
  EXPECT_THAT(ok.out, HasSubstr("info  claude-code: "));  // the temp HOME has no client

  fs::create_directories(dir_.File("cfg"));
  std::ofstream(dir_.File("cfg/config.toml")) << "[storage]\ndurabilty = \"full\"\n";
  CliRun bad_config = On(db, "--config " + testing::ShellQuote(dir_.File("cfg/config.toml")) + " doctor");
  EXPECT_EQ(bad_config.exit_code, 1);
  EXPECT_THAT(bad_config.out, HasSubstr("FAIL  config: "));
  EXPECT_THAT(bad_config.out, HasSubstr("durabilty"));
  EXPECT_THAT(bad_config.out, HasSubstr("  fix: "));

  Sql(db, "PRAGMA user_version = 99");  // as if a newer engram had written it
  CliRun newer = On(db, "--set sandbox.enabled=false doctor");
  EXPECT_EQ(newer.exit_code, 1);
  EXPECT_THAT(newer.out, HasSubstr("FAIL  store: "));
  EXPECT_THAT(newer.out, HasSubstr("upgrade engram"));
}

}  // namespace
}  // namespace engram
