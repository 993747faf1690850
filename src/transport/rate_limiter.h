// A token-bucket rate limiter keyed by client (an API key id, or a client address when the
// transport needs no key): each client may make `burst` requests at once and `per_second`
// on average after that. The limit can be changed while serving (config reload); buckets
// keep the tokens they have, capped at the new burst.
//
//   RateLimiter limiter;
//   limiter.Set({.per_second = 5, .burst = 10});
//   if (std::optional<std::chrono::milliseconds> wait = limiter.Acquire("key:abc123")) {
//     Reply429(*wait);  // Retry-After
//   }
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/mutex.h"
#include "engram/clock.h"

namespace engram::transport {

struct RateLimit {
  // Average requests per second allowed per client; 0 (the default) turns limiting off.
  double per_second = 0;
  // Requests a client may make at once (the bucket's size); at least 1.
  int64_t burst = 20;
};

class RateLimiter {
 public:
  // `clock` is not owned and must outlive the limiter; tests pass a FakeClock.
  explicit RateLimiter(Clock& clock = SystemClock()) : clock_(clock) {}
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Applies to every later Acquire. A burst below 1 counts as 1. Turning limiting off
  // forgets every bucket, so turning it on again starts clients with full buckets.
  void Set(RateLimit limit) ENGRAM_LOCKS_EXCLUDED(mu_);
  RateLimit limit() const ENGRAM_LOCKS_EXCLUDED(mu_);

  // Takes one token from `client`'s bucket. nullopt: the request may go ahead; otherwise
  // it must be refused, and the result is how long until the next token (at least 1 ms).
  std::optional<std::chrono::milliseconds> Acquire(const std::string& client) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Clients with a bucket (full buckets of idle clients are dropped now and then).
  size_t client_count() const ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated{};
  };

  // Drops buckets that have refilled completely: they behave exactly like a new one.
  void DropFullBuckets(std::chrono::steady_clock::time_point now) ENGRAM_REQUIRES(mu_);

  Clock& clock_;

  mutable Mutex mu_;
  RateLimit limit_ ENGRAM_GUARDED_BY(mu_);
  std::unordered_map<std::string, Bucket> buckets_ ENGRAM_GUARDED_BY(mu_);
};

}  // namespace engram::transport
