// The LMDB cache under a read/write mix (issue 6): several threads share one store, opened
// as `engram serve` opens it (server::OpenStore, default settings: durability full,
// cache.max_entries 10,000, TTL 1 h), and run, for --seconds after --warmup seconds:
//   80%  get_episode (Memory::GetEpisode) of an id drawn from a Zipf(--zipf) distribution
//        over the store's episodes in a fixed random popularity order (a new episode takes
//        a random rank: it may be hot at once)
//   15%  add_episode_step to one of this thread's open episodes, or complete_episode once
//        that episode has as many steps as its template (4-9)
//    5%  create_episode (it becomes one of this thread's open episodes)
// Each configuration reports the cache's hit ratio over the counted window (every
// GetEpisode the cache answers, reads and those inside the writes alike, from
// LmdbCache::Metrics), ops/s, and p50/p95/p99 of reads and p50/p95 of each write, and the
// same mix with the cache off, on the same store, for comparison:
//   sqlite + cache, sqlite (cache.enabled=false)
//   with --pg URL: postgres as OpenStore opens it (the cache when OpenStore puts it in
//   front of PostgreSQL; the row says "no cache" otherwise), and postgres with the cache off
// Each store first gets --episodes completed episodes of bench/scale_corpus.h (batches of
// 1,000); a configuration's writes stay in the store for the next one (cache off runs on a
// slightly larger store). The cache folder starts empty in each cached configuration: the
// warm-up fills it.
//
// With --read-batch N (> 1) each read takes N Zipf-drawn ids at once, as ranking reads its
// candidates: one StorageBackend::GetEpisodes call, or with --read-each true one GetEpisode
// per id (what the cache did for GetEpisodes before it batched its misses). Read latencies
// are then per batch.
//
//   cache_mix_bench [--episodes 10000] [--threads 4] [--seconds 10] [--warmup 3] [--zipf 0.99]
//                   [--sqlite true|false] [--pg postgresql://USER@/DB?host=/tmp/pg-bench]
//                   [--eval bench/eval] [--dir DIR] [--read-batch 1] [--read-each false]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/scale_corpus.h"
#include "common/fake_clock.h"
#include "common/mutex.h"
#include "config/config.h"
#include "engram/clock.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "server/open_store.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using bench::CheckOrExit;
using bench::Percentile;

struct Options {
  size_t episodes = 10'000;
  int threads = 4;
  double seconds = 10;
  double warmup = 3;
  double zipf = 0.99;
  bool sqlite = true;
  std::string pg;
  std::string eval_dir = "bench/eval";
  std::string dir = "/tmp/engram-cache-mix-" + std::to_string(::getpid());
  size_t read_batch = 1;
  bool read_each = false;
};

// The store's episode ids in popularity order (index 0 is the hottest) and a Zipf sampler
// over those ranks. Thread-safe.
class Popularity {
 public:
  Popularity(std::vector<std::string> ids, double s, std::mt19937_64& rng) : ids_(std::move(ids)) {
    std::shuffle(ids_.begin(), ids_.end(), rng);
    // The CDF over twice the initial ranks leaves room for the episodes the mix creates.
    cdf_.resize(ids_.size() * 2);
    double sum = 0;
    for (size_t r = 0; r < cdf_.size(); ++r) cdf_[r] = sum += 1.0 / std::pow(static_cast<double>(r + 1), s);
    for (double& c : cdf_) c /= sum;
  }

  std::string Pick(std::mt19937_64& rng) ENGRAM_LOCKS_EXCLUDED(mu_) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const size_t rank = static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    MutexLock lock(mu_);
    return ids_[rank % ids_.size()];
  }

  void Add(std::string id, std::mt19937_64& rng) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    const size_t at = rng() % (ids_.size() + 1);
    ids_.insert(ids_.begin() + static_cast<std::ptrdiff_t>(at), std::move(id));
  }

 private:
  std::vector<double> cdf_;  // constant after construction

  Mutex mu_;
  std::vector<std::string> ids_ ENGRAM_GUARDED_BY(mu_);
};

struct Latencies {
  std::vector<double> read, append, complete, create;
  size_t errors = 0;
  std::string first_error;

  void Merge(const Latencies& o) {
    read.insert(read.end(), o.read.begin(), o.read.end());
    append.insert(append.end(), o.append.begin(), o.append.end());
    complete.insert(complete.end(), o.complete.begin(), o.complete.end());
    create.insert(create.end(), o.create.begin(), o.create.end());
    if (first_error.empty()) first_error = o.first_error;
    errors += o.errors;
  }
};

