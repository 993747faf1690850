// A test fixture that drives an in-process McpServer as a client would: initialize, then
// JSON-RPC requests, with helpers for tool calls that must succeed or must fail.
//
//   class MyToolsTest : public testing::McpClientTest {
//     void SetUp() override { server_ = std::make_unique<McpServer>(...); ... }
//   };
//   auto session = Connect();
//   Json out = Ok(*session, "query_memory", {{"query", "..."}});
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/mutex.h"
#include "mcp/json_schema.h"
#include "mcp/server.h"
#include "mcp/session.h"

namespace engram::testing {

using mcp::Json;

// Records what the session sends outside responses (notifications, requests).
class RecordingChannel final : public mcp::ClientChannel {
 public:
  bool Send(const Json& message) override {
    MutexLock lock(mu_);
    sent_.push_back(message);
    return true;
  }
  std::vector<Json> sent() {
    MutexLock lock(mu_);
    return sent_;
  }

 private:
  Mutex mu_;
  std::vector<Json> sent_ ENGRAM_GUARDED_BY(mu_);
};

class McpClientTest : public ::testing::Test {
 protected:
  // A session of server_ past initialize (protocol 2025-11-25) and initialized.
  std::shared_ptr<mcp::McpSession> Connect(mcp::Principal principal = {}) {
    auto session = server_->NewSession(std::move(principal));
    Json init = Json::parse(
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",)"
        R"("capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
    std::optional<Json> reply = session->HandleMessage(init, channel_);
    EXPECT_TRUE(reply.has_value());
    if (reply) {
      EXPECT_EQ((*reply)["result"]["protocolVersion"], "2025-11-25") << reply->dump();
    }
    session->HandleMessage(Json::parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"), channel_);
    return session;
  }

  // Sends a request and returns the whole response.
  Json Request(mcp::McpSession& session, const std::string& method, Json params) {
    Json request = {{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", std::move(params)}};
    std::optional<Json> reply = session.HandleMessage(request, channel_);
    EXPECT_TRUE(reply.has_value()) << method;
    return reply.value_or(Json::object());
  }

  // tools/call; returns the result ({content, structuredContent, isError}).
  Json Call(mcp::McpSession& session, const std::string& tool, Json arguments = Json::object()) {
    Json response = Request(session, "tools/call", {{"name", tool}, {"arguments", std::move(arguments)}});
    EXPECT_TRUE(response.contains("result")) << response.dump();
    return response.value("result", Json::object());
  }

  // A call that must succeed: returns structuredContent after checking it matches the
  // text block and the tool's outputSchema.
  Json Ok(mcp::McpSession& session, const std::string& tool, Json arguments = Json::object()) {
    Json result = Call(session, tool, std::move(arguments));
    EXPECT_EQ(result.value("isError", true), false) << tool << ": " << result.dump();
    EXPECT_TRUE(result.contains("structuredContent")) << result.dump();
    Json structured = result.value("structuredContent", Json::object());
    if (result.contains("content") && result["content"].is_array() && !result["content"].empty()) {
      EXPECT_EQ(Json::parse(result["content"][0].value("text", "null")), structured);
    }
    const mcp::ToolDefinition* def = server_->tools().Find(tool);
    if (def != nullptr && def->output_schema) {
      Status valid = mcp::ValidateJson(structured, *def->output_schema, "structuredContent");
      EXPECT_TRUE(valid.ok()) << tool << ": " << valid.ToString() << "\n" << structured.dump(2);
    }
    return structured;
  }

  // A call that must fail as an isError result: returns its text.
  std::string Fails(mcp::McpSession& session, const std::string& tool, Json arguments) {
    Json result = Call(session, tool, std::move(arguments));
    EXPECT_EQ(result.value("isError", false), true) << tool << ": " << result.dump();
    if (!result.contains("content") || result["content"].empty()) return "";
    return result["content"][0].value("text", "");
  }

  std::unique_ptr<mcp::McpServer> server_;
  RecordingChannel channel_;
  int next_id_ = 100;
};

}  // namespace engram::testing
