// What is particular to PostgresBackend beyond the shared conformance suites: secrets
// never shown, the full-text entries and term counts, hostile search words, merges from
// several stores, migrations (from v1, concurrent, guards), vector bytes, the pool bound. Cases that
// need a server use ENGRAM_TEST_PG (a schema per test) and skip loudly without it.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/postgres_backend.h"
#include "model/search_text.h"
#include "testing/episodes.h"
#include "testing/postgres.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The first column of the first row of `sql` run on `conninfo`, or "<error: ...>".
std::string QueryOne(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = std::string("<error: ") + PQerrorMessage(conn) + ">";
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = PQgetvalue(r, 0, 0);
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
      out = std::string("<error: ") + PQresultErrorMessage(r) + ">";
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

TEST(PostgresOptionsTest, ConninfoIsShownWithoutItsPassword) {
  EXPECT_TRUE(IsPostgresUrl("postgres://db/engram"));
  EXPECT_TRUE(IsPostgresUrl("postgresql://me@db/engram"));
  EXPECT_FALSE(IsPostgresUrl("/home/me/memory.db"));
  EXPECT_FALSE(IsPostgresUrl("host=/tmp dbname=x"));

  std::string url = MaskPostgresConninfo("postgresql://me:hunter2@db.internal:5433/engram?sslmode=require");
  EXPECT_THAT(url, Not(HasSubstr("hunter2")));
  EXPECT_THAT(url, HasSubstr("password=********"));
  EXPECT_THAT(url, HasSubstr("host=db.internal"));
  EXPECT_THAT(url, HasSubstr("dbname=engram"));

  std::string kv = MaskPostgresConninfo("host=/run/postgresql dbname=engram password='hunter 2' user=me");
  EXPECT_THAT(kv, Not(HasSubstr("hunter")));
  EXPECT_THAT(kv, HasSubstr("user=me"));
  EXPECT_EQ(MaskPostgresConninfo("host=/x password=hunter2 bogus"), "<invalid PostgreSQL connection string>");
}

TEST(PostgresOptionsTest, BadOptionsAndUnreachableServersFailWithoutThePassword) {
  PostgresOptions options;
  EXPECT_EQ(OpenPostgresBackend(options).status().code(), StatusCode::kInvalidArgument);

  options.conninfo = "host=/x password=hunter2 bogus";
  auto malformed = OpenPostgresBackend(options);
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(malformed.status().message(), Not(HasSubstr("hunter2")));

  options.conninfo = "host=/nonexistent-engram-socket-dir dbname=engram user=me password=hunter2";
  options.pool_size = 0;
  EXPECT_EQ(OpenPostgresBackend(options).status().code(), StatusCode::kInvalidArgument);
  options.pool_size = 2;
  auto unreachable = OpenPostgresBackend(options);
  EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.status().message(), HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(unreachable.status().message(), HasSubstr("/nonexistent-engram-socket-dir"));
  EXPECT_THAT(unreachable.status().message(), Not(HasSubstr("hunter2")));

  options.conninfo = "postgresql://me:hunter2@/engram?host=/nonexistent-engram-socket-dir";
  unreachable = OpenPostgresBackend(options);
  EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.status().message(), Not(HasSubstr("hunter2")));
}

