// McpServer: what every session of one engram process shares — the tool registry,
// resource providers, prompts, options and metrics. Transports create one McpSession
// per client connection from it. Knows MCP, not engram's core: the tools, resources and
// prompts that reach Memory are registered by server/register_builtins.cc.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "mcp/jsonrpc.h"
#include "mcp/session.h"
#include "mcp/tool_registry.h"

namespace engram::mcp {

struct ServerOptions {
  std::string name = "engram";
  std::string version = "0.0.0";
  std::string instructions;
  // Progressive disclosure (DESIGN §7): tools/list shows the beginner tools until a
  // session has made `advanced_after_calls` successful tool calls, then the advanced
  // ones, then after `expert_after_calls` everything. `disclose_all` shows everything
  // from the start. Any known tool can be called whatever is listed.
  bool disclose_all = false;
  int64_t advanced_after_calls = 3;
  int64_t expert_after_calls = 10;
  // Items per page of tools/list, resources/list and prompts/list.
  size_t page_size = 100;
};

struct ResourceEntry {
  std::string uri;
  std::string name;
  std::string title;
  std::string description;
  std::string mime_type = "application/json";
};

struct ResourceContents {
  std::string uri;
  std::string mime_type;
  std::optional<std::string> text;
  std::optional<std::string> blob_base64;
};

struct ResourcePage {
  std::vector<ResourceEntry> resources;
  std::string next_cursor;  // empty: no more
};

// A family of resources under one URI scheme or prefix. Thread-safe.
class ResourceProvider {
 public:
  virtual ~ResourceProvider() = default;
  // One page of this provider's resources. `cursor` is what the previous page returned
  // ("" for the first). Errors: kInvalidArgument for a cursor it did not issue.
  virtual Result<ResourcePage> List(const std::string& cursor, size_t limit, const Principal& principal) = 0;
  // resources/templates/list entries: {uriTemplate, name, description, mimeType}.
  virtual std::vector<Json> Templates() const = 0;
  virtual bool Owns(std::string_view uri) const = 0;
  // Errors: kNotFound (→ -32002), kPermissionDenied (outside the caller's domains).
  virtual Result<std::vector<ResourceContents>> Read(std::string_view uri, const Principal& principal) = 0;
};

struct PromptArgument {
  std::string name;
  std::string description;
  bool required = false;
};

struct PromptDefinition {
  std::string name;
  std::string title;
  std::string description;
  std::vector<PromptArgument> arguments;
  // Returns the prompts/get result: {description?, messages: [{role, content}]}.
  // Errors: kInvalidArgument (missing or bad argument → -32602).
  std::function<Result<Json>(const Json& arguments, const Principal& principal)> get;
  // Optional completion/complete for an argument: values starting with `prefix`.
  std::function<std::vector<std::string>(const std::string& argument, const std::string& prefix)> complete;
};

// Tool call counts and latencies, for get_metrics and /metrics. Thread-safe.
class ServerMetrics {
 public:
  void RecordToolCall(const std::string& tool, double latency_ms, bool error) ENGRAM_LOCKS_EXCLUDED(mu_);
  void RecordRequest() ENGRAM_LOCKS_EXCLUDED(mu_);
  struct Snapshot {
    int64_t requests = 0;
    int64_t tool_calls = 0;
    int64_t tool_errors = 0;
    double p50_ms = 0;
    double p95_ms = 0;
    std::map<std::string, int64_t> calls_by_tool;
  };
  // Percentiles over the most recent kWindow tool calls.
  Snapshot Get() const ENGRAM_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kWindow = 4096;

 private:
  mutable Mutex mu_;
  int64_t requests_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t tool_calls_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t tool_errors_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::deque<double> latencies_ ENGRAM_GUARDED_BY(mu_);
  std::map<std::string, int64_t> calls_by_tool_ ENGRAM_GUARDED_BY(mu_);
};

// Thread-safe once set up: register tools, providers and prompts before serving.
class McpServer {
 public:
  explicit McpServer(ServerOptions options) : options_(std::move(options)) {}
  McpServer(const McpServer&) = delete;
  McpServer& operator=(const McpServer&) = delete;

  ToolRegistry& tools() { return tools_; }
  const ToolRegistry& tools() const { return tools_; }
  void AddResourceProvider(std::unique_ptr<ResourceProvider> provider) { resources_.push_back(std::move(provider)); }
  const std::vector<std::unique_ptr<ResourceProvider>>& resource_providers() const { return resources_; }
  // Errors: kAlreadyExists.
  Status AddPrompt(PromptDefinition prompt);
  const std::vector<PromptDefinition>& prompts() const { return prompts_; }
  const ServerOptions& options() const { return options_; }
  ServerMetrics& metrics() { return metrics_; }

  std::shared_ptr<McpSession> NewSession(Principal principal) {
    return std::make_shared<McpSession>(*this, std::move(principal));
  }

 private:
  const ServerOptions options_;
  ToolRegistry tools_;
  std::vector<std::unique_ptr<ResourceProvider>> resources_;
  std::vector<PromptDefinition> prompts_;
  ServerMetrics metrics_;
};

}  // namespace engram::mcp
