// Turso vs SQLite (issue 10), over one corpus: the same generated episodes (bench/scale_corpus.h,
// seed 42) go into a SQLite file and into a Turso database, then each store is opened as
// `engram serve` opens it (server::OpenStore), without and with the LMDB cache in front,
// and gets the same measurements:
//   query_memory     Retriever::Retrieve, the engine of the tool, query cache off, the same
//                    queries (bench/eval's, every other one with a domain filter): p50/p95
//   complete         create_episode + --steps add_episode_step + complete_episode through
//                    Memory: complete_episode alone p50/p95, and the whole episode p50/p95
// and, on Turso without the cache, the HTTP requests each of those calls sent
// (HranaClient::requests_sent: reads included; the target is one round trip per tool call
// that writes). The vectors are computed once per store (hashing provider, dimension 256)
// before the first configuration of that store. Both stores commit at durability full as
// `engram serve` does (tursodb syncs its own way; bench/turso/run.sh prints its version).
//
//   turso_bench --turso http://127.0.0.1:PORT [--episodes 10000] [--queries 200]
//               [--completes 200] [--steps 3] [--eval bench/eval] [--dir /tmp/engram-turso-bench-PID]
//   bench/turso/run.sh BUILD_DIR   (a tursodb of its own on a fresh database, then this)
//
// The Turso database must hold no episodes. Run from the repository root (bench/eval) or
// pass --eval.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/scale_corpus.h"
#include "common/fake_clock.h"
#include "config/config.h"
#include "engram/clock.h"
#include "engram/embedding.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "retrieval/retriever.h"
#include "retrieval/vector_index.h"
#include "server/open_store.h"
#include "storage/turso/turso_backend.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using bench::CheckOrExit;
using bench::Percentile;
using bench::SecondsSince;

// Episodes per PutEpisodes while loading: one Hrana batch each.
constexpr size_t kBatch = 200;

struct Options {
  std::string turso;
  size_t episodes = 10'000;
  size_t queries = 200;
  size_t completes = 200;
  int steps = 3;
  std::string eval_dir = "bench/eval";
  std::string dir = "/tmp/engram-turso-bench-" + std::to_string(::getpid());
};

// One configuration's figures.
struct Row {
  std::string name;
  std::vector<double> query_ms, complete_ms, episode_ms;
  // Turso without the cache: requests per call.
  std::vector<double> create_requests, step_requests, complete_requests, query_requests;
};

// The store as `engram serve` opens it (HOME and XDG folders under `home`; no ENGRAM_*
// variable of this process applies, except ENGRAM_TURSO_TOKEN for a remote Turso).
std::unique_ptr<StorageBackend> OpenAsServe(const Options& o, bool turso, bool cache) {
  const std::string home = o.dir + "/home";
  fs::create_directories(home);
  ConfigInputs inputs;
  inputs.getenv = [home](const char* name) -> const char* {
    const std::string_view n(name);
    if (n == "HOME" || n == "XDG_DATA_HOME" || n == "XDG_CONFIG_HOME" || n == "XDG_CACHE_HOME") return home.c_str();
    if (n == "ENGRAM_TURSO_TOKEN") return std::getenv(name);
    return nullptr;
  };
  inputs.flags.push_back({"storage.db", o.dir + "/memory.db", "--db"});
  if (turso) inputs.flags.push_back({"storage.url", o.turso, "--store"});
  inputs.flags.push_back({"cache.enabled", cache ? "true" : "false", "--set"});
  Result<Config> config = LoadConfig(inputs);
  CheckOrExit(config.status(), "config");
  Result<std::unique_ptr<StorageBackend>> store = server::OpenStore(*config);
  CheckOrExit(store.status(), "open store");
  return *std::move(store);
}

// The Hrana client under `store` when it is a Turso store without a cache, else null.
const turso::HranaClient* ClientOf(StorageBackend& store) {
  auto* backend = dynamic_cast<turso::TursoBackend*>(&store);
  return backend == nullptr ? nullptr : &backend->client();
}

// Requests `client` sent while `call` ran (0 without a client).
template <typename Call>
double CountRequests(const turso::HranaClient* client, const Call& call) {
  const int64_t before = client == nullptr ? 0 : client->requests_sent();
  call();
  return client == nullptr ? 0 : static_cast<double>(client->requests_sent() - before);
}

