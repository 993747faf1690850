// Core speed goals of DESIGN §10, on a real SQLite file in a temp dir:
//   BM_EpisodeDurable  create + 10 steps + complete through Memory, one durable commit per
//                      call; p50/p95 per episode (and of complete_episode alone, the §10 row).
//   BM_BatchIngest     StorageBackend::PutEpisodes of 100 episodes x 10 steps per
//                      transaction; steps/s (target >= 20,000).
//   BM_GetEpisode      Memory::GetEpisode of a 10-step episode from a store of 10,000.
//   BM_GetEpisodeCached  the same reads through the LMDB cache (warm), with uncached reads
//                      of the same store timed in the same run: speedup = uncached / cached
//                      (target >= 5x).
//
//   make bench    (or build/bench/core_bench --benchmark_counters_tabular=true)
//
// Latencies are wall-clock (fsync waits use no CPU), so every benchmark uses real time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/ids.h"
#include "engram/clock.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "engram/types.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int kStepsPerEpisode = 10;

double Micros(SteadyClock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// The p-th percentile (0 < p <= 1) by nearest rank. Sorts `samples`.
double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(samples.size()) + 0.999999);
  return samples[std::clamp<size_t>(rank, 1, samples.size()) - 1];
}

std::unique_ptr<StorageBackend> OpenOrDie(const std::string& path, Durability durability) {
  SqliteOptions options;
  options.path = path;
  options.durability = durability;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  if (!store.ok()) {
    std::fprintf(stderr, "core_bench: cannot open %s: %s\n", path.c_str(), store.status().ToString().c_str());
    std::abort();
  }
  return std::move(store).value();
}

void Check(const Status& s, benchmark::State& state) {
  if (!s.ok()) state.SkipWithError(s.ToString().c_str());
}

// Arg 0: Durability::kFull (fsync per commit), 1: kNormal.
void BM_EpisodeDurable(benchmark::State& state) {
  const Durability durability = state.range(0) == 0 ? Durability::kFull : Durability::kNormal;
  testing::TempDir dir;
  std::unique_ptr<StorageBackend> store = OpenOrDie(dir.File("memory.db"), durability);
  Memory memory(*store, SystemClock(), /*events=*/nullptr);

  std::vector<double> episode_us, complete_us;
  for (auto _ : state) {
    const SteadyClock::time_point start = SteadyClock::now();
    NewEpisode ne;
    ne.task_description = "Fix the flaky async test";
    ne.task_type = TaskType::kDebugging;
    ne.context.domain = "web-api";
    ne.tags = {"bench"};
    Result<std::string> id = memory.CreateEpisode(std::move(ne));
    if (!id.ok()) {
      Check(id.status(), state);
      break;
    }
    for (int j = 1; j <= kStepsPerEpisode; ++j) {
      NewStep step;
      step.tool = j % 2 ? "cargo" : "edit_file";
      step.action = "step " + std::to_string(j);
      step.parameters_json = R"({"cmd":"cargo test","n":)" + std::to_string(j) + "}";
      step.result = StepResult{StepStatus::kSuccess, "test result: ok. 12 passed", std::nullopt};
      step.latency_ms = 120;
      step.tokens_used = 300;
      Result<int> n = memory.AddStep(*id, std::move(step));
      if (!n.ok()) {
        Check(n.status(), state);
        break;
      }
    }
    Outcome outcome;
    outcome.verdict = "tests pass";
    outcome.verification = Verification{12, 0, true, 0, 83.5};
    const SteadyClock::time_point complete_start = SteadyClock::now();
    Result<Episode> done = memory.CompleteEpisode(*id, std::move(outcome));
    const SteadyClock::time_point end = SteadyClock::now();
    if (!done.ok()) {
      Check(done.status(), state);
      break;
    }
    episode_us.push_back(Micros(end - start));
    complete_us.push_back(Micros(end - complete_start));
  }
  state.SetItemsProcessed(state.iterations());  // episodes/s
  state.counters["p50_us"] = Percentile(episode_us, 0.50);
  state.counters["p95_us"] = Percentile(episode_us, 0.95);
  state.counters["complete_p50_us"] = Percentile(complete_us, 0.50);
  state.counters["complete_p95_us"] = Percentile(complete_us, 0.95);
  state.SetLabel(std::string(DurabilityName(durability)));
}
BENCHMARK(BM_EpisodeDurable)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2.0);

