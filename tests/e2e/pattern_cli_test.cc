// Drives `engram pattern list|show|search|recommend|playbook|decay|reextract` through the
// built binary on a store in a temp folder: episodes recorded with the CLI, patterns
// rebuilt from them, every command's table and --json output, and decay applied for real
// to patterns aged in the store.
#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/shell.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class PatternCliTest : public ::testing::Test {
 protected:
  CliRun Engram(const std::string& args) {
    std::string err_file = dir_.File("stderr.txt");
    std::string cmd = "env -u ENGRAM_CONFIG XDG_CONFIG_HOME=" + testing::ShellQuote(dir_.File("config")) +
                      " ENGRAM_DB=" + testing::ShellQuote(dir_.File("memory.db")) + " " ENGRAM_BINARY " " + args +
                      " 2>" + testing::ShellQuote(err_file) + " </dev/null";
    testing::ShellResult shell = testing::RunShell(cmd);
    CliRun r;
    r.exit_code = shell.exit_code;
    r.out = std::move(shell.out);
    std::ifstream in(err_file);
    r.err.assign(std::istreambuf_iterator<char>(in), {});
    return r;
  }

  json Json(const std::string& args) {
    CliRun r = Engram("--json " + args);
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << args << ": " << r.out;
    return j;
  }

  std::string Start(const std::string& task = "Fix the flaky async retry test in payments") {
    CliRun r = Engram("episode create --task " + testing::ShellQuote(task) +
                      " --domain web-api --type debugging --language rust");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  void Step(const std::string& id, const std::string& tool, const std::string& action, const std::string& status) {
    CliRun r = Engram("episode log-step " + id + " --tool " + tool + " --action " + testing::ShellQuote(action) +
                      " --status " + status + " --latency-ms 300");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }

  // cargo test fails, the code is fixed, cargo test passes.
  std::string RecordFix() {
    std::string id = Start();
    Step(id, "cargo", "run test", "error");
    Step(id, "edit_file", "fix retry timeout", "success");
    Step(id, "cargo", "run test", "success");
    CliRun r = Engram("episode complete " + id + " --outcome success");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return id;
  }

  // Moves every pattern's last update `days` into the past, as if it had not been used since.
  void AgePatterns(int days) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.File("memory.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string sql = "UPDATE patterns SET updated_at = updated_at - " + std::to_string(int64_t{days} * 86'400'000) +
                      ", created_at = created_at - " + std::to_string(int64_t{days} * 86'400'000);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::string PatternOfType(const std::string& type) {
    const json list = Json("pattern list");
    for (const json& p : list["patterns"]) {
      if (p["type"] == type) return p["pattern_id"];
    }
    ADD_FAILURE() << "no " << type << " pattern in " << list.dump();
    return "";
  }

  testing::TempDir dir_;
};

TEST_F(PatternCliTest, AnEmptyStoreSaysSo) {
  CliRun list = Engram("pattern list");
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out, "No patterns yet.\n");
  EXPECT_EQ(Json("pattern list"), json({{"patterns", json::array()}}));
  EXPECT_EQ(Json("pattern search 'cargo test'"), json({{"patterns", json::array()}}));
  EXPECT_EQ(Json("pattern recommend 'fix a test'")["recommendations"], json::array());
  EXPECT_EQ(Json("pattern playbook 'fix a test'")["playbook"]["steps"], json::array());
  CliRun decay = Engram("pattern decay");
  EXPECT_EQ(decay.exit_code, 0) << decay.err;
  EXPECT_THAT(decay.out, HasSubstr("nothing changed"));
  json re = Json("pattern reextract");
  EXPECT_EQ(re["episodes"], 0);
  EXPECT_EQ(re["patterns"], 0);
}

