// What only the SQLite store has: its file, its folder, and files that are not ours.
#include "engram/sqlite_backend.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "testing/episodes.h"
#include "model/search_text.h"
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
  EXPECT_EQ((*store)->SchemaVersion(), 4);
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

// ---- schema v2 and v3: the migration chain and the retrieval index ----

// The schema v1 files have, frozen here: the migrations must keep reading it whatever the
// current code writes.
constexpr const char* kV1Schema = R"sql(
CREATE TABLE episodes (
  episode_id       TEXT PRIMARY KEY,
  task_description TEXT NOT NULL,
  task_type        TEXT NOT NULL,
  domain           TEXT NOT NULL,
  context_json     TEXT NOT NULL,
  start_time       INTEGER NOT NULL,
  end_time         INTEGER,
  outcome_kind     TEXT,
  outcome_json     TEXT,
  reward_total     REAL,
  reward_json      TEXT,
  reflection_json  TEXT,
  pattern_ids_json TEXT NOT NULL DEFAULT '[]',
  tags_json        TEXT NOT NULL DEFAULT '[]',
  metadata_json    TEXT NOT NULL DEFAULT '{}',
  step_count       INTEGER NOT NULL DEFAULT 0,
  byte_size        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX episodes_by_domain ON episodes(domain, episode_id);
CREATE TABLE steps (
  episode_id      TEXT NOT NULL,
  step_number     INTEGER NOT NULL,
  timestamp       INTEGER NOT NULL,
  tool            TEXT NOT NULL,
  action          TEXT NOT NULL,
  parameters_json TEXT NOT NULL,
  result_status   TEXT,
  result_output   TEXT,
  result_message  TEXT,
  latency_ms      INTEGER,
  tokens_used     INTEGER,
  PRIMARY KEY (episode_id, step_number)
) WITHOUT ROWID;
PRAGMA application_id = 1701734258;
PRAGMA user_version = 1;
)sql";

