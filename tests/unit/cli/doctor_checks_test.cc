// `engram doctor`'s checks against real files: temp HOME folders with MCP client configs,
// stores that are missing, healthy, corrupt, foreign or from a newer engram, bad config
// files, an embedding endpoint on 127.0.0.1 (cpp-httplib) and one that is not there.
#include "cli/doctor_checks.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engram/clock.h"
#include "engram/sqlite_backend.h"
#include "server/open_retrieval.h"
#include "testing/episodes.h"
#include "testing/postgres.h"
#include "testing/temp_dir.h"
#include "testing/turso_server.h"

namespace engram::cli {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
namespace fs = std::filesystem;

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// An executable file named `name` in `dir`, standing in for an installed program.
std::string FakeProgram(const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  WriteFile(path, "#!/bin/sh\nexit 0\n");
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

void Sql(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

const DoctorCheck* Find(const std::vector<DoctorCheck>& checks, const std::string& name) {
  for (const DoctorCheck& c : checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

class DoctorChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.home = dir_.File("home");
    env_.config_home = env_.home + "/.config";
    env_.cwd = dir_.File("project");
    env_.path = dir_.File("bin");  // nothing installed unless a test puts it there
    env_.engram_binary = "/opt/engram/bin/engram";
    fs::create_directories(env_.home);
    fs::create_directories(env_.cwd);
    fs::create_directories(env_.path);
  }

  // The config a user with only `settings` (TOML) would get; the store in the temp folder.
  // `storage` adds lines to the [storage] table.
  Result<Config> Load(const std::string& toml = "", const std::string& storage = "") {
    WriteFile(dir_.File("config.toml"),
              "[storage]\ndb = \"" + Db() + "\"\n" + storage + "[sandbox]\nenabled = \"false\"\n" + toml);
    ConfigInputs inputs;
    inputs.config_file = dir_.File("config.toml");
    inputs.getenv = [](const char*) -> const char* { return nullptr; };
    return LoadConfig(inputs);
  }
  std::vector<DoctorCheck> Run(const std::string& toml = "", const std::string& storage = "") {
    Result<Config> config = Load(toml, storage);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return RunDoctorChecks(Result<const Config*>(&*config), env_);
  }

  std::string Db() const { return dir_.File("data/memory.db"); }

  // A store with `completed` completed episodes, written as engram writes it.
  void MakeStore(int completed) {
    SqliteOptions options;
    options.path = Db();
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    std::vector<Episode> episodes;
    for (int i = 0; i < completed; ++i) episodes.push_back(testing::Completed(testing::MakeEpisode(SystemClock())));
    if (!episodes.empty()) ASSERT_TRUE((*store)->PutEpisodes(episodes).ok());
  }

  testing::TempDir dir_;
  DoctorEnvironment env_;
};

TEST_F(DoctorChecksTest, HealthyStoreAndCacheAreOkAndNothingIsCreatedForAMissingOne) {
  std::vector<DoctorCheck> missing = Run();
  ASSERT_NE(Find(missing, "store"), nullptr);
  EXPECT_EQ(Find(missing, "store")->level, CheckLevel::kOk);
  EXPECT_THAT(Find(missing, "store")->detail, HasSubstr("not created yet"));
  EXPECT_FALSE(fs::exists(Db())) << "a check must not create the store";
  EXPECT_TRUE(DoctorHealthy(missing)) << FormatDoctorText(missing);

  MakeStore(3);
  std::vector<DoctorCheck> checks = Run();
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kOk) << store->detail;
  EXPECT_THAT(store->detail, HasSubstr("3 episodes (3 completed)"));
  EXPECT_THAT(store->detail, HasSubstr("integrity ok"));
  EXPECT_TRUE(DoctorHealthy(checks)) << FormatDoctorText(checks);
  EXPECT_THAT(FormatDoctorText(checks), HasSubstr("ok    store: sqlite at " + Db()));
}

TEST_F(DoctorChecksTest, CorruptStoreFailsWithAFix) {
  MakeStore(200);
  // Zero every page after the first: the header still says "engram", the b-trees are gone.
  {
    std::fstream f(Db(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    ASSERT_GT(size, 3 * 4096);
    f.seekp(4096);
    f << std::string(static_cast<size_t>(size - 4096), '\0');
  }
  std::vector<DoctorCheck> checks = Run();
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kFail) << store->detail;
  EXPECT_THAT(store->fix, HasSubstr("engram restore"));
  EXPECT_FALSE(DoctorHealthy(checks));
  EXPECT_THAT(FormatDoctorText(checks), HasSubstr("FAIL  store: "));
  EXPECT_THAT(FormatDoctorText(checks), HasSubstr("\n  fix: "));
}

TEST_F(DoctorChecksTest, ForeignAndNewerStoresFail) {
  WriteFile(Db(), std::string(8192, 'x'));
  std::vector<DoctorCheck> garbage = Run();
  EXPECT_EQ(Find(garbage, "store")->level, CheckLevel::kFail);

  fs::remove(Db());
  Sql(Db(), "CREATE TABLE notes(x)");
  std::vector<DoctorCheck> foreign = Run();
  EXPECT_EQ(Find(foreign, "store")->level, CheckLevel::kFail);
  EXPECT_THAT(Find(foreign, "store")->detail, HasSubstr("not an engram"));

  fs::remove(Db());
  MakeStore(1);
  Sql(Db(), "PRAGMA user_version = 99");
  std::vector<DoctorCheck> newer = Run();
  const DoctorCheck* store = Find(newer, "store");
  EXPECT_EQ(store->level, CheckLevel::kFail);
  EXPECT_THAT(store->detail, HasSubstr("newer engram"));
  EXPECT_THAT(store->fix, HasSubstr("upgrade engram"));
  EXPECT_FALSE(DoctorHealthy(newer));
}

TEST_F(DoctorChecksTest, ConfigErrorsFailWithLoadConfigsMessage) {
  Result<Config> unknown = Load("[cache]\nbogus = 3\n");
  ASSERT_FALSE(unknown.ok());
  Result<const Config*> as_ptr(unknown.status());
  std::vector<DoctorCheck> checks = RunDoctorChecks(as_ptr, env_);
  ASSERT_EQ(checks.front().name, "config");
  EXPECT_EQ(checks.front().level, CheckLevel::kFail);
  EXPECT_EQ(checks.front().detail, std::string(unknown.status().message()));
  EXPECT_FALSE(DoctorHealthy(checks));
  // The MCP client checks still run: they do not need the config.
  EXPECT_NE(Find(checks, "claude-code"), nullptr);

  // A config file that cannot be read (a folder where the file should be).
  fs::create_directories(dir_.File("folder.toml"));
  ConfigInputs inputs;
  inputs.config_file = dir_.File("folder.toml");
  inputs.getenv = [](const char*) -> const char* { return nullptr; };
  Result<Config> unreadable = LoadConfig(inputs);
  ASSERT_FALSE(unreadable.ok());
  DoctorCheck c = CheckConfigFile(Result<const Config*>(unreadable.status()));
  EXPECT_EQ(c.level, CheckLevel::kFail);
  EXPECT_THAT(c.detail, HasSubstr("folder.toml"));

  Result<Config> good = Load();
  ASSERT_TRUE(good.ok());
  DoctorCheck ok = CheckConfigFile(Result<const Config*>(&*good));
  EXPECT_EQ(ok.level, CheckLevel::kOk);
  EXPECT_THAT(ok.detail, HasSubstr(dir_.File("config.toml")));
}

TEST_F(DoctorChecksTest, NoMcpClientIsANoteNotAFailure) {
  std::vector<DoctorCheck> checks = CheckMcpClients(env_);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].name, "claude-code");
  EXPECT_EQ(checks[0].level, CheckLevel::kInfo);
  EXPECT_EQ(checks[1].name, "opencode");
  EXPECT_EQ(checks[1].level, CheckLevel::kInfo);
  EXPECT_TRUE(DoctorHealthy(checks));
}

TEST_F(DoctorChecksTest, ClaudeCodeInstalledWithoutEngramGetsTheCommandToAddIt) {
  FakeProgram(env_.path, "claude");
  WriteFile(env_.home + "/.claude.json", R"({"mcpServers": {"github": {"command": "gh-mcp"}}})");
  DoctorCheck c = CheckMcpClients(env_)[0];
  EXPECT_EQ(c.level, CheckLevel::kWarn) << c.detail;
  EXPECT_EQ(c.fix.rfind("claude mcp add --scope user engram -- /opt/engram/bin/engram serve", 0), 0u) << c.fix;
}

TEST_F(DoctorChecksTest, ClaudeCodeEntriesInEachScopeAreFound) {
  std::string engram = FakeProgram(dir_.File("opt"), "engram");
  // User scope.
  WriteFile(env_.home + "/.claude.json",
            json({{"mcpServers", {{"memory", {{"command", engram}, {"args", {"serve"}}}}}}}).dump());
  DoctorCheck user = CheckMcpClients(env_)[0];
  EXPECT_EQ(user.level, CheckLevel::kOk) << user.detail;
  EXPECT_THAT(user.detail, HasSubstr("~/.claude.json (user)"));

  // Local scope: under projects[<cwd>].
  WriteFile(env_.home + "/.claude.json",
            json({{"projects", {{env_.cwd, {{"mcpServers", {{"engram", {{"command", engram}, {"args", {"serve"}}}}}}}}}}})
                .dump());
  DoctorCheck local = CheckMcpClients(env_)[0];
  EXPECT_EQ(local.level, CheckLevel::kOk) << local.detail;
  EXPECT_THAT(local.detail, HasSubstr("local, this project"));

  // Project scope, over HTTP.
  WriteFile(env_.home + "/.claude.json", "{}");
  WriteFile(env_.cwd + "/.mcp.json", R"({"mcpServers": {"engram": {"type": "http", "url": "http://127.0.0.1:8765/mcp"}}})");
  DoctorCheck project = CheckMcpClients(env_)[0];
  EXPECT_EQ(project.level, CheckLevel::kOk) << project.detail;
  EXPECT_THAT(project.detail, HasSubstr(".mcp.json (project)"));
  EXPECT_THAT(project.detail, HasSubstr("http://127.0.0.1:8765/mcp"));
}

TEST_F(DoctorChecksTest, AnEngramEntryThatCannotRunFails) {
  WriteFile(env_.home + "/.claude.json",
            R"({"mcpServers": {"engram": {"command": "/nowhere/bin/engram", "args": ["serve"]}}})");
  DoctorCheck missing = CheckMcpClients(env_)[0];
  EXPECT_EQ(missing.level, CheckLevel::kFail);
  EXPECT_THAT(missing.detail, HasSubstr("/nowhere/bin/engram"));
  EXPECT_THAT(missing.fix, HasSubstr("claude mcp add"));

  FakeProgram(env_.path, "engram");  // found on PATH, but started without `serve`
  WriteFile(env_.home + "/.claude.json", R"({"mcpServers": {"engram": {"command": "engram"}}})");
  DoctorCheck no_serve = CheckMcpClients(env_)[0];
  EXPECT_EQ(no_serve.level, CheckLevel::kFail);
  EXPECT_THAT(no_serve.detail, HasSubstr("without `serve`"));
}

TEST_F(DoctorChecksTest, OpenCodeGlobalAndProjectFiles) {
  fs::create_directories(env_.config_home + "/opencode");  // installed, nothing configured
  DoctorCheck none = CheckMcpClients(env_)[1];
  EXPECT_EQ(none.level, CheckLevel::kWarn);
  EXPECT_THAT(none.fix, HasSubstr(R"({"mcp": {"engram": {"type": "local", "command": ["/opt/engram/bin/engram", "serve"]}}})"));

  std::string engram = FakeProgram(dir_.File("opt"), "engram");
  // JSONC with comments, as OpenCode accepts.
  WriteFile(env_.config_home + "/opencode/opencode.jsonc",
            "{\n  // memory for the agent\n  \"mcp\": {\"mem\": {\"type\": \"local\", \"command\": [\"" + engram +
                "\", \"serve\"]}}\n}\n");
  DoctorCheck global = CheckMcpClients(env_)[1];
  EXPECT_EQ(global.level, CheckLevel::kOk) << global.detail;
  EXPECT_THAT(global.detail, HasSubstr("(global)"));

  fs::remove(env_.config_home + "/opencode/opencode.jsonc");
  WriteFile(env_.cwd + "/opencode.json",
            R"({"mcp": {"engram": {"type": "remote", "url": "http://127.0.0.1:8765/mcp", "enabled": false}}})");
  DoctorCheck disabled = CheckMcpClients(env_)[1];
  EXPECT_EQ(disabled.level, CheckLevel::kFail);
  EXPECT_THAT(disabled.detail, HasSubstr("disabled"));

  WriteFile(env_.cwd + "/opencode.json", "{\"mcp\": ");
  DoctorCheck malformed = CheckMcpClients(env_)[1];
  EXPECT_EQ(malformed.level, CheckLevel::kWarn);
  EXPECT_THAT(malformed.detail, HasSubstr("not valid JSON"));
}

TEST_F(DoctorChecksTest, FreeSpaceThresholds) {
  const uint64_t GiB = uint64_t{1} << 30, MiB = uint64_t{1} << 20;
  EXPECT_EQ(CheckFreeSpace("/d", 50 * GiB, 100 * GiB).level, CheckLevel::kOk);
  EXPECT_EQ(CheckFreeSpace("/d", 2 * GiB, 100 * GiB).level, CheckLevel::kWarn);  // below 5%
  EXPECT_EQ(CheckFreeSpace("/d", 900 * MiB, 2 * GiB).level, CheckLevel::kWarn);  // below 1 GiB
  EXPECT_EQ(CheckFreeSpace("/d", 99 * MiB, 100 * GiB).level, CheckLevel::kFail);
  EXPECT_THAT(CheckFreeSpace("/d", 99 * MiB, 100 * GiB).detail, HasSubstr("99.0 MiB free"));
  // The real disk check runs for the store's folder.
  std::vector<DoctorCheck> checks = Run();
  ASSERT_NE(Find(checks, "disk"), nullptr);
  EXPECT_THAT(Find(checks, "disk")->detail, HasSubstr(" free of "));
}

TEST_F(DoctorChecksTest, EmbeddingProviders) {
  EXPECT_EQ(Find(Run(), "embedding")->level, CheckLevel::kOk);

  std::vector<DoctorCheck> none = Run("[embedding]\nprovider = \"none\"\n");
  EXPECT_EQ(Find(none, "embedding")->level, CheckLevel::kWarn);
  EXPECT_THAT(Find(none, "embedding")->detail, HasSubstr("lexical only"));

  // An endpoint that answers.
  httplib::Server server;
  server.Post("/v1/embeddings", [](const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body);
    json data = json::array();
    for (size_t i = 0; i < body["input"].size(); ++i) data.push_back({{"index", i}, {"embedding", {0.6, 0.8, 0.0, 0.0}}});
    res.set_content(json({{"data", data}}).dump(), "application/json");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  const std::string http = "[embedding]\nprovider = \"http\"\nmodel = \"m\"\ndimension = 4\nurl = \"http://127.0.0.1:" +
                           std::to_string(port) + "/v1/embeddings\"\n";
  std::vector<DoctorCheck> reachable = Run(http);
  EXPECT_EQ(Find(reachable, "embedding")->level, CheckLevel::kOk) << Find(reachable, "embedding")->detail;
  EXPECT_THAT(Find(reachable, "embedding")->detail, HasSubstr("answered, dimension 4"));

  std::vector<DoctorCheck> no_key = Run(http + "api_key_file = \"" + dir_.File("missing.key") + "\"\n");
  EXPECT_EQ(Find(no_key, "embedding")->level, CheckLevel::kFail);
  EXPECT_THAT(Find(no_key, "embedding")->detail, HasSubstr("missing.key"));
  server.stop();
  serving.join();

  // Nothing listens there any more.
  std::vector<DoctorCheck> down = Run(http);
  EXPECT_EQ(Find(down, "embedding")->level, CheckLevel::kFail);
  EXPECT_THAT(Find(down, "embedding")->fix, HasSubstr("embedding.url"));
}

TEST_F(DoctorChecksTest, VectorsOfAnotherProviderSayToReindex) {
  MakeStore(2);
  {
    // Index the episodes with the default provider (hashing, 256), as `engram serve` does.
    Result<Config> config = Load();
    ASSERT_TRUE(config.ok());
    SqliteOptions options;
    options.path = Db();
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok());
    Result<std::unique_ptr<server::RetrievalStack>> stack = server::OpenRetrieval(*config, **store, SystemClock());
    ASSERT_TRUE(stack.ok());
    ASSERT_TRUE((*stack)->OpenIndex().ok());
  }
  std::vector<DoctorCheck> same = Run();
  EXPECT_EQ(Find(same, "vectors")->level, CheckLevel::kOk) << Find(same, "vectors")->detail;
  EXPECT_THAT(Find(same, "vectors")->detail, HasSubstr("hashing/hash-v1/256"));

  std::vector<DoctorCheck> other = Run("[embedding]\ndimension = 128\n");
  const DoctorCheck* vectors = Find(other, "vectors");
  ASSERT_NE(vectors, nullptr);
  EXPECT_EQ(vectors->level, CheckLevel::kWarn);
  EXPECT_EQ(vectors->fix, "engram reindex");
  EXPECT_TRUE(DoctorHealthy(other));
}

TEST_F(DoctorChecksTest, UnreachablePostgresFails) {
  // A socket folder where no server listens.
  std::vector<DoctorCheck> checks =
      Run("", "url = \"postgresql://engram@/engram?host=" + dir_.File("no-server") + "\"\n");
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kFail);
  EXPECT_THAT(store->detail, HasSubstr("no-server"));
  EXPECT_THAT(store->fix, HasSubstr("storage.url"));
  EXPECT_FALSE(DoctorHealthy(checks));
  EXPECT_EQ(Find(checks, "disk"), nullptr) << "the store's disk is the server's";
}

TEST_F(DoctorChecksTest, ReachablePostgresIsOk) {
  if (std::string why = testing::TestPgSkipReason(); !why.empty()) GTEST_SKIP() << why;
  Result<std::string> conninfo = testing::TestPgSchema(dir_.path());
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  // storage.url takes a URL: the key=value pairs of ENGRAM_TEST_PG become its parameters.
  std::string url = "postgresql:///?";
  std::string schema = conninfo->substr(conninfo->find("search_path=") + 12);
  schema = schema.substr(0, schema.find_first_of("' &"));
  std::istringstream pairs(testing::TestPgConninfo());
  for (std::string pair; pairs >> pair;) url += pair + "&";
  url += "options=-csearch_path%3D" + schema;
  // The LMDB cache of a PostgreSQL store lives under $XDG_CACHE_HOME: here, the test's folder.
  ASSERT_EQ(setenv("XDG_CACHE_HOME", dir_.File("xdg-cache").c_str(), 1), 0);
  std::vector<DoctorCheck> checks = Run("", "url = \"" + url + "\"\n");
  const DoctorCheck* cache = Find(checks, "cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->level, CheckLevel::kOk) << cache->detail;
  EXPECT_THAT(cache->detail, HasSubstr(dir_.File("xdg-cache")));
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kOk) << store->detail;
  EXPECT_THAT(store->detail, HasSubstr("schema 4"));
  EXPECT_THAT(store->detail, HasSubstr("reachable"));
  EXPECT_TRUE(DoctorHealthy(checks)) << FormatDoctorText(checks);
}

TEST_F(DoctorChecksTest, UnreachableTursoFailsNamingTheToken) {
  // A loopback port where nothing listens.
  const int port = testing::internal::FreeLoopbackPort();
  std::vector<DoctorCheck> checks = Run("", "url = \"http://127.0.0.1:" + std::to_string(port) + "\"\n");
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kFail) << store->detail;
  EXPECT_THAT(store->detail, HasSubstr("turso http://127.0.0.1:" + std::to_string(port)));
  EXPECT_THAT(store->fix, HasSubstr("ENGRAM_TURSO_TOKEN"));
  EXPECT_FALSE(DoctorHealthy(checks));
  EXPECT_EQ(Find(checks, "disk"), nullptr) << "the store's disk is the server's";
}

TEST_F(DoctorChecksTest, ReachableTursoIsOk) {
  // A server of the test's own: the shared one holds other tests' tables, which a store refuses.
  Result<std::unique_ptr<testing::TursoServer>> server = testing::TursoServer::Start(dir_.File("turso.db"));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_EQ(setenv("XDG_CACHE_HOME", dir_.File("xdg-cache").c_str(), 1), 0);
  std::vector<DoctorCheck> checks = Run("", "url = \"" + (*server)->url() + "\"\n");
  const DoctorCheck* store = Find(checks, "store");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->level, CheckLevel::kOk) << store->detail;
  EXPECT_THAT(store->detail, HasSubstr("turso " + (*server)->url()));
  EXPECT_THAT(store->detail, HasSubstr("reachable"));
  const DoctorCheck* cache = Find(checks, "cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->level, CheckLevel::kOk) << cache->detail;
  EXPECT_THAT(cache->detail, HasSubstr("generation"));
  EXPECT_TRUE(DoctorHealthy(checks)) << FormatDoctorText(checks);
}

TEST_F(DoctorChecksTest, JsonHasTheSameChecks) {
  std::vector<DoctorCheck> checks = Run("[embedding]\nprovider = \"none\"\n");
  json j = DoctorJson(checks);
  EXPECT_EQ(j["healthy"], true);
  ASSERT_EQ(j["checks"].size(), checks.size());
  for (size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(j["checks"][i]["name"], checks[i].name);
    EXPECT_EQ(j["checks"][i]["level"], std::string(CheckLevelName(checks[i].level)));
    EXPECT_EQ(j["checks"][i]["detail"], checks[i].detail);
    EXPECT_EQ(j["checks"][i].contains("fix"), !checks[i].fix.empty());
  }
}

}  // namespace
}  // namespace engram::cli
