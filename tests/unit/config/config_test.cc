#include "config/config.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Each test gets a temp dir standing in for $HOME and a fake environment that holds only
// what the test puts there, so the developer's own config never leaks in.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "engram_config_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    env_["HOME"] = dir_ + "/home";
    env_["XDG_DATA_HOME"] = "";
    env_["XDG_CONFIG_HOME"] = "";
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to `path` (relative to the temp dir), creating directories, and returns
  // the absolute path.
  std::string WriteFile(const std::string& path, const std::string& text) {
    std::filesystem::path full = std::filesystem::path(dir_) / path;
    std::error_code ec;
    std::filesystem::create_directories(full.parent_path(), ec);
    std::ofstream(full) << text;
    return full.string();
  }

  // The config file at the default location for the fake HOME.
  std::string WriteDefaultConfig(const std::string& text) {
    return WriteFile("home/.config/engram/config.toml", text);
  }

  ConfigInputs Inputs() {
    ConfigInputs inputs;
    inputs.getenv = [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
    return inputs;
  }

  static const ConfigValue& ValueOf(const Config& config, const std::string& key) {
    for (const ConfigValue& value : config.values) {
      if (value.key == key) return value;
    }
    ADD_FAILURE() << "no value for " << key;
    static const ConfigValue kMissing;
    return kMissing;
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(ConfigTest, DefaultsUseXdgDataHome) {
  env_["XDG_DATA_HOME"] = "/data/xdg";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, "/data/xdg/engram/memory.db");
  EXPECT_EQ(config->durability, Durability::kFull);
  EXPECT_EQ(config->busy_timeout, std::chrono::milliseconds(10000));
  EXPECT_EQ(config->log_level, LogLevel::kInfo);
  EXPECT_EQ(config->log_format, LogFormat::kAuto);
  EXPECT_EQ(config->config_file, "");  // the default file is missing, and that is fine
  EXPECT_EQ(config->config_file_origin, "");

  EXPECT_EQ(config->server_http, "");
  EXPECT_EQ(config->max_body_bytes, 4194304);
  EXPECT_EQ(config->keys_file, dir_ + "/home/.config/engram/api_keys.json");
  EXPECT_EQ(config->tools_disclosure, "progressive");
  EXPECT_EQ(config->tools_advanced_after_calls, 3);
  EXPECT_EQ(config->tools_expert_after_calls, 10);

  const std::string keys_file = dir_ + "/home/.config/engram/api_keys.json";
  const char* keys[] = {"storage.db",      "storage.durability",    "storage.busy_timeout_ms",
                        "storage.url",     "storage.password_file", "storage.turso_token",
                        "storage.turso_token_file", "storage.pool_size", "storage.full_text_in_memory",
                        "cache.enabled",   "cache.max_entries",     "cache.ttl_seconds",
                        "log.level",       "log.format",            "server.http",
                        "server.max_body_bytes", "server.rate_limit", "server.rate_limit_burst",
                        "auth.keys_file",  "tools.disclosure",
                        "tools.advanced_after_calls", "tools.expert_after_calls",
                        "sandbox.enabled", "sandbox.max_timeout_ms", "sandbox.max_memory_mb",
                        "redaction.enabled", "redaction.mode", "redaction.allow", "redaction.extra_patterns",
                        "retrieval.weight_semantic", "retrieval.weight_lexical", "retrieval.weight_context",
                        "retrieval.weight_reward", "retrieval.weight_recency", "retrieval.recency_half_life_days",
                        "retrieval.mmr_lambda", "retrieval.cache_entries", "retrieval.lexical_candidates",
                        "retrieval.vector_candidates", "retrieval.exact_below", "retrieval.vector_encoding",
                        "retrieval.weight_concepts",
                        "retrieval.weight_wordnet", "retrieval.concepts_file", "retrieval.wordnet_dir",
                        "retrieval.wordnet_senses", "retrieval.vector_expansion", "embedding.provider",
                        "embedding.dimension", "embedding.url", "embedding.model", "embedding.api_key_file",
                        "embedding.model_dir", "embedding.document_text", "embedding.timeout_ms", "embedding.batch_size", "embedding.max_retries",
                        "embedding.breaker_failures", "embedding.breaker_open_seconds", "learning.enabled",
                        "learning.min_success_rate", "learning.min_error_recovery_rate",
                        "learning.decay_half_life_days", "learning.queue_capacity", "learning.workers",
                        "learning.quiet_period_ms", "learning.max_defer_ms"};
  const char* values[] = {"/data/xdg/engram/memory.db", "full", "10000", "", "", "", "", "10", "true", "true", "10000", "3600",
                          "info", "auto", "",
                          "4194304", "0", "20", keys_file.c_str(), "progressive", "3", "10", "true", "30000", "512",
                          "true", "redact", "", "",
                          "0.2", "0.7", "0.15", "0.1", "0.05", "30", "0.7", "256", "50", "50", "5000", "int8",
                          "0.35", "0", "", "", "1", "1", "hashing",
                          "256", "", "", "", "", "full", "5000", "32", "2", "5", "30", "true", "0.7", "0.3", "30", "1000", "1", "10", "500"};
  ASSERT_EQ(config->values.size(), std::size(keys));
  for (size_t i = 0; i < std::size(keys); ++i) {
    const ConfigValue& value = config->values[i];
    EXPECT_EQ(value.key, keys[i]);
    EXPECT_EQ(value.value, values[i]);
    EXPECT_EQ(value.source, ConfigSource::kDefault) << value.key;
    EXPECT_EQ(value.origin, "default") << value.key;
    EXPECT_FALSE(value.description.empty()) << value.key;
  }
}

TEST_F(ConfigTest, StoreUrlFromFileEnvAndFlagWithThePasswordMasked) {
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "");  // SQLite
  EXPECT_EQ(config->password_file, "");
  EXPECT_EQ(config->pool_size, 10);

  std::string path = WriteDefaultConfig(
      "[storage]\nurl = \"postgresql://team@db.internal/engram\"\npassword_file = \"~/.engram-pg\"\n"
      "pool_size = 4\n");
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "postgresql://team@db.internal/engram");
  EXPECT_EQ(config->password_file, dir_ + "/home/.engram-pg");
  EXPECT_EQ(config->pool_size, 4);
  EXPECT_EQ(ValueOf(*config, "storage.url").origin, path);

  // ENGRAM_STORE is the short alias; the password never shows in `config show`.
  env_["ENGRAM_STORE"] = "postgres://team:s3cret@db.internal:5433/engram?sslmode=require&password=s3cret";
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, env_["ENGRAM_STORE"]);
  EXPECT_EQ(ValueOf(*config, "storage.url").origin, "ENGRAM_STORE");
  EXPECT_EQ(ValueOf(*config, "storage.url").value,
            "postgres://team:********@db.internal:5433/engram?sslmode=require&password=********");
  EXPECT_THAT(FormatConfigTable(*config), Not(HasSubstr("s3cret")));
  EXPECT_THAT(FormatConfigJson(*config), Not(HasSubstr("s3cret")));

  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"storage.url", "postgresql://other@/engram?host=/run/postgresql", "--store"});
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "postgresql://other@/engram?host=/run/postgresql");
  EXPECT_EQ(ValueOf(*config, "storage.url").origin, "--store");

  // A Turso URL; its token from ENGRAM_TURSO_TOKEN never shows in `config show`, and a
  // token file path is kept ("~/" expanded).
  env_["ENGRAM_TURSO_TOKEN"] = "eyJturso.t0ken";
  inputs = Inputs();
  inputs.flags.push_back({"storage.url", "libsql://memory-acme.turso.io", "--store"});
  inputs.flags.push_back({"storage.turso_token_file", "~/.turso-token", "--set"});
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "libsql://memory-acme.turso.io");
  EXPECT_EQ(config->turso_token, "eyJturso.t0ken");
  EXPECT_EQ(config->turso_token_file, dir_ + "/home/.turso-token");
  EXPECT_EQ(ValueOf(*config, "storage.turso_token").origin, "ENGRAM_TURSO_TOKEN");
  EXPECT_EQ(ValueOf(*config, "storage.turso_token").value, "********");
  EXPECT_THAT(FormatConfigTable(*config), Not(HasSubstr("t0ken")));
  EXPECT_THAT(FormatConfigJson(*config), Not(HasSubstr("t0ken")));
  env_.erase("ENGRAM_TURSO_TOKEN");

  // Not a PostgreSQL URL: an error that does not repeat the value (it may hold a password).
  inputs = Inputs();
  inputs.flags.push_back({"storage.url", "mysql://root:hunter2@db/engram", "--store"});
  config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("storage.url"));
  EXPECT_THAT(config.status().message(), Not(HasSubstr("hunter2")));

  inputs = Inputs();
  inputs.flags.push_back({"storage.pool_size", "0", "--set"});
  EXPECT_EQ(LoadConfig(inputs).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ConfigTest, DefaultDbFallsBackToHomeWhenXdgDataHomeUnsetOrEmpty) {
  Result<Config> config = LoadConfig(Inputs());  // XDG_DATA_HOME is ""
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, dir_ + "/home/.local/share/engram/memory.db");

  env_.erase("XDG_DATA_HOME");
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, dir_ + "/home/.local/share/engram/memory.db");

  env_["XDG_DATA_HOME"] = "relative/dir";  // XDG says relative values are ignored
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, dir_ + "/home/.local/share/engram/memory.db");
}

