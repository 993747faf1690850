// The learning pipeline's speed (issue: learning pipeline), on a real SQLite file in a temp
// dir holding 10,000 patterns made by the real extractors from synthetic episodes:
//   BM_ExtractThroughput   the PatternProcessor started on a store with 2,000 completed,
//                          not yet extracted 10-step episodes: episodes/s until idle,
//                          and CPU ms per episode. Arg = worker threads.
//   BM_CompleteEpisode     Memory::CompleteEpisode of a 10-step episode (durable, fsync),
//                          p50/p95, with Arg 0 = no pipeline, 1 = pipeline idle (running, no
//                          backlog), 2 = pipeline busy (a backlog of 3,000 episodes being
//                          extracted throughout). The request path must not notice 2 vs 1.
//                          ENGRAM_BENCH_BATCH=n sets the extraction batch (default 32).
//   BM_RecommendPatterns   RecommendPatterns (no episode id) at 10,000 patterns: p50/p95.
//                          Arg 0 = reading the store each call (the CLI), 1 = through a
//                          PatternCatalog (the server); list_all = ListPatterns alone.
//   BM_ListPatterns        StorageBackend::ListPatterns at 10,000 patterns: p50/p95, Arg =
//                          the filter (0 none, 1 type, 2 domain, 3 limit 20, 4 min rate).
//   BM_ListPatternsPg      the same on PostgreSQL, in a schema of its own, when
//                          ENGRAM_TEST_PG names a server (skipped otherwise).
//
//   build/bench/learning_bench --benchmark_counters_tabular=true
//
// Latencies are wall-clock, so every benchmark uses real time.
#include <sys/resource.h>

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
#include "core/event_bus.h"
#include "engram/clock.h"
#include "engram/memory.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "learning/learning.h"
#include "testing/postgres.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kStoredPatterns = 10'000;
constexpr int kStepsPerEpisode = 10;
constexpr size_t kThroughputEpisodes = 2'000;
constexpr size_t kBusyBacklog = 3'000;

double Micros(SteadyClock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(samples.size()) + 0.999999);
  return samples[std::clamp<size_t>(rank, 1, samples.size()) - 1];
}

// User + system CPU time of this process, all threads.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "learning_bench: %s: %s\n", what, s.ToString().c_str());
  std::abort();
}

std::unique_ptr<StorageBackend> OpenOrDie(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  auto store = OpenSqliteBackend(options);
  if (!store.ok()) Die("open", store.status());
  return *std::move(store);
}

const std::vector<std::string> kTools = {
    "bash",     "edit_file", "read_file", "write_file", "grep",      "git",        "cargo",      "npm",
    "pytest",   "go",        "make",      "docker",     "kubectl",   "curl",       "psql",       "terraform",
    "eslint",   "tsc",       "mvn",       "gradle",     "helm",      "aws",        "jq",         "sed",
    "find",     "ls",        "cat",       "python",     "node",      "rustfmt",    "clippy",     "black",
    "mypy",     "ruff",      "jest",      "vitest",     "webpack",   "vite",       "pip",        "poetry"};
const std::vector<std::string> kVerbs = {"run", "check", "fix", "edit", "read", "update", "verify", "build",
                                         "deploy", "test", "lint", "format", "search", "install", "migrate"};
const std::vector<std::string> kNouns = {"parser",  "handler", "schema",   "config", "router",  "cache",
                                         "session", "token",   "migration", "query", "client",  "server",
                                         "worker",  "queue",   "index",    "api",    "docs",    "pipeline"};
const std::vector<std::string> kDomains = {"web-api", "cli", "data", "infra", "frontend", "ml", "mobile", "docs"};

