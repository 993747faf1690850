// What redaction costs a step (issue 11 goal: at most 50 µs p50 added to a 4 KiB step).
//   BM_Redact4KiB/<text>    Redactor::RedactInPlace on 4 KiB of text; p50/p99 µs per call.
//       typical       test runner, compiler and git output with ids and hashes, no secrets
//       code          the first 4 KiB of src/core/memory.cc
//       corpus        4 KiB windows over tests/data/secrets (tool output dense with secrets)
//       env_dump      tests/data/secrets/env_dump.txt repeated: nearly every line a secret
//   BM_AddStep/<off|on>     Memory::AddStep of a step with a 4 KiB output and a small
//       parameters object, over a backend that stores nothing: the difference between
//       on and off is what redaction adds to a step (validation and JSON normalization
//       are in both).
//
//   build/bench/redaction_bench --benchmark_counters_tabular=true
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/redaction.h"
#include "engram/clock.h"
#include "engram/memory.h"
#include "engram/storage.h"

namespace engram {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr size_t kStepBytes = 4096;

double Micros(SteadyClock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// The p-th percentile (0 < p <= 1) by nearest rank. Sorts `samples`.
double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(samples.size()) + 0.999999);
  return samples[std::clamp<size_t>(rank, 1, samples.size()) - 1];
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A corpus file with its ⟦kind:value⟧ markers removed (tests/data/secrets/README.md).
std::string StripMarkers(const std::string& raw) {
  static const std::string kOpen = "\u27e6", kClose = "\u27e7";
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t open = raw.find(kOpen, pos);
    if (open == std::string::npos) break;
    out.append(raw, pos, open - pos);
    size_t colon = raw.find(':', open);
    size_t close = raw.find(kClose, open);
    if (colon == std::string::npos || close == std::string::npos) break;
    out.append(raw, colon + 1, close - colon - 1);
    pos = close + kClose.size();
  }
  out.append(raw, pos, std::string::npos);
  return out;
}

// `text` repeated or cut to `bytes`, ending on a UTF-8 character boundary.
std::string Fit(const std::string& text, size_t bytes) {
  std::string out;
  while (out.size() < bytes && !text.empty()) out += text;
  out.resize(std::min(out.size(), bytes));
  while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
  if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80)) out.pop_back();
  return out;
}

std::string TypicalOutput() {
  std::string out = "$ cargo test -p payments\n   Compiling payments v0.4.2 (/home/dev/src/payments)\n";
  for (int i = 0; out.size() < kStepBytes; ++i) {
    out += "test client::retry::tests::backoff_" + std::to_string(i) + " ... " + (i % 17 == 3 ? "FAILED" : "ok") +
           "\n";
    if (i % 9 == 0) {
      out += "warning: unused variable: `attempt` --> src/client/retry.rs:" + std::to_string(40 + i) +
             ":13\n  = note: `#[warn(unused_variables)]` on by default\n";
    }
    if (i % 13 == 0) {
      out += "commit 3f786850e387550fdab836ed7e6dc881de23001b (request 7d9f0e2a-41c3-4b8e-9a6d-2f5c8e1b3a70)\n"
             "2025-03-04T10:12:45.123Z INFO payments::http status=200 latency_ms=12 max_tokens=4096\n";
    }
  }
  return Fit(out, kStepBytes);
}

std::vector<std::string> CorpusWindows() {
  std::string all;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(ENGRAM_SECRETS_CORPUS_DIR)) {
    if (entry.path().extension() == ".txt") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) all += StripMarkers(ReadFile(p));
  std::vector<std::string> windows;
  for (size_t at = 0; at + kStepBytes <= all.size(); at += kStepBytes / 2) {
    windows.push_back(Fit(all.substr(at, kStepBytes + 4), kStepBytes));
  }
  return windows;
}

std::vector<std::string> Inputs(const std::string& name) {
  if (name == "typical") return {TypicalOutput()};
  if (name == "code") return {Fit(ReadFile(ENGRAM_SOURCE_DIR "/src/core/memory.cc"), kStepBytes)};
  if (name == "corpus") return CorpusWindows();
  return {Fit(StripMarkers(ReadFile(ENGRAM_SECRETS_CORPUS_DIR "/env_dump.txt")), kStepBytes)};
}

void BM_Redact4KiB(benchmark::State& state, const std::string& name) {
  std::vector<std::string> inputs = Inputs(name);
  Redactor redactor{RedactionOptions{}};
  std::vector<double> micros;
  size_t i = 0, redacted = 0;
  for (auto _ : state) {
    std::string text = inputs[i++ % inputs.size()];
    auto start = SteadyClock::now();
    redacted += redactor.RedactInPlace(text);
    micros.push_back(Micros(SteadyClock::now() - start));
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kStepBytes));
  state.counters["secrets_per_4KiB"] = static_cast<double>(redacted) / static_cast<double>(state.iterations());
  state.counters["p50_us"] = Percentile(micros, 0.50);
  state.counters["p99_us"] = Percentile(micros, 0.99);
}