TEST_F(ConfigTest, NoHomeAndNoXdgNeedsAnExplicitDb) {
  env_.clear();
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(config.status().message(), HasSubstr("storage.db"));

  env_["ENGRAM_DB"] = "/tmp/x.db";
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, "/tmp/x.db");
}

TEST_F(ConfigTest, FileOverridesDefaults) {
  std::string path = WriteDefaultConfig(
      "# my settings\n"
      "[storage]\n"
      "db = \"/srv/engram.db\"\n"
      "durability = \"normal\"\n"
      "busy_timeout_ms = 2500\n"
      "[log]\n"
      "level = \"debug\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config_file, path);
  EXPECT_EQ(config->config_file_origin, "default");
  EXPECT_EQ(config->db_path, "/srv/engram.db");
  EXPECT_EQ(config->durability, Durability::kNormal);
  EXPECT_EQ(config->busy_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(config->log_level, LogLevel::kDebug);
  EXPECT_EQ(config->log_format, LogFormat::kAuto);

  for (const char* key : {"storage.db", "storage.durability", "storage.busy_timeout_ms", "log.level"}) {
    EXPECT_EQ(ValueOf(*config, key).source, ConfigSource::kFile) << key;
    EXPECT_EQ(ValueOf(*config, key).origin, path) << key;
  }
  EXPECT_EQ(ValueOf(*config, "storage.busy_timeout_ms").value, "2500");
  EXPECT_EQ(ValueOf(*config, "log.format").source, ConfigSource::kDefault);
}

TEST_F(ConfigTest, DottedKeysInFileWork) {
  WriteDefaultConfig("storage.durability = \"normal\"\nlog.format = \"json\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->durability, Durability::kNormal);
  EXPECT_EQ(config->log_format, LogFormat::kJson);
}

TEST_F(ConfigTest, DefaultFileHonoursXdgConfigHome) {
  env_["XDG_CONFIG_HOME"] = dir_ + "/xdgconf";
  WriteDefaultConfig("[log]\nlevel = \"error\"\n");  // under $HOME/.config: not read now
  std::string path = WriteFile("xdgconf/engram/config.toml", "[log]\nlevel = \"warn\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config_file, path);
  EXPECT_EQ(config->log_level, LogLevel::kWarn);
}

TEST_F(ConfigTest, ExplicitConfigFileReplacesTheDefaultOne) {
  WriteDefaultConfig("[log]\nlevel = \"error\"\n");
  std::string path = WriteFile("other.toml", "[log]\nlevel = \"trace\"\n");
  ConfigInputs inputs = Inputs();
  inputs.config_file = path;
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config_file, path);
  EXPECT_EQ(config->config_file_origin, "--config");
  EXPECT_EQ(config->log_level, LogLevel::kTrace);
  EXPECT_EQ(ValueOf(*config, "log.level").origin, path);
}

TEST_F(ConfigTest, EngramConfigVariableNamesTheFile) {
  std::string path = WriteFile("from_env.toml", "[log]\nlevel = \"warn\"\n");
  env_["ENGRAM_CONFIG"] = path;
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config_file, path);
  EXPECT_EQ(config->config_file_origin, "ENGRAM_CONFIG");
  EXPECT_EQ(config->log_level, LogLevel::kWarn);

  // --config beats ENGRAM_CONFIG.
  std::string flag_path = WriteFile("from_flag.toml", "[log]\nlevel = \"error\"\n");
  ConfigInputs inputs = Inputs();
  inputs.config_file = flag_path;
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->config_file, flag_path);
  EXPECT_EQ(config->log_level, LogLevel::kError);
}

TEST_F(ConfigTest, EnvOverridesFile) {
  std::string path = WriteDefaultConfig("[storage]\ndurability = \"normal\"\nbusy_timeout_ms = 2500\n");
  env_["ENGRAM_STORAGE_DURABILITY"] = "full";
  env_["ENGRAM_LOG_FORMAT"] = "text";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->durability, Durability::kFull);
  EXPECT_EQ(config->log_format, LogFormat::kText);
  EXPECT_EQ(config->busy_timeout, std::chrono::milliseconds(2500));

  EXPECT_EQ(ValueOf(*config, "storage.durability").source, ConfigSource::kEnv);
  EXPECT_EQ(ValueOf(*config, "storage.durability").origin, "ENGRAM_STORAGE_DURABILITY");
  EXPECT_EQ(ValueOf(*config, "log.format").source, ConfigSource::kEnv);
  EXPECT_EQ(ValueOf(*config, "log.format").origin, "ENGRAM_LOG_FORMAT");
  EXPECT_EQ(ValueOf(*config, "storage.busy_timeout_ms").source, ConfigSource::kFile);
  EXPECT_EQ(ValueOf(*config, "storage.busy_timeout_ms").origin, path);
}

