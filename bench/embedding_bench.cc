// Embedding provider speed (DESIGN §4):
//   BM_HashingEmbed         one ~2 KB episode text, hashing provider, no IDF source
//                           (goal: well under 100 µs per text)
//   BM_HashingEmbedIdf      the same with IDF from a real SQLite store, frequencies cached
//   BM_HashingEmbedBatch    32 texts per call
//   BM_HttpEmbed            the http provider against a loopback OpenAI-compatible server
//                           (cpp-httplib), cache off: one request per call, batch of 32
//   BM_HttpEmbedCached      the same texts again, answered from the embedding cache
//   BM_UseOpen              start-up of the "use" provider: load the model, run a probe;
//                           rss_mb: resident memory with the model loaded
//   BM_UseEmbedQuery        one short query sentence, cache off (p50_ms/p95_ms per call)
//   BM_UseEmbedEpisode      one ~2 KB episode text (the model reads its first 128 tokens)
//   BM_UseEmbedBatch        32 episode texts per call (items/s: the ingest rate)
//
//   build-*/bench/embedding_bench --benchmark_counters_tabular=true
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "embedding/use_provider.h"
#include "engram/embedding.h"
#include "engram/sqlite_backend.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

// About 2 KB: what a finished debugging episode's text looks like.
std::string EpisodeText(int variant) {
  std::string v = std::to_string(variant);
  std::string text =
      "Fix the flaky async test in web-api " + v +
      ": test_checkout_timeout fails about one run in ten on CI but never locally. "
      "Context: rust, tokio, axum; tags async, flaky, ci. Steps: cargo test -p web-api checkout "
      "-- --nocapture (passed 20 times locally); read the CI log: thread 'checkout::timeout' panicked "
      "at 'called Result::unwrap() on an Err value: Elapsed(())', src/checkout/tests.rs:212:41. "
      "grep -rn 'tokio::time::timeout' src/ showed the payment client wraps every call in a 2 second "
      "timeout while the mock server in the fixture sleeps 1.8 seconds before answering, so a loaded "
      "runner tips it over. edit_file src/checkout/tests.rs: replaced the sleeping mock with a "
      "tokio::sync::Notify so the test controls time; paused the tokio clock with "
      "#[tokio::test(start_paused = true)] and advanced it explicitly. cargo test -p web-api "
      "checkout ran 200 times in a loop with no failure; cargo clippy clean; cargo fmt. "
      "Outcome: success, verdict tests pass, artifacts src/checkout/tests.rs, src/checkout/mock.rs. "
      "Verification: 142 tests passed, 0 failed, build ok, 0 lint warnings, coverage 84.2 percent. "
      "Reflection: finished in 9 steps; recovered from a wrong first guess (raising the timeout "
      "hid the race instead of fixing it); insight: tests that sleep to wait for a mock are flaky "
      "under load, drive time explicitly instead. Tools: cargo, grep, edit_file, bash. "
      "Error recovery: timeout raised to 5 seconds still failed 1 in 40 runs, reverted; the paused "
      "clock made the test deterministic and 3x faster (0.4 s instead of 1.3 s). Follow-up: the same "
      "pattern appears in src/refunds/tests.rs and src/invoices/tests.rs, worth fixing the same way. "
      "Notes for next time: check whether the failing test awaits a mock with a fixed sleep, look at "
      "the CI runner's CPU count (2 vCPUs, shared), and prefer tokio::time::pause over longer timeouts; "
      "the retry wrapper in src/payment/client.rs also needs a jittered backoff, tracked as WEB-4521.";
  return text;
}

void BM_HashingEmbed(benchmark::State& state) {
  auto provider = *MakeHashingProvider({}, nullptr);
  std::vector<std::string> texts = {EpisodeText(0)};
  for (auto _ : state) {
    auto r = provider->Embed(texts, EmbedPurpose::kDocument);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(texts[0].size()));
  state.counters["text_bytes"] = static_cast<double>(texts[0].size());
}
BENCHMARK(BM_HashingEmbed)->Unit(benchmark::kMicrosecond);

