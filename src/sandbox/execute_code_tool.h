// The execute_code MCP tool (DESIGN §7, §8): runs a JavaScript, WebAssembly or Python
// snippet in the sandbox and returns {stdout, stderr, exit_status, duration_ms,
// violations[]}. It is listed at the expert disclosure tier, and only when
// sandbox.enabled. When a sandbox layer is unavailable on this host the tool is still
// listed, and every call returns isError naming the missing layer: nothing runs.
//
//   ENGRAM_RETURN_IF_ERROR(RegisterSandboxTools(server, SandboxToolOptionsFromConfig(config)));
#pragma once

#include <memory>

#include "engram/sandbox.h"
#include "engram/status.h"
#include "mcp/server.h"

namespace engram {
struct Config;
}  // namespace engram

namespace engram::sandbox {

struct SandboxToolOptions {
  bool enabled = true;     // sandbox.enabled; false: execute_code is not registered
  SandboxOptions sandbox;  // limits (sandbox.max_timeout_ms, sandbox.max_memory_mb), helper
};

// sandbox.enabled, sandbox.max_timeout_ms and sandbox.max_memory_mb; defaults are clamped
// to the maxima.
SandboxToolOptions SandboxToolOptionsFromConfig(const Config& config);

// Registers execute_code over a Linux sandbox opened (its layers probed) on first use. A
// missing helper or layer does not fail registration: the tool then answers every call
// with that error. Does nothing when !options.enabled.
// Errors: kAlreadyExists if execute_code is already registered.
Status RegisterSandboxTools(mcp::McpServer& server, const SandboxToolOptions& options);

// Registers execute_code over `sandbox` (tests inject their own). `max_timeout_ms` and
// `max_memory_mb` are announced in the input schema.
// Errors: kAlreadyExists if execute_code is already registered.
Status RegisterExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox, int64_t max_timeout_ms,
                               int64_t max_memory_mb);

}  // namespace engram::sandbox