TEST_F(ConfigTest, FlagOverridesEnv) {
  WriteDefaultConfig("[storage]\ndb = \"/from/file.db\"\ndurability = \"normal\"\n");
  env_["ENGRAM_STORAGE_DB"] = "/from/env.db";
  env_["ENGRAM_STORAGE_DURABILITY"] = "full";
  env_["ENGRAM_STORAGE_BUSY_TIMEOUT_MS"] = "300";
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"storage.db", "/from/flag.db", "--db"});
  inputs.flags.push_back({"storage.durability", "normal", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, "/from/flag.db");
  EXPECT_EQ(config->durability, Durability::kNormal);
  EXPECT_EQ(config->busy_timeout, std::chrono::milliseconds(300));

  EXPECT_EQ(ValueOf(*config, "storage.db").source, ConfigSource::kFlag);
  EXPECT_EQ(ValueOf(*config, "storage.db").origin, "--db");
  EXPECT_EQ(ValueOf(*config, "storage.durability").source, ConfigSource::kFlag);
  EXPECT_EQ(ValueOf(*config, "storage.durability").origin, "--set");
  EXPECT_EQ(ValueOf(*config, "storage.busy_timeout_ms").source, ConfigSource::kEnv);
  EXPECT_EQ(ValueOf(*config, "storage.busy_timeout_ms").origin, "ENGRAM_STORAGE_BUSY_TIMEOUT_MS");
  EXPECT_EQ(ValueOf(*config, "log.level").source, ConfigSource::kDefault);
}

