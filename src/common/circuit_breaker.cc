#include "common/circuit_breaker.h"

#include <string>

namespace engram {

std::string_view CircuitStateName(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed: return "closed";
    case CircuitState::kOpen: return "open";
    case CircuitState::kHalfOpen: return "half_open";
  }
  return "unknown";
}

Status ValidateCircuitBreakerOptions(const CircuitBreakerOptions& options, std::string_view prefix) {
  if (options.failure_threshold < 1) {
    return InvalidArgumentError(std::string(prefix) + "failure_threshold must be >= 1, got " +
                                std::to_string(options.failure_threshold));
  }
  if (options.open_for.count() <= 0) {
    return InvalidArgumentError(std::string(prefix) + "open_for must be > 0 ms, got " +
                                std::to_string(options.open_for.count()));
  }
  return OkStatus();
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, Clock& clock)
    : options_(options), clock_(clock) {}

CircuitState CircuitBreaker::StateLocked(std::chrono::steady_clock::time_point now) const {
  if (!open_) return CircuitState::kClosed;
  return now - opened_at_ < options_.open_for ? CircuitState::kOpen : CircuitState::kHalfOpen;
}

void CircuitBreaker::OpenLocked(std::chrono::steady_clock::time_point now) {
  open_ = true;
  opened_at_ = now;
  probe_in_flight_ = false;
  ++times_opened_;
}

Status CircuitBreaker::Allow() {
  const auto now = clock_.Monotonic();
  MutexLock lock(mu_);
  switch (StateLocked(now)) {
    case CircuitState::kClosed:
      return OkStatus();
    case CircuitState::kOpen: {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(options_.open_for - (now - opened_at_));
      int64_t seconds = (remaining.count() + 999) / 1000;  // round up: never "retry in 0s"
      return UnavailableError("circuit open (" + std::to_string(consecutive_failures_) +
                              " consecutive failures; retry in " + std::to_string(seconds) + "s)");
    }
    case CircuitState::kHalfOpen:
      // One probe at a time. A probe whose caller never reported back (it should not
      // happen) stops blocking others after another open_for.
      if (probe_in_flight_ && now - probe_started_at_ < options_.open_for) {
        return UnavailableError("circuit half-open (" + std::to_string(consecutive_failures_) +
                                " consecutive failures; a probe call is in flight)");
      }
      probe_in_flight_ = true;
      probe_started_at_ = now;
      return OkStatus();
  }
  return OkStatus();
}

void CircuitBreaker::RecordSuccess() {
  MutexLock lock(mu_);
  open_ = false;
  probe_in_flight_ = false;
  consecutive_failures_ = 0;
}

void CircuitBreaker::RecordFailure() {
  const auto now = clock_.Monotonic();
  MutexLock lock(mu_);
  ++consecutive_failures_;
  if (open_) {
    // A failed probe re-opens for a full pause. A failure reported while open without a
    // probe is a call that started before the breaker opened: it changes nothing else.
    if (probe_in_flight_) OpenLocked(now);
    return;
  }
  if (consecutive_failures_ >= options_.failure_threshold) OpenLocked(now);
}

CircuitState CircuitBreaker::state() const {
  const auto now = clock_.Monotonic();
  MutexLock lock(mu_);
  return StateLocked(now);
}

int CircuitBreaker::consecutive_failures() const {
  MutexLock lock(mu_);
  return consecutive_failures_;
}

int64_t CircuitBreaker::times_opened() const {
  MutexLock lock(mu_);
  return times_opened_;
}

}  // namespace engram