// Cases against the server in ENGRAM_TEST_PG, each in a schema of its own.
class PostgresBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::kPgSkipMessage;
    auto conninfo = testing::TestPgSchema(dir_.path());
    ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
    conninfo_ = *conninfo;
  }

  std::unique_ptr<StorageBackend> Open(PostgresOptions options = {}) {
    if (options.conninfo.empty()) options.conninfo = conninfo_;
    auto r = OpenPostgresBackend(options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *std::move(r) : nullptr;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::string conninfo_;
};

TEST_F(PostgresBackendTest, LocationNeverShowsThePassword) {
  PostgresOptions options;
  options.conninfo = conninfo_ + " password=hunter2";  // the test cluster trusts local users
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Name(), "postgres");
  EXPECT_THAT(store->Location(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(store->Location(), HasSubstr("password=********"));
}

// The index holds the SearchDocument's words as they are (no parser, no stemming), title
// words weighted A and body words B, only for completed episodes, with a GIN index; the
// term counts follow every change.
TEST_F(PostgresBackendTest, FullTextEntryHoldsTheSearchDocumentOfCompletedEpisodes) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Episode e = testing::MakeEpisode(clock_, 1);
  e.task_description = "Repair the flaky websocket reconnections e2e";
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  auto entries = [&] { return QueryOne(conninfo_, "SELECT count(*) FROM episode_search"); };
  EXPECT_EQ(entries(), "0") << "an episode in progress is not indexed";

  Episode done = testing::Completed(e);
  done.reflection->insights = {"a heartbeat timer keeps proxies from dropping idle sockets ✓"};
  ASSERT_TRUE(store->CompleteEpisode(done).ok());
  EXPECT_EQ(entries(), "1");
  auto has = [&](const std::string& lexeme_and_weight) {
    return QueryOne(conninfo_, "SELECT count(*) FROM episode_search, unnest(document) AS u "
                               "WHERE u.lexeme = '" + lexeme_and_weight.substr(0, lexeme_and_weight.find(':')) +
                                   "' AND '" + lexeme_and_weight.substr(lexeme_and_weight.find(':') + 1) +
                                   "' = ANY(u.weights)");
  };
  EXPECT_EQ(has("websocket:A"), "1");
  EXPECT_EQ(has("reconnection:A"), "1");  // the plural rule, not English stemming
  EXPECT_EQ(has("e2e:A"), "1");           // kept whole; PostgreSQL's parser would split it
  EXPECT_EQ(has("heartbeat:B"), "1");
  EXPECT_EQ(has("✓:B"), "1");             // a symbol the parser would drop
  EXPECT_EQ(has("cargo:B"), "1");         // a step's tool
  EXPECT_EQ(has("the:A"), "0");           // a stop word
  // Looked up by name in this schema alone: pg_indexes would render the definition of every
  // index on the server, and another test dropping its schema meanwhile makes that fail
  // ("could not open relation with OID ...").
  EXPECT_EQ(QueryOne(conninfo_, "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                                "WHERE c.oid = to_regclass(quote_ident(current_schema()) || "
                                "'.episode_search_document')"),
            "gin");
  EXPECT_EQ(QueryOne(conninfo_, "SELECT docs FROM search_terms WHERE word = 'websocket'"), "1");
  EXPECT_EQ(QueryOne(conninfo_, "SELECT docs FROM search_terms WHERE word = ''"), "1");  // documents

  ASSERT_TRUE(*store->DeleteEpisode(e.episode_id));
  EXPECT_EQ(entries(), "0");
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM search_terms"), "0") << "counts that reach 0 go";
}

// Words reach PostgreSQL only as bound parameters, quoted inside the tsquery text, so no
// character of a word is syntax; words no lexeme can hold match nothing.
TEST_F(PostgresBackendTest, HostileSearchWordsNeverFail) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Episode e = testing::Completed(testing::MakeEpisode(clock_, 1));
  e.task_description = "quote's back\\slash it''s";
  ASSERT_TRUE(store->PutEpisodes(std::span<const Episode>(&e, 1)).ok());
  std::vector<std::string> hostile = {"'", "''", "\\", "'quote'", "a'b", "\"", "*", "NEAR", "AND", "OR", "NOT",
                                      "-", ":", ":*", "^", "(", ")", "&", "|", "!", "<->", "a:*", "x:A",
                                      "", std::string("nul\0byte", 8), "\xff\xfe", "caf\xc3", std::string(3000, 'z'),
                                      "'); DROP TABLE episodes; --"};
  for (const std::string& w : hostile) {
    auto hits = store->SearchText({.words = {w}});
    EXPECT_TRUE(hits.ok()) << "word [" << w << "]: " << hits.status().ToString();
    auto stats = store->GetTermStats(std::vector<std::string>{w});
    ASSERT_TRUE(stats.ok()) << "word [" << w << "]: " << stats.status().ToString();
    EXPECT_EQ(stats->documents, 1);
  }
  auto all = store->SearchText({.words = hostile});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  auto quote = store->SearchText({.words = {"quote"}});  // the tokenizer splits "quote's"
  ASSERT_TRUE(quote.ok());
  ASSERT_EQ(quote->size(), 1u);
  EXPECT_GT((*quote)[0].score, 0);
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM episodes"), "1");
}

// Term counts stay exact when many writers complete, replace and delete episodes that
// share words at once: each is checked against a count over the index itself.
TEST_F(PostgresBackendTest, TermCountsStayExactUnderConcurrentWriters) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4, kEpisodes = 15;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEpisodes; ++i) {
        Episode e = testing::MakeEpisode(SystemClock(), 2);
        e.task_description = "shared words plus thread" + std::to_string(t) + " item" + std::to_string(i % 3);
        if (!store->CreateEpisode(e).ok()) ++errors;
        if (!store->CompleteEpisode(testing::Completed(e)).ok()) ++errors;
        if (i % 5 == 0 && !store->DeleteEpisode(e.episode_id).ok()) ++errors;
        if (i % 5 == 1) {
          Episode replaced = testing::Completed(e);
          replaced.task_description = "replaced words only";
          if (!store->PutEpisodes(std::span<const Episode>(&replaced, 1)).ok()) ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  std::vector<std::string> words;  // as the index holds them: "shared" → "shar"
  for (const char* w : {"shared", "word", "replaced", "thread0", "item1", "cargo", "absent"}) {
    words.push_back(SearchTokens(w).at(0));
  }
  auto stats = store->GetTermStats(words);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->documents, kThreads * (kEpisodes - 3));
  EXPECT_EQ(std::to_string(stats->documents), QueryOne(conninfo_, "SELECT count(*) FROM episode_search"));
  for (size_t i = 0; i < words.size(); ++i) {
    EXPECT_EQ(std::to_string(stats->doc_frequency[i]),
              QueryOne(conninfo_, "SELECT count(*) FROM episode_search WHERE document @@ '" + words[i] + "'::tsquery"))
        << words[i];
  }
  EXPECT_EQ(stats->doc_frequency[0], kThreads * (kEpisodes - 6));
  EXPECT_EQ(stats->doc_frequency[6], 0);
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM search_terms WHERE docs <= 0"), "0");
}

