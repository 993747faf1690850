// PostgreSQL vs SQLite at 100k episodes (issue 6), in one run over one corpus: the same
// generated episodes (bench/scale_corpus.h, seed 42) go into a SQLite file and into a
// PostgreSQL database, then each store gets the same measurements:
//   load            PutEpisodes in batches of 1,000 (one transaction each): episodes/s, steps/s
//   embed, index    Retriever::IndexPending (hashing provider, dimension 256) and a vector
//                   index built from the store (VectorIndex::Open), as `engram serve` starts
//   query_memory    Retriever::Retrieve, the engine of the tool, query cache off, the same
//                   queries (bench/eval's, every other one with a domain filter): p50/p95/max
//   complete        create_episode + --steps add_episode_step + complete_episode through
//                   Memory on the loaded store: complete_episode alone p50/p95, and the
//                   whole episode p50/p95
// Neither store has the LMDB cache in front: this compares the backends (cache_mix_bench
// measures the cache). SQLite loads at durability=normal; its completes are timed at
// --sqlite-durability (default full: fsync per commit, what `engram serve` uses) on a second
// handle to the same file. PostgreSQL's durability is the server's (synchronous_commit,
// fsync); bench/storage/run.sh prints them beside the figures.
//
//   storage_bench --pg 'host=/tmp/pg-bench dbname=bench user=postgres'
//                 [--episodes 100000] [--queries 300] [--completes 300] [--steps 3]
//                 [--pool-size 10] [--sqlite-durability full|normal] [--eval bench/eval]
//                 [--dir /tmp/engram-storage-bench-PID]
//   bench/storage/run.sh BUILD_DIR   (a throwaway cluster, then this and the other storage benches)
//
// The PostgreSQL database must hold no episodes (a fresh database: the figures are then
// for exactly --episodes). Run from the repository root (bench/eval) or pass --eval.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/scale_corpus.h"
#include "common/fake_clock.h"
#include "engram/clock.h"
#include "engram/embedding.h"
#include "engram/memory.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"
#include "retrieval/retriever.h"
#include "retrieval/vector_index.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using bench::CheckOrExit;
using bench::Percentile;
using bench::SecondsSince;

constexpr size_t kBatch = 1'000;

struct Options {
  std::string pg;
  size_t episodes = 100'000;
  size_t queries = 300;
  size_t completes = 300;
  int steps = 3;
  size_t pool_size = 10;
  Durability sqlite_durability = Durability::kFull;
  std::string eval_dir = "bench/eval";
  std::string dir = "/tmp/engram-storage-bench-" + std::to_string(::getpid());
};

// One store under test and its figures.
struct Subject {
  std::string name;
  std::unique_ptr<StorageBackend> store;
  double load_s = 0;
  double embed_s = 0;
  double index_s = 0;
  size_t embedded = 0;
  std::vector<double> query_ms;
  std::vector<double> complete_ms;
  std::vector<double> episode_ms;
};

// Embeds the store, builds its vector index and times the queries (same seed per store).
void TimeQueries(const Options& o, const bench::ScaleCorpus& corpus, Subject& s) {
  FakeClock clock;
  HashingOptions hashing;
  hashing.dimension = 256;
  Result<std::unique_ptr<EmbeddingProvider>> provider = MakeHashingProvider(hashing, s.store.get());
  CheckOrExit(provider.status(), "provider");
  RankingOptions ranking;
  ranking.cache_entries = 0;  // measure the work, not the query cache
  Retriever retriever(*s.store, clock, provider->get(), nullptr, ranking);
  SteadyClock::time_point t0 = SteadyClock::now();
  Result<size_t> embedded = retriever.IndexPending(0);
  CheckOrExit(embedded.status(), "embed");
  s.embed_s = SecondsSince(t0);
  s.embedded = *embedded;
  t0 = SteadyClock::now();
  Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*s.store, (*provider)->Space(), VectorIndexOptions{});
  CheckOrExit(index.status(), "vector index");
  s.index_s = SecondsSince(t0);
  retriever.SetIndex(index->get());
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < o.queries; ++i) {
    RetrievalQuery q;
    q.text = corpus.Query(rng);
    if (i % 2 == 0) q.domain = corpus.Domain(rng);
    t0 = SteadyClock::now();
    CheckOrExit(retriever.Retrieve(q).status(), "query");
    s.query_ms.push_back(SecondsSince(t0) * 1000);
  }
  retriever.SetIndex(nullptr);
}

// Live episodes through Memory on `store`: create, o.steps steps, complete (timed alone and
// whole). The episodes are the corpus's (seed 11), replayed with real timestamps.
void TimeCompletes(const Options& o, const bench::ScaleCorpus& corpus, StorageBackend& store, Subject& s) {
  Memory memory(store, SystemClock(), /*events=*/nullptr);
  FakeClock clock;
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < o.completes; ++i) {
    const Episode e = corpus.Generate(rng, clock);
    const SteadyClock::time_point start = SteadyClock::now();
    Result<std::string> id = memory.CreateEpisode(bench::ToNewEpisode(e));
    CheckOrExit(id.status(), "create_episode");
    for (int j = 0; j < o.steps; ++j) {
      CheckOrExit(memory.AddStep(*id, bench::ToNewStep(e.steps[j % e.steps.size()])).status(), "add_episode_step");
    }
    const SteadyClock::time_point complete_start = SteadyClock::now();
    CheckOrExit(memory.CompleteEpisode(*id, *e.outcome).status(), "complete_episode");
    s.complete_ms.push_back(SecondsSince(complete_start) * 1000);
    s.episode_ms.push_back(SecondsSince(start) * 1000);
  }
}

