// Fills an McpServer's registries explicitly (STYLE §2): every tool, resource provider
// and prompt engram serves, in one place.
#pragma once

#include "engram/memory.h"
#include "engram/status.h"
#include "engram/storage.h"
#include "mcp/server.h"
#include "sandbox/execute_code_tool.h"

namespace engram {
class EventBus;
}

namespace engram::server {

// What engram tells a client at initialize about how to use it.
inline constexpr const char* kInstructions =
    "engram is your episodic memory across tasks. Before starting a task, call query_memory with a short "
    "description of it to see what worked (and what failed) last time. While working, record the task with "
    "create_episode, each meaningful step with add_episode_step (tool, action, result), and finish with "
    "complete_episode (outcome and, when you have them, test/build results). engram scores the episode and "
    "writes a reflection that later queries return.";

struct Builtins {
  Memory& memory;
  StorageBackend& storage;
  EventBus* events = nullptr;  // may be null
  size_t event_queue_capacity = 0;
  bool conformance_fixtures = false;
  // execute_code: limits from sandbox.* (SandboxToolOptionsFromConfig); enabled by default.
  sandbox::SandboxToolOptions sandbox;
};

Status RegisterBuiltins(mcp::McpServer& server, const Builtins& builtins);

}  // namespace engram::server
