#include "transport/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace engram::transport {
namespace {

// Past this many buckets, full ones are swept on the next Acquire, so a stream of
// one-off clients cannot grow the map without bound.
constexpr size_t kSweepAbove = 10'000;

}  // namespace

void RateLimiter::Set(RateLimit limit) {
  limit.burst = std::max<int64_t>(1, limit.burst);
  if (!(limit.per_second > 0)) limit.per_second = 0;
  MutexLock lock(mu_);
  limit_ = limit;
  if (limit_.per_second == 0) {
    buckets_.clear();
    return;
  }
  for (auto& [client, bucket] : buckets_) bucket.tokens = std::min(bucket.tokens, static_cast<double>(limit_.burst));
}

RateLimit RateLimiter::limit() const {
  MutexLock lock(mu_);
  return limit_;
}

std::optional<std::chrono::milliseconds> RateLimiter::Acquire(const std::string& client) {
  MutexLock lock(mu_);
  if (limit_.per_second == 0) return std::nullopt;
  const auto now = clock_.Monotonic();
  const double burst = static_cast<double>(limit_.burst);
  if (buckets_.size() > kSweepAbove) DropFullBuckets(now);
  auto [it, inserted] = buckets_.try_emplace(client, Bucket{burst, now});
  Bucket& bucket = it->second;
  if (!inserted) {
    const double elapsed_s = std::chrono::duration<double>(now - bucket.updated).count();
    if (elapsed_s > 0) bucket.tokens = std::min(burst, bucket.tokens + elapsed_s * limit_.per_second);
    bucket.updated = std::max(bucket.updated, now);
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return std::nullopt;
  }
  const double wait_ms = std::ceil((1 - bucket.tokens) / limit_.per_second * 1000);
  return std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(wait_ms)));
}

size_t RateLimiter::client_count() const {
  MutexLock lock(mu_);
  return buckets_.size();
}

void RateLimiter::DropFullBuckets(std::chrono::steady_clock::time_point now) {
  const double burst = static_cast<double>(limit_.burst);
  const double per_second = limit_.per_second;
  std::erase_if(buckets_, [&](const auto& entry) {
    const double elapsed_s = std::chrono::duration<double>(now - entry.second.updated).count();
    return entry.second.tokens + elapsed_s * per_second >= burst;
  });
}

}  // namespace engram::transport
