// health_check and get_metrics (DESIGN §7, §9). Every number is measured; a subsystem
// that is not configured (the cache layer, embeddings) says so.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/prometheus.h"
#include "common/time_format.h"
#include "core/event_bus.h"
#include "mcp/tools/builtin_tools.h"
#include "engram/embedding.h"
#include "engram/lmdb_cache.h"
#include "learning/learning.h"
#include "retrieval/retriever.h"
#include "storage/timed_storage.h"

namespace engram::mcp {
namespace {

// Above this share of the queue's capacity the event bus is reported unhealthy: events
// are about to be dropped.
constexpr double kEventQueueUnhealthyShare = 0.9;

Json Check(std::string name, bool healthy, std::string detail) {
  return {{"name", std::move(name)}, {"healthy", healthy}, {"detail", std::move(detail)}};
}

// The LMDB cache in front of the store, also behind the timing decorator; null if none.
const LmdbCache* CacheOf(const StorageBackend& storage) {
  if (const TimedStorage* timed = AsTimedStorage(storage)) return AsLmdbCache(timed->base());
  return AsLmdbCache(storage);
}

// Every number get_metrics, health_check and GET /metrics report, read once: the JSON and
// the Prometheus text are two renderings of one report, so they cannot disagree.
struct MetricsReport {
  Result<StoreStats> stats = StoreStats{};
  std::optional<RetrievalMetrics> retrieval;
  std::optional<ProcessorStats> learning;
  std::optional<EmbeddingHealth> embedding;
  std::string embedding_provider;
  std::optional<LmdbCacheMetrics> cache;  // nullopt: no cache layer
  ServerMetrics::Snapshot server;
  std::optional<EventBusStats> events;  // nullopt: no event bus running
  size_t event_queue_capacity = 0;
  std::map<std::string, LatencyHistogram, std::less<>> storage_latency;  // empty: the store is not timed
};

MetricsReport CollectReport(McpServer& server, HealthSources& sources) {
  MetricsReport r;
  r.stats = sources.storage.Stats();
  if (sources.retriever != nullptr) r.retrieval = sources.retriever->Metrics();
  if (sources.processor != nullptr) r.learning = sources.processor->Stats();
  if (sources.provider != nullptr) r.embedding = sources.provider->Health();
  r.embedding_provider = sources.embedding_provider;
  if (const LmdbCache* cache = CacheOf(sources.storage)) r.cache = cache->Metrics();
  r.server = server.metrics().Get();
  if (sources.events != nullptr) r.events = sources.events->Stats();
  r.event_queue_capacity = sources.event_queue_capacity;
  if (const TimedStorage* timed = AsTimedStorage(sources.storage)) r.storage_latency = timed->Latency();
  return r;
}

// The metrics get_metrics returns, also under health_check's `metrics` when detailed.
Json MetricsJson(const MetricsReport& r) {
  Json out = Json::object();
  if (r.stats.ok()) {
    out["episodes"] = r.stats->episodes;
    out["completed_episodes"] = r.stats->completed_episodes;
    out["steps"] = r.stats->steps;
    out["patterns"] = r.stats->patterns;
    out["heuristics"] = r.stats->heuristics;
  } else {
    // Unknown is not zero: leave the counts out and say why.
    out["storage_error"] = std::string(r.stats.status().message());
    out["patterns"] = 0;
  }
  if (r.retrieval) {
    const RetrievalMetrics& m = *r.retrieval;
    out["retrieval"] = {{"queries", m.queries},   {"cache_hits", m.cache_hits}, {"cache_misses", m.cache_misses},
                        {"degraded", m.degraded}, {"indexed", m.indexed},       {"index_failures", m.index_failures}};
  }
  if (r.learning) {
    const ProcessorStats& p = *r.learning;
    out["learning"] = {{"queue_depth", p.queue_depth},         {"in_flight", p.in_flight},
                       {"extracted", p.extracted},             {"deferred", p.deferred},
                       {"failures", p.failures},               {"patterns_created", p.patterns_created},
                       {"patterns_merged", p.patterns_merged}, {"heuristics_written", p.heuristics_written},
                       {"attributions_credited", p.attributions_credited}};
  }
  if (r.embedding) {
    const EmbeddingHealth& h = *r.embedding;
    out["embedding"] = {{"provider", r.embedding_provider},
                        {"available", h.available},
                        {"breaker", std::string(BreakerStateName(h.breaker))},
                        {"requests", h.requests},
                        {"failures", h.failures},
                        {"cache_hits", h.cache_hits},
                        {"cache_misses", h.cache_misses}};
  }
  if (r.cache) {
    const LmdbCacheMetrics& c = *r.cache;
    out["cache"] = {{"enabled", true},       {"hits", c.hits},         {"misses", c.misses},
                    {"fills", c.fills},      {"evictions", c.evictions}, {"invalidations", c.invalidations},
                    {"expired", c.expired},  {"errors", c.errors}};
  } else {
    out["cache"] = {{"enabled", false}, {"hits", 0}, {"misses", 0}};
  }
  const ServerMetrics::Snapshot& m = r.server;
  out["latency_ms"] = {{"p50", m.p50_ms}, {"p95", m.p95_ms}};
  out["tool_calls"] = m.tool_calls;
  out["tool_errors"] = m.tool_errors;
  out["requests"] = m.requests;
  Json by_tool = Json::object();
  Json tools = Json::object();
  for (const auto& [tool, stats] : m.tools) {
    by_tool[tool] = stats.ok + stats.errors;
    tools[tool] = {{"ok", stats.ok}, {"errors", stats.errors}, {"latency_sum_ms", stats.latency.sum_ms}};
  }
  out["calls_by_tool"] = std::move(by_tool);
  out["tools"] = std::move(tools);
  Json history = Json::array();
  for (const ServerMetrics::Minute& minute : m.history) {
    history.push_back({{"minute", FormatTimestamp(std::chrono::time_point_cast<std::chrono::milliseconds>(minute.start))},
                       {"calls", minute.calls},
                       {"p50_ms", minute.p50_ms},
                       {"p95_ms", minute.p95_ms}});
  }
  out["latency_history"] = std::move(history);
  Json storage_latency = Json::object();
  for (const auto& [op, h] : r.storage_latency) storage_latency[op] = {{"count", h.count}, {"sum_ms", h.sum_ms}};
  out["storage_latency"] = std::move(storage_latency);
  Json executions = Json::object();
  for (const auto& [language, n] : m.executions_by_language) executions[language] = n;
  Json violations = Json::object();
  for (const auto& [kind, n] : m.violations_by_kind) violations[kind] = n;
  out["sandbox"] = {{"executions", std::move(executions)}, {"violations", std::move(violations)}};
  Json events = {{"running", r.events.has_value()}};
  EventBusStats es = r.events.value_or(EventBusStats{});
  events["published"] = es.published;
  events["delivered"] = es.delivered;
  events["failed"] = es.failed;
  events["dropped"] = es.dropped;
  events["queued"] = es.queued;
  if (r.event_queue_capacity > 0) events["capacity"] = r.event_queue_capacity;
  out["events"] = std::move(events);
  out["notes"] = Json::array({"cache: counts of this server process (enabled: false when no cache layer is configured)",
                              "latency_ms: over the most recent tool calls of this server process",
                              "latency_history: per minute of the last hour with calls, oldest first"});
  return out;
}

// 0 closed, 1 half-open, 2 open: the larger, the less the provider is used.
int BreakerGauge(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed: return 0;
    case BreakerState::kHalfOpen: return 1;
    case BreakerState::kOpen: return 2;
  }
  return 2;
}

std::string MetricsPrometheus(const MetricsReport& r) {
  PrometheusWriter w;
  const ServerMetrics::Snapshot& m = r.server;
  w.Counter("engram_requests_total", "JSON-RPC requests handled by this process", {}, m.requests);
  const char* kCalls = "Tool calls by tool and status (error: answered with isError)";
  const char* kCallLatency = "Tool call latency, from arguments received to result";
  const char* kStorageLatency = "Latency of calls to the store, by operation";
  w.Declare("engram_tool_calls_total", kCalls, MetricType::kCounter);
  for (const auto& [tool, stats] : m.tools) {
    w.Counter("engram_tool_calls_total", kCalls, {{"tool", tool}, {"status", "ok"}}, stats.ok);
    w.Counter("engram_tool_calls_total", kCalls, {{"tool", tool}, {"status", "error"}}, stats.errors);
  }
  w.Declare("engram_tool_call_duration_seconds", kCallLatency, MetricType::kHistogram);
  for (const auto& [tool, stats] : m.tools) {
    w.Histogram("engram_tool_call_duration_seconds", kCallLatency, {{"tool", tool}}, stats.latency);
  }
  if (!r.storage_latency.empty()) w.Declare("engram_storage_operation_duration_seconds", kStorageLatency,
                                            MetricType::kHistogram);
  for (const auto& [op, h] : r.storage_latency) {
    w.Histogram("engram_storage_operation_duration_seconds", kStorageLatency, {{"operation", op}}, h);
  }
  if (r.stats.ok()) {
    w.Gauge("engram_episodes", "Episodes stored", {}, r.stats->episodes);
    w.Gauge("engram_completed_episodes", "Episodes stored with an outcome", {}, r.stats->completed_episodes);
    w.Gauge("engram_steps", "Steps stored", {}, r.stats->steps);
    w.Gauge("engram_patterns", "Learned patterns stored", {}, r.stats->patterns);
    w.Gauge("engram_heuristics", "Learned heuristics stored", {}, r.stats->heuristics);
  }
  w.Gauge("engram_store_stats_up", "1 when the store answered its counts, 0 when it failed", {},
          r.stats.ok() ? 1 : 0);
  const char* kHits = "Cache hits by cache (lmdb: episodes, retrieval: query results, embedding: vectors)";
  const char* kMisses = "Cache misses by cache (lmdb: episodes, retrieval: query results, embedding: vectors)";
  if (r.cache) {
    w.Counter("engram_cache_hits_total", kHits, {{"cache", "lmdb"}}, r.cache->hits);
    w.Counter("engram_cache_misses_total", kMisses, {{"cache", "lmdb"}}, r.cache->misses);
    w.Counter("engram_cache_errors_total", "LMDB cache errors absorbed as misses or ignored", {}, r.cache->errors);
  }
  if (r.retrieval) {
    w.Counter("engram_cache_hits_total", kHits, {{"cache", "retrieval"}}, r.retrieval->cache_hits);
    w.Counter("engram_cache_misses_total", kMisses, {{"cache", "retrieval"}}, r.retrieval->cache_misses);
    w.Counter("engram_retrieval_queries_total", "Retrieval queries", {}, r.retrieval->queries);
    w.Counter("engram_retrieval_degraded_total", "Queries answered without the semantic side when it was wanted",
              {}, r.retrieval->degraded);
  }
  if (r.embedding) {
    w.Counter("engram_cache_hits_total", kHits, {{"cache", "embedding"}}, r.embedding->cache_hits);
    w.Counter("engram_cache_misses_total", kMisses, {{"cache", "embedding"}}, r.embedding->cache_misses);
    w.Gauge("engram_embedding_circuit_breaker_state",
            "Circuit breaker of the embedding provider: 0 closed, 1 half-open, 2 open",
            {{"provider", r.embedding_provider}}, BreakerGauge(r.embedding->breaker));
    w.Counter("engram_embedding_requests_total", "Embedding requests", {{"provider", r.embedding_provider}},
              r.embedding->requests);
    w.Counter("engram_embedding_failures_total", "Embedding requests that failed",
              {{"provider", r.embedding_provider}}, r.embedding->failures);
  }
  if (r.events) {
    w.Gauge("engram_event_queue_depth", "Episode events waiting in the event bus queue", {}, r.events->queued);
    if (r.event_queue_capacity > 0) {
      w.Gauge("engram_event_queue_capacity", "Capacity of the event bus queue", {}, r.event_queue_capacity);
    }
    const char* kEvents = "Episode events by result (published, delivered, failed: a handler failed, dropped: "
                          "the queue was full)";
    w.Counter("engram_events_total", kEvents, {{"result", "published"}}, r.events->published);
    w.Counter("engram_events_total", kEvents, {{"result", "delivered"}}, r.events->delivered);
    w.Counter("engram_events_total", kEvents, {{"result", "failed"}}, r.events->failed);
    w.Counter("engram_events_total", kEvents, {{"result", "dropped"}}, r.events->dropped);
  }
  if (r.learning) {
    const ProcessorStats& p = *r.learning;
    w.Gauge("engram_learning_queue_depth", "Completed episodes waiting for pattern extraction", {}, p.queue_depth);
    w.Gauge("engram_learning_in_flight", "Episodes being extracted now", {}, p.in_flight);
    w.Counter("engram_learning_extracted_total", "Episodes through pattern extraction", {}, p.extracted);
    w.Counter("engram_learning_failures_total", "Pattern extractions that failed", {}, p.failures);
    w.Counter("engram_patterns_created_total", "Patterns created by extraction", {}, p.patterns_created);
    w.Counter("engram_patterns_merged_total", "Extracted patterns merged into existing ones", {},
              p.patterns_merged);
  }
  const char* kExecutions = "execute_code runs that reached the sandbox, by language";
  const char* kViolations = "Sandbox violations by kind (static_analysis, syscall, filesystem, timeout, ...)";
  w.Declare("engram_sandbox_executions_total", kExecutions, MetricType::kCounter);
  for (const auto& [language, n] : m.executions_by_language) {
    w.Counter("engram_sandbox_executions_total", kExecutions, {{"language", language}}, n);
  }
  w.Declare("engram_sandbox_violations_total", kViolations, MetricType::kCounter);
  for (const auto& [kind, n] : m.violations_by_kind) {
    w.Counter("engram_sandbox_violations_total", kViolations, {{"kind", kind}}, n);
  }
  return w.Text();
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
        {"tools",
         {{"type", "object"},
          {"description", "Per tool: calls answered ok, calls answered with isError, total latency"},
          {"additionalProperties",
           {{"type", "object"},
            {"properties",
             {{"ok", {{"type", "integer"}}}, {"errors", {{"type", "integer"}}}, {"latency_sum_ms", {{"type", "number"}}}}},
            {"required", {"ok", "errors", "latency_sum_ms"}}}}}},
        {"latency_history",
         {{"type", "array"},
          {"description", "Tool call latency per minute of the last hour, oldest first; minutes without calls omitted"},
          {"maxItems", ServerMetrics::kHistoryMinutes},
          {"items",
           {{"type", "object"},
            {"properties",
             {{"minute", {{"type", "string"}, {"format", "date-time"}, {"description", "Start of the minute, UTC"}}},
              {"calls", {{"type", "integer"}}},
              {"p50_ms", {{"type", "number"}}},
              {"p95_ms", {{"type", "number"}}}}},
            {"required", {"minute", "calls", "p50_ms", "p95_ms"}}}}}},
        {"storage_latency",
         {{"type", "object"},
          {"description", "Calls to the store by operation: count and total latency"},
          {"additionalProperties",
           {{"type", "object"},
            {"properties", {{"count", {{"type", "integer"}}}, {"sum_ms", {{"type", "number"}}}}},
            {"required", {"count", "sum_ms"}}}}}},
        {"sandbox",
         {{"type", "object"},
          {"description", "execute_code runs by language and sandbox violations by kind"},
          {"properties",
           {{"executions", {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}}},
            {"violations", {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}}}}}}},
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
      {"required",
       {"patterns", "cache", "latency_ms", "tool_calls", "tool_errors", "calls_by_tool", "tools", "latency_history",
        "storage_latency", "sandbox", "events"}}};
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

  if (const LmdbCache* cache = CacheOf(sources.storage)) {
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

  if (sources.retriever != nullptr) {
    // Query expansion (issue 8): which sources are on, and a warning when WordNet is missing.
    ExpansionHealth x = sources.retriever->Expansion();
    add("query_expansion", x.healthy, x.configured ? x.detail : "off: no query expander configured");
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
  if (detailed) out["metrics"] = MetricsJson(CollectReport(server, sources));
  return ToolResult{std::move(out)};
}

}  // namespace

std::string RenderPrometheusMetrics(McpServer& server, HealthSources& sources) {
  return MetricsPrometheus(CollectReport(server, sources));
}

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
          "tool latency percentiles (overall and per minute of the last hour), storage latency by operation, "
          "sandbox runs and violations, and event bus traffic. For diagnosing performance or usage; not needed for "
          "ordinary tasks.",
      .input_schema = Json{{"type", "object"}, {"properties", Json::object()}},
      .output_schema = MetricsSchema(),
      .annotations = {.read_only = true, .destructive = false, .idempotent = true, .open_world = false},
      .tier = ToolTier::kExpert,
      .handler = [s, src](const Json&, CallContext&) -> Result<ToolResult> {
        return ToolResult{MetricsJson(CollectReport(*s, *src))};
      },
  });
}

}  // namespace engram::mcp
