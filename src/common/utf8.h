// Cleaning text to well-formed UTF-8, for stores that refuse anything else (PostgreSQL's
// text, Turso's JSON).
#pragma once

#include <string>
#include <string_view>

namespace engram {

// Appends the well-formed UTF-8 sequences of `bytes` to `out`, dropping every byte that is not
// part of one (overlong forms, surrogates, code points above U+10FFFF, a character cut short).
// NUL, being well-formed, is kept.
void AppendValidUtf8(std::string_view bytes, std::string& out);

}  // namespace engram
