// Live configuration reload end to end: the real `engram serve --http 127.0.0.1:0 --config
// FILE`, whose config file is then changed (by rename, as editors do, or in place) or
// followed by SIGHUP, and the next requests show the new setting without a restart. Every
// wait polls for the effect until a generous deadline; nothing asserts how fast it came.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "mcp/auth.h"
#include "testing/serve_process.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using json = nlohmann::json;

constexpr auto kDeadline = std::chrono::seconds(30);

// Polls `done` every 20 ms until it holds or kDeadline passes; returns its last answer.
bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// One MCP session over Streamable HTTP, with an optional API key.
class Client {
 public:
  explicit Client(int port, std::string key = "") : http_("127.0.0.1", port), key_(std::move(key)) {
    http_.set_read_timeout(60, 0);
  }

  // The raw answer to one JSON-RPC message (status, headers, body as JSON when it is JSON).
  struct Reply {
    int status = 0;
    std::string retry_after;
    json body;
  };

  Reply Send(const json& message) {
    httplib::Headers headers = {{"Accept", "application/json, text/event-stream"}};
    if (!session_.empty()) headers.emplace("Mcp-Session-Id", session_);
    if (!key_.empty()) headers.emplace("X-API-Key", key_);
    httplib::Result res = http_.Post("/mcp", headers, message.dump(), "application/json");
    if (!res) return {};
    if (session_.empty()) session_ = res->get_header_value("Mcp-Session-Id");
    std::string body = res->body;
    if (res->get_header_value("Content-Type").starts_with("text/event-stream")) {
      size_t at = body.rfind("data:");
      body = at == std::string::npos ? "" : body.substr(at + 5);
      body = body.substr(0, body.find('\n'));
    }
    json parsed = json::parse(body, nullptr, false);
    return {res->status, res->get_header_value("Retry-After"), parsed.is_discarded() ? json() : parsed};
  }

  bool Initialize() {
    Reply init = Send({{"jsonrpc", "2.0"},
                       {"id", next_id_++},
                       {"method", "initialize"},
                       {"params",
                        {{"protocolVersion", "2025-11-25"},
                         {"capabilities", json::object()},
                         {"clientInfo", {{"name", "config-reload-test"}, {"version", "1"}}}}}});
    if (init.status != 200) return false;
    Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
    return !session_.empty();
  }

  Reply Request(const std::string& method, json params = json::object()) {
    return Send({{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", std::move(params)}});
  }

  // tools/call's result object (isError included); empty if the request failed.
  json Call(const std::string& tool, json arguments) {
    Reply r = Request("tools/call", {{"name", tool}, {"arguments", std::move(arguments)}});
    return r.body.is_object() ? r.body.value("result", json::object()) : json::object();
  }

  size_t ToolCount() {
    Reply r = Request("tools/list");
    if (!r.body.is_object() || !r.body.contains("result")) return 0;
    return r.body["result"]["tools"].size();
  }

 private:
  httplib::Client http_;
  std::string key_;
  std::string session_;
  int next_id_ = 1;
};

class ConfigReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.File("etc"));
    config_ = dir_.File("etc/config.toml");
  }

  // The config file's text: the store in the temp dir, plus `extra` TOML lines.
  std::string ConfigText(const std::string& extra) const {
    return "[storage]\ndb = \"" + dir_.File("memory.db") + "\"\n[auth]\nkeys_file = \"" +
           dir_.File("no-keys.json") + "\"\n" + extra;
  }

  // As editors save: a new file renamed over the old one.
  void WriteByRename(const std::string& extra) const {
    const std::string tmp = config_ + ".tmp";
    std::ofstream(tmp) << ConfigText(extra);
    std::filesystem::rename(tmp, config_);
  }

  // Rewritten in place (truncate and write).
  void WriteInPlace(const std::string& extra) const { std::ofstream(config_, std::ios::trunc) << ConfigText(extra); }

  // Starts the server on the current config file, with one initialized client.
  void Start() {
    server_ = std::make_unique<testing::ServeProcess>(ENGRAM_BINARY, dir_.path(), std::vector<std::string>{},
                                                      std::vector<std::string>{"--config", config_});
    ASSERT_NE(server_->port(), 0) << server_->Stderr();
    client_ = std::make_unique<Client>(server_->port());
    ASSERT_TRUE(client_->Initialize()) << server_->Stderr();
  }

  bool LogHas(const std::string& text) const { return server_->Stderr().find(text) != std::string::npos; }