// A completed 10-step episode drawn from `rng`: a random tool walk with an occasional
// error that the next steps fix.
Episode SyntheticEpisode(std::mt19937_64& rng, Clock& clock, size_t tool_pool = kTools.size()) {
  auto pick = [&](const std::vector<std::string>& v, size_t limit = SIZE_MAX) {
    return v[rng() % std::min(v.size(), limit)];
  };
  Episode e;
  e.episode_id = NewUuidV7(clock);
  e.task_description = pick(kVerbs) + " the " + pick(kNouns) + " " + pick(kNouns) + " in the " + pick(kNouns);
  e.task_type = static_cast<TaskType>(rng() % 7);
  e.context.domain = pick(kDomains);
  e.context.language = std::vector<std::string>{"rust", "python", "typescript", "go"}[rng() % 4];
  e.start_time = clock.Now();
  for (int i = 1; i <= kStepsPerEpisode; ++i) {
    Step s;
    s.step_number = i;
    s.timestamp = clock.Now();
    s.tool = pick(kTools, tool_pool);
    s.action = pick(kVerbs) + " " + pick(kNouns);
    s.result = StepResult{rng() % 6 == 0 ? StepStatus::kError : StepStatus::kSuccess, "ok", std::nullopt};
    if (s.result->status == StepStatus::kError) s.result->message = "error: " + pick(kNouns) + " failed";
    s.latency_ms = static_cast<int64_t>(rng() % 500);
    e.steps.push_back(std::move(s));
  }
  e.end_time = clock.Now();
  Outcome o;
  o.kind = rng() % 5 == 0 ? OutcomeKind::kFailure : OutcomeKind::kSuccess;
  if (o.kind == OutcomeKind::kFailure) o.reason = "still failing";
  e.outcome = o;
  e.reward = Reward{};
  e.reflection = Reflection{};
  return e;
}

// Fills `store` with kStoredPatterns patterns made by the real extractors and merge.
void SeedPatterns(StorageBackend& store, Clock& clock) {
  ExtractorRegistry registry;
  if (Status s = RegisterBuiltinExtractors(registry); !s.ok()) Die("register", s);
  std::mt19937_64 rng(42);
  LearningOptions options;
  std::vector<Pattern> patterns;
  while (patterns.size() < kStoredPatterns) {
    // Batches of episodes per merge: MergeObservations indexes the whole vector per call.
    std::vector<PatternObservation> obs;
    for (int i = 0; i < 500; ++i) {
      for (PatternObservation& o : ExtractObservations(registry, SyntheticEpisode(rng, clock))) obs.push_back(std::move(o));
    }
    std::vector<std::string> targets;
    for (const PatternObservation& o : obs) targets.push_back(o.similarity_key);
    MergeObservations(patterns, obs, targets, options, clock);
  }
  patterns.resize(kStoredPatterns);
  Status s = store.MergePatterns({}, [&](std::vector<Pattern>& into) {
    into = patterns;
    return OkStatus();
  });
  if (!s.ok()) Die("seed patterns", s);
}

// Completed, not yet extracted episodes in the store (PutEpisodes marks them pending).
void PutPending(StorageBackend& store, Clock& clock, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Episode> batch;
  for (size_t i = 0; i < n; ++i) {
    // A smaller tool pool so the new episodes also merge with each other, as real ones do.
    batch.push_back(SyntheticEpisode(rng, clock, 8));
    if (batch.size() == 500 || i + 1 == n) {
      if (Status s = store.PutEpisodes(batch); !s.ok()) Die("put episodes", s);
      batch.clear();
    }
  }
}