int64_t SqlInt(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

std::vector<std::string> SearchIds(StorageBackend& store, std::vector<std::string> words) {
  TextSearchRequest request;
  request.words = std::move(words);
  auto hits = store.SearchText(request);
  EXPECT_TRUE(hits.ok()) << hits.status().ToString();
  std::vector<std::string> ids;
  if (hits.ok()) {
    for (const TextHit& h : *hits) ids.push_back(h.episode_id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// A file as engram wrote it at schema v1: `episodes` (some completed) written by today's
// code into a scratch store, then copied row for row into the frozen v1 tables.
struct V1File {
  std::string path;
  std::vector<Episode> episodes;
  std::vector<std::string> completed;  // ids, oldest first
};

V1File MakeV1File(TempDir& dir, FakeClock& clock) {
  V1File file;
  file.path = dir.File("v1.db");
  std::string scratch = dir.File("scratch.db");
  for (int i = 0; i < 5; ++i) {
    clock.Advance(std::chrono::milliseconds(10));
    Episode e = MakeEpisode(clock, 2, i % 2 ? "cli" : "web-api");
    if (i != 2) {
      e = testing::Completed(e);
      file.completed.push_back(e.episode_id);
    }
    file.episodes.push_back(e);
  }
  {
    auto store = Open(scratch);
    EXPECT_TRUE(store.ok());
    EXPECT_TRUE((*store)->PutEpisodes(file.episodes).ok());
  }
  Sql(file.path, kV1Schema);
  Sql(file.path, ("ATTACH '" + scratch + "' AS scratch; INSERT INTO episodes SELECT * FROM scratch.episodes; "
                  "INSERT INTO steps SELECT * FROM scratch.steps; DETACH scratch;").c_str());
  return file;
}

TEST(SqliteSchemaTest, V1FileIsMigratedToV3WithItsCompletedEpisodesIndexedAndPending) {
  TempDir dir;
  FakeClock clock;
  V1File v1 = MakeV1File(dir, clock);
  ASSERT_EQ(SqlInt(v1.path, "PRAGMA user_version"), 1);

  auto store = Open(v1.path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 4);
  EXPECT_EQ(SqlInt(v1.path, "PRAGMA user_version"), 4);
  for (const Episode& e : v1.episodes) {
    auto got = (*store)->GetEpisode(e.episode_id);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, e) << "migration leaves episodes as they were";
  }
  // Indexed: the completed ones only, title and body words alike.
  std::vector<std::string> completed = v1.completed;
  std::sort(completed.begin(), completed.end());
  EXPECT_EQ(SearchIds(**store, {"flaky"}), completed);
  EXPECT_EQ(SearchIds(**store, {"cargo"}), completed);
  auto stats = (*store)->GetTermStats(std::vector<std::string>{"flaky", "tokio"});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->documents, 4);
  EXPECT_EQ(stats->doc_frequency, (std::vector<int64_t>{4, 4}));
  // Pending extraction, oldest first.
  auto pending = (*store)->PendingExtraction(0);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_EQ(*pending, v1.completed);
  EXPECT_TRUE((*store)->CheckHealth().ok());

  // And it works as a v3 store: the unfinished episode completes into the index.
  const Episode& open = v1.episodes[2];
  ASSERT_TRUE((*store)->CompleteEpisode(testing::Completed(open)).ok());
  EXPECT_EQ(SearchIds(**store, {"flaky"}).size(), 5u);
  EXPECT_EQ((*store)->PendingExtraction(0)->size(), 5u);
  EXPECT_TRUE((*store)->CheckHealth().ok());
}

TEST(SqliteSchemaTest, ReopeningAMigratedFileMigratesNothingTwice) {
  TempDir dir;
  FakeClock clock;
  V1File v1 = MakeV1File(dir, clock);
  ASSERT_TRUE(Open(v1.path).ok());
  auto again = Open(v1.path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->GetTermStats(std::vector<std::string>{"flaky"})->doc_frequency[0], 4);
  EXPECT_EQ(SqlInt(v1.path, "SELECT COUNT(*) FROM episode_docs"), 4);
  EXPECT_EQ(SqlInt(v1.path, "SELECT COUNT(*) FROM extraction_pending"), 4);
}

TEST(SqliteSchemaTest, ManyThreadsOpeningAV1FileAtOnceMigrateItOnce) {
  TempDir dir;
  FakeClock clock;
  V1File v1 = MakeV1File(dir, clock);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto store = Open(v1.path);
      if (!store.ok() || (*store)->SchemaVersion() != 4) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(SqlInt(v1.path, "SELECT COUNT(*) FROM episode_docs"), 4);
  EXPECT_EQ(SqlInt(v1.path, "SELECT COUNT(*) FROM episode_fts"), 4);
  EXPECT_EQ(SqlInt(v1.path, "SELECT indexed FROM store_state"), 4);
}

TEST(SqliteSchemaTest, V2FileGetsTheLearningTablesAndMarks) {
  TempDir dir;
  FakeClock clock;
  std::string path = dir.File("memory.db");
  Episode done = testing::Completed(MakeEpisode(clock, 1));
  Episode open = MakeEpisode(clock, 1);
  {
    auto store = Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutEpisodes(std::vector<Episode>{done, open}).ok());
  }
  // Back to what a v2 file holds: no learning tables.
  Sql(path, "DROP TABLE patterns; DROP TABLE heuristics; DROP TABLE attributions; DROP TABLE extraction_pending; "
            "ALTER TABLE store_state DROP COLUMN next_doc; ALTER TABLE store_state DROP COLUMN unindexed; "
            "PRAGMA user_version = 2;");
  auto store = Open(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->SchemaVersion(), 4);
  EXPECT_EQ(*(*store)->PendingExtraction(0), std::vector<std::string>{done.episode_id});
  EXPECT_EQ(SearchIds(**store, {"flaky"}), std::vector<std::string>{done.episode_id});
  auto stats = (*store)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->patterns, 0);
  EXPECT_EQ(stats->heuristics, 0);
}