  testing::TempDir dir_;
  std::string config_;
  std::unique_ptr<testing::ServeProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ConfigReloadTest, DisclosureChangedInTheFileListsMoreToolsOnTheNextRequest) {
  WriteByRename("[tools]\ndisclosure = \"progressive\"\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  const size_t beginner = client_->ToolCount();
  ASSERT_GT(beginner, 0u);

  WriteByRename("[tools]\ndisclosure = \"all\"\n");
  EXPECT_TRUE(Eventually([&] { return client_->ToolCount() > beginner; })) << server_->Stderr();
  EXPECT_TRUE(Eventually([&] { return LogHas("config reloaded") && LogHas("tools.disclosure"); }))
      << server_->Stderr();
}

TEST_F(ConfigReloadTest, SighupReloadsAChangeTheFileWatchCannotSee) {
  // The config file is a symlink into another directory: writes to its target make no
  // event in the watched directory, so only SIGHUP reloads them.
  std::filesystem::create_directories(dir_.File("dotfiles"));
  const std::string target = dir_.File("dotfiles/engram.toml");
  std::ofstream(target) << ConfigText("[tools]\ndisclosure = \"progressive\"\n");
  std::filesystem::create_symlink(target, config_);
  ASSERT_NO_FATAL_FAILURE(Start());
  const size_t beginner = client_->ToolCount();

  std::ofstream(target, std::ios::trunc) << ConfigText("[tools]\ndisclosure = \"all\"\n");
  server_->Signal(SIGHUP);
  EXPECT_TRUE(Eventually([&] { return client_->ToolCount() > beginner; })) << server_->Stderr();
  EXPECT_TRUE(LogHas("SIGHUP")) << server_->Stderr();
}

TEST_F(ConfigReloadTest, RateLimitTurnedOnAnswers429WithRetryAfter) {
  WriteByRename("");
  ASSERT_NO_FATAL_FAILURE(Start());
  for (int i = 0; i < 30; ++i) ASSERT_EQ(client_->Request("ping").status, 200) << "no limit by default";

  WriteInPlace("[server]\nrate_limit = 1\nrate_limit_burst = 2\n");
  Client::Reply limited;
  EXPECT_TRUE(Eventually([&] {
    for (int i = 0; i < 5; ++i) {
      limited = client_->Request("ping");
      if (limited.status == 429) return true;
    }
    return false;
  })) << server_->Stderr();
  EXPECT_FALSE(limited.retry_after.empty());
  EXPECT_GE(std::stoi(limited.retry_after.empty() ? "0" : limited.retry_after), 1);
  ASSERT_TRUE(limited.body.is_object());
  EXPECT_EQ(limited.body.value("jsonrpc", ""), "2.0");
  EXPECT_TRUE(limited.body.contains("error")) << limited.body.dump();

  // And off again.
  WriteInPlace("[server]\nrate_limit = 0\n");
  EXPECT_TRUE(Eventually([&] {
    for (int i = 0; i < 10; ++i) {
      if (client_->Request("ping").status != 200) return false;
    }
    return true;
  })) << server_->Stderr();
}

// Well formed, never created.
constexpr const char* kUnknownEpisode = "00000000-0000-4000-8000-000000000000";

TEST_F(ConfigReloadTest, LogLevelDebugShowsDebugLines) {
  WriteByRename("[log]\nlevel = \"info\"\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  // A failing tool call is logged at debug level only.
  json failed = client_->Call("get_episode", {{"episode_id", kUnknownEpisode}});
  ASSERT_EQ(failed.value("isError", false), true) << failed.dump();
  EXPECT_FALSE(LogHas("tool call failed"));

  WriteByRename("[log]\nlevel = \"debug\"\n");
  EXPECT_TRUE(Eventually([&] {
    client_->Call("get_episode", {{"episode_id", kUnknownEpisode}});
    return LogHas("tool call failed");
  })) << server_->Stderr();
}

TEST_F(ConfigReloadTest, NewKeysFileRequiresAndAcceptsItsKeys) {
  WriteByRename("");
  ASSERT_NO_FATAL_FAILURE(Start());  // no keys: loopback needs none
  const std::string keys_path = dir_.File("keys.json");
  Result<mcp::ApiKeyStore> keys = mcp::ApiKeyStore::Load(keys_path);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  Result<mcp::CreatedKey> created = keys->Create("reload-test", {});
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  WriteByRename("");  // same file first: nothing changes
  std::string text = ConfigText("");
  text.replace(text.find(dir_.File("no-keys.json")), dir_.File("no-keys.json").size(), keys_path);
  {
    std::ofstream(config_ + ".tmp") << text;
    std::filesystem::rename(config_ + ".tmp", config_);
  }
  Client keyed(server_->port(), created->key);
  EXPECT_TRUE(Eventually([&] { return Client(server_->port()).Initialize() == false; }))
      << "a request without a key is refused once keys are configured\n"
      << server_->Stderr();
  EXPECT_TRUE(keyed.Initialize()) << server_->Stderr();
  EXPECT_EQ(keyed.Request("ping").status, 200);
  EXPECT_EQ(Client(server_->port(), "engram_000000000000_wrong").Request("ping").status, 401);
}

TEST_F(ConfigReloadTest, SandboxLimitLoweredRefusesALongerTimeout) {
  WriteByRename("[sandbox]\nmax_timeout_ms = 30000\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  const json args = {{"code", "print(1)"}, {"language", "javascript"}, {"timeout_ms", 5000}};
  json before = client_->Call("execute_code", args);
  EXPECT_EQ(before.dump().find("sandbox.max_timeout_ms"), std::string::npos) << before.dump();

  WriteByRename("[sandbox]\nmax_timeout_ms = 1000\n");
  json after;
  EXPECT_TRUE(Eventually([&] {
    after = client_->Call("execute_code", args);
    return after.dump().find("at most 1000") != std::string::npos;
  })) << after.dump() << "\n" << server_->Stderr();
  EXPECT_EQ(after.value("isError", false), true);
}

TEST_F(ConfigReloadTest, RankingWeightChangesTheNextQueryScore) {
  WriteByRename("");
  ASSERT_NO_FATAL_FAILURE(Start());
  json created = client_->Call("create_episode", {{"task_description", "fix the flaky login test in the auth service"},
                                                  {"domain", "web-api"}});
  const std::string id = created.value("structuredContent", json::object()).value("episode_id", "");
  ASSERT_FALSE(id.empty()) << created.dump();
  client_->Call("add_episode_step", {{"episode_id", id}, {"tool", "bash"}, {"action", "run the login test"}});
  json completed = client_->Call("complete_episode", {{"episode_id", id}, {"outcome", "partial_success"}});
  ASSERT_EQ(completed.value("isError", true), false) << completed.dump();
  auto score = [&]() -> double {
    json r = client_->Call("query_memory", {{"query", "flaky login test"}});
    json episodes = r.value("structuredContent", json::object()).value("episodes", json::array());
    return episodes.empty() ? -1 : episodes[0].value("score", -1.0);
  };
  double before = -1;
  ASSERT_TRUE(Eventually([&] { return (before = score()) > 0; })) << server_->Stderr();

  WriteByRename("[retrieval]\nweight_lexical = 0.01\nweight_reward = 50\n");
  EXPECT_TRUE(Eventually([&] {
    double now = score();
    return now > 0 && std::abs(now - before) > 1e-6;
  })) << "score stayed " << before << "\n" << server_->Stderr();
}

TEST_F(ConfigReloadTest, InvalidFileKeepsTheRunningConfigAndSaysWhy) {
  WriteByRename("[tools]\ndisclosure = \"progressive\"\n");
  ASSERT_NO_FATAL_FAILURE(Start());
  const size_t beginner = client_->ToolCount();

  // disclosure = "all" is there, but the file is not valid TOML: nothing may change.
  WriteByRename("[tools]\ndisclosure = \"all\"\n[log\nlevel = \"debug\"\n");
  ASSERT_TRUE(Eventually([&] { return LogHas("config reload failed"); })) << server_->Stderr();
  const std::string log = server_->Stderr();
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(config\.toml:\d+:\d+: invalid TOML)")))
      << "the error names file:line\n" << log;
  EXPECT_EQ(client_->ToolCount(), beginner);

  // An invalid value, too.
  WriteByRename("[tools]\ndisclosure = \"everything\"\n");
  ASSERT_TRUE(Eventually([&] { return server_->Stderr().find("everything") != std::string::npos; }));
  EXPECT_EQ(client_->ToolCount(), beginner);

  // The server still serves, and the next good file applies.
  WriteByRename("[tools]\ndisclosure = \"all\"\n");
  EXPECT_TRUE(Eventually([&] { return client_->ToolCount() > beginner; })) << server_->Stderr();
}

TEST_F(ConfigReloadTest, ChangingTheStoreLocationNeedsARestart) {
  WriteByRename("");
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string text = ConfigText("");
  text.replace(text.find(dir_.File("memory.db")), dir_.File("memory.db").size(), dir_.File("other.db"));
  std::ofstream(config_ + ".tmp") << text;
  std::filesystem::rename(config_ + ".tmp", config_);
  EXPECT_TRUE(Eventually([&] { return LogHas("needs a restart"); })) << server_->Stderr();
  const std::string log = server_->Stderr();
  EXPECT_NE(log.find("storage.db"), std::string::npos) << log;
  // Still the old store.
  EXPECT_FALSE(std::filesystem::exists(dir_.File("other.db")));
  EXPECT_EQ(client_->Request("ping").status, 200);
}

}  // namespace
}  // namespace engram