// Embeds what the store has no vector for yet (the first configuration of each store).
void Embed(StorageBackend& store, const std::string& name) {
  FakeClock clock;
  HashingOptions hashing;
  hashing.dimension = 256;
  Result<std::unique_ptr<EmbeddingProvider>> provider = MakeHashingProvider(hashing, &store);
  CheckOrExit(provider.status(), "provider");
  Retriever retriever(store, clock, provider->get(), nullptr, RankingOptions{});
  const SteadyClock::time_point t0 = SteadyClock::now();
  Result<size_t> embedded = retriever.IndexPending(0);
  CheckOrExit(embedded.status(), "embed");
  std::printf("%s: embedded %zu episodes in %.1f s\n", name.c_str(), *embedded, SecondsSince(t0));
  std::fflush(stdout);
}

void TimeQueries(const Options& o, const bench::ScaleCorpus& corpus, StorageBackend& store, Row& row) {
  FakeClock clock;
  HashingOptions hashing;
  hashing.dimension = 256;
  Result<std::unique_ptr<EmbeddingProvider>> provider = MakeHashingProvider(hashing, &store);
  CheckOrExit(provider.status(), "provider");
  RankingOptions ranking;
  ranking.cache_entries = 0;  // measure the work, not the query cache
  Retriever retriever(store, clock, provider->get(), nullptr, ranking);
  Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(store, (*provider)->Space(), VectorIndexOptions{});
  CheckOrExit(index.status(), "vector index");
  retriever.SetIndex(index->get());
  const turso::HranaClient* client = ClientOf(store);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < o.queries; ++i) {
    RetrievalQuery q;
    q.text = corpus.Query(rng);
    if (i % 2 == 0) q.domain = corpus.Domain(rng);
    const SteadyClock::time_point t0 = SteadyClock::now();
    const double requests = CountRequests(client, [&] { CheckOrExit(retriever.Retrieve(q).status(), "query"); });
    row.query_ms.push_back(SecondsSince(t0) * 1000);
    if (client != nullptr) row.query_requests.push_back(requests);
  }
  retriever.SetIndex(nullptr);
}

// Live episodes through Memory: create, o.steps steps, complete (timed alone and whole).
// The episodes are the corpus's (seed 11), replayed with real timestamps.
void TimeCompletes(const Options& o, const bench::ScaleCorpus& corpus, StorageBackend& store, Row& row) {
  Memory memory(store, SystemClock(), /*events=*/nullptr);
  const turso::HranaClient* client = ClientOf(store);
  FakeClock clock;
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < o.completes; ++i) {
    const Episode e = corpus.Generate(rng, clock);
    const SteadyClock::time_point start = SteadyClock::now();
    std::string id;
    const double created = CountRequests(client, [&] {
      Result<std::string> made = memory.CreateEpisode(bench::ToNewEpisode(e));
      CheckOrExit(made.status(), "create_episode");
      id = *made;
    });
    double stepped = 0;
    for (int j = 0; j < o.steps; ++j) {
      stepped += CountRequests(client, [&] {
        CheckOrExit(memory.AddStep(id, bench::ToNewStep(e.steps[j % e.steps.size()])).status(), "add_episode_step");
      });
    }
    const SteadyClock::time_point complete_start = SteadyClock::now();
    const double completed = CountRequests(
        client, [&] { CheckOrExit(memory.CompleteEpisode(id, *e.outcome).status(), "complete_episode"); });
    row.complete_ms.push_back(SecondsSince(complete_start) * 1000);
    row.episode_ms.push_back(SecondsSince(start) * 1000);
    if (client != nullptr) {
      row.create_requests.push_back(created);
      row.step_requests.push_back(stepped / o.steps);
      row.complete_requests.push_back(completed);
    }
  }
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

