// The escape suite (issue 7): each attempt must be blocked AND reported, by the runtime
// layers alone (static analysis off), and the sandbox must keep working afterwards.
// Attempts that static analysis catches first are checked separately at the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engram/sandbox.h"
#include "sandbox/sandbox_testing.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Describe;
using testing::HasViolation;

class EscapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SandboxOptions options = testing::TestSandboxOptions();
    options.static_analysis_for_test = false;  // the runtime layers on their own
    options.max_output_bytes = 1 << 20;
    ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, options);
    sandbox_ = std::move(sandbox);
    // Files that only Landlock keeps from the code: world-readable, in a world-searchable
    // folder, like a careless home directory.
    chmod(home_.path().c_str(), 0755);
    std::filesystem::create_directories(home_.File(".ssh"));
    std::filesystem::create_directories(home_.File(".local/share/engram"));
    std::ofstream(home_.File(".ssh/id_ed25519")) << "PRIVATE KEY";
    std::ofstream(home_.File(".local/share/engram/memory.db")) << "SQLite format 3";
    for (const char* p : {".ssh", ".local", ".local/share", ".local/share/engram"}) chmod(home_.File(p).c_str(), 0755);
    for (const char* p : {".ssh/id_ed25519", ".local/share/engram/memory.db"}) chmod(home_.File(p).c_str(), 0644);
    writable_ = home_.File("writable");
    std::filesystem::create_directories(writable_);
    chmod(writable_.c_str(), 0777);
  }

  void TearDown() override {
    if (sandbox_ == nullptr) return;
    // Whatever happened, the sandbox still runs code.
    Result<ExecutionResult> r = sandbox_->Execute(Js("print('still serving')"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->stdout_text, "still serving\n");
  }

  static ExecutionRequest Js(std::string code) {
    ExecutionRequest r;
    r.language = SandboxLanguage::kJavaScript;
    r.code = std::move(code);
    return r;
  }

  ExecutionResult Run(SandboxLanguage language, std::string code, int timeout_ms = 5000, int64_t memory_mb = 128) {
    ExecutionRequest r;
    r.language = language;
    r.code = std::move(code);
    r.timeout = std::chrono::milliseconds(timeout_ms);
    r.memory_mb = memory_mb;
    Result<ExecutionResult> result = sandbox_->Execute(r);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? *result : ExecutionResult{};
  }

  ExecutionResult Python(std::string code, int timeout_ms = 5000, int64_t memory_mb = 128) {
    if (!sandbox_->SupportsLanguage(SandboxLanguage::kPython)) {
      ADD_FAILURE() << "python3 is not installed: the Python half of the escape suite cannot run here";
      return {};
    }
    return Run(SandboxLanguage::kPython, std::move(code), timeout_ms, memory_mb);
  }

  std::unique_ptr<Sandbox> sandbox_;
  testing::TempDir home_;
  std::string writable_;
};

// Python source that tries `expr` and prints BLOCKED or LEAKED.
std::string Attempt(const std::string& expr) {
  return "try:\n    r = " + expr + "\n    print('LEAKED', r)\nexcept Exception as e:\n    print('BLOCKED', type(e).__name__)\n";
}

TEST_F(EscapeTest, ReadEtcShadow) {
  ExecutionResult r = Python(Attempt("open('/etc/shadow').read()"));
  EXPECT_THAT(r.stdout_text, HasSubstr("BLOCKED")) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", "/etc/shadow")) << Describe(r);
}

TEST_F(EscapeTest, ReadSshKeys) {
  ExecutionResult r = Python(Attempt("open('" + home_.File(".ssh/id_ed25519") + "').read()"));
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("PRIVATE KEY"))) << Describe(r);
  EXPECT_THAT(r.stdout_text, HasSubstr("BLOCKED"));
  EXPECT_TRUE(HasViolation(r, "filesystem", "id_ed25519")) << Describe(r);
  r = Python(Attempt("__import__('os').listdir('" + home_.File(".ssh") + "')"));
  EXPECT_THAT(r.stdout_text, HasSubstr("BLOCKED")) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", ".ssh")) << Describe(r);
}

TEST_F(EscapeTest, ReadTheEngramDatabase) {
  ExecutionResult r = Python(Attempt("open('" + home_.File(".local/share/engram/memory.db") + "', 'rb').read()"));
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("SQLite"))) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", "memory.db")) << Describe(r);
}

TEST_F(EscapeTest, WriteOutsideScratch) {
  std::string target = writable_ + "/planted";
  ExecutionResult r = Python(Attempt("open('" + target + "', 'w').write('x')"));
  EXPECT_THAT(r.stdout_text, HasSubstr("BLOCKED")) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", "planted")) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists(target));
  r = Python(Attempt("__import__('os').mkdir('/tmp/engram-escape-dir')"));
  EXPECT_THAT(r.stdout_text, HasSubstr("BLOCKED")) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists("/tmp/engram-escape-dir"));
}

