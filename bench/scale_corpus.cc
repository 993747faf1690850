#include "bench/scale_corpus.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/ids.h"
#include "core/reflection.h"
#include "core/reward.h"

namespace engram::bench {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kDomains = {"web-api", "databases", "build-systems", "ci-cd", "frontend",
                                           "infrastructure", "data-pipelines", "concurrency", "security", "testing"};
const std::vector<std::string> kVerbs = {"fix", "debug", "add", "refactor", "speed up", "migrate", "upgrade",
                                         "document", "test", "remove", "rewrite", "investigate"};
const std::vector<std::string> kProblems = {
    "flaky test",     "memory leak",    "deadlock",      "race condition", "timeout",     "slow query",
    "crash on start", "401 response",   "rate limiting", "cache miss",     "n+1 queries", "broken build",
    "oom kill",       "stale cache",    "wrong encoding", "retry storm",   "null pointer", "disk full",
    "cert expiry",    "schema drift",   "lock contention", "bad merge",    "version skew", "hot loop"};
const std::vector<std::string> kComponents = {
    "payments service", "auth middleware", "order importer", "search indexer", "user profile page",
    "billing job",      "kafka consumer",  "grpc gateway",   "webpack config", "terraform module",
    "helm chart",       "postgres replica", "redis cluster", "s3 uploader",    "react table",
    "scheduler",        "metrics exporter", "login form",    "nightly etl",    "docker image"};
const std::vector<std::string> kLanguages = {"python", "go", "rust", "typescript", "java", "c++", "ruby"};
const std::vector<std::string> kTools = {"bash", "read_file", "edit_file", "grep", "run_tests", "git", "docker",
                                         "kubectl", "psql", "npm", "cargo", "make"};

template <typename T>
const T& Pick(std::mt19937_64& rng, const std::vector<T>& v) {
  return v[rng() % v.size()];
}

Episode GenerateSynthetic(std::mt19937_64& rng, FakeClock& clock) {
  Episode e;
  e.episode_id = NewUuidV7(clock);
  const std::string& problem = Pick(rng, kProblems);
  const std::string& component = Pick(rng, kComponents);
  e.task_description = Pick(rng, kVerbs) + " the " + problem + " in the " + component + " (ticket " +
                       std::to_string(rng() % 100000) + ")";
  e.task_type = static_cast<TaskType>(rng() % 7);
  e.context.domain = Pick(rng, kDomains);
  e.context.language = Pick(rng, kLanguages);
  e.start_time = clock.Now();
  const int steps = 4 + static_cast<int>(rng() % 6);
  for (int i = 1; i <= steps; ++i) {
    Step s;
    s.step_number = i;
    s.timestamp = e.start_time + std::chrono::seconds(30 * i);
    s.tool = Pick(rng, kTools);
    s.action = "look at the " + component + " " + Pick(rng, kProblems);
    const bool error = rng() % 5 == 0;
    s.result = StepResult{error ? StepStatus::kError : StepStatus::kSuccess,
                          "output of step " + std::to_string(i) + " about " + problem,
                          error ? std::optional<std::string>("error: " + problem) : std::nullopt};
    s.latency_ms = 200 + static_cast<int64_t>(rng() % 2000);
    e.steps.push_back(std::move(s));
  }
  e.end_time = e.start_time + std::chrono::seconds(30 * steps + 30);
  Outcome o;
  if (rng() % 5 == 0) {
    o.kind = OutcomeKind::kFailure;
    o.reason = "could not reproduce the " + problem;
  } else {
    o.kind = OutcomeKind::kSuccess;
    o.verdict = "the " + problem + " in the " + component + " is fixed";
  }
  e.outcome = o;
  e.reward = ComputeReward(e);
  e.reflection = GenerateReflection(e, *e.reward);
  clock.Advance(std::chrono::seconds(7));
  return e;
}

// `base` with about one word in five replaced by a word of `other`.
std::string Mix(std::mt19937_64& rng, const std::string& base, const std::string& other) {
  std::vector<std::string> a, b;
  std::stringstream sa(base), sb(other);
  for (std::string w; sa >> w;) a.push_back(w);
  for (std::string w; sb >> w;) b.push_back(w);
  if (!b.empty()) {
    for (std::string& w : a) {
      if (rng() % 5 == 0) w = b[rng() % b.size()];
    }
  }
  std::string out;
  for (const std::string& w : a) out += (out.empty() ? "" : " ") + w;
  return out;
}

Episode GenerateFromCorpus(std::mt19937_64& rng, FakeClock& clock, const std::vector<nlohmann::json>& episodes) {
  const nlohmann::json& base = episodes[rng() % episodes.size()];
  const nlohmann::json& other = episodes[rng() % episodes.size()];
  Episode e;
  e.episode_id = NewUuidV7(clock);
  e.task_description = Mix(rng, base.value("task", ""), other.value("task", "")) + " (ticket " +
                       std::to_string(rng() % 1'000'000) + ")";
  e.task_type = ParseTaskType(base.value("task_type", "other")).value_or(TaskType::kOther);
  e.context.domain = base.value("domain", "general");
  if (base.contains("language")) e.context.language = base.value("language", "");
  e.start_time = clock.Now();
  int n = 0;
  for (const nlohmann::json& st : base.value("steps", nlohmann::json::array())) {
    Step s;
    s.step_number = ++n;
    s.timestamp = e.start_time + std::chrono::seconds(30 * n);
    s.tool = st.value("tool", "bash");
    s.action = Mix(rng, st.value("action", ""), other.value("task", ""));
    const bool error = st.value("status", "success") != "success";
    s.result = StepResult{error ? StepStatus::kError : StepStatus::kSuccess, st.value("output", ""),
                          error ? std::optional<std::string>(st.value("message", "error")) : std::nullopt};
    s.latency_ms = 200 + static_cast<int64_t>(rng() % 2000);
    e.steps.push_back(std::move(s));
  }
  e.end_time = e.start_time + std::chrono::seconds(30 * n + 30);
  const nlohmann::json o = base.value("outcome", nlohmann::json::object());
  Outcome out;
  out.kind = ParseOutcomeKind(o.value("kind", "success")).value_or(OutcomeKind::kSuccess);
  out.verdict = o.value("verdict", "done");
  out.reason = o.value("reason", "failed");
  if (out.kind == OutcomeKind::kPartialSuccess) out.completed = {"part"};
  e.outcome = out;
  e.reward = ComputeReward(e);
  e.reflection = GenerateReflection(e, *e.reward);
  clock.Advance(std::chrono::seconds(7));
  return e;
}

}  // namespace

