// The reporting half of layer 3: which file accesses Landlock refuses, read from a live
// process's syscall arguments (this one's).
#include "sandbox/fs_monitor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace engram::sandbox {
namespace {

using ::testing::HasSubstr;
using Access = FsMonitor::Access;

class FsMonitorTest : public ::testing::Test {
 protected:
  FsMonitorTest() {
    paths_.read_write_dirs.push_back(scratch_.path());
    paths_.read_write_files.push_back("/dev/null");
    paths_.read_only.push_back(runtime_.path());
    std::ofstream(runtime_.File("lib.so")) << "x";
    std::ofstream(scratch_.File("data.txt")) << "x";
  }
  // openat(AT_FDCWD, path, flags) as made by this process.
  std::optional<std::string> Open(const FsMonitor& m, const std::string& path, int flags) {
    uint64_t args[6] = {static_cast<uint64_t>(static_cast<int64_t>(AT_FDCWD)),
                        reinterpret_cast<uint64_t>(path.c_str()), static_cast<uint64_t>(flags)};
    return m.Check(getpid(), SYS_openat, args);
  }

  testing::TempDir scratch_;
  testing::TempDir runtime_;
  LandlockPaths paths_;
};

TEST_F(FsMonitorTest, AllowedFollowsTheLandlockRules) {
  FsMonitor m(paths_, scratch_.path(), true);
  EXPECT_TRUE(m.Allowed(Access::kCreate, scratch_.File("new")));
  EXPECT_TRUE(m.Allowed(Access::kRemove, scratch_.File("data.txt")));
  EXPECT_TRUE(m.Allowed(Access::kWrite, "/dev/null"));
  EXPECT_FALSE(m.Allowed(Access::kRemove, "/dev/null"));
  EXPECT_TRUE(m.Allowed(Access::kRead, runtime_.File("lib.so")));
  EXPECT_TRUE(m.Allowed(Access::kExecute, runtime_.File("lib.so")));
  EXPECT_FALSE(m.Allowed(Access::kWrite, runtime_.File("lib.so")));
  EXPECT_FALSE(m.Allowed(Access::kRead, "/etc/shadow"));
  EXPECT_FALSE(m.Allowed(Access::kRead, scratch_.path() + "-sibling/x"));  // a prefix is not a parent
}

TEST_F(FsMonitorTest, ReportsReadsOutsideWithTheResolvedPath) {
  FsMonitor m(paths_, scratch_.path(), true);
  std::optional<std::string> d = Open(m, "/etc/shadow", O_RDONLY);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("open for reading /etc/shadow"));
  EXPECT_FALSE(Open(m, scratch_.File("data.txt"), O_RDWR).has_value());
  EXPECT_FALSE(Open(m, runtime_.File("lib.so"), O_RDONLY).has_value());
  EXPECT_FALSE(Open(m, "/no/such/file", O_RDONLY).has_value());  // ENOENT, not a refusal
  EXPECT_FALSE(Open(m, "/etc/shadow", O_PATH).has_value());       // Landlock ignores O_PATH
}

TEST_F(FsMonitorTest, FollowsSymlinksOutOfTheScratchDirectory) {
  ASSERT_EQ(symlink("/etc/passwd", scratch_.File("link").c_str()), 0);
  FsMonitor m(paths_, scratch_.path(), true);
  std::optional<std::string> d = Open(m, scratch_.File("link"), O_RDONLY);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("/etc/passwd"));
}

TEST_F(FsMonitorTest, ReportsWritesAndCreationsOutside) {
  FsMonitor m(paths_, scratch_.path(), true);
  std::optional<std::string> d = Open(m, "/tmp/engram-sandbox-test-never-created", O_WRONLY | O_CREAT);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("create /tmp/engram-sandbox-test-never-created"));
  EXPECT_FALSE(Open(m, scratch_.File("fresh"), O_WRONLY | O_CREAT).has_value());
  d = Open(m, runtime_.File("lib.so"), O_WRONLY);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("open for writing"));
}

TEST_F(FsMonitorTest, ProcSelfMeansTheCaller) {
  FsMonitor m(paths_, scratch_.path(), true);
  std::optional<std::string> d = Open(m, "/proc/self/environ", O_RDONLY);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("/proc/" + std::to_string(getpid()) + "/environ"));
}

TEST_F(FsMonitorTest, RelativePathsStartInTheCallersDirectory) {
  FsMonitor m(paths_, scratch_.path(), /*proc_mounted=*/false);  // cwd assumed to be scratch
  EXPECT_FALSE(Open(m, "data.txt", O_RDONLY).has_value());
  std::optional<std::string> d = Open(m, "../../../../../../etc/passwd", O_RDONLY);
  ASSERT_TRUE(d.has_value());
  EXPECT_THAT(*d, HasSubstr("/etc/passwd"));
}

TEST(ReadProcessStringTest, ReadsAcrossPages) {
  std::string long_path(4000, 'a');
  std::optional<std::string> s = ReadProcessString(getpid(), reinterpret_cast<uint64_t>(long_path.c_str()));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, long_path);
}

}  // namespace
}  // namespace engram::sandbox
