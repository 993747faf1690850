// A Clock for tests: time stands still until Advance() or Set(). Thread-safe.
#pragma once

#include <atomic>

#include "engram/clock.h"

namespace engram {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Timestamp start = Timestamp(std::chrono::milliseconds(1'767'225'600'000)))
      : now_ms_(start.time_since_epoch().count()) {}

  Timestamp Now() override { return Timestamp(std::chrono::milliseconds(now_ms_.load())); }
  std::chrono::steady_clock::time_point Monotonic() override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(now_ms_.load()));
  }

  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }
  void Set(Timestamp t) { now_ms_ = t.time_since_epoch().count(); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace engram
