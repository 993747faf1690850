// How retrieval cost grows with the store (issue 4, DESIGN §10): generates synthetic
// completed episodes, ingests them with the full-text index on, embeds them (hashing
// provider), builds the vector index, then times hybrid query_memory-style retrievals
// with the query cache off. Prints one row per size.
//
//   retrieval_scale_bench [--sizes 10000,100000,1000000] [--queries 300] [--dimension 256]
//                         [--vocabulary corpus|synthetic] [--eval bench/eval] [--dir /tmp/engram-scale]
//                         [--expansion on|concepts|off] [--reuse]
//
// --reuse keeps the store in --dir between runs: it is not removed at the start or the
// end, and only the episodes it lacks are ingested (the same seed replays the episodes it
// has without storing them), so a 100k or 1M store is built once. Its ingest columns then
// count only the new episodes.
//
// --expansion concepts (default) ranks with query expansion as `engram serve` does with no
// config file: the built-in concept map, default weights, WordNet off
// (retrieval.wordnet_dir is empty). on also opens WordNet from /usr/share/wordnet: the
// cost of expanding with it (its facets weigh retrieval.weight_wordnet, 0 by default).
// off measures ranking without expansion.
//
// --vocabulary corpus (default) builds episodes from bench/eval's episodes (words swapped
// between them, a unique ticket number each) and asks bench/eval's queries: word
// frequencies of real coding text. synthetic uses a ~100-word vocabulary in which every
// word is in a quarter of the episodes: a worst case for the full-text index.
//
// Sizes grow one store: the 100k row is the 10k store plus 90k more episodes. Each row:
// ingest rate (episodes and steps per second, batches of 1,000 per transaction), embedding
// rate, vector index build time (Open from the store: a rebuild), query p50/p95/max, and the
// process RSS after the queries; a last table splits that RSS (anonymous vs file-backed, the
// vector index's share). The store, cache, index and provider are opened with the defaults
// of `engram serve` without a config file (config/config.h): SQLite with
// storage.durability = full behind the LMDB cache with cache.max_entries = 10,000, the
// hashing provider at embedding.dimension, the index with retrieval.exact_below.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/scale_corpus.h"
#include "common/fake_clock.h"
#include "config/config.h"
#include "engram/embedding.h"
#include "engram/lmdb_cache.h"
#include "engram/sqlite_backend.h"
#include "model/search_text.h"
#include "retrieval/retriever.h"
#include "semantics/query_expander.h"
#include "retrieval/vector_index.h"
#include "storage/sqlite/sqlite_backend.h"
#include "storage/sqlite/sqlite_postings.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using Clock_ = std::chrono::steady_clock;
using bench::CheckOrExit;
using bench::Percentile;

constexpr size_t kBatch = 1'000;

double Seconds(Clock_::time_point since) { return bench::SecondsSince(since); }

// The process's resident memory from /proc/self/status, MiB: all of it, the anonymous part
// (heap, stacks: what engram allocates) and the file-backed part (mapped files: the LMDB
// cache map, WordNet, the binary and its libraries), plus the peak of all of it.
struct Rss {
  double total = 0, anon = 0, file = 0, peak = 0;
};
Rss ReadRss() {
  Rss r;
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    auto field = [&](const char* name, double* out) {
      if (line.rfind(name, 0) == 0) *out = std::stod(line.substr(std::string_view(name).size())) / 1024.0;
    };
    field("VmRSS:", &r.total);
    field("RssAnon:", &r.anon);
    field("RssFile:", &r.file);
    field("VmHWM:", &r.peak);
  }
  return r;
}
void Check(const Status& s, const char* what) { CheckOrExit(s, what); }