TEST_F(EscapeTest, OpenASocketConnectToLoopbackAndResolveNames) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  ExecutionResult r = Python("import socket\n" + Attempt("socket.socket()") +
                             Attempt("socket.create_connection(('127.0.0.1', " + std::to_string(port) + "), 1)") +
                             Attempt("socket.getaddrinfo('example.com', 80)"));
  close(listener);
  EXPECT_EQ(r.stdout_text, "BLOCKED PermissionError\nBLOCKED PermissionError\nBLOCKED gaierror\n") << Describe(r);
  EXPECT_TRUE(HasViolation(r, "syscall", "socket")) << Describe(r);
}

TEST_F(EscapeTest, ForkBomb) {
  ExecutionResult r = Python(
      "import os\n"
      "while True:\n"
      "    try:\n"
      "        if os.fork() == 0:\n"
      "            while True: pass\n"
      "    except OSError:\n"
      "        print('fork refused'); break\n",
      3000);
  EXPECT_THAT(r.stdout_text, HasSubstr("fork refused")) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "process_limit")) << Describe(r);
}

TEST_F(EscapeTest, MemoryBombJavaScript) {
  ExecutionResult r = Run(SandboxLanguage::kJavaScript, "var s = 'x', a = []; while (true) { s += s; a.push(s); }",
                          10000, 64);
  EXPECT_NE(r.exit_status, 0);
  EXPECT_TRUE(HasViolation(r, "memory")) << Describe(r);
}

TEST_F(EscapeTest, MemoryBombPython) {
  ExecutionResult r = Python("a = []\nwhile True:\n    a.append(bytearray(10 ** 7))\n", 10000, 64);
  EXPECT_NE(r.exit_status, 0);
  EXPECT_TRUE(HasViolation(r, "memory")) << Describe(r);
}

TEST_F(EscapeTest, InfiniteLoop) {
  ExecutionResult r = Run(SandboxLanguage::kJavaScript, "while (true) {}", 500);
  // The 500 ms wall-clock watchdog ended it (the violation names the limit that fired),
  // not the CPU rlimit or the request's own timeout.
  EXPECT_TRUE(HasViolation(r, "timeout", "limit of 500 ms")) << Describe(r);
  EXPECT_EQ(r.exit_status, 128 + 9);
  r = Python("while True:\n    pass\n", 500);
  EXPECT_TRUE(HasViolation(r, "timeout")) << Describe(r);
}

TEST_F(EscapeTest, HundredMegabytesOfOutput) {
  ExecutionResult r = Run(SandboxLanguage::kJavaScript,
                          "var line = new Array(1025).join('x'); for (var i = 0; i < 100 * 1024; i++) print(line);");
  EXPECT_TRUE(HasViolation(r, "output_limit")) << Describe(r);
  EXPECT_LE(r.stdout_text.size(), size_t{1} << 20);
  r = Python("import sys\nsys.stdout.write('x' * (100 << 20))\n");
  EXPECT_TRUE(HasViolation(r, "output_limit")) << Describe(r);
  EXPECT_LE(r.stdout_text.size(), size_t{1} << 20);
}

TEST_F(EscapeTest, PtraceMountUnshareSetuidAndTheKeyring) {
  ExecutionResult r = Python(
      "import ctypes\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print(libc.ptrace(16, 1, 0, 0), libc.mount(b'none', b'/mnt', b'tmpfs', 0, None),\n"
      "      libc.unshare(0x10000000), libc.setuid(0), libc.syscall(250, 0, -3),\n"
      "      libc.syscall(308, 0, 0))\n");  // PTRACE_ATTACH, mount, unshare(CLONE_NEWUSER), setuid, keyctl, setns
  EXPECT_EQ(r.stdout_text, "-1 -1 -1 -1 -1 -1\n") << Describe(r);
  for (const char* name : {"ptrace", "mount", "unshare", "setuid", "keyctl", "setns"}) {
    EXPECT_TRUE(HasViolation(r, "syscall", std::string(name) + ":")) << name << "\n" << Describe(r);
  }
}

TEST_F(EscapeTest, ProcSelfEnvironAndTheParentsProc) {
  setenv("ENGRAM_TEST_API_KEY", "sk-must-not-leak", 1);
  std::string parent = "/proc/" + std::to_string(getpid());
  ExecutionResult r = Python(Attempt("open('/proc/self/environ', 'rb').read()") +
                             Attempt("open('" + parent + "/environ', 'rb').read()") +
                             Attempt("open('" + parent + "/cmdline', 'rb').read()") +
                             Attempt("__import__('os').listdir('/proc')") + "import os\nprint(dict(os.environ))\n");
  unsetenv("ENGRAM_TEST_API_KEY");
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("sk-must-not-leak"))) << Describe(r);
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("LEAKED"))) << Describe(r);
  EXPECT_THAT(r.stdout_text, HasSubstr("{'LC_CTYPE': 'C.UTF-8', 'TZ': 'UTC'}"));
  EXPECT_TRUE(HasViolation(r, "filesystem", "environ")) << Describe(r);
}

