#include "core/redaction.h"

#include <string.h>  // memchr, memcmp

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace engram {
namespace {

constexpr std::string_view kMarkerOpen = "[REDACTED:";
constexpr size_t kMaxKeyChars = 64;        // longer "names" before '=' are not names
constexpr size_t kMaxValueBytes = 8192;    // a longer single value is not one credential
constexpr size_t kMaxAuthorityBytes = 512; // user:password@host of a URL

// When detections overlap, the lower priority keeps its kind: a GitHub token assigned to
// GITHUB_TOKEN is a github_token, not just a "token".
enum Priority : int {
  kPriorityPrivateKey = 0,
  kPriorityTyped = 1,
  kPriorityJwt = 2,
  kPriorityUrl = 3,
  kPriorityHeader = 4,
  kPriorityAssignment = 5,
  kPriorityNearWord = 6,
};

struct Hit {
  size_t begin;
  size_t end;
  std::string_view kind;
  int priority;
};

// ASCII classes; bytes of multi-byte UTF-8 characters are in none of them.
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }

// IsAlnum runs on every byte of every text: a table.
constexpr std::array<bool, 256> kAlnumTable = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  return t;
}();
bool IsAlnum(char c) { return kAlnumTable[static_cast<unsigned char>(c)]; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsB64Url(char c) { return IsAlnum(c) || c == '-' || c == '_'; }
bool IsB64(char c) { return IsAlnum(c) || c == '+' || c == '/'; }
bool IsTokenChar(char c) { return IsAlnum(c) || c == '_' || c == '-'; }
bool IsKeyChar(char c) { return IsAlnum(c) || c == '_' || c == '-' || c == '.'; }
// Characters of opaque credentials in headers and prose (RFC 6750 b64token plus '_' '.').
bool IsCredChar(char c) {
  return IsAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

// memchr for the first byte, then a compare: faster than glibc's generic memmem for the
// short anchors used here.
size_t FindLiteral(std::string_view text, std::string_view literal, size_t from) {
  if (literal.empty() || from > text.size() || literal.size() > text.size() - from) return std::string_view::npos;
  const char* data = text.data();
  const char* last = data + text.size() - literal.size();  // the last possible start
  const char* p = data + from;
  while (p <= last) {
    p = static_cast<const char*>(memchr(p, literal[0], static_cast<size_t>(last - p) + 1));
    if (p == nullptr) return std::string_view::npos;
    if (memcmp(p + 1, literal.data() + 1, literal.size() - 1) == 0) return static_cast<size_t>(p - data);
    ++p;
  }
  return std::string_view::npos;
}

bool At(std::string_view text, size_t pos, std::string_view literal) {
  return pos <= text.size() && text.substr(pos).starts_with(literal);
}

bool EqualsLower(std::string_view s, std::string_view lower_literal) {
  if (s.size() != lower_literal.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (Lower(s[i]) != lower_literal[i]) return false;
  }
  return true;
}

// Whether lower-cased `s` contains any of `lower_words`. Texts longer than 256 bytes are
// judged by their first 256.
template <size_t N>
bool ContainsAnyLower(std::string_view s, const std::string_view (&lower_words)[N]) {
  char buf[256];
  size_t n = std::min(s.size(), sizeof buf);
  for (size_t i = 0; i < n; ++i) buf[i] = Lower(s[i]);
  std::string_view lower(buf, n);
  for (std::string_view w : lower_words) {
    if (lower.find(w) != std::string_view::npos) return true;
  }
  return false;
}

// A fixed set of lower-case words, bucketed by first letter so that a lookup compares
// only a handful. Built once at first use; read-only afterwards.
class WordSet {
 public:
  template <size_t N>
  explicit WordSet(const std::string_view (&words)[N]) {
    for (std::string_view w : words) buckets_[static_cast<unsigned char>(w.front())].push_back(w);
  }
  // `word` must be lower case already unless `fold_case`.
  bool Contains(std::string_view word, bool fold_case = false) const {
    if (word.empty()) return false;
    for (std::string_view w : buckets_[static_cast<unsigned char>(fold_case ? Lower(word.front()) : word.front())]) {
      if (fold_case ? EqualsLower(word, w) : word == w) return true;
    }
    return false;
  }

 private:
  std::array<std::vector<std::string_view>, 256> buckets_;
};

struct Classes {
  bool upper = false, lower = false, digit = false, other = false;
  int count() const { return upper + lower + digit + other; }
};

Classes ClassesOf(std::string_view s) {
  static constexpr std::array<uint8_t, 256> kBits = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
      t[c] = (c >= 'A' && c <= 'Z') ? 1 : (c >= 'a' && c <= 'z') ? 2 : (c >= '0' && c <= '9') ? 4 : 8;
    }
    return t;
  }();
  uint8_t bits = 0;
  for (char ch : s) bits |= kBits[static_cast<unsigned char>(ch)];
  Classes c;
  c.upper = bits & 1;
  c.lower = bits & 2;
  c.digit = bits & 4;
  c.other = bits & 8;
  return c;
}

// c * log2(c) for small counts, so that Entropy takes no logarithm per character.
double CountLog2(uint32_t count) {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> t{};
    for (size_t c = 1; c < t.size(); ++c) t[c] = static_cast<double>(c) * std::log2(static_cast<double>(c));
    return t;
  }();
  return count < table.size() ? table[count] : count * std::log2(static_cast<double>(count));
}

// Shannon entropy of the bytes of `s`, in bits per byte:
// H = log2(n) - (1/n) * sum(c * log2(c)) over the count c of each distinct byte.
double Entropy(std::string_view s) {
  if (s.empty()) return 0;
  uint32_t counts[128] = {};
  for (char c : s) ++counts[static_cast<unsigned char>(c) & 0x7f];
  double sum = 0;
  for (uint32_t count : counts) sum += CountLog2(count);
  const double n = static_cast<double>(s.size());
  return std::log2(n) - sum / n;
}