TEST_F(ConfigTest, LaterFlagWins) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"log.level", "debug", "--set"});
  inputs.flags.push_back({"log.level", "error", "--log-level"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_level, LogLevel::kError);
  EXPECT_EQ(ValueOf(*config, "log.level").origin, "--log-level");
}

TEST_F(ConfigTest, EngramDbAlias) {
  env_["ENGRAM_DB"] = "/alias.db";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, "/alias.db");
  EXPECT_EQ(ValueOf(*config, "storage.db").source, ConfigSource::kEnv);
  EXPECT_EQ(ValueOf(*config, "storage.db").origin, "ENGRAM_DB");

  // The full name is the more specific one and wins over the alias.
  env_["ENGRAM_STORAGE_DB"] = "/full.db";
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, "/full.db");
  EXPECT_EQ(ValueOf(*config, "storage.db").origin, "ENGRAM_STORAGE_DB");
}

TEST_F(ConfigTest, EmptyAndUnknownEngramVariablesAreIgnored) {
  env_["ENGRAM_LOG_LEVEL"] = "";
  env_["ENGRAM_SOMETHING_ELSE"] = "whatever";
  env_["ENGRAM_STORAGE_NOPE"] = "1";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_level, LogLevel::kInfo);
  EXPECT_EQ(ValueOf(*config, "log.level").source, ConfigSource::kDefault);
}

