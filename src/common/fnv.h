// FNV-1a (64-bit): a fixed, tiny hash for names derived from text (cache folders, PostgreSQL
// channel and schema names). Its value must not change: names made from it are found again
// by later runs and other processes. Not for anything adversarial.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace engram {

inline uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Fnv1a64 as 16 lower-case hex digits.
inline std::string Fnv1aHex(std::string_view text) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Fnv1a64(text)));
  return hex;
}

}  // namespace engram
