// execute_code through the real `engram serve` over stdio: escape attempts come back as
// results with violations (static analysis first, the runtime layers for what slips past
// it), and engram keeps answering afterwards.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/temp_dir.h"

namespace engram {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// `engram serve` on stdio with a store in a temp folder.
class Server {
 public:
  explicit Server(const std::string& dir) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      int log = open((dir + "/engram.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(log, 2);
      std::string home = "HOME=" + dir;
      std::string db = "ENGRAM_DB=" + dir + "/memory.db";
      char* envp[] = {home.data(), db.data(), const_cast<char*>("ENGRAM_API_KEY_FOR_TEST=sk-secret"), nullptr};
      char* argv[] = {const_cast<char*>(ENGRAM_BINARY), const_cast<char*>("serve"), nullptr};
      execve(ENGRAM_BINARY, argv, envp);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~Server() {
    if (to_ >= 0) close(to_);
    if (pid_ > 0) {
      int status;
      for (int i = 0; i < 50 && waitpid(pid_, &status, WNOHANG) == 0; ++i) usleep(100000);
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    if (from_ >= 0) close(from_);
  }

  // Sends a request and returns the response with its id (notifications are skipped).
  json Call(int id, const std::string& method, const json& params) {
    Send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string line = ReadLine(deadline);
      if (line.empty()) break;
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("id") && j["id"] == id) return j;
    }
    return json();
  }
  void Send(const json& message) {
    std::string line = message.dump() + "\n";
    (void)!write(to_, line.data(), line.size());
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  std::string ReadLine(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      struct pollfd p = {from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char buf[65536];
      ssize_t n = read(from_, buf, sizeof(buf));
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buffer_;
};

json Execute(Server& server, int id, const std::string& language, const std::string& code, int timeout_ms = 3000) {
  json r = server.Call(id, "tools/call",
                       {{"name", "execute_code"},
                        {"arguments", {{"code", code}, {"language", language}, {"timeout_ms", timeout_ms}}}});
  return r.value("result", json::object());
}

bool HasKind(const json& result, const std::string& kind) {
  for (const json& v : result["structuredContent"]["violations"]) {
    if (v["kind"] == kind) return true;
  }
  return false;
}

TEST(ServeSandboxTest, EscapesAreReportedAndEngramKeepsServing) {
  testing::TempDir dir;
  Server server(dir.path());
  json init = server.Call(1, "initialize",
                          {{"protocolVersion", "2025-11-25"},
                           {"capabilities", json::object()},
                           {"clientInfo", {{"name", "sandbox-test"}, {"version", "1"}}}});
  ASSERT_TRUE(init.contains("result")) << init.dump();
  server.Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});

  json ok = Execute(server, 2, "javascript", "print([1, 2, 3].map(function (x) { return x * x; }).join(','))");
  if (ok.value("isError", false)) {
    std::string text = ok["content"][0]["text"];
    if (text.find("sandbox layer") != std::string::npos) GTEST_SKIP() << "this host cannot sandbox: " << text;
  }
  ASSERT_FALSE(ok.value("isError", true)) << ok.dump();
  EXPECT_EQ(ok["structuredContent"]["stdout"], "1,4,9\n");

  // Static analysis first.
  json r = Execute(server, 3, "python", "import subprocess\nsubprocess.run(['id'])");
  EXPECT_TRUE(HasKind(r, "static_analysis")) << r.dump();
  // What slips past it meets the runtime layers.
  r = Execute(server, 4, "python", "print(open('/e' + 'tc/shadow').read())");
  EXPECT_TRUE(HasKind(r, "filesystem")) << r.dump();
  EXPECT_THAT(r["structuredContent"]["stderr"].get<std::string>(), HasSubstr("PermissionError"));
  r = Execute(server, 5, "python", "import _socket\n_socket.socket()");
  EXPECT_TRUE(HasKind(r, "syscall")) << r.dump();
  r = Execute(server, 6, "python", "import os\nprint(dict(getattr(os, 'env' + 'iron')))");
  EXPECT_EQ(r["structuredContent"]["stdout"], "{'LC_CTYPE': 'C.UTF-8', 'TZ': 'UTC'}\n") << r.dump();  // no sk-secret
  r = Execute(server, 7, "javascript", "while (true) {}", 300);
  EXPECT_TRUE(HasKind(r, "timeout")) << r.dump();
  r = Execute(server, 8, "javascript", "var s = 'x'; var a = []; while (true) { s += s; a.push(s); }");
  EXPECT_TRUE(HasKind(r, "memory")) << r.dump();
  r = Execute(server, 9, "javascript", "var l = new Array(4097).join('y'); while (true) print(l);");
  EXPECT_TRUE(HasKind(r, "output_limit")) << r.dump();

  // Arguments a model should fix are isError results naming the field.
  r = server.Call(10, "tools/call", {{"name", "execute_code"}, {"arguments", {{"code", "1"}, {"language", "cobol"}}}});
  EXPECT_TRUE(r["result"].value("isError", false)) << r.dump();

  // engram still serves its memory tools.
  json health = server.Call(11, "tools/call", {{"name", "health_check"}, {"arguments", json::object()}});
  EXPECT_EQ(health["result"]["structuredContent"]["healthy"], true) << health.dump();
  EXPECT_TRUE(server.running());

  // One audit line per execution (the invalid call at id 10 never reached the sandbox).
  std::ifstream log(dir.File("engram.log"));
  int audit_lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("sandbox execution") != std::string::npos) ++audit_lines;
  }
  EXPECT_EQ(audit_lines, 8);
}

}  // namespace
}  // namespace engram
