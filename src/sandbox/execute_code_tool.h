// The execute_code MCP tool (DESIGN §7, §8): runs a JavaScript, WebAssembly or Python
// snippet in the sandbox and returns {stdout, stderr, exit_status, duration_ms,
// violations[]}. It is listed at the expert disclosure tier, and only when
// sandbox.enabled. When a sandbox layer is unavailable on this host the tool is still
// listed, and every call returns isError naming the missing layer: nothing runs.
//
//   ENGRAM_RETURN_IF_ERROR(RegisterSandboxTools(server, SandboxToolOptionsFromConfig(config)));
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "engram/sandbox.h"
#include "engram/status.h"
#include "mcp/server.h"

namespace engram {
struct Config;
}  // namespace engram

namespace engram::sandbox {

// The largest sandbox.max_timeout_ms and sandbox.max_memory_mb a config may set.
inline constexpr int64_t kMaxTimeoutCeilingMs = 600'000;
inline constexpr int64_t kMaxMemoryCeilingMb = 65'536;

// The caps execute_code enforces on timeout_ms and memory_mb (sandbox.max_timeout_ms,
// sandbox.max_memory_mb). A config reload changes them while serving; every later call
// sees the new caps. Thread-safe.
class SandboxLimits {
 public:
  SandboxLimits(int64_t max_timeout_ms, int64_t max_memory_mb) { Set(max_timeout_ms, max_memory_mb); }
  SandboxLimits(const SandboxLimits&) = delete;
  SandboxLimits& operator=(const SandboxLimits&) = delete;

  void Set(int64_t max_timeout_ms, int64_t max_memory_mb) {
    max_timeout_ms_.store(max_timeout_ms, std::memory_order_relaxed);
    max_memory_mb_.store(max_memory_mb, std::memory_order_relaxed);
  }
  int64_t max_timeout_ms() const { return max_timeout_ms_.load(std::memory_order_relaxed); }
  int64_t max_memory_mb() const { return max_memory_mb_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> max_timeout_ms_{0};
  std::atomic<int64_t> max_memory_mb_{0};
};

struct SandboxToolOptions {
  bool enabled = true;     // sandbox.enabled; false: execute_code is not registered
  SandboxOptions sandbox;  // limits (sandbox.max_timeout_ms, sandbox.max_memory_mb), helper
  // When set, the caps in force, read at every call, so they may change while serving
  // (`sandbox` then holds only their starting values, and the input schema announces the
  // ceilings above). Null: sandbox.max_* are fixed and announced in the schema.
  std::shared_ptr<SandboxLimits> limits;
};

// sandbox.enabled, sandbox.max_timeout_ms and sandbox.max_memory_mb; defaults are clamped
// to the maxima. Sets `limits` (to those maxima), for the caller to change on reload.
SandboxToolOptions SandboxToolOptionsFromConfig(const Config& config);

// Registers execute_code over a Linux sandbox opened (its layers probed) on first use. A
// missing helper or layer does not fail registration: the tool then answers every call
// with that error. Does nothing when !options.enabled.
// Errors: kAlreadyExists if execute_code is already registered.
Status RegisterSandboxTools(mcp::McpServer& server, const SandboxToolOptions& options);

// Registers execute_code over `sandbox` (tests inject their own). `max_timeout_ms` and
// `max_memory_mb` are announced in the input schema. Every run that reaches the sandbox
// is counted, with its violations, in server.metrics() (RecordExecution).
// Errors: kAlreadyExists if execute_code is already registered.
Status RegisterExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox, int64_t max_timeout_ms,
                               int64_t max_memory_mb);

// As above, with caps read from `limits` at every call: a timeout_ms or memory_mb above
// them gets an isError result naming the argument and the cap. The schema announces the
// ceilings (kMaxTimeoutCeilingMs, kMaxMemoryCeilingMb).
Status RegisterExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox,
                               std::shared_ptr<const SandboxLimits> limits);

}  // namespace engram::sandbox
