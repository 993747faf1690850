// Drives the built `engram` binary as a person or a script would, on a store in a temp
// folder: every episode command, --json output, exit codes and one-line errors.
#include <stdio.h>
#include <sys/wait.h>

#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/shell.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using nlohmann::json;

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  // Runs `engram ARGS` with ENGRAM_DB pointing into the temp folder and no config file.
  CliRun Engram(const std::string& args, const std::string& env = "") {
    std::string err_file = dir_.File("stderr.txt");
    std::string cmd = "env -u ENGRAM_CONFIG XDG_CONFIG_HOME=" + testing::ShellQuote(dir_.File("config")) +
                      " ENGRAM_DB=" + testing::ShellQuote(dir_.File("memory.db")) + " " + env + " " ENGRAM_BINARY " " + args +
                      " 2>" + testing::ShellQuote(err_file);
    testing::ShellResult shell = testing::RunShell(cmd);
    CliRun r;
    r.exit_code = shell.exit_code;
    r.out = std::move(shell.out);
    std::ifstream in(err_file);
    r.err.assign(std::istreambuf_iterator<char>(in), {});
    return r;
  }

  std::string Create(const std::string& extra = "") {
    CliRun r = Engram("episode create --task 'Fix the flaky async test' --domain web-api --type debugging " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 36u) << r.out;
    return id;
  }

  testing::TempDir dir_;
};

TEST_F(CliTest, RecordAndInspectAnEpisode) {
  std::string id = Create("--language rust --framework tokio --complexity complex --tag async --tag ci");
  CliRun s1 = Engram("episode log-step " + id + " --tool bash --action 'cargo test' --status error --message 'timed out'");
  EXPECT_EQ(s1.exit_code, 0) << s1.err;
  EXPECT_EQ(s1.out, "step 1\n");
  EXPECT_EQ(Engram("episode log-step " + id + " --tool edit_file --action 'pause time' --status success "
                   "--params '{\"path\":\"src/lib.rs\"}' --latency-ms 40").out,
            "step 2\n");
  CliRun s3 = Engram("--json episode log-step " + id + " --tool bash --action 'cargo test' --status success --output 'ok'");
  EXPECT_EQ(json::parse(s3.out), json({{"episode_id", id}, {"step_number", 3}}));

  CliRun done = Engram("--json episode complete " + id +
                    " --outcome success --verdict green --artifact src/lib.rs --tests-passed 48 --build-ok true");
  ASSERT_EQ(done.exit_code, 0) << done.err;
  json d = json::parse(done.out);
  EXPECT_EQ(d["episode_id"], id);
  EXPECT_GT(d["reward"]["total"].get<double>(), 1.0);
  EXPECT_FALSE(d["reflection"]["successes"].empty());

  CliRun got = Engram("--json episode get " + id);
  ASSERT_EQ(got.exit_code, 0) << got.err;
  json e = json::parse(got.out);
  EXPECT_EQ(e["task_description"], "Fix the flaky async test");
  EXPECT_EQ(e["context"]["language"], "rust");
  EXPECT_EQ(e["context"]["complexity"], "complex");
  EXPECT_EQ(e["tags"], json({"async", "ci"}));
  ASSERT_EQ(e["steps"].size(), 3u);
  EXPECT_EQ(e["steps"][0]["result"]["status"], "error");
  EXPECT_EQ(e["steps"][1]["parameters"]["path"], "src/lib.rs");
  EXPECT_EQ(e["outcome"]["type"], "success");
  EXPECT_EQ(e["outcome"]["verification"]["tests_passed"], 48);

  CliRun human = Engram("episode get " + id);
  EXPECT_NE(human.out.find("Reward: "), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("Reflection:"), std::string::npos);
  EXPECT_NE(human.out.find("cargo test"), std::string::npos);
}

TEST_F(CliTest, ListShowsNewestFirstAndFilters) {
  std::string a = Create();
  std::string b = Create();
  EXPECT_EQ(Engram("episode create --task 'Write docs' --domain docs").exit_code, 0);
  Engram("episode complete " + a + " --outcome failure --reason 'gave up'");
  CliRun table = Engram("episode list");
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("EPISODE_ID"), std::string::npos);
  EXPECT_LT(table.out.find(b), table.out.find(a));  // newest first
  EXPECT_NE(table.out.find("failure"), std::string::npos);
  EXPECT_NE(table.out.find("in progress"), std::string::npos);

  CliRun lines = Engram("--json episode list --domain web-api");
  std::vector<json> items;
  std::istringstream in(lines.out);
  for (std::string line; std::getline(in, line);) items.push_back(json::parse(line));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0]["episode_id"], b);
  EXPECT_EQ(Engram("--json episode list --status completed").out.find(a) != std::string::npos, true);
  EXPECT_EQ(Engram("--json episode list --status in_progress").out.find(a), std::string::npos);
  EXPECT_EQ(Engram("--json episode list -n 1").out.find(a), std::string::npos);
}

