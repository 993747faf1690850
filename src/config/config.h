// engram's configuration: a table of known keys (config.cc), each with a dotted name as
// used in TOML (`storage.db`), a type, a default and a one-line description, resolved
// from four sources with the precedence flags > environment > file > defaults (DESIGN §9).
//
//   ConfigInputs inputs;
//   inputs.config_file = config_flag;                       // --config, if given
//   inputs.flags.push_back({"storage.db", db_flag, "--db"});
//   ENGRAM_ASSIGN_OR_RETURN(Config config, LoadConfig(inputs));
//   std::cout << FormatConfigTable(config);                 // `engram config show`
//
// Sources, for a key such as `storage.busy_timeout_ms`:
//   - file: the [storage] table's `busy_timeout_ms` in the config file (TOML). The file is
//     `inputs.config_file`, else $ENGRAM_CONFIG, else $XDG_CONFIG_HOME/engram/config.toml
//     (or $HOME/.config/engram/config.toml) when that exists.
//   - environment: ENGRAM_ + the upper-cased key with '.' turned into '_'
//     (ENGRAM_STORAGE_BUSY_TIMEOUT_MS), plus a few short aliases (ENGRAM_DB). Other ENGRAM_*
//     variables are ignored: other tools may set them. Empty variables count as unset.
//   - flags: (key, value, origin) triples built by the CLI from --db, --set key=value, ...
//
// Adding a key: add a field to Config and a row to the key table in config.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/storage.h"

#include "common/logging.h"
#include "core/redaction.h"