// 8-4-4-4-12 hex digits.
bool IsUuidShape(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

// A random-looking credential: long enough, letters and digits mixed, not a word or an id.
bool LooksRandom(std::string_view s, size_t min_len) {
  if (s.size() < min_len) return false;
  Classes c = ClassesOf(s);
  if (!(c.upper || c.lower) || !c.digit) return false;
  if (IsUuidShape(s)) return false;
  // Random strings switch between upper case, lower case and digits often;
  // "base64url-encoded" does not.
  auto class_of = [](char c) { return IsUpper(c) ? 1 : IsLower(c) ? 2 : IsDigit(c) ? 3 : 0; };
  int switches = 0;
  for (size_t i = 1; i < s.size(); ++i) {
    int a = class_of(s[i - 1]), b = class_of(s[i]);
    if (a != 0 && b != 0 && a != b) ++switches;
  }
  if (switches < 3) return false;
  double needed = s.size() < 24 ? 3.0 : 3.3;
  return Entropy(s) >= needed;
}

// Standard or URL-safe base64, padding optional. nullopt if `s` is not base64.
std::optional<std::string> DecodeBase64(std::string_view s) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (IsUpper(c)) v = c - 'A';
    else if (IsLower(c)) v = c - 'a' + 26;
    else if (IsDigit(c)) v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// ---- values that are not secrets ------------------------------------------------------

// Words that stand for a value rather than being one: "password: required", "token: null".
bool IsPlaceholderWord(std::string_view v) {
  static constexpr std::string_view kWords[] = {
      "null",    "none",   "nil",    "true",     "false",    "yes",      "no",        "on",
      "off",     "undefined", "required", "optional", "string", "str",  "text",      "bool",
      "boolean", "int",    "integer", "number",  "any",      "object",   "env",       "redacted",
      "hidden",  "masked", "empty",  "unset",    "password", "secret",   "token",     "apikey",
      "api_key", "placeholder", "missing", "invalid", "expired", "revoked",
      "provided", "set",   "present", "absent",  "default",  "auto",     "nan",       "todo",
      "bearer",  "basic",  "digest",  "pass",     "passwd",   "pwd",      "pw"};
  static const WordSet* words = new WordSet(kWords);
  return words->Contains(v, /*fold_case=*/true);
}

// "${DB_PASSWORD}", "$TOKEN", "<your-token>", "{{ secrets.X }}", "%PASS%", "***", "xxxx",
// "[REDACTED:...]", "YOUR_API_KEY", "GITHUB_TOKEN" (an environment variable's name).
bool IsPlaceholder(std::string_view v) {
  if (v.empty()) return true;
  if (v.starts_with(kMarkerOpen) || v.starts_with("[REDACTED")) return true;
  char first = v.front();
  if (first == '$' || first == '<' || first == '{' || first == '%' || first == '!' || first == '&' ||
      first == '*' || first == '(' || first == '[' || first == ':') {
    return true;
  }
  if (v.size() >= 2 && v.starts_with("@")) return true;  // @file references (curl -d @creds)
  bool masked = true;
  for (char c : v) {
    if (c != '*' && c != 'x' && c != 'X' && c != '.' && c != '-' && c != '_' && c != '#' && c != '?') {
      masked = false;
      break;
    }
  }
  if (masked) return true;
  if (IsPlaceholderWord(v)) return true;
  if (v.size() >= 4 && EqualsLower(v.substr(0, 4), "your")) return true;
  // Templates: `test-token-${Date.now()}`, "{{ .Values.password }}".
  if (v.find("${") != std::string_view::npos || v.find("{{") != std::string_view::npos) return true;
  // Versions ("^6.0.0", "1.2.1") and small hex literals (0x02).
  std::string_view version = v;
  if (first == '^' || first == '~' || first == 'v') version.remove_prefix(1);
  if (!version.empty() && IsDigit(version.front()) && version.find('.') != std::string_view::npos &&
      std::all_of(version.begin(), version.end(), [](char c) { return IsDigit(c) || c == '.'; })) {
    return true;
  }
  if (v.size() <= 10 && v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X') &&
      std::all_of(v.begin() + 2, v.end(), IsHex)) {
    return true;
  }
  // Colours: "#cccccc".
  if (first == '#' && v.size() <= 9 && std::all_of(v.begin() + 1, v.end(), IsHex)) return true;
  // An environment variable's name: upper case, digits and underscores, with an
  // underscore or no digit at all (a real key such as ABCD1234EFGH5678 has digits).
  if (IsUpper(first)) {
    bool upper_name = true;
    bool underscore = false, digit = false;
    for (char c : v) {
      if (c == '_') underscore = true;
      else if (IsDigit(c)) digit = true;
      else if (!IsUpper(c)) {
        upper_name = false;
        break;
      }
    }
    if (upper_name && (underscore || !digit)) return true;
  }
  return false;
}

// An unquoted value that is code, not a literal: `os.environ["X"]`, `this.apiKey`,
// `getToken()`, `db_password`, `passwordInput`. After an environment-style name
// (`DB_PASSWORD=my_secret_pw`) a single word is a literal; only calls and dotted paths
// (`TOKEN: exports.TOKEN`) are code.
bool LooksLikeCodeReference(std::string_view v, char next, bool env_style) {
  if (next == '(' || next == '[') return true;
  if (v.empty() || !(IsAlpha(v.front()) || v.front() == '_')) return false;
  // `if password == stored: return`, `password: self`.
  static constexpr std::string_view kKeywords[] = {"return", "pass",  "continue", "break", "raise", "yield",
                                                   "await",  "not",   "self",     "this",  "new",   "function",
                                                   "lambda", "const", "let",      "var",   "def",   "fn",
                                                   "void"};
  for (std::string_view k : kKeywords) {
    if (v == k) return true;
  }
  bool dotted = false;
  bool identifier = true;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '.') {
      if (i + 1 >= v.size() || !(IsAlpha(v[i + 1]) || v[i + 1] == '_')) return false;
      dotted = true;
    } else if ((c == '?' || c == '!') && i + 1 < v.size() && v[i + 1] == '.') {
      // optional chaining and non-null assertions: extra._meta?.progressToken
    } else if (!IsAlnum(c) && c != '_') {
      identifier = false;
      break;
    }
  }
  if (!identifier) return false;
  if (dotted) return true;
  if (env_style) return false;
  // A name built of words, one of which is a secret word, names a variable.
  bool compound = v.find('_') != std::string_view::npos;
  for (size_t i = 1; i < v.size() && !compound; ++i) {
    if (IsLower(v[i - 1]) && IsUpper(v[i])) compound = true;
  }
  if (!compound) return false;
  static constexpr std::string_view kWords[] = {"pass", "secret", "token", "key", "auth", "cred", "pwd"};
  return ContainsAnyLower(v, kWords);
}

// ---- secret-looking names -------------------------------------------------------------

// The last word of a name, lower-cased into `buf` (kMaxKeyChars bytes): "hint" for
// "passwordHint", "file" for "DB_PASSWORD_FILE".
std::string_view LastWordLower(std::string_view name, char* buf) {
  size_t end = name.size();
  while (end > 0 && !IsAlnum(name[end - 1])) --end;
  size_t begin = end;
  while (begin > 0 && IsAlnum(name[begin - 1])) {
    // camelCase boundary: "Hint" in "passwordHint".
    if (IsUpper(name[begin - 1]) && begin - 1 > 0 && IsLower(name[begin - 2])) {
      --begin;
      break;
    }
    --begin;
  }
  size_t n = 0;
  for (size_t i = begin; i < end && n < kMaxKeyChars; ++i) buf[n++] = Lower(name[i]);
  return std::string_view(buf, n);
}

