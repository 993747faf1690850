// Small string helpers shared by every subsystem. Depend on nothing but std.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace engram {

std::string AsciiLower(std::string_view s);
std::string_view StripAsciiWhitespace(std::string_view s);
// Splits on `sep`, trims each piece and drops empty pieces.
std::vector<std::string> SplitAndTrim(std::string_view s, char sep);
// `s` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);
// True if `s` is valid UTF-8.
bool IsValidUtf8(std::string_view s);
// Number of Unicode code points in valid UTF-8 `s`.
size_t Utf8Length(std::string_view s);
// At most `max_chars` code points of `s`, with "…" appended when cut.
std::string Ellipsize(std::string_view s, size_t max_chars);
// The current UTC time, RFC 3339 with milliseconds.
std::string UtcNowIso8601();

}  // namespace engram
