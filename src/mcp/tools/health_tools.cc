// health_check and get_metrics (DESIGN §7, §9). Every number is measured; a subsystem
// that is not configured (the cache layer, embeddings) says so.
#include <memory>
#include <string>
#include <utility>

#include "core/event_bus.h"
#include "mcp/tools/builtin_tools.h"
#include "engram/embedding.h"
#include "engram/lmdb_cache.h"
#include "learning/learning.h"
#include "retrieval/retriever.h"

namespace engram::mcp {
namespace {

// Above this share of the queue's capacity the event bus is reported unhealthy: events
// are about to be dropped.
constexpr double kEventQueueUnhealthyShare = 0.9;

Json Check(std::string name, bool healthy, std::string detail) {
  return {{"name", std::move(name)}, {"healthy", healthy}, {"detail", std::move(detail)}};
}

// The metrics get_metrics returns, also under health_check's `metrics` when detailed.
Json CollectMetrics(McpServer& server, HealthSources& sources) {
  Json out = Json::object();
  Result<StoreStats> stats = sources.storage.Stats();
  if (stats.ok()) {
    out["episodes"] = stats->episodes;
    out["completed_episodes"] = stats->completed_episodes;
    out["steps"] = stats->steps;
  } else {
    // Unknown is not zero: leave the counts out and say why.
    out["storage_error"] = std::string(stats.status().message());
  }
  if (stats.ok()) {
    out["patterns"] = stats->patterns;
    out["heuristics"] = stats->heuristics;
  } else {
    out["patterns"] = 0;
  }
  if (sources.retriever != nullptr) {
    RetrievalMetrics r = sources.retriever->Metrics();
    out["retrieval"] = {{"queries", r.queries},     {"cache_hits", r.cache_hits}, {"cache_misses", r.cache_misses},
                        {"degraded", r.degraded},   {"indexed", r.indexed},       {"index_failures", r.index_failures}};
  }
  if (sources.processor != nullptr) {
    ProcessorStats p = sources.processor->Stats();
    out["learning"] = {{"queue_depth", p.queue_depth},         {"in_flight", p.in_flight},
                       {"extracted", p.extracted},             {"deferred", p.deferred},
                       {"failures", p.failures},               {"patterns_created", p.patterns_created},
                       {"patterns_merged", p.patterns_merged}, {"heuristics_written", p.heuristics_written},
                       {"attributions_credited", p.attributions_credited}};
  }
  if (sources.provider != nullptr) {
    EmbeddingHealth h = sources.provider->Health();
    out["embedding"] = {{"provider", sources.embedding_provider},
                        {"available", h.available},
                        {"breaker", std::string(BreakerStateName(h.breaker))},
                        {"requests", h.requests},
                        {"failures", h.failures},
                        {"cache_hits", h.cache_hits},
                        {"cache_misses", h.cache_misses}};
  }
  if (const LmdbCache* cache = AsLmdbCache(sources.storage)) {
    LmdbCacheMetrics c = cache->Metrics();
    out["cache"] = {{"enabled", true},       {"hits", c.hits},         {"misses", c.misses},
                    {"fills", c.fills},      {"evictions", c.evictions}, {"invalidations", c.invalidations},
                    {"expired", c.expired},  {"errors", c.errors}};
  } else {
    out["cache"] = {{"enabled", false}, {"hits", 0}, {"misses", 0}};
  }
  ServerMetrics::Snapshot m = server.metrics().Get();
  out["latency_ms"] = {{"p50", m.p50_ms}, {"p95", m.p95_ms}};
  out["tool_calls"] = m.tool_calls;
  out["tool_errors"] = m.tool_errors;
  out["requests"] = m.requests;
  Json by_tool = Json::object();
  for (const auto& [tool, calls] : m.calls_by_tool) by_tool[tool] = calls;
  out["calls_by_tool"] = std::move(by_tool);
  Json events = {{"running", sources.events != nullptr}};
  EventBusStats es = sources.events != nullptr ? sources.events->Stats() : EventBusStats{};
  events["published"] = es.published;
  events["delivered"] = es.delivered;
  events["failed"] = es.failed;
  events["dropped"] = es.dropped;
  events["queued"] = es.queued;
  if (sources.event_queue_capacity > 0) events["capacity"] = sources.event_queue_capacity;
  out["events"] = std::move(events);
  out["notes"] = Json::array({"cache: counts of this server process (enabled: false when no cache layer is configured)",
                              "latency_ms: over the most recent tool calls of this server process"});
  return out;
}

Json MetricsSchema() {
  auto integer = [](const char* d) { return Json{{"type", "integer"}, {"description", d}}; };
  return {
      {"type", "object"},
      {"properties",
       {{"episodes", integer("Episodes stored")},
        {"completed_episodes", integer("Episodes with an outcome")},
        {"steps", integer("Steps stored")},
        {"storage_error", {{"type", "string"}, {"description", "Why the store counts are missing, if they are"}}},
        {"patterns", integer("Learned patterns")},
        {"cache",
         {{"type", "object"},
          {"properties",
           {{"enabled", {{"type", "boolean"}}}, {"hits", {{"type", "integer"}}}, {"misses", {{"type", "integer"}}}}}}},
        {"latency_ms",
         {{"type", "object"},
          {"description", "Tool call latency percentiles"},
          {"properties", {{"p50", {{"type", "number"}}}, {"p95", {{"type", "number"}}}}}}},
        {"tool_calls", integer("Tool calls handled by this process")},
        {"tool_errors", integer("Tool calls that returned isError")},
        {"requests", integer("JSON-RPC requests handled")},
        {"calls_by_tool", {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}}},
        {"events",
         {{"type", "object"},
          {"description", "The episode event bus"},
          {"properties",
           {{"running", {{"type", "boolean"}}},
            {"published", {{"type", "integer"}}},
            {"delivered", {{"type", "integer"}}},
            {"failed", {{"type", "integer"}}},
            {"dropped", {{"type", "integer"}}},
            {"queued", {{"type", "integer"}}},
            {"capacity", {{"type", "integer"}}}}}}},
        {"notes", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
      {"required", {"patterns", "cache", "latency_ms", "tool_calls", "tool_errors", "calls_by_tool", "events"}}};
}

Result<ToolResult> HealthCheck(McpServer& server, HealthSources& sources, const Json& args) {
  bool detailed = false;
  if (auto it = args.find("detailed"); it != args.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidArgumentError("arguments.detailed: expected a boolean");
    detailed = it->get<bool>();
  }
  StorageBackend& store = sources.storage;
  Json checks = Json::array();
  bool healthy = true;
  auto add = [&](std::string name, bool ok, std::string detail) {
    healthy = healthy && ok;
    checks.push_back(Check(std::move(name), ok, std::move(detail)));
  };

  Status storage = store.CheckHealth();
  std::string where = store.Name() + (detailed ? " at " + store.Location() : "") + ", schema version " +
                      std::to_string(store.SchemaVersion());
  add("storage", storage.ok(),
      storage.ok() ? where + ": reachable, writable, integrity check ok" : where + ": " + storage.ToString());

  Result<StoreStats> stats = store.Stats();
  add("store_stats", stats.ok(),
      stats.ok() ? std::to_string(stats->episodes) + " episodes (" + std::to_string(stats->completed_episodes) +
                       " completed), " + std::to_string(stats->steps) + " steps"
                 : "cannot count episodes: " + stats.status().ToString());

  if (sources.events == nullptr) {
    add("event_bus", true, "not running: no events are published (learning from events is off)");
  } else {
    EventBusStats es = sources.events->Stats();
    std::string detail = std::to_string(es.queued) + " queued";
    bool ok = true;
    if (sources.event_queue_capacity > 0) {
      detail += " of " + std::to_string(sources.event_queue_capacity);
      ok = static_cast<double>(es.queued) < kEventQueueUnhealthyShare * static_cast<double>(sources.event_queue_capacity);
      if (!ok) detail += " (nearly full: new events will be dropped)";
    }
    detail += "; " + std::to_string(es.published) + " published, " + std::to_string(es.delivered) + " delivered, " +
              std::to_string(es.failed) + " handler failures, " + std::to_string(es.dropped) +
              " dropped because the queue was full";
    add("event_bus", ok, std::move(detail));
  }

  if (const LmdbCache* cache = AsLmdbCache(sources.storage)) {
    LmdbCacheMetrics c = cache->Metrics();
    add("cache", c.errors == 0,
        "LMDB cache in front of the store: " + std::to_string(c.hits) + " hits, " + std::to_string(c.misses) +
            " misses, " + std::to_string(c.errors) + " errors in this process");
  } else {
    add("cache", true, "no cache layer configured; every read goes to the store");
  }
  if (sources.embedding_provider.empty() || sources.embedding_provider == "none") {
    add("embeddings", true, "none configured; retrieval is lexical");
  } else if (sources.provider != nullptr) {
    EmbeddingHealth h = sources.provider->Health();
    std::string detail = "provider " + sources.embedding_provider + ", circuit breaker " +
                         std::string(BreakerStateName(h.breaker));
    if (!h.available) detail += "; unavailable, retrieval falls back to lexical ranking";
    if (!h.last_error.empty()) detail += "; last error: " + h.last_error;
    add("embeddings", h.available, std::move(detail));
  } else {
    add("embeddings", true, "provider " + sources.embedding_provider);
  }

  if (sources.processor != nullptr) {
    ProcessorStats p = sources.processor->Stats();
    std::string detail = std::to_string(p.extracted) + " episodes extracted, " + std::to_string(p.queue_depth) +
                         " queued, " + std::to_string(p.failures) + " failures";
    if (!p.last_error.empty()) detail += "; last error: " + p.last_error;
    add("learning", p.failures == 0 || p.last_error.empty(), std::move(detail));
  } else {
    add("learning", true, "learning.enabled is false: no patterns are extracted");
  }

  Json out = {{"healthy", healthy}, {"checks", std::move(checks)}};
  if (detailed) out["metrics"] = CollectMetrics(server, sources);
  return ToolResult{std::move(out)};
}

}  // namespace

Status RegisterHealthTools(McpServer& server, HealthSources sources) {
  // Shared by both handlers; lives as long as the registry holds them.
  auto src = std::make_shared<HealthSources>(std::move(sources));
  McpServer* s = &server;

  Json check_item = {{"type", "object"},
                     {"properties",
                      {{"name", {{"type", "string"}}}, {"healthy", {{"type", "boolean"}}}, {"detail", {{"type", "string"}}}}},
                     {"required", {"name", "healthy", "detail"}}};
  ENGRAM_RETURN_IF_ERROR(server.tools().Add(ToolDefinition{
      .name = "health_check",
      .title = "Check engram's health",
      .description =
          "Checks that engram's memory works: the store is reachable, writable and intact, the event bus keeps up, "
          "and which optional layers (cache, embeddings) are configured. Call it when a memory tool fails "
          "unexpectedly, to tell a broken store from a bad call. detailed: true adds the metrics of get_metrics.",
      .input_schema = Json{{"type", "object"},
                           {"properties",
                            {{"detailed",
                              {{"type", "boolean"},
                               {"default", false},
                               {"description", "Also return metrics and the store's location."}}}}}},
      .output_schema = Json{{"type", "object"},
                            {"properties",
                             {{"healthy", {{"type", "boolean"}, {"description", "true when every check passed"}}},
                              {"checks", {{"type", "array"}, {"items", std::move(check_item)}}},
                              {"metrics", MetricsSchema()}}},
                            {"required", {"healthy", "checks"}}},
      .annotations = {.read_only = true, .destructive = false, .idempotent = true, .open_world = false},
      .tier = ToolTier::kAdvanced,
      .handler = [s, src](const Json& args, CallContext&) { return HealthCheck(*s, *src, args); },
  }));

  return server.tools().Add(ToolDefinition{
      .name = "get_metrics",
      .title = "engram metrics",
      .description =
          "Returns engram's counters: episodes, completed episodes and steps stored, tool calls and errors by tool, "
          "tool latency percentiles, and event bus traffic. For diagnosing performance or usage; not needed for "
          "ordinary tasks.",
      .input_schema = Json{{"type", "object"}, {"properties", Json::object()}},
      .output_schema = MetricsSchema(),
      .annotations = {.read_only = true, .destructive = false, .idempotent = true, .open_world = false},
      .tier = ToolTier::kExpert,
      .handler = [s, src](const Json&, CallContext&) -> Result<ToolResult> {
        return ToolResult{CollectMetrics(*s, *src)};
      },
  });
}

}  // namespace engram::mcp
