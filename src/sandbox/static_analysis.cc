#include "sandbox/static_analysis.h"

#include <cctype>
#include <cstring>
#include <string>
#include <vector>

namespace engram::sandbox {
namespace {

enum class TokenKind { kIdent, kPunct, kString, kNumber };

struct Token {
  TokenKind kind;
  std::string text;  // for strings: the contents without quotes (escapes left as written)
  int line;
};

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

// A lexer good enough for both languages: identifiers, numbers, single-character
// punctuation and string literals; comments are skipped. Regular-expression literals and
// f-string expressions are read as code, which can only add matches, never hide one.
std::vector<Token> Tokenize(std::string_view code, bool python) {
  std::vector<Token> tokens;
  int line = 1;
  size_t i = 0;
  const size_t n = code.size();
  while (i < n) {
    char c = code[i];
    if (c == '\n') {
      ++line;
      ++i;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (python && c == '#') {
      while (i < n && code[i] != '\n') ++i;
      continue;
    }
    if (!python && c == '/' && i + 1 < n && code[i + 1] == '/') {
      while (i < n && code[i] != '\n') ++i;
      continue;
    }
    if (!python && c == '/' && i + 1 < n && code[i + 1] == '*') {
      i += 2;
      while (i + 1 < n && !(code[i] == '*' && code[i + 1] == '/')) {
        if (code[i] == '\n') ++line;
        ++i;
      }
      i = i + 2 <= n ? i + 2 : n;
      continue;
    }
    // Python string prefixes (r, b, f, u and pairs) directly before a quote.
    if (python && IsIdentStart(c)) {
      size_t j = i;
      while (j < n && j - i < 2 && std::strchr("rRbBfFuU", code[j]) != nullptr) ++j;
      if (j > i && j < n && (code[j] == '"' || code[j] == '\'')) {
        i = j;
        c = code[i];
      }
    }
    if (c == '"' || c == '\'' || (!python && c == '`')) {
      char quote = c;
      bool triple = python && i + 2 < n && code[i + 1] == quote && code[i + 2] == quote;
      int start_line = line;
      i += triple ? 3 : 1;
      std::string text;
      while (i < n) {
        if (code[i] == '\\' && i + 1 < n) {
          text += code[i];
          text += code[i + 1];
          if (code[i + 1] == '\n') ++line;
          i += 2;
          continue;
        }
        if (triple ? (i + 2 < n && code[i] == quote && code[i + 1] == quote && code[i + 2] == quote)
                   : code[i] == quote) {
          i += triple ? 3 : 1;
          break;
        }
        if (code[i] == '\n') {
          ++line;
          if (!triple && quote != '`') {
            ++i;
            break;  // unterminated: the parser will complain; stop the literal here
          }
        }
        text += code[i++];
      }
      tokens.push_back({TokenKind::kString, std::move(text), start_line});
      continue;
    }
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < n && IsIdentChar(code[j])) ++j;
      tokens.push_back({TokenKind::kIdent, std::string(code.substr(i, j - i)), line});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < n && (IsIdentChar(code[j]) || code[j] == '.')) ++j;
      tokens.push_back({TokenKind::kNumber, std::string(code.substr(i, j - i)), line});
      i = j;
      continue;
    }
    tokens.push_back({TokenKind::kPunct, std::string(1, c), line});
    ++i;
  }
  return tokens;
}

// A sequence of tokens to look for. A pattern token may hold one '*' matching any run of
// identifier characters ("exec*", "set*id"). `bare`: the first token must not follow a
// '.' (so re.compile is not the builtin compile).
struct TokenRule {
  std::vector<std::string> tokens;
  bool bare;
  std::string reason;
  std::string not_followed_by = {};  // e.g. ":" so an object key named import passes
};

bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t star = pattern.find('*');
  if (star == std::string_view::npos) return pattern == text;
  std::string_view prefix = pattern.substr(0, star);
  std::string_view suffix = pattern.substr(star + 1);
  return text.size() >= prefix.size() + suffix.size() && text.starts_with(prefix) && text.ends_with(suffix);
}

std::string ShowTokens(const std::vector<std::string>& tokens) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    bool word = !t.empty() && IsIdentChar(t.front());
    bool prev_word = i > 0 && !tokens[i - 1].empty() && IsIdentChar(tokens[i - 1].back());
    if (word && prev_word) out += ' ';
    out += t;
  }
  return out;
}

