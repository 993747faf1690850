// The Sandbox interface over the real helper: runtimes, requests, limits, fail-closed
// behaviour and clean-up.
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engram/sandbox.h"
#include "sandbox/sandbox_testing.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using testing::Describe;
using testing::HasViolation;
using testing::TestSandboxOptions;

ExecutionRequest Js(std::string code) {
  ExecutionRequest r;
  r.language = SandboxLanguage::kJavaScript;
  r.code = std::move(code);
  return r;
}

ExecutionRequest Py(std::string code) {
  ExecutionRequest r;
  r.language = SandboxLanguage::kPython;
  r.code = std::move(code);
  return r;
}

TEST(LinuxSandboxTest, EveryLayerIsProbedAndAvailable) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  std::vector<SandboxLayerStatus> layers = sandbox->Layers();
  std::vector<std::string> names;
  for (const SandboxLayerStatus& l : layers) {
    names.push_back(l.name);
    EXPECT_TRUE(l.available) << l.name << ": " << l.detail;
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf({"user-namespace", "pid-namespace", "mount-namespace",
                                              "ipc-uts-namespace", "network-namespace", "rlimits", "landlock",
                                              "no-new-privs", "capabilities", "seccomp", "static-analysis",
                                              "monitoring"}));
  EXPECT_TRUE(sandbox->SupportsLanguage(SandboxLanguage::kJavaScript));
}

TEST(LinuxSandboxTest, JavaScriptPrintsToStdoutAndStderr) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  Result<ExecutionResult> r = sandbox->Execute(
      Js("print('hello', 6 * 7); console.log({a: [1, 2]}, 'x'); console.error('oops'); console.warn(1.5);"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_text, "hello 42\n{\"a\":[1,2]} x\n") << Describe(*r);
  EXPECT_EQ(r->stderr_text, "oops\n1.5\n");
  EXPECT_EQ(r->exit_status, 0);
  EXPECT_TRUE(r->violations.empty()) << Describe(*r);
}

TEST(LinuxSandboxTest, JavaScriptErrorsExitNonZeroWithTheMessage) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  Result<ExecutionResult> r = sandbox->Execute(Js("print('before');\nnull.x;"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_status, 1);
  EXPECT_EQ(r->stdout_text, "before\n");
  EXPECT_THAT(r->stderr_text, HasSubstr("TypeError"));
  r = sandbox->Execute(Js("this is not javascript"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_status, 1);
  EXPECT_THAT(r->stderr_text, HasSubstr("SyntaxError"));
}

TEST(LinuxSandboxTest, EntryIsCalledWithArgsAndItsResultPrintedAsJson) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  ExecutionRequest req = Js("function stats(xs, k) { var s = 0; xs.forEach(function (x) { s += x; });"
                            " return {mean: s / xs.length, k: k}; }");
  req.entry = "stats";
  req.args_json = "[[1, 2, 3, 6], \"label\"]";
  Result<ExecutionResult> r = sandbox->Execute(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "{\"mean\":3,\"k\":\"label\"}\n") << Describe(*r);
  req.entry = "missing";
  r = sandbox->Execute(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_status, 1);
  EXPECT_THAT(r->stderr_text, HasSubstr("missing"));
}

TEST(LinuxSandboxTest, PythonRunsIsolatedWithAnEmptyEnvironment) {
  SandboxOptions options = TestSandboxOptions();
  options.static_analysis_for_test = false;  // it would refuse os.environ
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, options);
  if (!sandbox->SupportsLanguage(SandboxLanguage::kPython)) GTEST_SKIP() << "python3 is not installed here";
  setenv("ENGRAM_TEST_SECRET", "hunter2", 1);
  ExecutionRequest req = Py(
      "import os, sys, json\n"
      "print(sys.flags.isolated, sys.flags.no_site, sorted(os.environ))\n"
      "open('note.txt', 'w').write('kept in scratch')\n"
      "print(open('note.txt').read())\n"
      "def add(a, b):\n    return {'sum': a + b}\n");
  req.entry = "add";
  req.args_json = "[2, 40]";
  Result<ExecutionResult> r = sandbox->Execute(req);
  unsetenv("ENGRAM_TEST_SECRET");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_text, "1 1 ['LC_CTYPE', 'TZ']\nkept in scratch\n{\"sum\": 42}\n") << Describe(*r);
  EXPECT_EQ(r->exit_status, 0);
  EXPECT_TRUE(r->violations.empty()) << Describe(*r);
}

ExecutionRequest Wasm(std::string code, std::string entry, std::string args = "") {
  ExecutionRequest r;
  r.language = SandboxLanguage::kWasm;
  r.code = std::move(code);
  r.entry = std::move(entry);
  r.args_json = std::move(args);
  return r;
}

TEST(LinuxSandboxTest, WebAssemblyFromWatCallsTheExportWithArgs) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  ASSERT_TRUE(sandbox->SupportsLanguage(SandboxLanguage::kWasm));
  Result<ExecutionResult> r = sandbox->Execute(Wasm(
      R"((module
           (import "env" "print_f64" (func $print (param f64)))
           (func (export "mix") (param i32 i64 f64) (result i64)
             (call $print (local.get 2))
             (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))))",
      "mix", "[-2, 9000000000, 2.5]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_text, "2.5\n8999999998\n") << Describe(*r);
  EXPECT_EQ(r->exit_status, 0);
}