Result<ScaleCorpus> ScaleCorpus::Open(std::string_view vocabulary, const std::string& eval_dir) {
  ScaleCorpus corpus;
  corpus.vocabulary_ = std::string(vocabulary);
  if (vocabulary == "synthetic") return corpus;
  if (vocabulary != "corpus") return InvalidArgumentError("vocabulary: corpus or synthetic");
  for (const char* sub : {"/corpus", "/queries"}) {
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(eval_dir + sub, ec)) {
      std::ifstream in(f.path());
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded() || !j.is_object()) {
          return InvalidArgumentError("not a JSON object in " + f.path().string() + ": " + line.substr(0, 80));
        }
        if (std::string(sub) == "/corpus") {
          corpus.episodes_.push_back(std::move(j));
        } else {
          corpus.queries_.push_back(j.value("query", ""));
        }
      }
    }
  }
  if (corpus.episodes_.empty() || corpus.queries_.empty()) {
    return NotFoundError("no eval corpus under " + eval_dir + " (run from the repository root or pass --eval)");
  }
  return corpus;
}

ScaleCorpus ScaleCorpus::OpenOrExit(std::string_view vocabulary, const std::string& eval_dir) {
  Result<ScaleCorpus> corpus = Open(vocabulary, eval_dir);
  if (!corpus.ok()) {
    std::fprintf(stderr, "%s\n", corpus.status().ToString().c_str());
    std::exit(2);
  }
  return *std::move(corpus);
}

Episode ScaleCorpus::Generate(std::mt19937_64& rng, FakeClock& clock) const {
  return vocabulary_ == "corpus" ? GenerateFromCorpus(rng, clock, episodes_) : GenerateSynthetic(rng, clock);
}

std::string ScaleCorpus::Query(std::mt19937_64& rng) const {
  return vocabulary_ == "corpus" ? queries_[rng() % queries_.size()]
                                 : Pick(rng, kVerbs) + " " + Pick(rng, kProblems) + " " + Pick(rng, kComponents);
}

const std::string& ScaleCorpus::Domain(std::mt19937_64& rng) const { return Pick(rng, kDomains); }

NewEpisode ToNewEpisode(const Episode& episode) {
  NewEpisode ne;
  ne.task_description = episode.task_description;
  ne.task_type = episode.task_type;
  ne.context = episode.context;
  ne.tags = episode.tags;
  return ne;
}

NewStep ToNewStep(const Step& step) {
  NewStep ns;
  ns.tool = step.tool;
  ns.action = step.action;
  ns.result = step.result;
  ns.latency_ms = step.latency_ms;
  return ns;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double SecondsSince(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double RssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = 0;
  in >> one;
  return one;
}

bool ParseFlags(int argc, char** argv, const char* usage,
                const std::function<bool(const std::string& flag, const std::string& value)>& apply,
                const std::function<bool()>& valid) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    bool ok = i + 1 < argc;
    if (!ok) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
    } else {
      try {  // std::stoul and friends throw on a value that is not a number
        ok = apply(flag, argv[i + 1]);
        if (!ok) std::fprintf(stderr, "unknown flag or bad value: %s %s\n", flag.c_str(), argv[i + 1]);
      } catch (const std::exception&) {
        std::fprintf(stderr, "%s %s: not a number\n", flag.c_str(), argv[i + 1]);
        ok = false;
      }
    }
    if (!ok) {
      std::fprintf(stderr, "usage: %s\n", usage);
      return false;
    }
  }
  if (!valid()) {
    std::fprintf(stderr, "usage: %s\n", usage);
    return false;
  }
  return true;
}

void CheckOrExit(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace engram::bench