const std::vector<TokenRule>& JavaScriptRules() {
  static const std::vector<TokenRule> kRules = {
      {{"require", "("}, true, "Node-style module loading (fs, child_process, net) is not available in the sandbox"},
      {{"import"}, true, "modules cannot be imported in the sandbox (no module loader, no network)", ":"},
      {{"process", ".", "env"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"process", ".", "binding"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"process", ".", "_linkedBinding"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"process", ".", "dlopen"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"process", ".", "mainModule"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"process", ".", "kill"}, true, "Node's process object (environment, bindings, exit) does not exist here"},
      {{"child_process"}, true, "spawning processes is not possible in the sandbox"},
      {{"Deno"}, true, "the Deno runtime API does not exist here"},
      {{"Bun"}, true, "the Bun runtime API does not exist here"},
      {{"Duktape", ".", "act"}, true, "engine internals (Duktape.act) are off limits"},
      {{"Duktape", ".", "info"}, true, "engine internals (Duktape.info) are off limits"},
      {{"eval"}, true, "dynamic code evaluation (eval) hides code from the sandbox's analysis"},
      {{"Function", "("}, true, "dynamic code evaluation (Function constructor) hides code from the sandbox's analysis"},
      {{".", "constructor", ".", "constructor"}, false,
       "reaching the Function constructor through .constructor.constructor is a known escape idiom"},
  };
  return kRules;
}

const std::vector<TokenRule>& PythonRules() {
  static const std::vector<TokenRule> kRules = [] {
    std::vector<TokenRule> rules;
    const std::string os_reason = "starts processes, changes identity or reads the host environment";
    for (const char* name : {"system", "popen", "exec*", "spawn*", "posix_spawn*", "fork", "forkpty", "kill", "killpg",
                             "set*id", "setgroups", "setsid", "setpgid", "chroot", "unshare", "setns", "environ",
                             "environb", "putenv", "pidfd_open"}) {
      rules.push_back({{"os", ".", name}, true, "os." + std::string(name) + " " + os_reason});
    }
    for (const char* name : {"__import__", "eval", "exec", "compile"}) {
      rules.push_back({{name}, true, std::string(name) + " runs code the sandbox's analysis cannot see"});
    }
    for (const char* name : {"__subclasses__", "__globals__", "__builtins__", "__code__", "__mro__", "__bases__"}) {
      rules.push_back({{name}, false,
                       std::string(name) + " is a known introspection escape (reaching objects the code was not given)"});
    }
    rules.push_back({{"sys", ".", "modules"}, true, "sys.modules reaches modules the code did not import"});
    rules.push_back({{"sys", ".", "_getframe"}, true, "sys._getframe is a known introspection escape"});
    return rules;
  }();
  return kRules;
}

struct ModuleRule {
  const char* module;
  const char* reason;
};

constexpr ModuleRule kPythonModules[] = {
    {"ctypes", "calls arbitrary C functions and syscalls"},
    {"cffi", "calls arbitrary C functions and syscalls"},
    {"subprocess", "starts processes"},
    {"multiprocessing", "starts processes"},
    {"pty", "starts processes on a pseudo-terminal"},
    {"posix", "is the raw system interface behind os"},
    {"resource", "changes resource limits"},
    {"socket", "opens network connections (there is no network in the sandbox)"},
    {"ssl", "opens network connections (there is no network in the sandbox)"},
    {"urllib", "opens network connections (there is no network in the sandbox)"},
    {"http", "opens network connections (there is no network in the sandbox)"},
    {"ftplib", "opens network connections (there is no network in the sandbox)"},
    {"smtplib", "opens network connections (there is no network in the sandbox)"},
    {"telnetlib", "opens network connections (there is no network in the sandbox)"},
    {"asyncio", "opens network connections and starts processes"},
    {"selectors", "waits on sockets (there is no network in the sandbox)"},
    {"mmap", "maps files and devices into memory"},
    {"fcntl", "issues raw file and device control calls"},
    {"importlib", "loads modules behind the analysis's back"},
    {"builtins", "reaches the unrestricted builtins"},
    {"gc", "is a known introspection escape (gc.get_objects, gc.get_referrers)"},
    {"inspect", "is a known introspection escape (frames and their globals)"},
};

