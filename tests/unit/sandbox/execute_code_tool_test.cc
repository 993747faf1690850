// The execute_code tool through McpSession as a client would call it: its listing (expert
// tier), its arguments, its result shape, and isError naming a missing layer.
#include "sandbox/execute_code_tool.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "mcp/session.h"

namespace engram::sandbox {
namespace {

using ::testing::HasSubstr;
using mcp::Json;

// A Sandbox that records the request and answers what the test says.
class FakeSandbox final : public Sandbox {
 public:
  Result<ExecutionResult> Execute(const ExecutionRequest& request, const std::function<bool()>& cancelled) override {
    last = request;
    saw_cancel_hook = static_cast<bool>(cancelled);
    if (!ready.ok()) return ready;
    return result;
  }
  std::vector<SandboxLayerStatus> Layers() const override { return {}; }
  Status Ready() const override { return ready; }
  bool SupportsLanguage(SandboxLanguage) const override { return true; }

  std::optional<ExecutionRequest> last;
  bool saw_cancel_hook = false;
  Status ready;
  ExecutionResult result;
};

class NullChannel final : public mcp::ClientChannel {
 public:
  bool Send(const Json&) override { return true; }
};

class ExecuteCodeToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_shared<FakeSandbox>();
    fake_->result.stdout_text = "42\n";
    fake_->result.exit_status = 0;
    fake_->result.duration_ms = 7;
    fake_->result.violations.push_back({"syscall", "socket: refused"});
    ASSERT_TRUE(RegisterExecuteCodeTool(server_, fake_, 30000, 512).ok());
    session_ = server_.NewSession({});
    Request("initialize", {{"protocolVersion", "2025-11-25"},
                           {"capabilities", Json::object()},
                           {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
  }

  Json Request(const std::string& method, Json params) {
    Json request = {{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", std::move(params)}};
    std::optional<Json> reply = session_->HandleMessage(request, channel_);
    return reply.value_or(Json::object());
  }
  Json Call(Json arguments) {
    return Request("tools/call", {{"name", "execute_code"}, {"arguments", std::move(arguments)}})["result"];
  }

  mcp::McpServer server_{mcp::ServerOptions{}};
  std::shared_ptr<FakeSandbox> fake_;
  std::shared_ptr<mcp::McpSession> session_;
  NullChannel channel_;
  int next_id_ = 1;
};

TEST_F(ExecuteCodeToolTest, IsAnExpertToolWithSchemas) {
  const mcp::ToolDefinition* tool = server_.tools().Find("execute_code");
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(tool->tier, mcp::ToolTier::kExpert);
  EXPECT_EQ(tool->input_schema["required"], Json({"code", "language"}));
  EXPECT_EQ(tool->input_schema["properties"]["timeout_ms"]["maximum"], 30000);
  EXPECT_EQ(tool->input_schema["properties"]["memory_mb"]["maximum"], 512);
  ASSERT_TRUE(tool->output_schema.has_value());
  EXPECT_EQ((*tool->output_schema)["required"], Json({"stdout", "stderr", "exit_status", "duration_ms", "violations"}));
  // Not listed to a new session (beginner tier)...
  Json list = Request("tools/list", Json::object());
  for (const Json& t : list["result"]["tools"]) EXPECT_NE(t["name"], "execute_code");
}

TEST_F(ExecuteCodeToolTest, PassesTheRequestAndReturnsTheStructuredResult) {
  Json r = Call({{"code", "print(42)"},
                 {"language", "js"},
                 {"timeout_ms", 1500},
                 {"memory_mb", 64},
                 {"entry", "main"},
                 {"args", {1, "two"}}});
  ASSERT_EQ(r["isError"], false) << r.dump();
  EXPECT_EQ(r["structuredContent"],
            Json({{"stdout", "42\n"},
                  {"stderr", ""},
                  {"exit_status", 0},
                  {"duration_ms", 7},
                  {"violations", {{{"kind", "syscall"}, {"detail", "socket: refused"}}}}}));
  ASSERT_TRUE(fake_->last.has_value());
  EXPECT_EQ(fake_->last->language, SandboxLanguage::kJavaScript);
  EXPECT_EQ(fake_->last->code, "print(42)");
  EXPECT_EQ(fake_->last->timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(fake_->last->memory_mb, 64);
  EXPECT_EQ(fake_->last->entry, "main");
  EXPECT_EQ(fake_->last->args_json, "[1,\"two\"]");
  EXPECT_TRUE(fake_->saw_cancel_hook);
}

TEST_F(ExecuteCodeToolTest, BadArgumentsAreIsErrorNamingTheField) {
  Json r = Call({{"language", "javascript"}});
  EXPECT_EQ(r["isError"], true);
  EXPECT_THAT(r["content"][0]["text"].get<std::string>(), HasSubstr("code"));
  r = Call({{"code", "1"}, {"language", "ruby"}});
  EXPECT_EQ(r["isError"], true);
  EXPECT_THAT(r["content"][0]["text"].get<std::string>(), HasSubstr("language"));
}

TEST_F(ExecuteCodeToolTest, AMissingLayerIsIsErrorNamingIt) {
  fake_->ready = FailedPreconditionError("sandbox layer landlock is unavailable on this host: ENOSYS");
  Json r = Call({{"code", "print(1)"}, {"language", "javascript"}});
  EXPECT_EQ(r["isError"], true);
  EXPECT_THAT(r["content"][0]["text"].get<std::string>(), HasSubstr("sandbox layer landlock"));
}

TEST_F(ExecuteCodeToolTest, CountsRunsThatReachedTheSandboxAndTheirViolations) {
  fake_->result.violations.push_back({"timeout", "wall clock limit of 100 ms"});
  Call({{"code", "print(1)"}, {"language", "javascript"}});
  Call({{"code", "1"}, {"language", "ruby"}});  // bad arguments: never reaches the sandbox
  fake_->ready = FailedPreconditionError("sandbox layer landlock is unavailable on this host: ENOSYS");
  Call({{"code", "print(1)"}, {"language", "javascript"}});  // nothing ran
  mcp::ServerMetrics::Snapshot m = server_.metrics().Get();
  EXPECT_EQ(m.executions_by_language, (std::map<std::string, int64_t>{{"javascript", 1}}));
  EXPECT_EQ(m.violations_by_kind, (std::map<std::string, int64_t>{{"syscall", 1}, {"timeout", 1}}));
}

TEST(RegisterSandboxToolsTest, DisabledRegistersNothingAndAMissingHelperAnswersWhy) {
  mcp::McpServer off{mcp::ServerOptions{}};
  SandboxToolOptions options;
  options.enabled = false;
  ASSERT_TRUE(RegisterSandboxTools(off, options).ok());
  EXPECT_EQ(off.tools().Find("execute_code"), nullptr);

  mcp::McpServer server{mcp::ServerOptions{}};
  options.enabled = true;
  options.sandbox.helper_path = "/nonexistent/engram-sandbox";
  ASSERT_TRUE(RegisterSandboxTools(server, options).ok());
  const mcp::ToolDefinition* tool = server.tools().Find("execute_code");
  ASSERT_NE(tool, nullptr);
  class Ctx final : public mcp::CallContext {
   public:
    bool cancelled() const override { return false; }
    void Progress(double, std::optional<double>, const std::string&) override {}
    void Log(const std::string&, const std::string&, const Json&) override {}
    Result<Json> RequestClient(const std::string&, const Json&, std::chrono::milliseconds) override {
      return UnavailableError("no client");
    }
    const mcp::Principal& principal() const override { return principal_; }
    mcp::Principal principal_;
  } ctx;
  Result<mcp::ToolResult> r = tool->handler(Json{{"code", "print(1)"}, {"language", "javascript"}}, ctx);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("engram-sandbox"));
}

TEST(SandboxToolOptionsTest, ComeFromConfig) {
  Config config;
  config.sandbox_enabled = false;
  config.sandbox_max_timeout_ms = 2000;
  config.sandbox_max_memory_mb = 64;
  SandboxToolOptions o = SandboxToolOptionsFromConfig(config);
  EXPECT_FALSE(o.enabled);
  EXPECT_EQ(o.sandbox.max_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(o.sandbox.default_timeout, std::chrono::milliseconds(2000));  // clamped to the max
  EXPECT_EQ(o.sandbox.max_memory_mb, 64);
  EXPECT_EQ(o.sandbox.default_memory_mb, 64);
}

}  // namespace
}  // namespace engram::sandbox

namespace engram::sandbox {
namespace {

// Caps read at every call (config reload changes them while serving).
TEST(ExecuteCodeLiveLimitsTest, CapsChangeForTheNextCall) {
  mcp::McpServer server{mcp::ServerOptions{}};
  auto fake = std::make_shared<FakeSandbox>();
  auto limits = std::make_shared<SandboxLimits>(2000, 64);
  ASSERT_TRUE(RegisterExecuteCodeTool(server, fake, limits).ok());
  const mcp::ToolDefinition* tool = server.tools().Find("execute_code");
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(tool->input_schema["properties"]["timeout_ms"]["maximum"], kMaxTimeoutCeilingMs);
  auto session = server.NewSession({});
  NullChannel channel;
  int id = 1;
  auto call = [&](Json arguments) {
    Json request = {{"jsonrpc", "2.0"},
                    {"id", id++},
                    {"method", "tools/call"},
                    {"params", {{"name", "execute_code"}, {"arguments", std::move(arguments)}}}};
    return session->HandleMessage(request, channel).value_or(Json::object())["result"];
  };
  session->HandleMessage({{"jsonrpc", "2.0"},
                          {"id", id++},
                          {"method", "initialize"},
                          {"params",
                           {{"protocolVersion", "2025-11-25"},
                            {"capabilities", Json::object()},
                            {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}},
                         channel);

  Json refused = call({{"code", "1"}, {"language", "javascript"}, {"timeout_ms", 3000}});
  EXPECT_EQ(refused["isError"], true);
  EXPECT_THAT(refused.dump(), ::testing::HasSubstr("timeout_ms: must be at most 2000"));
  EXPECT_FALSE(fake->last.has_value()) << "nothing ran";

  // Unset limits default to the sandbox default, capped by the limit in force.
  EXPECT_EQ(call({{"code", "1"}, {"language", "javascript"}})["isError"], false);
  ASSERT_TRUE(fake->last.has_value());
  EXPECT_EQ(fake->last->timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(fake->last->memory_mb, 64);

  limits->Set(5000, 256);
  EXPECT_EQ(call({{"code", "1"}, {"language", "javascript"}, {"timeout_ms", 3000}})["isError"], false);
  EXPECT_EQ(fake->last->timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(call({{"code", "1"}, {"language", "javascript"}, {"memory_mb", 512}})["isError"], true);
}

}  // namespace
}  // namespace engram::sandbox