void BM_HashingEmbedIdf(benchmark::State& state) {
  testing::TempDir dir;
  SqliteOptions options;
  options.path = dir.File("memory.db");
  options.durability = Durability::kNormal;
  auto store = OpenSqliteBackend(options);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  FakeClock clock;
  std::vector<Episode> episodes;
  for (int i = 0; i < 200; ++i) {
    Episode e = testing::Completed(testing::MakeEpisode(clock, 2));
    e.task_description = EpisodeText(i).substr(static_cast<size_t>(i) % 500, 600);
    episodes.push_back(std::move(e));
  }
  if (Status s = (*store)->PutEpisodes(episodes); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  auto provider = *MakeHashingProvider({}, store->get());
  std::vector<std::string> texts = {EpisodeText(0)};
  (void)provider->Embed(texts, EmbedPurpose::kDocument);  // warms the frequency cache
  for (auto _ : state) {
    auto r = provider->Embed(texts, EmbedPurpose::kDocument);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(texts[0].size()));
}
BENCHMARK(BM_HashingEmbedIdf)->Unit(benchmark::kMicrosecond);

void BM_HashingEmbedBatch(benchmark::State& state) {
  auto provider = *MakeHashingProvider({}, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 32; ++i) texts.push_back(EpisodeText(i));
  for (auto _ : state) {
    auto r = provider->Embed(texts, EmbedPurpose::kDocument);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_HashingEmbedBatch)->Unit(benchmark::kMicrosecond);

// A loopback /v1/embeddings server answering fixed vectors of `dim` values.
class LoopbackServer {
 public:
  explicit LoopbackServer(int dim) {
    server_.Post("/v1/embeddings", [dim](const httplib::Request& req, httplib::Response& res) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      size_t n = body.is_discarded() ? 0 : body["input"].size();
      nlohmann::json data = nlohmann::json::array();
      std::vector<float> v(static_cast<size_t>(dim));
      for (int j = 0; j < dim; ++j) v[static_cast<size_t>(j)] = static_cast<float>((j * 7919) % 113) / 113.0f - 0.5f;
      for (size_t i = 0; i < n; ++i) data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", v}});
      res.set_content(nlohmann::json{{"object", "list"}, {"data", data}}.dump(), "application/json");
    });
    server_.set_tcp_nodelay(true);  // else each keep-alive answer waits ~40 ms for a delayed ACK
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LoopbackServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/embeddings"; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

void RunHttp(benchmark::State& state, size_t cache_entries) {
  constexpr int kDim = 256;
  LoopbackServer server(kDim);
  HttpEmbeddingOptions options;
  options.url = server.url();
  options.model = "bench";
  options.dimension = kDim;
  options.cache_entries = cache_entries;
  auto provider = MakeHttpProvider(options, SystemClock());
  if (!provider.ok()) {
    state.SkipWithError(provider.status().ToString().c_str());
    return;
  }
  std::vector<std::string> texts;
  for (int i = 0; i < 32; ++i) texts.push_back(EpisodeText(i));
  for (auto _ : state) {
    auto r = (*provider)->Embed(texts, EmbedPurpose::kDocument);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 32);
  state.counters["requests"] = static_cast<double>((*provider)->Health().requests);
}

void BM_HttpEmbed(benchmark::State& state) { RunHttp(state, 0); }
BENCHMARK(BM_HttpEmbed)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_HttpEmbedCached(benchmark::State& state) { RunHttp(state, 10'000); }
BENCHMARK(BM_HttpEmbedCached)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Resident memory of this process, MB (VmRSS).
double RssMb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return 0;
}

void BM_UseOpen(benchmark::State& state) {
  const double before = RssMb();
  double loaded = 0;
  for (auto _ : state) {
    auto provider = MakeUseProvider({});
    if (!provider.ok()) {
      state.SkipWithError(provider.status().ToString().c_str());
      return;
    }
    loaded = RssMb();
    benchmark::DoNotOptimize(provider);
  }
  state.counters["rss_mb"] = loaded;
  state.counters["rss_model_mb"] = loaded - before;
}
BENCHMARK(BM_UseOpen)->Unit(benchmark::kMillisecond)->Iterations(3);

// Embeds `texts` per call with the cache off; per-call p50/p95 in ms as counters.
void RunUse(benchmark::State& state, const std::vector<std::string>& texts) {
  auto provider = MakeUseProvider({.batch_size = 32, .cache_entries = 0});
  if (!provider.ok()) {
    state.SkipWithError(provider.status().ToString().c_str());
    return;
  }
  std::vector<double> ms;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto r = (*provider)->Embed(texts, EmbedPurpose::kDocument);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    benchmark::DoNotOptimize(r);
  }
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p95_ms"] = ms[std::min(ms.size() - 1, ms.size() * 95 / 100)];
  state.counters["rss_mb"] = RssMb();
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(texts.size()));
}

void BM_UseEmbedQuery(benchmark::State& state) {
  RunUse(state, {"how did we fix the flaky checkout test that timed out on CI?"});
}
BENCHMARK(BM_UseEmbedQuery)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_UseEmbedEpisode(benchmark::State& state) { RunUse(state, {EpisodeText(0)}); }
BENCHMARK(BM_UseEmbedEpisode)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_UseEmbedBatch(benchmark::State& state) {
  std::vector<std::string> texts;
  for (int i = 0; i < 32; ++i) texts.push_back(EpisodeText(i));
  RunUse(state, texts);
}
BENCHMARK(BM_UseEmbedBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace engram

BENCHMARK_MAIN();
