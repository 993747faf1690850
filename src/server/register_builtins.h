// Fills an McpServer's registries explicitly (STYLE §2): every tool, resource provider
// and prompt engram serves, in one place.
#pragma once

#include <functional>
#include <string>

#include "engram/memory.h"
#include "learning/learning.h"
#include "engram/status.h"
#include "engram/storage.h"
#include "mcp/server.h"
#include "sandbox/execute_code_tool.h"

namespace engram {
class EventBus;
class Retriever;
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
  Retriever& retriever;
  EventBus* events = nullptr;  // may be null
  std::string embedding_provider = "none";  // for health_check: "hashing/hash-v1/256", "none"
  // search_patterns, recommend_patterns, recommend_playbook, analyze_patterns and the
  // patterns of query_memory use these thresholds.
  LearningOptions learning{};
  PatternProcessor* processor = nullptr;  // may be null (learning.enabled = false): health shows it
  PatternCatalog* catalog = nullptr;      // patterns in memory for the read side; may be null
  size_t event_queue_capacity = 0;
  bool conformance_fixtures = false;
  // execute_code: limits from sandbox.* (SandboxToolOptionsFromConfig); enabled by default.
  sandbox::SandboxToolOptions sandbox;
};

Status RegisterBuiltins(mcp::McpServer& server, const Builtins& builtins);

// GET /metrics for the HTTP transport (HttpOptions::metrics): renders the numbers
// get_metrics reports, from the same sources, in the Prometheus text format. `server` and
// everything `builtins` borrows must outlive the function. Thread-safe.
std::function<std::string()> PrometheusMetricsFor(mcp::McpServer& server, const Builtins& builtins);

}  // namespace engram::server
