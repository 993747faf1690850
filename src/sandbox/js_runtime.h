// The JavaScript runtime: Duktape (Debian's duktape-dev), embedded in the engram-sandbox
// helper and run inside its jail. Besides ECMAScript 5.1 (and parts of ES2015+) the code
// sees print(...) and console.log/info(...) writing to stdout, console.error/warn(...)
// writing to stderr; it has no file, network or process API at all.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace engram::sandbox {

// Runs `code` as a program named main.js. When `entry` is not empty, then calls the
// global function `entry` with the elements of the JSON array `args_json` (empty: no
// arguments) and prints its result as JSON unless it is undefined. Uncaught errors are
// written to stderr with their stack.
//
// The engine's heap is limited to `heap_limit_bytes`: allocations past it fail (the code
// sees a RangeError) and the run ends with kExitEngineMemory.
// Returns kExitEngineOk, kExitEngineError or kExitEngineMemory (helper_protocol.h).
int RunJavaScript(std::string_view code, const std::string& entry, const std::string& args_json,
                  int64_t heap_limit_bytes);

}  // namespace engram::sandbox
