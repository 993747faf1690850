// Sandbox overhead (issue 7, DESIGN §8), through the real helper with every layer on:
//   BM_TrivialSnippet/<language>  one trivial program per iteration (print one line);
//                                 p50/p95 per execution (target: JavaScript p50 <= 20 ms).
//   BM_Parallel/<language>        the same with 2 executions at once; executions/s.
//
//   build/bench/sandbox_bench --benchmark_counters_tabular=true
//   (the helper is build/engram-sandbox; pass --helper=PATH to use another)
//
// Executions spend their time in other processes, so every benchmark uses real time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "engram/sandbox.h"

namespace engram {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string g_helper = ENGRAM_SANDBOX_HELPER;

Sandbox& SharedSandbox() {
  static std::unique_ptr<Sandbox> sandbox = [] {
    SandboxOptions o;
    o.helper_path = g_helper;
    Result<std::unique_ptr<Sandbox>> s = OpenLinuxSandbox(o);
    if (!s.ok() || !(*s)->Ready().ok()) {
      std::fprintf(stderr, "sandbox unavailable: %s\n",
                   s.ok() ? std::string((*s)->Ready().message()).c_str() : s.status().ToString().c_str());
      std::exit(1);
    }
    return std::move(*s);
  }();
  return *sandbox;
}

ExecutionRequest Trivial(SandboxLanguage language) {
  ExecutionRequest r;
  r.language = language;
  switch (language) {
    case SandboxLanguage::kJavaScript: r.code = "print(1 + 1)"; break;
    case SandboxLanguage::kPython: r.code = "print(1 + 1)"; break;
    case SandboxLanguage::kWasm:
      r.code = "(module (func (export \"two\") (result i32) i32.const 2))";
      r.entry = "two";
      break;
  }
  return r;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

void BM_TrivialSnippet(benchmark::State& state) {
  auto language = static_cast<SandboxLanguage>(state.range(0));
  Sandbox& sandbox = SharedSandbox();
  if (!sandbox.SupportsLanguage(language)) {
    state.SkipWithError((std::string(SandboxLanguageName(language)) + " is not available here").c_str());
    return;
  }
  ExecutionRequest req = Trivial(language);
  std::vector<double> ms;
  for (auto _ : state) {
    auto start = SteadyClock::now();
    Result<ExecutionResult> r = sandbox.Execute(req);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count());
    if (!r.ok() || r->exit_status != 0) {
      state.SkipWithError(r.ok() ? r->stderr_text.c_str() : r.status().ToString().c_str());
      return;
    }
  }
  state.counters["p50_ms"] = Percentile(ms, 0.50);
  state.counters["p95_ms"] = Percentile(ms, 0.95);
  state.SetLabel(std::string(SandboxLanguageName(language)));
}

void BM_Parallel(benchmark::State& state) {
  auto language = static_cast<SandboxLanguage>(state.range(0));
  Sandbox& sandbox = SharedSandbox();
  if (!sandbox.SupportsLanguage(language)) {
    state.SkipWithError("not available here");
    return;
  }
  ExecutionRequest req = Trivial(language);
  auto start = SteadyClock::now();
  for (auto _ : state) {
    Result<ExecutionResult> r = sandbox.Execute(req);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  // Counters are summed over threads: thread 0 reports the total for all of them.
  if (state.thread_index() == 0 && seconds > 0) {
    state.counters["executions_per_s"] = static_cast<double>(state.iterations()) * state.threads() / seconds;
  }
  state.SetLabel(std::string(SandboxLanguageName(language)) + " x" + std::to_string(state.threads()));
}

void Languages(benchmark::internal::Benchmark* b) {
  b->ArgName("language");
  for (SandboxLanguage l : {SandboxLanguage::kJavaScript, SandboxLanguage::kPython, SandboxLanguage::kWasm}) {
    b->Arg(static_cast<int>(l));
  }
}

BENCHMARK(BM_TrivialSnippet)->Apply(Languages)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_Parallel)->Apply(Languages)->Threads(2)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace engram

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--helper=", 9) == 0) {
      engram::g_helper = argv[i] + 9;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