TEST_F(PatternCliTest, ReextractBuildsPatternsFromStoredEpisodes) {
  std::vector<std::string> episodes;
  for (int i = 0; i < 3; ++i) episodes.push_back(RecordFix());
  // The CLI records episodes without the pipeline; they wait for serve or reextract.
  CliRun waiting = Engram("pattern list");
  EXPECT_THAT(waiting.out, HasSubstr("waiting for pattern extraction"));

  CliRun re = Engram("pattern reextract");
  ASSERT_EQ(re.exit_code, 0) << re.err;
  EXPECT_THAT(re.out, HasSubstr("re-extracted 3 episodes"));
  EXPECT_THAT(re.err, Not(HasSubstr("[#"))) << "no progress bar when stderr is not a terminal";

  CliRun table = Engram("pattern list");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  for (const char* column : {"PATTERN_ID", "TYPE", "OCCURRENCES", "SUCCESS", "EFFECTIVENESS", "DESCRIPTION"}) {
    EXPECT_THAT(table.out, HasSubstr(column));
  }
  json all = Json("pattern list")["patterns"];
  std::set<std::string> types;
  for (const json& p : all) {
    types.insert(p["type"]);
    EXPECT_EQ(p["occurrences"], 3) << p.dump();
    EXPECT_EQ(p["success_rate"], 1.0);
  }
  EXPECT_EQ(types, (std::set<std::string>{"tool_sequence", "decision_point", "error_recovery", "context_pattern"}));
  EXPECT_EQ(Json("pattern list --type tool_sequence")["patterns"].size(), 1u);
  EXPECT_EQ(Json("pattern list --limit 2")["patterns"].size(), 2u);
  EXPECT_EQ(Json("pattern list --domain billing")["patterns"].size(), 0u);
  EXPECT_EQ(Json("pattern list --min-success 0.9")["patterns"].size(), all.size());

  // Rebuilding again gives the same patterns (new ids), not doubled counts.
  json again = Json("pattern reextract");
  EXPECT_EQ(again["episodes"], 3);
  EXPECT_EQ(again["patterns"], all.size());
  EXPECT_EQ(again["failures"], 0);
  const json rebuilt = Json("pattern list");
  for (const json& p : rebuilt["patterns"]) EXPECT_EQ(p["occurrences"], 3);
}

TEST_F(PatternCliTest, ShowPrintsEverything) {
  std::vector<std::string> episodes;
  for (int i = 0; i < 3; ++i) episodes.push_back(RecordFix());
  Json("pattern reextract");
  std::string sequence = PatternOfType("tool_sequence");
  CliRun show = Engram("pattern show " + sequence);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  for (const char* part : {"Type:          tool_sequence", "Body:", "\"tools\"", "Effectiveness:", "Evidence:",
                           "success rate 1.00", "domain web-api, language rust"}) {
    EXPECT_THAT(show.out, HasSubstr(part));
  }
  for (const std::string& e : episodes) EXPECT_THAT(show.out, HasSubstr(e));

  json j = Json("pattern show " + sequence);
  EXPECT_EQ(j["pattern_id"], sequence);
  EXPECT_EQ(j["body"]["tools"], json({"cargo", "edit_file", "cargo"}));
  EXPECT_EQ(j["evidence"].size(), 3u);
  EXPECT_TRUE(j["effectiveness_score"].is_number());

  // The decision point seen three times became a heuristic, shown with it.
  json decision = Json("pattern show " + PatternOfType("decision_point"));
  ASSERT_EQ(decision["heuristics"].size(), 1u) << decision.dump();
  EXPECT_THAT(decision["heuristics"][0]["condition"].get<std::string>(), HasSubstr("cargo"));

  CliRun missing = Engram("pattern show 0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no pattern"));
}