void BM_ExtractThroughput(benchmark::State& state) {
  const size_t workers = static_cast<size_t>(state.range(0));
  double episodes = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    testing::TempDir dir;
    auto store = OpenOrDie(dir.File("memory.db"));
    SeedPatterns(*store, SystemClock());
    PutPending(*store, SystemClock(), kThroughputEpisodes, 7);
    LearningOptions options;
    options.workers = workers;
    PatternProcessor processor(*store, SystemClock(), nullptr, options);
    if (Status s = RegisterBuiltinExtractors(processor.extractors()); !s.ok()) Die("register", s);
    state.ResumeTiming();
    const double cpu_before = ProcessCpuSeconds();
    const auto start = SteadyClock::now();
    if (Status s = processor.Start(); !s.ok()) Die("start", s);
    processor.WaitIdle();
    const auto elapsed = SteadyClock::now() - start;
    cpu_seconds += ProcessCpuSeconds() - cpu_before;
    state.PauseTiming();
    ProcessorStats stats = processor.Stats();
    if (stats.extracted != kThroughputEpisodes) {
      std::fprintf(stderr, "learning_bench: extracted %llu of %zu\n",
                   static_cast<unsigned long long>(stats.extracted), kThroughputEpisodes);
    }
    episodes += static_cast<double>(stats.extracted);
    seconds += std::chrono::duration<double>(elapsed).count();
    processor.Stop();
    state.ResumeTiming();
  }
  state.counters["episodes_per_s"] = episodes / std::max(seconds, 1e-9);
  // CPU time (all threads) per extracted episode: what other load on the machine does not skew.
  state.counters["cpu_ms_per_episode"] = 1000 * cpu_seconds / std::max(episodes, 1.0);
  state.counters["stored_patterns"] = static_cast<double>(kStoredPatterns);
}
BENCHMARK(BM_ExtractThroughput)->Arg(1)->Arg(2)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_CompleteEpisode(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));  // 0 none, 1 idle, 2 busy
  testing::TempDir dir;
  auto store = OpenOrDie(dir.File("memory.db"));
  SeedPatterns(*store, SystemClock());
  if (mode == 2) PutPending(*store, SystemClock(), kBusyBacklog, 11);
  EventBus bus;
  Memory memory(*store, SystemClock(), &bus);
  std::unique_ptr<PatternProcessor> processor;
  if (mode > 0) {
    LearningOptions options;
    // ENGRAM_BENCH_BATCH: episodes per extraction transaction (learning.batch_size), to
    // compare how long one batch holds the write lock against the completions waiting.
    if (const char* batch = std::getenv("ENGRAM_BENCH_BATCH")) options.batch_size = std::strtoul(batch, nullptr, 10);
    processor = std::make_unique<PatternProcessor>(*store, SystemClock(), &bus, options);
    if (Status s = RegisterBuiltinExtractors(processor->extractors()); !s.ok()) Die("register", s);
    if (Status s = processor->Start(); !s.ok()) Die("start", s);
  }
  std::mt19937_64 rng(99);
  std::vector<double> latencies;
  uint64_t extracted_during = 0;
  const uint64_t extracted_before = processor ? processor->Stats().extracted : 0;
  for (auto _ : state) {
    state.PauseTiming();
    Episode planned = SyntheticEpisode(rng, SystemClock(), 8);
    auto id = memory.CreateEpisode({.task_description = planned.task_description,
                                    .task_type = planned.task_type,
                                    .context = planned.context});
    if (!id.ok()) Die("create", id.status());
    for (const Step& s : planned.steps) {
      NewStep ns{.tool = s.tool, .action = s.action, .result = s.result, .latency_ms = s.latency_ms};
      if (auto n = memory.AddStep(*id, ns); !n.ok()) Die("step", n.status());
    }
    Outcome outcome = *planned.outcome;
    state.ResumeTiming();
    const auto start = SteadyClock::now();
    auto done = memory.CompleteEpisode(*id, std::move(outcome));
    latencies.push_back(Micros(SteadyClock::now() - start));
    if (!done.ok()) Die("complete", done.status());
  }
  if (processor) {
    ProcessorStats stats = processor->Stats();
    extracted_during = stats.extracted - extracted_before;
    state.counters["backlog_at_end"] = static_cast<double>(stats.queue_depth + stats.in_flight);
    auto pending = store->PendingExtraction(kBusyBacklog + 1);
    state.counters["pending_at_end"] = pending.ok() ? static_cast<double>(pending->size()) : -1;
  }
  state.counters["extracted_meanwhile"] = static_cast<double>(extracted_during);
  state.counters["p50_us"] = Percentile(latencies, 0.50);
  state.counters["p95_us"] = Percentile(latencies, 0.95);
  bus.Flush();
  if (processor) processor->Stop();
}
BENCHMARK(BM_CompleteEpisode)->Arg(0)->Arg(1)->Arg(2)->Iterations(400)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_RecommendPatterns(benchmark::State& state) {
  const bool use_catalog = state.range(0) == 1;
  testing::TempDir dir;
  auto store = OpenOrDie(dir.File("memory.db"));
  SeedPatterns(*store, SystemClock());
  PatternCatalog catalog(*store);
  if (use_catalog) {
    if (Status s = catalog.Refresh(); !s.ok()) Die("catalog", s);
  }
  std::mt19937_64 rng(5);
  std::vector<double> latencies;
  size_t returned = 0;
  for (auto _ : state) {
    RecommendRequest req;
    req.task_description = kVerbs[rng() % kVerbs.size()] + " the failing " + kNouns[rng() % kNouns.size()] + " " +
                           kNouns[rng() % kNouns.size()];
    req.domain = kDomains[rng() % kDomains.size()];
    req.limit = 10;
    const auto start = SteadyClock::now();
    auto recs = RecommendPatterns(*store, SystemClock(), req, LearningOptions{}, use_catalog ? &catalog : nullptr);
    latencies.push_back(Micros(SteadyClock::now() - start));
    if (!recs.ok()) Die("recommend", recs.status());
    returned += recs->size();
  }
  // What reading every pattern from the store costs on its own, for comparison.
  std::vector<double> list_us;
  for (int i = 0; i < 5; ++i) {
    const auto start = SteadyClock::now();
    auto all = store->ListPatterns(PatternFilter{});
    list_us.push_back(Micros(SteadyClock::now() - start));
    if (!all.ok()) Die("list", all.status());
  }
  state.counters["list_all_p50_us"] = Percentile(list_us, 0.50);
  state.counters["p50_us"] = Percentile(latencies, 0.50);
  state.counters["p95_us"] = Percentile(latencies, 0.95);
  state.counters["mean_returned"] = static_cast<double>(returned) / static_cast<double>(std::max<size_t>(1, latencies.size()));
}
BENCHMARK(BM_RecommendPatterns)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2.0);

