// McpServer: what every session of one engram process shares — the tool registry,
// resource providers, prompts, options and metrics. Transports create one McpSession
// per client connection from it. Knows MCP, not engram's core: the tools, resources and
// prompts that reach Memory are registered by server/register_builtins.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/histogram.h"
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

// The progressive-disclosure part of ServerOptions, which may change while serving
// (McpServer::SetDisclosure, on config reload).
struct DisclosureOptions {
  bool disclose_all = false;
  int64_t advanced_after_calls = 3;
  int64_t expert_after_calls = 10;
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

// What this server process measured of its own work, for get_metrics, health_check and
// GET /metrics: tool calls by tool and status with their latency, a per-minute latency
// history of the last hour, and code executions. Thread-safe.
class ServerMetrics {
 public:
  // `error`: the call was answered with isError (bad arguments or a failed tool).
  void RecordToolCall(const std::string& tool, double latency_ms, bool error) ENGRAM_LOCKS_EXCLUDED(mu_) {
    RecordToolCallAt(tool, latency_ms, error, std::chrono::system_clock::now());
  }
  // As RecordToolCall, with the wall-clock time that files the call under its minute.
  void RecordToolCallAt(const std::string& tool, double latency_ms, bool error,
                        std::chrono::system_clock::time_point now) ENGRAM_LOCKS_EXCLUDED(mu_);
  void RecordRequest() ENGRAM_LOCKS_EXCLUDED(mu_);
  // One run of execute_code that reached the sandbox (whether or not its code ran to the
  // end), with the kinds of its violations ("syscall", "timeout", ...; may repeat).
  void RecordExecution(const std::string& language, const std::vector<std::string>& violation_kinds)
      ENGRAM_LOCKS_EXCLUDED(mu_);

  struct ToolStats {
    int64_t ok = 0;
    int64_t errors = 0;
    LatencyHistogram latency;  // every call, ok or not
  };
  // The tool calls that started in one wall-clock minute.
  struct Minute {
    std::chrono::system_clock::time_point start;  // a whole minute, UTC
    int64_t calls = 0;
    double p50_ms = 0;
    double p95_ms = 0;
  };
  struct Snapshot {
    int64_t requests = 0;
    int64_t tool_calls = 0;
    int64_t tool_errors = 0;
    double p50_ms = 0;
    double p95_ms = 0;
    std::map<std::string, int64_t> calls_by_tool;
    std::map<std::string, ToolStats> tools;
    // Minutes of the last hour (the current one included) with calls, oldest first.
    std::vector<Minute> history;
    std::map<std::string, int64_t> executions_by_language;
    std::map<std::string, int64_t> violations_by_kind;
  };
  // p50_ms/p95_ms: nearest-rank percentiles over the most recent kWindow tool calls; a
  // minute's over (at most) kWindow of its calls.
  Snapshot Get() const ENGRAM_LOCKS_EXCLUDED(mu_) { return GetAt(std::chrono::system_clock::now()); }
  Snapshot GetAt(std::chrono::system_clock::time_point now) const ENGRAM_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kWindow = 4096;
  static constexpr int64_t kHistoryMinutes = 60;

 private:
  struct MinuteSamples {
    int64_t minute = 0;  // minutes since the epoch
    int64_t calls = 0;
    std::vector<double> latencies;  // the first kWindow calls of the minute
  };

  mutable Mutex mu_;
  int64_t requests_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t tool_calls_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t tool_errors_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::deque<double> latencies_ ENGRAM_GUARDED_BY(mu_);
  std::map<std::string, ToolStats> tools_ ENGRAM_GUARDED_BY(mu_);
  std::deque<MinuteSamples> minutes_ ENGRAM_GUARDED_BY(mu_);  // ascending, at most kHistoryMinutes
  std::map<std::string, int64_t> executions_by_language_ ENGRAM_GUARDED_BY(mu_);
  std::map<std::string, int64_t> violations_by_kind_ ENGRAM_GUARDED_BY(mu_);
};

// Thread-safe once set up: register tools, providers and prompts before serving.
class McpServer {
 public:
  explicit McpServer(ServerOptions options)
      : options_(std::move(options)),
        disclosure_{options_.disclose_all, options_.advanced_after_calls, options_.expert_after_calls} {}
  McpServer(const McpServer&) = delete;
  McpServer& operator=(const McpServer&) = delete;

  ToolRegistry& tools() { return tools_; }
  const ToolRegistry& tools() const { return tools_; }
  void AddResourceProvider(std::unique_ptr<ResourceProvider> provider) { resources_.push_back(std::move(provider)); }
  const std::vector<std::unique_ptr<ResourceProvider>>& resource_providers() const { return resources_; }
  // Errors: kAlreadyExists.
  Status AddPrompt(PromptDefinition prompt);
  const std::vector<PromptDefinition>& prompts() const { return prompts_; }
  // The options the server was made with; the disclosure fields are only the starting
  // point: read disclosure() for the ones in force.
  const ServerOptions& options() const { return options_; }
  // The disclosure settings in force: ServerOptions' until SetDisclosure replaces them.
  DisclosureOptions disclosure() const ENGRAM_LOCKS_EXCLUDED(disclosure_mu_) {
    MutexLock lock(disclosure_mu_);
    return disclosure_;
  }
  // Applies to every session's next tools/list and next tool call (config reload). A
  // session keeps a tier it has reached; lower thresholds lift it on its next call.
  void SetDisclosure(DisclosureOptions disclosure) ENGRAM_LOCKS_EXCLUDED(disclosure_mu_) {
    MutexLock lock(disclosure_mu_);
    disclosure_ = disclosure;
  }
  ServerMetrics& metrics() { return metrics_; }

  std::shared_ptr<McpSession> NewSession(Principal principal) {
    return std::make_shared<McpSession>(*this, std::move(principal));
  }

 private:
  const ServerOptions options_;
  mutable Mutex disclosure_mu_;
  DisclosureOptions disclosure_ ENGRAM_GUARDED_BY(disclosure_mu_);
  ToolRegistry tools_;
  std::vector<std::unique_ptr<ResourceProvider>> resources_;
  std::vector<PromptDefinition> prompts_;
  ServerMetrics metrics_;
};

}  // namespace engram::mcp
