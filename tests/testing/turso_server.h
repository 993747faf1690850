// The Turso server tests run against: the real `tursodb --sync-server` from the npm
// package `turso` (tests/e2e/node, installed by scripts/install-deps), serving the Hrana
// pipeline protocol on loopback.
//
// Two ways to get one:
//  - TestTursoUrl(): the server `make test` starts once for the whole run
//    (scripts/turso-test-server) and exports as ENGRAM_TEST_TURSO. Tests sharing it keep
//    to tables of their own (UniqueTursoName). Use ENGRAM_TURSO_OR_SKIP(url) at the top of
//    a test: with ENGRAM_REQUIRE_TURSO=1 (set by `make test`) a missing server FAILS the
//    test; a developer running one binary by hand without a server sees it skip.
//  - TursoServer::Start(): a tursodb of the test's own, for tests that kill -9 and
//    restart it on the same port and database file.
//
//   ENGRAM_TURSO_OR_SKIP(url);                       // std::string url = "http://127.0.0.1:PORT"
//   auto server = testing::TursoServer::Start(dir.File("t.db"));
//   ASSERT_TRUE(server.ok()) << server.status();
//   (*server)->Kill();  (*server)->Restart();
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "engram/result.h"

namespace engram::testing {

inline constexpr const char* kTursoMissingMessage =
    "ENGRAM_TEST_TURSO is unset: Turso cases need a server. Run `make test` (it starts one), or: "
    "scripts/turso-test-server start /tmp/turso && export ENGRAM_TEST_TURSO=\"$(scripts/turso-test-server url "
    "/tmp/turso)\"";

// ENGRAM_TEST_TURSO ("http://127.0.0.1:PORT"), or "" when unset.
inline std::string TestTursoUrl() {
  const char* v = std::getenv("ENGRAM_TEST_TURSO");
  return v == nullptr ? std::string() : std::string(v);
}

// True when a missing Turso server must fail tests (ENGRAM_REQUIRE_TURSO=1, `make test`).
inline bool TursoRequired() {
  const char* v = std::getenv("ENGRAM_REQUIRE_TURSO");
  return v != nullptr && std::string(v) == "1";
}

// Declares `std::string var` = ENGRAM_TEST_TURSO; without it, fails the test when
// ENGRAM_REQUIRE_TURSO=1 and skips it otherwise. Use in a TEST body or SetUp.
#define ENGRAM_TURSO_OR_SKIP(var)                                                      \
  const std::string var = ::engram::testing::TestTursoUrl();                          \
  if (var.empty()) {                                                                   \
    if (::engram::testing::TursoRequired()) {                                          \
      GTEST_FAIL() << ::engram::testing::kTursoMissingMessage;                         \
    }                                                                                  \
    GTEST_SKIP() << "\n*** SKIPPED: " << ::engram::testing::kTursoMissingMessage << " ***\n"; \
  }

// A name no other test (nor another run against the same server) uses: `prefix` plus 12
// random hex digits. For tables in the shared server.
inline std::string UniqueTursoName(const std::string& prefix) {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  uint64_t x = (uint64_t{rd()} << 32) ^ rd() ^ (counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = prefix;
  for (int i = 0; i < 12; ++i) out.push_back(kHex[(x >> (i * 4)) & 15]);
  return out;
}

// The tursodb binary: $ENGRAM_TURSODB, else the one CMake found (ENGRAM_TURSODB_BINARY, in
// tests/e2e/node/node_modules), else "".
inline std::string TursoBinary() {
  if (const char* v = std::getenv("ENGRAM_TURSODB"); v != nullptr && *v != '\0') return v;
#ifdef ENGRAM_TURSODB_BINARY
  return ENGRAM_TURSODB_BINARY;
#else
  return "";
#endif
}

namespace internal {

// A loopback port that was free a moment ago (bound to port 0, then released).
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace internal

// One tursodb process serving one database file on 127.0.0.1:port; SIGKILLed when
// destroyed, and when the test process dies (PR_SET_PDEATHSIG: the thread that calls
// Start/Restart must live as long as the server should). Its output goes to <db>.log;
// the caller owns the database's folder. Not thread-safe: owned by one test.
class TursoServer {
 public:
  // Starts tursodb on a free loopback port for `db_path` (created if missing) and waits
  // until it accepts connections. Errors: kFailedPrecondition (no binary: run
  // scripts/install-deps), kUnavailable (it did not start; the log's path is in the message).
  static Result<std::unique_ptr<TursoServer>> Start(const std::string& db_path) {
    const std::string binary = TursoBinary();
    if (binary.empty() || !std::filesystem::exists(binary)) {
      return FailedPreconditionError("no tursodb binary at \"" + binary +
                                     "\": run scripts/install-deps (npm ci in tests/e2e/node) or set ENGRAM_TURSODB");
    }
    std::unique_ptr<TursoServer> server(new TursoServer(binary, db_path));
    Status last = UnavailableError("no free port");
    for (int attempt = 0; attempt < 5; ++attempt) {  // another process may take the port first
      server->port_ = internal::FreeLoopbackPort();
      if (server->port_ == 0) continue;
      last = server->Restart();
      if (last.ok()) return server;
    }
    return last;
  }

  ~TursoServer() { Kill().IgnoreError(); }
  TursoServer(const TursoServer&) = delete;
  TursoServer& operator=(const TursoServer&) = delete;

  // "http://127.0.0.1:PORT"
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& db_path() const { return db_path_; }
  bool running() const { return pid_ > 0; }

  // kill -9, then waits for it to exit. OK if it was not running.
  Status Kill() {
    if (pid_ <= 0) return OkStatus();
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return OkStatus();
  }

  // Starts it (again) on the same port and database file and waits until it accepts
  // connections (at most 30 s). Errors: kUnavailable with the log's path.
  Status Restart() {
    ENGRAM_RETURN_IF_ERROR(Kill());
    const std::string log = db_path_ + ".log";
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return UnavailableError("fork failed");
    if (pid == 0) {
      // Dies with the test, even a test killed with SIGKILL: no orphaned servers.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the test died before prctl
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) ::dup2(null_fd, 0);
      ::execl(binary_.c_str(), binary_.c_str(), db_path_.c_str(), "--sync-server", listen.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return UnavailableError("tursodb exited at start (port " + std::to_string(port_) + " taken?); see " + log);
      }
      if (internal::Accepts(port_)) return OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill().IgnoreError();
    return UnavailableError("tursodb did not listen on " + listen + " within 30 s; see " + log);
  }

 private:
  TursoServer(std::string binary, std::string db_path) : binary_(std::move(binary)), db_path_(std::move(db_path)) {}

  const std::string binary_;
  const std::string db_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace engram::testing
