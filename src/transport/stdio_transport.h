// MCP over stdio: newline-delimited JSON-RPC on stdin/stdout (DESIGN §7). stdout
// carries only protocol messages; logs go to stderr. Requests run on a worker pool so a
// notifications/cancelled line reaches a call that is still running.
#pragma once

#include <cstddef>

#include "engram/status.h"
#include "mcp/server.h"

namespace engram::transport {

struct StdioOptions {
  int in_fd = 0;
  int out_fd = 1;
  // A longer line is answered with -32600 and skipped, never buffered whole.
  size_t max_message_bytes = 16 << 20;
  size_t workers = 4;
};

// Not thread-safe: Run() is called once, from one thread.
class StdioTransport {
 public:
  StdioTransport(mcp::McpServer& server, StdioOptions options) : server_(server), options_(options) {}

  // Serves one session until end of input; calls in flight finish and are answered
  // before it returns. Errors: kUnavailable if stdin cannot be read.
  Status Run();

 private:
  mcp::McpServer& server_;
  const StdioOptions options_;
};

}  // namespace engram::transport
