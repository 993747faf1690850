// SqliteBackend's in-memory full-text mirror (storage/sqlite/sqlite_postings.h) answers
// exactly as FTS5's exhaustive bm25 query over the same file: on bench/eval's corpus and
// queries, after another process (a second backend on the file) adds, deletes and
// re-completes episodes, after a v3 file migrates, for hostile words, and while several
// threads search as another writes. The reference is the SQL query itself, run on a
// connection of the test's own.
#include <sqlite3.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "model/search_text.h"
#include "storage/sqlite/sqlite_backend.h"
#include "testing/episodes.h"
#include "testing/eval_corpus.h"
#include "testing/temp_dir.h"

namespace engram::testing {
namespace {

// FTS5 ranking every matching row: what SearchText answered before the mirror, without its
// staged shortcut.
constexpr const char* kExhaustiveSql =
    "SELECT d.episode_id, -episode_fts.rank FROM episode_fts JOIN episode_docs d ON d.doc_id = episode_fts.rowid "
    "WHERE episode_fts MATCH ?1 AND episode_fts.rank MATCH 'bm25(2.0, 1.0)' "
    "AND (?2 IS NULL OR d.domain = ?2) "
    "AND (?3 IS NULL OR d.domain IN (SELECT value FROM json_each(?3))) "
    "ORDER BY episode_fts.rank LIMIT ?4";

// The FTS5 query SqliteBackend builds for `words`: each word's runs of ASCII letters,
// digits and bytes >= 0x80, lower-cased and joined by spaces, quoted, OR-ed, deduplicated.
std::string Fts5Query(const std::vector<std::string>& words) {
  std::string query;
  std::set<std::string> seen;
  for (const std::string& word : words) {
    std::string text;
    bool gap = false;
    for (char ch : word) {
      auto c = static_cast<unsigned char>(ch);
      if (!(std::isalnum(c) && c < 0x80) && c < 0x80) {
        gap = true;
        continue;
      }
      if (gap && !text.empty()) text.push_back(' ');
      gap = false;
      text.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
    }
    if (text.empty() || !seen.insert(text).second) continue;
    if (!query.empty()) query += " OR ";
    query += "\"" + text + "\"";
  }
  return query;
}

struct Request {
  std::vector<std::string> words;
  size_t limit = 50;
  std::optional<std::string> domain;
  std::vector<std::string> allowed;
};

std::vector<TextHit> Exhaustive(const std::string& path, const Request& r) {
  std::vector<TextHit> hits;
  const std::string query = Fts5Query(r.words);
  if (query.empty() || r.limit == 0) return hits;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, kExhaustiveSql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_bind_text(stmt, 1, query.data(), static_cast<int>(query.size()), SQLITE_TRANSIENT);
  if (r.domain) sqlite3_bind_text(stmt, 2, r.domain->data(), static_cast<int>(r.domain->size()), SQLITE_TRANSIENT);
  const std::string allowed = nlohmann::json(r.allowed).dump();
  if (!r.allowed.empty()) sqlite3_bind_text(stmt, 3, allowed.data(), static_cast<int>(allowed.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 4, static_cast<int64_t>(r.limit));
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    hits.push_back(TextHit{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), sqlite3_column_double(stmt, 1)});
  }
  EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return hits;
}

int64_t SqlInt(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    v = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

void Sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

class SqlitePostingsTest : public ::testing::Test {
 protected:
  std::unique_ptr<StorageBackend> OpenStore(bool full_text_in_memory = true) {
    SqliteOptions options;
    options.path = path_;
    options.full_text_in_memory = full_text_in_memory;
    auto store = OpenSqliteBackend(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static sqlite::PostingsMirror& Mirror(StorageBackend& store) {
    auto* backend = dynamic_cast<sqlite::SqliteBackend*>(&store);
    EXPECT_NE(backend, nullptr);
    EXPECT_NE(backend->full_text_mirror(), nullptr);
    return *backend->full_text_mirror();
  }

  static std::vector<TextHit> Search(StorageBackend& store, const Request& r) {
    TextSearchRequest request;
    request.words = r.words;
    request.limit = r.limit;
    request.domain = r.domain;
    request.allowed_domains = r.allowed;
    auto hits = store.SearchText(request);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    return hits.ok() ? *hits : std::vector<TextHit>{};
  }

  // `store` answers `r` from its mirror (not FTS5), as the exhaustive FTS5 query does: the
  // same ids in the same order, the same scores. `in_place`: the mirror must catch up with
  // the store's changes within the search itself, not by a rebuild or background work.
  void ExpectMirrorAnswersLikeFts5(StorageBackend& store, const Request& r, bool in_place = false) {
    SCOPED_TRACE("query: " + ::testing::PrintToString(r.words) + (r.domain ? " in " + *r.domain : "") +
                 " limit " + std::to_string(r.limit));
    sqlite::PostingsMirror& mirror = Mirror(store);
    if (!mirror.Stats().ready) (void)Search(store, r);  // the first search starts the build
    mirror.WaitForBuild();
    int64_t before = mirror.Stats().answered;
    std::vector<TextHit> got = Search(store, r);
    const int64_t builds = mirror.Stats().builds;
    if (mirror.Stats().answered == before && !in_place) {
      // FTS5 answered: many documents were new, and the search left them to the
      // background catch-up. Once it is done the mirror must answer.
      ExpectSame(got, Exhaustive(path_, r));
      mirror.WaitForBuild();
      before = mirror.Stats().answered;
      got = Search(store, r);
    }
    EXPECT_EQ(mirror.Stats().answered, before + 1) << "FTS5 answered, not the mirror";
    if (in_place) {
      EXPECT_EQ(mirror.Stats().builds, builds) << "the mirror was rebuilt";
    }
    ExpectSame(got, Exhaustive(path_, r));
  }

  static void ExpectSame(const std::vector<TextHit>& got, const std::vector<TextHit>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].episode_id, want[i].episode_id) << "rank " << i;
      EXPECT_NEAR(got[i].score, want[i].score, 1e-9 * std::abs(want[i].score)) << "rank " << i;
    }
  }

  Episode Doc(const std::string& title, const std::string& body, const std::string& domain = "web-api") {
    return MakeSearchDoc(clock_, title, body, domain);
  }

  static void Put(StorageBackend& store, const std::vector<Episode>& episodes) {
    Status s = store.PutEpisodes(episodes);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TempDir dir_;
  std::string path_ = dir_.File("memory.db");
  FakeClock clock_{At(1'767'225'600'000)};
};

// Every eval query as the Retriever asks it (SearchTokens, 50 candidates), alone, in its
// domain, among allowed domains, and with a small limit.
TEST_F(SqlitePostingsTest, RanksLikeFts5OnTheEvalCorpus) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  ASSERT_GT(episodes.size(), 300u);
  Put(*store, episodes);
  size_t queries = 0;
  for (const nlohmann::json& q : ReadEvalJsonl("queries")) {
    Request r;
    r.words = SearchTokens(q.at("query").get<std::string>());
    ExpectMirrorAnswersLikeFts5(*store, r);
    if (q.contains("domain")) {
      r.domain = q["domain"].get<std::string>();
      ExpectMirrorAnswersLikeFts5(*store, r);
      r.allowed = {*r.domain, "general", "no-such-domain"};
      r.domain.reset();
      ExpectMirrorAnswersLikeFts5(*store, r);
      r.allowed.clear();
    }
    r.limit = 3;
    ExpectMirrorAnswersLikeFts5(*store, r);
    ++queries;
  }
  EXPECT_GT(queries, 100u);
  EXPECT_EQ(Mirror(*store).Stats().documents, static_cast<int64_t>(episodes.size()));
}

// GetTermStats (the hashing provider's IDF) from the built mirror equals FTS5's vocabulary
// counts, read by a second store that never searched (so its mirror is not built), before
// and after that second store deletes episodes.
TEST_F(SqlitePostingsTest, TermStatsMatchFts5) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  const std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  Put(*first, episodes);
  ExpectMirrorAnswersLikeFts5(*first, Request{{"test"}});
  auto second = OpenStore();
  ASSERT_NE(second, nullptr);
  std::vector<std::string> words;
  for (const nlohmann::json& q : ReadEvalJsonl("queries")) {
    for (std::string& w : SearchTokens(q.at("query").get<std::string>())) words.push_back(std::move(w));
  }
  words.insert(words.end(), {"no-such-word-anywhere", "x\"y", "", "error"});
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int64_t answered = Mirror(*first).Stats().answered;
    const int64_t term_stats = Mirror(*first).Stats().term_stats;
    auto mirrored = first->GetTermStats(words);
    auto fts5 = second->GetTermStats(words);
    ASSERT_TRUE(mirrored.ok()) << mirrored.status().ToString();
    ASSERT_TRUE(fts5.ok()) << fts5.status().ToString();
    EXPECT_FALSE(Mirror(*second).Stats().ready) << "term statistics must not start a build";
    EXPECT_EQ(mirrored->documents, fts5->documents);
    EXPECT_EQ(mirrored->doc_frequency, fts5->doc_frequency);
    EXPECT_EQ(Mirror(*first).Stats().answered, answered) << "term statistics are not searches";
    EXPECT_EQ(Mirror(*first).Stats().term_stats, term_stats + 1) << "FTS5 answered, not the mirror";
    EXPECT_EQ(Mirror(*second).Stats().term_stats, 0);
    if (round == 0) {
      for (size_t i = 0; i < episodes.size(); i += 4) ASSERT_TRUE(*second->DeleteEpisode(episodes[i].episode_id));
    }
  }
}

