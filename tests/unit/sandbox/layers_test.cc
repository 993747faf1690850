// Each process-level layer of the sandbox on its own (DESIGN §8), in a forked child since
// every layer changes its process for good. A child reports the first check that failed as
// its exit code, so a failure names the check.
#include "sandbox/layers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "sandbox/landlock.h"
#include "testing/temp_dir.h"

extern char** environ;

namespace engram::sandbox {
namespace {

// Runs `fn` in a forked child and returns what it returned, or 128 + the signal that
// killed it.
int InChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Skips (loudly) when the kernel lacks user namespaces, rather than passing.
bool UserNamespacesWork() {
  return InChild([] { return unshare(CLONE_NEWUSER) == 0 ? 0 : 1; }) == 0;
}

#define REQUIRE_USERNS()                                                                                  \
  if (!UserNamespacesWork()) GTEST_SKIP() << "this kernel refuses user namespaces: the sandbox cannot run " \
                                              "here (layer user-namespace missing)"

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LayersTest, UserNamespaceMapsTheCallerToRootInsideAndNobodyOutside) {
  REQUIRE_USERNS();
  int rc = InChild([] {
    if (!DropRootIdentity().ok()) return 1;
    uid_t outside = geteuid();
    if (!EnterUserNamespace().ok()) return 2;
    if (getuid() != 0 || getgid() != 0) return 3;
    std::string map = ReadAll("/proc/self/uid_map");
    if (map.find(std::to_string(outside)) == std::string::npos) return 4;
    // A root caller runs the code as nobody on the host.
    if (outside == 0) return 5;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, PidNamespaceMakesTheFirstChildPid1) {
  REQUIRE_USERNS();
  int rc = InChild([] {
    if (!DropRootIdentity().ok() || !EnterUserNamespace().ok()) return 1;
    if (!EnterNamespace(CLONE_NEWPID).ok()) return 2;
    return InChild([] { return getpid() == 1 ? 0 : 3; });
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, MountsMadeInsideDoNotReachTheHost) {
  REQUIRE_USERNS();
  testing::TempDir dir;
  chmod(dir.path().c_str(), 0777);
  std::string target = dir.path();
  int rc = InChild([&] {
    if (!DropRootIdentity().ok() || !EnterUserNamespace().ok()) return 1;
    if (!EnterNamespace(CLONE_NEWNS | CLONE_NEWUTS).ok()) return 2;
    if (!MakeMountsPrivate().ok()) return 3;
    if (mount("tmpfs", target.c_str(), "tmpfs", 0, nullptr) != 0) return 4;
    char host[64] = {};
    gethostname(host, sizeof(host) - 1);
    return std::string(host) == "sandbox" ? 0 : 5;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(ReadAll("/proc/self/mountinfo").find(target), std::string::npos) << "the tmpfs leaked to the host";
}

TEST(LayersTest, NetworkNamespaceHasNothingToConnectTo) {
  REQUIRE_USERNS();
  // A listener on the host's loopback, port 0.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int rc = InChild([&] {
    if (!DropRootIdentity().ok() || !EnterUserNamespace().ok()) return 1;
    if (!EnterNamespace(CLONE_NEWNET).ok()) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);  // no seccomp here: the namespace alone
    if (s < 0) return 3;
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return 4;
    return errno == ENETUNREACH || errno == ECONNREFUSED ? 0 : 5;
  });
  close(listener);
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, ResourceLimitsStopMemoryFilesAndDescriptors) {
  testing::TempDir dir;
  std::string file = dir.File("big");
  int rc = InChild([&] {
    ResourceLimits limits;
    limits.cpu_seconds = 5;
    limits.address_space_bytes = int64_t{64} << 20;
    limits.file_size_bytes = 4096;
    limits.open_files = 16;
    limits.processes = 64;
    if (!ApplyResourceLimits(limits).ok()) return 1;
    if (std::malloc(size_t{128} << 20) != nullptr) return 2;  // address space
    signal(SIGXFSZ, SIG_IGN);
    int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 3;
    char block[8192] = {};
    if (write(fd, block, sizeof(block)) == static_cast<ssize_t>(sizeof(block))) return 4;  // file size
    for (int i = 0; i < 32; ++i) {
      if (open("/dev/null", O_RDONLY) < 0) return errno == EMFILE ? 0 : 5;  // descriptors
    }
    return 6;
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, CpuLimitKillsABusyLoop) {
  int rc = InChild([] {
    ResourceLimits limits;
    limits.cpu_seconds = 1;
    if (!ApplyResourceLimits(limits).ok()) return 1;
    volatile uint64_t spins = 0;
    for (;;) spins = spins + 1;
    return 2;
  });
  EXPECT_EQ(rc, 128 + SIGXCPU);
}

TEST(LayersTest, NoNewPrivsSticks) {
  int rc = InChild([] {
    if (!SetNoNewPrivs().ok()) return 1;
    return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 2;
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, DroppedCapabilitiesCannotMountEvenAsRootInTheNamespace) {
  REQUIRE_USERNS();
  testing::TempDir dir;
  chmod(dir.path().c_str(), 0777);
  std::string target = dir.path();
  int rc = InChild([&] {
    if (!DropRootIdentity().ok() || !EnterUserNamespace().ok()) return 1;
    if (!EnterNamespace(CLONE_NEWNS | CLONE_NEWUTS).ok() || !MakeMountsPrivate().ok()) return 2;
    if (!DropCapabilities().ok()) return 3;
    if (mount("tmpfs", target.c_str(), "tmpfs", 0, nullptr) == 0) return 4;
    if (errno != EPERM) return 5;
    // (unshare(CLONE_NEWUSER) needs no capability at all: seccomp refuses it, not this layer.)
    return unshare(CLONE_NEWNS) == 0 ? 6 : 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, LandlockConfinesFilesToTheScratchDirectory) {
  Result<int> abi = LandlockAbi();
  if (!abi.ok()) GTEST_SKIP() << "Landlock is missing on this kernel (layer landlock): " << abi.status().message();
  testing::TempDir scratch;
  testing::TempDir outside;
  std::string secret = outside.File("secret");
  std::ofstream(secret) << "top secret";
  chmod(secret.c_str(), 0644);
  std::string s = scratch.path();
  int rc = InChild([&] {
    if (!SetNoNewPrivs().ok()) return 1;
    LandlockPaths paths;
    paths.read_write_dirs.push_back(s);
    if (!ApplyLandlock(paths).ok()) return 2;
    if (open(secret.c_str(), O_RDONLY) >= 0 || errno != EACCES) return 3;           // read outside
    if (open((outside.path() + "/new").c_str(), O_WRONLY | O_CREAT, 0600) >= 0) return 4;  // write outside
    if (open("/etc/passwd", O_RDONLY) >= 0) return 5;
    int fd = open((s + "/ok").c_str(), O_RDWR | O_CREAT, 0600);  // scratch is fine
    if (fd < 0 || write(fd, "x", 1) != 1) return 6;
    // Symlink tricks: the link may be made, but following it is still refused.
    if (symlink(secret.c_str(), (s + "/link").c_str()) != 0) return 7;
    if (open((s + "/link").c_str(), O_RDONLY) >= 0 || errno != EACCES) return 8;
    // Hard links from outside are refused outright.
    if (link(secret.c_str(), (s + "/hard").c_str()) == 0) return 9;
    if (rename(secret.c_str(), (s + "/moved").c_str()) == 0) return 10;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(access((outside.path() + "/new").c_str(), F_OK), -1);
}

TEST(LayersTest, LandlockReadOnlyPathsCanBeReadButNotWritten) {
  if (!LandlockAbi().ok()) GTEST_SKIP() << "Landlock is missing on this kernel (layer landlock)";
  testing::TempDir runtime;
  std::string lib = runtime.File("lib.txt");
  std::ofstream(lib) << "library";
  int rc = InChild([&] {
    if (!SetNoNewPrivs().ok()) return 1;
    LandlockPaths paths;
    paths.read_only.push_back(runtime.path());
    paths.read_only.push_back("/does/not/exist");  // skipped, not an error
    if (!ApplyLandlock(paths).ok()) return 2;
    if (open(lib.c_str(), O_RDONLY) < 0) return 3;
    if (open(lib.c_str(), O_WRONLY) >= 0) return 4;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(LayersTest, ClearEnvironmentLeavesNothing) {
  int rc = InChild([] {
    setenv("ENGRAM_API_KEY", "secret", 1);
    ClearEnvironment();
    return environ[0] == nullptr && getenv("ENGRAM_API_KEY") == nullptr ? 0 : 1;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace engram::sandbox