int Main(int argc, char** argv) {
  std::vector<size_t> sizes = {10'000, 100'000};
  size_t n_queries = 300;
  int dimension = static_cast<int>(Config{}.embedding.dimension);
  std::string dir = "/tmp/engram-scale-" + std::to_string(::getpid());
  std::string vocabulary = "corpus";
  std::string eval_dir = "bench/eval";
  std::string expansion = "concepts";
  bool reuse = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--reuse") {
      reuse = true;
      std::copy(argv + i + 1, argv + argc, argv + i);
      --argc;
      break;
    }
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--sizes") {
      sizes.clear();
      std::stringstream ss(v);
      for (std::string part; std::getline(ss, part, ',');) sizes.push_back(std::stoul(part));
    } else if (a == "--queries") {
      n_queries = std::stoul(v);
    } else if (a == "--dimension") {
      dimension = std::stoi(v);
    } else if (a == "--vocabulary") {
      vocabulary = v;
    } else if (a == "--eval") {
      eval_dir = v;
    } else if (a == "--dir") {
      dir = v;
    } else if (a == "--expansion") {
      expansion = v;
      if (v != "on" && v != "concepts" && v != "off") {
        std::fprintf(stderr, "--expansion: on, concepts or off, got \"%s\"\n", v.c_str());
        return 2;
      }
    }
  }
  FakeClock clock;
  const bench::ScaleCorpus corpus = bench::ScaleCorpus::OpenOrExit(vocabulary, eval_dir);
  auto generate = [&](std::mt19937_64& r) { return corpus.Generate(r, clock); };
  auto query_text = [&](std::mt19937_64& r) { return corpus.Query(r); };
  std::printf("vocabulary: %s\n\n", vocabulary.c_str());
  if (!reuse) fs::remove_all(dir);
  fs::create_directories(dir);
  // Everything below is opened as `engram serve` opens it with no config file: the
  // defaults of config/config.h (storage.durability, cache.*, retrieval.exact_below).
  const Config defaults;
  SqliteOptions options;
  options.path = dir + "/scale.db";
  options.durability = defaults.durability;
  auto store_or = OpenSqliteBackend(options);
  Check(store_or.status(), "open");
  std::unique_ptr<StorageBackend> store = *std::move(store_or);
  // The SQLite store's in-memory full-text index: the queries below measure it built.
  sqlite::PostingsMirror* mirror = nullptr;
  if (auto* sqlite = dynamic_cast<sqlite::SqliteBackend*>(store.get())) mirror = sqlite->full_text_mirror();
  // As `engram serve` runs by default: the LMDB cache in front of the SQLite file.
  LmdbOptions cache;
  cache.path = dir + "/scale.db.cache";
  cache.max_entries = static_cast<size_t>(defaults.cache_max_entries);
  cache.ttl = defaults.cache_ttl;
  auto cached = OpenLmdbCache(cache, std::move(store));
  Check(cached.status(), "cache");
  store = *std::move(cached);
  std::mt19937_64 rng(42);
  HashingOptions hashing;
  hashing.dimension = dimension;
  auto provider_or = MakeHashingProvider(hashing, store.get());
  Check(provider_or.status(), "provider");
  std::unique_ptr<EmbeddingProvider> provider = *std::move(provider_or);
  RankingOptions ranking;
  ranking.cache_entries = 0;  // measure the work, not the cache
  Retriever retriever(*store, clock, provider.get(), nullptr, ranking);
  std::unique_ptr<WordNet> wordnet;
  std::unique_ptr<QueryExpander> expander;
  if (expansion == "on") {
    auto wn = WordNet::Open("/usr/share/wordnet");
    Check(wn.status(), "wordnet");
    wordnet = *std::move(wn);
  }
  if (expansion == "on" || expansion == "concepts") {
    expander = std::make_unique<QueryExpander>(&ConceptMap::Builtin(), wordnet.get());
    retriever.SetExpander(expander.get(), ExpansionHealth{});
  }
  std::printf("query expansion: %s\n\n", expansion.c_str());

  std::printf("| episodes | ingest ep/s | ingest steps/s | embed ep/s | index build (or load) s | index mode | "
              "query p50 ms | query p95 ms | query max ms | RSS MiB | db MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  struct Stage {
    size_t size;
    double text, embed, knn, load;
  };
  std::vector<Stage> stages;
  struct Memory {
    size_t size;
    Rss rss;
    double index_mib;
  };
  std::vector<Memory> memory;
  size_t have = 0;
  // --reuse: the store's episodes are the first `stored` of the seed's sequence; replay
  // them (rng and clock) without storing, as each size reaches them.
  size_t stored = 0;
  if (reuse) {
    auto stats = store->Stats();
    Check(stats.status(), "stats");
    stored = static_cast<size_t>(stats->completed_episodes);
    std::printf("reusing %zu episodes in %s\n\n", stored, dir.c_str());
  }
  for (size_t target : sizes) {
    // Ingest.
    size_t steps = 0;
    while (have < std::min(target, stored)) {
      (void)generate(rng);
      ++have;
    }
    const size_t before = have;
    auto t0 = Clock_::now();
    while (have < target) {
      std::vector<Episode> batch;
      for (size_t i = 0; i < kBatch && have < target; ++i, ++have) {
        batch.push_back(generate(rng));
        steps += batch.back().steps.size();
      }
      Check(store->PutEpisodes(batch), "put");
    }
    const double ingest_s = Seconds(t0);
    const size_t new_episodes = have - before;
    // Embed what has no vector yet.
    t0 = Clock_::now();
    auto indexed = retriever.IndexPending(0);
    Check(indexed.status(), "embed");
    const double embed_s = Seconds(t0);
    // Build the vector index from the store (what a server start without a file does).
    t0 = Clock_::now();
    VectorIndexOptions vio;
    vio.exact_below = static_cast<size_t>(defaults.retrieval.exact_below);
    // Persisted next to the store as serve keeps it: a --reuse run loads the graph (at 1M
    // a rebuild takes minutes) unless vectors were added, which it then catches up.
    vio.path = options.path + ".vectors.hnsw";
    auto index_or = VectorIndex::Open(*store, provider->Space(), vio);
    Check(index_or.status(), "vector index");
    std::unique_ptr<VectorIndex> index = *std::move(index_or);
    const double build_s = Seconds(t0);
    retriever.SetIndex(index.get());
    if (mirror != nullptr) {
      // As `engram serve` does at start: a search starts the mirror's build (or catch-up).
      t0 = Clock_::now();
      TextSearchRequest warm;
      warm.words = {"error"};
      Check(store->SearchText(warm).status(), "warm up");
      mirror->WaitForBuild();
      std::fprintf(stderr, "full-text mirror ready in %.1f s: %lld documents, %.1f MiB\n", Seconds(t0),
                   static_cast<long long>(mirror->Stats().documents),
                   static_cast<double>(mirror->Stats().bytes) / (1024.0 * 1024.0));
    }
    // Queries.
    std::vector<double> ms;
    std::mt19937_64 qrng(7);
    for (size_t i = 0; i < n_queries; ++i) {
      RetrievalQuery q;
      q.text = query_text(qrng);
      if (i % 2 == 0) q.domain = corpus.Domain(qrng);
      auto s = Clock_::now();
      auto r = retriever.Retrieve(q);
      Check(r.status(), "query");
      ms.push_back(Seconds(s) * 1000);
    }
    // Where the time goes: each stage alone, over the same queries.
    std::vector<double> text_ms, embed_ms, knn_ms, load_ms;
    std::mt19937_64 srng(7);
    for (size_t i = 0; i < std::min<size_t>(n_queries, 100); ++i) {
      std::string text = query_text(srng);
      if (i % 2 == 0) (void)corpus.Domain(srng);
      TextSearchRequest req;
      req.words = SearchTokens(text);
      req.limit = ranking.lexical_candidates;
      auto s0 = Clock_::now();
      auto hits = store->SearchText(req);
      Check(hits.status(), "search text");
      text_ms.push_back(Seconds(s0) * 1000);
      s0 = Clock_::now();
      auto v = provider->Embed(std::span<const std::string>(&text, 1), EmbedPurpose::kQuery);
      Check(v.status(), "embed");
      embed_ms.push_back(Seconds(s0) * 1000);
      s0 = Clock_::now();
      auto knn = index->Search(v->front(), ranking.vector_candidates);
      Check(knn.status(), "knn");
      knn_ms.push_back(Seconds(s0) * 1000);
      s0 = Clock_::now();
      // As the retriever loads its candidates: one GetEpisodes for the union.
      std::vector<std::string> ids;
      for (const TextHit& h : *hits) ids.push_back(h.episode_id);
      for (const VectorHit& h : *knn) ids.push_back(h.episode_id);
      Check(store->GetEpisodes(ids).status(), "get");
      load_ms.push_back(Seconds(s0) * 1000);
    }
    stages.push_back({target, Percentile(text_ms, 0.5), Percentile(embed_ms, 0.5), Percentile(knn_ms, 0.5),
                      Percentile(load_ms, 0.5)});
    memory.push_back({target, ReadRss(), static_cast<double>(index->MemoryBytes()) / (1024.0 * 1024.0)});
    retriever.SetIndex(nullptr);
    const double db_mib = static_cast<double>(fs::file_size(options.path)) / (1024.0 * 1024.0);
    std::printf("| %zu | %.0f | %.0f | %.0f | %.1f | %s | %.2f | %.2f | %.2f | %.0f | %.0f |\n", target,
                static_cast<double>(new_episodes) / std::max(ingest_s, 1e-9),
                static_cast<double>(steps) / std::max(ingest_s, 1e-9),
                static_cast<double>(*indexed) / std::max(embed_s, 1e-9), build_s, std::string(index->mode()).c_str(),
                Percentile(ms, 0.5), Percentile(ms, 0.95), Percentile(ms, 1.0), bench::RssMiB(), db_mib);
    std::fflush(stdout);
  }
  std::printf("\nStages alone, p50 ms (full-text search of %zu hits, query embedding, %zu nearest neighbours, "
              "loading those episodes):\n| episodes | full text | embed | knn | load episodes |\n|---|---|---|---|---|\n",
              ranking.lexical_candidates, ranking.vector_candidates);
  for (const Stage& st : stages) {
    std::printf("| %zu | %.2f | %.2f | %.2f | %.2f |\n", st.size, st.text, st.embed, st.knn, st.load);
  }
  std::printf("\nMemory after the queries, MiB (RSS = anon + file; anon: heap and stacks; file: mapped files "
              "such as the LMDB cache and WordNet; peak: the most RSS so far; vector index: its own estimate):\n"
              "| episodes | RSS | anon | file | peak | vector index |\n|---|---|---|---|---|---|\n");
  for (const Memory& m : memory) {
    std::printf("| %zu | %.0f | %.0f | %.0f | %.0f | %.0f |\n", m.size, m.rss.total, m.rss.anon, m.rss.file, m.rss.peak,
                m.index_mib);
  }
  if (!reuse) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
