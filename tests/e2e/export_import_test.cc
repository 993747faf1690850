// Drives the built `engram` binary: export -> import into a fresh store -> export is
// byte-identical; import merges by id (added / updated / skipped), reports bad lines by
// number and field (and with --strict writes nothing), redacts secrets like live writes;
// `engram storage stats|verify|vacuum|migrate`.
#include <stdio.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A GitHub token shape: ghp_ + 36 alphanumerics.
const std::string kToken = "ghp_" + std::string("aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A");

class ExportImportTest : public ::testing::Test {
 protected:
  // Runs `engram --db STORE ARGS` with no config file.
  CliRun Engram(const std::string& store, const std::string& args) {
    std::string err_file = dir_.File("stderr.txt");
    std::string cmd = "env -u ENGRAM_CONFIG -u ENGRAM_STORE XDG_CONFIG_HOME=" + testing::ShellQuote(dir_.File("config")) +
                      " " ENGRAM_BINARY " --db " + testing::ShellQuote(dir_.File(store)) + " " + args + " 2>" + testing::ShellQuote(err_file);
    testing::ShellResult shell = testing::RunShell(cmd);
    CliRun r;
    r.exit_code = shell.exit_code;
    r.out = std::move(shell.out);
    r.err = ReadFile(err_file);
    return r;
  }