// Four stores on one schema are four processes as far as PostgreSQL can tell (four
// pools): merges of one key from all of them, including the race to create it, lose
// nothing, and every store sees the others' generation.
TEST_F(PostgresBackendTest, MergesFromSeparateStoresLoseNoIncrement) {
  constexpr int kStores = 4, kMerges = 20;
  std::vector<std::unique_ptr<StorageBackend>> stores;
  for (int i = 0; i < kStores; ++i) {
    PostgresOptions options;
    options.pool_size = 2;
    stores.push_back(Open(options));
    ASSERT_NE(stores.back(), nullptr);
  }
  const int64_t before = *stores[0]->Generation();
  std::atomic<int> errors{0}, created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kStores; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kMerges; ++i) {
        std::vector<std::string> keys = {"error_recovery|timeout>retry|web-api", "unrelated-" + std::to_string(t)};
        bool made = false;
        Status s = stores[t]->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
          made = false;
          for (Pattern& p : patterns) {
            if (p.similarity_key == keys[0]) {
              ++p.occurrences;
              return OkStatus();
            }
          }
          Pattern p;
          p.pattern_id = NewUuidV7(SystemClock());
          p.type = PatternType::kErrorRecovery;
          p.similarity_key = keys[0];
          p.occurrences = 1;
          patterns.push_back(std::move(p));
          made = true;
          return OkStatus();
        });
        if (!s.ok()) {
          ++errors;
          ADD_FAILURE() << s.ToString();
        } else if (made) {
          ++created;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(created.load(), 1);
  for (auto& store : stores) {
    auto patterns = store->ListPatterns({.type = PatternType::kErrorRecovery});
    ASSERT_TRUE(patterns.ok());
    ASSERT_EQ(patterns->size(), 1u);
    EXPECT_EQ((*patterns)[0].occurrences, kStores * kMerges);
    EXPECT_GE(*store->Generation(), before + kStores * kMerges);
  }
}