TEST(LinuxSandboxTest, WebAssemblyFromBase64Binary) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  // (module (func (export "two") (result i32) i32.const 2))
  Result<ExecutionResult> r = sandbox->Execute(Wasm("AGFzbQEAAAABBQFgAAF/AwIBAAcHAQN0d28AAAoGAQQAQQIL", "two"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "2\n") << Describe(*r);
}

TEST(LinuxSandboxTest, WebAssemblyErrorsNameTheProblem) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  struct Case {
    ExecutionRequest request;
    const char* message;
  } cases[] = {
      {Wasm("(module (func (export \"f\") unreachable))", "f"), "trap"},
      {Wasm("(module (func (export \"f\") (param i32)))", "f"), "takes 1 arguments"},
      {Wasm("(module (func (export \"f\")))", "g"), "no function named"},
      {Wasm("(module (func (export \"f\") (i32.add)))", "f"), "invalid module"},
      {Wasm("not base64 at all!", "f"), "neither WAT"},
  };
  for (const Case& c : cases) {
    Result<ExecutionResult> r = sandbox->Execute(c.request);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_status, 1) << c.request.code << "\n" << Describe(*r);
    EXPECT_THAT(r->stderr_text, HasSubstr(c.message)) << c.request.code;
  }
}

TEST(LinuxSandboxTest, BadRequestsAreInvalidArguments) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  EXPECT_EQ(sandbox->Execute(Js("")).status().code(), StatusCode::kInvalidArgument);
  ExecutionRequest bad = Js("print(1)");
  bad.entry = "1nope";
  EXPECT_THAT(sandbox->Execute(bad).status().message(), HasSubstr("entry"));
  bad.entry = "";
  bad.args_json = "[1]";
  EXPECT_THAT(sandbox->Execute(bad).status().message(), HasSubstr("args"));
  bad.entry = "f";
  bad.args_json = "{\"not\": \"an array\"}";
  EXPECT_EQ(sandbox->Execute(bad).status().code(), StatusCode::kInvalidArgument);
  ExecutionRequest wasm;
  wasm.language = SandboxLanguage::kWasm;
  wasm.code = "(module)";
  EXPECT_THAT(sandbox->Execute(wasm).status().message(), HasSubstr("entry"));
  bad = Js("print(1)");
  bad.timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(sandbox->Execute(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(LinuxSandboxTest, LimitsAreCappedByTheOptions) {
  SandboxOptions options = TestSandboxOptions();
  options.max_timeout = std::chrono::milliseconds(700);
  options.default_timeout = std::chrono::milliseconds(700);
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, options);
  ExecutionRequest req = Js("while (true) {}");
  req.timeout = std::chrono::milliseconds(60000);
  Result<ExecutionResult> r = sandbox->Execute(req);
  ASSERT_TRUE(r.ok());
  // The capped 700 ms watchdog fired, not the 60 s asked for.
  EXPECT_TRUE(HasViolation(*r, "timeout", "limit of 700 ms")) << Describe(*r);
}

TEST(LinuxSandboxTest, TheScratchDirectoryIsFreshAndRemovedAfterwards) {
  SandboxOptions options = TestSandboxOptions();
  std::string root = (std::filesystem::temp_directory_path() / "engram-scratch-root-XXXXXX").string();
  ASSERT_NE(mkdtemp(root.data()), nullptr);
  chmod(root.c_str(), 0711);  // a root engram runs the code as nobody
  options.scratch_root = root;
  options.static_analysis_for_test = false;  // it would refuse the '/etc' below
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, options);
  if (!sandbox->SupportsLanguage(SandboxLanguage::kPython)) GTEST_SKIP() << "python3 is not installed here";
  ExecutionRequest req = Py(
      "import os\n"
      "print(len(os.listdir('.')))\n"  // main.py only
      "os.makedirs('a/b/c')\n"
      "open('a/b/c/f', 'w').write('x')\n"
      "os.chmod('a/b', 0)\n"
      "os.symlink('/etc', 'etc-link')\n");
  Result<ExecutionResult> r = sandbox->Execute(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "1\n") << Describe(*r);
  EXPECT_TRUE(std::filesystem::is_empty(root)) << "scratch directories left behind in " << root;
  EXPECT_TRUE(std::filesystem::exists("/etc/passwd"));  // the symlink was removed, not followed
  std::filesystem::remove_all(root);
}

TEST(LinuxSandboxTest, TwoExecutionsRunInParallel) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  std::atomic<int> ok{0};
  auto run = [&](int i) {
    Result<ExecutionResult> r = sandbox->Execute(Js("print(" + std::to_string(i) + " * 2)"));
    if (r.ok() && r->stdout_text == std::to_string(i * 2) + "\n") ++ok;
  };
  std::thread a(run, 1), b(run, 2);
  a.join();
  b.join();
  EXPECT_EQ(ok.load(), 2);
}

