// Shared by the sandbox tests: opens the Linux sandbox on the built helper, and reports a
// host that lacks a layer instead of passing.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "engram/sandbox.h"

namespace engram::testing {

inline SandboxOptions TestSandboxOptions() {
  SandboxOptions o;
  o.helper_path = ENGRAM_SANDBOX_HELPER;
  o.default_timeout = std::chrono::milliseconds(5000);
  o.max_timeout = std::chrono::milliseconds(10000);
  return o;
}

// Opens the sandbox; on a host where a layer is missing the test is skipped with the
// layer's name (a skip, never a pass).
#define ENGRAM_OPEN_SANDBOX_OR_SKIP(var, options)                                                    \
  std::unique_ptr<::engram::Sandbox> var;                                                         \
  {                                                                                               \
    auto opened_ = ::engram::OpenLinuxSandbox(options);                                           \
    ASSERT_TRUE(opened_.ok()) << opened_.status().ToString();                                     \
    var = std::move(*opened_);                                                                    \
    if (!var->Ready().ok()) GTEST_SKIP() << "this host cannot sandbox: " << var->Ready().message(); \
  }

inline bool HasViolation(const ExecutionResult& r, const std::string& kind, const std::string& detail_part = "") {
  for (const Violation& v : r.violations) {
    if (v.kind == kind && v.detail.find(detail_part) != std::string::npos) return true;
  }
  return false;
}

inline std::string Describe(const ExecutionResult& r) {
  std::string out = "exit_status=" + std::to_string(r.exit_status) + " duration_ms=" + std::to_string(r.duration_ms) +
                    "\nstdout: " + r.stdout_text.substr(0, 2000) + "\nstderr: " + r.stderr_text.substr(0, 2000) +
                    "\nviolations:";
  for (const Violation& v : r.violations) out += "\n  " + v.kind + ": " + v.detail;
  return out;
}

}  // namespace engram::testing
