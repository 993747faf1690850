// The MCP tools, resources and prompts that reach engram's core (DESIGN §7). The server's
// wiring (server/register_builtins.cc) calls these once at start-up, before serving:
//
//   McpServer server(options);
//   ENGRAM_RETURN_IF_ERROR(RegisterEpisodeTools(server, memory));
//   ENGRAM_RETURN_IF_ERROR(RegisterQueryTools(server, retriever));
//   ENGRAM_RETURN_IF_ERROR(RegisterHealthTools(server, {.storage = store, .events = &bus}));
//   AddMemoryResources(server, memory);
//   ENGRAM_RETURN_IF_ERROR(AddRecallPrompt(server, memory, retriever));
//
// Every tool validates its arguments and answers kInvalidArgument naming the field
// ("arguments.outcome: ...") so the model can correct its call; a caller whose API key
// is limited to some domains sees episodes of other domains as if they did not exist.
// `memory`, `server` and the sources must outlive every session of `server`.
// Disclosure tiers: beginner create_episode, add_episode_step, complete_episode,
// query_memory; advanced get_episode, health_check and the pattern tools; expert
// delete_episode, get_metrics.
#pragma once

#include <cstddef>
#include <string>

#include "engram/memory.h"
#include "engram/status.h"
#include "engram/storage.h"
#include "mcp/server.h"

namespace engram {
class EventBus;
class Retriever;
class EmbeddingProvider;
struct LearningOptions;
class PatternProcessor;
class PatternCatalog;
}  // namespace engram

namespace engram::mcp {

// create_episode, add_episode_step, complete_episode, get_episode, delete_episode.
// add_episode_step's optional applied_pattern_id records that the episode applied a
// learned pattern (learning/learning.h RecordApplied); an unknown one stores nothing.
// Errors: kAlreadyExists if one of them is already registered.
Status RegisterEpisodeTools(McpServer& server, Memory& memory);

// query_memory (retrieval/retriever.h).
// Errors: kAlreadyExists if it is already registered.
// Patterns come from the learning pipeline's SearchPatterns with `learning`'s thresholds;
// with an `episode_id` argument the patterns shown are recorded as shown to that episode.
Status RegisterQueryTools(McpServer& server, Retriever& retriever, Memory& memory, const LearningOptions& learning,
                          PatternCatalog* catalog = nullptr);

// What health_check and get_metrics look at. Everything borrowed must outlive the server.
struct HealthSources {
  StorageBackend& storage;
  EventBus* events = nullptr;               // may be null: no event bus running
  std::string embedding_provider = "none";  // "none": retrieval is lexical only
  EmbeddingProvider* provider = nullptr;    // its health (breaker state); may be null
  const Retriever* retriever = nullptr;     // query counts and cache; may be null
  PatternProcessor* processor = nullptr;    // the learning pipeline's queue; may be null
  // The event bus's queue capacity (EventBus's constructor argument), so health_check
  // can compare the queue depth with it; 0: unknown, only the depth and drops are shown.
  size_t event_queue_capacity = 0;
};

// health_check and get_metrics. get_metrics also reads server.metrics().
// Errors: kAlreadyExists if one of them is already registered.
Status RegisterHealthTools(McpServer& server, HealthSources sources);

// The metrics get_metrics returns, read the same way, in the Prometheus text format
// (common/prometheus.h) for GET /metrics: tool calls by tool and status, tool and storage
// latency histograms (the store's when it is a TimedStorage), cache hits and misses, the
// event bus and learning queues, pattern counts, the embedding circuit breaker and
// sandbox runs and violations. Thread-safe.
std::string RenderPrometheusMetrics(McpServer& server, HealthSources& sources);

// search_patterns, recommend_patterns, recommend_playbook and analyze_patterns (the read
// side of learning/learning.h; all in the advanced tier). `options` gives the success
// thresholds below which patterns are not shown (copied). recommend_patterns with an
// episode_id records which patterns were shown to that open episode (attributions), so
// its outcome later credits them. A caller whose API key is limited to some domains sees
// only the patterns (and heuristics) learned in those domains.
// Errors: kInvalidArgument (bad options); kAlreadyExists if one of them is already registered.
// `catalog` (may be null: read the store each call) keeps the patterns in memory for a
// long-running server.
Status RegisterPatternTools(McpServer& server, StorageBackend& storage, Clock& clock, const LearningOptions& options,
                            PatternCatalog* catalog = nullptr);

// Resources: engram://episodes/{episode_id} and engram://patterns/{pattern_id}, both
// listed newest first and read as JSON (patterns limited to the caller's domains).
void AddMemoryResources(McpServer& server, Memory& memory);

// The `recall` prompt: the past episodes most relevant to a task, packed into one user
// message. Errors: kAlreadyExists if a prompt named recall exists.
Status AddRecallPrompt(McpServer& server, Memory& memory, Retriever& retriever);

}  // namespace engram::mcp
