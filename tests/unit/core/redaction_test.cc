// The redactor: each detector with secrets it must find and look-alikes it must leave,
// the secrets corpus (tests/data/secrets) with its precision and recall, and Memory
// redacting (or refusing) every text before it reaches the store.
#include "core/redaction.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "config/config.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const Redactor& Default() {
  static const Redactor* redactor = new Redactor(RedactionOptions{});
  return *redactor;
}

std::string Redact(std::string_view text) { return Default().Redact(text); }

// Expects `secret`, embedded in `before` + secret + `after`, to become [REDACTED:kind]
// with the text around it unchanged.
void ExpectRedacted(const std::string& before, const std::string& secret, const std::string& after,
                    const std::string& kind) {
  std::string out = Redact(before + secret + after);
  EXPECT_EQ(out, before + "[REDACTED:" + kind + "]" + after) << "secret: " << secret;
}

void ExpectKept(const std::string& text) { EXPECT_EQ(Redact(text), text) << "look-alike was redacted"; }

// ---- detectors ------------------------------------------------------------------------

TEST(Redaction, PrivateKeyBlocks) {
  std::string pem =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qcDAfBqvzxUxUvt3hNPyT8gCBp\n"
      "-----END RSA PRIVATE KEY-----";
  ExpectRedacted("$ cat server.key\n", pem, "\n$ ", "private_key");
  ExpectRedacted("", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
                     "-----END OPENSSH PRIVATE KEY-----", "", "private_key");
  ExpectRedacted("", "-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\\n"
                     "-----END ENCRYPTED PRIVATE KEY-----", "\\n\"", "private_key");
  ExpectRedacted("", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF4aRkIBCADQ4s7fX2m9\n-----END PGP PRIVATE KEY BLOCK-----",
                 "", "private_key");
  // Cut off before its END line: the body goes to its end.
  ExpectRedacted("head -c 100 key.pem\n", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtL\n",
                 "$ next", "private_key");
  // Public material is not secret.
  ExpectKept("-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----");
  ExpectKept("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0Z3V\n-----END PUBLIC KEY-----");
  ExpectKept("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOBabZk+vwBPNZvQV+rOvjKrackvSKvxlw2MbRcrWb0 runner@ci");
  ExpectKept("grep -- '-----BEGIN' *.pem finds nothing");
}

TEST(Redaction, GcpServiceAccountJson) {
  std::string json =
      "{\"type\": \"service_account\", \"project_id\": \"orders-4821\", \"private_key\": \"-----BEGIN PRIVATE "
      "KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n\", \"client_email\": "
      "\"deploy@orders-4821.iam.gserviceaccount.com\"}";
  std::string out = Redact(json);
  EXPECT_THAT(out, HasSubstr("\"private_key\": \"[REDACTED:gcp_service_account_key]\""));
  EXPECT_THAT(out, HasSubstr("deploy@orders-4821.iam.gserviceaccount.com"));
  EXPECT_THAT(out, Not(HasSubstr("MIIEvQ")));
  EXPECT_FALSE(nlohmann::json::parse(out, nullptr, false).is_discarded()) << "still JSON: " << out;
}

TEST(Redaction, CloudAccessKeys) {
  ExpectRedacted("aws_access_key_id = ", "AKIA32IMZBGMWXHVME6G", "\n", "aws_access_key_id");
  ExpectRedacted("\"AccessKeyId\": \"", "ASIABC6JMLHNLKSGDI5E", "\"", "aws_access_key_id");
  ExpectRedacted("AWS_SECRET_ACCESS_KEY=", "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", "\n", "secret");
  ExpectRedacted("\"SecretAccessKey\": \"", "mPY72T3AVbfzx06UVZyvmbPkZyRHJouZrQV3xZAx", "\",", "secret");
  ExpectRedacted("key=", "AIzajRM8mbTgDIMRBZxjX_BpYconEG4ZgzWbmHG", "&q=x", "google_api_key");
  // An IAM role id, an ARN and a word that starts like a key are not keys.
  ExpectKept("AROA3XFRBF535PLBIFPI4 arn:aws:iam::123456789012:role/deploy");
  ExpectKept("AKIAS is not a key, nor is AKIA123");
  ExpectKept("BAKIA32IMZBGMWXHVME6G");
}

