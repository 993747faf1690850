// The MCP tools, resources and prompts that reach engram's core (DESIGN §7). The server's
// wiring (server/register_builtins.cc) calls these once at start-up, before serving:
//
//   McpServer server(options);
//   ENGRAM_RETURN_IF_ERROR(RegisterEpisodeTools(server, memory));
//   ENGRAM_RETURN_IF_ERROR(RegisterQueryTools(server, memory));
//   ENGRAM_RETURN_IF_ERROR(RegisterHealthTools(server, {.storage = store, .events = &bus}));
//   AddMemoryResources(server, memory);
//   ENGRAM_RETURN_IF_ERROR(AddRecallPrompt(server, memory));
//
// Every tool validates its arguments and answers kInvalidArgument naming the field
// ("arguments.outcome: ...") so the model can correct its call; a caller whose API key
// is limited to some domains sees episodes of other domains as if they did not exist.
// `memory`, `server` and the sources must outlive every session of `server`.
// Disclosure tiers: beginner create_episode, add_episode_step, complete_episode,
// query_memory; advanced get_episode, health_check; expert delete_episode, get_metrics.
#pragma once

#include <cstddef>
#include <string>

#include "engram/memory.h"
#include "engram/status.h"
#include "engram/storage.h"
#include "mcp/server.h"

namespace engram {
class EventBus;
}  // namespace engram

namespace engram::mcp {

// create_episode, add_episode_step, complete_episode, get_episode, delete_episode.
// Errors: kAlreadyExists if one of them is already registered.
Status RegisterEpisodeTools(McpServer& server, Memory& memory);

// query_memory (core/retrieval.h over memory.storage()).
// Errors: kAlreadyExists if it is already registered.
Status RegisterQueryTools(McpServer& server, Memory& memory);

// What health_check and get_metrics look at. Everything borrowed must outlive the server.
struct HealthSources {
  StorageBackend& storage;
  EventBus* events = nullptr;               // may be null: no event bus running
  std::string embedding_provider = "none";  // "none": retrieval is lexical only
  // The event bus's queue capacity (EventBus's constructor argument), so health_check
  // can compare the queue depth with it; 0: unknown, only the depth and drops are shown.
  size_t event_queue_capacity = 0;
};

// health_check and get_metrics. get_metrics also reads server.metrics().
// Errors: kAlreadyExists if one of them is already registered.
Status RegisterHealthTools(McpServer& server, HealthSources sources);

// Resources: engram://episodes/{episode_id} (listed newest first, read as the episode's
// JSON) and the template engram://patterns/{pattern_id} (no patterns exist yet).
void AddMemoryResources(McpServer& server, Memory& memory);

// The `recall` prompt: the past episodes most relevant to a task, packed into one user
// message. Errors: kAlreadyExists if a prompt named recall exists.
Status AddRecallPrompt(McpServer& server, Memory& memory);

}  // namespace engram::mcp
