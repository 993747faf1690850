// Layer 5: every documented escape idiom is rejected with its reason, and ordinary code
// that merely resembles one is not.
#include "sandbox/static_analysis.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace engram::sandbox {
namespace {

using ::testing::HasSubstr;

std::string Rejected(SandboxLanguage language, const std::string& code) {
  std::optional<StaticFinding> f = FindEscapeIdiom(language, code);
  return f.has_value() ? f->message : "";
}

constexpr auto kJs = SandboxLanguage::kJavaScript;
constexpr auto kPy = SandboxLanguage::kPython;
constexpr auto kWasm = SandboxLanguage::kWasm;

TEST(StaticAnalysisTest, JavaScriptEscapeIdiomsAreRejected) {
  const char* cases[] = {
      "var fs = require('fs');",
      "require ('child_process').execSync('id')",
      "import fs from 'fs';",
      "import('fs').then(m => m)",
      "print(process.env.HOME)",
      "process.binding('spawn_sync')",
      "process.dlopen(module, '/tmp/x.so')",
      "Deno.readTextFile('/etc/passwd')",
      "Bun.spawn(['id'])",
      "var cp = child_process;",
      "Duktape.act(-1)",
      "Duktape.info(print)",
      "eval('1+1')",
      "(0, eval)('this')",
      "Function('return this')()",
      "new Function('return this')",
      "[].constructor.constructor('return this')()",
  };
  for (const char* code : cases) EXPECT_NE(Rejected(kJs, code), "") << code;
}

TEST(StaticAnalysisTest, JavaScriptLookalikesPass) {
  const char* cases[] = {
      "function process(data) { return data.length; } print(process([1,2]));",
      "var required = 3; print(required);",
      "// require('fs') in a comment\nprint(1)",
      "/* eval() */ print('require(x) in a string is just text')",
      "var o = {evaluate: 1}; print(o.evaluate);",
      "var m = {import: 1}; print(m.import);",
      "console.log(JSON.stringify({a: [1, 2]}));",
  };
  for (const char* code : cases) EXPECT_EQ(Rejected(kJs, code), "") << code;
}

TEST(StaticAnalysisTest, PythonEscapeIdiomsAreRejected) {
  const char* cases[] = {
      "import ctypes",
      "import os, subprocess",
      "from subprocess import run",
      "import socket as s",
      "import urllib.request",
      "from http.client import HTTPConnection",
      "import multiprocessing",
      "import importlib",
      "import os\nos.system('id')",
      "import os\nos.execv('/bin/sh', ['sh'])",
      "import os\nos.fork()",
      "import os\nos.setuid(0)",
      "import os\nprint(os.environ)",
      "from os import system",
      "from os import *",
      "__import__('os').system('id')",
      "eval('1')",
      "exec('print(1)')",
      "compile('1', 'x', 'eval')",
      "().__class__.__bases__[0].__subclasses__()",
      "f.__globals__['os']",
      "print(__builtins__)",
      "import sys\nsys.modules['os']",
      "open('/etc/shadow').read()",
      "open('/proc/self/environ')",
      "open(\"/root/.ssh/id_rsa\")",
      "open('~/.ssh/id_rsa')",
      "open('../../etc/passwd')",
      "open(r'/sys/kernel/notes', 'rb')",
      "x = '''\n/var/lib/engram'''",
  };
  for (const char* code : cases) EXPECT_NE(Rejected(kPy, code), "") << code;
}

TEST(StaticAnalysisTest, PythonLookalikesPass) {
  const char* cases[] = {
      "import re\nprint(re.compile('a+').match('aa'))",
      "import os\nprint(os.path.join('a', 'b'), os.getcwd(), os.listdir('.'))",
      "import json, math, statistics, collections\nprint(statistics.mean([1, 2, 3]))",
      "# import subprocess\nprint('eval is a word')",
      "open('data.txt', 'w').write('x')",
      "class A:\n    def exec(self): pass\nA().exec()",
      "x = 'etc/passwd is a fine string without the leading slash'",
  };
  for (const char* code : cases) EXPECT_EQ(Rejected(kPy, code), "") << code;
}

TEST(StaticAnalysisTest, FindingsNameTheLineAndTheReason) {
  std::optional<StaticFinding> f = FindEscapeIdiom(kPy, "x = 1\n\nimport subprocess\n");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->line, 3);
  EXPECT_THAT(f->message, HasSubstr("line 3: import subprocess"));
  EXPECT_THAT(f->message, HasSubstr("starts processes"));
  f = FindEscapeIdiom(kJs, "print(1);\nrequire('fs')");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->line, 2);
  EXPECT_THAT(f->message, HasSubstr("require("));
}

TEST(StaticAnalysisTest, WasmImportsOtherThanPrintAreRejected) {
  EXPECT_EQ(Rejected(kWasm, R"((module (import "env" "print_i32" (func $p (param i32)))))"), "");
  EXPECT_NE(Rejected(kWasm, R"((module (import "wasi_snapshot_preview1" "fd_write" (func))))"), "");
  EXPECT_NE(Rejected(kWasm, R"((module (import "env" "system" (func))))"), "");
}

TEST(StaticAnalysisTest, EveryLanguageDocumentsItsList) {
  for (SandboxLanguage l : {kJs, kPy, kWasm}) {
    std::vector<EscapeIdiom> idioms = EscapeIdioms(l);
    EXPECT_FALSE(idioms.empty());
    for (const EscapeIdiom& i : idioms) {
      EXPECT_FALSE(i.pattern.empty());
      EXPECT_FALSE(i.reason.empty());
    }
  }
}

}  // namespace
}  // namespace engram::sandbox