TEST(Redaction, ProviderTokens) {
  ExpectRedacted("token: ", "ghp_C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz9CP", "", "github_token");
  ExpectRedacted("", "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",
                 " expires", "github_token");
  ExpectRedacted("https://oauth2:", "glpat-rXxtNDFyuzX9k1gnneGE", "@gitlab.com/x.git", "gitlab_token");
  ExpectRedacted("SLACK=", "xoxb-646974821237-8991433014673-dclsxHKifxi5CvQUSHL8iLc7", "", "slack_token");
  ExpectRedacted("https://hooks.slack.com/services/", "T4WNVV5IE/BH2N21QYJ/xjP1MusJWV06lBPxLgD4ufIf", " ok",
                 "slack_webhook");
  ExpectRedacted("stripe.api_key = '", "sk_live_zQqmOBZZW6m4nyoL6uniiFw1", "'", "stripe_key");
  ExpectRedacted("", "rk_live_52cTe8r0khCEr7n1AyOHFRuT", "", "stripe_key");
  ExpectRedacted("OPENAI_API_KEY=", "sk-proj-Z6ydIEsgo5nVjzz8Gwb8ewCISuYCl0Xq56zaWR7PAmpBFXlN", "", "openai_key");
  ExpectRedacted("key ", "sk-IY7uq6T2bwGfcCvJAXrF6bnZ3eBZclIvRY6iEjH5UH1RSC84", ".", "openai_key");
  ExpectRedacted("x-api-key: ", "sk-ant-api03-_lC4LvGNWAMsI_z0oaWdfZp-lvi60ZIF8_qR38Ony1dHqceytDbKPTF_n_pGz3cW0uA",
                 "", "anthropic_key");
  ExpectRedacted("", "npm_r5vJIGA9HK2gOCZPeJMQW9cy78kyEk2FINMd", "", "npm_token");
  ExpectRedacted("", "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", "", "huggingface_token");
  ExpectRedacted("", "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", "", "sendgrid_key");
  // Look-alikes: masked keys, words, identifiers.
  ExpectKept("Invalid API Key provided: sk_live_****************FRuT");
  ExpectKept("pip install scikit-learn; import sk-learn-extra; the task-list-component-name-here");
  ExpectKept("ghp_short and gho_ alone, xoxb- without a body, hf_hub_download(repo_id)");
  ExpectKept("disk_test_results_2024_final_version_b");
}

