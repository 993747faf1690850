// Latency histograms with fixed buckets, in the shape Prometheus exports (DESIGN §9):
// a count per bucket, the sum and the count of every observation.
//
//   LatencyHistograms storage;
//   storage.Observe("GetEpisode", 0.42);
//   for (const auto& [op, h] : storage.Snapshot()) Export(op, h);
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/mutex.h"

namespace engram {

// Upper bounds, in milliseconds, of the latency buckets; a last, unbounded bucket (+Inf)
// follows them. From 50 µs (an LMDB cache hit) to 10 s (a sandboxed run at its limit).
inline constexpr std::array<double, 17> kLatencyBucketsMs = {0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,    10,   25,
                                                             50,   100, 250,  500, 1000, 2500, 5000, 10000};

// One histogram. Thread-compatible.
struct LatencyHistogram {
  // buckets[i]: observations in (bound[i-1], bound[i]] — per bucket, NOT cumulative;
  // buckets.back(): those above every bound.
  std::array<int64_t, kLatencyBucketsMs.size() + 1> buckets{};
  double sum_ms = 0;
  int64_t count = 0;

  // Negative or NaN latencies (a clock that stepped) count as 0.
  void Observe(double ms);
};

// Histograms by name (a storage operation, a tool). Thread-safe.
class LatencyHistograms {
 public:
  void Observe(std::string_view name, double ms) ENGRAM_LOCKS_EXCLUDED(mu_);
  // A copy of every histogram observed so far, by name.
  std::map<std::string, LatencyHistogram, std::less<>> Snapshot() const ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  mutable Mutex mu_;
  std::map<std::string, LatencyHistogram, std::less<>> histograms_ ENGRAM_GUARDED_BY(mu_);
};

}  // namespace engram
