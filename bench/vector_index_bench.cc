// The vector index on its own (retrieval/vector_index.h; DESIGN §10): search latency
// p50/p95 and recall@10, the build from the store, loading from the file, and RSS, at
// 10k / 100k / 1M vectors of dimension 256.
//
//   vector_index_bench [--benchmark_filter=/100000] [google benchmark flags]
//   ENGRAM_BENCH_DIR=/tmp/engram-vector-index-bench (default): stores are generated once
//   per size there and reused by later runs (1M takes minutes to generate).
//
// The vectors are what engram stores by default: the hashing provider's embeddings
// (dimension 256) of synthetic task descriptions drawn from a few hundred topics, so
// they have the clustered structure of real text. Queries are other descriptions of the
// same kind. Recall@10 is measured against an exact scan of the same vectors.
//
// Search and build run with the graph's vectors in int8 (int8:1, the default) and float32
// (int8:0): recall@10 and p50/p95 side by side, and index_mib (VectorIndex::MemoryBytes).
// Run one size per process for clean RSS figures: the counters rss_mib (VmRSS after the
// step) and peak_rss_mib (VmHWM) are process-wide.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "engram/embedding.h"
#include "engram/sqlite_backend.h"
#include "retrieval/vector_index.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

constexpr int kDimension = 256;
constexpr size_t kQueries = 200;
constexpr size_t kCandidates = 50;  // what retrieval asks the index for (vector_candidates)

double ReadStatusMiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::strtod(line.c_str() + std::strlen(field), nullptr) / 1024.0;
  }
  return 0;
}
double RssMiB() { return ReadStatusMiB("VmRSS:"); }
double PeakRssMiB() { return ReadStatusMiB("VmHWM:"); }