TEST(SqliteSchemaTest, ReadOnlyOpenOfAV1FileReadsEpisodesAndExplainsTheMissingIndex) {
  TempDir dir;
  FakeClock clock;
  V1File v1 = MakeV1File(dir, clock);
  auto ro = Open(v1.path, /*read_only=*/true);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ((*ro)->SchemaVersion(), 1);
  EXPECT_TRUE((*ro)->GetEpisode(v1.episodes[0].episode_id).ok());
  auto stats = (*ro)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->episodes, 5);
  EXPECT_EQ(stats->patterns, 0);
  TextSearchRequest request;
  request.words = {"flaky"};
  auto hits = (*ro)->SearchText(request);
  EXPECT_EQ(hits.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(hits.status().message().find("schema 1"), std::string_view::npos) << hits.status().ToString();
  EXPECT_EQ((*ro)->ListPatterns({}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*ro)->Generation().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*ro)->CheckHealth().ok());
  EXPECT_EQ(SqlInt(v1.path, "PRAGMA user_version"), 1) << "a read-only open changes nothing";
}

TEST(SqliteSchemaTest, IndexSurvivesVacuum) {
  TempDir dir;
  FakeClock clock;
  std::string path = dir.File("memory.db");
  std::vector<Episode> episodes;
  for (int i = 0; i < 6; ++i) {
    Episode e = testing::Completed(MakeEpisode(clock, 1));
    e.task_description = "word" + std::to_string(i) + " shared";
    episodes.push_back(e);
  }
  {
    auto store = Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutEpisodes(episodes).ok());
    // Holes in the rowids, so a renumbering VACUUM would move rows.
    ASSERT_TRUE(*(*store)->DeleteEpisode(episodes[1].episode_id));
    ASSERT_TRUE(*(*store)->DeleteEpisode(episodes[3].episode_id));
  }
  Sql(path, "VACUUM");
  auto store = Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->CheckHealth().ok());
  for (int i : {0, 2, 4, 5}) {
    EXPECT_EQ(SearchIds(**store, {"word" + std::to_string(i)}), std::vector<std::string>{episodes[i].episode_id});
  }
  ASSERT_TRUE(*(*store)->DeleteEpisode(episodes[4].episode_id));
  EXPECT_TRUE(SearchIds(**store, {"word4"}).empty());
  EXPECT_EQ(SearchIds(**store, SearchTokens("shared")).size(), 3u);
  EXPECT_TRUE((*store)->CheckHealth().ok());
}

TEST(SqliteSchemaTest, HealthCheckNoticesAnIndexThatDisagreesWithTheEpisodes) {
  TempDir dir;
  FakeClock clock;
  std::string path = dir.File("memory.db");
  Episode e = testing::Completed(MakeEpisode(clock, 1));
  {
    auto store = Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutEpisodes(std::span<const Episode>(&e, 1)).ok());
  }
  Sql(path, "DELETE FROM episode_docs");
  auto store = Open(path);
  ASSERT_TRUE(store.ok());
  Status s = (*store)->CheckHealth();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("full-text index"), std::string_view::npos) << s.ToString();
}

TEST(SqliteSchemaTest, VectorsAreLittleEndianFloat32Blobs) {
  TempDir dir;
  FakeClock clock;
  std::string path = dir.File("memory.db");
  Episode e = testing::Completed(MakeEpisode(clock, 1));
  EmbeddingSpace space{"hashing", "hash-v1", 2};
  {
    auto store = Open(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutEpisodes(std::span<const Episode>(&e, 1)).ok());
    ASSERT_TRUE((*store)->SetEmbeddingSpace(space).ok());
    std::vector<EpisodeVector> v = {{e.episode_id, {1.0f, -2.0f}}};
    ASSERT_TRUE((*store)->PutVectors(space, v).ok());
  }
  // 1.0f = 0x3f800000, -2.0f = 0xc0000000, low byte first.
  EXPECT_EQ(SqlInt(path, "SELECT hex(vector) = '0000803F000000C0' FROM episode_vectors"), 1);
  EXPECT_EQ(SqlInt(path, "SELECT space = 'hashing/hash-v1/2' FROM episode_vectors"), 1);
}

