// Clock: where engram reads the time, so tests can inject a FakeClock (Envoy's
// TimeSource). Timestamps are milliseconds since the Unix epoch, UTC.
#pragma once

#include <chrono>
#include <cstdint>

namespace engram {

using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// Thread-safe.
class Clock {
 public:
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  // Wall-clock time, for timestamps that are stored.
  virtual Timestamp Now() = 0;
  // Monotonic time, for durations.
  virtual std::chrono::steady_clock::time_point Monotonic() = 0;

 protected:
  Clock() = default;
};

// The process's real clock. Thread-safe; lives forever.
Clock& SystemClock();

}  // namespace engram