// Names about a secret rather than holding one: password_file, token_ttl, secretName.
bool IsDescriptorWord(std::string_view word) {
  static constexpr std::string_view kWords[] = {
      "name",     "names",    "file",      "files",    "path",       "dir",        "directory",
      "type",     "types",    "length",    "len",      "policy",     "policies",   "expiry",
      "expires",  "expiration", "expired", "ttl",      "lifetime",   "header",     "headers",
      "env",      "var",      "ref",       "arn",      "url",        "uri",        "endpoint",
      "count",    "hint",     "prompt",    "label",    "field",      "format",     "version",
      "required", "enabled",  "enable",    "disabled", "min",        "max",        "size",
      "provider", "manager",  "store",     "rotation", "algorithm",  "alg",        "mode",
      "reset",    "changed",  "updated",   "created",  "limit",      "timeout",    "source",
      "prefix",   "scope",    "scopes",    "kind",     "location",   "validity",   "strength",
      "input",    "placeholder", "description", "regex", "pattern",  "help",       "error",
      "message",  "status",   "valid",     "visible",  "usage",      "budget",     "bytes",
      "chars",    "index",    "offset",    "duration", "interval",   "age",        "at",
      "date",     "time",     "used",      "remaining", "refresh",   "flow",       "command",
      "cmd",      "class",    "module",    "mount",    "volume",     "backend",    "engine",
      "id",       "ids",      "hash",      "digest",   "exists",     "set",        "present",
      "check",    "mgr",      "handler",   "callback", "userdata",   "strategy",   "validator",
      "generator", "hasher",  "encoder"};
  static const WordSet* words = new WordSet(kWords);
  return words->Contains(word);
}

// The kind of secret a field named `name` holds, or empty if the name is not
// secret-looking. `with_authorization`: Authorization is a secret name (structured
// values); in free text the header detector owns it.
std::string_view SecretNameKind(std::string_view name, bool with_authorization) {
  while (!name.empty() && (name.front() == '-' || name.front() == '_' || name.front() == '.')) {
    name.remove_prefix(1);
  }
  if (name.empty() || name.size() > kMaxKeyChars) return {};
  char norm[kMaxKeyChars];
  size_t n = 0;
  for (char c : name) {
    if (IsAlnum(c)) norm[n++] = Lower(c);
  }
  std::string_view s(norm, n);
  if (s.size() < 2) return {};
  // Almost every name is rejected here: a secret name holds one of these fragments.
  bool candidate = s == "pw";
  for (size_t i = 0; i + 3 <= n && !candidate; ++i) {
    const char a = norm[i], b = norm[i + 1], c = norm[i + 2];
    switch (a) {
      case 'p': candidate = (b == 'a' && c == 's') || (b == 'w' && c == 'd'); break;
      case 'k': candidate = b == 'e' && c == 'y'; break;
      case 's': candidate = (b == 'e' && c == 'c') || (b == 'i' && c == 'g'); break;
      case 't': candidate = b == 'o' && c == 'k'; break;
      case 'a': candidate = b == 'u' && c == 't'; break;
      default: break;
    }
  }
  if (!candidate) return {};
  char last_buf[kMaxKeyChars];
  std::string_view last = LastWordLower(name, last_buf);
  if (s == "authorization" || s.ends_with("authorization")) {
    return with_authorization ? std::string_view("authorization") : std::string_view();
  }
  if (last == "auth") return "authorization";  // docker's "auth": "<base64 user:password>"
  bool descriptor = IsDescriptorWord(last);
  // "secret_id" (Vault AppRole) and "private_key_id" are secrets despite the last word.
  if (descriptor && !(last == "id" && (s.ends_with("secretid")))) return {};
  if (s.find("password") != std::string_view::npos || s.find("passwd") != std::string_view::npos ||
      s.find("passphrase") != std::string_view::npos) {
    return "password";
  }
  if (s == "pwd" || s == "oldpwd") return {};  // the shell's working directory
  if (s == "pass") return {};                   // Python's keyword, English's verb
  if (last == "pwd" || last == "pass" || s == "pw") return "password";
  if (s.find("privatekey") != std::string_view::npos) return "private_key";
  if (s.find("apikey") != std::string_view::npos) return "api_key";
  if (s.find("secret") != std::string_view::npos) return "secret";
  static constexpr std::string_view kSecretKeys[] = {"accesskey",  "accountkey", "signingkey",
                                                     "encryptionkey", "masterkey", "sessionkey",
                                                     "authkey",    "webhookkey", "licensekey"};
  for (std::string_view k : kSecretKeys) {
    if (s.find(k) != std::string_view::npos) return "secret";
  }
  if (s.ends_with("token")) return "token";
  if (s.ends_with("keydata")) return "private_key";  // kubeconfig client-key-data
  if (s == "sig") return "secret";                   // Azure SAS signatures
  return {};
}

// True for environment-style names (DB_PASSWORD, GITHUB_TOKEN): what follows them in
// .env files, `env` dumps and shell exports is a literal, never code.
bool IsEnvStyleName(std::string_view name) {
  bool upper = false;
  for (char c : name) {
    if (IsLower(c)) return false;
    if (IsUpper(c)) upper = true;
  }
  return upper;
}

bool IsIdentifierWithoutDigits(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    if (!IsAlpha(c) && c != '_') return false;
  }
  return true;
}

// Letters joined by '-' or '_' that include a secret word name a secret rather than being
// one: "myToken", "ietf-token", "my-secret", "apiKey".
bool NamesASecret(std::string_view v) {
  for (char c : v) {
    if (!IsAlpha(c) && c != '-' && c != '_') return false;
  }
  static constexpr std::string_view kWords[] = {"token", "secret", "key", "pass", "pwd", "auth", "cred"};
  return ContainsAnyLower(v, kWords);
}

bool IsPlainWord(std::string_view v) {
  for (char c : v) {
    if (!IsAlpha(c)) return false;
  }
  return true;
}

// Whether `v`, assigned to a name of `kind`, is a literal secret. `quoted`: it was in
// quotes (a strong sign it is a literal); `next`: the character after an unquoted value;
// `env_style`: the name is an environment variable's.
bool PlausibleSecretValue(std::string_view kind, std::string_view v, bool quoted, char next, bool env_style) {
  if (IsPlaceholder(v)) return false;
  bool password = kind == "password";
  // "myToken", "ietf-token"; for passwords only names of one ("passwd", "db_pass"), so
  // that a word such as "supersecret" still counts as a password.
  static constexpr std::string_view kPasswordWords[] = {"pass", "pwd"};
  if (NamesASecret(v) && (!password || ContainsAnyLower(v, kPasswordWords))) return false;
  if (!quoted) {
    if (LooksLikeCodeReference(v, next, env_style)) return false;
    if (password) return v.size() >= 3 && !(IsPlainWord(v) && v.size() < 6 && !env_style);
    if (v.size() < 8) return false;
    Classes c = ClassesOf(v);
    if (c.digit && !c.upper && !c.lower && !c.other) return v.size() >= 16;  // a number
    if (!env_style && !c.digit && !c.other) return false;  // an identifier: onLastEventIdUpdate
    return c.digit || v.size() >= 16 || c.count() >= 3;
  }
  // ` query text `: a closing quote and the next opening one, not a quoted literal.
  if (IsSpace(v.front()) || IsSpace(v.back())) return false;
  if (password) return true;
  if (v.size() < 6) return false;
  // "Bearer abc", "Basic dXNl...", "-----BEGIN PRIVATE KEY-----\n..."
  if (kind == "authorization" || kind == "private_key") return true;
  for (char c : v) {
    if (IsSpace(c)) return false;  // prose, not a credential
  }
  return true;
}