TEST_F(ConfigTest, TildeExpandsToHome) {
  WriteDefaultConfig("[storage]\ndb = \"~/memories/m.db\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, dir_ + "/home/memories/m.db");
  EXPECT_EQ(ValueOf(*config, "storage.db").value, dir_ + "/home/memories/m.db");

  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"storage.db", "~/flag.db", "--db"});
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->db_path, dir_ + "/home/flag.db");
}

TEST_F(ConfigTest, LogLevelIsShownCanonically) {
  env_["ENGRAM_LOG_LEVEL"] = "WARNING";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_level, LogLevel::kWarn);
  EXPECT_EQ(ValueOf(*config, "log.level").value, "warn");
}

TEST_F(ConfigTest, InvalidValueInFileNamesFileLineAndKey) {
  std::string path = WriteDefaultConfig("[storage]\ndurability = \"fast\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path + ":2:"));
  EXPECT_THAT(config.status().message(),
              HasSubstr("storage.durability: unknown durability \"fast\" (expected full or normal)"));
}

TEST_F(ConfigTest, InvalidFileValueIsReportedEvenWhenOverridden) {
  WriteDefaultConfig("[log]\nlevel = \"loud\"\n");
  env_["ENGRAM_LOG_LEVEL"] = "debug";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("log.level"));
}

TEST_F(ConfigTest, WrongTypeInFileIsAnError) {
  std::string path = WriteDefaultConfig("[storage]\nbusy_timeout_ms = \"5000\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path + ":2:"));
  EXPECT_THAT(config.status().message(),
              HasSubstr("storage.busy_timeout_ms: expected an integer, got a string"));

  WriteDefaultConfig("[storage]\ndb = 7\n");
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("storage.db: expected a string, got an integer"));

  WriteDefaultConfig("storage = \"x\"\n");
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("storage: expected a table, got a string"));
}

TEST_F(ConfigTest, OutOfRangeIntegerInFileIsAnError) {
  WriteDefaultConfig("[storage]\nbusy_timeout_ms = 600001\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("storage.busy_timeout_ms: must be between 1 and 600000, got 600001"));
}

TEST_F(ConfigTest, UnknownKeyInFileIsAnError) {
  std::string path = WriteDefaultConfig("[storage]\ndb = \"/x.db\"\ndurabilty = \"normal\"\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path + ":3:"));
  EXPECT_THAT(config.status().message(), HasSubstr("unknown config key \"storage.durabilty\""));

  WriteDefaultConfig("[server]\nport = 8080\n");
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("unknown config key \"server.port\""));

  WriteDefaultConfig("[nothing]\nport = 8080\n");
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("unknown config key \"nothing\""));

  // A quoted key with a dot is a single TOML key, not storage.db.
  WriteDefaultConfig("\"storage.db\" = \"/x.db\"\n");
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("unknown config key"));
}

TEST_F(ConfigTest, MalformedTomlNamesFileAndLine) {
  std::string path = WriteDefaultConfig("[storage]\ndb = \"/x.db\"\ndurability = \n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr(path + ":3:"));
  EXPECT_THAT(config.status().message(), HasSubstr("invalid TOML"));
}

TEST_F(ConfigTest, InvalidEnvValueNamesTheVariable) {
  env_["ENGRAM_STORAGE_BUSY_TIMEOUT_MS"] = "ten";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "ENGRAM_STORAGE_BUSY_TIMEOUT_MS: storage.busy_timeout_ms: expected an integer, got \"ten\"");

  env_["ENGRAM_STORAGE_BUSY_TIMEOUT_MS"] = "0";
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("must be between 1 and 600000"));

  env_.erase("ENGRAM_STORAGE_BUSY_TIMEOUT_MS");
  env_["ENGRAM_LOG_LEVEL"] = "loud";
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("ENGRAM_LOG_LEVEL: log.level: unknown log level \"loud\""));

  env_.erase("ENGRAM_LOG_LEVEL");
  env_["ENGRAM_DB"] = " ";
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("ENGRAM_DB: storage.db: must not be empty"));
}

