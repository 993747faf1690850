// The retrieval-quality eval (`make eval`): loads the corpus in bench/eval/corpus/*.jsonl
// into a fresh store through Memory (so reward and reflection are engram's own), runs every
// query in bench/eval/queries/*.jsonl in three modes — lexical only, vector only, hybrid —
// and prints Recall@1/5/10, MRR and nDCG@10, overall and for the paraphrase queries.
//
//   retrieval_eval [--dir bench/eval] [--dimension 256] [--json] [--min-hybrid-recall5 0.80]
//                  [--show-misses] [--weights S,L,C,RW,RC[,CO,WN]] [--min-similarity X]
//                  [--mmr-lambda X] [--wordnet DIR] [--concepts FILE] [--no-expansion]
//                  [--table] [--split all|even|odd] [--tune] [--store URL]
//                  [--vector-expansion X] [--provider hashing|use]
//                  [--document-text full|task|task+outcome|task+lessons[+concepts]]
//
// --store URL loads the corpus into the Turso / libSQL store at URL ("http://127.0.0.1:PORT",
// token from ENGRAM_TURSO_TOKEN) instead of a temporary SQLite file; its database must hold no
// episodes (bench/turso/run.sh eval starts a fresh tursodb).
//
// Query expansion (issue 8): the built-in concept map (plus --concepts FILE) and WordNet
// from --wordnet (default /usr/share/wordnet; missing: a warning and no WordNet). --table
// adds a row per semantic option (hybrid without expansion, + WordNet, + concept map,
// lexical + expansion). --split evaluates the even- or odd-numbered queries only (in file
// order). --tune searches the lexical/semantic/concepts/wordnet weights on the even half
// and prints the odd half's figures for the defaults and for the weights found.
//
// --document-text chooses what is embedded per episode (retrieval/episode_text.h; the
// embedding.document_text config key); the header line then gives the embedding cost.
//
// Definitions (per query, then averaged over queries):
//   Recall@k  |relevant ∩ top k| / min(k, |relevant|), relevant = every judged episode
//             (grade ≥ 1). The denominator is capped at k so that 1.0 is reachable at every
//             k: at k = 1, any relevant episode first scores 1.
//   MRR       1 / rank of the first episode of grade 3 (0 when not in the top 10).
//   nDCG@10   DCG with gain 2^grade − 1 and log2(rank + 1) discount, over the ideal DCG.
// The store's clock is fixed at kEvalNow; an episode's age_days sets when it ended.
// With --min-hybrid-recall5 the exit code is 1 when hybrid Recall@5 (all queries) is below
// the bound: the smoke test in `make test` uses it.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <unistd.h>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "embedding/use_provider.h"
#include "engram/embedding.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "engram/turso_backend.h"
#include "retrieval/episode_text.h"
#include "retrieval/retriever.h"
#include "retrieval/vector_index.h"
#include "semantics/concept_map.h"
#include "semantics/query_expander.h"
#include "semantics/wordnet.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// 2026-06-01T00:00:00Z.
constexpr int64_t kEvalNowMs = 1'780'272'000'000;
constexpr size_t kTopK = 10;

struct Query {
  std::string id;
  std::string text;
  std::optional<std::string> domain;
  bool paraphrase = false;
  std::map<std::string, int> relevant;  // corpus id → grade
};

struct Args {
  std::string dir = "bench/eval";
  int dimension = 256;
  bool json = false;
  std::optional<double> min_hybrid_recall5;
  bool show_misses = false;
  RankingOptions ranking{};
  std::string provider = "hashing";  // or "use"
  DocumentTextOptions document_text{};
  std::string wordnet_dir = "/usr/share/wordnet";
  std::string concepts_file;
  bool no_expansion = false;
  bool table = false;
  std::string split = "all";
  bool tune = false;
  std::string store_url;  // --store: a Turso / libSQL URL; empty: a temporary SQLite file
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "retrieval_eval: %s\n", message.c_str());
  std::exit(2);
}

std::vector<Json> ReadJsonl(const fs::path& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path.string());
  std::vector<Json> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(Json::parse(line));
    } catch (const std::exception& e) {
      Die(path.string() + ":" + std::to_string(n) + ": " + e.what());
    }
  }
  return out;
}