// One thread of the mix until `stop_at`; latencies of operations started after `count_from`.
Latencies RunMix(const Options& opts, Memory& memory, Popularity& popularity, const bench::ScaleCorpus& corpus,
                 uint64_t seed, SteadyClock::time_point count_from, SteadyClock::time_point stop_at) {
  struct Open {
    std::string id;
    Episode plan;  // the generated episode it replays
    size_t done = 0;
  };
  std::mt19937_64 rng(seed);
  FakeClock clock;
  std::vector<Open> open;
  Latencies out;
  auto fail = [&](const Status& s) {
    ++out.errors;
    if (out.first_error.empty()) out.first_error = s.ToString();
  };
  auto create = [&]() -> Status {
    Open o{"", corpus.Generate(rng, clock), 0};
    ENGRAM_ASSIGN_OR_RETURN(o.id, memory.CreateEpisode(bench::ToNewEpisode(o.plan)));
    popularity.Add(o.id, rng);
    open.push_back(std::move(o));
    return OkStatus();
  };
  while (SteadyClock::now() < stop_at) {
    const int dice = static_cast<int>(rng() % 100);
    const SteadyClock::time_point t0 = SteadyClock::now();
    std::vector<double>* into;
    Status s;
    if (dice < 80) {
      into = &out.read;
      if (opts.read_batch <= 1) {
        s = memory.GetEpisode(popularity.Pick(rng)).status();
      } else {
        std::vector<std::string> ids;
        for (size_t k = 0; k < opts.read_batch; ++k) ids.push_back(popularity.Pick(rng));
        if (opts.read_each) {
          for (const std::string& id : ids) {
            if (s = memory.storage().GetEpisode(id).status(); !s.ok()) break;
          }
        } else {
          s = memory.storage().GetEpisodes(ids).status();
        }
      }
    } else if (dice < 95 && !open.empty()) {
      const size_t i = rng() % open.size();
      Open& o = open[i];
      if (o.done < o.plan.steps.size()) {
        into = &out.append;
        s = memory.AddStep(o.id, bench::ToNewStep(o.plan.steps[o.done++])).status();
      } else {
        into = &out.complete;
        s = memory.CompleteEpisode(o.id, *o.plan.outcome).status();
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
      }
    } else {
      into = &out.create;
      s = create();
    }
    if (!s.ok()) {
      fail(s);
    } else if (t0 >= count_from) {
      into->push_back(bench::SecondsSince(t0) * 1000);
    }
  }
  return out;
}

// Loads the corpus into the store once per store (seed 42), returning the ids.
std::vector<std::string> Load(StorageBackend& store, const bench::ScaleCorpus& corpus, size_t n) {
  FakeClock clock;
  std::mt19937_64 rng(42);
  std::vector<std::string> ids;
  while (ids.size() < n) {
    std::vector<Episode> batch;
    for (; batch.size() < 1'000 && ids.size() < n;) {
      batch.push_back(corpus.Generate(rng, clock));
      ids.push_back(batch.back().episode_id);
    }
    CheckOrExit(store.PutEpisodes(batch), "load");
  }
  return ids;
}

// The store as `engram serve` opens it with these settings (HOME and XDG folders under
// `dir`; no ENGRAM_* variable of this process applies).
std::unique_ptr<StorageBackend> OpenAsServe(const Options& o, bool postgres, bool cache, const std::string& home) {
  ConfigInputs inputs;
  inputs.getenv = [home](const char* name) -> const char* {
    const std::string_view n(name);
    if (n == "HOME" || n == "XDG_DATA_HOME" || n == "XDG_CONFIG_HOME") return home.c_str();
    return nullptr;
  };
  inputs.flags.push_back({"storage.db", o.dir + "/memory.db", "--db"});
  if (postgres) inputs.flags.push_back({"storage.url", o.pg, "--store"});
  inputs.flags.push_back({"cache.enabled", cache ? "true" : "false", "--set"});
  Result<Config> config = LoadConfig(inputs);
  CheckOrExit(config.status(), "config");
  Result<std::unique_ptr<StorageBackend>> store = server::OpenStore(*config);
  CheckOrExit(store.status(), "open store");
  return *std::move(store);
}

void RunConfiguration(const Options& o, const bench::ScaleCorpus& corpus, const std::string& name,
                      StorageBackend& store, const std::vector<std::string>& ids) {
  Memory memory(store, SystemClock(), /*events=*/nullptr);
  std::mt19937_64 rng(5);
  Popularity popularity(ids, o.zipf, rng);
  LmdbCache* cache = AsLmdbCache(store);
  const SteadyClock::time_point start = SteadyClock::now();
  const SteadyClock::time_point count_from =
      start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.warmup));
  const SteadyClock::time_point stop_at =
      count_from + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<Latencies> per_thread(static_cast<size_t>(o.threads));
  LmdbCacheMetrics before;
  std::thread metrics_at_count([&] {
    std::this_thread::sleep_until(count_from);
    if (cache != nullptr) before = cache->Metrics();
  });
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < o.threads; ++t) {
      threads.emplace_back([&, t] {
        per_thread[static_cast<size_t>(t)] = RunMix(o, memory, popularity, corpus, 100 + static_cast<uint64_t>(t),
                                                   count_from, stop_at);
      });
    }
  }
  metrics_at_count.join();
  Latencies all;
  for (const Latencies& l : per_thread) all.Merge(l);
  const size_t ops = all.read.size() + all.append.size() + all.complete.size() + all.create.size();
  std::string hit_ratio = "-";
  if (cache != nullptr) {
    const LmdbCacheMetrics after = cache->Metrics();
    const double hits = static_cast<double>(after.hits - before.hits);
    const double misses = static_cast<double>(after.misses - before.misses);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.3f (%.0f/%.0f, %llu evicted, %llu invalidated)", hits / std::max(hits + misses, 1.0),
                  hits, hits + misses, static_cast<unsigned long long>(after.evictions - before.evictions),
                  static_cast<unsigned long long>(after.invalidations - before.invalidations));
    hit_ratio = buf;
  }
  std::printf("| %s | %s | %.0f | %.3f | %.3f | %.3f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %zu |\n", name.c_str(),
              hit_ratio.c_str(), static_cast<double>(ops) / o.seconds, Percentile(all.read, 0.5),
              Percentile(all.read, 0.95), Percentile(all.read, 0.99), Percentile(all.append, 0.5),
              Percentile(all.append, 0.95), Percentile(all.complete, 0.5), Percentile(all.complete, 0.95),
              Percentile(all.create, 0.5), Percentile(all.create, 0.95), all.errors);
  if (!all.first_error.empty()) std::printf("  first error: %s\n", all.first_error.c_str());
  std::fflush(stdout);
}

