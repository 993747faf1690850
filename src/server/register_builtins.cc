#include "server/register_builtins.h"

#include "retrieval/retriever.h"

#include "mcp/tools/builtin_tools.h"
#include "mcp/tools/conformance_fixtures.h"

namespace engram::server {

Status RegisterBuiltins(mcp::McpServer& server, const Builtins& b) {
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterQueryTools(server, b.retriever, b.memory, b.learning, b.catalog));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterEpisodeTools(server, b.memory));
  mcp::HealthSources health{.storage = b.storage,
                            .events = b.events,
                            .embedding_provider = b.embedding_provider,
                            .provider = b.retriever.provider(),
                            .retriever = &b.retriever,
                            .processor = b.processor};
  health.event_queue_capacity = b.event_queue_capacity;
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterHealthTools(server, health));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterPatternTools(server, b.storage, b.memory.clock(), b.learning, b.catalog));
  mcp::AddMemoryResources(server, b.memory);
  ENGRAM_RETURN_IF_ERROR(mcp::AddRecallPrompt(server, b.memory, b.retriever));
  if (b.conformance_fixtures) ENGRAM_RETURN_IF_ERROR(mcp::RegisterConformanceFixtures(server));
  ENGRAM_RETURN_IF_ERROR(sandbox::RegisterSandboxTools(server, b.sandbox));  // execute_code (expert tier)
  return OkStatus();
}

}  // namespace engram::server
