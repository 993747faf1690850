// Framing of the stdio transport: newline-delimited messages through real pipes.
#include "transport/stdio_transport.h"

#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace engram::transport {
namespace {

using mcp::Json;

class StdioTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mcp::ToolDefinition slow;
    slow.name = "slow";
    slow.description = "sleeps until cancelled or 1 s";
    slow.input_schema = {{"type", "object"}};
    slow.handler = [](const Json&, mcp::CallContext& ctx) -> Result<mcp::ToolResult> {
      for (int i = 0; i < 100 && !ctx.cancelled(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return mcp::ToolResult{{{"cancelled", ctx.cancelled()}}};
    };
    ASSERT_TRUE(server_.tools().Add(std::move(slow)).ok());
  }

  // Feeds `input` (then EOF) to a transport and returns every line it wrote.
  std::vector<Json> Run(const std::string& input, StdioOptions options = {}) {
    int in[2], out[2];
    EXPECT_EQ(pipe(in), 0);
    EXPECT_EQ(pipe(out), 0);
    options.in_fd = in[0];
    options.out_fd = out[1];
    std::thread writer([&] {
      ssize_t n = write(in[1], input.data(), input.size());
      EXPECT_EQ(n, static_cast<ssize_t>(input.size()));
      close(in[1]);
    });
    std::string output;
    std::thread reader([&] {
      char buf[4096];
      ssize_t n;
      while ((n = read(out[0], buf, sizeof(buf))) > 0) output.append(buf, static_cast<size_t>(n));
    });
    StdioTransport transport(server_, options);
    Status s = transport.Run();
    EXPECT_TRUE(s.ok()) << s.ToString();
    close(out[1]);
    writer.join();
    reader.join();
    close(in[0]);
    close(out[0]);
    std::vector<Json> lines;
    size_t start = 0;
    for (size_t nl; (nl = output.find('\n', start)) != std::string::npos; start = nl + 1) {
      auto j = mcp::ParseJson(output.substr(start, nl - start));
      EXPECT_TRUE(j) << "not JSON: " << output.substr(start, nl - start);
      if (j) lines.push_back(*j);
    }
    EXPECT_EQ(start, output.size()) << "output must end with a newline";
    return lines;
  }

  static std::string Init() {
    return R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})"
           "\n";
  }

  static const Json* ById(const std::vector<Json>& lines, const Json& id) {
    for (const Json& l : lines) {
      if (l.contains("id") && l["id"] == id) return &l;
    }
    return nullptr;
  }

  mcp::McpServer server_{mcp::ServerOptions{}};
};

TEST_F(StdioTransportTest, AnswersPipelinedRequestsAndSkipsBlankLines) {
  std::string input = Init() + "\n   \n" + R"({"jsonrpc":"2.0","id":1,"method":"ping"})" + "\r\n" +
                      R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "\n" +
                      R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})";  // last line without '\n'
  std::vector<Json> lines = Run(input);
  ASSERT_EQ(lines.size(), 3u);
  ASSERT_NE(ById(lines, 0), nullptr);
  ASSERT_NE(ById(lines, 1), nullptr);
  EXPECT_EQ((*ById(lines, 1))["result"], Json::object());
  ASSERT_NE(ById(lines, 2), nullptr);
  EXPECT_EQ((*ById(lines, 2))["result"]["tools"][0]["name"], "slow");
}

TEST_F(StdioTransportTest, GarbageAndPartialLinesGetParseErrorsAndServingGoesOn) {
  std::string input = Init() + "{\"jsonrpc\":\"2.0\",\"id\":1,\n" + "\x01\x02\xff garbage\n" + "}\n" +
                      R"({"jsonrpc":"2.0","id":5,"method":"ping"})" + "\n";
  std::vector<Json> lines = Run(input);
  int parse_errors = 0;
  for (const Json& l : lines) {
    if (l.contains("error") && l["error"]["code"] == -32700) ++parse_errors;
  }
  EXPECT_EQ(parse_errors, 3);
  ASSERT_NE(ById(lines, 5), nullptr);
  EXPECT_EQ((*ById(lines, 5))["result"], Json::object());
}

TEST_F(StdioTransportTest, OversizedMessageIsRefusedWithoutBufferingIt) {
  StdioOptions options;
  options.max_message_bytes = 1024;
  std::string huge = R"({"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":")" + std::string(100'000, 'a') + "\"}}\n";
  std::vector<Json> lines = Run(Init() + huge + R"({"jsonrpc":"2.0","id":10,"method":"ping"})" + "\n", options);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1]["error"]["code"], -32600);
  EXPECT_NE(lines[1]["error"]["message"].get<std::string>().find("larger than 1024"), std::string::npos);
  EXPECT_EQ(ById(lines, 9), nullptr);
  ASSERT_NE(ById(lines, 10), nullptr);
}

TEST_F(StdioTransportTest, CancellationReachesARunningCallAndEofWaitsForInFlightCalls) {
  // The slow call is cancelled: it gets no response. A second slow call still running at
  // EOF is answered before Run() returns.
  std::string input = Init() + R"({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"slow"}})" + "\n" +
                      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}})" + "\n" +
                      R"({"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"slow","arguments":{}}})";
  std::vector<Json> lines = Run(input);
  EXPECT_EQ(ById(lines, "a"), nullptr) << "a cancelled request gets no response";
  ASSERT_NE(ById(lines, "b"), nullptr) << "in-flight calls finish before exit";
  EXPECT_EQ((*ById(lines, "b"))["result"]["structuredContent"]["cancelled"], false);
}

}  // namespace
}  // namespace engram::transport
