// Episode and pattern ids: UUID version 7 (RFC 9562), time-ordered, so ids sort by
// creation time and index well in B-trees.
#pragma once

#include <string>
#include <string_view>

#include "engram/clock.h"

namespace engram {

// A new UUIDv7 string ("0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d"), lower case.
// Within one process, ids from the same millisecond still increase. Thread-safe.
std::string NewUuidV7(Clock& clock);

// True if `text` is a UUID in canonical 8-4-4-4-12 hex form (any version).
bool IsUuid(std::string_view text);

}  // namespace engram