namespace engram {

// Where an effective value came from, lowest precedence first.
enum class ConfigSource { kDefault, kFile, kEnv, kFlag };
// "default", "file", "env", "flag".
std::string_view ConfigSourceName(ConfigSource source);

// One key's effective value and where it came from. Thread-compatible.
struct ConfigValue {
  std::string key;    // "storage.db"
  std::string value;  // canonical text: "normal", "10000", "/home/me/.local/share/..."
  ConfigSource source = ConfigSource::kDefault;
  std::string origin;       // "default", "/home/me/.config/engram/config.toml", "ENGRAM_DB", "--db"
  std::string description;  // one line, from the key table
  // True if a running `engram serve` applies a change of this key on reload (SIGHUP or a
  // change of the config file, server/config_reload.h); false if it needs a restart.
  bool live = false;
};

// One command-line override. Thread-compatible.
struct ConfigFlag {
  std::string key;     // dotted key: "storage.db"
  std::string value;   // text as typed; parsed like an environment value
  std::string origin;  // the flag that set it, for messages and `config show`: "--db", "--set"
};

// Parses the argument of `--set KEY=VALUE` into a flag with origin "--set".
// Errors: kInvalidArgument if there is no '=' or the key is empty (the key itself is
// checked by LoadConfig).
Result<ConfigFlag> ParseSetFlag(std::string_view text);

// Everything LoadConfig reads besides the config file itself. Thread-compatible.
struct ConfigInputs {
  // The explicit config file (--config). When unset, LoadConfig uses $ENGRAM_CONFIG if set,
  // so the CLI need not read that variable. An explicit file must exist; the default one may
  // be missing. A leading "~/" expands to $HOME.
  std::optional<std::string> config_file;
  // Command-line overrides, in command-line order: a later flag for the same key wins.
  std::vector<ConfigFlag> flags;
  // The environment. Tests inject a fake; returns nullptr for an unset variable.
  std::function<const char*(const char*)> getenv = ::getenv;
};

// The effective configuration. Thread-compatible.
struct Config {
  std::string db_path;                            // storage.db, "~/" already expanded
  Durability durability = Durability::kFull;      // storage.durability
  std::chrono::milliseconds busy_timeout{10000};  // storage.busy_timeout_ms
  bool full_text_in_memory = true;                // storage.full_text_in_memory (SQLite)
  // storage.url: a postgres:// or postgresql:// URL stores memory in that PostgreSQL database,
  // a libsql://, https:// or http:// URL in that Turso / libSQL database, instead of the
  // SQLite file (storage.db); empty: SQLite. Env ENGRAM_STORE, flag --store.
  // May hold a password: show it only through `config show` (which masks it).
  std::string store_url;
  // storage.password_file, "~/" already expanded: the PostgreSQL password is the file's first
  // line; wins over a password in storage.url and PGPASSWORD. Empty: none.
  std::string password_file;
  int64_t pool_size = 10;  // storage.pool_size: PostgreSQL connections (Turso requests in flight) per process
  // storage.turso_token (env ENGRAM_TURSO_TOKEN) and storage.turso_token_file ("~/" expanded;
  // its first line, which wins when set): the auth token of a Turso store (storage.url
  // libsql://, https:// or http://). Secret: `config show` masks the token.
  std::string turso_token;
  std::string turso_token_file;
  // cache.enabled ("true"/"false"), cache.max_entries, cache.ttl_seconds: the LMDB cache in
  // front of the store (storage/lmdb), in the folder storage.db + ".cache".
  bool cache_enabled = true;
  int64_t cache_max_entries = 10000;
  std::chrono::seconds cache_ttl{3600};
  LogLevel log_level = LogLevel::kInfo;           // log.level
  LogFormat log_format = LogFormat::kAuto;        // log.format
  // server.http: "HOST:PORT" to serve Streamable HTTP by default ("[::1]:8765" for IPv6);
  // empty serves stdio. Env ENGRAM_SERVER_HTTP.
  std::string server_http;
  int64_t max_body_bytes = 4 << 20;  // server.max_body_bytes: larger HTTP request bodies get 413
  // server.rate_limit: HTTP requests per second per API key (per client address when no key
  // is needed); 0 turns the limit off. server.rate_limit_burst: how many may come at once.
  double rate_limit = 0;
  int64_t rate_limit_burst = 20;
  // auth.keys_file, "~/" already expanded. Defaults to $XDG_CONFIG_HOME/engram/api_keys.json
  // (or $HOME/.config/engram/api_keys.json); empty when neither variable is set.
  std::string keys_file;
  std::string tools_disclosure = "progressive";  // tools.disclosure: "progressive" or "all"
  int64_t tools_advanced_after_calls = 3;        // tools.advanced_after_calls
  int64_t tools_expert_after_calls = 10;         // tools.expert_after_calls (>= advanced)
  // sandbox.enabled ("true"/"false"): offer execute_code where every sandbox layer works.
  bool sandbox_enabled = true;
  int64_t sandbox_max_timeout_ms = 30000;  // sandbox.max_timeout_ms: cap on execute_code's timeout_ms
  int64_t sandbox_max_memory_mb = 512;     // sandbox.max_memory_mb: cap on execute_code's memory_mb
  // redaction.enabled ("true"/"false"), redaction.mode ("redact"/"reject"),
  // redaction.allow (comma-separated exact texts never redacted) and
  // redaction.extra_patterns (comma-separated KIND:PREFIX token shapes): what Memory does
  // with secrets in the texts it stores (core/redaction.h).
  RedactionOptions redaction;

  // retrieval.*: how query_memory ranks (retrieval/retriever.h). Weights need not sum to 1.
  struct Retrieval {
    double weight_semantic = 0.20;
    double weight_lexical = 0.70;
    double weight_context = 0.15;
    double weight_reward = 0.10;
    double weight_recency = 0.05;
    int64_t recency_half_life_days = 30;
    double mmr_lambda = 0.7;
    int64_t cache_entries = 256;
    int64_t lexical_candidates = 50;
    int64_t vector_candidates = 50;
    int64_t exact_below = 5000;  // vector index: exact scan below this many vectors, HNSW above
    // How the HNSW graph keeps vectors: "int8" (a byte per dimension + a scale; the index is
    // ~2x smaller, cosines within ~0.001) or "float32" (exact cosines).
    std::string vector_encoding = "int8";
    // Query expansion (semantics/query_expander.h, issue 8): weights of the concept-map and
    // WordNet components (0: that source off), an extra concept file merged into the built-in
    // map ("" none, "~/" expanded), the WordNet database folder ("" none) and how many senses
    // of each part of speech WordNet expands. WordNet is off by default: on bench/eval it moved
    // no Recall@k or MRR and cost ~20 MiB RSS (bench/eval/README.md); set wordnet_dir and
    // weight_wordnet to turn it on.
    double weight_concepts = 0.35;
    double weight_wordnet = 0;
    std::string concepts_file;
    std::string wordnet_dir;
    int64_t wordnet_senses = 1;
    double vector_expansion = 1.0;  // weight of the concept alternatives in the query's vector
  } retrieval;

