// The Streamable HTTP transport, driven over real sockets on 127.0.0.1 with
// cpp-httplib's client, against an McpServer with a few test tools.
#include "transport/http_transport.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "mcp/auth.h"
#include "mcp/jsonrpc.h"
#include "mcp/server.h"

namespace engram::transport {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using mcp::Json;

constexpr const char* kBothTypes = "application/json, text/event-stream";

Json ObjectSchema() { return Json{{"type", "object"}, {"properties", Json::object()}}; }

// Splits an SSE body into the data of its events; comments are skipped.
std::vector<Json> ParseSse(const std::string& body) {
  std::vector<Json> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    std::string data;
    size_t line_start = 0;
    while (line_start <= event.size()) {
      size_t line_end = event.find('\n', line_start);
      if (line_end == std::string::npos) line_end = event.size();
      std::string line = event.substr(line_start, line_end - line_start);
      if (line.starts_with("data: ")) data += line.substr(6);
      line_start = line_end + 1;
    }
    if (data.empty()) continue;
    std::optional<Json> json = mcp::ParseJson(data);
    EXPECT_TRUE(json.has_value()) << data;
    if (json) out.push_back(*json);
  }
  return out;
}

// Collects SSE events as they arrive on a streaming response. Thread-safe.
class SseCollector {
 public:
  bool Feed(const char* data, size_t length) {
    std::lock_guard<std::mutex> lock(mu_);
    buffer_.append(data, length);
    size_t end;
    while ((end = buffer_.find("\n\n")) != std::string::npos) {
      for (Json& j : ParseSse(buffer_.substr(0, end + 2))) events_.push_back(std::move(j));
      raw_ += buffer_.substr(0, end + 2);
      buffer_.erase(0, end + 2);
    }
    cv_.notify_all();
    return !stop_;
  }
  // Waits until `n` events arrived; false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
  }
  std::vector<Json> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  std::string raw() {
    std::lock_guard<std::mutex> lock(mu_);
    return raw_;
  }
  // Makes the next Feed return false, which closes the connection.
  void Stop() { stop_ = true; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string buffer_;
  std::string raw_;
  std::vector<Json> events_;
  std::atomic<bool> stop_{false};
};

class HttpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mcp::ServerOptions options;
    options.disclose_all = true;  // no list_changed notifications in the way
    server_ = std::make_unique<mcp::McpServer>(options);
    AddTools();
  }

  void TearDown() override {
    if (transport_) transport_->Stop();
    if (!temp_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir_, ec);
    }
  }

  void AddTools() {
    mcp::ToolDefinition echo;
    echo.name = "echo";
    echo.description = "Returns its text";
    echo.input_schema = {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}};
    echo.handler = [](const Json& args, mcp::CallContext&) -> Result<mcp::ToolResult> {
      mcp::ToolResult result;
      result.structured = {{"text", args.value("text", "")}};
      return result;
    };
    ASSERT_TRUE(server_->tools().Add(std::move(echo)).ok());

    mcp::ToolDefinition progress;
    progress.name = "progress";
    progress.description = "Reports progress twice, then returns";
    progress.input_schema = ObjectSchema();
    progress.handler = [](const Json&, mcp::CallContext& context) -> Result<mcp::ToolResult> {
      context.Progress(1, 2, "half way");
      context.Progress(2, 2, "done");
      mcp::ToolResult result;
      result.structured = {{"done", true}};
      return result;
    };
    ASSERT_TRUE(server_->tools().Add(std::move(progress)).ok());

    mcp::ToolDefinition ask;
    ask.name = "ask";
    ask.description = "Asks the client through elicitation";
    ask.input_schema = ObjectSchema();
    ask.handler = [](const Json&, mcp::CallContext& context) -> Result<mcp::ToolResult> {
      Json params = {{"message", "Your name?"},
                     {"requestedSchema",
                      {{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}}}};
      ENGRAM_ASSIGN_OR_RETURN(Json answer,
                              context.RequestClient("elicitation/create", params, std::chrono::seconds(10)));
      mcp::ToolResult result;
      result.structured = {{"answer", answer}};
      return result;
    };
    ASSERT_TRUE(server_->tools().Add(std::move(ask)).ok());

    // Sends progress every 20 ms until cancelled or 3 s have passed.
    mcp::ToolDefinition slow;
    slow.name = "slow";
    slow.description = "Runs until cancelled";
    slow.input_schema = ObjectSchema();
    slow.handler = [this](const Json&, mcp::CallContext& context) -> Result<mcp::ToolResult> {
      ++slow_started_;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      int step = 0;
      while (!context.cancelled() && std::chrono::steady_clock::now() < deadline) {
        context.Progress(++step, std::nullopt, "");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      slow_cancelled_ = context.cancelled();
      ++slow_finished_;
      mcp::ToolResult result;
      result.structured = {{"cancelled", context.cancelled()}};
      return result;
    };
    ASSERT_TRUE(server_->tools().Add(std::move(slow)).ok());
  }

  void Start(HttpOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    transport_ = std::make_unique<HttpTransport>(*server_, std::move(options));
    Status started = transport_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    ASSERT_GT(transport_->port(), 0);
  }

  std::unique_ptr<httplib::Client> NewClient() {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", transport_->port());
    client->set_read_timeout(15, 0);
    return client;
  }

  httplib::Headers BaseHeaders(const std::string& session = "") {
    httplib::Headers headers = {{"Accept", kBothTypes}};
    if (!session.empty()) headers.emplace("Mcp-Session-Id", session);
    for (const auto& h : extra_headers_) headers.emplace(h.first, h.second);
    return headers;
  }

  httplib::Result Post(const std::string& body, const httplib::Headers& headers) {
    return NewClient()->Post("/mcp", headers, body, "application/json");
  }

  static Json InitializeRequest(Json capabilities = Json::object(), const std::string& version = "2025-11-25") {
    return mcp::MakeRequest(1, "initialize",
                            {{"protocolVersion", version},
                             {"capabilities", std::move(capabilities)},
                             {"clientInfo", {{"name", "http-test"}, {"version", "1"}}}});
  }

  // Initializes a session and sends notifications/initialized; returns its id.
  std::string Initialize(Json capabilities = Json::object(), const std::string& version = "2025-11-25") {
    httplib::Result res = Post(mcp::Dump(InitializeRequest(std::move(capabilities), version)), BaseHeaders());
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return "";
    EXPECT_EQ(res->status, 200) << res->body;
    std::string session = res->get_header_value("Mcp-Session-Id");
    EXPECT_FALSE(session.empty());
    httplib::Result initialized =
        Post(mcp::Dump(mcp::MakeNotification("notifications/initialized", nullptr)), BaseHeaders(session));
    EXPECT_TRUE(initialized);
    if (initialized) {
      EXPECT_EQ(initialized->status, 202);
    }
    return session;
  }

  // The JSON-RPC response in a 200 reply, whether sent as JSON or as the last SSE event.
  static Json ResponseOf(const httplib::Result& res) {
    EXPECT_TRUE(res);
    if (!res) return nullptr;
    EXPECT_EQ(res->status, 200) << res->body;
    if (res->get_header_value("Content-Type").starts_with("text/event-stream")) {
      std::vector<Json> events = ParseSse(res->body);
      EXPECT_FALSE(events.empty());
      return events.empty() ? Json(nullptr) : events.back();
    }
    std::optional<Json> json = mcp::ParseJson(res->body);
    EXPECT_TRUE(json.has_value()) << res->body;
    return json.value_or(nullptr);
  }

  Json CallTool(const std::string& session, const std::string& name, Json arguments, int id = 7) {
    return ResponseOf(
        Post(mcp::Dump(mcp::MakeRequest(id, "tools/call", {{"name", name}, {"arguments", std::move(arguments)}})),
             BaseHeaders(session)));
  }

  // A store with one key, in a temp dir; returns the key.
  std::string MakeKeyStore(std::vector<std::string> domains = {}) {
    std::string pattern = (std::filesystem::temp_directory_path() / "engram_http_test.XXXXXX").string();
    EXPECT_NE(mkdtemp(pattern.data()), nullptr);
    temp_dir_ = pattern;
    Result<mcp::ApiKeyStore> store = mcp::ApiKeyStore::Load(temp_dir_ + "/api_keys.json");
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    keys_ = std::make_unique<mcp::ApiKeyStore>(*std::move(store));
    Result<mcp::CreatedKey> created = keys_->Create("test", std::move(domains));
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? created->key : "";
  }

  std::unique_ptr<mcp::McpServer> server_;
  std::unique_ptr<HttpTransport> transport_;
  std::unique_ptr<mcp::ApiKeyStore> keys_;
  std::string temp_dir_;
  std::vector<std::pair<std::string, std::string>> extra_headers_;
  std::atomic<int> slow_started_{0};
  std::atomic<int> slow_finished_{0};
  std::atomic<bool> slow_cancelled_{false};
};