// A query whose words have many postings is answered in stages (rare words with common
// ones, rare words only, common words only); the stages' hits merge by score.
TEST(SqliteSchemaTest, LargeQueriesRunInStagesAndMergeByScore) {
  TempDir dir;
  FakeClock clock;
  SqliteOptions options;
  options.path = dir.File("memory.db");
  options.durability = Durability::kNormal;
  auto store = OpenSqliteBackend(options);
  ASSERT_TRUE(store.ok());
  auto doc = [&](const std::string& title) {
    Episode e = testing::Completed(MakeEpisode(clock, 0));
    e.task_description = title;  // and nothing in the body
    e.context.language.reset();
    e.context.framework.reset();
    e.context.tags.clear();
    e.tags.clear();
    e.outcome->verdict.clear();
    e.reflection.reset();
    return e;
  };
  // "common" has more postings than one query may rank exhaustively.
  for (int k = 0; k < 9; ++k) {
    std::vector<Episode> batch;
    for (int i = 0; i < 900; ++i) batch.push_back(doc("common " + std::to_string(k * 900 + i)));
    ASSERT_TRUE((*store)->PutEpisodes(batch).ok());
  }
  Episode rare_only = doc("zebra");  // the best hit: the shortest title holding the rare word
  Episode mixed = doc("zebra common");
  Episode mixed_longer = doc("zebra common again");
  std::vector<Episode> zebras = {mixed_longer, rare_only, mixed};
  ASSERT_TRUE((*store)->PutEpisodes(zebras).ok());
  const std::vector<std::string> words = {"zebra", "common"};
  auto search = [&](size_t limit, std::optional<std::string> domain = std::nullopt) {
    TextSearchRequest request;
    request.words = words;
    request.limit = limit;
    request.domain = std::move(domain);
    auto hits = (*store)->SearchText(request);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    std::vector<TextHit> out = hits.ok() ? *hits : std::vector<TextHit>{};
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_GT(out[i].score, 0);
      if (i > 0) EXPECT_GE(out[i - 1].score, out[i].score);
    }
    return out;
  };

  // Stage A finds the two mixed ones, stage B adds the rare-only one, which ranks first.
  std::vector<TextHit> three = search(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0].episode_id, rare_only.episode_id);
  EXPECT_EQ(three[1].episode_id, mixed.episode_id);
  EXPECT_EQ(three[2].episode_id, mixed_longer.episode_id);

  // Stage C fills the rest with documents holding only the common word.
  std::vector<TextHit> ten = search(10);
  ASSERT_EQ(ten.size(), 10u);
  EXPECT_EQ(ten[0].episode_id, rare_only.episode_id);
  std::set<std::string> ids;
  for (const TextHit& h : ten) ids.insert(h.episode_id);
  EXPECT_EQ(ids.size(), 10u) << "no episode twice";
  EXPECT_EQ(ids.count(mixed.episode_id) + ids.count(mixed_longer.episode_id), 2u);

  EXPECT_TRUE(search(10, "cli").empty()) << "the domain filter holds in every stage";

  // One word over the bound (alone, or with words in no document) has no second stage:
  // it is ranked exhaustively, never a malformed "(...) AND ()" query.
  for (const std::vector<std::string>& alone :
       {std::vector<std::string>{"common"}, std::vector<std::string>{"common", "nowhereword"}}) {
    TextSearchRequest request;
    request.words = alone;
    request.limit = 5;
    auto hits = (*store)->SearchText(request);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    EXPECT_EQ(hits->size(), 5u);
  }
}

}  // namespace
}  // namespace engram
