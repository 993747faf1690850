#include "common/ids.h"

#include <array>
#include <cstdint>
#include <random>

#include "common/mutex.h"

namespace engram {
namespace {

struct UuidState {
  Mutex mu;
  std::mt19937_64 rng ENGRAM_GUARDED_BY(mu){std::random_device{}()};
  int64_t last_ms ENGRAM_GUARDED_BY(mu) = 0;
  uint16_t counter ENGRAM_GUARDED_BY(mu) = 0;  // 12-bit rand_a, monotonic within a ms
};

UuidState& State() {
  static UuidState* state = new UuidState();
  return *state;
}

}  // namespace

std::string NewUuidV7(Clock& clock) {
  int64_t ms = clock.Now().time_since_epoch().count();
  uint16_t counter;
  uint64_t rand_b;
  {
    UuidState& s = State();
    MutexLock lock(s.mu);
    if (ms <= s.last_ms) {
      // Same (or earlier) millisecond: keep order by bumping the counter (RFC 9562 §6.2
      // method 1); on overflow borrow the next millisecond.
      ms = s.last_ms;
      if (++s.counter > 0x0fff) {
        ++ms;
        s.counter = static_cast<uint16_t>(s.rng() & 0x03ff);
      }
    } else {
      s.counter = static_cast<uint16_t>(s.rng() & 0x03ff);  // leave room to count up
    }
    s.last_ms = ms;
    counter = s.counter;
    rand_b = s.rng();
  }
  std::array<uint8_t, 16> b{};
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(static_cast<uint64_t>(ms) >> (40 - 8 * i));
  b[6] = static_cast<uint8_t>(0x70 | ((counter >> 8) & 0x0f));
  b[7] = static_cast<uint8_t>(counter & 0xff);
  for (int i = 0; i < 8; ++i) b[8 + i] = static_cast<uint8_t>(rand_b >> (56 - 8 * i));
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10

  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0x0f]);
  }
  return out;
}

bool IsUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace engram
