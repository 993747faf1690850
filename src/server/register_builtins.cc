#include "server/register_builtins.h"

#include "mcp/tools/builtin_tools.h"
#include "mcp/tools/conformance_fixtures.h"

namespace engram::server {

Status RegisterBuiltins(mcp::McpServer& server, const Builtins& b) {
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterQueryTools(server, b.memory));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterEpisodeTools(server, b.memory));
  mcp::HealthSources health{.storage = b.storage, .events = b.events};
  health.event_queue_capacity = b.event_queue_capacity;
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterHealthTools(server, health));
  mcp::AddMemoryResources(server, b.memory);
  ENGRAM_RETURN_IF_ERROR(mcp::AddRecallPrompt(server, b.memory));
  if (b.conformance_fixtures) ENGRAM_RETURN_IF_ERROR(mcp::RegisterConformanceFixtures(server));
  ENGRAM_RETURN_IF_ERROR(sandbox::RegisterSandboxTools(server, b.sandbox));  // execute_code (expert tier)
  return OkStatus();
}

}  // namespace engram::server
