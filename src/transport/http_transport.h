// MCP over Streamable HTTP (MCP 2025-11-25; 2025-06-18 and 2025-03-26 clients too), on
// cpp-httplib. One endpoint, /mcp:
//   POST    one JSON-RPC message or batch. Notifications and responses only → 202.
//           Requests → an application/json response, or, as soon as the call sends
//           anything to the client first (progress, logs, list_changed, sampling or
//           elicitation requests), a text/event-stream that carries those messages and
//           then the response. `initialize` without Mcp-Session-Id starts a session and
//           the response names it in Mcp-Session-Id; every other request must carry it.
//   GET     the session's own SSE stream, for messages not tied to a request
//           (Broadcast); kept open with comments.
//   DELETE  ends the session; its id is then unknown (404).
// and GET /healthz → 200 "ok" for probes (no auth); with HttpOptions::metrics, GET /metrics
// (Prometheus text, authenticated like /mcp). With HttpOptions::static_files, also
// GET / and GET /assets/<name>: fixed files (the dashboard) that carry no data of their own,
// so they are served without a key but under the same Host/Origin checks; the page then
// calls /mcp like any client.
//
// Security: bound to loopback (the default), requests must name a loopback Host and any
// Origin must be a loopback origin or listed in allowed_origins (DNS-rebinding
// protection); violations get 403. API keys (`X-API-Key: K` or `Authorization: Bearer K`)
// are required when the key store has an active key, and always beyond loopback, where
// Start() refuses to run without keys. A session is bound to the key that created it.
//
//   HttpTransport transport(server, HttpOptions{.port = 0, .keys = &keys});
//   ENGRAM_RETURN_IF_ERROR(transport.Start());
//   std::cout << transport.port();
//   transport.Wait();  // until another thread calls Stop()
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engram/status.h"
#include "mcp/auth.h"
#include "mcp/server.h"
#include "transport/rate_limiter.h"

namespace engram::transport {

// A file served as is at `path` ("/" or "/assets/app.js"). The views must outlive the
// transport (the dashboard's are static data built into the binary).
struct StaticFile {
  std::string_view path;
  std::string_view content_type;  // "text/html; charset=utf-8"
  std::string_view body;
  std::string_view etag;  // quoted, e.g. "\"3f9a...\""; empty: none
};

struct HttpOptions {
  // Address to listen on. Loopback ("127.0.0.1", "::1", "localhost") turns on Host
  // checks; anything else ("0.0.0.0") requires API keys.
  std::string host = "127.0.0.1";
  // 0 picks a free port; HttpTransport::port() tells which.
  int port = 8765;
  // Larger request bodies are answered 413 without being buffered.
  size_t max_body_bytes = 4 << 20;
  // Not owned; must outlive the transport. Null: no keys (only allowed on loopback).
  const mcp::ApiKeyStore* keys = nullptr;
  // POST /mcp requests allowed per API key (per client address when no key is needed);
  // one over the limit gets 429 with Retry-After and a JSON-RPC error. Off by default.
  // SetRateLimit() changes it while serving.
  RateLimit rate_limit;
  // Origins accepted besides loopback ones, exactly as browsers send them
  // ("https://app.example.com"); "*" accepts any Origin.
  std::vector<std::string> allowed_origins;
  // A session with no request and no open stream for this long is forgotten (its id then
  // gets 404). Zero keeps sessions until DELETE or Stop().
  std::chrono::seconds session_idle_timeout{3600};
  // More initialize requests than this while as many sessions are live get 503.
  size_t max_sessions = 1000;
  // Connections served at once. An open SSE stream (GET, or a POST that streams) holds one
  // for its lifetime, so at most half of them may be GET streams.
  size_t http_threads = 32;
  // MCP requests handled at once, across all sessions.
  size_t workers = 16;
  // How often an idle SSE stream gets a ": keepalive" comment, which also notices clients
  // that went away.
  std::chrono::milliseconds sse_keepalive{15000};
  // Served on GET (and HEAD) with Cache-Control: no-cache and their ETag (304 when the
  // client has it); any other path outside /mcp is 404. Empty (the default): none.
  std::vector<StaticFile> static_files;
  // GET /metrics answers what this returns (the Prometheus text format, e.g.
  // server/register_builtins.h PrometheusMetricsFor), as text/plain; version=0.0.4, under
  // the same Host/Origin checks and API keys as /mcp (401 without a valid key when keys
  // are configured). Called on an HTTP thread, so it must be thread-safe. Unset (the
  // default): /metrics is 404.
  std::function<std::string()> metrics;
};

// Thread-safe: Stop() and Broadcast() may be called from any thread.
class HttpTransport {
 public:
  // `server` is not owned and must outlive the transport.
  HttpTransport(mcp::McpServer& server, HttpOptions options);
  // Stops (see Stop()).
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Binds and starts serving on background threads; returns once requests are accepted.
  // Errors: kFailedPrecondition if `host` is beyond loopback and no API key is active
  // ("refusing to listen on 0.0.0.0 without API keys: create one with `engram keys
  // create`"), or if already started; kUnavailable if the address cannot be bound (port
  // taken, unknown host).
  Status Start();

  // The bound port (useful with port 0); the configured one before Start().
  int port() const;

  // Stops accepting, ends open streams, cancels every session's calls, waits for the
  // threads, and forgets all sessions. Idempotent; a second caller waits for the first.
  // Not async-signal-safe: call it from a thread (e.g. one in sigwait).
  void Stop();

  // Blocks until the server stops serving (Stop() from another thread). Returns at once
  // if it was never started.
  void Wait();

  // Sends `message` (a notification) on every session's open GET stream; returns how many
  // streams took it.
  size_t Broadcast(const mcp::Json& message);

  // Live sessions.
  size_t session_count() const;

  // Replaces the API key store for every later request (config reload: auth.keys_file);
  // requests already past authentication finish with the old one, which the transport
  // keeps alive until then. Null: no keys. Sessions stay bound to their key id.
  void SetKeys(std::shared_ptr<const mcp::ApiKeyStore> keys);

  // Replaces the rate limit for every later request (config reload: server.rate_limit).
  void SetRateLimit(RateLimit limit);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engram::transport
