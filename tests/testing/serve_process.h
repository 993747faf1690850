// Drives the built `engram serve --http` as a separate process, for end-to-end tests:
// ServeProcess starts it on 127.0.0.1:0 with a home (config, data, cache) of its own and
// reads the port it prints; HttpMcpClient speaks MCP over Streamable HTTP to it.
//
//   testing::ServeProcess server(ENGRAM_BINARY, dir.File("home"), {"ENGRAM_STORE=" + url});
//   testing::HttpMcpClient client(server.port());
//   ASSERT_TRUE(client.Initialize());
//   json episode = client.Call("get_episode", {{"episode_id", id}});
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace engram::testing {

// One `binary [args...] serve --http 127.0.0.1:0` process with a home (config, data, cache)
// of its own in `home`, its environment only that and `env` ("NAME=value"), stderr kept in
// home/stderr.txt; stopped with SIGTERM when destroyed. port() is 0 if it did not start
// listening within a minute (Stderr() says why).
class ServeProcess {
 public:
  ServeProcess(const std::string& binary, const std::string& home, std::vector<std::string> env,
               std::vector<std::string> args = {})
      : home_(home) {
    std::filesystem::create_directories(home);
    const std::string err = home + "/stderr.txt";
    for (std::string base : {"HOME=" + home, "XDG_CONFIG_HOME=" + home + "/config", "XDG_DATA_HOME=" + home + "/data",
                             "XDG_CACHE_HOME=" + home + "/cache", std::string("PATH=/usr/bin:/bin")}) {
      env.push_back(std::move(base));
    }
    args.insert(args.begin(), binary);
    for (const char* a : {"serve", "--http", "127.0.0.1:0"}) args.emplace_back(a);
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) dup2(fd, 2);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
      }
      std::vector<char*> envp;
      for (std::string& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execve(binary.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    // The real port, printed once it listens (port 0 picks a free one).
    const std::regex listening(R"(serving MCP over Streamable HTTP at http://127\.0\.0\.1:(\d+)/mcp)");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      std::string text = Stderr();
      if (std::regex_search(text, m, listening)) {
        port_ = std::stoi(m[1]);
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  ~ServeProcess() { Stop(); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // Sends SIGTERM and waits: the exit code (0 for a clean shutdown), -1 if it died of a
  // signal or was not running.
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  int port() const { return port_; }
  // Sends `sig` to the server (e.g. SIGHUP to reload its config).
  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }
  std::string Stderr() const {
    std::ifstream in(home_ + "/stderr.txt");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string home_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// An MCP client over Streamable HTTP: one session, requests answered as JSON or SSE.
class HttpMcpClient {
 public:
  using json = nlohmann::json;

  explicit HttpMcpClient(int port) : client_("127.0.0.1", port) { client_.set_read_timeout(60, 0); }

  // initialize + notifications/initialized. Returns false (with a failure recorded) if
  // the server does not answer as MCP.
  bool Initialize() {
    json init = Post({{"jsonrpc", "2.0"},
                      {"id", next_id_++},
                      {"method", "initialize"},
                      {"params",
                       {{"protocolVersion", "2025-11-25"},
                        {"capabilities", json::object()},
                        {"clientInfo", {{"name", "engram-e2e-test"}, {"version", "1"}}}}}});
    if (!init.contains("result")) return false;
    Post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
    return !session_.empty();
  }

  // tools/call that must succeed: its structuredContent.
  json Call(const std::string& tool, json arguments) {
    json response = Post({{"jsonrpc", "2.0"},
                          {"id", next_id_++},
                          {"method", "tools/call"},
                          {"params", {{"name", tool}, {"arguments", std::move(arguments)}}}});
    json result = response.value("result", json::object());
    EXPECT_EQ(result.value("isError", true), false) << tool << ": " << response.dump();
    return result.value("structuredContent", json::object());
  }

 private:
  json Post(const json& message) {
    httplib::Headers headers = {{"Accept", "application/json, text/event-stream"}};
    if (!session_.empty()) headers.emplace("Mcp-Session-Id", session_);
    httplib::Result res = client_.Post("/mcp", headers, message.dump(), "application/json");
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return json::object();
    if (session_.empty()) session_ = res->get_header_value("Mcp-Session-Id");
    if (res->status == 202) return json::object();  // a notification
    EXPECT_EQ(res->status, 200) << res->body;
    std::string body = res->body;
    if (res->get_header_value("Content-Type").starts_with("text/event-stream")) {
      // The response is the last "data:" line of the stream.
      size_t at = body.rfind("\ndata:");
      body = at == std::string::npos ? (body.starts_with("data:") ? body.substr(5) : "") : body.substr(at + 6);
      body = body.substr(0, body.find('\n'));
    }
    json parsed = json::parse(body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << res->body;
    return parsed.is_discarded() ? json::object() : parsed;
  }

  httplib::Client client_;
  std::string session_;
  int next_id_ = 1;
};

}  // namespace engram::testing
