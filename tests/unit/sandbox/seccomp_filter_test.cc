// Layer 2 (seccomp) and the syscall half of layer 6 on their own: a forked child installs
// the filter and hands the listener to this process, which plays the helper's supervisor.
#include "sandbox/seccomp_filter.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sandbox/layers.h"

namespace engram::sandbox {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

struct Reported {
  std::string kind;
  std::string detail;
};

// Runs `fn` under the filter in a child, supervised here; returns fn's result (or 128 +
// signal) and what the supervisor reported.
int Supervised(int64_t max_processes, const std::function<int()>& fn, std::vector<Reported>* reports) {
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    if (!SetNoNewPrivs().ok()) _exit(100);
    Result<int> listener = InstallSeccompFilter();
    if (!listener.ok()) _exit(101);
    int32_t n = *listener;
    if (write(from_child[1], &n, sizeof(n)) != sizeof(n)) _exit(102);
    char ack;
    if (read(to_child[0], &ack, 1) != 1) _exit(103);
    close(*listener);
    _exit(fn());
  }
  int32_t n = -1;
  if (read(from_child[0], &n, sizeof(n)) != sizeof(n)) return -2;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int listener = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, n, 0));
  if (listener < 0) return -3;
  SeccompSupervisor supervisor(max_processes, [reports](std::string_view kind, std::string_view detail) {
    reports->push_back({std::string(kind), std::string(detail)});
  });
  std::thread serve([&] { supervisor.Serve(listener, pidfd); });
  char ack = 1;
  (void)!write(to_child[1], &ack, 1);
  serve.join();
  int status = 0;
  waitpid(pid, &status, 0);
  close(listener);
  close(pidfd);
  for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(fd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> Details(const std::vector<Reported>& reports) {
  std::vector<std::string> out;
  for (const Reported& r : reports) out.push_back(r.kind + ": " + r.detail);
  return out;
}

TEST(SeccompFilterTest, SocketsAreRefusedAndReported) {
  std::vector<Reported> reports;
  int rc = Supervised(4, [] {
    if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EPERM) return 1;
    if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0) return 2;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) return 3;
    return 0;
  }, &reports);
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(Details(reports), Contains("syscall: socket: refused"));
  EXPECT_THAT(Details(reports), Contains("syscall: socketpair: refused"));
}

TEST(SeccompFilterTest, PtraceMountUnshareSetuidAndKeyringAreRefused) {
  std::vector<Reported> reports;
  int rc = Supervised(4, [] {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0) return 1;
    if (syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, nullptr) == 0) return 2;
    if (unshare(CLONE_NEWUSER) == 0) return 3;
    if (syscall(SYS_setuid, 0) == 0) return 4;
    if (syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0) >= 0) return 5;
    if (syscall(SYS_setns, 0, 0) == 0) return 6;
    return 0;
  }, &reports);
  EXPECT_EQ(rc, 0);
  for (const char* name : {"ptrace", "mount", "unshare", "setuid", "keyctl", "setns"}) {
    EXPECT_THAT(Details(reports), Contains("syscall: " + std::string(name) + ": refused"));
  }
}

TEST(SeccompFilterTest, ProcessCreationIsCountedAndCutOff) {
  std::vector<Reported> reports;
  int rc = Supervised(2, [] {
    for (int i = 0; i < 2; ++i) {
      pid_t p = fork();
      if (p < 0) return 10 + i;
      if (p == 0) _exit(0);
      waitpid(p, nullptr, 0);
    }
    if (fork() >= 0) return 1;
    return errno == EAGAIN ? 0 : 2;
  }, &reports);
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, "process_limit");
}

TEST(SeccompFilterTest, ThreadsRunFreelyButNewNamespacesDoNot) {
  std::vector<Reported> reports;
  int rc = Supervised(0, [] {
    std::thread t([] {});
    t.join();
    // clone(CLONE_NEWUSER) as fork would: refused whatever the process budget.
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    return r < 0 && errno == EPERM ? 0 : 1;
  }, &reports);
  EXPECT_EQ(rc, 0);
  ASSERT_FALSE(reports.empty());
  EXPECT_THAT(reports[0].detail, HasSubstr("CLONE_NEW"));
}

TEST(SeccompFilterTest, EachRefusedSyscallIsReportedOnce) {
  std::vector<Reported> reports;
  int rc = Supervised(0, [] {
    for (int i = 0; i < 1000; ++i) socket(AF_INET, SOCK_STREAM, 0);
    return 0;
  }, &reports);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(reports.size(), 1u);
}

TEST(SeccompFilterTest, X32SyscallsCannotSlipPastTheFilter) {
#if defined(__x86_64__)
  std::vector<Reported> reports;
  // socket(2) through the x32 ABI (syscall number | 0x40000000).
  int rc = Supervised(4, [] { return syscall(0x40000000 | SYS_socket, AF_INET, SOCK_STREAM, 0) >= 0 ? 1 : 0; },
                      &reports);
  EXPECT_NE(rc, 1) << "an x32 socket() got through";
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}

TEST(SeccompFilterTest, DecideWithoutAProcessFollowsThePolicy) {
  std::vector<Reported> reports;
  SeccompSupervisor s(1, [&](std::string_view k, std::string_view d) {
    reports.push_back({std::string(k), std::string(d)});
  });
  uint64_t args[6] = {};
  EXPECT_FALSE(s.Decide(SYS_ptrace, args).allow);
  EXPECT_EQ(s.Decide(SYS_ptrace, args).error, EPERM);
  args[0] = SIGCHLD;
  EXPECT_TRUE(s.Decide(SYS_clone, args).allow);   // the one process allowed
  EXPECT_FALSE(s.Decide(SYS_clone, args).allow);  // the next is refused
  args[0] = CLONE_THREAD | CLONE_VM | CLONE_SIGHAND;
  EXPECT_TRUE(s.Decide(SYS_clone, args).allow);  // threads are not processes
  EXPECT_EQ(SyscallName(SYS_socket), "socket");
  EXPECT_THAT(RefusedSyscallNames(), Contains("io_uring_setup"));
}

}  // namespace
}  // namespace engram::sandbox