  std::string Create(const std::string& store, const std::string& args) {
    CliRun r = Engram(store, "episode create " + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  // Three episodes: one completed with steps, parameters and metadata, one in progress, one
  // in another domain.
  std::vector<std::string> Populate(const std::string& store) {
    std::string a = Create(store, "--task 'Fix the flaky async test' --domain web-api --type debugging "
                                  "--language rust --tag flaky --metadata '{\"ticket\":\"WEB-12\",\"n\":3}'");
    EXPECT_EQ(Engram(store, "episode log-step " + a +
                                " --tool bash --action 'cargo test' --status error --message 'timed out' "
                                "--params '{\"cmd\":\"cargo test\",\"env\":{\"RUST_LOG\":\"debug\"}}' --latency-ms 1200")
                  .exit_code,
              0);
    EXPECT_EQ(Engram(store, "episode log-step " + a + " --tool edit_file --action 'pause time' --status success "
                                "--output '1 hunk' --tokens 42")
                  .exit_code,
              0);
    EXPECT_EQ(Engram(store, "episode complete " + a + " --outcome success --verdict 'deterministic now' "
                                "--artifact src/handlers.rs --tests-passed 48 --tests-failed 0 --build-ok true "
                                "--coverage 81.5")
                  .exit_code,
              0);
    std::string b = Create(store, "--task 'Document the retry policy' --domain docs --type documentation");
    std::string c = Create(store, "--task 'Add retry to the HTTP client' --domain web-api --complexity complex");
    EXPECT_EQ(Engram(store, "episode log-step " + c + " --tool read_file --action 'read client.rs'").exit_code, 0);
    return {a, b, c};
  }

  testing::TempDir dir_;
};

TEST_F(ExportImportTest, ExportImportExportIsByteIdentical) {
  std::vector<std::string> ids = Populate("a.db");
  CliRun ex = Engram("a.db", "export --output " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.out.find("exported 3 episodes"), std::string::npos) << ex.out;
  std::string a = ReadFile(dir_.File("a.jsonl"));
  std::vector<std::string> lines = Lines(a);
  ASSERT_EQ(lines.size(), 3u) << a;
  // Oldest first, steps included, compact one object per line.
  for (size_t i = 0; i < 3; ++i) {
    json j = json::parse(lines[i]);
    EXPECT_EQ(j["episode_id"], ids[i]);
    EXPECT_EQ(j.dump(), lines[i]);
  }
  EXPECT_EQ(json::parse(lines[0])["steps"].size(), 2u);
  EXPECT_EQ(json::parse(lines[2])["steps"].size(), 1u);
  // stdout export is the same bytes; a second export too.
  EXPECT_EQ(Engram("a.db", "export").out, a);
  EXPECT_EQ(Engram("a.db", "export --format jsonl -o -").out, a);

  CliRun im = Engram("b.db", "import " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(im.out, "added 3, updated 0, skipped 0, errors 0\n");
  EXPECT_EQ(Engram("b.db", "export").out, a);

  // The imported episode reads back as it was.
  CliRun got = Engram("b.db", "--json episode get " + ids[0]);
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(json::parse(got.out), json::parse(lines[0]));
}

TEST_F(ExportImportTest, ExportFiltersByDomain) {
  std::vector<std::string> ids = Populate("a.db");
  std::vector<std::string> lines = Lines(Engram("a.db", "export --domain web-api").out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0])["episode_id"], ids[0]);
  EXPECT_EQ(json::parse(lines[1])["episode_id"], ids[2]);
  EXPECT_EQ(Engram("a.db", "export --domain nowhere").out, "");
  CliRun bad = Engram("a.db", "export --format csv");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--format"), std::string::npos) << bad.err;
}

TEST_F(ExportImportTest, ImportIsIdempotentAndMergesById) {
  Populate("a.db");
  ASSERT_EQ(Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl"))).exit_code, 0);
  std::string file = testing::ShellQuote(dir_.File("a.jsonl"));
  EXPECT_EQ(Engram("b.db", "import " + file).out, "added 3, updated 0, skipped 0, errors 0\n");
  EXPECT_EQ(Engram("b.db", "import " + file).out, "added 0, updated 0, skipped 3, errors 0\n");
  // Importing into the store it came from changes nothing either.
  EXPECT_EQ(Engram("a.db", "import " + file).out, "added 0, updated 0, skipped 3, errors 0\n");

  // One modified line: updated (replaced), the others skipped.
  std::vector<std::string> lines = Lines(ReadFile(dir_.File("a.jsonl")));
  json first = json::parse(lines[0]);
  first["task_description"] = "Fix the flaky async test (for real)";
  first["steps"][0]["result"]["message"] = "timed out after 60 s";
  lines[0] = first.dump();
  std::string modified;
  for (const std::string& l : lines) modified += l + "\n";
  WriteFile(dir_.File("m.jsonl"), modified);
  CliRun up = Engram("b.db", "--json import " + testing::ShellQuote(dir_.File("m.jsonl")));
  ASSERT_EQ(up.exit_code, 0) << up.err;
  json counts = json::parse(up.out);
  EXPECT_EQ(counts["added"], 0);
  EXPECT_EQ(counts["updated"], 1);
  EXPECT_EQ(counts["skipped"], 2);
  EXPECT_EQ(counts["errors"], 0);
  json got = json::parse(Engram("b.db", "--json episode get " + first["episode_id"].get<std::string>()).out);
  EXPECT_EQ(got, first);
  EXPECT_EQ(Engram("b.db", "export").out, modified);

  // From stdin too.
  CliRun again = Engram("b.db", "import - < " + testing::ShellQuote(dir_.File("m.jsonl")));
  EXPECT_EQ(again.out, "added 0, updated 0, skipped 3, errors 0\n") << again.err;
}

TEST_F(ExportImportTest, BadLinesAreReportedAndSkippedOrWithStrictNothingIsWritten) {
  Populate("a.db");
  std::vector<std::string> lines = Lines(Engram("a.db", "export").out);
  ASSERT_EQ(lines.size(), 3u);
  json no_tool = json::parse(lines[0]);
  no_tool["steps"][1].erase("tool");
  json bad_id = json::parse(lines[1]);
  bad_id["episode_id"] = "not-an-id";
  std::string text = lines[0].substr(0, 0) + "{not json\n" + lines[1] + "\n\n" + no_tool.dump() + "\n" +
                     bad_id.dump() + "\n" + lines[2] + "\n";
  // Line 1: not JSON; 2: good; 3: blank; 4: steps[1].tool missing; 5: bad id; 6: good.
  WriteFile(dir_.File("bad.jsonl"), text);
  std::string file = testing::ShellQuote(dir_.File("bad.jsonl"));

  CliRun strict = Engram("c.db", "import --strict " + file);
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("line 1: not valid JSON"), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("line 4: episode.steps[1].tool: missing required field"), std::string::npos)
      << strict.err;
  EXPECT_NE(strict.err.find("line 5: episode.episode_id"), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("nothing was imported"), std::string::npos) << strict.err;
  EXPECT_EQ(Engram("c.db", "export").out, "");
  CliRun strict_stdin = Engram("c.db", "import --strict - < " + file);
  EXPECT_EQ(strict_stdin.exit_code, 1);
  EXPECT_EQ(Engram("c.db", "export").out, "");

  CliRun r = Engram("c.db", "import " + file);
  EXPECT_EQ(r.exit_code, 1);  // the good lines are imported; the exit code says some were not
  EXPECT_EQ(r.out, "added 2, updated 0, skipped 0, errors 3\n");
  EXPECT_NE(r.err.find("line 4: episode.steps[1].tool: missing required field"), std::string::npos) << r.err;
  EXPECT_EQ(Engram("c.db", "export").out, lines[1] + "\n" + lines[2] + "\n");

  CliRun j = Engram("d.db", "--json import " + file);
  json counts = json::parse(j.out.substr(0, j.out.find('\n')));
  EXPECT_EQ(counts["errors"], 3);
  EXPECT_EQ(counts["error_lines"][0]["line"], 1);
  EXPECT_EQ(counts["error_lines"][1]["line"], 4);
  EXPECT_EQ(counts["error_lines"][2]["line"], 5);

  // A strict import of good data works.
  ASSERT_EQ(Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl"))).exit_code, 0);
  CliRun ok = Engram("e.db", "import --strict " + testing::ShellQuote(dir_.File("a.jsonl")));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "added 3, updated 0, skipped 0, errors 0\n");
}

TEST_F(ExportImportTest, ImportRedactsSecretsLikeLiveWrites) {
  Populate("a.db");
  std::vector<std::string> lines = Lines(Engram("a.db", "export").out);
  json e = json::parse(lines[0]);
  e["task_description"] = "Push with token " + kToken;
  e["steps"][0]["result"]["output"] = "export GITHUB_TOKEN=" + kToken + "\nok";
  e["steps"][0]["parameters"]["headers"] = {{"Authorization", "Bearer " + kToken}};
  WriteFile(dir_.File("secret.jsonl"), e.dump() + "\n");
  CliRun r = Engram("s.db", "import " + testing::ShellQuote(dir_.File("secret.jsonl")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "added 1, updated 0, skipped 0, errors 0\n");
  EXPECT_EQ(r.err.find(kToken), std::string::npos);

  std::string exported = Engram("s.db", "export").out;
  EXPECT_EQ(exported.find(kToken), std::string::npos) << exported;
  EXPECT_EQ(exported.find("ghp_"), std::string::npos) << exported;
  json back = json::parse(exported);
  EXPECT_EQ(back["task_description"], "Push with token [REDACTED:github_token]");
  EXPECT_NE(back["steps"][0]["result"]["output"].get<std::string>().find("[REDACTED:github_token]"),
            std::string::npos);
  // The database files hold no trace of it (checkpointed by vacuum).
  ASSERT_EQ(Engram("s.db", "storage vacuum").exit_code, 0);
  EXPECT_EQ(ReadFile(dir_.File("s.db")).find(kToken), std::string::npos);
  EXPECT_EQ(ReadFile(dir_.File("s.db-wal")).find(kToken), std::string::npos);

  // Importing the same secret again: the redacted form is already stored, so skipped.
  EXPECT_EQ(Engram("s.db", "import " + testing::ShellQuote(dir_.File("secret.jsonl"))).out,
            "added 0, updated 0, skipped 1, errors 0\n");

  // redaction.mode = reject: the line is an error naming the field, nothing stored.
  CliRun rej = Engram("r.db", "--set redaction.mode=reject import " + testing::ShellQuote(dir_.File("secret.jsonl")));
  EXPECT_EQ(rej.exit_code, 1);
  EXPECT_NE(rej.err.find("line 1: episode."), std::string::npos) << rej.err;
  EXPECT_NE(rej.err.find("github_token"), std::string::npos) << rej.err;
  EXPECT_EQ(rej.err.find(kToken), std::string::npos) << rej.err;
  EXPECT_EQ(Engram("r.db", "export").out, "");
}

TEST_F(ExportImportTest, StorageStatsVerifyVacuumMigrate) {
  Populate("a.db");
  CliRun stats = Engram("a.db", "--json storage stats");
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  json s = json::parse(stats.out);
  EXPECT_EQ(s["backend"], "sqlite");
  EXPECT_EQ(s["episodes"], 3);
  EXPECT_EQ(s["completed_episodes"], 1);
  EXPECT_EQ(s["steps"], 3);
  EXPECT_GE(s["schema_version"].get<int>(), 1);
  EXPECT_NE(s["location"].get<std::string>().find("a.db"), std::string::npos);
  EXPECT_GT(s["files"]["db"].get<int64_t>(), 0);
  EXPECT_TRUE(s["files"].contains("wal"));
  EXPECT_TRUE(s["files"].contains("cache"));
  CliRun text = Engram("a.db", "storage stats");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("episodes:  3 (1 completed)"), std::string::npos) << text.out;

  CliRun verify = Engram("a.db", "storage verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("ok: 3 episodes read, 0 bad"), std::string::npos) << verify.out;
  json v = json::parse(Engram("a.db", "--json storage verify").out);
  EXPECT_EQ(v["ok"], true);
  EXPECT_EQ(v["checked"], 3);

  CliRun vac = Engram("a.db", "storage vacuum");
  EXPECT_EQ(vac.exit_code, 0) << vac.err;
  EXPECT_NE(vac.out.find("vacuumed"), std::string::npos);
  EXPECT_EQ(Lines(Engram("a.db", "export").out).size(), 3u);

  json fresh = json::parse(Engram("new.db", "--json storage migrate").out);
  EXPECT_EQ(fresh["schema_version_before"], 0);
  EXPECT_GE(fresh["schema_version_after"].get<int>(), 1);
  CliRun again = Engram("a.db", "storage migrate");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("(already current)"), std::string::npos) << again.out;
}

TEST_F(ExportImportTest, VerifyNamesTheBadEpisodes) {
  if (system("command -v sqlite3 >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs the sqlite3 shell";
  std::vector<std::string> ids = Populate("a.db");
  // Damage one stored step behind engram's back (the cache is off so the store is read).
  std::string sql = "UPDATE steps SET result_status = 'bogus' WHERE episode_id = '" + ids[2] + "'";
  ASSERT_EQ(system(("sqlite3 " + testing::ShellQuote(dir_.File("a.db")) + " " + testing::ShellQuote(sql)).c_str()), 0);
  CliRun v = Engram("a.db", "--set cache.enabled=false --json storage verify");
  EXPECT_EQ(v.exit_code, 1) << v.out;
  json j = json::parse(v.out.substr(0, v.out.find('\n')));
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["checked"], 3);
  EXPECT_EQ(j["bad_ids"], json::array({ids[2]}));
  CliRun text = Engram("a.db", "--set cache.enabled=false storage verify");
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.out.find("problem: " + ids[2]), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("FAILED: 3 episodes read, 1 bad"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace engram
