// The WebAssembly runtime: wabt's interpreter (Debian's wabt ships libwabt.a), embedded in
// the engram-sandbox helper. wabt's headers compile only as C++17, so they stay in
// wasm_runtime.cc, a C++17 translation unit, behind this plain interface.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace engram::sandbox {

// False when the helper was built without wabt (RunWasm then always fails).
bool WasmRuntimeAvailable();

// Loads `code` (WAT text, or a base64-encoded binary module), instantiates it and calls
// the export `entry` with the numbers of the JSON array `args_json`, printing each result
// on stdout. The module may import nothing but "env" "print_i32"/"print_i64"/"print_f32"/
// "print_f64" (prints the number on a line). Memory is limited to `memory_limit_bytes`
// (memory.grow past it fails with -1, and a run whose memory ends within the last eighth
// of the limit returns kExitEngineMemory). A module whose initial memory is above the
// limit is refused.
// Returns kExitEngineOk, kExitEngineError (bad module, trap) or kExitEngineMemory.
int RunWasm(std::string_view code, const std::string& entry, const std::string& args_json,
            int64_t memory_limit_bytes);

}  // namespace engram::sandbox