// A store engram wrote at schema v1 (episodes with v1's search_tsv, no index tables):
// opening migrates it to v3 in order, indexes the completed episodes it holds and marks
// them pending extraction.
TEST_F(PostgresBackendTest, MigratesAVersion1Store) {
  Episode done = testing::Completed(testing::MakeEpisode(clock_, 2));
  done.task_description = "Migrate the websocket gateway";
  clock_.Advance(std::chrono::milliseconds(5));
  Episode running = testing::MakeEpisode(clock_, 1);
  running.task_description = "Migrate the websocket client";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    std::vector<Episode> batch = {done, running};
    ASSERT_TRUE(store->PutEpisodes(batch).ok());
  }
  // Back to exactly what v1 kept: its tables and columns, its version record.
  std::string v1 = QueryOne(conninfo_, R"sql(
    DROP TABLE pattern_attributions, heuristics, patterns, episode_vectors, engram_state, search_terms,
               episode_search;
    DROP FUNCTION engram_sync_search_terms();
    ALTER TABLE episodes DROP COLUMN extract_pending;
    ALTER TABLE episodes ADD COLUMN search_tsv tsvector NOT NULL DEFAULT ''::tsvector;
    UPDATE episodes SET search_tsv = to_tsvector('english', task_description);
    CREATE INDEX episodes_search ON episodes USING GIN (search_tsv);
    DELETE FROM engram_schema_migrations WHERE version > 1;
    SELECT string_agg(version::text, ',') FROM engram_schema_migrations)sql");
  ASSERT_EQ(v1, "1");

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), 4);
  EXPECT_EQ(QueryOne(conninfo_, "SELECT string_agg(version::text, ',' ORDER BY version) FROM engram_schema_migrations"),
            "1,2,3,4");
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                                "current_schema() AND column_name = 'search_tsv'"),
            "0");
  auto hits = store->SearchText({.words = {"websocket"}});
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].episode_id, done.episode_id);
  auto stats = store->GetTermStats(std::vector<std::string>{"websocket", "gateway", "client"});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->documents, 1);
  EXPECT_EQ(stats->doc_frequency, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(*store->PendingExtraction(10), std::vector<std::string>{done.episode_id});
  EXPECT_EQ(*store->GetEpisode(done.episode_id), done);
  EXPECT_TRUE(store->CheckHealth().ok());
  // Still a working store.
  ASSERT_TRUE(store->CompleteEpisode(testing::Completed(running)).ok());
  EXPECT_EQ(store->SearchText({.words = {"websocket"}})->size(), 2u);
}

// Vectors are stored as little-endian float32 bytes and come back bit for bit.
TEST_F(PostgresBackendTest, VectorsRoundTripBitForBit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Episode e = testing::Completed(testing::MakeEpisode(clock_, 1));
  ASSERT_TRUE(store->PutEpisodes(std::span<const Episode>(&e, 1)).ok());
  EmbeddingSpace space{"hashing", "hash-v1", 6};
  ASSERT_TRUE(store->SetEmbeddingSpace(space).ok());
  EpisodeVector v{e.episode_id, {1.0f, -0.0f, 1e-38f, 3.4e38f, 0.1f, -7.25f}, 0};
  ASSERT_TRUE(store->PutVectors(space, std::span<const EpisodeVector>(&v, 1)).ok());
  EXPECT_EQ(QueryOne(conninfo_, "SELECT encode(substr(vector, 1, 4), 'hex') FROM episode_vectors"), "0000803f");
  auto stream = store->ListVectors(space, 0);
  ASSERT_TRUE(stream.ok());
  auto got = (*stream)->Next();
  ASSERT_TRUE(got.ok() && got->has_value());
  ASSERT_EQ((*got)->vector.size(), 6u);
  EXPECT_EQ(std::memcmp((*got)->vector.data(), v.vector.data(), 6 * sizeof(float)), 0);
  EXPECT_GT((*got)->seq, 0);
  EXPECT_TRUE(store->EpisodesWithoutVector(space, "", 10)->empty());

  // Replacing the episode drops the vector of its old text (as SQLite does).
  ASSERT_TRUE(store->PutEpisodes(std::span<const Episode>(&e, 1)).ok());
  EXPECT_EQ(*store->EpisodesWithoutVector(space, "", 10), std::vector<std::string>{e.episode_id});
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM episode_vectors"), "0");
}