TEST(Redaction, Jwts) {
  std::string jwt =
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
  ExpectRedacted("id_token=", jwt, "&state=af0ifjsldkj", "jwt");
  ExpectRedacted("cookie session ", jwt, "", "jwt");
  // Unsigned (alg none) tokens end with a dot.
  ExpectRedacted("", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.", " accepted", "jwt");
  // Base64 JSON without the three parts is not a JWT.
  ExpectKept("payload eyJ1c2VyIjoiZGFuYSIsInJvbGUiOiJ2aWV3ZXIifQ decoded");
  ExpectKept("version eyJ.1.2");
}

TEST(Redaction, AuthorizationHeaders) {
  ExpectRedacted("Authorization: Bearer ", "abc123def456ghi789", "\r\n", "bearer_token");
  ExpectRedacted("curl -H 'authorization: bearer ", "tok_9f8e7d6c5b4a", "' https://x", "bearer_token");
  ExpectRedacted("> Authorization: Basic ", "ZGVwbG95OnRZSWZ2ZnJWZzV1ZmJP", "\n", "basic_auth");
  ExpectRedacted("Authorization: token ", "0123456789abcdef0123", "\n", "authorization");
  ExpectRedacted("Proxy-Authorization: ", "Xk29vLq0pZr7Tn1", "\n", "authorization");
  ExpectRedacted("{\"Authorization\": \"Bearer ", "tok_9f8e7d6c5b4a", "\"}", "bearer_token");
  ExpectRedacted("Authorization: Digest ", "username=\"u\", realm=\"r\", response=\"6629fae49393a05397450978507c4ef1\"",
                 "\n", "authorization");
  ExpectRedacted("X-Forwarded-Auth: Bearer ", "eyJhbGciOiJIUzI1NiJ9xQ29tcGxl", " ", "bearer_token");
  ExpectRedacted("using Basic ", "Y2ktYm90OlBqZ1YwUEJwVG9GVw==", " for jenkins", "basic_auth");
  // Placeholders and prose.
  ExpectKept("curl -H \"Authorization: Bearer $GITHUB_TOKEN\" -H 'Authorization: Bearer ${TOKEN}'");
  ExpectKept("Authorization: Bearer <token>\nAuthorization: required\nthe Authorization header is missing");
  ExpectKept("headers = {\"Authorization\": f\"Bearer {token}\"}");
  ExpectKept("www-authenticate: Bearer realm=\"api\", error=\"invalid_token\"");
  ExpectKept("Basic usage: run make. Bearer tokens are described in RFC 6750. Basic authentication too.");
  ExpectKept("Basic Authentication is configured");  // base64-valid word, but no user:password inside
}

TEST(Redaction, UrlPasswords) {
  ExpectRedacted("postgres://app:", "s3cr3tP4ss", "@db:5432/orders", "url_password");
  ExpectRedacted("redis://:", "f8Kq2LmZ0pWx", "@cache:6379/0", "url_password");
  ExpectRedacted("jdbc:mysql://reporting:", "Rp-7734@xQ", "@mysql.internal:3306/r", "url_password");
  ExpectRedacted("git clone https://x-access-token:", "ghs_71fTquWoGsbeKXgzg2sye9b2Rann76dEyTzA",
                 "@github.com/acme/orders.git", "github_token");
  ExpectKept("http://localhost:8080/path?x=1 https://user@host/repo git@github.com:acme/orders.git");
  ExpectKept("http://[::1]:8765/mcp and mongodb://db:27017 and https://user:@host and https://u:${PASS}@h");
  ExpectKept("https://dfe9029629fa947bab3ae8e9ea7c72bb@o12345.ingest.sentry.io/67890");
}

TEST(Redaction, SecretNamedAssignments) {
  ExpectRedacted("DB_PASSWORD=", "correct-horse-battery-staple", "\n", "password");
  ExpectRedacted("export PGPASSWORD=", "hunter22", "; psql", "password");
  ExpectRedacted("{\"password\": \"", "hunter2", "\"}", "password");
  ExpectRedacted("{\\\"password\\\":\\\"", "hunter2", "\\\"}", "password");  // JSON inside a JSON string
  ExpectRedacted("password: '", "s3cr3t pass", "'", "password");
  ExpectRedacted("client_secret    = \"", "8Q~xYz.Ab3dEf5gHi7jKl9mNo1pQr3sTu5vWx7yZ", "\"", "secret");
  ExpectRedacted("X-Api-Key: ", "bxRzLyYmVKxZyIj1LKllfWD4", "\n", "api_key");
  ExpectRedacted("apiKey: \"", "k_8f3b2a9c7d", "\",", "api_key");
  ExpectRedacted("access_token=", "Zx81Lq0vWm2Pk7Tn4Rs9Yb6C", "&page=2", "token");
  ExpectRedacted("Server=sql;User Id=u;Password=", "Az9!kLm2Qw", ";", "password");
  ExpectRedacted("AccountKey=", "MDYyajBpZndyTlRIZzRFU0RmOVZMSTJH", ";EndpointSuffix=core", "secret");
  ExpectRedacted("  \"auth\": \"", "ZGVwbG95OnRZSWZ2ZnJWZzV1ZmJP", "\"", "authorization");
  ExpectRedacted("mysql --password ", "Wq8vL2mZt4", " orders", "password");
  ExpectRedacted("curl -u deploy:", "tYIfvfrVg5ufbO", " https://registry", "password");
  ExpectRedacted("secret_id := \"", "6a1c9e2f-3b4d-4e8f-9a0b", "\"", "secret");
  // Names about secrets, code and placeholders.
  ExpectKept("password_policy=strong token_ttl=900 secret_name=orders-signing DB_PASSWORD_FILE=/run/secrets/db");
  ExpectKept("MAX_TOKENS=4096 max_tokens: 4096 tokens_used=1873 TOKENIZERS_PARALLELISM=false token_count: 3");
  ExpectKept("password = request.form[\"password\"]\ntoken = issue_token(user)\nsecret = os.environ[\"S\"]");
  ExpectKept("const apiKey = process.env.API_KEY; const c = { apiKey: this.apiKey, password: passwordInput };");
  ExpectKept("password := os.Getenv(\"DB_PASSWORD\")\nClient(api_key=api_key)\nif (token === undefined)");
  ExpectKept("interface C { password: string; token?: string }");
  ExpectKept("password=*** PASSWORD=${DB_PASSWORD} password: <%= ENV[\"X\"] %> API_KEY=<your-api-key> token=null");
  ExpectKept("SESSION_SECRET=SESSION_SECRET_VALUE password: required secret: true");
  ExpectKept("(using password: YES) password authentication failed for user \"orders\"");
  ExpectKept("if password == stored_password: return token != None");
}

TEST(Redaction, HighEntropyNextToSecretWords) {
  ExpectRedacted("The new API key is ", "7Hq2mZ9xR4kL8pW3vN6tB1yC", " — store it.", "api_key");
  ExpectRedacted("Use the secret ", "RDV9Y1hPCa3yTTEpsKhDXa22ZUn5NjsO", " for staging", "secret");
  ExpectRedacted("posting with token ", "a7F3k9Q2m8Z4x1L6p0W5", "\n", "token");
  // Low-entropy words, ids, hashes and paths after the same words stay.
  ExpectKept("Rotate the signing secret and add token refresh. Token count: 1873. The secret sauce is caching.");
  ExpectKept("token rotation landed in 3f786850e387550fdab836ed7e6dc881de23001b");
  ExpectKept("src/auth/token.rs | 42 ++++ and secret/data/orders/signing");
  ExpectKept("password-reset-flow merged; secrets_manager_v2 enabled");
}

TEST(Redaction, LookAlikesSurvive) {
  ExpectKept("commit 3f786850e387550fdab836ed7e6dc881de23001b\nAuthor: Dana <dana@example.com>");
  ExpectKept("request_id=7d9f0e2a-41c3-4b8e-9a6d-2f5c8e1b3a70 episode 0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d");
  ExpectKept("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  ExpectKept(
      "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAGXRFWHRTb2Z0d2FyZQBBZG9iZSBJbWFnZVJl"
      "YWR5ccllPAAAAGFJREFUeNpi/P//PwMlgImBQjDwBrCgCzAyMmIV//+fAZ8DGBgQCgYwMjGhG4DNEFxOwm4AHxcJcPxBvOAYBqBrgwwY");
  ExpectKept("The login handler compares the submitted password against the stored bcrypt hash, then issues a "
             "session token. Tokens expire after 15 minutes.");
  ExpectKept("test result: ok. 48 passed; 0 failed; finished in 2.31s\nerror[E0308]: mismatched types");
  ExpectKept("std::string token; auto key = map::find(x); a := b; x == y; k => v");
}

// Found by running the redactor over ~70 MB of real documentation and source code
// (node_modules, /usr/share/doc, the Python standard library): code and prose, not secrets.
TEST(Redaction, RealWorldCodeAndDocsSurvive) {
  ExpectKept("self.user, self.password = credentials\nself.passwd = passwd\nuserid = passwd = acct = ''");
  ExpectKept("let userPass = void 0; const progressToken = extra._meta?.progressToken;");
  ExpectKept("resumptionToken: notificationsToolLastEventId, onresumptiontoken: onLastEventIdUpdate");
  ExpectKept("IETFToken = \"ietf-token\", XToken = \"x-token\", clientSecret: 'my-secret'");
  ExpectKept("Token:                     \"#cccccc\", USERNAME_PASSWORD: 0x02, \"pbkdf2-password\": \"1.2.1\"");
  ExpectKept("_SK_START = b\"-----BEGIN OPENSSH PRIVATE KEY-----\"\n_SK_END = b\"-----END OPENSSH PRIVATE KEY-----\"");
  ExpectKept("if (pkcs8.indexOf(\"-----BEGIN PRIVATE KEY-----\") !== 0) throw new TypeError()");
  ExpectKept("via the --username and --password options instead; :type passphrase: :py:data:`bytes`");
  ExpectKept("AKP JWK \"priv\" (Private Key): base64url-encoded private key; password = base64.b16encode(x)");
  ExpectKept("`password=` query parameter replaced by \"********\", for `config show`");
  ExpectKept("// The value may hold a password: errors never repeat it.");
  ExpectKept("{token:`test-token-${Date.now()}`,scopes:[]} \"@octokit/auth-token\": \"^6.0.0\"");
  ExpectKept("Authorization: 'Bearer myToken' and default_token='Bearer'");
  ExpectKept("PWD=/home/runner/work/orders OLDPWD=/home/runner");
}

TEST(Redaction, MarkersAreStableAndTextStaysUtf8) {
  std::string text = "naïve café — GITHUB_TOKEN=ghp_C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz9CP ✓ password: \"pässwörd\"";
  std::string once = Redact(text);
  EXPECT_EQ(once, "naïve café — GITHUB_TOKEN=[REDACTED:github_token] ✓ password: \"[REDACTED:password]\"");
  EXPECT_EQ(Redact(once), once) << "redacting twice changes nothing";
  EXPECT_TRUE(Default().Find(once).empty());
  // Offsets from Find index the original text.
  std::vector<SecretFinding> found = Default().Find(text);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(text.substr(found[0].begin, found[0].end - found[0].begin), "ghp_C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz9CP");
  EXPECT_EQ(found[0].kind, "github_token");
  EXPECT_TRUE(Default().Find("").empty());
  EXPECT_EQ(Redact("short"), "short");
}

TEST(Redaction, AllowListAndExtraPatterns) {
  RedactionOptions options;
  options.allow = {"AKIAIOSFODNN7EXAMPLE"};
  options.extra_prefixes = {{"acme_key", "acme_live_"}};
  Redactor redactor(options);
  EXPECT_EQ(redactor.Redact("docs say AKIAIOSFODNN7EXAMPLE; mine is AKIA32IMZBGMWXHVME6G"),
            "docs say AKIAIOSFODNN7EXAMPLE; mine is [REDACTED:aws_access_key_id]");
  EXPECT_EQ(redactor.Redact("ACME=acme_live_Zq81xP0v and acme_live_x"), "ACME=[REDACTED:acme_key] and acme_live_x");
  EXPECT_EQ(Redact("acme_live_Zq81xP0v"), "acme_live_Zq81xP0v") << "extra shapes are per redactor";
  EXPECT_EQ(NewRedactor(RedactionOptions{.enabled = false}), nullptr);
}

TEST(Redaction, NamedValues) {
  const Redactor& r = Default();
  EXPECT_EQ(r.KindOfNamedValue("password", "hunter2"), "password");
  EXPECT_EQ(r.KindOfNamedValue("client_secret", "8Q~xYz.Ab3dEf5"), "secret");
  EXPECT_EQ(r.KindOfNamedValue("Authorization", "Bearer abc123"), "authorization");
  EXPECT_EQ(r.KindOfNamedValue("X-Api-Key", "k_8f3b2a9c7d"), "api_key");
  EXPECT_EQ(r.KindOfNamedValue("password", "${DB_PASSWORD}"), std::nullopt);
  EXPECT_EQ(r.KindOfNamedValue("password", ""), std::nullopt);
  EXPECT_EQ(r.KindOfNamedValue("password_file", "/run/secrets/db"), std::nullopt);
  EXPECT_EQ(r.KindOfNamedValue("max_tokens", "4096"), std::nullopt);
  EXPECT_EQ(r.KindOfNamedValue("path", "src/lib.rs"), std::nullopt);
}

// ---- configuration --------------------------------------------------------------------

Result<Config> LoadWith(std::map<std::string, std::string> env, std::vector<ConfigFlag> flags = {}) {
  ConfigInputs inputs;
  inputs.flags = std::move(flags);
  inputs.getenv = [env = std::move(env)](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  return LoadConfig(inputs);
}

TEST(RedactionConfig, DefaultsEnvironmentAndFlags) {
  std::map<std::string, std::string> env = {{"HOME", "/home/me"}};
  Result<Config> config = LoadWith(env);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->redaction, RedactionOptions{});  // on, redact, nothing allowed, no extras

  env["ENGRAM_REDACTION_MODE"] = "reject";
  env["ENGRAM_REDACTION_ALLOW"] = "AKIAIOSFODNN7EXAMPLE, hunter2";
  env["ENGRAM_REDACTION_EXTRA_PATTERNS"] = "acme_key:acme_live_,int_token:itk-";
  config = LoadWith(env, {{"redaction.enabled", "false", "--set"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->redaction.enabled);
  EXPECT_EQ(config->redaction.mode, RedactionMode::kReject);
  EXPECT_EQ(config->redaction.allow, (std::vector<std::string>{"AKIAIOSFODNN7EXAMPLE", "hunter2"}));
  EXPECT_EQ(config->redaction.extra_prefixes,
            (std::vector<ExtraSecretPrefix>{{"acme_key", "acme_live_"}, {"int_token", "itk-"}}));
  EXPECT_THAT(FormatConfigTable(*config), HasSubstr("acme_key:acme_live_,int_token:itk-"));

  EXPECT_THAT(std::string(LoadWith(env, {{"redaction.mode", "mask", "--set"}}).status().message()),
              HasSubstr("--set: redaction.mode: expected redact or reject"));
  EXPECT_THAT(std::string(LoadWith(env, {{"redaction.extra_patterns", "Bad Kind:x", "--set"}}).status().message()),
              HasSubstr("expected KIND:PREFIX"));
  EXPECT_THAT(std::string(LoadWith(env, {{"redaction.enabled", "maybe", "--set"}}).status().message()),
              HasSubstr("expected \"true\" or \"false\""));
}

// ---- the corpus -----------------------------------------------------------------------

struct CorpusSecret {
  std::string file;
  size_t begin = 0;
  size_t end = 0;
  std::string kind;
};

struct CorpusText {
  std::string file;
  std::string text;  // brackets removed
  std::vector<CorpusSecret> secrets;
};

// "⟦kind:value⟧" marks a secret (see tests/data/secrets/README.md).
CorpusText ParseCorpusFile(const std::filesystem::path& path) {
  static const std::string kOpen = "\u27e6", kClose = "\u27e7";
  std::ifstream in(path, std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), {});
  CorpusText out;
  out.file = path.filename().string();
  size_t pos = 0;
  for (;;) {
    size_t open = raw.find(kOpen, pos);
    if (open == std::string::npos) break;
    out.text.append(raw, pos, open - pos);
    size_t colon = raw.find(':', open);
    size_t close = raw.find(kClose, open);
    EXPECT_TRUE(colon != std::string::npos && close != std::string::npos && colon < close)
        << out.file << ": malformed secret marker at byte " << open;
    if (colon == std::string::npos || close == std::string::npos || colon > close) break;
    CorpusSecret s;
    s.file = out.file;
    s.kind = raw.substr(open + kOpen.size(), colon - open - kOpen.size());
    s.begin = out.text.size();
    out.text.append(raw, colon + 1, close - colon - 1);
    s.end = out.text.size();
    out.secrets.push_back(std::move(s));
    pos = close + kClose.size();
  }
  out.text.append(raw, pos, std::string::npos);
  return out;
}

std::vector<CorpusText> LoadCorpus() {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(ENGRAM_SECRETS_CORPUS_DIR)) {
    if (entry.path().extension() == ".txt") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<CorpusText> corpus;
  for (const auto& p : paths) corpus.push_back(ParseCorpusFile(p));
  return corpus;
}

TEST(RedactionCorpus, RecallAndPrecisionMeetTheTargets) {
  std::vector<CorpusText> corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 8u) << "corpus missing from " << ENGRAM_SECRETS_CORPUS_DIR;
  size_t secrets = 0, recalled = 0, findings = 0, correct = 0, kind_matches = 0, bytes = 0;
  std::map<std::string, std::pair<int, int>> per_kind;  // kind -> (recalled, total)
  for (const CorpusText& c : corpus) {
    bytes += c.text.size();
    std::vector<SecretFinding> found = Default().Find(c.text);
    for (const CorpusSecret& s : c.secrets) {
      ++secrets;
      auto& [hit, total] = per_kind[s.kind];
      ++total;
      const SecretFinding* cover = nullptr;
      for (const SecretFinding& f : found) {
        if (f.begin <= s.begin && f.end >= s.end) cover = &f;
      }
      if (cover == nullptr) {
        ADD_FAILURE() << c.file << ": missed " << s.kind << " secret \"" << c.text.substr(s.begin, s.end - s.begin)
                      << "\"";
        continue;
      }
      ++recalled;
      ++hit;
      if (cover->kind == s.kind) {
        ++kind_matches;
      } else {
        std::printf("  note: %s: %s found as %s\n", c.file.c_str(), s.kind.c_str(), std::string(cover->kind).c_str());
      }
    }
    for (const SecretFinding& f : found) {
      ++findings;
      bool overlaps = std::any_of(c.secrets.begin(), c.secrets.end(),
                                  [&](const CorpusSecret& s) { return f.begin < s.end && s.begin < f.end; });
      if (overlaps) {
        ++correct;
      } else {
        ADD_FAILURE() << c.file << ": false positive " << f.kind << " \"" << c.text.substr(f.begin, f.end - f.begin)
                      << "\"";
      }
    }
    // Everything outside the secrets is kept byte for byte.
    std::string redacted = Default().Redact(c.text);
    EXPECT_TRUE(Default().Find(redacted).empty()) << c.file << ": redacting again finds more";
  }
  double recall = secrets == 0 ? 0 : static_cast<double>(recalled) / secrets;
  double precision = findings == 0 ? 0 : static_cast<double>(correct) / findings;
  std::printf("secrets corpus: %zu files, %zu bytes, %zu secrets of %zu kinds\n", corpus.size(), bytes, secrets,
              per_kind.size());
  std::printf("recall    %.3f (%zu of %zu secrets fully redacted)\n", recall, recalled, secrets);
  std::printf("precision %.3f (%zu of %zu redactions were secrets)\n", precision, correct, findings);
  std::printf("kind      %zu of %zu recalled secrets carry the expected kind\n", kind_matches, recalled);
  for (const auto& [kind, counts] : per_kind) {
    std::printf("  %-26s %d/%d\n", kind.c_str(), counts.first, counts.second);
  }
  EXPECT_GE(secrets, 60u) << "the corpus should keep its size";
  EXPECT_EQ(recall, 1.0);
  EXPECT_GE(precision, 0.95);
}

// ---- Memory ---------------------------------------------------------------------------

constexpr const char* kToken = "ghp_C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz9CP";

class MemoryRedactionTest : public ::testing::Test {
 protected:
  void Open(RedactionOptions options) {
    SqliteOptions sqlite;
    sqlite.path = dir_.File("memory.db");
    auto store = OpenSqliteBackend(sqlite);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
    memory_ = std::make_unique<Memory>(*store_, clock_, nullptr, NewRedactor(std::move(options)));
  }

  NewEpisode EpisodeWithSecrets() {
    NewEpisode ne;
    ne.task_description = std::string("Rotate the token ") + kToken + " used by CI";
    ne.context.domain = "web-api";
    ne.context.repo = "https://ci:Xk29vLq0pZr7Tn@git.example.com/acme/orders.git";
    ne.tags = {"ci", std::string("GITHUB_TOKEN=") + kToken};
    ne.metadata_json = R"({"env": {"DB_PASSWORD": "hunter2", "HOME": "/home/ci"}, "ticket": "OPS-1"})";
    return ne;
  }

  NewStep StepWithSecrets() {
    NewStep s;
    s.tool = "bash";
    s.action = std::string("curl -H 'Authorization: Bearer ") + kToken + "' https://api.github.com/user";
    s.parameters_json = std::string(R"({"command": "gh auth login --with-token )") + kToken +
                        R"(", "headers": {"Authorization": "Bearer abc123"}, "password": "hunter2", "timeout": 30})";
    s.result = StepResult{StepStatus::kSuccess, std::string("{\"login\": \"ci\"}\nGITHUB_TOKEN=") + kToken,
                          std::string("token ") + kToken + " accepted"};
    return s;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
};

