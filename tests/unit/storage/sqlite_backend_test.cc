// What only the SQLite store has: its file, its folder, and files that are not ours.
#include "engram/sqlite_backend.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using testing::MakeEpisode;
using testing::TempDir;

Result<std::unique_ptr<StorageBackend>> Open(const std::string& path, bool read_only = false) {
  SqliteOptions options;
  options.path = path;
  options.read_only = read_only;
  return OpenSqliteBackend(options);
}

void Sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

TEST(SqliteBackendTest, CreatesMissingFoldersAndMarksTheFile) {
  TempDir dir;
  std::string path = dir.path() + "/a/b/c/memory.db";
  auto store = Open(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Location(), path);
  EXPECT_EQ((*store)->Name(), "sqlite");
  store->reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(SqliteBackendTest, ForeignDatabaseIsRefusedUntouched) {
  TempDir dir;
  std::string path = dir.File("other.db");
  Sql(path, "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);");
  auto store = Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("not an engram memory"), std::string_view::npos)
      << store.status().ToString();
  // Nothing was added to it.
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_schema", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(SqliteBackendTest, GarbageFileIsDataLossWithAHint) {
  TempDir dir;
  std::string path = dir.File("memory.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 1000; ++i) out << "this is not a database at all ";
  }
  auto store = Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(store.status().message().find("not a SQLite database or is corrupt"), std::string_view::npos)
      << store.status().ToString();
}

TEST(SqliteBackendTest, NewerSchemaIsRefused) {
  TempDir dir;
  std::string path = dir.File("memory.db");
  ASSERT_TRUE(Open(path).ok());
  Sql(path, "PRAGMA user_version = 99");
  auto store = Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer engram (schema 99"), std::string_view::npos);
}

TEST(SqliteBackendTest, UnusablePathsAreClearErrors) {
  TempDir dir;
  std::string file = dir.File("plain-file");
  std::ofstream(file) << "x";
  auto under_file = Open(file + "/memory.db");
  ASSERT_FALSE(under_file.ok());
  EXPECT_EQ(under_file.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(under_file.status().message().find("cannot create the folder"), std::string_view::npos)
      << under_file.status().ToString();

  auto folder = Open(dir.path());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Open("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Open(":memory:").status().code(), StatusCode::kInvalidArgument);
  auto proc = Open("/proc/engram-test/memory.db");
  EXPECT_FALSE(proc.ok());
}

// Runs `fn` as an unprivileged user: root ignores permission bits, so as root the check
// runs in a child that drops to nobody. Returns the StatusCode fn's status had.
int AsUnprivileged(const std::function<Status()>& fn, std::string* message) {
  if (geteuid() != 0) {
    Status s = fn();
    *message = std::string(s.message());
    return static_cast<int>(s.code());
  }
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    Status s = fn();
    std::string m(s.message());
    ssize_t ignored = write(fds[1], m.data(), m.size());
    (void)ignored;
    _exit(static_cast<int>(s.code()));
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) message->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(SqliteBackendTest, ReadOnlyDirectoryIsAClearError) {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  std::string ro = dir.File("ro");
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  std::string message;
  int code = AsUnprivileged([&] { return Open(ro + "/memory.db").status(); }, &message);
  EXPECT_EQ(code, static_cast<int>(StatusCode::kUnavailable)) << message;
  EXPECT_NE(message.find(ro), std::string::npos) << message;
  // A folder that cannot be created is the same kind of error.
  message.clear();
  code = AsUnprivileged([&] { return Open(ro + "/sub/memory.db").status(); }, &message);
  EXPECT_EQ(code, static_cast<int>(StatusCode::kUnavailable)) << message;
  EXPECT_NE(message.find("cannot create the folder"), std::string::npos) << message;
}

TEST(SqliteBackendTest, ReadOnlyOpenReadsButRefusesWrites) {
  TempDir dir;
  FakeClock clock;
  std::string path = dir.File("memory.db");
  Episode e = MakeEpisode(clock, 2);
  {
    auto rw = Open(path);
    ASSERT_TRUE(rw.ok());
    ASSERT_TRUE((*rw)->CreateEpisode(e).ok());
  }
  auto ro = Open(path, /*read_only=*/true);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_TRUE((*ro)->GetEpisode(e.episode_id).ok());
  EXPECT_EQ((*ro)->CreateEpisode(MakeEpisode(clock, 1)).code(), StatusCode::kFailedPrecondition);
}

TEST(SqliteBackendTest, ManyThreadsOpeningANewFileAtOnceAllSucceed) {
  TempDir dir;
  std::string path = dir.File("memory.db");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto store = Open(path);
      if (!store.ok()) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto store = Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->SchemaVersion(), 1);
}

TEST(SqliteBackendTest, StoreStaysUsableAfterRefusedWrites) {
  TempDir dir;
  FakeClock clock;
  auto store = Open(dir.File("memory.db"));
  ASSERT_TRUE(store.ok());
  Episode e = MakeEpisode(clock, 1);
  ASSERT_TRUE((*store)->CreateEpisode(e).ok());
  EXPECT_FALSE((*store)->CreateEpisode(e).ok());
  EXPECT_FALSE((*store)->AppendStep(e.episode_id, testing::MakeStep(1)).ok());
  EXPECT_TRUE((*store)->AppendStep(e.episode_id, testing::MakeStep(0)).ok());
  EXPECT_TRUE((*store)->CheckHealth().ok());
}

}  // namespace
}  // namespace engram
