// CircuitBreaker: stops calling a remote service that keeps failing, and probes it again
// after a pause (the embedding http provider and the Turso backend use it).
//
//   closed ──(failure_threshold consecutive failures)──▶ open
//   open ──(open_for elapsed)──▶ half-open: the next Allow() is the one probe
//   half-open ──probe succeeds──▶ closed        half-open ──probe fails──▶ open again
//
//   CircuitBreaker breaker({.failure_threshold = 5, .open_for = 30s}, clock);
//   ENGRAM_RETURN_IF_ERROR(breaker.Allow());   // kUnavailable at once while open
//   Status s = CallTheService();
//   s.ok() ? breaker.RecordSuccess() : breaker.RecordFailure();
//
// Time is read from the injected Clock's Monotonic(), so tests drive it with FakeClock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/mutex.h"
#include "engram/clock.h"
#include "engram/status.h"

namespace engram {

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState state);  // "closed", "open", "half_open"

struct CircuitBreakerOptions {
  // Consecutive failed calls that open the breaker. >= 1.
  int failure_threshold = 5;
  // How long it stays open before one probe call is let through. > 0.
  std::chrono::milliseconds open_for{30'000};
};

// Thread-safe.
class CircuitBreaker {
 public:
  // REQUIRES: options are valid (see ValidateCircuitBreakerOptions); `clock` outlives *this.
  CircuitBreaker(const CircuitBreakerOptions& options, Clock& clock);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to make one call. OK: go ahead, then report the outcome with RecordSuccess or
  // RecordFailure (in half-open, this caller is the probe). kUnavailable, without any
  // call being made, while open or while the half-open probe is in flight:
  // "circuit open (5 consecutive failures; retry in 12s)".
  Status Allow() ENGRAM_LOCKS_EXCLUDED(mu_);

  // A call succeeded: closes the breaker and clears the failure count.
  void RecordSuccess() ENGRAM_LOCKS_EXCLUDED(mu_);
  // A call failed: counts it; at failure_threshold consecutive failures (or when the
  // half-open probe fails) the breaker opens for open_for.
  void RecordFailure() ENGRAM_LOCKS_EXCLUDED(mu_);

  // The state now (an open breaker whose pause has passed reads as half-open).
  CircuitState state() const ENGRAM_LOCKS_EXCLUDED(mu_);
  int consecutive_failures() const ENGRAM_LOCKS_EXCLUDED(mu_);
  // Times the breaker has opened since construction.
  int64_t times_opened() const ENGRAM_LOCKS_EXCLUDED(mu_);

  const CircuitBreakerOptions& options() const { return options_; }

 private:
  CircuitState StateLocked(std::chrono::steady_clock::time_point now) const ENGRAM_REQUIRES(mu_);
  void OpenLocked(std::chrono::steady_clock::time_point now) ENGRAM_REQUIRES(mu_);

  // Constant after construction.
  const CircuitBreakerOptions options_;
  Clock& clock_;

  mutable Mutex mu_;
  bool open_ ENGRAM_GUARDED_BY(mu_) = false;  // open or half-open
  std::chrono::steady_clock::time_point opened_at_ ENGRAM_GUARDED_BY(mu_);
  bool probe_in_flight_ ENGRAM_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point probe_started_at_ ENGRAM_GUARDED_BY(mu_);
  int consecutive_failures_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t times_opened_ ENGRAM_GUARDED_BY(mu_) = 0;
};

// kInvalidArgument naming the bad field ("`prefix`failure_threshold must be >= 1").
Status ValidateCircuitBreakerOptions(const CircuitBreakerOptions& options, std::string_view prefix = "");

}  // namespace engram