std::vector<fs::path> JsonlFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) Die(dir.string() + " is not a folder");
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".jsonl") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return *std::move(r);
}
void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

std::string Str(const Json& j, const char* key, const std::string& fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// Records one corpus episode; returns its engram id.
std::string Load(Memory& memory, FakeClock& clock, const Json& j) {
  const std::string cid = Str(j, "id");
  const int age_days = j.value("age_days", 0);
  const int steps = j.contains("steps") ? static_cast<int>(j["steps"].size()) : 0;
  const Timestamp end = Timestamp(std::chrono::milliseconds(kEvalNowMs)) - std::chrono::hours(24 * age_days);
  clock.Set(end - std::chrono::minutes(2 * steps + 1));
  NewEpisode ne;
  ne.task_description = Str(j, "task");
  ne.task_type = Must(ParseTaskType(Str(j, "task_type", "other")), cid + " task_type");
  ne.context.domain = Str(j, "domain", "general");
  if (j.contains("language")) ne.context.language = Str(j, "language");
  if (j.contains("framework")) ne.context.framework = Str(j, "framework");
  ne.context.complexity = Must(ParseComplexity(Str(j, "complexity", "moderate")), cid + " complexity");
  if (j.contains("tags")) ne.context.tags = j["tags"].get<std::vector<std::string>>();
  const std::string id = Must(memory.CreateEpisode(std::move(ne)), cid + " create");
  for (const Json& s : j.value("steps", Json::array())) {
    clock.Advance(std::chrono::minutes(2));
    NewStep step;
    step.tool = Str(s, "tool");
    step.action = Str(s, "action");
    StepResult result;
    result.status = Must(ParseStepStatus(Str(s, "status", "success")), cid + " step status");
    if (s.contains("output")) result.output = Str(s, "output");
    if (s.contains("message")) result.message = Str(s, "message");
    step.result = std::move(result);
    step.latency_ms = 1000;
    Must(memory.AddStep(id, std::move(step)).status(), cid + " step");
  }
  clock.Set(end);
  const Json& o = j.at("outcome");
  Outcome outcome;
  outcome.kind = Must(ParseOutcomeKind(Str(o, "kind")), cid + " outcome");
  outcome.verdict = Str(o, "verdict");
  outcome.reason = Str(o, "reason");
  if (o.contains("error_details")) outcome.error_details = Str(o, "error_details");
  if (o.contains("completed")) outcome.completed = o["completed"].get<std::vector<std::string>>();
  if (o.contains("failed")) outcome.failed = o["failed"].get<std::vector<std::string>>();
  if (outcome.kind == OutcomeKind::kSuccess && outcome.verdict.empty()) outcome.verdict = "done";
  if (outcome.kind == OutcomeKind::kFailure && outcome.reason.empty()) outcome.reason = "failed";
  if (outcome.kind == OutcomeKind::kPartialSuccess && outcome.completed.empty()) outcome.completed = {"part"};
  Must(memory.CompleteEpisode(id, std::move(outcome)).status(), cid + " complete");
  return id;
}

struct Scores {
  double r1 = 0, r5 = 0, r10 = 0, mrr = 0, ndcg = 0;
  size_t n = 0;
  void Add(const Scores& q) {
    r1 += q.r1, r5 += q.r5, r10 += q.r10, mrr += q.mrr, ndcg += q.ndcg;
    ++n;
  }
  Scores Mean() const {
    if (n == 0) return *this;
    double d = static_cast<double>(n);
    return {r1 / d, r5 / d, r10 / d, mrr / d, ndcg / d, n};
  }
};

Scores ScoreQuery(const std::vector<std::string>& ranked, const std::map<std::string, int>& relevant) {
  Scores s;
  auto recall = [&](size_t k) {
    size_t hits = 0;
    for (size_t i = 0; i < std::min(k, ranked.size()); ++i) hits += relevant.contains(ranked[i]);
    return static_cast<double>(hits) / static_cast<double>(std::min(k, relevant.size()));
  };
  s.r1 = recall(1), s.r5 = recall(5), s.r10 = recall(10);
  for (size_t i = 0; i < std::min(kTopK, ranked.size()); ++i) {
    auto it = relevant.find(ranked[i]);
    if (it != relevant.end() && it->second == 3) {
      s.mrr = 1.0 / static_cast<double>(i + 1);
      break;
    }
  }
  double dcg = 0, ideal = 0;
  for (size_t i = 0; i < std::min(kTopK, ranked.size()); ++i) {
    auto it = relevant.find(ranked[i]);
    if (it != relevant.end()) dcg += (std::pow(2.0, it->second) - 1) / std::log2(static_cast<double>(i) + 2);
  }
  std::vector<int> grades;
  for (const auto& [id, g] : relevant) grades.push_back(g);
  std::sort(grades.rbegin(), grades.rend());
  for (size_t i = 0; i < std::min(kTopK, grades.size()); ++i) {
    ideal += (std::pow(2.0, grades[i]) - 1) / std::log2(static_cast<double>(i) + 2);
  }
  s.ndcg = ideal > 0 ? dcg / ideal : 0;
  return s;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--dir") {
      a.dir = value();
    } else if (arg == "--dimension") {
      a.dimension = std::stoi(value());
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--min-hybrid-recall5") {
      a.min_hybrid_recall5 = std::stod(value());
    } else if (arg == "--show-misses") {
      a.show_misses = true;
    } else if (arg == "--weights") {  // semantic,lexical,context,reward,recency[,concepts,wordnet]
      RankingWeights& w = a.ranking.weights;
      const int n = std::sscanf(value().c_str(), "%lf,%lf,%lf,%lf,%lf,%lf,%lf", &w.semantic, &w.lexical, &w.context,
                                &w.reward, &w.recency, &w.concepts, &w.wordnet);
      if (n != 5 && n != 7) {
        Die("--weights: expected five or seven numbers: semantic,lexical,context,reward,recency[,concepts,wordnet]");
      }
    } else if (arg == "--provider") {
      a.provider = value();
      if (a.provider != "hashing" && a.provider != "use") Die("--provider: hashing or use");
    } else if (arg == "--document-text") {
      a.document_text = Must(ParseDocumentTextOptions(value()), "--document-text");
    } else if (arg == "--wordnet") {
      a.wordnet_dir = value();
    } else if (arg == "--concepts") {
      a.concepts_file = value();
    } else if (arg == "--no-expansion") {
      a.no_expansion = true;
    } else if (arg == "--table") {
      a.table = true;
    } else if (arg == "--split") {
      a.split = value();
      if (a.split != "all" && a.split != "even" && a.split != "odd") Die("--split: all, even or odd");
    } else if (arg == "--tune") {
      a.tune = true;
    } else if (arg == "--store") {
      a.store_url = value();
      if (!IsTursoUrl(a.store_url)) Die("--store: expected a Turso URL (libsql://, https:// or http://)");
    } else if (arg == "--min-similarity") {
      a.ranking.min_similarity = std::stod(value());
    } else if (arg == "--vector-expansion") {
      a.ranking.vector_expansion = std::stod(value());
    } else if (arg == "--mmr-lambda") {
      a.ranking.mmr_lambda = std::stod(value());
    } else {
      Die("unknown argument " + arg);
    }
  }
  return a;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const fs::path dir = args.dir;
  const fs::path tmp = fs::temp_directory_path() / ("engram-eval-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};

  SqliteOptions options;
  options.path = (tmp / "eval.db").string();
  options.durability = Durability::kNormal;
  std::unique_ptr<StorageBackend> store;
  if (args.store_url.empty()) {
    store = Must(OpenSqliteBackend(options), "open store");
  } else {
    TursoOptions turso;
    turso.url = args.store_url;
    if (const char* token = std::getenv("ENGRAM_TURSO_TOKEN")) turso.auth_token = token;
    store = Must(OpenTursoBackend(turso), "open store");
    if (Must(store->Stats(), "store stats").episodes != 0) {
      Die("--store: the store at " + args.store_url + " is not empty");
    }
  }
  FakeClock clock;
  Memory memory(*store, clock, nullptr);

  const auto load_start = std::chrono::steady_clock::now();
  std::map<std::string, std::string> engram_id;  // corpus id → episode id
  std::map<std::string, std::string> corpus_id;  // episode id → corpus id
  std::map<std::string, std::string> task_of;    // corpus id → task
  for (const fs::path& f : JsonlFiles(dir / "corpus")) {
    for (const Json& j : ReadJsonl(f)) {
      const std::string cid = Str(j, "id");
      if (engram_id.contains(cid)) Die("duplicate corpus id " + cid);
      std::string id = Load(memory, clock, j);
      engram_id[cid] = id;
      corpus_id[id] = cid;
      task_of[cid] = Str(j, "task");
    }
  }
  std::vector<Query> queries;
  for (const fs::path& f : JsonlFiles(dir / "queries")) {
    for (const Json& j : ReadJsonl(f)) {
      Query q;
      q.id = Str(j, "id");
      q.text = Str(j, "query");
      if (j.contains("domain")) q.domain = Str(j, "domain");
      q.paraphrase = j.value("paraphrase", false);
      for (const auto& [cid, grade] : j.at("relevant").items()) {
        if (!engram_id.contains(cid)) Die("query " + q.id + " judges unknown episode " + cid);
        q.relevant[engram_id[cid]] = grade.get<int>();
      }
      queries.push_back(std::move(q));
    }
  }
  if (engram_id.empty() || queries.empty()) Die("no corpus or no queries under " + dir.string());

  std::unique_ptr<EmbeddingProvider> provider;
  if (args.provider == "use") {
    provider = Must(MakeUseProvider(UseOptions{}), "use provider");
  } else {
    HashingOptions hashing;
    hashing.dimension = args.dimension;
    provider = Must(MakeHashingProvider(hashing, store.get()), "provider");
  }
  // The map the expander uses below also expands documents when asked to.
  ConceptMap concepts = ConceptMap::Builtin();
  if (!args.concepts_file.empty()) concepts.Merge(Must(ConceptMap::LoadFile(args.concepts_file), "concepts"));
  provider = WithDocumentText(std::move(provider), args.document_text, &concepts);
  clock.Set(Timestamp(std::chrono::milliseconds(kEvalNowMs)));
  Retriever retriever(*store, clock, provider.get(), nullptr, args.ranking);
  const std::clock_t embed_cpu_start = std::clock();
  const auto embed_start = std::chrono::steady_clock::now();
  const size_t embedded = Must(retriever.IndexPending(0), "index");
  const double embed_cpu_ms = 1000.0 * static_cast<double>(std::clock() - embed_cpu_start) / CLOCKS_PER_SEC;
  const double embed_wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - embed_start).count();
  std::unique_ptr<VectorIndex> index = Must(VectorIndex::Open(*store, provider->Space(), VectorIndexOptions{}), "vector index");
  retriever.SetIndex(index.get());
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  // Query expansion.
  std::unique_ptr<WordNet> wordnet;
  if (Result<std::unique_ptr<WordNet>> wn = WordNet::Open(args.wordnet_dir); wn.ok()) {
    wordnet = *std::move(wn);
  } else {
    std::fprintf(stderr, "retrieval_eval: warning: no WordNet expansion: %s\n", wn.status().ToString().c_str());
  }
  QueryExpander expander(&concepts, wordnet.get());
  if (!args.no_expansion) retriever.SetExpander(&expander, ExpansionHealth{});

  struct Row {
    std::string name;
    RetrievalMode mode;
    RankingOptions options;
  };
  auto with = [&](double concepts_weight, double wordnet_weight) {
    RankingOptions o = args.ranking;
    o.weights.concepts = concepts_weight;
    o.weights.wordnet = wordnet_weight;
    if (concepts_weight == 0 && wordnet_weight == 0) o.vector_expansion = 0;  // no expansion at all
    return o;
  };
  const RankingWeights& dw = args.ranking.weights;
  std::vector<Row> rows = {{"lexical", RetrievalMode::kLexical, with(0, 0)},
                           {"vector", RetrievalMode::kVector, with(0, 0)},
                           {"hybrid", RetrievalMode::kHybrid, args.ranking}};
  if (args.table) {
    rows.insert(rows.begin() + 2, {Row{"lex+exp", RetrievalMode::kLexical, args.ranking},
                                   Row{"hyb-plain", RetrievalMode::kHybrid, with(0, 0)},
                                   Row{"+wordnet", RetrievalMode::kHybrid, with(0, dw.wordnet > 0 ? dw.wordnet : 0.15)},
                                   Row{"+concepts", RetrievalMode::kHybrid, with(dw.concepts > 0 ? dw.concepts : 0.3, 0)}});
  }

  auto in_split = [](const std::string& split, size_t i) {
    return split == "all" || (split == "even") == (i % 2 == 0);
  };
  // Runs every query of `split` with `options` in `mode`: (all, paraphrase) means; the
  // other queries' (the literal ones') sums are left in `literal`.
  Scores literal;
  double query_ms = 0;  // mean wall time of one Retrieve in the last evaluate
  auto evaluate = [&](const RankingOptions& options, RetrievalMode mode, const std::string& split,
                      bool show_misses) -> std::pair<Scores, Scores> {
    Must(retriever.SetOptions(options), "ranking options");
    Scores all, para;
    literal = Scores{};
    double total_ms = 0;
    for (size_t qi = 0; qi < queries.size(); ++qi) {
      if (!in_split(split, qi)) continue;
      const Query& q = queries[qi];
      RetrievalQuery rq;
      rq.text = q.text;
      rq.domain = q.domain;
      rq.limit = kTopK;
      rq.mode = mode;
      const auto query_start = std::chrono::steady_clock::now();
      RetrievalResult r = Must(retriever.Retrieve(rq), "query " + q.id);
      total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - query_start).count();
      std::vector<std::string> ranked;
      for (const ScoredEpisode& s : r.episodes) ranked.push_back(s.episode.episode_id);
      Scores s = ScoreQuery(ranked, q.relevant);
      all.Add(s);
      if (q.paraphrase) para.Add(s);
      else literal.Add(s);
      if (show_misses && s.r5 < 1) {
        std::printf("miss %s%s: \"%s\"\n", q.id.c_str(), q.paraphrase ? " (paraphrase)" : "", q.text.c_str());
        for (const auto& [id, g] : q.relevant) {
          auto pos = std::find(ranked.begin(), ranked.end(), id);
          std::printf("   want g%d %-9s rank %-3s %s\n", g, corpus_id[id].c_str(),
                      pos == ranked.end() ? "-" : std::to_string(pos - ranked.begin() + 1).c_str(),
                      task_of[corpus_id[id]].c_str());
        }
        for (size_t i = 0; i < std::min<size_t>(3, ranked.size()); ++i) {
          std::printf("   got  #%zu %-9s %s\n", i + 1, corpus_id[ranked[i]].c_str(), task_of[corpus_id[ranked[i]]].c_str());
        }
      }
    }
    query_ms = all.n > 0 ? total_ms / static_cast<double>(all.n) : 0;
    return {all.Mean(), para.Mean()};
  };

  size_t paraphrases = 0;
  for (size_t qi = 0; qi < queries.size(); ++qi) paraphrases += in_split(args.split, qi) && queries[qi].paraphrase;
  size_t evaluated = 0;
  for (size_t qi = 0; qi < queries.size(); ++qi) evaluated += in_split(args.split, qi);

  if (args.tune) {
    // Grid search on the even half; the odd half is the honest figure.
    auto objective = [](const std::pair<Scores, Scores>& r) {
      return r.first.r5 + r.first.mrr + r.second.r5 + r.second.mrr;
    };
    RankingOptions best = args.ranking;
    double best_value = -1;
    const double grid[] = {0.0, 0.1, 0.2, 0.35, 0.5};
    for (double sem : grid) {
      for (double lex : {0.3, 0.5, 0.7}) {
        for (double con : grid) {
          // Without WordNet its weight has nothing to tune.
          for (double wn : wordnet ? std::vector<double>{0.0, 0.05, 0.1, 0.2} : std::vector<double>{0.0}) {
            RankingOptions o = args.ranking;
            o.weights.semantic = sem, o.weights.lexical = lex, o.weights.concepts = con, o.weights.wordnet = wn;
            const double v = objective(evaluate(o, RetrievalMode::kHybrid, "even", false));
            if (v > best_value + 1e-9) best_value = v, best = o;
          }
        }
      }
    }
    const RankingWeights& b = best.weights;
    std::printf("tuned on the even half: --weights %.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f\n\n", b.semantic, b.lexical,
                b.context, b.reward, b.recency, b.concepts, b.wordnet);
    std::printf("| weights  | half | queries    | R@1   | R@5   | R@10  | MRR   | nDCG@10 |\n");
    std::printf("|----------|------|------------|-------|-------|-------|-------|---------|\n");
    for (const auto& [label, o] : {std::pair{"given", args.ranking}, std::pair{"tuned", best}}) {
      for (const char* half : {"even", "odd"}) {
        auto [a, p] = evaluate(o, RetrievalMode::kHybrid, half, false);
        for (const auto& [subset, m] : {std::pair{"all", a}, std::pair{"paraphrase", p}}) {
          std::printf("| %-8s | %-4s | %-10s | %.3f | %.3f | %.3f | %.3f | %.3f   |\n", label, half, subset, m.r1,
                      m.r5, m.r10, m.mrr, m.ndcg);
        }
      }
    }
    return 0;
  }

  std::map<std::string, std::pair<Scores, Scores>> results;
  std::map<std::string, Scores> literal_results;
  std::map<std::string, double> row_query_ms;
  for (const Row& row : rows) {
    // query_ms: one pass, so a row's first query embeddings are not cached yet (the
    // "use" provider caches vectors by text; rows after the first reuse them).
    results[row.name] = evaluate(row.options, row.mode, args.split, args.show_misses && row.name == "hybrid");
    literal_results[row.name] = literal.Mean();
    row_query_ms[row.name] = query_ms;
  }
  const double hybrid_r5 = results["hybrid"].first.r5;
  if (args.json) {
    Json out = {{"episodes", engram_id.size()}, {"queries", evaluated}, {"paraphrases", paraphrases},
                {"provider", provider->Space().Key()}, {"load_seconds", load_s}, {"split", args.split},
                {"wordnet", wordnet != nullptr}, {"concept_groups", concepts.size()},
                {"embed_cpu_ms_per_episode", embed_cpu_ms / std::max<double>(1, embedded)},
                {"embed_wall_ms_per_episode", embed_wall_ms / std::max<double>(1, embedded)}};
    for (const Row& row : rows) {
      for (const auto& [subset, m] : {std::pair{"all", results[row.name].first},
                                      std::pair{"paraphrase", results[row.name].second},
                                      std::pair{"literal", literal_results[row.name]}}) {
        out[row.name][subset] = {{"recall@1", m.r1}, {"recall@5", m.r5}, {"recall@10", m.r10}, {"mrr", m.mrr},
                                 {"ndcg@10", m.ndcg}};
      }
      out[row.name]["query_ms"] = row_query_ms[row.name];
    }
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("engram retrieval eval: %zu episodes, %zu queries (%zu paraphrases, split %s), %s, loaded+indexed in "
                "%.1f s; expansion: %s, %zu concept groups, WordNet %s\n",
                engram_id.size(), evaluated, paraphrases, args.split.c_str(), provider->Space().Key().c_str(), load_s,
                args.no_expansion ? "off" : "on", concepts.size(), wordnet ? "on" : "off");
    std::printf("embedded %zu episodes (document text %s): %.2f ms CPU, %.2f ms wall per episode\n\n", embedded,
                std::string(DocumentTextName(args.document_text.text)).append(args.document_text.expand_concepts ? "+concepts" : "").c_str(),
                embed_cpu_ms / std::max<double>(1, embedded), embed_wall_ms / std::max<double>(1, embedded));
    std::printf("| mode      | queries    | R@1   | R@5   | R@10  | MRR   | nDCG@10 |\n");
    std::printf("|-----------|------------|-------|-------|-------|-------|---------|\n");
    for (const Row& row : rows) {
      for (const auto& [subset, m] : {std::pair{"all", results[row.name].first},
                                      std::pair{"paraphrase", results[row.name].second},
                                      std::pair{"literal", literal_results[row.name]}}) {
        if (!args.table && std::string_view(subset) == "literal") continue;
        std::printf("| %-9s | %-10s | %.3f | %.3f | %.3f | %.3f | %.3f   |\n", row.name.c_str(), subset, m.r1, m.r5,
                    m.r10, m.mrr, m.ndcg);
      }
    }
  }
  if (args.min_hybrid_recall5 && hybrid_r5 < *args.min_hybrid_recall5) {
    std::fprintf(stderr, "retrieval_eval: hybrid Recall@5 %.3f is below the floor %.3f\n", hybrid_r5,
                 *args.min_hybrid_recall5);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
