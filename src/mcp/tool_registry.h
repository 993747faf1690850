// MCP tools: their definitions (name, schemas, annotations, disclosure tier) and the
// registry the server lists and calls them from. Registries are filled explicitly in
// server/register_builtins.cc (STYLE §2), never by static initialisers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/logging.h"
#include "engram/result.h"
#include "mcp/jsonrpc.h"

namespace engram::mcp {

// Who is calling, as the transport authenticated them.
struct Principal {
  std::string key_id;  // empty: unauthenticated (stdio, or HTTP on loopback without keys)
  // Domains this caller may read and write; empty means every domain.
  std::vector<std::string> allowed_domains;

  bool MayAccessDomain(std::string_view domain) const;
};

// What a running tool call can do besides computing its result. Implemented by the
// session. Thread-safe: a handler may use it from any thread while the call runs.
class CallContext {
 public:
  virtual ~CallContext() = default;
  // True once the client sent notifications/cancelled for this call (or disconnected).
  virtual bool cancelled() const = 0;
  // Sends notifications/progress if the call carried a progressToken; otherwise nothing.
  virtual void Progress(double progress, std::optional<double> total, const std::string& message) = 0;
  // Sends notifications/message at `level` (MCP names: debug, info, notice, warning,
  // error, critical, alert, emergency) if the client's logging/setLevel lets it through.
  virtual void Log(const std::string& level, const std::string& logger, const Json& data) = 0;
  // Sends a request to the client (sampling/createMessage, elicitation/create, ...)
  // and waits for its answer. Errors: kDeadlineExceeded, kCancelled, kUnavailable
  // (the client cannot receive requests), or the client's error as kInternal.
  virtual Result<Json> RequestClient(const std::string& method, const Json& params,
                                     std::chrono::milliseconds timeout) = 0;
  virtual const Principal& principal() const = 0;
};

// Progressive disclosure tiers: tools/list shows the tiers the session has reached.
enum class ToolTier { kBeginner = 0, kAdvanced = 1, kExpert = 2 };

struct ToolAnnotations {
  bool read_only = false;
  bool destructive = false;
  bool idempotent = false;
  bool open_world = false;
};

// A tool's outcome: structured JSON shown to the model both as structuredContent and as
// text, or extra content blocks (fixtures send images, audio, ...).
struct ToolResult {
  Json structured = Json::object();  // becomes structuredContent (and the text block)
  std::optional<Json> content;       // replaces the default [text] content when set
};

// A handler returns kInvalidArgument for arguments a model should correct, other
// errors when it ran and failed: both become a result with isError: true whose text
// names the field or the cause. It must not throw.
using ToolHandler = std::function<Result<ToolResult>(const Json& arguments, CallContext& context)>;

struct ToolDefinition {
  std::string name;
  std::string title;
  std::string description;
  Json input_schema;                     // JSON Schema (2020-12), type object
  std::optional<Json> output_schema;     // describes `structured`
  ToolAnnotations annotations;
  ToolTier tier = ToolTier::kBeginner;
  ToolHandler handler;
};

// Thread-compatible: filled at start-up, read concurrently afterwards.
class ToolRegistry {
 public:
  // Errors: kAlreadyExists for a duplicate name; kInvalidArgument for a definition
  // without name, handler or an object input schema.
  Status Add(ToolDefinition tool);
  // nullptr if unknown.
  const ToolDefinition* Find(std::string_view name) const;
  // In registration order.
  const std::vector<std::unique_ptr<ToolDefinition>>& tools() const { return tools_; }

  // The tools/list entry for `tool`.
  static Json Describe(const ToolDefinition& tool);

 private:
  std::vector<std::unique_ptr<ToolDefinition>> tools_;
};

}  // namespace engram::mcp
