// How long a write on one host stays unseen by another host's PostgresChangeListener: the
// delay from a PostgresBackend write returning (its COMMIT acknowledged) to the listener's
// on_change for it, over many writes, as p50 / p95 / p99 / max. This is the window in which
// another host's cache reads go to PostgreSQL instead of the cache (server/open_store.h).
// A negative delay means the notification arrived before the writer saw its COMMIT return.
//
//   pg_notify_bench --pg "host=/tmp/pg dbname=postgres" [--writes 2000]
//   (or ENGRAM_TEST_PG instead of --pg; the tables go to a schema of their own, dropped after)
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "engram/postgres_backend.h"

namespace engram {
namespace {

using SteadyClock = std::chrono::steady_clock;

int Exec(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
  PGresult* r = PQexec(conn, sql.c_str());
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : 1;
  if (ok != 0) std::fprintf(stderr, "%s: %s", sql.c_str(), PQerrorMessage(conn));
  PQclear(r);
  PQfinish(conn);
  return ok;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int Run(const std::string& base_conninfo, int writes) {
  const std::string schema = "engram_notify_bench_" + std::to_string(getpid());
  if (Exec(base_conninfo, "CREATE SCHEMA " + schema) != 0) return 1;
  PostgresOptions options;
  options.conninfo = base_conninfo + " options='-csearch_path=" + schema + "'";
  int rc = 0;
  {
    Result<std::unique_ptr<StorageBackend>> store = OpenPostgresBackend(options);
    Result<std::unique_ptr<PostgresChangeListener>> listener = OpenPostgresChangeListener(options);
    if (!store.ok() || !listener.ok()) {
      std::fprintf(stderr, "%s\n", (!store.ok() ? store.status() : listener.status()).ToString().c_str());
      Exec(base_conninfo, "DROP SCHEMA " + schema + " CASCADE");
      return 1;
    }
    std::mutex mu;
    std::condition_variable cv;
    std::map<int64_t, SteadyClock::time_point> arrived;  // generation -> when on_change ran
    (*listener)->Start({.on_change = [&](const PostgresChange& c) {
      auto now = SteadyClock::now();
      std::lock_guard<std::mutex> lock(mu);
      arrived[c.generation] = now;
      cv.notify_all();
    }});
    FakeClock clock;
    std::vector<double> after_ack_us, after_start_us;
    for (int i = 0; i < writes; ++i) {
      Episode e;
      e.episode_id = NewUuidV7(clock);
      e.task_description = "notify latency " + std::to_string(i);
      e.context.domain = "bench";
      e.start_time = clock.Now();
      const auto start = SteadyClock::now();
      Status s = (*store)->CreateEpisode(e);
      const auto acked = SteadyClock::now();
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        rc = 1;
        break;
      }
      Result<int64_t> generation = (*store)->Generation();
      if (!generation.ok()) {
        rc = 1;
        break;
      }
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return arrived.contains(*generation); })) {
        std::fprintf(stderr, "no notification for generation %lld within 10 s\n", static_cast<long long>(*generation));
        rc = 1;
        break;
      }
      const auto got = arrived[*generation];
      after_ack_us.push_back(std::chrono::duration<double, std::micro>(got - acked).count());
      after_start_us.push_back(std::chrono::duration<double, std::micro>(got - start).count());
    }
    (*listener)->Stop();
    if (!after_ack_us.empty()) {
      std::printf("writes: %zu (CreateEpisode, one transaction each; loopback)\n", after_ack_us.size());
      for (auto& [name, v] : {std::pair{"commit acknowledged -> on_change (us)", &after_ack_us},
                              std::pair{"write started -> on_change (us)", &after_start_us}}) {
        std::printf("%-40s p50 %8.1f  p95 %8.1f  p99 %8.1f  max %8.1f\n", name, Percentile(*v, 0.5),
                    Percentile(*v, 0.95), Percentile(*v, 0.99), *std::max_element(v->begin(), v->end()));
      }
    }
  }
  Exec(base_conninfo, "DROP SCHEMA " + schema + " CASCADE");
  return rc;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) {
  std::string conninfo;
  if (const char* env = std::getenv("ENGRAM_TEST_PG")) conninfo = env;
  int writes = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--pg") == 0) conninfo = argv[i + 1];
    else if (std::strcmp(argv[i], "--writes") == 0) writes = std::atoi(argv[i + 1]);
  }
  if (conninfo.empty() || writes <= 0) {
    std::fprintf(stderr, "usage: pg_notify_bench --pg CONNINFO (key=value form) [--writes N]\n");
    return 2;
  }
  return engram::Run(conninfo, writes);
}