TEST(LinuxSandboxTest, CancellationKillsTheRun) {
  ENGRAM_OPEN_SANDBOX_OR_SKIP(sandbox, TestSandboxOptions());
  auto start = std::chrono::steady_clock::now();
  std::function<bool()> cancelled = [&] { return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(200); };
  Result<ExecutionResult> r = sandbox->Execute(Js("while (true) {}"), cancelled);
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(LinuxSandboxTest, AScratchRootNobodyCanEnterIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "only a root engram hands the code to nobody";
  testing::TempDir dir;  // 0700
  SandboxOptions options = TestSandboxOptions();
  options.scratch_root = dir.path();
  Result<std::unique_ptr<Sandbox>> s = OpenLinuxSandbox(options);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("o+x"));
}

// A helper that probes fine but then exits without reading its program: engram must not
// die of SIGPIPE while feeding it, and answers with an error.
TEST(LinuxSandboxTest, AHelperThatQuitsEarlyIsAnErrorNotACrash) {
  testing::TempDir dir;
  std::string script = dir.File("quitter");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n"
           "if [ \"$1\" = --probe ]; then\n"
           "  for l in user-namespace mount-namespace pid-namespace ipc-uts-namespace network-namespace rlimits \\\n"
           "           no-new-privs landlock capabilities seccomp; do echo \"layer $l ok\" >&3; done\n"
           "  echo ready >&3\n"
           "fi\n"
           "exit 0\n";
  }
  chmod(script.c_str(), 0755);
  SandboxOptions options = TestSandboxOptions();
  options.helper_path = script;
  Result<std::unique_ptr<Sandbox>> s = OpenLinuxSandbox(options);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Ready().ok()) << (*s)->Ready().ToString();
  Result<ExecutionResult> r = (*s)->Execute(Js("// " + std::string(2 << 20, 'x') + "\nprint(1)"));
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("before running the code"));
}

TEST(LinuxSandboxTest, AMissingHelperIsNotFound) {
  SandboxOptions options = TestSandboxOptions();
  options.helper_path = "/nonexistent/engram-sandbox";
  EXPECT_EQ(OpenLinuxSandbox(options).status().code(), StatusCode::kNotFound);
}

TEST(LinuxSandboxTest, AHelperThatDoesNotProbeIsNotReady) {
  SandboxOptions options = TestSandboxOptions();
  options.helper_path = "/bin/true";
  Result<std::unique_ptr<Sandbox>> s = OpenLinuxSandbox(options);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->Ready().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*s)->Execute(Js("print(1)")).status().code(), StatusCode::kFailedPrecondition);
}

// Fail closed: with one kernel feature taken away (by a seccomp filter in a child process,
// inherited by the helper), nothing runs and the error names the missing layer.
int WithoutSyscall(int nr, int error, const std::string& expected_layer) {
  pid_t pid = fork();
  if (pid == 0) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(error), nr, 0) != 0 || seccomp_load(ctx) != 0) {
      _exit(10);
    }
    Result<std::unique_ptr<Sandbox>> s = OpenLinuxSandbox(TestSandboxOptions());
    if (!s.ok()) _exit(11);
    Status ready = (*s)->Ready();
    if (ready.ok()) _exit(12);
    if (ready.message().find("sandbox layer " + expected_layer) == std::string_view::npos) {
      fprintf(stderr, "Ready(): %s\n", ready.ToString().c_str());
      _exit(13);
    }
    Result<ExecutionResult> r = (*s)->Execute(Js("print('must not run')"));
    if (r.ok() || r.status().code() != StatusCode::kFailedPrecondition) _exit(14);
    if (r.status().message().find(expected_layer) == std::string_view::npos) _exit(15);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(LinuxSandboxFailClosedTest, NoLandlockMeansNothingRuns) {
  EXPECT_EQ(WithoutSyscall(444 /* landlock_create_ruleset */, ENOSYS, "landlock"), 0);
}

TEST(LinuxSandboxFailClosedTest, NoUserNamespacesMeansNothingRuns) {
  EXPECT_EQ(WithoutSyscall(SCMP_SYS(unshare), EPERM, "user-namespace"), 0);
}

TEST(LinuxSandboxFailClosedTest, NoSeccompMeansNothingRuns) {
  EXPECT_EQ(WithoutSyscall(SCMP_SYS(seccomp), EINVAL, "seccomp"), 0);
}

TEST(SandboxLanguageTest, NamesAndAliases) {
  EXPECT_EQ(*ParseSandboxLanguage("JS"), SandboxLanguage::kJavaScript);
  EXPECT_EQ(*ParseSandboxLanguage("python3"), SandboxLanguage::kPython);
  EXPECT_EQ(*ParseSandboxLanguage("wat"), SandboxLanguage::kWasm);
  EXPECT_EQ(ParseSandboxLanguage("ruby").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SandboxLanguageName(SandboxLanguage::kWasm), "wasm");
}

}  // namespace
}  // namespace engram