TEST_F(PostgresBackendTest, MigrationsAreRecordedAndConcurrentOpenersAgree) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      PostgresOptions options;
      options.conninfo = conninfo_;
      auto r = OpenPostgresBackend(options);
      if (r.ok() && (*r)->SchemaVersion() == 4) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(QueryOne(conninfo_, "SELECT string_agg(version::text, ',' ORDER BY version) FROM engram_schema_migrations"),
            "1,2,3,4");
}

TEST_F(PostgresBackendTest, NewerSchemaAndForeignTablesAreRefused) {
  ASSERT_NE(Open(), nullptr);
  QueryOne(conninfo_, "INSERT INTO engram_schema_migrations (version, description) VALUES (99, 'future')");
  PostgresOptions options;
  options.conninfo = conninfo_;
  auto newer = OpenPostgresBackend(options);
  EXPECT_EQ(newer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("newer engram"));

  auto other = testing::TestPgSchema(dir_.path() + "/foreign");
  ASSERT_TRUE(other.ok());
  QueryOne(*other, "CREATE TABLE episodes (id int)");
  options.conninfo = *other;
  auto foreign = OpenPostgresBackend(options);
  EXPECT_EQ(foreign.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.status().message(), HasSubstr("did not create"));
  EXPECT_EQ(QueryOne(*other, "SELECT count(*) FROM episodes"), "0");  // untouched
}

TEST_F(PostgresBackendTest, NulCharactersAreInvalidArgumentNotTruncated) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Episode e = testing::MakeEpisode(clock_, 1);
  e.task_description = std::string("before\0after", 12);
  EXPECT_EQ(store->CreateEpisode(e).code(), StatusCode::kInvalidArgument);
  Episode with_step = testing::MakeEpisode(clock_, 0);
  ASSERT_TRUE(store->CreateEpisode(with_step).ok());
  Step s = testing::MakeStep(0);
  s.result->output = std::string("a\0b", 3);
  EXPECT_EQ(store->AppendStep(with_step.episode_id, s).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Stats()->episodes, 1);
}

TEST_F(PostgresBackendTest, PoolNeverHoldsMoreConnectionsThanItsSize) {
  // A distinctive application_name tells this store's connections apart on a shared server.
  const std::string app = "engram_pool_" + std::to_string(reinterpret_cast<uintptr_t>(this));
  PostgresOptions options;
  options.conninfo = conninfo_ + " application_name=" + app;
  options.pool_size = 2;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  int most = 0;
  std::thread sampler([&] {
    while (!stop) {
      std::string n = testing::TestPgConninfo().empty()
                          ? "0"
                          : QueryOne(testing::TestPgConninfo(),
                                     "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'");
      most = std::max(most, std::atoi(n.c_str()));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 6; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        Episode e = testing::MakeEpisode(SystemClock(), 2);
        if (!store->CreateEpisode(e).ok()) ++errors;
        if (!store->GetEpisode(e.episode_id).ok()) ++errors;
      }
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  sampler.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_GE(most, 1);
  EXPECT_LE(most, 2);
  EXPECT_EQ(store->Stats()->episodes, 90);

  // An open stream holds one of the two; a call still gets the other, and the stream's
  // connection comes back when it is destroyed.
  {
    auto stream = store->ListEpisodes({.limit = 1});
    ASSERT_TRUE(stream.ok());
    ASSERT_TRUE(store->Stats().ok());
  }
  auto a = store->ListEpisodes({});
  auto b = store->ListEpisodes({});
  EXPECT_TRUE(a.ok() && b.ok());
}

}  // namespace
}  // namespace engram
