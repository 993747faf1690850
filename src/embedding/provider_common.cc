#include "embedding/provider_common.h"

#include <cmath>

#include "model/search_text.h"

namespace engram {

std::string_view BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed: return "closed";
    case BreakerState::kOpen: return "open";
    case BreakerState::kHalfOpen: return "half_open";
  }
  return "unknown";
}

namespace embedding {

void L2Normalise(std::span<float> v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  if (sum <= 0) return;
  const double inv = 1.0 / std::sqrt(sum);
  for (float& x : v) x = static_cast<float>(x * inv);
}

bool HasSearchWords(std::string_view text) {
  bool any = false;
  ForEachSearchToken(text, [&](const std::string&) { any = true; });
  return any;
}

std::string Redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  constexpr std::string_view kMark = "[redacted]";
  size_t pos = 0;
  while ((pos = text.find(secret, pos)) != std::string::npos) {
    text.replace(pos, secret.size(), kMark);
    pos += kMark.size();
  }
  return text;
}

BreakerState ToBreakerState(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed: return BreakerState::kClosed;
    case CircuitState::kOpen: return BreakerState::kOpen;
    case CircuitState::kHalfOpen: return BreakerState::kHalfOpen;
  }
  return BreakerState::kClosed;
}

}  // namespace embedding
}  // namespace engram
