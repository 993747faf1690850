#include "engram/clock.h"

namespace engram {
namespace {
class RealClock final : public Clock {
 public:
  Timestamp Now() override {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  }
  std::chrono::steady_clock::time_point Monotonic() override {
    return std::chrono::steady_clock::now();
  }
};
}  // namespace

Clock& SystemClock() {
  static RealClock* clock = new RealClock();  // never destroyed: usable during exit
  return *clock;
}
}  // namespace engram