// ---- detectors ------------------------------------------------------------------------

// A token shape: a fixed prefix, then a body of characters `body_char` accepts.
struct Shape {
  std::string_view prefix;
  std::string_view kind;
  size_t min_body;
  size_t exact_body;  // 0: any length from min_body
  bool (*body_char)(char);
  bool redact_prefix = true;  // false: only the body goes (the webhook URL stays readable)
};

constexpr Shape kShapes[] = {
    {"AKIA", "aws_access_key_id", 16, 16, [](char c) { return IsUpper(c) || IsDigit(c); }},
    {"ASIA", "aws_access_key_id", 16, 16, [](char c) { return IsUpper(c) || IsDigit(c); }},
    {"ghp_", "github_token", 30, 0, IsAlnum},
    {"gho_", "github_token", 30, 0, IsAlnum},
    {"ghu_", "github_token", 30, 0, IsAlnum},
    {"ghs_", "github_token", 30, 0, IsAlnum},
    {"ghr_", "github_token", 30, 0, IsAlnum},
    {"github_pat_", "github_token", 40, 0, [](char c) { return IsAlnum(c) || c == '_'; }},
    {"glpat-", "gitlab_token", 20, 0, IsTokenChar},
    {"gldt-", "gitlab_token", 20, 0, IsTokenChar},
    {"glrt-", "gitlab_token", 20, 0, IsTokenChar},
    {"glptt-", "gitlab_token", 20, 0, IsTokenChar},
    {"xoxb-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xoxa-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xoxp-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xoxr-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xoxs-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xoxe-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"xapp-", "slack_token", 10, 0, [](char c) { return IsAlnum(c) || c == '-'; }},
    {"hooks.slack.com/services/", "slack_webhook", 20, 0,
     [](char c) { return IsAlnum(c) || c == '/' || c == '_'; }, false},
    {"sk_live_", "stripe_key", 16, 0, IsAlnum},
    {"rk_live_", "stripe_key", 16, 0, IsAlnum},
    {"sk_test_", "stripe_key", 16, 0, IsAlnum},
    {"rk_test_", "stripe_key", 16, 0, IsAlnum},
    {"whsec_", "stripe_key", 16, 0, IsAlnum},
    {"sk-ant-", "anthropic_key", 20, 0, IsTokenChar},
    {"AIza", "google_api_key", 35, 35, IsTokenChar},
    {"npm_", "npm_token", 36, 36, IsAlnum},
    {"pypi-AgEIcHlwaS5vcmc", "pypi_token", 30, 0, IsTokenChar},
    {"hf_", "huggingface_token", 30, 0, IsAlnum},
    {"dop_v1_", "digitalocean_token", 64, 64, IsHex},
    {"doo_v1_", "digitalocean_token", 64, 64, IsHex},
    {"shpat_", "shopify_token", 32, 32, IsHex},
    {"shpss_", "shopify_token", 32, 32, IsHex},
    {"hvs.", "vault_token", 24, 0, IsTokenChar},
    {"hvb.", "vault_token", 24, 0, IsTokenChar},
};

// One scan of one text, in two passes. Operators(): memchr over every '=' and ':'
// (assignments, and URLs with user info at "://"). WordStarts(): one walk over the starts
// of words (an ASCII letter or digit after anything else) that dispatches on the first
// byte to the typed tokens, JWTs, PEM and base64 PEM blocks, header schemes, flags and
// secret words. No lower-cased copy is made: words are compared case-insensitively where
// they are found. Not thread-safe: one Scanner per Find call.
class Scanner {
 public:
  Scanner(std::string_view text, const RedactionOptions& options) : text_(text), options_(options) {}

  std::vector<Hit> Run() {
    Operators();
    WordStarts();
    ExtraPrefixes();
    return std::move(hits_);
  }

 private:
  char CharAt(size_t i) const { return i < text_.size() ? text_[i] : '\0'; }
  char Before(size_t i) const { return i > 0 ? text_[i - 1] : '\0'; }
  bool AtLower(size_t pos, std::string_view lower_literal) const {
    return pos + lower_literal.size() <= text_.size() &&
           EqualsLower(text_.substr(pos, lower_literal.size()), lower_literal);
  }

  void Add(size_t begin, size_t end, std::string_view kind, int priority) {
    if (begin >= end) return;
    hits_.push_back(Hit{begin, end, kind, priority});
  }

  size_t Span(size_t from, bool (*pred)(char)) const {
    size_t i = from;
    while (i < text_.size() && pred(text_[i])) ++i;
    return i;
  }

  // -----BEGIN ... PRIVATE KEY----- through its END line (PEM, OpenSSH, PGP), also
  // inside JSON strings where the newlines are "\n". A block cut off before its END line
  // is redacted to the end of its base64 body.
  void TryPrivateKey(size_t pos) {
    if (!At(text_, pos, "-----BEGIN ")) return;
    size_t label_begin = pos + 11;
    size_t label_end = FindLiteral(text_, "-----", label_begin);
    if (label_end == std::string_view::npos || label_end - label_begin > 64) return;
    std::string_view label = text_.substr(label_begin, label_end - label_begin);
    if (label.find("PRIVATE KEY") == std::string_view::npos) return;  // certificates are public
    std::string end_line = "-----END " + std::string(label) + "-----";
    size_t end = FindLiteral(text_, end_line, label_end + 5);
    if (end != std::string_view::npos) {
      // A key has a body; two string constants (`BEGIN = "..."; END = "..."`) do not.
      size_t body = 0;
      for (size_t i = label_end + 5; i < end && body < 16; ++i) body += IsB64(text_[i]);
      if (body < 16) return;
      end += end_line.size();
    } else {
      end = label_end + 5;
      size_t body = 0;
      while (end < text_.size()) {
        char c = text_[end];
        if (IsB64(c) || c == '=' || IsSpace(c) || c == '\\' || c == ':' || c == ',' || c == '-') {
          body += IsB64(c);
          ++end;
        } else {
          break;
        }
      }
      if (body < 16) return;  // the header alone, e.g. a string literal in code
    }
    bool gcp = FindLiteral(text_, "service_account", 0) != std::string_view::npos ||
               FindLiteral(text_, "gserviceaccount.com", 0) != std::string_view::npos;
    Add(pos, end, gcp ? "gcp_service_account_key" : "private_key", kPriorityPrivateKey);
  }

  // The shapes by the first byte of their prefix. Built once; read-only afterwards.
  static const std::vector<const Shape*>* ShapesByFirstByte() {
    static const auto* table = [] {
      auto* t = new std::vector<const Shape*>[256];
      for (const Shape& shape : kShapes) t[static_cast<unsigned char>(shape.prefix.front())].push_back(&shape);
      return t;
    }();
    return table;
  }

  void TryShape(const Shape& shape, size_t pos) {
    if (text_.size() - pos < shape.prefix.size()) return;
    for (size_t k = 1; k < shape.prefix.size(); ++k) {
      if (text_[pos + k] != shape.prefix[k]) return;
    }
    size_t body = pos + shape.prefix.size();
    size_t end = Span(body, shape.body_char);
    size_t len = end - body;
    if (len < shape.min_body) return;
    if (shape.exact_body != 0) {
      if (len > shape.exact_body && IsAlnum(CharAt(body + shape.exact_body))) return;
      end = body + shape.exact_body;
    }
    Add(shape.redact_prefix ? pos : body, end, shape.kind, kPriorityTyped);
  }

  // Every detector that starts at the beginning of a word: ASCII letters and digits after
  // anything else. Tokens glued to a preceding letter or digit are not tokens.
  void WordStarts() {
    const std::vector<const Shape*>* shapes = ShapesByFirstByte();
    const size_t n = text_.size();
    size_t i = 0;
    while (i < n) {
      char c = text_[i];
      if (!IsAlnum(c)) {
        ++i;
        continue;
      }
      for (const Shape* shape : shapes[static_cast<unsigned char>(c)]) TryShape(*shape, i);
      if (i >= 2 && text_[i - 1] == '-' && text_[i - 2] == '-') TryFlag(i - 2);
      switch (Lower(c)) {
        case 'a':
          TryAuthorization(i);
          TryNearWord(i);
          break;
        case 'b':
          if (c == 'B' && i >= 5 && text_.substr(i - 5, 5) == "-----") TryPrivateKey(i - 5);
          TryBearer(i);
          TryBasic(i);
          break;
        case 'u':
          if (c == 'u') TryCurlUser(i);
          break;
        case 'e':
          if (c == 'e') TryJwt(i);
          break;
        case 'l':
          if (c == 'L') TryBase64PrivateKey(i);
          break;
        case 'k':
        case 'p':
        case 't':
          TryNearWord(i);
          break;
        case 's':
          if (c == 's') TryOpenAiKey(i);
          if (c == 'S') TrySendGridKey(i);
          TryNearWord(i);
          break;
        default:
          break;
      }
      while (i < n && IsAlnum(text_[i])) ++i;
    }
  }

  // A PEM private key, base64-encoded once more (kubeconfig client-key-data, Kubernetes
  // tls.key): "LS0tLS1CRUdJTi" is base64 for "-----BEGIN".
  void TryBase64PrivateKey(size_t pos) {
    if (!text_.substr(pos).starts_with("LS0tLS1CRUdJTi") || IsB64(Before(pos))) return;
    size_t end = Span(pos, [](char c) { return IsB64(c) || c == '='; });
    std::optional<std::string> head = DecodeBase64(text_.substr(pos, std::min<size_t>(end - pos, 80)));
    if (!head || head->find("PRIVATE KEY") == std::string::npos) return;
    Add(pos, end, "private_key", kPriorityPrivateKey);
  }

  // sk-[proj-|svcacct-|admin-]..., mixed case and digits (a bare "sk-learn" is a word).
  void TryOpenAiKey(size_t pos) {
    if (!text_.substr(pos).starts_with("sk-") || text_.substr(pos).starts_with("sk-ant-")) return;
    char b = Before(pos);
    if (b == '-' || b == '_') return;
    size_t end = Span(pos + 3, IsTokenChar);
    std::string_view body = text_.substr(pos + 3, end - pos - 3);
    if (body.size() < 20) return;
    Classes c = ClassesOf(body);
    if (!(c.digit && c.upper && c.lower)) return;
    Add(pos, end, "openai_key", kPriorityTyped);
  }

  // SG.<22>.<43>
  void TrySendGridKey(size_t pos) {
    if (!text_.substr(pos).starts_with("SG.")) return;
    size_t a = Span(pos + 3, IsTokenChar);
    if (a - (pos + 3) < 16 || CharAt(a) != '.') return;
    size_t b = Span(a + 1, IsTokenChar);
    if (b - (a + 1) < 30) return;
    Add(pos, b, "sendgrid_key", kPriorityTyped);
  }

  void ExtraPrefixes() {
    for (const ExtraSecretPrefix& extra : options_.extra_prefixes) {
      if (extra.prefix.empty()) continue;
      for (size_t pos = FindLiteral(text_, extra.prefix, 0); pos != std::string_view::npos;
           pos = FindLiteral(text_, extra.prefix, pos + 1)) {
        if (IsAlnum(Before(pos)) && IsAlnum(extra.prefix.front())) continue;
        size_t body = pos + extra.prefix.size();
        size_t end = Span(body, IsTokenChar);
        if (end - body < 8) continue;
        Add(pos, end, extra.kind, kPriorityTyped);
      }
    }
  }

  // header.payload.signature, base64url, both JSON parts starting "eyJ" ('{"').
  void TryJwt(size_t pos) {
    if (!text_.substr(pos).starts_with("eyJ") || IsB64Url(Before(pos))) return;
    size_t a = Span(pos, IsB64Url);
    if (a - pos < 10 || CharAt(a) != '.' || !At(text_, a + 1, "eyJ")) return;
    size_t b = Span(a + 1, IsB64Url);
    if (b - (a + 1) < 10 || CharAt(b) != '.') return;
    size_t end = Span(b + 1, IsB64Url);
    // JWE has five parts.
    while (CharAt(end) == '.' && IsB64Url(CharAt(end + 1))) end = Span(end + 1, IsB64Url);
    Add(pos, end, "jwt", kPriorityJwt);
  }

  // scheme://user:password@host — only the password goes.
  void TryUrlPassword(size_t pos) {
    if (!At(text_, pos, "://") || !IsAlnum(Before(pos))) return;
    size_t begin = pos + 3;
    size_t end = begin;
    while (end < text_.size() && end - begin < kMaxAuthorityBytes) {
      char c = text_[end];
      if (IsSpace(c) || c == '/' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '?' || c == '#' ||
          c == '\\' || c == '`') {
        break;
      }
      ++end;
    }
    std::string_view authority = text_.substr(begin, end - begin);
    size_t at = authority.rfind('@');
    if (at == std::string_view::npos) return;
    size_t colon = authority.substr(0, at).find(':');
    if (colon == std::string_view::npos) return;
    std::string_view password = authority.substr(colon + 1, at - colon - 1);
    if (IsPlaceholder(password)) return;
    Add(begin + colon + 1, begin + at, "url_password", kPriorityUrl);
  }

  // Authorization: <scheme> <credentials> (also Proxy-Authorization, and as a JSON key or
  // keyword argument). The scheme stays readable; the credentials go.
  void TryAuthorization(size_t pos) {
    if (!AtLower(pos, "authorization") || Before(pos) == '_') return;
    size_t p = pos + 13;
    if (CharAt(p) == '"' || CharAt(p) == '\'') {
      ++p;
    } else if (CharAt(p) == '\\' && CharAt(p + 1) == '"') {
      p += 2;
    }
    while (IsBlank(CharAt(p))) ++p;
    if (CharAt(p) != ':' && CharAt(p) != '=') return;
    ++p;
    while (IsBlank(CharAt(p))) ++p;
    char quote = '\0';
    if (CharAt(p) == '"' || CharAt(p) == '\'') {
      quote = CharAt(p++);
    } else if (CharAt(p) == '\\' && CharAt(p + 1) == '"') {
      quote = '\\';
      p += 2;
    }
    size_t scheme_begin = p;
    size_t scheme_end = Span(p, [](char c) { return IsAlnum(c) || c == '-'; });
    std::string lower_scheme;
    for (size_t i = scheme_begin; i < scheme_end && i - scheme_begin < 32; ++i) lower_scheme += Lower(text_[i]);
    std::string_view scheme = lower_scheme;
    std::string_view kind = "authorization";
    bool single_token = true;
    size_t cred = scheme_begin;
    if (IsBlank(CharAt(scheme_end)) && !scheme.empty()) {
      if (scheme == "bearer") {
        kind = "bearer_token";
      } else if (scheme == "basic") {
        kind = "basic_auth";
      } else if (scheme == "token" || scheme == "apikey" || scheme == "key" || scheme == "bot" ||
                 scheme == "sso-key" || scheme == "otp") {
      } else if (scheme == "digest" || scheme == "aws4-hmac-sha256" || scheme == "negotiate" ||
                 scheme == "ntlm" || scheme == "hoba" || scheme == "mutual" || scheme == "vapid" ||
                 scheme == "signature" || scheme == "hmac") {
        single_token = false;
      } else {
        scheme = {};
      }
      if (!scheme.empty()) {
        cred = scheme_end;
        while (IsBlank(CharAt(cred))) ++cred;
      }
    } else {
      scheme = {};
    }
    size_t end = cred;
    while (end < text_.size() && end - cred < kMaxValueBytes) {
      char c = text_[end];
      if (c == '\n' || c == '\r' || c == '\\') break;
      if (quote != '\0' && quote != '\\' && c == quote) break;
      if (single_token && (IsSpace(c) || c == '"' || c == '\'' || c == ',' || c == ';' || c == '`')) break;
      ++end;
    }
    std::string_view value = text_.substr(cred, end - cred);
    while (!value.empty() && IsSpace(value.back())) value.remove_suffix(1);
    if (IsPlaceholder(value) || NamesASecret(value)) return;
    if (scheme.empty() && !LooksRandom(value, 8)) return;
    if (!scheme.empty() && value.size() < 4) return;
    Add(cred, cred + value.size(), kind, kPriorityHeader);
  }

  // "Bearer <token>" and "Basic <base64 of user:password>" outside an Authorization header
  // (custom headers, logs, prose). Prose ("Basic usage", "bearer tokens") has no token.
  void TryBearer(size_t pos) {
    if (!AtLower(pos, "bearer ")) return;
    size_t begin = pos + 7;
    while (IsBlank(CharAt(begin))) ++begin;
    size_t end = Span(begin, IsCredChar);
    std::string_view token = text_.substr(begin, end - begin);
    if (token.size() < 16 || IsPlaceholder(token)) return;
    if (!ClassesOf(token).digit && !token.starts_with("eyJ")) return;
    Add(begin, end, "bearer_token", kPriorityHeader);
  }

  void TryBasic(size_t pos) {
    if (!AtLower(pos, "basic ")) return;
    size_t begin = pos + 6;
    while (IsBlank(CharAt(begin))) ++begin;
    size_t end = Span(begin, [](char c) { return IsB64(c) || c == '='; });
    std::string_view token = text_.substr(begin, end - begin);
    if (token.size() < 8) return;
    std::optional<std::string> decoded = DecodeBase64(token);
    if (!decoded || decoded->find(':') == std::string::npos) return;
    bool printable = std::all_of(decoded->begin(), decoded->end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (!printable) return;
    Add(begin, end, "basic_auth", kPriorityHeader);
  }

  // curl -u user:password, --user user:password; `pos` is at "u".
  void TryCurlUser(size_t pos) {
    if (pos < 2 || text_[pos - 1] != '-') return;
    size_t p;
    if (text_[pos - 2] == '-' && At(text_, pos, "user ")) {
      p = pos + 5;
    } else if (IsBlank(text_[pos - 2]) && At(text_, pos, "u ")) {
      p = pos + 2;
    } else {
      return;
    }
    while (IsBlank(CharAt(p))) ++p;
    char quote = (CharAt(p) == '"' || CharAt(p) == '\'') ? CharAt(p++) : '\0';
    size_t end = p;
    while (end < text_.size() && end - p < kMaxAuthorityBytes) {
      char c = text_[end];
      if (quote != '\0' ? (c == quote || c == '\n') : IsSpace(c) || c == '"' || c == '\'') break;
      ++end;
    }
    std::string_view value = text_.substr(p, end - p);
    size_t colon = value.find(':');
    if (colon == std::string_view::npos || colon == 0) return;
    std::string_view password = value.substr(colon + 1);
    if (IsPlaceholder(password)) return;
    Add(p + colon + 1, end, "password", kPriorityAssignment);
  }

  // A value after `name` `op`: quoted (', ", `, or \" inside JSON strings) or a bare run.
  struct Value {
    size_t begin = 0;
    size_t end = 0;
    bool quoted = false;
    char next = '\0';  // the character after a bare value
  };

  std::optional<Value> ValueAt(size_t p) const {
    while (IsBlank(CharAt(p))) ++p;
    if (p >= text_.size()) return std::nullopt;
    Value v;
    char c = text_[p];
    if (c == '"' || c == '\'' || c == '`') {
      v.quoted = true;
      v.begin = p + 1;
      size_t e = v.begin;
      while (e < text_.size() && e - v.begin < kMaxValueBytes) {
        char d = text_[e];
        if (d == c || d == '\n') break;
        if (d == '\\' && c != '\'') ++e;  // an escaped character is part of the value
        ++e;
      }
      if (CharAt(e) != c) return std::nullopt;  // unterminated: not a quoted literal
      v.end = e;
      return v;
    }
    if (c == '\\' && CharAt(p + 1) == '"') {  // {\"password\": \"hunter2\"} inside a JSON string
      v.quoted = true;
      v.begin = p + 2;
      size_t e = FindLiteral(text_, "\\\"", v.begin);
      if (e == std::string_view::npos || e - v.begin > kMaxValueBytes) return std::nullopt;
      size_t nl = text_.find('\n', v.begin);
      if (nl != std::string_view::npos && nl < e) return std::nullopt;
      v.end = e;
      return v;
    }
    // What ends a bare value: white space, quotes, separators, brackets.
    static constexpr std::array<bool, 256> kStop = [] {
      std::array<bool, 256> t{};
      for (unsigned char c : std::string_view(" \t\n\r\f\v\"'`,;&()[]{}<>|\\")) t[c] = true;
      return t;
    }();
    v.begin = p;
    size_t e = p;
    const size_t limit = std::min(text_.size(), p + kMaxValueBytes);
    while (e < limit && !kStop[static_cast<unsigned char>(text_[e])]) ++e;
    v.end = e;
    v.next = CharAt(e);
    return v;
  }

  // The name before the operator at `op`: `password=`, `"password": `, `\"password\":`,
  // `X-Api-Key:`, `--password=`.
  std::string_view NameBefore(size_t op) const {
    size_t j = op;
    while (j > 0 && IsBlank(text_[j - 1])) --j;
    if (j > 0 && (text_[j - 1] == '"' || text_[j - 1] == '\'')) {
      --j;
      if (j > 0 && text_[j - 1] == '\\') --j;
    }
    size_t end = j;
    while (j > 0 && end - j <= kMaxKeyChars && IsKeyChar(text_[j - 1])) --j;
    if (end - j > kMaxKeyChars) return {};
    return text_.substr(j, end - j);
  }

  // name = value, name: value, name := value, name => value for secret-looking names.
  // Every '=' and ':': assignments, and URLs with user info at "://".
  void Operators() {
    for (char op : {'=', ':'}) {
      const char* data = text_.data();
      const char* end = data + text_.size();
      for (const char* p = data; p < end; ++p) {
        p = static_cast<const char*>(memchr(p, op, static_cast<size_t>(end - p)));
        if (p == nullptr) break;
        size_t i = static_cast<size_t>(p - data);
        if (op == ':' && CharAt(i + 1) == '/' && CharAt(i + 2) == '/') {
          TryUrlPassword(i);
        } else {
          AssignmentAt(i);
        }
      }
    }
  }

  // The operator at `i` ('=' or ':'), if it assigns a value to a secret-looking name.
  void AssignmentAt(size_t i) {
    const char c = text_[i];
    size_t value_at = i + 1;
    if (c == ':') {
      if (CharAt(i + 1) == '/' || CharAt(i + 1) == ':' || Before(i) == ':') return;  // URLs, C++ scopes
      if (CharAt(i + 1) == '=') value_at = i + 2;
    } else {
      char b = Before(i);
      if (CharAt(i + 1) == '=' || b == '=' || b == '!' || b == '<' || b == '>' || b == '+' || b == '-' ||
          b == '*' || b == '/' || b == '|' || b == '&') {
        return;  // comparisons and compound assignments
      }
      if (CharAt(i + 1) == '>') value_at = i + 2;
    }
    std::string_view name = NameBefore(i);
    if (name.empty()) return;
    // https://user:password@host: the URL detector knows where the password ends.
    if (c == ':' && name.data() - text_.data() >= 3 && text_.substr(name.data() - text_.data() - 3, 3) == "://") {
      return;
    }
    std::string_view kind = SecretNameKind(name, /*with_authorization=*/false);
    if (kind.empty()) return;
    std::optional<Value> v = ValueAt(value_at);
    if (!v) return;
    std::string_view value = text_.substr(v->begin, v->end - v->begin);
    if (!PlausibleSecretValue(kind, value, v->quoted, v->next, IsEnvStyleName(name))) return;
    // "may hold a password: errors never..." is prose; YAML keys start their line.
    if (c == ':' && !v->quoted && !StartsEntry(name.data() - text_.data()) && IsPlainWord(value)) return;
    // `self.password = credentials`, `userid = passwd = acct`: code assigns variables.
    if (c == '=' && !v->quoted && IsBlank(Before(i)) && IsBlank(CharAt(i + 1)) && !IsEnvStyleName(name) &&
        IsIdentifierWithoutDigits(value)) {
      return;
    }
    Add(v->begin, v->end, kind, kPriorityAssignment);
  }

  // Whether the name at `pos` starts an entry: only blanks or "- " before it on its line,
  // or it follows '{', ',', '(' or '['.
  bool StartsEntry(size_t pos) const {
    size_t j = pos;
    while (j > 0 && (IsBlank(text_[j - 1]) || text_[j - 1] == '"' || text_[j - 1] == '\\' || text_[j - 1] == '\'')) --j;
    if (j == 0) return true;
    char b = text_[j - 1];
    if (b == '\n' || b == '\r' || b == '{' || b == ',' || b == '(' || b == '[') return true;
    if (b == '-' && (j < 2 || text_[j - 2] == '\n' || IsBlank(text_[j - 2]))) return true;
    return false;
  }


  // --password hunter2, --api-key "abc..." (the '=' form is an assignment).
  // `pos` is at "--".
  void TryFlag(size_t pos) {
    if (pos > 0 && !IsSpace(text_[pos - 1]) && text_[pos - 1] != '"' && text_[pos - 1] != '\'') return;
    size_t name_end = Span(pos + 2, [](char c) { return IsAlnum(c) || c == '-' || c == '_'; });
    if (name_end == pos + 2 || !IsBlank(CharAt(name_end))) return;
    std::string_view kind =
        SecretNameKind(text_.substr(pos + 2, name_end - pos - 2), /*with_authorization=*/false);
    if (kind.empty()) return;
    std::optional<Value> v = ValueAt(name_end);
    if (!v || text_[v->begin] == '-') return;
    std::string_view value = text_.substr(v->begin, v->end - v->begin);
    if (!PlausibleSecretValue(kind, value, v->quoted, v->next, /*env_style=*/false)) return;
    if (!v->quoted && IsPlainWord(value)) return;  // "the --password option"
    Add(v->begin, v->end, kind, kPriorityAssignment);
  }

  // A random-looking string right after a secret word in prose: "the API key is 8f3k...",
  // "token 9dK2...", "secret (rotated): Xy7...".
  void TryNearWord(size_t pos) {
    struct Word {
      std::string_view word;
      std::string_view kind;
    };
    static constexpr Word kWords[] = {
        {"password", "password"}, {"passwd", "password"}, {"passphrase", "password"}, {"secret", "secret"},
        {"token", "token"},       {"api key", "api_key"}, {"api-key", "api_key"},     {"apikey", "api_key"},
        {"api_key", "api_key"},   {"access key", "secret"}, {"private key", "private_key"}, {"key", "secret"}};
    // The tail of a name (GITHUB_TOKEN=, db_password:) is the assignment detector's.
    if (Before(pos) == '_') return;
    char first = Lower(text_[pos]);
    char second = Lower(CharAt(pos + 1));
    for (const Word& w : kWords) {
      if (w.word[0] != first || w.word[1] != second || !AtLower(pos, w.word)) continue;
      size_t p = pos + w.word.size();
      if (CharAt(p) == 's' || CharAt(p) == 'S') ++p;
      if (IsAlnum(CharAt(p)) || CharAt(p) == '_') continue;  // "tokenizer", "secret_key" (a name)
      p = SkipConnectors(p);
      size_t end = Span(p, [](char c) { return IsCredChar(c) && c != '='; });
      end = Span(end, [](char c) { return c == '='; });  // base64 padding
      while (end > p && (text_[end - 1] == '.' || text_[end - 1] == ',' || text_[end - 1] == '-')) --end;
      std::string_view candidate = text_.substr(p, end - p);
      if (candidate.empty() || candidate.size() > kMaxValueBytes || candidate.front() == '/' ||
          candidate.front() == '.') {
        continue;
      }
      // Passwords are shorter than keys: "machine x login deploy password Xk29vLq0".
      // A bare "key" is a common word: only a long random string after it counts, and
      // not after a public or database key ("public key AAAAC3...", "primary key id").
      size_t min_len = w.kind == "password" ? 8 : w.word == "key" ? 20 : 16;
      if (w.word == "key" && PrecededByWord(pos, {"public", "primary", "foreign", "partition", "sort", "host",
                                                  "ssh", "gpg", "pgp", "signing", "cache", "license"})) {
        continue;
      }
      if (!LooksRandom(candidate, min_len)) continue;
      if (LooksLikeCodeReference(candidate, CharAt(end), /*env_style=*/true)) continue;  // base64.b16encode(x)
      Add(p, end, w.kind, kPriorityNearWord);
    }
  }

  // Whether the word before `pos` (across one blank or '-') is one of `words`.
  bool PrecededByWord(size_t pos, std::initializer_list<std::string_view> words) const {
    size_t end = pos;
    while (end > 0 && (IsBlank(text_[end - 1]) || text_[end - 1] == '-' || text_[end - 1] == '_')) --end;
    size_t begin = end;
    while (begin > 0 && IsAlnum(text_[begin - 1])) --begin;
    std::string_view word = text_.substr(begin, end - begin);
    for (std::string_view w : words) {
      if (EqualsLower(word, w)) return true;
    }
    return false;
  }

  // Punctuation and small words between a secret word and its value.
  size_t SkipConnectors(size_t p) const {
    static constexpr std::string_view kConnectors[] = {"is", "was", "are", "of", "for", "to", "set", "value",
                                                       "key", "id", "as", "the", "my", "your", "new", "here",
                                                       "now", "used", "be", "with"};
    for (int round = 0; round < 4; ++round) {
      while (p < text_.size()) {
        char c = text_[p];
        if (IsBlank(c) || c == ':' || c == '=' || c == '"' || c == '\'' || c == '`' || c == '(' || c == ')' ||
            c == '>' || c == '-') {
          ++p;
        } else {
          break;
        }
      }
      size_t word_end = Span(p, IsAlpha);
      std::string_view word = text_.substr(p, word_end - p);
      bool connector = false;
      for (std::string_view k : kConnectors) {
        if (EqualsLower(word, k)) connector = true;
      }
      if (!connector || IsDigit(CharAt(word_end))) break;
      p = word_end;
    }
    return p;
  }

  std::string_view text_;
  const RedactionOptions& options_;
  std::vector<Hit> hits_;
};

// Offsets moved outwards to UTF-8 character boundaries.
void AlignToCharacters(std::string_view text, Hit& h) {
  while (h.begin > 0 && (static_cast<unsigned char>(text[h.begin]) & 0xC0) == 0x80) --h.begin;
  while (h.end < text.size() && (static_cast<unsigned char>(text[h.end]) & 0xC0) == 0x80) ++h.end;
}

}  // namespace

std::string RedactionMarker(std::string_view kind) {
  std::string marker(kMarkerOpen);
  marker += kind;
  marker += ']';
  return marker;
}

Redactor::Redactor(RedactionOptions options) : options_(std::move(options)) {}
Redactor::~Redactor() = default;

bool Redactor::Allowed(std::string_view secret) const {
  for (const std::string& allowed : options_.allow) {
    if (secret == allowed) return true;
  }
  return false;
}

std::vector<SecretFinding> Redactor::Find(std::string_view text) const {
  std::vector<SecretFinding> findings;
  if (text.size() < 6) return findings;
  std::vector<Hit> hits = Scanner(text, options_).Run();
  if (hits.empty()) return findings;
  for (Hit& h : hits) AlignToCharacters(text, h);
  if (!options_.allow.empty()) {
    std::erase_if(hits, [&](const Hit& h) { return Allowed(text.substr(h.begin, h.end - h.begin)); });
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.priority < b.priority;
  });
  int priority = 0;
  for (const Hit& h : hits) {
    if (!findings.empty() && h.begin < findings.back().end) {
      SecretFinding& last = findings.back();
      last.end = std::max(last.end, h.end);
      if (h.priority < priority) {
        last.kind = h.kind;
        priority = h.priority;
      }
      continue;
    }
    findings.push_back(SecretFinding{h.begin, h.end, h.kind});
    priority = h.priority;
  }
  return findings;
}

