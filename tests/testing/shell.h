// Runs shell commands for the end-to-end tests that drive the built binaries.
#pragma once

#include <stdio.h>
#include <sys/wait.h>

#include <string>

namespace engram::testing {

// `s` quoted for /bin/sh.
inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct ShellResult {
  int exit_code = -1;  // -1 when the command did not exit normally
  std::string out;     // its stdout
};

// Runs `command` with /bin/sh and collects its stdout.
inline ShellResult RunShell(const std::string& command) {
  ShellResult r;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace engram::testing