TEST_F(ConfigTest, InvalidFlagValueNamesTheFlag) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"log.format", "xml", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("--set: log.format: unknown log format \"xml\""));
}

TEST_F(ConfigTest, UnknownFlagKeyIsAnError) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"storage.dbb", "/x.db", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("--set: unknown config key \"storage.dbb\""));
  EXPECT_THAT(config.status().message(), HasSubstr("storage.db"));  // lists the known keys
}

TEST_F(ConfigTest, ExplicitMissingConfigFileIsAnError) {
  ConfigInputs inputs = Inputs();
  inputs.config_file = dir_ + "/nope.toml";
  Result<Config> config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(dir_ + "/nope.toml"));

  env_["ENGRAM_CONFIG"] = dir_ + "/also_nope.toml";
  config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
}

TEST_F(ConfigTest, UnreadableConfigFileIsAnError) {
  WriteFile("home/.config/engram/config.toml/file", "");  // the "file" is a directory
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kUnavailable);
}

TEST_F(ConfigTest, ParseSetFlag) {
  Result<ConfigFlag> flag = ParseSetFlag("storage.durability=normal");
  ASSERT_TRUE(flag.ok()) << flag.status().ToString();
  EXPECT_EQ(flag->key, "storage.durability");
  EXPECT_EQ(flag->value, "normal");
  EXPECT_EQ(flag->origin, "--set");

  flag = ParseSetFlag("storage.db=/a=b.db");
  ASSERT_TRUE(flag.ok());
  EXPECT_EQ(flag->value, "/a=b.db");

  EXPECT_EQ(ParseSetFlag("storage.db").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSetFlag("=x").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ConfigTest, FormatConfigTableShowsValuesAndSources) {
  std::string path = WriteDefaultConfig("[storage]\ndurability = \"normal\"\n");
  env_["ENGRAM_DB"] = "/env.db";
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"log.level", "debug", "--log-level"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();

  std::string table = FormatConfigTable(*config);
  EXPECT_THAT(table, HasSubstr("config file: " + path + " (default location)\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("KEY +VALUE +RELOAD +SOURCE\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("storage\\.db +/env\\.db +restart +env ENGRAM_DB\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("storage\\.durability +normal +restart +file " + path + "\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("storage\\.busy_timeout_ms +10000 +restart +default\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("log\\.level +debug +live +flag --log-level\n"));
}

TEST_F(ConfigTest, FormatConfigJson) {
  env_["ENGRAM_DB"] = "/env.db";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();

  nlohmann::json json = nlohmann::json::parse(FormatConfigJson(*config), nullptr, false);
  ASSERT_FALSE(json.is_discarded());
  EXPECT_TRUE(json["config_file"].is_null());
  ASSERT_EQ(json["values"].size(), config->values.size());  // every key
  EXPECT_EQ(json["values"][0]["key"], "storage.db");
  EXPECT_EQ(json["values"][0]["value"], "/env.db");
  EXPECT_EQ(json["values"][0]["source"], "env");
  EXPECT_EQ(json["values"][0]["origin"], "ENGRAM_DB");
  EXPECT_EQ(json["values"][2]["key"], "storage.busy_timeout_ms");
  EXPECT_EQ(json["values"][2]["value"], 10000);  // integers stay integers
  EXPECT_EQ(json["values"][2]["source"], "default");
  EXPECT_FALSE(json["values"][2]["description"].get<std::string>().empty());
  EXPECT_EQ(json["values"][2]["live"], false);
  for (const nlohmann::json& value : json["values"]) ASSERT_TRUE(value["live"].is_boolean()) << value.dump();
}

// What a running server applies on reload (issue 9) and what needs a restart.
TEST_F(ConfigTest, KeysAreMarkedLiveOrRestartOnly) {
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  for (const char* key : {"log.level", "log.format", "retrieval.weight_lexical", "retrieval.mmr_lambda",
                          "tools.disclosure", "tools.advanced_after_calls", "cache.ttl_seconds", "cache.max_entries",
                          "server.rate_limit", "server.rate_limit_burst", "sandbox.max_timeout_ms",
                          "sandbox.max_memory_mb", "auth.keys_file"}) {
    EXPECT_TRUE(ValueOf(*config, key).live) << key;
  }
  for (const char* key : {"storage.db", "storage.url", "server.http", "server.max_body_bytes", "cache.enabled",
                          "sandbox.enabled", "embedding.provider", "retrieval.exact_below", "learning.workers"}) {
    EXPECT_FALSE(ValueOf(*config, key).live) << key;
  }
}

TEST_F(ConfigTest, RateLimitKeys) {
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->rate_limit, 0);  // off by default
  EXPECT_EQ(config->rate_limit_burst, 20);

  WriteDefaultConfig("[server]\nrate_limit = 2.5\nrate_limit_burst = 5\n");
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->rate_limit, 2.5);
  EXPECT_EQ(config->rate_limit_burst, 5);

  env_["ENGRAM_SERVER_RATE_LIMIT"] = "-1";
  EXPECT_THAT(LoadConfig(Inputs()).status().message(), HasSubstr("server.rate_limit"));
  env_["ENGRAM_SERVER_RATE_LIMIT"] = "";
  env_["ENGRAM_SERVER_RATE_LIMIT_BURST"] = "0";
  EXPECT_THAT(LoadConfig(Inputs()).status().message(), HasSubstr("server.rate_limit_burst"));
}

TEST_F(ConfigTest, ServerAndToolKeysFromFileEnvAndFlags) {
  std::string path = WriteDefaultConfig(
      "[server]\n"
      "http = \"127.0.0.1:9000\"\n"
      "max_body_bytes = 65536\n"
      "[tools]\n"
      "disclosure = \"all\"\n"
      "advanced_after_calls = 0\n"
      "expert_after_calls = 0\n");
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server_http, "127.0.0.1:9000");
  EXPECT_EQ(config->max_body_bytes, 65536);
  EXPECT_EQ(config->tools_disclosure, "all");
  EXPECT_EQ(config->tools_advanced_after_calls, 0);
  EXPECT_EQ(config->tools_expert_after_calls, 0);
  EXPECT_EQ(ValueOf(*config, "server.http").origin, path);

  env_["ENGRAM_SERVER_HTTP"] = "[::1]:8765";
  env_["ENGRAM_TOOLS_DISCLOSURE"] = "Progressive";
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"tools.expert_after_calls", "7", "--set"});
  inputs.flags.push_back({"tools.advanced_after_calls", "5", "--set"});
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server_http, "[::1]:8765");
  EXPECT_EQ(ValueOf(*config, "server.http").origin, "ENGRAM_SERVER_HTTP");
  EXPECT_EQ(config->tools_disclosure, "progressive");
  EXPECT_EQ(config->tools_advanced_after_calls, 5);
  EXPECT_EQ(config->tools_expert_after_calls, 7);
}

