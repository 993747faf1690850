#include "common/histogram.h"

#include <algorithm>
#include <cmath>

namespace engram {

void LatencyHistogram::Observe(double ms) {
  if (!(ms > 0)) ms = 0;  // also NaN
  // The first bound >= ms: buckets are upper-inclusive, as Prometheus' `le` says.
  size_t i = static_cast<size_t>(std::lower_bound(kLatencyBucketsMs.begin(), kLatencyBucketsMs.end(), ms) -
                                 kLatencyBucketsMs.begin());
  ++buckets[i];
  sum_ms += ms;
  ++count;
}

void LatencyHistograms::Observe(std::string_view name, double ms) {
  MutexLock lock(mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) it = histograms_.emplace(std::string(name), LatencyHistogram{}).first;
  it->second.Observe(ms);
}

std::map<std::string, LatencyHistogram, std::less<>> LatencyHistograms::Snapshot() const {
  MutexLock lock(mu_);
  return histograms_;
}

}  // namespace engram
