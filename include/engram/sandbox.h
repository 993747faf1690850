// engram::Sandbox: runs untrusted code (JavaScript, WebAssembly, Python) with no way out
// (DESIGN §8). An execution is a separate process jailed in six layers that fail closed:
//
//   1. process isolation: new user, PID, IPC, UTS and mount namespaces;
//   2. network: an empty network namespace, and seccomp refuses socket-family syscalls;
//   3. filesystem: Landlock allows the runtime's own files read-only and a fresh empty
//      scratch directory read-write, nothing else;
//   4. resources: rlimits (CPU, address space, file size, open files, processes) and the
//      engine's own budgets;
//   5. static analysis: known escape idioms are rejected before anything runs;
//   6. monitoring: a wall-clock watchdog that kills the whole process group, output caps,
//      refused syscalls reported as violations, one audit log line per execution.
//
// If a layer cannot be set up on this host, nothing runs and Execute returns an error that
// names the layer. There is never a weaker fallback.
//
//   SandboxOptions options;                       // helper found next to the binary
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Sandbox> sandbox, OpenLinuxSandbox(options));
//   ExecutionRequest request{.language = SandboxLanguage::kJavaScript, .code = "print(6*7)"};
//   ENGRAM_ASSIGN_OR_RETURN(ExecutionResult result, sandbox->Execute(request));
//   // result.stdout_text == "42\n", result.exit_status == 0, result.violations empty
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/status.h"

namespace engram {

enum class SandboxLanguage { kJavaScript, kPython, kWasm };

// "javascript", "python", "wasm".
std::string_view SandboxLanguageName(SandboxLanguage language);
// Accepts the names above and the aliases "js", "py", "python3", "wat", "webassembly"
// (case-insensitive). Errors: kInvalidArgument naming the accepted names.
Result<SandboxLanguage> ParseSandboxLanguage(std::string_view name);

// One execution to run. Thread-compatible.
struct ExecutionRequest {
  SandboxLanguage language = SandboxLanguage::kJavaScript;
  // The program: JavaScript or Python source; for kWasm, WAT text or a base64-encoded
  // binary module.
  std::string code;
  // Wall-clock limit; unset uses SandboxOptions::default_timeout. Capped at
  // SandboxOptions::max_timeout.
  std::optional<std::chrono::milliseconds> timeout;
  // Memory limit in MiB; unset uses SandboxOptions::default_memory_mb. Capped at
  // SandboxOptions::max_memory_mb.
  std::optional<int64_t> memory_mb;
  // Function to call after the program has been loaded: a global function (JavaScript,
  // Python) or an export (WebAssembly, where it is required). Empty: just run the program.
  std::string entry;
  // Arguments for `entry` as a JSON array text ("[1, 2.5, \"x\"]"); empty means none.
  // WebAssembly takes numbers only.
  std::string args_json;
  // Who asked (an API key id), for the audit log line; may be empty.
  std::string caller;
};

// Something the sandbox refused or stopped. Thread-compatible.
struct Violation {
  // "static_analysis" (rejected before running), "syscall" (refused by seccomp),
  // "filesystem" (refused by Landlock), "timeout", "cpu_time", "memory", "output_limit",
  // "process_limit", "file_size", "killed".
  std::string kind;
  std::string detail;  // e.g. "socket" for kind "syscall"; a sentence otherwise
};

// The outcome of an execution that was set up. Thread-compatible.
struct ExecutionResult {
  std::string stdout_text;  // at most SandboxOptions::max_output_bytes
  std::string stderr_text;  // at most SandboxOptions::max_output_bytes
  // The exit code; 128 + N when killed by signal N; -1 when nothing ran (static analysis
  // rejected the code).
  int exit_status = -1;
  int64_t duration_ms = 0;
  std::vector<Violation> violations;
};

// Whether one layer can be set up on this host. Thread-compatible.
struct SandboxLayerStatus {
  std::string name;    // "user-namespace", "landlock", "seccomp", ...
  bool available = false;
  std::string detail;  // "ABI 7", or why it is missing
};

// Options for OpenLinuxSandbox. Thread-compatible.
struct SandboxOptions {
  // The engram-sandbox helper binary. Empty: "engram-sandbox" in the directory of the
  // running executable (/proc/self/exe).
  std::string helper_path;
  // Where fresh scratch directories are created (one per execution, removed after it).
  // Empty: $TMPDIR, else /tmp. When engram runs as root the code runs as nobody, so the
  // folder must be searchable by others (o+x).
  std::string scratch_root;
  // Per-call limits: defaults when the request leaves them unset, and caps.
  std::chrono::milliseconds default_timeout{5000};
  std::chrono::milliseconds max_timeout{30000};
  int64_t default_memory_mb = 128;
  int64_t max_memory_mb = 512;
  // Bytes of stdout and of stderr kept; more output kills the execution and is reported
  // as an "output_limit" violation. Default 1 MiB.
  int64_t max_output_bytes = 1 << 20;
  // Largest file the code may write in its scratch directory (RLIMIT_FSIZE). Default 16 MiB.
  int64_t max_file_bytes = 16 << 20;
  // Processes the code may create in one execution (besides itself). Default 16.
  int64_t max_processes = 16;
  // The system Python used for kPython. Missing: Python executions fail with kUnavailable.
  std::string python_path = "/usr/bin/python3";
  // Runs static analysis before every execution (layer 5). Only tests of the deeper
  // layers turn it off.
  bool static_analysis_for_test = true;
};

// Runs untrusted code. Implementations: the Linux sandbox (OpenLinuxSandbox).
// Thread-safe: executions may run concurrently; each blocks its calling thread.
class Sandbox {
 public:
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;
  virtual ~Sandbox() = default;

  // Runs `request` to completion, a limit, or `cancelled()` returning true (polled every
  // few tens of milliseconds; may be empty). Code that static analysis rejects is not run:
  // the result has exit_status -1 and a "static_analysis" violation with the reason.
  // Refused actions and limits hit are reported in `violations`.
  //
  // Errors: kInvalidArgument (empty code, bad args_json, missing WebAssembly entry);
  // kUnavailable (the runtime for the language is not installed); kFailedPrecondition
  // naming the layer that could not be set up (nothing ran); kCancelled; kInternal.
  virtual Result<ExecutionResult> Execute(const ExecutionRequest& request,
                                          const std::function<bool()>& cancelled = {}) = 0;

  // Every layer and whether it can be set up on this host, as probed when the sandbox was
  // opened (`engram doctor`).
  virtual std::vector<SandboxLayerStatus> Layers() const = 0;

  // OK if every layer is available; otherwise kFailedPrecondition naming the first missing
  // layer and why.
  virtual Status Ready() const = 0;

  // Whether `language` can run here (Python needs an installed interpreter).
  virtual bool SupportsLanguage(SandboxLanguage language) const = 0;

 protected:
  Sandbox() = default;
};

// Opens the Linux sandbox: finds the helper and probes every layer by running it once.
// A sandbox whose layers are missing is still returned; its Ready() and Execute() name the
// missing layer, so callers can report it.
// Errors: kNotFound if the helper binary does not exist; kInvalidArgument for inconsistent
// options (a default above its cap, non-positive limits, a scratch root that is not a
// directory or, for root, not searchable by others).
Result<std::unique_ptr<Sandbox>> OpenLinuxSandbox(const SandboxOptions& options);

}  // namespace engram