bool ParseArgs(int argc, char** argv, Options& o) {
  const char* usage =
      "turso_bench --turso URL [--episodes N] [--queries N] [--completes N] [--steps N] [--eval DIR] [--dir DIR]";
  return bench::ParseFlags(
      argc, argv, usage,
      [&](const std::string& a, const std::string& v) {
        if (a == "--turso") {
          o.turso = v;
        } else if (a == "--episodes") {
          o.episodes = std::stoul(v);
        } else if (a == "--queries") {
          o.queries = std::stoul(v);
        } else if (a == "--completes") {
          o.completes = std::stoul(v);
        } else if (a == "--steps") {
          o.steps = std::stoi(v);
        } else if (a == "--eval") {
          o.eval_dir = v;
        } else if (a == "--dir") {
          o.dir = v;
        } else {
          return false;
        }
        return true;
      },
      [&] { return !o.turso.empty() && o.steps > 0 && o.episodes > 0; });
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  const bench::ScaleCorpus corpus = bench::ScaleCorpus::OpenOrExit("corpus", o.eval_dir);
  fs::remove_all(o.dir);
  fs::create_directories(o.dir);

  {
    std::unique_ptr<StorageBackend> sqlite = OpenAsServe(o, /*turso=*/false, /*cache=*/false);
    std::unique_ptr<StorageBackend> turso = OpenAsServe(o, /*turso=*/true, /*cache=*/false);
    Result<StoreStats> stats = turso->Stats();
    CheckOrExit(stats.status(), "turso stats");
    if (stats->episodes != 0) {
      std::fprintf(stderr, "the Turso database already holds %lld episodes: give a fresh one\n",
                   static_cast<long long>(stats->episodes));
      return 2;
    }
    // Load: generate each batch once and put it into both stores, timing each put alone.
    std::printf("loading %zu episodes (corpus vocabulary) in batches of %zu, load average %.2f\n", o.episodes, kBatch,
                bench::LoadAverage());
    std::fflush(stdout);
    FakeClock clock;
    std::mt19937_64 rng(42);
    double sqlite_s = 0, turso_s = 0;
    for (size_t have = 0; have < o.episodes;) {
      std::vector<Episode> batch;
      for (; batch.size() < kBatch && have < o.episodes; ++have) batch.push_back(corpus.Generate(rng, clock));
      SteadyClock::time_point t0 = SteadyClock::now();
      CheckOrExit(sqlite->PutEpisodes(batch), "load sqlite");
      sqlite_s += SecondsSince(t0);
      t0 = SteadyClock::now();
      CheckOrExit(turso->PutEpisodes(batch), "load turso");
      turso_s += SecondsSince(t0);
    }
    std::printf("load: sqlite %.0f episodes/s, turso %.0f episodes/s\n", static_cast<double>(o.episodes) / sqlite_s,
                static_cast<double>(o.episodes) / turso_s);
    Embed(*sqlite, "sqlite");
    Embed(*turso, "turso");
  }

  std::vector<Row> rows;
  for (bool turso : {false, true}) {
    for (bool cache : {false, true}) {
      Row row;
      row.name = std::string(turso ? "turso" : "sqlite") + (cache ? " + LMDB cache" : "");
      std::unique_ptr<StorageBackend> store = OpenAsServe(o, turso, cache);
      if (cache && AsLmdbCache(*store) == nullptr) row.name += " (OpenStore gave no cache)";
      TimeQueries(o, corpus, *store, row);
      TimeCompletes(o, corpus, *store, row);
      std::printf("%s: done, load average %.2f\n", row.name.c_str(), bench::LoadAverage());
      std::fflush(stdout);
      rows.push_back(std::move(row));
    }
  }

  std::printf("\n%zu episodes; %zu queries; %zu live episodes of %d steps each\n\n", o.episodes, o.queries,
              o.completes, o.steps);
  std::printf("| store | query_memory p50 ms | query_memory p95 ms | complete_episode p50 ms | "
              "complete_episode p95 ms | whole episode p50 ms | whole episode p95 ms |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r.name.c_str(), Percentile(r.query_ms, 0.5),
                Percentile(r.query_ms, 0.95), Percentile(r.complete_ms, 0.5), Percentile(r.complete_ms, 0.95),
                Percentile(r.episode_ms, 0.5), Percentile(r.episode_ms, 0.95));
  }
  for (const Row& r : rows) {
    if (r.complete_requests.empty()) continue;
    std::printf("\nHTTP requests per call on %s (reads included): create_episode %.2f, add_episode_step %.2f, "
                "complete_episode %.2f, query_memory %.2f\n",
                r.name.c_str(), Mean(r.create_requests), Mean(r.step_requests), Mean(r.complete_requests),
                Mean(r.query_requests));
  }
  std::printf("\nRSS %.0f MiB, load average %.2f\n", bench::RssMiB(), bench::LoadAverage());
  fs::remove_all(o.dir);
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