// Stores nothing: AddStep then costs only what Memory does before storage.
class NullBackend final : public StorageBackend {
 public:
  std::string Name() const override { return "null"; }
  std::string Location() const override { return "nowhere"; }
  int SchemaVersion() const override { return 1; }
  Status CreateEpisode(const Episode&) override { return OkStatus(); }
  Status PutEpisodes(std::span<const Episode>) override { return OkStatus(); }
  Result<int> AppendStep(std::string_view, const Step&) override { return 1; }
  Status CompleteEpisode(const Episode&) override { return OkStatus(); }
  Result<Episode> GetEpisode(std::string_view) override { return NotFoundError("null backend"); }
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter&) override {
    return UnimplementedError("null backend");
  }
  Result<bool> DeleteEpisode(std::string_view) override { return false; }
  Result<StoreStats> Stats() override { return StoreStats{}; }
  // The retrieval index and learning tables: the add_step path under measure never
  // touches them, so NullBackend keeps none and says so.
  Result<int64_t> Generation() override { return 0; }
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest&) override { return NotStored("a text index"); }
  Result<TermStats> GetTermStats(std::span<const std::string>) override { return NotStored("a text index"); }
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override { return NotStored("embeddings"); }
  Status SetEmbeddingSpace(const EmbeddingSpace&) override { return NotStored("embeddings"); }
  Status PutVectors(const EmbeddingSpace&, std::span<const EpisodeVector>) override { return NotStored("embeddings"); }
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace&, int64_t) override {
    return NotStored("embeddings");
  }
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace&, std::string_view, size_t) override {
    return NotStored("embeddings");
  }
  Status MergePatterns(std::span<const std::string>, const std::function<Status(std::vector<Pattern>&)>&) override {
    return NotStored("patterns");
  }
  Result<Pattern> GetPattern(std::string_view) override { return NotStored("patterns"); }
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter&) override { return NotStored("patterns"); }
  Status SetPatternDecay(std::span<const std::pair<std::string, double>>) override { return NotStored("patterns"); }
  Status ResetLearning() override { return NotStored("patterns"); }
  Status PutHeuristics(std::span<const Heuristic>) override { return NotStored("heuristics"); }
  Result<std::vector<Heuristic>> ListHeuristics(size_t) override { return NotStored("heuristics"); }
  Status RecordAttributions(std::span<const Attribution>) override { return NotStored("attributions"); }
  Result<std::vector<std::string>> PendingExtraction(size_t) override { return NotStored("extraction marks"); }
  Status MarkExtracted(std::span<const std::string>) override { return NotStored("extraction marks"); }
  Result<size_t> CommitExtraction(const ExtractionBatch&) override { return NotStored("patterns"); }
  Status CheckHealth() override { return OkStatus(); }

 private:
  static Status NotStored(const char* what) {
    return UnimplementedError(std::string("NullBackend does not store ") + what);
  }
};

void BM_AddStep(benchmark::State& state, bool redaction) {
  NullBackend backend;
  Memory memory(backend, SystemClock(), nullptr, NewRedactor(RedactionOptions{.enabled = redaction}));
  std::vector<std::string> outputs = CorpusWindows();
  outputs.push_back(TypicalOutput());
  const std::string id = "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d";
  std::vector<double> micros;
  size_t i = 0;
  for (auto _ : state) {
    NewStep step;
    step.tool = "bash";
    step.action = "cargo test -p payments -- --nocapture";
    step.parameters_json = R"({"command": "cargo test -p payments", "cwd": "/home/dev/src/payments", "timeout": 600})";
    step.result = StepResult{StepStatus::kSuccess, outputs[i++ % outputs.size()], std::string("1 test failed")};
    auto start = SteadyClock::now();
    Result<int> added = memory.AddStep(id, std::move(step));
    micros.push_back(Micros(SteadyClock::now() - start));
    if (!added.ok()) state.SkipWithError(std::string(added.status().message()).c_str());
  }
  state.counters["p50_us"] = Percentile(micros, 0.50);
  state.counters["p99_us"] = Percentile(micros, 0.99);
}

BENCHMARK_CAPTURE(BM_Redact4KiB, typical, std::string("typical"));
BENCHMARK_CAPTURE(BM_Redact4KiB, code, std::string("code"));
BENCHMARK_CAPTURE(BM_Redact4KiB, corpus, std::string("corpus"));
BENCHMARK_CAPTURE(BM_Redact4KiB, env_dump, std::string("env_dump"));
BENCHMARK_CAPTURE(BM_AddStep, off, false);
BENCHMARK_CAPTURE(BM_AddStep, on, true);

}  // namespace
}  // namespace engram

BENCHMARK_MAIN();