TEST_F(MemoryRedactionTest, EveryStoredTextIsRedacted) {
  Open(RedactionOptions{});
  auto id = memory_->CreateEpisode(EpisodeWithSecrets());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(memory_->AddStep(*id, StepWithSecrets()).ok());
  Outcome o;
  o.verdict = std::string("CI green after rotating ") + kToken;
  o.artifacts = {std::string(".env: API_KEY=") + "sk_live_zQqmOBZZW6m4nyoL6uniiFw1"};
  auto done = memory_->CompleteEpisode(*id, o);
  ASSERT_TRUE(done.ok()) << done.status().ToString();

  auto stored = memory_->GetEpisode(*id);
  ASSERT_TRUE(stored.ok());
  const Episode& e = *stored;
  EXPECT_EQ(e.task_description, "Rotate the token [REDACTED:github_token] used by CI");
  EXPECT_EQ(e.context.repo, "https://ci:[REDACTED:url_password]@git.example.com/acme/orders.git");
  EXPECT_EQ(e.tags[1], "GITHUB_TOKEN=[REDACTED:github_token]");
  nlohmann::json meta = nlohmann::json::parse(e.metadata_json);
  EXPECT_EQ(meta["env"]["DB_PASSWORD"], "[REDACTED:password]");
  EXPECT_EQ(meta["env"]["HOME"], "/home/ci");
  EXPECT_EQ(meta["ticket"], "OPS-1");

  ASSERT_EQ(e.steps.size(), 1u);
  const Step& s = e.steps[0];
  EXPECT_EQ(s.action, "curl -H 'Authorization: Bearer [REDACTED:github_token]' https://api.github.com/user");
  nlohmann::json params = nlohmann::json::parse(s.parameters_json);
  EXPECT_EQ(params["command"], "gh auth login --with-token [REDACTED:github_token]");
  EXPECT_EQ(params["headers"]["Authorization"], "[REDACTED:authorization]");
  EXPECT_EQ(params["password"], "[REDACTED:password]");
  EXPECT_EQ(params["timeout"], 30);
  EXPECT_EQ(*s.result->output, "{\"login\": \"ci\"}\nGITHUB_TOKEN=[REDACTED:github_token]");
  EXPECT_EQ(*s.result->message, "token [REDACTED:github_token] accepted");
  EXPECT_EQ(e.outcome->verdict, "CI green after rotating [REDACTED:github_token]");
  EXPECT_EQ(e.outcome->artifacts[0], ".env: API_KEY=[REDACTED:stripe_key]");

  // Nothing anywhere in the stored episode, its reflection included.
  std::string all = e.task_description + e.metadata_json + *e.context.repo + e.tags[1] + s.action +
                    s.parameters_json + *s.result->output + *s.result->message + e.outcome->verdict +
                    e.outcome->artifacts[0];
  for (const auto& list : {e.reflection->successes, e.reflection->improvements, e.reflection->insights}) {
    for (const std::string& item : list) all += item;
  }
  EXPECT_THAT(all, Not(HasSubstr(kToken)));
  EXPECT_THAT(all, Not(HasSubstr("hunter2")));
  EXPECT_THAT(all, Not(HasSubstr("Xk29vLq0pZr7Tn")));
  EXPECT_THAT(all, Not(HasSubstr("abc123")));
}

