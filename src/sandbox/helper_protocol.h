// What engram (the parent) and the engram-sandbox helper say to each other. The parent
// starts the helper with an empty environment, the program on stdin, stdout and stderr
// as pipes it reads with caps, and a control pipe as fd 3. Arguments are `--name=value`
// flags (kFlag* below).
//
// The helper writes control lines to fd 3, one event per line, fields separated by one
// space, the last field running to the end of the line (newlines in it become spaces):
//
//   layer NAME ok|missing DETAIL   (probe mode) one line per layer
//   error LAYER DETAIL             a layer could not be set up: nothing ran
//   ready                          every layer is in place; the runtime starts
//   violation KIND DETAIL          something was refused or stopped (see Violation)
//   exit CODE | signal N           how the runtime process ended
//
// Untrusted code never holds fd 3: the runtime process closes it before running code, so
// control lines cannot be forged by it (violations are reported by the helper's
// supervisor process, which runs no untrusted code).
#pragma once

#include <string>
#include <string_view>

namespace engram::sandbox {

inline constexpr int kControlFd = 3;

inline constexpr std::string_view kFlagProbe = "--probe";
inline constexpr std::string_view kFlagLanguage = "--language=";
inline constexpr std::string_view kFlagScratch = "--scratch=";
inline constexpr std::string_view kFlagTimeoutMs = "--timeout-ms=";
inline constexpr std::string_view kFlagMemoryMb = "--memory-mb=";
inline constexpr std::string_view kFlagMaxFileBytes = "--max-file-bytes=";
inline constexpr std::string_view kFlagMaxProcesses = "--max-processes=";
inline constexpr std::string_view kFlagPython = "--python=";
inline constexpr std::string_view kFlagEntry = "--entry=";
inline constexpr std::string_view kFlagArgs = "--args=";

// The helper's exit code when a layer could not be set up (an `error` line says which).
inline constexpr int kExitSetupFailed = 125;

// Exit codes of the in-process engines (JavaScript, WebAssembly), whose code cannot call
// exit(): the supervisor turns kExitEngineMemory into a "memory" violation.
inline constexpr int kExitEngineOk = 0;
inline constexpr int kExitEngineError = 1;
inline constexpr int kExitEngineMemory = 3;

// The most bytes of program the helper reads from stdin.
inline constexpr size_t kMaxCodeBytes = 4 << 20;

// Layer names, as used in `layer` and `error` lines and in Status messages.
inline constexpr std::string_view kLayerUserNamespace = "user-namespace";
inline constexpr std::string_view kLayerPidNamespace = "pid-namespace";
inline constexpr std::string_view kLayerMountNamespace = "mount-namespace";
inline constexpr std::string_view kLayerIpcUtsNamespace = "ipc-uts-namespace";
inline constexpr std::string_view kLayerNetworkNamespace = "network-namespace";
inline constexpr std::string_view kLayerRlimits = "rlimits";
inline constexpr std::string_view kLayerCapabilities = "capabilities";
inline constexpr std::string_view kLayerNoNewPrivs = "no-new-privs";
inline constexpr std::string_view kLayerLandlock = "landlock";
inline constexpr std::string_view kLayerSeccomp = "seccomp";
inline constexpr std::string_view kLayerRuntime = "runtime";

// One control line (with its trailing newline); `detail` has newlines replaced by spaces
// and is cut to 512 bytes.
inline std::string ControlLine(std::string_view kind, std::string_view a, std::string_view detail = {}) {
  std::string line(kind);
  if (!a.empty()) {
    line += ' ';
    line += a;
  }
  if (!detail.empty()) {
    line += ' ';
    for (char c : detail.substr(0, 512)) line += (c == '\n' || c == '\r') ? ' ' : c;
  }
  line += '\n';
  return line;
}

}  // namespace engram::sandbox