size_t Redactor::RedactInPlace(std::string& text, std::vector<SecretFinding>* findings_out) const {
  std::vector<SecretFinding> findings = Find(text);
  if (findings.empty()) {
    if (findings_out != nullptr) findings_out->clear();
    return 0;
  }
  std::string out;
  out.reserve(text.size() + findings.size() * 16);
  size_t pos = 0;
  for (const SecretFinding& f : findings) {
    out.append(text, pos, f.begin - pos);
    out += kMarkerOpen;
    out += f.kind;
    out += ']';
    pos = f.end;
  }
  out.append(text, pos, std::string::npos);
  text = std::move(out);
  size_t count = findings.size();
  if (findings_out != nullptr) *findings_out = std::move(findings);
  return count;
}

std::string Redactor::Redact(std::string_view text) const {
  std::string copy(text);
  RedactInPlace(copy);
  return copy;
}

std::optional<std::string_view> Redactor::KindOfNamedValue(std::string_view name, std::string_view value) const {
  std::string_view kind = SecretNameKind(name, /*with_authorization=*/true);
  if (kind.empty()) return std::nullopt;
  if (!PlausibleSecretValue(kind, value, /*quoted=*/true, '\0', /*env_style=*/false)) return std::nullopt;
  if (Allowed(value)) return std::nullopt;
  return kind;
}

std::unique_ptr<const Redactor> NewRedactor(RedactionOptions options) {
  if (!options.enabled) return nullptr;
  return std::make_unique<const Redactor>(std::move(options));
}

}  // namespace engram
