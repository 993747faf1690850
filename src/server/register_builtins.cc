#include "server/register_builtins.h"

#include <memory>

#include "retrieval/retriever.h"

#include "mcp/tools/builtin_tools.h"
#include "mcp/tools/conformance_fixtures.h"

namespace engram::server {

namespace {

// What health_check, get_metrics and GET /metrics read: one definition for all three.
mcp::HealthSources HealthSourcesOf(const Builtins& b) {
  mcp::HealthSources health{.storage = b.storage,
                            .events = b.events,
                            .embedding_provider = b.embedding_provider,
                            .provider = b.retriever.provider(),
                            .retriever = &b.retriever,
                            .processor = b.processor};
  health.event_queue_capacity = b.event_queue_capacity;
  return health;
}

}  // namespace

Status RegisterBuiltins(mcp::McpServer& server, const Builtins& b) {
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterQueryTools(server, b.retriever, b.memory, b.learning, b.catalog));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterEpisodeTools(server, b.memory));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterHealthTools(server, HealthSourcesOf(b)));
  ENGRAM_RETURN_IF_ERROR(mcp::RegisterPatternTools(server, b.storage, b.memory.clock(), b.learning, b.catalog));
  mcp::AddMemoryResources(server, b.memory);
  ENGRAM_RETURN_IF_ERROR(mcp::AddRecallPrompt(server, b.memory, b.retriever));
  if (b.conformance_fixtures) ENGRAM_RETURN_IF_ERROR(mcp::RegisterConformanceFixtures(server));
  ENGRAM_RETURN_IF_ERROR(sandbox::RegisterSandboxTools(server, b.sandbox));  // execute_code (expert tier)
  return OkStatus();
}

std::function<std::string()> PrometheusMetricsFor(mcp::McpServer& server, const Builtins& builtins) {
  auto sources = std::make_shared<mcp::HealthSources>(HealthSourcesOf(builtins));
  return [&server, sources] { return mcp::RenderPrometheusMetrics(server, *sources); };
}

}  // namespace engram::server
