// The synthetic store of the scale benchmarks (retrieval_scale_bench, storage_bench,
// cache_mix_bench): completed episodes generated from bench/eval's corpus, and the queries
// asked of them, so every benchmark that loads "100k episodes" loads the same kind of text.
//
//   ENGRAM_ASSIGN_OR_RETURN(bench::ScaleCorpus corpus, bench::ScaleCorpus::Open("corpus", "bench/eval"));
//   std::mt19937_64 rng(42);
//   FakeClock clock;
//   Episode e = corpus.Generate(rng, clock);        // completed, with reward and reflection
//   std::string q = corpus.Query(rng);
//
// Vocabularies: "corpus" takes one bench/eval episode's task, steps and outcome per
// synthetic episode, swaps a few words for words of another eval episode and adds a unique
// ticket number, so word frequencies follow real coding text; its queries are bench/eval's.
// "synthetic" uses a ~100-word vocabulary in which every word is in a quarter of the
// episodes: a worst case for the full-text index. The same seed yields the same episodes.
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "engram/memory.h"
#include "engram/result.h"
#include "engram/status.h"
#include "engram/types.h"

namespace engram::bench {

// Thread-compatible: Generate and Query only read the templates (the rng and clock are the
// caller's).
class ScaleCorpus {
 public:
  // Errors: kInvalidArgument for a vocabulary other than "corpus" or "synthetic";
  // kNotFound if "corpus" finds no episodes or queries under `eval_dir` (corpus/, queries/).
  static Result<ScaleCorpus> Open(std::string_view vocabulary, const std::string& eval_dir);
  // Open, or prints the error and exits with status 2 (for a benchmark's main).
  static ScaleCorpus OpenOrExit(std::string_view vocabulary, const std::string& eval_dir);

  // A completed episode with a fresh UUIDv7 id; advances `clock` by 7 s.
  Episode Generate(std::mt19937_64& rng, FakeClock& clock) const;
  // A query text of the vocabulary.
  std::string Query(std::mt19937_64& rng) const;
  // One of the domains the episodes use (a query_memory filter).
  const std::string& Domain(std::mt19937_64& rng) const;

  const std::string& vocabulary() const { return vocabulary_; }

 private:
  ScaleCorpus() = default;

  std::string vocabulary_;
  std::vector<nlohmann::json> episodes_;  // bench/eval/corpus, for "corpus"
  std::vector<std::string> queries_;      // bench/eval/queries, for "corpus"
};

// The episode's task as create_episode receives it, and each of its steps as
// add_episode_step does: to replay a generated episode live, through Memory.
NewEpisode ToNewEpisode(const Episode& episode);
NewStep ToNewStep(const Step& step);

// The p-th quantile (0 ≤ p ≤ 1) of `v` by rounding to the nearest rank; 0 when empty.
double Percentile(std::vector<double> v, double p);

// Seconds since `since` on the steady clock.
double SecondsSince(std::chrono::steady_clock::time_point since);

// This process's resident set size in MiB (VmRSS).
double RssMiB();

// The 1-minute load average, to print beside the figures (the machine is shared).
double LoadAverage();

// Calls `apply(flag, value)` for each "--flag value" pair of argv[1..], then `valid()`.
// Returns false after printing why and `usage` if a flag lacks its value, `apply` returns
// false (an unknown flag or a bad value), a number in a value does not parse, or `valid()`
// returns false (a required flag missing, a value out of range).
bool ParseFlags(int argc, char** argv, const char* usage,
                const std::function<bool(const std::string& flag, const std::string& value)>& apply,
                const std::function<bool()>& valid);

// Prints "`what`: status" and exits with status 1 unless `s` is OK.
void CheckOrExit(const Status& s, const char* what);

}  // namespace engram::bench