TEST_F(MemoryRedactionTest, RejectModeNamesFieldAndKindAndStoresNothing) {
  Open(RedactionOptions{.mode = RedactionMode::kReject});
  auto refused = memory_->CreateEpisode(EpisodeWithSecrets());
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("task_description: holds a secret (github_token)"));
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr(kToken)));
  EXPECT_EQ(store_->Stats()->episodes, 0);

  NewEpisode clean;
  clean.task_description = "Rotate the CI token";
  auto id = memory_->CreateEpisode(clean);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  NewStep step = StepWithSecrets();
  step.action = "gh auth login";
  auto refused_step = memory_->AddStep(*id, step);
  ASSERT_EQ(refused_step.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused_step.status().message()), HasSubstr("parameters.command: holds a secret (github_token)"));
  step.parameters_json = R"({"headers": {"Authorization": "Bearer abc123"}})";
  EXPECT_THAT(std::string(memory_->AddStep(*id, step).status().message()),
              HasSubstr("parameters.headers.Authorization: holds a secret (authorization)"));
  step.parameters_json = "{}";
  EXPECT_THAT(std::string(memory_->AddStep(*id, step).status().message()),
              HasSubstr("result.output: holds a secret (github_token)"));
  EXPECT_EQ(store_->Stats()->steps, 0);

  Outcome o;
  o.kind = OutcomeKind::kFailure;
  o.reason = "auth failed";
  o.error_details = "password=hunter22 rejected";
  auto refused_done = memory_->CompleteEpisode(*id, o);
  EXPECT_THAT(std::string(refused_done.status().message()),
              HasSubstr("outcome.error_details: holds a secret (password)"));
  EXPECT_FALSE(memory_->GetEpisode(*id)->completed());
}

TEST_F(MemoryRedactionTest, DisabledStoresTextAsGiven) {
  Open(RedactionOptions{.enabled = false});
  auto id = memory_->CreateEpisode(EpisodeWithSecrets());
  ASSERT_TRUE(id.ok());
  EXPECT_THAT(memory_->GetEpisode(*id)->task_description, HasSubstr(kToken));
}

}  // namespace
}  // namespace engram