// Prefixes of string literals that name places outside the scratch directory.
constexpr const char* kForbiddenPathPrefixes[] = {"/etc", "/proc", "/sys", "/dev", "/root", "/home", "/var",
                                                  "/boot", "/run", "~", "../", ".."};
constexpr const char* kForbiddenPathParts[] = {".ssh", "/../"};

// "\"/etc...\"" as the pattern shown for a path idiom (built by appending: g++ 12 warns
// falsely about literal + std::string here).
std::string PathPattern(const char* before, const char* path) {
  std::string out = "\"";
  out += before;
  out += path;
  out += "...\"";
  return out;
}

StaticFinding Finding(EscapeIdiom idiom, int line) {
  StaticFinding f;
  f.message = "line " + std::to_string(line) + ": " + idiom.pattern + " — " + idiom.reason;
  f.idiom = std::move(idiom);
  f.line = line;
  return f;
}

std::optional<StaticFinding> MatchTokenRules(const std::vector<Token>& tokens, const std::vector<TokenRule>& rules) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    for (const TokenRule& rule : rules) {
      if (i + rule.tokens.size() > tokens.size()) continue;
      if (rule.bare && i > 0 && tokens[i - 1].kind == TokenKind::kPunct && tokens[i - 1].text == ".") continue;
      // A definition of one's own function or class that happens to share the name.
      if (rule.bare && i > 0 && tokens[i - 1].kind == TokenKind::kIdent &&
          (tokens[i - 1].text == "def" || tokens[i - 1].text == "class" || tokens[i - 1].text == "function")) {
        continue;
      }
      bool match = true;
      for (size_t k = 0; k < rule.tokens.size() && match; ++k) {
        const Token& t = tokens[i + k];
        match = t.kind != TokenKind::kString && t.kind != TokenKind::kNumber && GlobMatch(rule.tokens[k], t.text);
      }
      size_t next = i + rule.tokens.size();
      if (match && !rule.not_followed_by.empty() && next < tokens.size() &&
          tokens[next].kind == TokenKind::kPunct && tokens[next].text == rule.not_followed_by) {
        match = false;
      }
      if (match) return Finding({ShowTokens(rule.tokens), rule.reason}, tokens[i].line);
    }
  }
  return std::nullopt;
}

const ModuleRule* FindModule(std::string_view name) {
  for (const ModuleRule& m : kPythonModules) {
    if (name == m.module) return &m;
  }
  return nullptr;
}

// import a.b, c as d / from a.b import x, y / from os import system
std::optional<StaticFinding> MatchPythonImports(const std::vector<Token>& tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.kind != TokenKind::kIdent || (t.text != "import" && t.text != "from")) continue;
    if (i > 0 && tokens[i - 1].text == ".") continue;
    // The statement's dotted names: identifiers on the same line that start a name.
    bool expect_name = true;
    bool after_import_in_from = false;
    std::string from_module;
    for (size_t j = i + 1; j < tokens.size() && tokens[j].line == t.line; ++j) {
      const Token& u = tokens[j];
      if (u.kind == TokenKind::kPunct) {
        if (u.text == ",") expect_name = true;
        if (u.text == "*" && after_import_in_from && (from_module == "os" || from_module == "posix")) {
          return Finding({"from " + from_module + " import *", "brings in os.system, fork and exec"}, t.line);
        }
        if (u.text == ";") break;
        continue;
      }
      if (u.kind != TokenKind::kIdent) break;
      if (u.text == "import" && t.text == "from") {
        after_import_in_from = true;
        expect_name = true;
        continue;
      }
      if (u.text == "as") {
        expect_name = false;
        continue;
      }
      if (!expect_name) continue;
      expect_name = false;
      if (after_import_in_from) {
        if (from_module == "os" || from_module == "posix") {
          for (const TokenRule& rule : PythonRules()) {
            if (rule.tokens.size() == 3 && rule.tokens[0] == "os" && GlobMatch(rule.tokens[2], u.text)) {
              return Finding({"from os import " + u.text, rule.reason}, t.line);
            }
          }
        }
        continue;
      }
      if (const ModuleRule* m = FindModule(u.text)) {
        return Finding({std::string(t.text == "from" ? "from " : "import ") + m->module,
                        std::string("the ") + m->module + " module " + m->reason},
                       t.line);
      }
      if (t.text == "from") from_module = u.text;
    }
  }
  return std::nullopt;
}

bool IsPathChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '/' || c == '~';
}