TEST_F(ConfigTest, CacheKeysFromFileEnvAndFlags) {
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->cache_enabled);
  EXPECT_EQ(config->cache_max_entries, 10000);
  EXPECT_EQ(config->cache_ttl, std::chrono::seconds(3600));

  std::string path = WriteDefaultConfig(
      "[cache]\n"
      "enabled = \"false\"\n"
      "max_entries = 500\n"
      "ttl_seconds = 0\n");
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->cache_enabled);
  EXPECT_EQ(config->cache_max_entries, 500);
  EXPECT_EQ(config->cache_ttl, std::chrono::seconds(0));
  EXPECT_EQ(ValueOf(*config, "cache.enabled").origin, path);

  env_["ENGRAM_CACHE_ENABLED"] = "Yes";
  env_["ENGRAM_CACHE_TTL_SECONDS"] = "60";
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"cache.max_entries", "0", "--set"});
  config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->cache_enabled);
  EXPECT_EQ(ValueOf(*config, "cache.enabled").value, "true");
  EXPECT_EQ(ValueOf(*config, "cache.enabled").origin, "ENGRAM_CACHE_ENABLED");
  EXPECT_EQ(config->cache_ttl, std::chrono::seconds(60));
  EXPECT_EQ(config->cache_max_entries, 0);
  EXPECT_EQ(ValueOf(*config, "cache.max_entries").source, ConfigSource::kFlag);
}

