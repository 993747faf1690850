#include "sandbox/runtime_paths.h"

#include <limits.h>
#include <stdlib.h>

#include <cstdio>

namespace engram::sandbox {

std::vector<std::string> PythonReadOnlyPaths(const std::string& python) {
  std::vector<std::string> paths;
  char resolved[PATH_MAX];
  std::string binary = realpath(python.c_str(), resolved) != nullptr ? std::string(resolved) : python;
  paths.push_back(binary);
  // /usr/bin/python3.11 → /usr/lib/python3.11
  size_t slash = binary.rfind('/');
  std::string name = binary.substr(slash + 1);
  std::string prefix = binary.substr(0, slash);  // /usr/bin
  size_t up = prefix.rfind('/');
  prefix = up == std::string::npos ? std::string() : prefix.substr(0, up);  // /usr
  if (name.starts_with("python3")) paths.push_back(prefix + "/lib/" + name);
  for (const char* p : {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                        "/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/etc/ld.so.cache", "/usr/lib/locale",
                        // glibc reads these at start-up (TZ=UTC, locale aliases): public data.
                        "/usr/share/zoneinfo", "/usr/share/locale/locale.alias", "/etc/locale.alias"}) {
    paths.emplace_back(p);
  }
  if (prefix != "/usr") paths.push_back(prefix + "/lib");
  return paths;
}

std::string PythonEntryEpilogue(const std::string& entry, const std::string& args_json) {
  // The JSON text travels as bytes escaped one by one, so no quoting can break out.
  std::string literal = "b'";
  for (unsigned char c : args_json.empty() ? std::string("[]") : args_json) {
    char buf[5];
    std::snprintf(buf, sizeof(buf), "\\x%02x", c);
    literal += buf;
  }
  literal += "'";
  return "\n\nimport json as _engram_json\n"
         "_engram_result = " + entry + "(*_engram_json.loads(" + literal + ".decode('utf-8')))\n"
         "if _engram_result is not None:\n"
         "    print(_engram_json.dumps(_engram_result))\n";
}

}  // namespace engram::sandbox