void Die(const Status& s, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// Synthetic task descriptions: a topic (a component and a problem) plus a few words from a
// shared vocabulary, so texts of one topic are near each other and topics overlap.
class TextGenerator {
 public:
  explicit TextGenerator(uint32_t seed) : rng_(seed) {}
  std::string Next() {
    static const std::vector<std::string> kVerbs = {"fix", "debug", "add", "refactor", "speed up", "migrate",
                                                    "upgrade", "document", "test", "remove", "rewrite"};
    static const std::vector<std::string> kProblems = {
        "flaky test", "memory leak", "deadlock", "race condition", "timeout", "slow query", "crash on start",
        "401 response", "rate limiting", "cache miss", "n+1 queries", "broken build", "oom kill", "stale cache",
        "wrong encoding", "retry storm", "null pointer", "disk full", "cert expiry", "schema drift"};
    static const std::vector<std::string> kComponents = {
        "payments service", "auth middleware", "order importer", "search indexer", "user profile page",
        "billing job", "kafka consumer", "grpc gateway", "webpack config", "terraform module", "helm chart",
        "postgres replica", "redis cluster", "s3 uploader", "react table", "scheduler", "metrics exporter",
        "login form", "nightly etl", "docker image"};
    static const std::vector<std::string> kExtra = {
        "after the upgrade", "in production", "on ci", "under load", "for large tenants", "since monday",
        "with retries", "behind the proxy", "in the staging cluster", "on arm64", "when offline",
        "for the mobile app", "with tls", "during deploys", "with the new schema", "on windows"};
    auto pick = [&](const std::vector<std::string>& v) { return v[rng_() % v.size()]; };
    std::string s = pick(kVerbs) + " the " + pick(kProblems) + " in the " + pick(kComponents) + " " + pick(kExtra);
    // A ticket-like token: near-unique words, as real descriptions have.
    s += " ticket " + std::to_string(rng_() % 50'000);
    return s;
  }

 private:
  std::mt19937 rng_;
};

EmbeddingSpace Space(EmbeddingProvider& p) { return p.Space(); }

std::unique_ptr<EmbeddingProvider> Provider() {
  Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider({.dimension = kDimension}, nullptr);
  if (!p.ok()) Die(p.status(), "hashing provider");
  return *std::move(p);
}

std::vector<std::vector<float>> Embed(EmbeddingProvider& provider, const std::vector<std::string>& texts,
                                      EmbedPurpose purpose) {
  Result<std::vector<std::vector<float>>> v = provider.Embed(texts, purpose);
  if (!v.ok()) Die(v.status(), "embed");
  return *std::move(v);
}

// One store of n completed episodes with vectors, generated once and kept on disk.
struct Corpus {
  size_t n = 0;
  fs::path dir;
  std::unique_ptr<StorageBackend> store;
  std::unique_ptr<EmbeddingProvider> provider;
  std::vector<std::vector<float>> queries;
  std::vector<std::vector<std::string>> truth;  // exact top 10 per query
  std::string IndexPath() const { return (dir / "memory.db.vectors.hnsw").string(); }
};

std::unique_ptr<StorageBackend> OpenStore(const fs::path& path) {
  SqliteOptions options;
  options.path = path.string();
  options.durability = Durability::kNormal;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  if (!store.ok()) Die(store.status(), "open store");
  return *std::move(store);
}

void Generate(Corpus& c) {
  std::fprintf(stderr, "generating %zu episodes with vectors in %s ...\n", c.n, c.dir.c_str());
  auto started = Steady::now();
  FakeClock clock;
  TextGenerator gen(1234);
  EmbeddingSpace space = Space(*c.provider);
  if (Status s = c.store->SetEmbeddingSpace(space); !s.ok()) Die(s, "set space");
  constexpr size_t kBatch = 2'000;
  for (size_t done = 0; done < c.n;) {
    size_t take = std::min(kBatch, c.n - done);
    std::vector<Episode> episodes(take);
    std::vector<std::string> texts(take);
    for (size_t i = 0; i < take; ++i) {
      Episode& e = episodes[i];
      e.episode_id = NewUuidV7(clock);
      clock.Advance(std::chrono::seconds(1));
      e.task_description = texts[i] = gen.Next();
      e.task_type = TaskType::kDebugging;
      e.start_time = clock.Now();
      e.end_time = clock.Now() + std::chrono::minutes(5);
      Outcome o;
      o.kind = OutcomeKind::kSuccess;
      o.verdict = "done";
      e.outcome = o;
    }
    std::vector<std::vector<float>> vectors = Embed(*c.provider, texts, EmbedPurpose::kDocument);
    std::vector<EpisodeVector> stored(take);
    for (size_t i = 0; i < take; ++i) stored[i] = {episodes[i].episode_id, std::move(vectors[i])};
    if (Status s = c.store->PutEpisodes(episodes); !s.ok()) Die(s, "put episodes");
    if (Status s = c.store->PutVectors(space, stored); !s.ok()) Die(s, "put vectors");
    done += take;
    if (done % 100'000 == 0) std::fprintf(stderr, "  %zu\n", done);
  }
  std::fprintf(stderr, "generated in %.1f s\n", std::chrono::duration<double>(Steady::now() - started).count());
}

// The exact top 10 of every query, by streaming the stored vectors once.
void ComputeTruth(Corpus& c) {
  std::vector<std::vector<std::pair<float, std::string>>> best(c.queries.size());
  Result<std::unique_ptr<VectorStream>> stream = c.store->ListVectors(Space(*c.provider), 0);
  if (!stream.ok()) Die(stream.status(), "list vectors");
  for (;;) {
    Result<std::optional<EpisodeVector>> v = (*stream)->Next();
    if (!v.ok()) Die(v.status(), "list vectors");
    if (!v->has_value()) break;
    for (size_t q = 0; q < c.queries.size(); ++q) {
      float dot = 0;
      for (int d = 0; d < kDimension; ++d) dot += c.queries[q][d] * (**v).vector[d];
      auto& b = best[q];
      if (b.size() < 10 || dot > b.back().first) {
        b.emplace_back(dot, (**v).episode_id);
        std::sort(b.begin(), b.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        if (b.size() > 10) b.pop_back();
      }
    }
  }
  c.truth.resize(c.queries.size());
  for (size_t q = 0; q < c.queries.size(); ++q) {
    for (auto& [sim, id] : best[q]) c.truth[q].push_back(id);
  }
}

Corpus& GetCorpus(size_t n) {
  static std::map<size_t, std::unique_ptr<Corpus>> corpora;
  auto& slot = corpora[n];
  if (slot) return *slot;
  slot = std::make_unique<Corpus>();
  Corpus& c = *slot;
  c.n = n;
  const char* root = std::getenv("ENGRAM_BENCH_DIR");
  c.dir = fs::path(root != nullptr ? root : "/tmp/engram-vector-index-bench") / ("n" + std::to_string(n));
  fs::create_directories(c.dir);
  c.provider = Provider();
  c.store = OpenStore(c.dir / "memory.db");
  Result<StoreStats> stats = c.store->Stats();
  if (!stats.ok()) Die(stats.status(), "stats");
  if (stats->completed_episodes != static_cast<int64_t>(n)) {
    c.store.reset();
    fs::remove_all(c.dir);
    fs::create_directories(c.dir);
    c.store = OpenStore(c.dir / "memory.db");
    Generate(c);
  }
  TextGenerator gen(98765);
  std::vector<std::string> texts(kQueries);
  for (auto& t : texts) t = gen.Next();
  c.queries = Embed(*c.provider, texts, EmbedPurpose::kQuery);
  ComputeTruth(c);
  return c;
}

std::unique_ptr<VectorIndex> OpenIndex(Corpus& c, VectorIndexOptions options) {
  Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*c.store, Space(*c.provider), options);
  if (!index.ok()) Die(index.status(), "open index");
  return *std::move(index);
}

// Recall@10 of `index` against the exact top 10, over the corpus's queries.
double Recall(const Corpus& c, const VectorIndex& index) {
  double found = 0;
  for (size_t i = 0; i < c.queries.size(); ++i) {
    Result<std::vector<VectorHit>> hits = index.Search(c.queries[i], 10);
    if (!hits.ok()) Die(hits.status(), "search");
    for (const VectorHit& h : *hits) found += std::count(c.truth[i].begin(), c.truth[i].end(), h.episode_id);
  }
  return found / (10.0 * static_cast<double>(c.queries.size()));
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

VectorEncoding Encoding(int64_t arg) { return arg != 0 ? VectorEncoding::kInt8 : VectorEncoding::kFloat32; }

// The index file of one encoding (each encoding rebuilds a file of the other).
std::string IndexPath(const Corpus& c, VectorEncoding e) {
  return c.IndexPath() + (e == VectorEncoding::kInt8 ? "" : ".f32");
}

// Search latency of k = 50 (what retrieval asks for) and recall@10. Args: n, ef_search,
// filtered (1: accept one episode in ten, as a domain filter would), int8 (1: the graph
// stores int8 vectors, the default; 0: float32).
void BM_Search(benchmark::State& state) {
  Corpus& c = GetCorpus(static_cast<size_t>(state.range(0)));
  const bool filtered = state.range(2) != 0;
  const VectorEncoding encoding = Encoding(state.range(3));
  VectorIndexOptions options{.path = IndexPath(c, encoding), .ef_search = static_cast<int>(state.range(1)),
                             .encoding = encoding};
  std::unique_ptr<VectorIndex> index = OpenIndex(c, options);
  auto accept = [](std::string_view id) { return std::hash<std::string_view>()(id) % 10 == 0; };
  std::vector<double> us;
  size_t q = 0;
  for (auto _ : state) {
    const std::vector<float>& query = c.queries[q++ % c.queries.size()];
    auto t0 = Steady::now();
    Result<std::vector<VectorHit>> hits =
        filtered ? index->Search(query, kCandidates, accept) : index->Search(query, kCandidates);
    us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
    if (!hits.ok()) Die(hits.status(), "search");
    benchmark::DoNotOptimize(hits);
  }
  if (!filtered) state.counters["recall_at_10"] = Recall(c, *index);
  state.counters["p50_us"] = Percentile(us, 0.50);
  state.counters["p95_us"] = Percentile(us, 0.95);
  state.counters["p99_us"] = Percentile(us, 0.99);
  state.counters["rss_mib"] = RssMiB();
  state.counters["index_mib"] = static_cast<double>(index->MemoryBytes()) / (1024.0 * 1024.0);
  state.SetLabel(std::string(index->mode()));
}

// A rebuild: Open with no file reads every vector from the store and builds the graph.
// Args: n, ef_construction, int8 (as BM_Search).
void BM_BuildFromStore(benchmark::State& state) {
  Corpus& c = GetCorpus(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    double before = RssMiB();
    // Memory only: always rebuilds.
    std::unique_ptr<VectorIndex> index = OpenIndex(
        c, {.ef_construction = static_cast<int>(state.range(1)), .encoding = Encoding(state.range(2))});
    state.counters["index_rss_mib"] = RssMiB() - before;
    state.counters["index_mib"] = static_cast<double>(index->MemoryBytes()) / (1024.0 * 1024.0);
    state.counters["rss_mib"] = RssMiB();
    state.counters["peak_rss_mib"] = PeakRssMiB();
    state.counters["recall_at_10"] = Recall(c, *index);
    state.SetLabel(std::string(index->mode()));
  }
}

// Open from the saved file (written by an earlier Open), then the first search.
void BM_OpenFromFile(benchmark::State& state) {
  Corpus& c = GetCorpus(static_cast<size_t>(state.range(0)));
  { OpenIndex(c, {.path = c.IndexPath()}); }  // makes sure a current file exists
  double file_mib = static_cast<double>(fs::file_size(c.IndexPath())) / (1024.0 * 1024.0);
  for (auto _ : state) {
    std::unique_ptr<VectorIndex> index = OpenIndex(c, {.path = c.IndexPath()});
    benchmark::DoNotOptimize(index->Search(c.queries[0], 10));
  }
  state.counters["file_mib"] = file_mib;
}

// Save of a full index (temp file, fsync, rename).
void BM_Save(benchmark::State& state) {
  Corpus& c = GetCorpus(static_cast<size_t>(state.range(0)));
  // The corpus's own file: loaded, changed, saved back (still valid for the store).
  std::unique_ptr<VectorIndex> index = OpenIndex(c, {.path = c.IndexPath()});
  for (auto _ : state) {
    state.PauseTiming();
    // A change, so Save has something to write.
    if (Status s = index->Add({"bench-save", c.queries[0]}); !s.ok()) Die(s, "add");
    index->Remove("bench-save");
    state.ResumeTiming();
    if (Status s = index->Save(); !s.ok()) Die(s, "save");
  }
  state.counters["file_mib"] = static_cast<double>(fs::file_size(c.IndexPath())) / (1024.0 * 1024.0);
}

void SearchArgs(benchmark::internal::Benchmark* b) {
  for (int64_t n : {10'000, 100'000, 1'000'000}) {
    for (int64_t int8 : {0, 1}) {
      for (int64_t ef : {64, 128}) b->Args({n, ef, 0, int8});
      b->Args({n, 128, 1, int8});
    }
  }
  b->ArgNames({"n", "ef", "filtered", "int8"})->Iterations(2'000)->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_Search)->Apply(SearchArgs);
BENCHMARK(BM_BuildFromStore)
    ->ArgsProduct({{10'000, 100'000, 1'000'000}, {40, 64, 100}, {0, 1}})
    ->ArgNames({"n", "efc", "int8"})
    ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_OpenFromFile)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->ArgName("n")
    ->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Save)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->ArgName("n")
    ->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace engram

BENCHMARK_MAIN();