TEST_F(EscapeTest, SymlinkAndHardLinkTricksInScratch) {
  ExecutionResult r = Python(
      "import os\n"
      "os.symlink('/etc/passwd', 'passwd-link')\n"
      "os.symlink('" + home_.File(".ssh") + "', 'ssh-link')\n" +
      Attempt("open('passwd-link').read()") + Attempt("open('ssh-link/id_ed25519').read()") +
      Attempt("os.link('/etc/passwd', 'hard-link')") + Attempt("os.rename('" + home_.File(".ssh/id_ed25519") + "', 'stolen')"));
  EXPECT_EQ(r.stdout_text, "BLOCKED PermissionError\nBLOCKED PermissionError\nBLOCKED PermissionError\nBLOCKED PermissionError\n")
      << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", "/etc/passwd")) << Describe(r);
  EXPECT_TRUE(HasViolation(r, "filesystem", "id_ed25519")) << Describe(r);
  EXPECT_TRUE(std::filesystem::exists(home_.File(".ssh/id_ed25519")));
}

TEST_F(EscapeTest, JavaScriptHasNoWayToTheSystemAtAll) {
  ExecutionResult r = Run(SandboxLanguage::kJavaScript,
                          "var names = ['require', 'process', 'module', 'Deno', 'Bun', 'XMLHttpRequest', 'fetch', 'WebSocket'];"
                          "names.forEach(function (n) { print(n, typeof this[n]); });");
  EXPECT_EQ(r.stdout_text,
            "require undefined\nprocess undefined\nmodule undefined\nDeno undefined\nBun undefined\n"
            "XMLHttpRequest undefined\nfetch undefined\nWebSocket undefined\n")
      << Describe(r);
}

TEST_F(EscapeTest, WebAssemblyThatLoopsForever) {
  ExecutionRequest r;
  r.language = SandboxLanguage::kWasm;
  r.code = "(module (func (export \"spin\") (loop (br 0))))";
  r.entry = "spin";
  r.timeout = std::chrono::milliseconds(500);
  Result<ExecutionResult> result = sandbox_->Execute(r);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(HasViolation(*result, "timeout", "limit of 500 ms")) << Describe(*result);
}

TEST_F(EscapeTest, WebAssemblyThatGrowsMemoryWithoutBound) {
  ExecutionRequest r;
  r.language = SandboxLanguage::kWasm;
  r.code =
      "(module (memory 1)"
      "  (func (export \"grow\") (result i32)"
      "    (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))"
      "    (memory.size)))";
  r.entry = "grow";
  r.memory_mb = 16;
  Result<ExecutionResult> result = sandbox_->Execute(r);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->stdout_text, "256\n") << Describe(*result);  // 16 MiB of 64 KiB pages, no more
  EXPECT_TRUE(HasViolation(*result, "memory")) << Describe(*result);
  // A module that asks for more than the limit up front is refused outright.
  r.code = "(module (memory 1000) (func (export \"grow\") (result i32) (memory.size)))";
  result = sandbox_->Execute(r);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(HasViolation(*result, "memory")) << Describe(*result);
}

TEST_F(EscapeTest, WebAssemblyImportsBeyondPrintAreRefused) {
  ExecutionRequest r;
  r.language = SandboxLanguage::kWasm;
  r.code = "(module (import \"wasi_snapshot_preview1\" \"path_open\" (func)) (func (export \"f\")))";
  r.entry = "f";
  Result<ExecutionResult> result = sandbox_->Execute(r);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_status, 1);
  EXPECT_THAT(result->stderr_text, HasSubstr("not available in the sandbox")) << Describe(*result);
}

// With static analysis on (as execute_code always runs), the idioms above are refused
// before anything starts, with the reason.
TEST(EscapeStaticAnalysisTest, KnownIdiomsAreRejectedBeforeRunning) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, testing::TestSandboxOptions());
  struct Case {
    SandboxLanguage language;
    const char* code;
  } cases[] = {
      {SandboxLanguage::kJavaScript, "require('fs').readFileSync('/etc/shadow')"},
      {SandboxLanguage::kJavaScript, "print(process.env.ENGRAM_API_KEY)"},
      {SandboxLanguage::kPython, "print(open('/etc/shadow').read())"},
      {SandboxLanguage::kPython, "import socket\nsocket.create_connection(('127.0.0.1', 80))"},
      {SandboxLanguage::kPython, "import ctypes"},
      {SandboxLanguage::kPython, "import os\nwhile True: os.fork()"},
      {SandboxLanguage::kWasm, "(module (import \"wasi_snapshot_preview1\" \"fd_write\" (func)))"},
  };
  for (const Case& c : cases) {
    ExecutionRequest req;
    req.language = c.language;
    req.code = c.code;
    if (c.language == SandboxLanguage::kWasm) req.entry = "f";
    Result<ExecutionResult> r = sandbox->Execute(req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_status, -1) << c.code;
    EXPECT_TRUE(HasViolation(*r, "static_analysis")) << c.code << "\n" << Describe(*r);
    EXPECT_THAT(r->stderr_text, HasSubstr("rejected before running"));
  }
}

}  // namespace
}  // namespace engram