bool ParseArgs(int argc, char** argv, Options& o) {
  const char* usage =
      "cache_mix_bench [--episodes N] [--threads N] [--seconds S] [--warmup S] [--zipf S] "
      "[--sqlite true|false] [--pg URL] [--eval DIR] [--dir DIR] [--read-batch N] [--read-each true|false]";
  return bench::ParseFlags(
      argc, argv, usage,
      [&](const std::string& a, const std::string& v) {
        if (a == "--episodes") {
          o.episodes = std::stoul(v);
        } else if (a == "--threads") {
          o.threads = std::stoi(v);
        } else if (a == "--seconds") {
          o.seconds = std::stod(v);
        } else if (a == "--warmup") {
          o.warmup = std::stod(v);
        } else if (a == "--zipf") {
          o.zipf = std::stod(v);
        } else if (a == "--sqlite") {
          if (v != "true" && v != "false") return false;
          o.sqlite = v == "true";
        } else if (a == "--pg") {
          o.pg = v;
        } else if (a == "--eval") {
          o.eval_dir = v;
        } else if (a == "--dir") {
          o.dir = v;
        } else if (a == "--read-batch") {
          o.read_batch = std::stoul(v);
        } else if (a == "--read-each") {
          if (v != "true" && v != "false") return false;
          o.read_each = v == "true";
        } else {
          return false;
        }
        return true;
      },
      [&] { return o.threads > 0 && o.seconds > 0 && o.episodes > 0 && (o.sqlite || !o.pg.empty()); });
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  const bench::ScaleCorpus corpus = bench::ScaleCorpus::OpenOrExit("corpus", o.eval_dir);
  fs::remove_all(o.dir);
  fs::create_directories(o.dir);
  std::printf("%zu episodes, %d threads, %.0f s counted after %.0f s warm-up, Zipf s=%.2f; load average %.2f\n\n",
              o.episodes, o.threads, o.seconds, o.warmup, o.zipf, bench::LoadAverage());
  if (o.read_batch > 1) {
    std::printf("reads: %zu ids each, %s\n\n", o.read_batch,
                o.read_each ? "one GetEpisode per id" : "one GetEpisodes call");
  }
  std::printf("| store | cache hit ratio (hits/lookups) | ops/s | read p50 ms | read p95 ms | read p99 ms | "
              "append p50/p95 ms | complete p50/p95 ms | create p50/p95 ms | errors |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<std::string> kinds;
  if (o.sqlite) kinds.push_back("sqlite");
  if (!o.pg.empty()) kinds.push_back("pg");
  for (const std::string& kind : kinds) {
    const std::string home = o.dir + "/" + kind;
    fs::create_directories(home);
    std::vector<std::string> ids;
    {
      std::unique_ptr<StorageBackend> plain = OpenAsServe(o, kind == "pg", /*cache=*/false, home);
      ids = Load(*plain, corpus, o.episodes);
    }
    const std::string label = kind == "pg" ? "postgres" : "sqlite";
    {
      std::unique_ptr<StorageBackend> store = OpenAsServe(o, kind == "pg", /*cache=*/true, home);
      RunConfiguration(o, corpus, label + (AsLmdbCache(*store) ? " + cache" : " (OpenStore gives no cache)"), *store,
                       ids);
      if (LmdbCache* cache = AsLmdbCache(*store)) {
        const std::string path = cache->CachePath();
        store.reset();
        fs::remove_all(path);  // the cache-off run writes around it: drop the copies
      }
    }
    std::unique_ptr<StorageBackend> store = OpenAsServe(o, kind == "pg", /*cache=*/false, home);
    RunConfiguration(o, corpus, label + ", cache off", *store, ids);
  }
  std::printf("\nload average %.2f\n", bench::LoadAverage());
  fs::remove_all(o.dir);
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