  // embedding.*: the EmbeddingProvider (include/engram/embedding.h).
  struct Embedding {
    std::string provider = "hashing";  // "hashing", "use", "http" or "none" (lexical retrieval only)
    int64_t dimension = 256;           // hashing: vector length; http: the expected length (0: any)
    std::string url;                   // http: the /v1/embeddings endpoint
    std::string model;                 // http: the model name sent
    std::string api_key_file;          // http: file whose first line is the API key ("~/" expanded)
    std::string model_dir;             // use: folder of model.json, shards, vocab.json (empty: default)
    // What of an episode is embedded (retrieval/episode_text.h): full, task, task+outcome or
    // task+lessons, optionally +concepts. Part of the embedding space: changing it needs
    // `engram reindex`.
    std::string document_text = "full";
    int64_t timeout_ms = 5000;
    int64_t batch_size = 32;
    int64_t max_retries = 2;
    int64_t breaker_failures = 5;
    int64_t breaker_open_seconds = 30;
  } embedding;

  // learning.*: the pattern pipeline (src/learning).
  struct Learning {
    bool enabled = true;
    double min_success_rate = 0.7;          // a pattern is kept at or above this
    double min_error_recovery_rate = 0.3;   // error_recovery patterns: at or above this
    int64_t decay_half_life_days = 30;      // unused patterns lose half their weight per half-life
    int64_t queue_capacity = 1000;          // completed episodes waiting for extraction
    int64_t workers = 1;                    // extraction threads
    int64_t quiet_period_ms = 10;           // extract after the agent's writes pause this long
    int64_t max_defer_ms = 500;             // ... or after waiting this long for a pause
  } learning;

  // Every known key with its effective value and source, in key-table order.
  std::vector<ConfigValue> values;
  // The config file that was read; empty if none was.
  std::string config_file;
  // How that file was chosen: "--config" (ConfigInputs::config_file), "ENGRAM_CONFIG" or
  // "default"; empty if none was read.
  std::string config_file_origin;
};

// Resolves every known key from defaults, the config file, the environment and `inputs.flags`.
//
// Errors, all kInvalidArgument with a message naming the source and the key, e.g.
// `/home/me/.config/engram/config.toml:3:14: storage.durability: unknown durability "fast"
// (expected full or normal)` or `ENGRAM_STORAGE_BUSY_TIMEOUT_MS: storage.busy_timeout_ms:
// expected an integer, got "ten"`:
//   - the config file is not valid TOML (with file:line:column), has an unknown key, or a
//     value of the wrong type or an invalid value;
//   - a known ENGRAM_* variable has an invalid value;
//   - a flag names an unknown key or has an invalid value.
//   - tools.expert_after_calls is below tools.advanced_after_calls.
// kNotFound if an explicit config file does not exist; kUnavailable if a config file exists
// but cannot be read; kFailedPrecondition if storage.db is needed from its default but
// neither XDG_DATA_HOME nor HOME is set (auth.keys_file is then left empty instead).
Result<Config> LoadConfig(const ConfigInputs& inputs);

// `engram config show`: the config file line, then one row per key with KEY, VALUE, RELOAD
// ("live": a running server applies a change on reload; "restart": it needs a restart) and
// SOURCE columns ("default", "file /path/config.toml", "env ENGRAM_DB", "flag --db").
std::string FormatConfigTable(const Config& config);

// `engram config show --json`: {"config_file": path or null, "config_file_origin": ...,
// "values": [{"key", "value", "source", "origin", "description", "live"}]}, where "live" is a
// boolean (see ConfigValue::live) and integer keys have
// integer values. Pretty-printed, ends with a newline.
std::string FormatConfigJson(const Config& config);

}  // namespace engram