bool ParseArgs(int argc, char** argv, Options& o) {
  const char* usage =
      "storage_bench --pg CONNINFO [--episodes N] [--queries N] [--completes N] [--steps N]\n"
      "                     [--pool-size N] [--sqlite-durability full|normal] [--eval DIR] [--dir DIR]";
  return bench::ParseFlags(
      argc, argv, usage,
      [&](const std::string& a, const std::string& v) {
        if (a == "--pg") {
          o.pg = v;
        } else if (a == "--episodes") {
          o.episodes = std::stoul(v);
        } else if (a == "--queries") {
          o.queries = std::stoul(v);
        } else if (a == "--completes") {
          o.completes = std::stoul(v);
        } else if (a == "--steps") {
          o.steps = std::stoi(v);
        } else if (a == "--pool-size") {
          o.pool_size = std::stoul(v);
        } else if (a == "--sqlite-durability") {
          Result<Durability> d = ParseDurability(v);
          if (!d.ok()) return false;
          o.sqlite_durability = *d;
        } else if (a == "--eval") {
          o.eval_dir = v;
        } else if (a == "--dir") {
          o.dir = v;
        } else {
          return false;
        }
        return true;
      },
      [&] { return !o.pg.empty() && o.steps > 0 && o.episodes > 0; });
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  const bench::ScaleCorpus corpus = bench::ScaleCorpus::OpenOrExit("corpus", o.eval_dir);
  fs::remove_all(o.dir);
  fs::create_directories(o.dir);
  const std::string sqlite_path = o.dir + "/bench.db";

  std::vector<Subject> subjects(2);
  subjects[0].name = "sqlite";
  SqliteOptions sqlite;
  sqlite.path = sqlite_path;
  sqlite.durability = Durability::kNormal;
  Result<std::unique_ptr<StorageBackend>> opened = OpenSqliteBackend(sqlite);
  CheckOrExit(opened.status(), "open sqlite");
  subjects[0].store = *std::move(opened);
  subjects[1].name = "postgres";
  PostgresOptions pg;
  pg.conninfo = o.pg;
  pg.pool_size = o.pool_size;
  opened = OpenPostgresBackend(pg);
  CheckOrExit(opened.status(), "open postgres");
  subjects[1].store = *std::move(opened);
  Result<StoreStats> stats = subjects[1].store->Stats();
  CheckOrExit(stats.status(), "postgres stats");
  if (stats->episodes != 0) {
    std::fprintf(stderr, "the PostgreSQL database already holds %lld episodes: give a fresh one\n",
                 static_cast<long long>(stats->episodes));
    return 2;
  }

  // Load: generate each batch once and put it into both stores, timing each put alone.
  std::printf("loading %zu episodes (corpus vocabulary), load average %.2f\n", o.episodes, bench::LoadAverage());
  std::fflush(stdout);
  FakeClock clock;
  std::mt19937_64 rng(42);
  size_t steps = 0;
  for (size_t have = 0; have < o.episodes;) {
    std::vector<Episode> batch;
    for (; batch.size() < kBatch && have < o.episodes; ++have) {
      batch.push_back(corpus.Generate(rng, clock));
      steps += batch.back().steps.size();
    }
    for (Subject& s : subjects) {
      const SteadyClock::time_point t0 = SteadyClock::now();
      CheckOrExit(s.store->PutEpisodes(batch), ("load " + s.name).c_str());
      s.load_s += SecondsSince(t0);
    }
  }
  for (Subject& s : subjects) {
    TimeQueries(o, corpus, s);
    if (s.name == "sqlite") {
      // complete_episode at the durability `engram serve` would use, on a second handle.
      SqliteOptions live = sqlite;
      live.durability = o.sqlite_durability;
      Result<std::unique_ptr<StorageBackend>> handle = OpenSqliteBackend(live);
      CheckOrExit(handle.status(), "reopen sqlite");
      TimeCompletes(o, corpus, **handle, s);
      s.name += std::string(" (completes: durability ") + std::string(DurabilityName(o.sqlite_durability)) + ")";
    } else {
      TimeCompletes(o, corpus, *s.store, s);
    }
  }

  std::printf("\n%zu episodes, %zu steps; %zu queries; %zu live episodes of %d steps each\n\n", o.episodes, steps,
              o.queries, o.completes, o.steps);
  std::printf("| store | load ep/s | load steps/s | embed ep/s | index build s | query p50 ms | query p95 ms | "
              "query max ms | complete p50 ms | complete p95 ms | episode p50 ms | episode p95 ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Subject& s : subjects) {
    std::printf("| %s | %.0f | %.0f | %.0f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", s.name.c_str(),
                static_cast<double>(o.episodes) / s.load_s, static_cast<double>(steps) / s.load_s,
                static_cast<double>(s.embedded) / s.embed_s, s.index_s, Percentile(s.query_ms, 0.5),
                Percentile(s.query_ms, 0.95), Percentile(s.query_ms, 1.0), Percentile(s.complete_ms, 0.5),
                Percentile(s.complete_ms, 0.95), Percentile(s.episode_ms, 0.5), Percentile(s.episode_ms, 0.95));
  }
  std::printf("\nRSS %.0f MiB, load average %.2f\n", bench::RssMiB(), bench::LoadAverage());
  subjects.clear();
  fs::remove_all(o.dir);
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
