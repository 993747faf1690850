// libFuzzer target over the stdio framing and the JSON-RPC / MCP message handling: any
// bytes a client can send go through LineSplitter and McpSession::HandleText. Every
// answer must be valid JSON-RPC; nothing may crash, hang or leak.
//
//   make fuzz FUZZ_SECONDS=60
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/check.h"
#include "mcp/server.h"
#include "transport/line_splitter.h"

namespace {

using engram::mcp::Json;

class NullChannel final : public engram::mcp::ClientChannel {
 public:
  bool Send(const Json& message) override {
    ENGRAM_CHECK(message.is_object() && message.value("jsonrpc", "") == "2.0");
    return true;
  }
  bool CanRequest() const override { return false; }
};

engram::mcp::McpServer& Server() {
  static engram::mcp::McpServer* server = [] {
    auto* s = new engram::mcp::McpServer(engram::mcp::ServerOptions{});
    engram::mcp::ToolDefinition echo;
    echo.name = "echo";
    echo.input_schema = {{"type", "object"},
                         {"properties",
                          {{"text", {{"type", "string"}, {"maxLength", 100}}},
                           {"n", {{"type", "integer"}, {"minimum", 0}}},
                           {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                           {"mode", {{"enum", {"a", "b"}}}}}},
                         {"required", {"text"}}};
    echo.handler = [](const Json& args, engram::mcp::CallContext& ctx) -> engram::Result<engram::mcp::ToolResult> {
      ctx.Progress(1, 2, "half");
      ctx.Log("info", "fuzz", args);
      return engram::mcp::ToolResult{{{"echo", args}}};
    };
    ENGRAM_CHECK(s->tools().Add(std::move(echo)).ok());
    return s;
  }();
  return *server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto session = Server().NewSession(engram::mcp::Principal{});
  NullChannel channel;
  engram::transport::LineSplitter splitter(4096);
  auto handle = [&](std::string line) {
    std::optional<Json> reply = session->HandleText(line, channel);
    if (reply) {
      // A reply is one response object, or a batch of them.
      if (reply->is_array()) {
        for (const Json& r : *reply) ENGRAM_CHECK(r.is_object() && r.contains("id"));
      } else {
        ENGRAM_CHECK(reply->is_object() && reply->contains("id") && (reply->contains("result") || reply->contains("error")));
      }
    }
  };
  splitter.Feed(std::string_view(reinterpret_cast<const char*>(data), size), handle, [] {});
  if (auto last = splitter.Finish()) handle(std::move(*last));
  return 0;
}