TEST_F(HttpTransportTest, InitializeReturnsASessionId) {
  Start();
  httplib::Result res = Post(mcp::Dump(InitializeRequest()), BaseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("application/json"));
  EXPECT_THAT(res->get_header_value("Mcp-Session-Id"), MatchesRegex("[0-9a-f]{32}"));
  Json reply = ResponseOf(res);
  EXPECT_EQ(reply["id"], 1);
  EXPECT_EQ(reply["result"]["protocolVersion"], "2025-11-25");
  EXPECT_EQ(transport_->session_count(), 1u);

  // Every initialize gets its own session.
  httplib::Result again = Post(mcp::Dump(InitializeRequest()), BaseHeaders());
  ASSERT_TRUE(again);
  EXPECT_NE(again->get_header_value("Mcp-Session-Id"), res->get_header_value("Mcp-Session-Id"));
}

TEST_F(HttpTransportTest, ToolsListAndCallAnswerWithJson) {
  Start();
  std::string session = Initialize();

  httplib::Result list = Post(mcp::Dump(mcp::MakeRequest(2, "tools/list", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(list);
  EXPECT_THAT(list->get_header_value("Content-Type"), HasSubstr("application/json"));
  Json listed = ResponseOf(list);
  std::vector<std::string> names;
  for (const Json& tool : listed["result"]["tools"]) names.push_back(tool["name"]);
  EXPECT_THAT(names, ::testing::Contains("echo"));

  Json reply = CallTool(session, "echo", {{"text", "hello"}});
  EXPECT_EQ(reply["id"], 7);
  EXPECT_EQ(reply["result"]["structuredContent"]["text"], "hello");
  EXPECT_NE(reply["result"].value("isError", false), true);
}

TEST_F(HttpTransportTest, ProgressSwitchesToAnSseStreamEndingWithTheResponse) {
  Start();
  std::string session = Initialize();
  Json request = mcp::MakeRequest(
      9, "tools/call", {{"name", "progress"}, {"arguments", Json::object()}, {"_meta", {{"progressToken", "tok"}}}});
  httplib::Result res = Post(mcp::Dump(request), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  EXPECT_THAT(res->body, HasSubstr("event: message\ndata: "));
  std::vector<Json> events = ParseSse(res->body);
  ASSERT_EQ(events.size(), 3u) << res->body;
  EXPECT_EQ(events[0]["method"], "notifications/progress");
  EXPECT_EQ(events[0]["params"]["progressToken"], "tok");
  EXPECT_EQ(events[0]["params"]["progress"], 1);
  EXPECT_EQ(events[1]["params"]["progress"], 2);
  EXPECT_EQ(events[2]["id"], 9);
  EXPECT_EQ(events[2]["result"]["structuredContent"]["done"], true);
}

TEST_F(HttpTransportTest, JsonOnlyClientGetsJsonWithoutProgress) {
  Start();
  std::string session = Initialize();
  Json request = mcp::MakeRequest(
      9, "tools/call", {{"name", "progress"}, {"arguments", Json::object()}, {"_meta", {{"progressToken", "tok"}}}});
  httplib::Headers headers = {{"Accept", "application/json"}, {"Mcp-Session-Id", session}};
  httplib::Result res = Post(mcp::Dump(request), headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("application/json"));
  EXPECT_EQ(ResponseOf(res)["result"]["structuredContent"]["done"], true);
}

TEST_F(HttpTransportTest, SseOnlyClientGetsTheResponseAsAnEvent) {
  Start();
  std::string session = Initialize();
  httplib::Headers headers = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}};
  httplib::Result res = Post(mcp::Dump(mcp::MakeRequest(3, "ping", Json::object())), headers);
  ASSERT_TRUE(res);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  EXPECT_EQ(ResponseOf(res)["id"], 3);
}

TEST_F(HttpTransportTest, NotificationsGet202) {
  Start();
  std::string session = Initialize();
  Json cancelled = mcp::MakeNotification("notifications/cancelled", {{"requestId", 99}});
  httplib::Result res = Post(mcp::Dump(cancelled), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
  EXPECT_EQ(res->body, "");

  // 2025-06-18 dropped batches: the session refuses them.
  res = Post(mcp::Dump(Json::array({cancelled, cancelled})), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(mcp::ParseJson(res->body).value()["error"]["code"], mcp::kInvalidRequest);

  std::string old_session = Initialize(Json::object(), "2025-03-26");
  res = Post(mcp::Dump(Json::array({cancelled, cancelled})), BaseHeaders(old_session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
}

TEST_F(HttpTransportTest, BatchOfRequestsGetsAnArray) {
  Start();
  std::string session = Initialize(Json::object(), "2025-03-26");  // the last version with batches
  Json batch = Json::array({mcp::MakeRequest(1, "ping", Json::object()), mcp::MakeRequest(2, "ping", Json::object())});
  Json reply = ResponseOf(Post(mcp::Dump(batch), BaseHeaders(session)));
  ASSERT_TRUE(reply.is_array()) << reply;
  EXPECT_EQ(reply.size(), 2u);

  httplib::Result res = Post(mcp::Dump(Json::array({InitializeRequest()})), BaseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(mcp::ParseJson(res->body).value()["error"]["code"], mcp::kInvalidRequest);
}

TEST_F(HttpTransportTest, SessionIdIsRequiredAndMustBeKnown) {
  Start();
  std::string ping = mcp::Dump(mcp::MakeRequest(4, "ping", Json::object()));

  httplib::Result missing = Post(ping, BaseHeaders());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  EXPECT_THAT(missing->body, HasSubstr("Mcp-Session-Id"));
  EXPECT_TRUE(mcp::ParseJson(missing->body).value().contains("error"));

  httplib::Result unknown = Post(ping, BaseHeaders("0123456789abcdef0123456789abcdef"));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(mcp::ParseJson(unknown->body).value().contains("error"));
}

TEST_F(HttpTransportTest, DeleteEndsTheSession) {
  Start();
  std::string session = Initialize();
  ASSERT_EQ(transport_->session_count(), 1u);
  httplib::Result deleted = NewClient()->Delete("/mcp", BaseHeaders(session));
  ASSERT_TRUE(deleted) << httplib::to_string(deleted.error());
  EXPECT_TRUE(deleted->status == 200 || deleted->status == 204) << deleted->status;
  EXPECT_EQ(transport_->session_count(), 0u);

  httplib::Result after = Post(mcp::Dump(mcp::MakeRequest(5, "ping", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 404);
  httplib::Result again = NewClient()->Delete("/mcp", BaseHeaders(session));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 404);
}

TEST_F(HttpTransportTest, ProtocolVersionHeaderIsChecked) {
  Start();
  std::string session = Initialize();
  std::string ping = mcp::Dump(mcp::MakeRequest(6, "ping", Json::object()));

  httplib::Headers bad = BaseHeaders(session);
  bad.emplace("MCP-Protocol-Version", "1999-01-01");
  httplib::Result res = Post(ping, bad);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("MCP-Protocol-Version"));

  for (const char* version : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
    httplib::Headers good = BaseHeaders(session);
    good.emplace("MCP-Protocol-Version", version);
    EXPECT_EQ(ResponseOf(Post(ping, good))["id"], 6) << version;
  }
}

TEST_F(HttpTransportTest, ForeignHostIsForbidden) {
  Start();
  httplib::Headers headers = BaseHeaders();
  headers.emplace("Host", "evil.example.com");
  headers.emplace("Origin", "http://evil.example.com");
  httplib::Result res = Post(mcp::Dump(InitializeRequest()), headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  Json body = mcp::ParseJson(res->body).value();
  EXPECT_EQ(body["jsonrpc"], "2.0");
  EXPECT_TRUE(body["error"].contains("code"));
  EXPECT_EQ(transport_->session_count(), 0u);

  headers = BaseHeaders();
  headers.emplace("Host", "evil.example.com:" + std::to_string(transport_->port()));
  res = Post(mcp::Dump(InitializeRequest()), headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
}

TEST_F(HttpTransportTest, LocalHostAndOriginAreAccepted) {
  Start();
  // What the conformance suite's dns-rebinding-protection scenario sends.
  for (std::string host : {"localhost", "127.0.0.1", "[::1]"}) {
    // Appended piecewise: `":" + std::to_string(...)` trips a false -Wrestrict in g++ 12.
    host += ':';
    host += std::to_string(transport_->port());
    httplib::Headers headers = BaseHeaders();
    headers.emplace("Host", host);
    headers.emplace("Origin", "http://" + host);
    httplib::Result res = Post(mcp::Dump(InitializeRequest()), headers);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << host << " " << res->body;
  }
}

TEST_F(HttpTransportTest, ForeignOriginIsForbiddenUnlessAllowed) {
  HttpOptions options;
  options.allowed_origins = {"https://app.example.com"};
  Start(options);
  for (const char* origin : {"http://evil.example.com", "null", "http://localhost.evil.com", "file://"}) {
    httplib::Headers headers = BaseHeaders();
    headers.emplace("Origin", origin);
    httplib::Result res = Post(mcp::Dump(InitializeRequest()), headers);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << origin;
    EXPECT_TRUE(mcp::ParseJson(res->body).value().contains("error"));
  }
  httplib::Headers headers = BaseHeaders();
  headers.emplace("Origin", "https://app.example.com");
  httplib::Result res = Post(mcp::Dump(InitializeRequest()), headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpTransportTest, OversizedBodyGets413) {
  HttpOptions options;
  options.max_body_bytes = 2048;
  Start(options);
  std::string session = Initialize();
  Json big = mcp::MakeRequest(8, "tools/call",
                              {{"name", "echo"}, {"arguments", {{"text", std::string(4096, 'x')}}}});
  httplib::Result res = Post(mcp::Dump(big), BaseHeaders(session));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);
  // The server is fine afterwards.
  EXPECT_EQ(CallTool(session, "echo", {{"text", "small"}})["result"]["structuredContent"]["text"], "small");
}

TEST_F(HttpTransportTest, MalformedJsonGets400WithParseError) {
  Start();
  httplib::Result res = Post("{\"jsonrpc\": \"2.0\", ", BaseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  Json body = mcp::ParseJson(res->body).value();
  EXPECT_EQ(body["error"]["code"], mcp::kParseError);
  EXPECT_TRUE(body["id"].is_null());

  res = Post("{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": 5}", BaseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(mcp::ParseJson(res->body).value()["error"]["code"], mcp::kInvalidRequest);
}

TEST_F(HttpTransportTest, ContentTypeAndAcceptAreChecked) {
  Start();
  httplib::Result res = NewClient()->Post("/mcp", BaseHeaders(), mcp::Dump(InitializeRequest()), "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);

  res = Post(mcp::Dump(InitializeRequest()), {{"Accept", "text/html"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 406);

  res = NewClient()->Post("/mcp", BaseHeaders(), mcp::Dump(InitializeRequest()), "application/json; charset=utf-8");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpTransportTest, HealthzNeedsNoAuth) {
  MakeKeyStore();
  HttpOptions options;
  options.keys = keys_.get();
  Start(options);
  httplib::Result res = NewClient()->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");

  res = NewClient()->Get("/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(HttpTransportTest, ApiKeyIsRequiredWhenKeysExist) {
  std::string key = MakeKeyStore({"web-api"});
  HttpOptions options;
  options.keys = keys_.get();
  Start(options);
  std::string init = mcp::Dump(InitializeRequest());

  httplib::Result res = Post(init, BaseHeaders());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_THAT(res->get_header_value("WWW-Authenticate"), HasSubstr("Bearer"));
  EXPECT_TRUE(mcp::ParseJson(res->body).value().contains("error"));
  EXPECT_EQ(res->body.find(key.substr(0, 19)), std::string::npos);

  std::string wrong = key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  httplib::Headers headers = BaseHeaders();
  headers.emplace("X-API-Key", wrong);
  res = Post(init, headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);

  headers = BaseHeaders();
  headers.emplace("Authorization", "Bearer not-a-key");
  res = Post(init, headers);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);

  // The right key, either way.
  extra_headers_ = {{"X-API-Key", key}};
  std::string session = Initialize();
  ASSERT_FALSE(session.empty());
  EXPECT_EQ(CallTool(session, "echo", {{"text", "a"}})["result"]["structuredContent"]["text"], "a");

  extra_headers_ = {{"Authorization", "Bearer " + key}};
  EXPECT_EQ(CallTool(session, "echo", {{"text", "b"}})["result"]["structuredContent"]["text"], "b");

  // A session is reachable only with a key.
  extra_headers_.clear();
  res = Post(mcp::Dump(mcp::MakeRequest(1, "ping", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  httplib::Result get = NewClient()->Get("/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 401);
  httplib::Result del = NewClient()->Delete("/mcp", {{"Mcp-Session-Id", session}});
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 401);
}

TEST_F(HttpTransportTest, SessionIsBoundToTheKeyThatMadeIt) {
  std::string key_a = MakeKeyStore();
  Result<mcp::CreatedKey> b = keys_->Create("b", {});
  ASSERT_TRUE(b.ok());
  HttpOptions options;
  options.keys = keys_.get();
  Start(options);

  extra_headers_ = {{"X-API-Key", key_a}};
  std::string session = Initialize();
  ASSERT_FALSE(session.empty());

  extra_headers_ = {{"X-API-Key", b->key}};
  httplib::Result res = Post(mcp::Dump(mcp::MakeRequest(1, "ping", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
}

TEST_F(HttpTransportTest, RevokedKeyStopsWorking) {
  std::string key = MakeKeyStore();
  Result<mcp::CreatedKey> other = keys_->Create("other", {});  // keeps auth on after the revoke
  ASSERT_TRUE(other.ok());
  HttpOptions options;
  options.keys = keys_.get();
  Start(options);
  extra_headers_ = {{"X-API-Key", key}};
  std::string session = Initialize();
  ASSERT_FALSE(session.empty());
  ASSERT_TRUE(keys_->Revoke(key.substr(7, 12)).ok());
  httplib::Result res = Post(mcp::Dump(mcp::MakeRequest(1, "ping", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

TEST_F(HttpTransportTest, NonLoopbackWithoutKeysRefusesToStart) {
  HttpOptions options;
  options.host = "0.0.0.0";
  options.port = 0;
  HttpTransport transport(*server_, options);
  Status status = transport.Start();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "refusing to listen on 0.0.0.0 without API keys: create one with `engram keys create`");

  // A store whose keys are all revoked counts as no keys.
  std::string key = MakeKeyStore();
  ASSERT_TRUE(keys_->Revoke(key.substr(7, 12)).ok());
  options.keys = keys_.get();
  HttpTransport with_revoked(*server_, options);
  EXPECT_EQ(with_revoked.Start().code(), StatusCode::kFailedPrecondition);
}

TEST_F(HttpTransportTest, PortInUseIsUnavailable) {
  Start();
  HttpOptions options;
  options.port = transport_->port();
  HttpTransport second(*server_, options);
  Status status = second.Start();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(std::to_string(transport_->port())));
}

TEST_F(HttpTransportTest, GetStreamCarriesBroadcasts) {
  HttpOptions options;
  options.sse_keepalive = std::chrono::milliseconds(200);
  Start(options);
  std::string session = Initialize();

  httplib::Result not_sse = NewClient()->Get("/mcp", {{"Accept", "application/json"}, {"Mcp-Session-Id", session}});
  ASSERT_TRUE(not_sse);
  EXPECT_EQ(not_sse->status, 405);

  httplib::Result no_session = NewClient()->Get("/mcp", {{"Accept", "text/event-stream"}});
  ASSERT_TRUE(no_session);
  EXPECT_EQ(no_session->status, 400);

  SseCollector collector;
  std::string content_type;
  auto client = NewClient();
  std::thread reader([&] {
    client->Get(
        "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}},
        [&](const httplib::Response& response) {
          content_type = response.get_header_value("Content-Type");
          return true;
        },
        [&](const char* data, size_t length) { return collector.Feed(data, length); });
  });
  // Broadcast reaches the stream once it is open.
  Json notification = mcp::MakeNotification("notifications/resources/list_changed", nullptr);
  size_t reached = 0;
  for (int i = 0; i < 200 && reached == 0; ++i) {
    reached = transport_->Broadcast(notification);
    if (reached == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(reached, 1u);
  ASSERT_TRUE(collector.WaitFor(1));
  EXPECT_EQ(collector.events()[0]["method"], "notifications/resources/list_changed");

  // One GET stream per session.
  httplib::Result second = NewClient()->Get("/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 409);

  // Idle streams get keep-alive comments.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_THAT(collector.raw(), HasSubstr(": keepalive\n\n"));

  // DELETE ends the stream.
  httplib::Result deleted = NewClient()->Delete("/mcp", BaseHeaders(session));
  ASSERT_TRUE(deleted);
  reader.join();
  EXPECT_THAT(content_type, HasSubstr("text/event-stream"));
  EXPECT_EQ(transport_->Broadcast(notification), 0u);
}

TEST_F(HttpTransportTest, ElicitationRoundTripsThroughTheStream) {
  Start();
  std::string session = Initialize({{"elicitation", Json::object()}});

  SseCollector collector;
  std::string content_type;
  std::thread caller([&] {
    httplib::Request req;
    req.method = "POST";
    req.path = "/mcp";
    req.headers = BaseHeaders(session);
    req.set_header("Content-Type", "application/json");
    req.body = mcp::Dump(mcp::MakeRequest(11, "tools/call", {{"name", "ask"}, {"arguments", Json::object()}}));
    req.response_handler = [&](const httplib::Response& response) {
      content_type = response.get_header_value("Content-Type");
      return true;
    };
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      return collector.Feed(data, length);
    };
    NewClient()->send(req);
  });

  ASSERT_TRUE(collector.WaitFor(1));
  Json request = collector.events()[0];
  EXPECT_EQ(request["method"], "elicitation/create");
  ASSERT_TRUE(request.contains("id"));

  // The client answers with a separate POST.
  Json answer = {{"jsonrpc", "2.0"},
                 {"id", request["id"]},
                 {"result", {{"action", "accept"}, {"content", {{"name", "Ada"}}}}}};
  httplib::Result posted = Post(mcp::Dump(answer), BaseHeaders(session));
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 202);

  ASSERT_TRUE(collector.WaitFor(2));
  caller.join();
  EXPECT_THAT(content_type, HasSubstr("text/event-stream"));
  Json reply = collector.events()[1];
  EXPECT_EQ(reply["id"], 11);
  EXPECT_EQ(reply["result"]["structuredContent"]["answer"]["content"]["name"], "Ada");
}

TEST_F(HttpTransportTest, ElicitationFailsCleanlyForJsonOnlyClients) {
  Start();
  std::string session = Initialize({{"elicitation", Json::object()}});
  httplib::Headers headers = {{"Accept", "application/json"}, {"Mcp-Session-Id", session}};
  Json request = mcp::MakeRequest(12, "tools/call", {{"name", "ask"}, {"arguments", Json::object()}});
  Json reply = ResponseOf(Post(mcp::Dump(request), headers));
  EXPECT_EQ(reply["id"], 12);
  EXPECT_EQ(reply["result"]["isError"], true);
}

TEST_F(HttpTransportTest, ClientDisconnectMidCallLeavesTheServerWorking) {
  Start();
  std::string session = Initialize();
  SseCollector collector;
  std::thread caller([&] {
    httplib::Request req;
    req.method = "POST";
    req.path = "/mcp";
    req.headers = BaseHeaders(session);
    req.set_header("Content-Type", "application/json");
    req.body = mcp::Dump(mcp::MakeRequest(
        13, "tools/call", {{"name", "slow"}, {"arguments", Json::object()}, {"_meta", {{"progressToken", 1}}}}));
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      collector.Feed(data, length);
      return false;  // hang up after the first bytes
    };
    NewClient()->send(req);
  });
  caller.join();
  EXPECT_GE(collector.events().size(), 1u);

  // Other requests on the same session and others still work while the call runs on.
  EXPECT_EQ(CallTool(session, "echo", {{"text", "still here"}})["result"]["structuredContent"]["text"], "still here");
  std::string other = Initialize();
  EXPECT_EQ(CallTool(other, "echo", {{"text", "x"}})["result"]["structuredContent"]["text"], "x");

  // DELETE cancels what the session still runs.
  httplib::Result deleted = NewClient()->Delete("/mcp", BaseHeaders(session));
  ASSERT_TRUE(deleted);
  for (int i = 0; i < 300 && slow_finished_ == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(slow_finished_.load(), 1);
}

TEST_F(HttpTransportTest, StopEndsStreamsAndCallsInFlight) {
  Start();
  std::string session = Initialize();

  SseCollector get_events;
  std::thread get_reader([&] {
    NewClient()->Get("/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}},
                     [&](const char* data, size_t length) { return get_events.Feed(data, length); });
  });
  SseCollector call_events;
  std::thread caller([&] {
    httplib::Request req;
    req.method = "POST";
    req.path = "/mcp";
    req.headers = BaseHeaders(session);
    req.set_header("Content-Type", "application/json");
    req.body = mcp::Dump(mcp::MakeRequest(
        14, "tools/call", {{"name", "slow"}, {"arguments", Json::object()}, {"_meta", {{"progressToken", 1}}}}));
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      return call_events.Feed(data, length);
    };
    NewClient()->send(req);
  });
  ASSERT_TRUE(call_events.WaitFor(1));

  std::thread waiter([&] { transport_->Wait(); });
  transport_->Stop();
  waiter.join();
  get_reader.join();
  caller.join();
  EXPECT_TRUE(slow_cancelled_.load());
  EXPECT_EQ(transport_->session_count(), 0u);
  // The call's stream ended with its (cancelled) response or was cut; either way nothing hangs.
  transport_->Stop();  // idempotent
}

TEST_F(HttpTransportTest, ConcurrentSessionsAndRequests) {
  Start();
  std::vector<std::future<int>> results;
  for (int t = 0; t < 4; ++t) {
    results.push_back(std::async(std::launch::async, [this, t] {
      std::string session = Initialize();
      int ok = 0;
      for (int i = 0; i < 10; ++i) {
        std::string text = std::to_string(t) + "-" + std::to_string(i);
        Json reply = CallTool(session, "echo", {{"text", text}}, i);
        if (reply["id"] == i && reply["result"]["structuredContent"]["text"] == text) ++ok;
      }
      return ok;
    }));
  }
  for (auto& r : results) EXPECT_EQ(r.get(), 10);
  EXPECT_EQ(transport_->session_count(), 4u);
}

TEST_F(HttpTransportTest, IdleSessionsExpire) {
  HttpOptions options;
  options.session_idle_timeout = std::chrono::seconds(1);
  Start(options);
  std::string session = Initialize();
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  httplib::Result res = Post(mcp::Dump(mcp::MakeRequest(1, "ping", Json::object())), BaseHeaders(session));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(HttpTransportTest, WaitReturnsAtOnceWhenNeverStarted) {
  HttpTransport transport(*server_, HttpOptions{});
  transport.Wait();
  transport.Stop();
  EXPECT_EQ(transport.port(), 8765);
}

}  // namespace
}  // namespace engram::transport