// Whether `text` holds a path starting with `prefix` ("/etc" in "cat /etc/passwd", not in
// "a/etc" or "/etcetera"): it begins the text or follows a non-path character, and ends
// there or continues with '/'.
bool ContainsPath(std::string_view text, std::string_view prefix) {
  for (size_t pos = text.find(prefix); pos != std::string_view::npos; pos = text.find(prefix, pos + 1)) {
    if (pos > 0 && IsPathChar(text[pos - 1])) continue;
    size_t end = pos + prefix.size();
    if (prefix.back() == '/' || end == text.size() || text[end] == '/') return true;
  }
  return false;
}

std::optional<StaticFinding> MatchPaths(const std::vector<Token>& tokens) {
  for (const Token& t : tokens) {
    if (t.kind != TokenKind::kString) continue;
    for (const char* prefix : kForbiddenPathPrefixes) {
      if (ContainsPath(t.text, prefix)) {
        return Finding({PathPattern("", prefix),
                        "names a place outside the scratch directory (only the current directory is accessible)"},
                       t.line);
      }
    }
    for (const char* part : kForbiddenPathParts) {
      if (t.text.find(part) != std::string::npos) {
        return Finding({PathPattern("...", part),
                        "names a place outside the scratch directory (only the current directory is accessible)"},
                       t.line);
      }
    }
  }
  return std::nullopt;
}

std::optional<StaticFinding> MatchWasm(std::string_view code) {
  // WAT text only; a base64 binary is checked by the runtime, which refuses any import
  // but the print functions.
  std::vector<Token> tokens = Tokenize(code, /*python=*/false);
  for (size_t i = 0; i + 2 < tokens.size(); ++i) {
    if (tokens[i].kind == TokenKind::kIdent && tokens[i].text == "import" && tokens[i + 1].kind == TokenKind::kString &&
        tokens[i + 2].kind == TokenKind::kString) {
      const std::string& module = tokens[i + 1].text;
      const std::string& name = tokens[i + 2].text;
      bool ok = module == "env" && (name == "print_i32" || name == "print_i64" || name == "print_f32" ||
                                    name == "print_f64");
      if (!ok) {
        return Finding({"(import \"" + module + "\" \"" + name + "\")",
                        "only the env print functions (print_i32, print_i64, print_f32, print_f64) may be imported"},
                       tokens[i].line);
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<EscapeIdiom> EscapeIdioms(SandboxLanguage language) {
  std::vector<EscapeIdiom> out;
  switch (language) {
    case SandboxLanguage::kJavaScript:
      for (const TokenRule& r : JavaScriptRules()) out.push_back({ShowTokens(r.tokens), r.reason});
      break;
    case SandboxLanguage::kPython:
      for (const ModuleRule& m : kPythonModules) {
        out.push_back({std::string("import ") + m.module, std::string("the ") + m.module + " module " + m.reason});
      }
      for (const TokenRule& r : PythonRules()) out.push_back({ShowTokens(r.tokens), r.reason});
      for (const char* p : kForbiddenPathPrefixes) {
        out.push_back({PathPattern("", p), "names a place outside the scratch directory"});
      }
      for (const char* p : kForbiddenPathParts) {
        out.push_back({PathPattern("...", p), "names a place outside the scratch directory"});
      }
      break;
    case SandboxLanguage::kWasm:
      out.push_back({"(import \"module\" \"name\")",
                     "only the env print functions (print_i32, print_i64, print_f32, print_f64) may be imported"});
      break;
  }
  return out;
}

std::optional<StaticFinding> FindEscapeIdiom(SandboxLanguage language, std::string_view code) {
  switch (language) {
    case SandboxLanguage::kJavaScript:
      return MatchTokenRules(Tokenize(code, false), JavaScriptRules());
    case SandboxLanguage::kPython: {
      std::vector<Token> tokens = Tokenize(code, true);
      // Report whichever comes first in the code.
      std::optional<StaticFinding> best;
      for (auto f : {MatchPythonImports(tokens), MatchTokenRules(tokens, PythonRules()), MatchPaths(tokens)}) {
        if (f.has_value() && (!best.has_value() || f->line < best->line)) best = std::move(f);
      }
      return best;
    }
    case SandboxLanguage::kWasm:
      return MatchWasm(code);
  }
  return std::nullopt;
}

}  // namespace engram::sandbox