TEST_F(PatternCliTest, SearchRecommendAndPlaybook) {
  for (int i = 0; i < 3; ++i) RecordFix();
  Json("pattern reextract");

  json found = Json("pattern search 'cargo test' --limit 2");
  EXPECT_EQ(found["patterns"].size(), 2u);
  EXPECT_GT(found["patterns"][0]["score"].get<double>(), 0.0);
  EXPECT_EQ(Json("pattern search 'cargo' --type error_recovery")["patterns"].size(), 1u);
  CliRun table = Engram("pattern search 'cargo test'");
  EXPECT_THAT(table.out, HasSubstr("SCORE"));
  CliRun no_words = Engram("pattern search a");
  EXPECT_EQ(no_words.exit_code, 1);
  EXPECT_THAT(no_words.err, HasSubstr("query"));

  json recs = Json("pattern recommend 'fix the failing cargo test' --domain web-api --limit 3")["recommendations"];
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_THAT(recs[0]["why"].get<std::string>(), HasSubstr("text match"));
  CliRun human = Engram("pattern recommend 'fix the failing cargo test' --domain web-api");
  EXPECT_THAT(human.out, HasSubstr("why: "));

  // --episode records what was shown to an episode in progress.
  std::string working = Start("Fix the cargo test of the retry client");
  json shown = Json("pattern recommend 'fix the failing cargo test' --limit 1 --episode " + working);
  ASSERT_EQ(shown["recommendations"].size(), 1u);
  EXPECT_EQ(shown["episode_id"], working);
  json pattern = Json("pattern show " + shown["recommendations"][0]["pattern_id"].get<std::string>());
  EXPECT_EQ(pattern["effectiveness"]["times_retrieved"], 1);
  Engram("episode complete " + working + " --outcome failure --reason 'gave up'");
  CliRun completed = Engram("pattern recommend 'fix the failing cargo test' --episode " + working);
  EXPECT_EQ(completed.exit_code, 1);
  EXPECT_THAT(completed.err, HasSubstr("already completed"));

  json book = Json("pattern playbook 'fix the failing cargo test' --domain web-api")["playbook"];
  ASSERT_EQ(book["steps"].size(), 3u) << book.dump();
  EXPECT_EQ(book["steps"][0]["tool"], "cargo");
  EXPECT_EQ(book["steps"][1]["tool"], "edit_file");
  EXPECT_EQ(book["steps"][1]["action"], "fix retry timeout");
  EXPECT_GT(book["confidence"].get<double>(), 0.0);
  EXPECT_EQ(Json("pattern playbook 'fix the failing cargo test' --max-steps 1")["playbook"]["steps"].size(), 1u);
  CliRun printed = Engram("pattern playbook 'fix the failing cargo test'");
  EXPECT_THAT(printed.out, HasSubstr("Playbook (confidence"));
  EXPECT_THAT(printed.out, HasSubstr("1. cargo: run test"));
  EXPECT_THAT(printed.out, HasSubstr("Pitfalls:"));
  CliRun too_many = Engram("pattern playbook 'fix the failing cargo test' --max-steps 50");
  EXPECT_EQ(too_many.exit_code, 1);
  EXPECT_THAT(too_many.err, HasSubstr("max_steps"));
}

TEST_F(PatternCliTest, DecayChangesAgedPatternsAndPrintsWhatChanged) {
  for (int i = 0; i < 2; ++i) RecordFix();
  Json("pattern reextract");
  const size_t patterns = Json("pattern list")["patterns"].size();
  ASSERT_GT(patterns, 0u);
  // Fresh patterns: nothing to decay.
  json fresh = Json("pattern decay");
  EXPECT_EQ(fresh["examined"], patterns);
  EXPECT_EQ(fresh["changes"], json::array());

  // Unused for 60 days with the default 30-day half-life: a quarter of their weight.
  AgePatterns(60);
  CliRun decay = Engram("pattern decay");
  ASSERT_EQ(decay.exit_code, 0) << decay.err;
  EXPECT_THAT(decay.out, HasSubstr("1.000"));
  EXPECT_THAT(decay.out, HasSubstr("0.250"));
  EXPECT_THAT(decay.out, HasSubstr(std::to_string(patterns) + " of " + std::to_string(patterns) + " patterns changed"));
  const json decayed = Json("pattern list");
  for (const json& p : decayed["patterns"]) {
    EXPECT_NEAR(p["decay_weight"].get<double>(), 0.25, 0.01) << "the new weight is stored";
  }
  // Applied again at once: nothing left to change.
  EXPECT_THAT(Engram("pattern decay").out, HasSubstr("nothing changed"));

  // A shorter half-life from the config decays further, and --json lists each change.
  AgePatterns(10);
  json more = Json("--set learning.decay_half_life_days=10 pattern decay");
  EXPECT_EQ(more["half_life_days"], 10);
  ASSERT_EQ(more["changes"].size(), patterns);
  for (const json& c : more["changes"]) {
    EXPECT_NEAR(c["old_weight"].get<double>(), 0.25, 0.01);
    EXPECT_LT(c["new_weight"].get<double>(), c["old_weight"].get<double>());
    EXPECT_FALSE(c["description"].get<std::string>().empty());
  }
}

}  // namespace
}  // namespace engram