// Another process writes the file: appends, deletes, replaces the newest episode's text
// (which a bare INTEGER PRIMARY KEY would give the same doc_id), deletes the newest and adds
// one. The first process's mirror follows each change exactly.
TEST_F(SqlitePostingsTest, FollowsAnotherProcessesWrites) {
  auto first = OpenStore();
  auto second = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  episodes.resize(200);
  Put(*first, std::vector<Episode>(episodes.begin(), episodes.begin() + 100));
  const Request common{{"test", "error", "build", "fix"}};
  const Request fresh{{"zanzibar", "quetzal"}};
  ExpectMirrorAnswersLikeFts5(*first, common);

  Put(*second, std::vector<Episode>(episodes.begin() + 100, episodes.end()));
  ExpectMirrorAnswersLikeFts5(*first, common, true);

  ASSERT_TRUE(*second->DeleteEpisode(episodes[3].episode_id));
  ASSERT_TRUE(*second->DeleteEpisode(episodes[150].episode_id));
  ExpectMirrorAnswersLikeFts5(*first, common, true);

  // Re-complete the newest with other words.
  Episode newest = episodes.back();
  newest.task_description = "zanzibar quetzal test";
  Put(*second, {newest});
  ExpectMirrorAnswersLikeFts5(*first, fresh, true);
  ExpectMirrorAnswersLikeFts5(*first, common, true);
  EXPECT_EQ(Search(*first, fresh).size(), 1u);

  // Delete the newest, then add another: on a reused doc_id the mirror would keep the old text.
  ASSERT_TRUE(*second->DeleteEpisode(newest.episode_id));
  Episode other = Doc("quetzal feathers", "count the quetzal feathers");
  Put(*second, {other});
  ExpectMirrorAnswersLikeFts5(*first, fresh, true);
  const std::vector<TextHit> hits = Search(*first, fresh);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].episode_id, other.episode_id);

  // Its own writes too.
  Put(*first, {Doc("zanzibar test", "zanzibar")});
  ExpectMirrorAnswersLikeFts5(*first, fresh, true);
  ExpectMirrorAnswersLikeFts5(*second, fresh);
  EXPECT_EQ(Mirror(*first).Stats().documents, SqlInt(path_, "SELECT COUNT(*) FROM episode_docs"));
}

