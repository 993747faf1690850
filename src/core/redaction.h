// Redaction: finds secrets in free text — private key blocks, cloud access keys, provider
// tokens (GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic, ...), JWTs, credentials in
// Authorization headers and URLs, `KEY=value` / `"password": "..."` assignments for
// secret-looking names, and high-entropy strings next to words such as "token" — and
// replaces each with a typed marker, so stored memory still reads well and holds no secret:
//
//   std::unique_ptr<const Redactor> redactor = NewRedactor(RedactionOptions{});
//   std::string text = "export GITHUB_TOKEN=ghp_0123...";
//   redactor->RedactInPlace(text);  // "export GITHUB_TOKEN=[REDACTED:github_token]"
//
// Every detector is a hand-written scanner behind a cheap prefilter (no regular
// expressions): one memchr pass over '=' and ':' and one walk over word starts that
// dispatches on the first byte. A 4 KiB step output costs about 20 µs, 25-40 µs when it is
// dense with secrets (bench/redaction_bench.cc).
// Detectors favour recall: a look-alike that is redacted costs a word of memory, a secret
// that is kept may leak to every later session. Markers are never detected again, so
// redacting twice changes nothing.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace engram {

// What Memory does with a text holding a secret (config `redaction.mode`).
enum class RedactionMode {
  kRedact,  // replace each secret with [REDACTED:kind] and store the rest
  kReject,  // refuse the whole write with kInvalidArgument naming the field and the kind
};

// "redact", "reject". Inline: the config layer names modes without linking the core.
inline std::string_view RedactionModeName(RedactionMode mode) {
  return mode == RedactionMode::kReject ? "reject" : "redact";
}

// A user-defined token shape (config `redaction.extra_patterns`, "KIND:PREFIX"): `prefix`
// followed by at least 8 characters of [A-Za-z0-9_-], not preceded by a letter or digit,
// becomes [REDACTED:kind].
struct ExtraSecretPrefix {
  std::string kind;    // [a-z0-9_]+, e.g. "acme_key"
  std::string prefix;  // non-empty, e.g. "acme_live_"

  friend bool operator==(const ExtraSecretPrefix&, const ExtraSecretPrefix&) = default;
};

struct RedactionOptions {
  // Default true. false: NewRedactor returns nullptr and texts are stored as given.
  bool enabled = true;
  // Default kRedact.
  RedactionMode mode = RedactionMode::kRedact;
  // Exact secret texts that are never redacted, e.g. the example keys of a documentation
  // page the agent keeps reading. Default empty. An entry matches a detected secret's
  // whole text (the value, not the `KEY=` before it).
  std::vector<std::string> allow;
  // More token shapes on top of the built-in detectors. Default empty.
  std::vector<ExtraSecretPrefix> extra_prefixes;

  friend bool operator==(const RedactionOptions&, const RedactionOptions&) = default;
};

// One secret in a scanned text.
struct SecretFinding {
  size_t begin = 0;  // byte offsets into the scanned text: [begin, end)
  size_t end = 0;
  // "github_token", "password", ...: static storage, or owned by the Redactor that found it.
  std::string_view kind;
};

// Finds and replaces secrets. Holds only its immutable options. Thread-compatible: every
// method is const and may run concurrently.
class Redactor {
 public:
  explicit Redactor(RedactionOptions options);
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;
  ~Redactor();

  RedactionMode mode() const { return options_.mode; }

  // Every secret in `text`, ordered by position and non-overlapping (overlapping
  // detections are merged and keep the most specific kind). Offsets fall on UTF-8
  // character boundaries.
  std::vector<SecretFinding> Find(std::string_view text) const;

  // Replaces each secret in `text` with "[REDACTED:<kind>]" and returns how many there
  // were. With `findings` non-null, also returns them (offsets into the original text).
  size_t RedactInPlace(std::string& text, std::vector<SecretFinding>* findings = nullptr) const;
  std::string Redact(std::string_view text) const;

  // For structured values (JSON objects): the kind of secret `value` is when it is the
  // value of a field named `name` ("password", "client_secret", "Authorization", ...), or
  // nullopt when the name is not secret-looking or the value is a placeholder such as
  // "${DB_PASSWORD}", "<token>", "null" or "***". Does not look for secrets inside `value`:
  // use Find for that.
  std::optional<std::string_view> KindOfNamedValue(std::string_view name, std::string_view value) const;

 private:
  bool Allowed(std::string_view secret) const;

  const RedactionOptions options_;
};

// nullptr when `options.enabled` is false (Memory then stores texts as given).
std::unique_ptr<const Redactor> NewRedactor(RedactionOptions options);

// The marker that replaces a secret of `kind`: "[REDACTED:github_token]".
std::string RedactionMarker(std::string_view kind);

}  // namespace engram
