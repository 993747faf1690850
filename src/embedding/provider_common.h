// Helpers shared by the embedding providers. Internal to src/embedding.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "common/circuit_breaker.h"
#include "engram/embedding.h"

namespace engram::embedding {

// Scales `v` to unit L2 norm (in double precision); a zero vector stays zero.
void L2Normalise(std::span<float> v);

// True when `text` holds at least one search word (model/search_text.h). Texts without
// one embed as the zero vector in every provider.
bool HasSearchWords(std::string_view text);

// `text` with every occurrence of `secret` replaced by "[redacted]" (no-op when empty).
std::string Redact(std::string text, std::string_view secret);

BreakerState ToBreakerState(CircuitState state);

}  // namespace engram::embedding