TEST_F(ConfigTest, InvalidCacheValuesAreErrors) {
  for (auto [key, bad] : std::initializer_list<std::pair<const char*, const char*>>{
           {"cache.enabled", "maybe"}, {"cache.max_entries", "-1"}, {"cache.max_entries", "lots"},
           {"cache.ttl_seconds", "-5"}, {"cache.ttl_seconds", "99999999999"}}) {
    ConfigInputs inputs = Inputs();
    inputs.flags.push_back({key, bad, "--set"});
    Result<Config> config = LoadConfig(inputs);
    ASSERT_FALSE(config.ok()) << key << "=" << bad;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(config.status().message(), HasSubstr(key));
  }
}

TEST_F(ConfigTest, ServerHttpMustBeHostAndPort) {
  for (const char* bad : {"8765", "localhost", ":8765", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:80a",
                          "::1:8765"}) {
    env_["ENGRAM_SERVER_HTTP"] = bad;
    Result<Config> config = LoadConfig(Inputs());
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(config.status().message(), HasSubstr("ENGRAM_SERVER_HTTP: server.http: expected HOST:PORT"));
  }
  env_["ENGRAM_SERVER_HTTP"] = "0.0.0.0:0";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server_http, "0.0.0.0:0");
}

TEST_F(ConfigTest, VectorEncodingIsInt8OrFloat32) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"retrieval.vector_encoding", "Float32", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->retrieval.vector_encoding, "float32");

  inputs = Inputs();
  inputs.flags.push_back({"retrieval.vector_encoding", "fp16", "--set"});
  config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("--set: retrieval.vector_encoding: expected int8 or float32, got \"fp16\""));
}

TEST_F(ConfigTest, DocumentTextNamesWhatIsEmbedded) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"embedding.document_text", " Task+Concepts ", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->embedding.document_text, "task+concepts");

  for (const char* bad : {"title", "concepts", "+concepts", "task+concepts+outcome"}) {
    inputs = Inputs();
    inputs.flags.push_back({"embedding.document_text", bad, "--set"});
    config = LoadConfig(inputs);
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_THAT(config.status().message(),
                HasSubstr("--set: embedding.document_text: expected full, task, task+outcome or task+lessons"));
  }
}

TEST_F(ConfigTest, InvalidServerAndToolValuesAreErrors) {
  ConfigInputs inputs = Inputs();
  inputs.flags.push_back({"server.max_body_bytes", "12", "--set"});
  Result<Config> config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("--set: server.max_body_bytes: must be between 1024 and"));

  inputs = Inputs();
  inputs.flags.push_back({"tools.disclosure", "some", "--set"});
  config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("tools.disclosure: unknown disclosure \"some\" (expected progressive or all)"));

  inputs = Inputs();
  inputs.flags.push_back({"tools.advanced_after_calls", "-1", "--set"});
  config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("tools.advanced_after_calls: must be between 0 and"));

  inputs = Inputs();
  inputs.flags.push_back({"tools.expert_after_calls", "2", "--set"});
  config = LoadConfig(inputs);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(),
              HasSubstr("--set: tools.expert_after_calls (2) must not be below tools.advanced_after_calls (3)"));
}

TEST_F(ConfigTest, KeysFileDefaultsToXdgConfigHomeAndExpandsTilde) {
  env_["XDG_CONFIG_HOME"] = "/conf";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->keys_file, "/conf/engram/api_keys.json");

  env_["XDG_CONFIG_HOME"] = "";
  env_["ENGRAM_AUTH_KEYS_FILE"] = "~/secrets/keys.json";
  config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->keys_file, dir_ + "/home/secrets/keys.json");
  EXPECT_EQ(ValueOf(*config, "auth.keys_file").value, dir_ + "/home/secrets/keys.json");
}

TEST_F(ConfigTest, KeysFileIsEmptyWithoutHome) {
  env_.clear();
  env_["ENGRAM_DB"] = "/tmp/x.db";
  Result<Config> config = LoadConfig(Inputs());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->keys_file, "");
}

}  // namespace
}  // namespace engram