// StorageBackend::ListPatterns at 10,000 patterns (what the CLI, the catalog's reloads,
// the processor's key index and decay read): p50/p95 of one call. Arg 0 = every pattern,
// 1 = one type, 2 = one domain, 3 = the first 20 (a LIMIT), 4 = success rate >= 0.99.
void ListPatternsCase(benchmark::State& state, StorageBackend* store) {
  const int mode = static_cast<int>(state.range(0));
  PatternFilter filter;
  if (mode == 1) filter.type = PatternType::kDecisionPoint;
  if (mode == 2) filter.domain = "web-api";
  if (mode == 3) filter.limit = 20;
  if (mode == 4) filter.min_success_rate = 0.99;
  std::vector<double> latencies;
  size_t returned = 0;
  for (auto _ : state) {
    const auto start = SteadyClock::now();
    auto patterns = store->ListPatterns(filter);
    latencies.push_back(Micros(SteadyClock::now() - start));
    if (!patterns.ok()) Die("list", patterns.status());
    returned = patterns->size();
  }
  state.counters["returned"] = static_cast<double>(returned);
  state.counters["p50_us"] = Percentile(latencies, 0.50);
  state.counters["p95_us"] = Percentile(latencies, 0.95);
}

void BM_ListPatterns(benchmark::State& state) {
  testing::TempDir dir;
  auto store = OpenOrDie(dir.File("memory.db"));
  SeedPatterns(*store, SystemClock());
  ListPatternsCase(state, store.get());
}
BENCHMARK(BM_ListPatterns)->DenseRange(0, 4)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(1.0);

void BM_ListPatternsPg(benchmark::State& state) {
  if (testing::TestPgConninfo().empty()) {
    state.SkipWithError("ENGRAM_TEST_PG is unset");
    return;
  }
  // One seeded schema serves every Arg.
  static std::unique_ptr<StorageBackend> store = [] {
    Result<std::string> conninfo = testing::TestPgSchema("learning_bench_list_patterns");
    if (!conninfo.ok()) Die("pg schema", conninfo.status());
    PostgresOptions options;
    options.conninfo = *conninfo;
    auto opened = OpenPostgresBackend(options);
    if (!opened.ok()) Die("open pg", opened.status());
    if (Status s = (*opened)->ResetLearning(); !s.ok()) Die("reset", s);
    SeedPatterns(**opened, SystemClock());
    return *std::move(opened);
  }();
  ListPatternsCase(state, store.get());
}
BENCHMARK(BM_ListPatternsPg)->DenseRange(0, 4)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(1.0);

}  // namespace
}  // namespace engram

BENCHMARK_MAIN();