TEST_F(CliTest, DeleteNeedsConfirmation) {
  std::string id = Create();
  CliRun refused = Engram("episode delete " + id);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--yes"), std::string::npos);
  EXPECT_EQ(Engram("episode get " + id).exit_code, 0);
  EXPECT_EQ(Engram("episode delete " + id + " --yes").exit_code, 0);
  CliRun gone = Engram("episode get " + id);
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_EQ(gone.err, "engram: no episode " + id + "\n");
}

TEST_F(CliTest, BadInputGetsOneLineErrorsAndNonZeroExit) {
  std::string id = Create();
  struct Case {
    std::string args;
    int code;
    std::string err;
  };
  std::vector<Case> cases = {
      {"episode create --task ''", 1, "engram: task_description: must not be empty\n"},
      {"episode create --task x --type sleeping", 1, "engram: unknown task_type \"sleeping\""},
      {"episode get 1234", 1, "is not an episode id"},
      {"episode log-step 01a21d68-d802-7102-a72c-9ab47495f4e8 --tool a --action b", 1, "no episode"},
      {"episode complete " + id + " --outcome maybe", 1, "unknown outcome \"maybe\""},
      {"episode complete " + id + " --outcome failure", 1, "needs --reason"},
      {"episode log-step " + id + " --tool a --action b --params '[1]'", 1, "parameters: expected a JSON object"},
      {"episode log-step " + id + " --tool a --action b --status maybe", 1, "unknown step status"},
      {"episode frobnicate", 2, ""},
      {"episode create", 2, "--task"},
  };
  for (const Case& c : cases) {
    CliRun r = Engram(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.err), std::string::npos) << c.args << "\n" << r.err;
    if (c.code == 1) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  // --json errors are machine-readable too.
  CliRun j = Engram("--json episode get " + std::string("01a21d68-d802-7102-a72c-9ab47495f4e8"));
  EXPECT_EQ(json::parse(j.out)["error"]["code"], "NOT_FOUND");
  // A step after completion.
  ASSERT_EQ(Engram("episode complete " + id + " --outcome success").exit_code, 0);
  CliRun late = Engram("episode log-step " + id + " --tool a --action b --status success");
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_NE(late.err.find("already completed"), std::string::npos);
  // The refused step left nothing behind.
  EXPECT_EQ(json::parse(Engram("--json episode get " + id).out)["steps"].size(), 0u);
}

TEST_F(CliTest, CorruptOrForeignDatabaseIsRefused) {
  std::ofstream(dir_.File("garbage.db")) << std::string(8192, 'g');
  CliRun r = Engram("--db " + dir_.File("garbage.db") + " episode list");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a SQLite database or is corrupt"), std::string::npos) << r.err;
}

TEST_F(CliTest, ConfigShowReportsValuesAndSources) {
  std::filesystem::create_directories(dir_.File("config/engram"));
  std::ofstream(dir_.File("config/engram/config.toml")) << "[storage]\ndurability = \"normal\"\n[log]\nlevel = \"warn\"\n";
  CliRun r = Engram("config show --set storage.busy_timeout_ms=2500", "ENGRAM_LOG_LEVEL=error");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("storage\\.durability +normal +restart +file ")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("log\\.level +error +live +env ENGRAM_LOG_LEVEL")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("storage\\.busy_timeout_ms +2500 +restart +flag --set")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("storage\\.db +.*memory\\.db +restart +env ENGRAM_DB")));
  CliRun flag = Engram("config show --db /tmp/x.db --json");
  json j = json::parse(flag.out);
  bool found = false;
  for (const json& v : j["values"]) {
    if (v["key"] == "storage.db") {
      EXPECT_EQ(v["value"], "/tmp/x.db");
      EXPECT_EQ(v["origin"], "--db");
      EXPECT_EQ(v["live"], false);  // the store needs a restart
      found = true;
    }
  }
  EXPECT_TRUE(found);
  CliRun bad = Engram("config show --set storage.durability=fast");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("unknown durability \"fast\""), std::string::npos) << bad.err;
}

TEST_F(CliTest, DoctorReportsEachCheckAndFailsOnABrokenStore) {
  CliRun ok = Engram("doctor");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("ok    store: sqlite at"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("sandbox.landlock"), std::string::npos) << ok.out;
  json j = json::parse(Engram("--json doctor").out);
  EXPECT_EQ(j["healthy"], true);
  EXPECT_FALSE(j["checks"].empty());

  std::ofstream(dir_.File("broken.db")) << std::string(8192, 'x');
  CliRun broken = Engram("--db " + dir_.File("broken.db") + " doctor");
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.out.find("FAIL  store:"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("fix:"), std::string::npos);
}

TEST_F(CliTest, VersionAndDemo) {
  CliRun v = Engram("version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("engram ", 0), 0u);
  CliRun demo = Engram("demo");
  ASSERT_EQ(demo.exit_code, 0) << demo.err;
  EXPECT_NE(demo.out.find("recording a sample episode"), std::string::npos);
  EXPECT_NE(demo.out.find("1 episodes (1 completed)"), std::string::npos) << demo.out;
  CliRun again = Engram("demo");  // records nothing the second time
  EXPECT_NE(again.out.find("1 episodes (1 completed)"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace engram
