// What is particular to PostgresBackend beyond the shared conformance suite: secrets
// never shown, the full-text column, the migration guards, the pool bound. Cases that
// need a server use ENGRAM_TEST_PG (a schema per test) and skip loudly without it.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/postgres_backend.h"
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

TEST_F(PostgresBackendTest, FullTextVectorCoversTaskReflectionAndOutcome) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Episode e = testing::MakeEpisode(clock_, 1);
  e.task_description = "Repair the flaky websocket reconnection";
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  auto matches = [&](const std::string& words) {
    return QueryOne(conninfo_, "SELECT count(*) FROM episodes WHERE search_tsv @@ plainto_tsquery('english', '" +
                                   words + "')");
  };
  EXPECT_EQ(matches("websocket reconnect"), "1");  // stemmed: reconnection → reconnect
  EXPECT_EQ(matches("heartbeat"), "0");

  Episode done = testing::Completed(e);
  done.reflection->insights = {"a heartbeat timer keeps proxies from dropping idle sockets"};
  done.outcome->verdict = "reconnects after server restarts";
  ASSERT_TRUE(store->CompleteEpisode(done).ok());
  EXPECT_EQ(matches("heartbeat proxies"), "1");      // reflection, in the same transaction
  EXPECT_EQ(matches("server restarts"), "1");        // outcome
  EXPECT_EQ(matches("websocket"), "1");              // the task is still there
  EXPECT_EQ(QueryOne(conninfo_, "SELECT count(*) FROM pg_indexes WHERE indexname = 'episodes_search' AND "
                                "schemaname = current_schema() AND indexdef LIKE '%USING gin%'"),
            "1");
}

TEST_F(PostgresBackendTest, MigrationsAreRecordedAndConcurrentOpenersAgree) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      PostgresOptions options;
      options.conninfo = conninfo_;
      auto r = OpenPostgresBackend(options);
      if (r.ok() && (*r)->SchemaVersion() == 1) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(QueryOne(conninfo_, "SELECT string_agg(version::text, ',') FROM engram_schema_migrations"), "1");
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