// Deleting a quarter of the documents rebuilds the mirror without them; it answers exactly
// before and after.
TEST_F(SqlitePostingsTest, DropsDeletedDocumentsByRebuilding) {
  auto first = OpenStore();
  auto second = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  Put(*first, episodes);
  const Request common{{"test", "error", "build", "fix", "deploy"}};
  ExpectMirrorAnswersLikeFts5(*first, common);
  const int64_t builds = Mirror(*first).Stats().builds;
  for (size_t i = 0; i < episodes.size(); i += 3) ASSERT_TRUE(*second->DeleteEpisode(episodes[i].episode_id));
  ExpectMirrorAnswersLikeFts5(*first, common);  // catches up with the dead marked, starts a rebuild
  Mirror(*first).WaitForBuild();
  EXPECT_GT(Mirror(*first).Stats().builds, builds);
  ExpectMirrorAnswersLikeFts5(*first, common);
  EXPECT_EQ(Mirror(*first).Stats().dead_documents, 0);
}

// Quotes, FTS5 syntax, bytes that are not UTF-8 and words past FTS5's 32,768-byte token cut,
// in documents and in queries: the same answers as FTS5 (a word the tokenizer cuts in two
// is a phrase, which FTS5 itself answers).
TEST_F(SqlitePostingsTest, HostileWordsAnswerAsFts5) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string huge(40'000, 'x');
  Put(*store, {Doc("caf\xc3\xa9 na\xefve \xff\xfe", "retry' quote \"near\" and or not"),
               Doc("xxx " + huge, std::string(32'768, 'x') + "y"), Doc("plain words", "retry retry")});
  for (const std::string& word :
       {std::string("\""), std::string("*"), std::string("NEAR"), std::string("AND"), std::string("OR"),
        std::string("-"), std::string(":"), std::string("^"), std::string("("), std::string("'"),
        std::string("retry'--"), std::string("retry'"), std::string("\xff\xfe"), std::string("na\xefve"),
        std::string("caf\xc3\xa9"), std::string("\xc3"), huge, std::string(32'768, 'x') + "zzz",
        std::string(32'767, 'x')}) {
    Request r;
    r.words = {word, "plain"};
    ExpectMirrorAnswersLikeFts5(*store, r);
  }
  // A phrase goes to FTS5: still the same hits.
  Request phrase;
  phrase.words = {"retry-quote"};
  ExpectSame(Search(*store, phrase), Exhaustive(path_, phrase));
  EXPECT_EQ(Search(*store, Request{{std::string(32'768, 'x') + "tail"}}).size(), 1u);
}

// Equal scores come in FTS5's order (rowid, the older document first), limit or not.
TEST_F(SqlitePostingsTest, TiesGoInFts5Order) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<Episode> docs;
  for (int i = 0; i < 40; ++i) docs.push_back(Doc(i % 3 == 0 ? "same words here" : "same words", "retry"));
  Put(*store, docs);
  ExpectMirrorAnswersLikeFts5(*store, Request{{"same", "retry"}, 100});
  ExpectMirrorAnswersLikeFts5(*store, Request{{"same"}, 7});
  ExpectMirrorAnswersLikeFts5(*store, Request{{"words", "here"}, 20});
}

// A v3 file (no next_doc, whose newest doc_id was deleted) migrates: numbering continues
// above every doc_id, and the mirror answers as FTS5.
TEST_F(SqlitePostingsTest, SchemaV3FileMigrates) {
  std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  episodes.resize(50);
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    Put(*store, episodes);
    ASSERT_TRUE(*store->DeleteEpisode(episodes[10].episode_id));
  }
  Sql(path_,
      "ALTER TABLE store_state DROP COLUMN next_doc; ALTER TABLE store_state DROP COLUMN unindexed; "
      "PRAGMA user_version = 3;");
  const int64_t max_doc = SqlInt(path_, "SELECT MAX(doc_id) FROM episode_docs");
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), 4);
  EXPECT_EQ(SqlInt(path_, "SELECT next_doc FROM store_state"), max_doc + 1);
  ExpectMirrorAnswersLikeFts5(*store, Request{{"test", "error", "build"}});
  Put(*store, {Doc("after the migration", "test")});
  EXPECT_EQ(SqlInt(path_, "SELECT MAX(doc_id) FROM episode_docs"), max_doc + 1);
  ExpectMirrorAnswersLikeFts5(*store, Request{{"test", "error", "build", "migration"}});
}

// Searches on several threads while another process writes: every answer succeeds, and the
// mirror ends exact.
TEST_F(SqlitePostingsTest, ConcurrentSearchesWhileAnotherProcessWrites) {
  auto reader = OpenStore();
  auto writer = OpenStore();
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(writer, nullptr);
  std::vector<Episode> episodes = EvalCorpusEpisodes(clock_);
  Put(*reader, std::vector<Episode>(episodes.begin(), episodes.begin() + 100));
  Mirror(*reader).WaitForBuild();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      TextSearchRequest request;
      request.words = {"test", "error", "fix"};
      request.limit = 20;
      while (!done.load()) {
        if (!reader->SearchText(request).ok()) ++failures;
      }
    });
  }
  for (size_t i = 100; i < episodes.size(); i += 20) {
    const size_t end = std::min(episodes.size(), i + 20);
    ASSERT_TRUE(writer->PutEpisodes(std::vector<Episode>(episodes.begin() + i, episodes.begin() + end)).ok());
    ASSERT_TRUE(*writer->DeleteEpisode(episodes[i - 50].episode_id));
  }
  done.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ExpectMirrorAnswersLikeFts5(*reader, Request{{"test", "error", "fix"}, 20});
}

// Closing a store while its mirror is being built stops the build (no hang, no crash).
TEST_F(SqlitePostingsTest, ClosingDuringTheBuildStopsIt) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    Put(*store, EvalCorpusEpisodes(clock_));
  }
  for (int i = 0; i < 5; ++i) {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    (void)Search(*store, Request{{"test"}});  // starts the build; closing stops it
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ExpectMirrorAnswersLikeFts5(*store, Request{{"test"}});
}

// Opening a store does not read its index: a CLI command that never searches pays nothing.
TEST_F(SqlitePostingsTest, OpeningDoesNotBuildUntilTheFirstSearch) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    Put(*store, EvalCorpusEpisodes(clock_));
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Mirror(*store).WaitForBuild();
  EXPECT_FALSE(Mirror(*store).Stats().ready);
  EXPECT_EQ(Mirror(*store).Stats().builds, 0);
  ExpectMirrorAnswersLikeFts5(*store, Request{{"test", "deploy"}});
  EXPECT_EQ(Mirror(*store).Stats().builds, 1);
}

// storage.full_text_in_memory = false: no mirror, and every search is FTS5's exhaustive
// answer, a store that writes included.
TEST_F(SqlitePostingsTest, TurnedOffFts5AnswersEverySearch) {
  auto store = OpenStore(/*full_text_in_memory=*/false);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(dynamic_cast<sqlite::SqliteBackend&>(*store).full_text_mirror(), nullptr);
  Put(*store, EvalCorpusEpisodes(clock_));
  for (const Request& r : {Request{{"test", "deploy"}}, Request{{"flaky", "timeout", "retry"}, 5},
                           Request{{"error"}, 50, std::string("web-api")}}) {
    ExpectSame(Search(*store, r), Exhaustive(path_, r));
  }
  const Request word{{"quokka"}};
  EXPECT_TRUE(Search(*store, word).empty());
  Put(*store, {Doc("Deploy the flaky quokka canary", "rolled back after the timeout")});
  ExpectSame(Search(*store, word), Exhaustive(path_, word));
  EXPECT_EQ(Search(*store, word).size(), 1u);
  // GetTermStats works without it too (FTS5's vocabulary).
  const std::vector<std::string> words = {"quokka", "deploy"};
  Result<TermStats> stats = store->GetTermStats(words);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_GT(stats->documents, 300);
  ASSERT_EQ(stats->doc_frequency.size(), 2u);
  EXPECT_EQ(stats->doc_frequency[0], 1);
}

}  // namespace
}  // namespace engram::testing
