// RFC 3339 timestamps as stored and shown: "2026-11-27T14:16:33.123Z".
#pragma once

#include <string>
#include <string_view>

#include "engram/clock.h"
#include "engram/result.h"

namespace engram {

// Always UTC with milliseconds: "2026-11-27T14:16:33.123Z".
std::string FormatTimestamp(Timestamp t);

// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" ('t'/' ' and 'z' too).
// Errors: kInvalidArgument naming what is wrong.
Result<Timestamp> ParseTimestamp(std::string_view text);

}  // namespace engram