// Args: episodes per transaction, durability (0 full, 1 normal).
void BM_BatchIngest(benchmark::State& state) {
  const size_t batch_size = static_cast<size_t>(state.range(0));
  const Durability durability = state.range(1) == 0 ? Durability::kFull : Durability::kNormal;
  testing::TempDir dir;
  std::unique_ptr<StorageBackend> store = OpenOrDie(dir.File("memory.db"), durability);

  std::vector<Episode> batch;
  for (size_t i = 0; i < batch_size; ++i) {
    batch.push_back(testing::Completed(testing::MakeEpisode(SystemClock(), kStepsPerEpisode)));
  }
  int64_t steps = 0;
  for (auto _ : state) {
    state.PauseTiming();  // fresh ids: every batch inserts new episodes, none replaces
    for (Episode& e : batch) e.episode_id = NewUuidV7(SystemClock());
    state.ResumeTiming();
    Status s = store->PutEpisodes(batch);
    if (!s.ok()) {
      Check(s, state);
      break;
    }
    steps += static_cast<int64_t>(batch_size) * kStepsPerEpisode;
  }
  state.SetItemsProcessed(steps);
  state.counters["steps_per_s"] = benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kIsRate);
  state.counters["episodes_per_s"] =
      benchmark::Counter(static_cast<double>(steps / kStepsPerEpisode), benchmark::Counter::kIsRate);
  state.SetLabel(std::string(DurabilityName(durability)));
}
BENCHMARK(BM_BatchIngest)
    ->Args({100, 0})
    ->Args({1000, 0})
    ->Args({100, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

// A store of 10,000 completed 10-step episodes, built once for every run of BM_GetEpisode.
struct ReadFixture {
  static constexpr int kEpisodes = 10'000;

  ReadFixture() {
    store = OpenOrDie(dir.File("memory.db"), Durability::kFull);
    std::vector<Episode> batch;
    for (int i = 0; i < kEpisodes; ++i) {
      batch.push_back(testing::Completed(testing::MakeEpisode(SystemClock(), kStepsPerEpisode)));
      ids.push_back(batch.back().episode_id);
      if (batch.size() == 500 || i + 1 == kEpisodes) {
        Status s = store->PutEpisodes(batch);
        if (!s.ok()) {
          std::fprintf(stderr, "core_bench: filling the read store: %s\n", s.ToString().c_str());
          std::abort();
        }
        batch.clear();
      }
    }
  }

  testing::TempDir dir;
  std::unique_ptr<StorageBackend> store;
  std::vector<std::string> ids;
};

// Built on first use, removed at exit; shared by the read benchmarks.
ReadFixture& SharedReads() {
  static ReadFixture fixture;
  return fixture;
}

void BM_GetEpisode(benchmark::State& state) {
  ReadFixture& fixture = SharedReads();
  Memory memory(*fixture.store, SystemClock(), /*events=*/nullptr);
  std::mt19937 rng(42);
  std::uniform_int_distribution<size_t> pick(0, fixture.ids.size() - 1);

  std::vector<double> latencies;
  for (auto _ : state) {
    const std::string& id = fixture.ids[pick(rng)];
    const SteadyClock::time_point start = SteadyClock::now();
    Result<Episode> e = memory.GetEpisode(id);
    latencies.push_back(Micros(SteadyClock::now() - start));
    if (!e.ok() || e->steps.size() != kStepsPerEpisode) {
      state.SkipWithError(e.ok() ? "wrong step count" : e.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["p50_us"] = Percentile(latencies, 0.50);
  state.counters["p95_us"] = Percentile(latencies, 0.95);
}
BENCHMARK(BM_GetEpisode)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The read store again, through an LMDB cache beside it that already holds every episode.
struct CachedReadFixture {
  explicit CachedReadFixture(ReadFixture& reads) {
    LmdbOptions options;
    options.path = reads.dir.File("memory.db.cache");
    options.max_entries = ReadFixture::kEpisodes;
    Result<std::unique_ptr<StorageBackend>> cached =
        OpenLmdbCache(options, OpenOrDie(reads.dir.File("memory.db"), Durability::kFull));
    if (!cached.ok()) {
      std::fprintf(stderr, "core_bench: cannot open the cache: %s\n", cached.status().ToString().c_str());
      std::abort();
    }
    store = *std::move(cached);
    for (const std::string& id : reads.ids) {  // warm: every read below is a hit
      if (!store->GetEpisode(id).ok()) std::abort();
    }
  }

  std::unique_ptr<StorageBackend> store;
};

void BM_GetEpisodeCached(benchmark::State& state) {
  ReadFixture* fixture = &SharedReads();
  static CachedReadFixture cached(*fixture);  // destroyed before the files are removed
  Memory uncached_memory(*fixture->store, SystemClock(), /*events=*/nullptr);
  Memory memory(*cached.store, SystemClock(), /*events=*/nullptr);
  std::mt19937 rng(42);
  std::uniform_int_distribution<size_t> pick(0, fixture->ids.size() - 1);

  // Uncached reads of the same store in this run, untimed by the framework, for the ratio.
  std::vector<double> uncached;
  for (int i = 0; i < 2000; ++i) {
    const std::string& id = fixture->ids[pick(rng)];
    const SteadyClock::time_point start = SteadyClock::now();
    Result<Episode> e = uncached_memory.GetEpisode(id);
    uncached.push_back(Micros(SteadyClock::now() - start));
    benchmark::DoNotOptimize(e);
  }

  const LmdbCacheMetrics before = AsLmdbCache(*cached.store)->Metrics();
  std::vector<double> latencies;
  for (auto _ : state) {
    const std::string& id = fixture->ids[pick(rng)];
    const SteadyClock::time_point start = SteadyClock::now();
    Result<Episode> e = memory.GetEpisode(id);
    latencies.push_back(Micros(SteadyClock::now() - start));
    if (!e.ok() || e->steps.size() != kStepsPerEpisode) {
      state.SkipWithError(e.ok() ? "wrong step count" : e.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(e);
  }
  const LmdbCacheMetrics after = AsLmdbCache(*cached.store)->Metrics();
  const double hits = static_cast<double>(after.hits - before.hits);
  const double misses = static_cast<double>(after.misses - before.misses);
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0 : sum / static_cast<double>(v.size());
  };
  const double cached_mean = mean(latencies), uncached_mean = mean(uncached);
  state.SetItemsProcessed(state.iterations());
  state.counters["p50_us"] = Percentile(latencies, 0.50);
  state.counters["p95_us"] = Percentile(latencies, 0.95);
  state.counters["uncached_p50_us"] = Percentile(uncached, 0.50);
  state.counters["speedup_p50"] = state.counters["uncached_p50_us"] / std::max(state.counters["p50_us"].value, 1e-9);
  state.counters["speedup_mean"] = uncached_mean / std::max(cached_mean, 1e-9);
  state.counters["hit_ratio"] = hits + misses > 0 ? hits / (hits + misses) : 0;
}
BENCHMARK(BM_GetEpisodeCached)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace engram

BENCHMARK_MAIN();
