// One MCP client connection: the initialize handshake and negotiated version, the
// client's log level, the disclosure tier reached, in-flight calls (for cancellation)
// and requests the server sent to the client (sampling, elicitation). Transports feed
// it parsed JSON messages and send what it returns.
//
//   auto session = server.NewSession(principal);
//   std::optional<Json> reply = session->HandleMessage(message, channel);
//   if (reply) channel.Send(*reply);
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>

#include "common/mutex.h"
#include "mcp/jsonrpc.h"
#include "mcp/tool_registry.h"

namespace engram::mcp {

class McpServer;

// Where messages for the client go: notifications and server-to-client requests made
// while handling a message. Implemented by transports (stdout for stdio; the SSE stream
// of an HTTP response). Thread-safe.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  // Returns false if the client can no longer be reached.
  virtual bool Send(const Json& message) = 0;
  // False when the channel cannot carry server-to-client requests (e.g. a plain JSON
  // HTTP response). Sampling and elicitation then fail with kUnavailable.
  virtual bool CanRequest() const { return true; }
};

// The MCP protocol versions engram speaks, newest first.
inline constexpr const char* kProtocolVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
inline constexpr const char* kLatestProtocolVersion = "2025-11-25";
bool IsSupportedProtocolVersion(std::string_view version);

// Thread-safe: HandleMessage may run concurrently for different messages of the same
// session (a transport must, so that notifications/cancelled can reach a running call).
class McpSession {
 public:
  McpSession(McpServer& server, Principal principal);
  McpSession(const McpSession&) = delete;
  McpSession& operator=(const McpSession&) = delete;

  // Handles one message or a batch (a JSON array). Returns the response to send, if
  // any: nothing for notifications, client responses, and cancelled requests.
  // Messages produced while handling (progress, logs, list_changed, server requests)
  // go to `channel`, which must stay valid until this returns.
  std::optional<Json> HandleMessage(const Json& message, ClientChannel& channel) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Handles raw text (one JSON-RPC message or batch). Malformed JSON → -32700.
  std::optional<Json> HandleText(std::string_view text, ClientChannel& channel);

  // Marks every in-flight call cancelled and fails pending server requests (the client
  // went away). Calls then finish quickly and their responses are dropped.
  void CancelAll() ENGRAM_LOCKS_EXCLUDED(mu_);

  bool initialized() const ENGRAM_LOCKS_EXCLUDED(mu_);
  // The negotiated version, empty before initialize.
  std::string protocol_version() const ENGRAM_LOCKS_EXCLUDED(mu_);
  const Principal& principal() const { return principal_; }
  ToolTier tier() const ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  class Call;  // a CallContext for one tools/call
  struct Pending {
    Mutex mu;
    CondVar cv;
    std::optional<Json> response ENGRAM_GUARDED_BY(mu);
    bool failed ENGRAM_GUARDED_BY(mu) = false;
  };

  std::optional<Json> HandleOne(const Json& message, ClientChannel& channel);
  Result<Json> Dispatch(const std::string& method, const Json& params, ClientChannel& channel,
                        const std::shared_ptr<std::atomic<bool>>& cancelled);
  Result<Json> Initialize(const Json& params);
  Result<Json> ListTools(const Json& params);
  Result<Json> CallTool(const Json& params, ClientChannel& channel,
                        const std::shared_ptr<std::atomic<bool>>& cancelled);
  Result<Json> SetLogLevel(const Json& params);
  Result<Json> ListResources(const Json& params);
  Result<Json> ListResourceTemplates();
  Result<Json> ReadResource(const Json& params);
  Result<Json> Subscribe(const Json& params, bool subscribe);
  Result<Json> ListPrompts(const Json& params);
  Result<Json> GetPrompt(const Json& params);
  Result<Json> Complete(const Json& params);
  void HandleNotification(const std::string& method, const Json& params);
  void HandleClientResponse(const Json& message);
  Result<Json> RequestClient(const std::string& method, const Json& params, std::chrono::milliseconds timeout,
                             ClientChannel& channel, const std::atomic<bool>& cancelled);
  // Counts a successful tool call; returns true when the session reached a new tier.
  bool CountToolUse() ENGRAM_LOCKS_EXCLUDED(mu_);
  bool ShouldLog(const std::string& level) const ENGRAM_LOCKS_EXCLUDED(mu_);

  McpServer& server_;
  const Principal principal_;

  mutable Mutex mu_;
  bool initialized_ ENGRAM_GUARDED_BY(mu_) = false;
  std::string protocol_version_ ENGRAM_GUARDED_BY(mu_);
  Json client_capabilities_ ENGRAM_GUARDED_BY(mu_) = Json::object();
  int log_level_ ENGRAM_GUARDED_BY(mu_);  // index into the MCP level list; messages below it are dropped
  bool log_level_set_ ENGRAM_GUARDED_BY(mu_) = false;
  int64_t successful_tool_calls_ ENGRAM_GUARDED_BY(mu_) = 0;
  ToolTier tier_ ENGRAM_GUARDED_BY(mu_) = ToolTier::kBeginner;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> in_flight_ ENGRAM_GUARDED_BY(mu_);  // by Dump(id)
  std::map<std::string, std::shared_ptr<Pending>> pending_ ENGRAM_GUARDED_BY(mu_);  // server requests by id
  int64_t next_request_id_ ENGRAM_GUARDED_BY(mu_) = 1;
  std::set<std::string> subscriptions_ ENGRAM_GUARDED_BY(mu_);  // resource URIs
  // Cancellations that arrived before their request started; bounded.
  static constexpr size_t kMaxEarlyCancels = 1024;
  std::set<std::string> early_cancels_ ENGRAM_GUARDED_BY(mu_);
};

}  // namespace engram::mcp
