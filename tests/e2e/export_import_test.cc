// Drives the built `engram` binary: export -> import into a fresh store -> export is
// byte-identical; import merges by id (added / updated / skipped), reports bad lines by
// number and field (and with --strict writes nothing), redacts secrets like live writes;
// `engram storage stats|verify|vacuum|migrate`; SQLite -> JSONL -> PostgreSQL -> JSONL
// is byte-identical, and so is the way back; progress bars only on a terminal.
// The PostgreSQL cases need ENGRAM_TEST_PG (see testing/postgres.h).
#include <libpq-fe.h>
#include <stdio.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/postgres.h"
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

// "%2F"-style escaping of a URL query value.
std::string PercentEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// A postgresql:// URL (what `engram --store` takes) for a fresh schema of ENGRAM_TEST_PG
// named after `key`. Empty (with a test failure) if the server cannot be reached.
std::string PgStoreUrl(const std::string& key) {
  Result<std::string> conninfo = testing::TestPgSchema(key);
  EXPECT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  if (!conninfo.ok()) return "";
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo->c_str(), &error);
  EXPECT_NE(options, nullptr) << (error != nullptr ? error : "");
  if (options == nullptr) {
    PQfreemem(error);
    return "";
  }
  std::string url = "postgresql://";
  char sep = '?';
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    url += sep + std::string(o->keyword) + "=" + PercentEncode(o->val);
    sep = '&';
  }
  PQconninfoFree(options);
  return url;
}

// Runs one query on `url` (a libpq URL) and returns the first column of the first row.
std::string PgScalar(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string value;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) value = PQgetvalue(r, 0, 0);
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  } else {
    ADD_FAILURE() << PQerrorMessage(conn);
  }
  PQfinish(conn);
  return value;
}

// The lines of an export that are episodes (the records after them have "record").
std::vector<std::string> EpisodeLines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& l : Lines(text)) {
    if (l.find("\"record\":") == std::string::npos) out.push_back(l);
  }
  return out;
}

// The export's lines of one record kind ("pattern", "heuristic"), parsed and unwrapped.
std::vector<json> Records(const std::string& text, const std::string& kind) {
  std::vector<json> out;
  for (const std::string& l : Lines(text)) {
    json j = json::parse(l, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("record", "") == kind) out.push_back(j[kind]);
  }
  return out;
}

// The learning record an export ends with (null when the last line is not one).
json LearningRecord(const std::string& text) {
  std::vector<std::string> lines = Lines(text);
  if (lines.empty()) return nullptr;
  json j = json::parse(lines.back(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("record", "") != "learning") return nullptr;
  return j;
}

// The learning record line of a store with no patterns: `pending` lists the completed
// episodes not yet learned from.
std::string NoLearningLine(const std::vector<std::string>& pending) {
  return json({{"record", "learning"}, {"version", 1}, {"patterns", 0}, {"heuristics", 0},
               {"pending_extraction", pending}})
             .dump() +
         "\n";
}

// What `engram import` prints after the episode counts when the file carries learning.
std::string LearningLine(int added, int merged, int unchanged, int h_added, int h_updated, int h_unchanged,
                         int marked) {
  return "patterns: added " + std::to_string(added) + ", merged " + std::to_string(merged) + ", unchanged " +
         std::to_string(unchanged) + "; heuristics: added " + std::to_string(h_added) + ", updated " +
         std::to_string(h_updated) + ", unchanged " + std::to_string(h_unchanged) +
         "; episodes marked as learned from: " + std::to_string(marked) + "\n";
}
const std::string kNoLearning = LearningLine(0, 0, 0, 0, 0, 0, 0);

// Exported JSONL in canonical order: lines sorted (export writes them by episode id).
std::string Canonical(const std::string& text) {
  std::vector<std::string> lines = Lines(text);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

class ExportImportTest : public ::testing::Test {
 protected:
  // Runs `engram --db STORE ARGS` with no config file; a postgresql:// STORE is passed as
  // `--store URL`.
  CliRun Engram(const std::string& store, const std::string& args) {
    std::string err_file = dir_.File("stderr.txt");
    std::string where = store.starts_with("postgresql://") ? " --store " + testing::ShellQuote(store)
                                                           : " --db " + testing::ShellQuote(dir_.File(store));
    // XDG_CACHE_HOME: a PostgreSQL store's LMDB cache folder goes in the test's folder.
    std::string cmd = "env -u ENGRAM_CONFIG -u ENGRAM_STORE XDG_CONFIG_HOME=" + testing::ShellQuote(dir_.File("config")) +
                      " XDG_CACHE_HOME=" + testing::ShellQuote(dir_.File("cache")) + " " ENGRAM_BINARY + where + " " + args + " 2>" + testing::ShellQuote(err_file);
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

  // `n` completed episodes of one shape (bash test fails, edit, test passes) about `word`,
  // then `engram pattern reextract`: 4 patterns (one of each type) and 1 heuristic.
  std::vector<std::string> Learn(const std::string& store, const std::string& word, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      std::string id = Create(store, "--task 'Fix the " + word + " test " + std::to_string(i) +
                                         "' --domain web-api --type debugging --language rust");
      EXPECT_EQ(Engram(store, "episode log-step " + id + " --tool bash --action 'cargo test' --status error "
                                  "--message 'timed out'").exit_code, 0);
      EXPECT_EQ(Engram(store, "episode log-step " + id + " --tool edit_file --action 'pause time' --status success")
                    .exit_code, 0);
      EXPECT_EQ(Engram(store, "episode log-step " + id + " --tool bash --action 'cargo test' --status success")
                    .exit_code, 0);
      EXPECT_EQ(Engram(store, "episode complete " + id + " --outcome success --verdict ok").exit_code, 0);
      ids.push_back(id);
    }
    CliRun r = Engram(store, "pattern reextract");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("4 patterns, 1 heuristic"), std::string::npos) << r.out;
    return ids;
  }

  // `engram --json pattern show ID` of `store`: the pattern as export writes it (what
  // `pattern show` adds, its score and heuristics, left out).
  json Pattern(const std::string& store, const std::string& id) {
    CliRun r = Engram(store, "--json pattern show " + id);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      j.erase("effectiveness_score");
      j.erase("heuristics");
    }
    return j;
  }

  // `engram --json storage stats` of `store`, after checking its backend and counts.
  json Stats(const std::string& store, const std::string& backend, int episodes, int completed, int steps) {
    CliRun r = Engram(store, "--json storage stats");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json s = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(s.is_object()) << r.out;
    if (!s.is_object()) return json::object();
    EXPECT_EQ(s["backend"], backend);
    EXPECT_EQ(s["episodes"], episodes);
    EXPECT_EQ(s["completed_episodes"], completed);
    EXPECT_EQ(s["steps"], steps);
    return s;
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
  ASSERT_EQ(lines.size(), 4u) << a;
  // No patterns yet (nothing ran the learning pipeline): the last line says the completed
  // episode is still pending.
  EXPECT_EQ(lines[3] + "\n", NoLearningLine({ids[0]}));
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
  EXPECT_EQ(im.out, "added 3, updated 0, skipped 0, errors 0\n" + kNoLearning);
  EXPECT_EQ(Engram("b.db", "export").out, a);

  // The imported episode reads back as it was.
  CliRun got = Engram("b.db", "--json episode get " + ids[0]);
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(json::parse(got.out), json::parse(lines[0]));
}

TEST_F(ExportImportTest, ExportFiltersByDomain) {
  std::vector<std::string> ids = Populate("a.db");
  std::vector<std::string> lines = Lines(Engram("a.db", "export --domain web-api").out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2] + "\n", NoLearningLine({ids[0]}));
  EXPECT_EQ(json::parse(lines[0])["episode_id"], ids[0]);
  EXPECT_EQ(json::parse(lines[1])["episode_id"], ids[2]);
  EXPECT_EQ(Engram("a.db", "export --domain nowhere").out, NoLearningLine({}));
  CliRun bad = Engram("a.db", "export --format csv");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--format"), std::string::npos) << bad.err;
}

TEST_F(ExportImportTest, ImportIsIdempotentAndMergesById) {
  Populate("a.db");
  ASSERT_EQ(Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl"))).exit_code, 0);
  std::string file = testing::ShellQuote(dir_.File("a.jsonl"));
  EXPECT_EQ(Engram("b.db", "import " + file).out, "added 3, updated 0, skipped 0, errors 0\n" + kNoLearning);
  EXPECT_EQ(Engram("b.db", "import " + file).out, "added 0, updated 0, skipped 3, errors 0\n" + kNoLearning);
  // Importing into the store it came from changes nothing either.
  EXPECT_EQ(Engram("a.db", "import " + file).out, "added 0, updated 0, skipped 3, errors 0\n" + kNoLearning);

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
  EXPECT_EQ(again.out, "added 0, updated 0, skipped 3, errors 0\n" + kNoLearning) << again.err;
}

TEST_F(ExportImportTest, BadLinesAreReportedAndSkippedOrWithStrictNothingIsWritten) {
  Populate("a.db");
  std::vector<std::string> lines = EpisodeLines(Engram("a.db", "export").out);
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
  EXPECT_EQ(Engram("c.db", "export").out, NoLearningLine({}));
  CliRun strict_stdin = Engram("c.db", "import --strict - < " + file);
  EXPECT_EQ(strict_stdin.exit_code, 1);
  EXPECT_EQ(Engram("c.db", "export").out, NoLearningLine({}));

  CliRun r = Engram("c.db", "import " + file);
  EXPECT_EQ(r.exit_code, 1);  // the good lines are imported; the exit code says some were not
  EXPECT_EQ(r.out, "added 2, updated 0, skipped 0, errors 3\n");
  EXPECT_NE(r.err.find("line 4: episode.steps[1].tool: missing required field"), std::string::npos) << r.err;
  EXPECT_EQ(Engram("c.db", "export").out, lines[1] + "\n" + lines[2] + "\n" + NoLearningLine({}));

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
  EXPECT_EQ(ok.out, "added 3, updated 0, skipped 0, errors 0\n" + kNoLearning);
}

TEST_F(ExportImportTest, ImportRedactsSecretsLikeLiveWrites) {
  Populate("a.db");
  std::vector<std::string> lines = EpisodeLines(Engram("a.db", "export").out);
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
  json back = json::parse(EpisodeLines(exported).at(0));
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
  EXPECT_EQ(Engram("r.db", "export").out, NoLearningLine({}));
}

TEST_F(ExportImportTest, StorageStatsVerifyVacuumMigrate) {
  Populate("a.db");
  json s = Stats("a.db", "sqlite", 3, 1, 3);
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
  EXPECT_EQ(EpisodeLines(Engram("a.db", "export").out).size(), 3u);

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

// Episodes that use every field the data model has: every outcome kind with verification,
// steps with and without a result, timeouts, NaN-free awkward doubles, unicode and control
// characters, a step output near the 1 MiB limit, an episode in progress without steps.
std::vector<json> RichEpisodes() {
  std::string long_output;
  for (int i = 0; long_output.size() < 900'000; ++i) {
    long_output += "line " + std::to_string(i) + ": résumé ✓ 日本語 \t tab \\ backslash \"quote\" \x01\n";
  }
  json partial = {
      {"episode_id", "01a21ed1-0000-7000-8000-000000000001"},
      {"task_description", "Partial: é中🚀 control \x01\x1f and \"quotes\""},
      {"task_type", "refactoring"},
      {"context",
       {{"domain", "alpha"}, {"language", "c++"}, {"framework", "qt"}, {"complexity", "complex"},
        {"tags", {"t1", "t2"}}, {"repo", "git@example.com:a/b.git"}, {"commit", "0123456789abcdef"}}},
      {"start_time", "2026-01-02T03:04:05.006Z"},
      {"end_time", "2026-01-02T03:14:05.999Z"},
      {"steps",
       {{{"step_number", 1},
         {"timestamp", "2026-01-02T03:04:06.001Z"},
         {"tool", "bash"},
         {"action", "make -j2"},
         {"parameters",
          {{"a", {1, 2.5, -0.0, 1e-9, 123456789012345678LL}},
           {"b", {{"c", nullptr}, {"d", true}, {"ü", "x"}}},
           {"e", 0.30000000000000004}}},
         {"result", {{"status", "timeout"}, {"output", long_output}, {"message", "took too long"}}},
         {"latency_ms", 987654},
         {"tokens_used", 0}},
        {{"step_number", 2}, {"timestamp", "2026-01-02T03:04:07.000Z"}, {"tool", "read"}, {"action", "no result"},
         {"parameters", json::object()}},
        {{"step_number", 3},
         {"timestamp", "2026-01-02T03:04:08.123Z"},
         {"tool", "edit"},
         {"action", "x"},
         {"parameters", json::object()},
         {"result", {{"status", "success"}}},
         {"latency_ms", 0}}}},
      {"outcome",
       {{"type", "partial_success"},
        {"verdict", "half"},
        {"completed", {"a", "b"}},
        {"failed", {"c"}},
        {"verification",
         {{"tests_passed", 10}, {"tests_failed", 2}, {"build_ok", false}, {"lint_warnings", 7},
          {"coverage_pct", 33.333333333333336}}}}},
      {"reward",
       {{"total", 0.3333333333333333}, {"base", 0.6666666666666666}, {"efficiency", 0.5000000000000001},
        {"complexity_bonus", 1.2}, {"quality_multiplier", 0.7}, {"learning_bonus", 1e-17}}},
      {"reflection", {{"successes", {"s"}}, {"improvements", json::array()}, {"insights", {"i1", "i2"}}}},
      {"pattern_ids", {"01a21ed1-0000-7000-8000-0000000000aa"}},
      {"tags", {"z", "a"}},
      {"metadata", {{"nested", {{"deep", {{{"k", "v"}}}}}}, {"n", -12.5}, {"big", 1.7976931348623157e308}}}};
  json failure = {
      {"episode_id", "01a21ed1-0000-7000-8000-000000000002"},
      {"task_description", "Failure"},
      {"task_type", "testing"},
      {"context", {{"domain", "beta"}, {"complexity", "simple"}, {"tags", json::array()}}},
      {"start_time", "2026-01-03T00:00:00.000Z"},
      {"end_time", "2026-01-03T00:00:00.001Z"},
      {"steps",
       {{{"step_number", 1}, {"timestamp", "2026-01-03T00:00:00.000Z"}, {"tool", "t"}, {"action", "a"},
         {"parameters", json::object()}, {"result", {{"status", "error"}, {"output", ""}, {"message", ""}}}}}},
      {"outcome", {{"type", "failure"}, {"reason", "it broke"}, {"error_details", "trace\nline 2"}}},
      {"reward",
       {{"total", 0.0}, {"base", 0.0}, {"efficiency", 1.0}, {"complexity_bonus", 1.0}, {"quality_multiplier", 1.0},
        {"learning_bonus", 0.0}}},
      {"reflection", {{"successes", json::array()}, {"improvements", json::array()}, {"insights", json::array()}}},
      {"pattern_ids", json::array()},
      {"tags", json::array()},
      {"metadata", json::object()}};
  json in_progress = {{"episode_id", "01a21ed1-0000-7000-8000-000000000003"},
                      {"task_description", "In progress, no steps yet"},
                      {"task_type", "other"},
                      {"context", {{"domain", "gamma"}, {"complexity", "moderate"}, {"tags", json::array()}}},
                      {"start_time", "2026-01-04T00:00:00.000Z"},
                      {"steps", json::array()},
                      {"pattern_ids", json::array()},
                      {"tags", json::array()},
                      {"metadata", json::object()}};
  return {partial, failure, in_progress};
}

// A pattern record as export writes it: a tool_sequence pattern of domain web-api.
// `evidence` holds the last 3 digits of episode ids; `eff` is the effectiveness object.
json PatternRecord(const std::string& id, const std::string& key, int occurrences, int successes,
                   const std::vector<int>& evidence, const json& eff, double decay, const std::string& updated) {
  json ids = json::array();
  for (int n : evidence) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "01a21ed1-0000-7000-8000-000000000%03d", n);
    ids.push_back(buf);
  }
  return {{"record", "pattern"},
          {"pattern",
           {{"pattern_id", id},
            {"type", "tool_sequence"},
            {"similarity_key", key},
            {"description", "Tool sequence: bash → edit_file"},
            {"body", {{"summary", "Tool sequence: bash → edit_file"}}},
            {"context", {{"complexity", "moderate"}, {"domain", "web-api"}, {"tags", json::array()}}},
            {"occurrences", occurrences},
            {"successes", successes},
            {"success_rate", static_cast<double>(successes) / occurrences},
            {"avg_latency_ms", 100.0},
            {"evidence", ids},
            {"effectiveness", eff},
            {"decay_weight", decay},
            {"created_at", "2026-01-01T00:00:00.000Z"},
            {"updated_at", updated}}}};
}

json Effectiveness(int retrieved, int applied, int success, int failure, const std::string& last_used) {
  return {{"times_retrieved", retrieved}, {"times_applied", applied}, {"success_when_applied", success},
          {"failure_when_applied", failure}, {"last_used", last_used}};
}

std::string LearningFile(const std::vector<json>& records, int patterns, int heuristics) {
  std::string text;
  for (const json& r : records) text += r.dump() + "\n";
  return text + json({{"record", "learning"}, {"version", 1}, {"patterns", patterns}, {"heuristics", heuristics},
                      {"pending_extraction", json::array()}})
                    .dump() +
         "\n";
}

std::string ToJsonl(const std::vector<json>& episodes) {
  std::string text;
  for (const json& e : episodes) text += e.dump() + "\n";
  return text;
}

TEST_F(ExportImportTest, SqliteToPostgresToSqliteIsByteIdentical) {
  if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::TestPgSkipReason();
  WriteFile(dir_.File("rich.jsonl"), ToJsonl(RichEpisodes()));
  CliRun seeded = Engram("a.db", "import " + testing::ShellQuote(dir_.File("rich.jsonl")));
  ASSERT_EQ(seeded.exit_code, 0) << seeded.err;
  Populate("a.db");  // scored and reflected by engram itself, one still in progress
  CliRun ex = Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  const std::string a = ReadFile(dir_.File("a.jsonl"));
  ASSERT_EQ(EpisodeLines(a).size(), 6u);
  for (const json& e : RichEpisodes()) EXPECT_NE(a.find(e.dump() + "\n"), std::string::npos) << e["episode_id"];

  const std::string pg = PgStoreUrl(dir_.File("pg"));
  ASSERT_FALSE(pg.empty());
  const std::string a_file = testing::ShellQuote(dir_.File("a.jsonl"));
  CliRun im = Engram(pg, "import " + a_file);
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(im.out, "added 6, updated 0, skipped 0, errors 0\n" + kNoLearning);
  CliRun ex_pg = Engram(pg, "export -o " + testing::ShellQuote(dir_.File("b.jsonl")));
  ASSERT_EQ(ex_pg.exit_code, 0) << ex_pg.err;
  const std::string b = ReadFile(dir_.File("b.jsonl"));
  EXPECT_EQ(Canonical(b), Canonical(a));
  EXPECT_EQ(b, a);  // export's own order is already canonical (by episode id)
  EXPECT_EQ(Engram(pg, "export --domain web-api").out, Engram("a.db", "export --domain web-api").out);

  // Importing again changes nothing, from either side.
  EXPECT_EQ(Engram(pg, "import " + a_file).out, "added 0, updated 0, skipped 6, errors 0\n" + kNoLearning);
  EXPECT_EQ(Engram(pg, "import " + testing::ShellQuote(dir_.File("b.jsonl"))).out,
            "added 0, updated 0, skipped 6, errors 0\n" + kNoLearning);
  EXPECT_EQ(Engram("a.db", "import " + testing::ShellQuote(dir_.File("b.jsonl"))).out,
            "added 0, updated 0, skipped 6, errors 0\n" + kNoLearning);

  // And back: PostgreSQL -> JSONL -> a new SQLite store -> JSONL.
  CliRun back = Engram("c.db", "import - < " + testing::ShellQuote(dir_.File("b.jsonl")));
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "added 6, updated 0, skipped 0, errors 0\n" + kNoLearning);
  EXPECT_EQ(Engram("c.db", "export").out, b);
  EXPECT_EQ(json::parse(Engram(pg, "--json storage verify").out)["checked"], 6);
}

TEST_F(ExportImportTest, LearningTravelsWithTheEpisodesAndImportingTwiceChangesNothing) {
  std::vector<std::string> learned = Learn("a.db", "flaky", 3);
  std::string shown = Create("a.db", "--task 'Fix another flaky test' --domain web-api --type debugging");
  // Shown to an episode in progress: times_retrieved and last_used of the patterns shown.
  ASSERT_EQ(Engram("a.db", "pattern recommend 'fix flaky async test' --domain web-api --episode " + shown).exit_code, 0);
  CliRun ex = Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.out.find("exported 4 episodes, 4 patterns and 1 heuristics"), std::string::npos) << ex.out;
  const std::string a = ReadFile(dir_.File("a.jsonl"));
  const std::string file = testing::ShellQuote(dir_.File("a.jsonl"));

  // Episodes, then the patterns by id, the heuristic, and the learning record last.
  std::vector<json> patterns = Records(a, "pattern");
  ASSERT_EQ(patterns.size(), 4u) << a;
  EXPECT_EQ(EpisodeLines(a).size(), 4u);
  EXPECT_EQ(Lines(a).size(), 4u + 4u + 1u + 1u);
  for (size_t i = 1; i < patterns.size(); ++i) EXPECT_LT(patterns[i - 1]["pattern_id"], patterns[i]["pattern_id"]);
  int shown_patterns = 0;
  for (const json& p : patterns) {
    EXPECT_EQ(p["occurrences"], 3);
    EXPECT_EQ(p["evidence"], json(learned));
    if (p["effectiveness"]["times_retrieved"] == 1 && p["effectiveness"].contains("last_used")) ++shown_patterns;
  }
  EXPECT_GT(shown_patterns, 0) << a;
  std::vector<json> heuristics = Records(a, "heuristic");
  ASSERT_EQ(heuristics.size(), 1u);
  EXPECT_EQ(LearningRecord(a), json({{"record", "learning"}, {"version", 1}, {"patterns", 4}, {"heuristics", 1},
                                     {"pending_extraction", json::array()}}));

  // Into an empty store: everything as it was, the episodes marked as learned from (the
  // learning record lists none pending).
  CliRun im = Engram("b.db", "import " + file);
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(im.out, "added 4, updated 0, skipped 0, errors 0\n" + LearningLine(4, 0, 0, 1, 0, 0, 3));
  EXPECT_EQ(Engram("b.db", "export").out, a);
  for (const json& p : patterns) EXPECT_EQ(Pattern("b.db", p["pattern_id"]), Pattern("a.db", p["pattern_id"]));
  // A second import of the same file changes nothing.
  EXPECT_EQ(Engram("b.db", "import " + file).out,
            "added 0, updated 0, skipped 4, errors 0\n" + LearningLine(0, 0, 4, 0, 0, 1, 0));
  EXPECT_EQ(Engram("b.db", "export").out, a);
  // Neither does importing into the store it came from.
  EXPECT_EQ(Engram("a.db", "import " + file).out,
            "added 0, updated 0, skipped 4, errors 0\n" + LearningLine(0, 0, 4, 0, 0, 1, 0));
  EXPECT_EQ(Engram("a.db", "export").out, a);

  // Into a store that learned the same patterns from 2 episodes of its own: merged by
  // similarity key, every episode counted once, the heuristic derived again.
  std::vector<std::string> own = Learn("c.db", "slow", 2);
  CliRun merge = Engram("c.db", "import " + file);
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_EQ(merge.out, "added 4, updated 0, skipped 0, errors 0\n" + LearningLine(0, 4, 0, 0, 1, 0, 3));
  const std::string c1 = Engram("c.db", "export").out;
  std::vector<std::string> all = own;
  all.insert(all.end(), learned.begin(), learned.end());
  std::sort(all.begin(), all.end());
  std::vector<json> merged = Records(c1, "pattern");
  ASSERT_EQ(merged.size(), 4u) << c1;
  for (const json& p : merged) {
    EXPECT_EQ(p["occurrences"], 5) << p;
    EXPECT_EQ(p["successes"], 5) << p;
    EXPECT_EQ(p["evidence"], json(all)) << p;
  }
  std::vector<json> derived = Records(c1, "heuristic");
  ASSERT_EQ(derived.size(), 1u);
  EXPECT_EQ(derived[0]["evidence"]["sample_size"], 5);
  EXPECT_EQ(LearningRecord(c1)["pending_extraction"], json::array());
  EXPECT_EQ(Engram("c.db", "import " + file).out,
            "added 0, updated 0, skipped 4, errors 0\n" + LearningLine(0, 0, 4, 0, 0, 1, 0));
  EXPECT_EQ(Engram("c.db", "export").out, c1);

  // And back: a.db gets c's 2 episodes; the 3 it shares are not counted again.
  WriteFile(dir_.File("c1.jsonl"), c1);
  CliRun back = Engram("a.db", "import " + testing::ShellQuote(dir_.File("c1.jsonl")));
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "added 2, updated 0, skipped 4, errors 0\n" + LearningLine(0, 4, 0, 0, 1, 0, 2));
  const std::string a2 = Engram("a.db", "export").out;
  for (const json& p : Records(a2, "pattern")) {
    EXPECT_EQ(p["occurrences"], 5) << p;
    EXPECT_EQ(p["evidence"], json(all)) << p;
  }
  EXPECT_EQ(Engram("a.db", "import " + testing::ShellQuote(dir_.File("c1.jsonl"))).out,
            "added 0, updated 0, skipped 6, errors 0\n" + LearningLine(0, 0, 4, 0, 0, 1, 0));
  EXPECT_EQ(Engram("a.db", "export").out, a2);
}

TEST_F(ExportImportTest, PatternMergesCountEachEpisodeAndEachUseOnce) {
  const std::string id = "01a21ed1-0000-7000-8000-0000000000a1";
  const std::string other = "01a21ed1-0000-7000-8000-0000000000b2";
  const std::string key = "tool_sequence|web-api|bash edit_file";
  auto import = [&](const std::string& name, const std::vector<json>& records) {
    WriteFile(dir_.File(name), LearningFile(records, static_cast<int>(records.size()), 0));
    CliRun r = Engram("x.db", "import " + testing::ShellQuote(dir_.File(name)));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(r.out.find('\n') + 1);
  };
  // As it is into a store without the key.
  json p1 = PatternRecord(id, key, 3, 2, {1, 2, 3}, Effectiveness(5, 2, 1, 1, "2026-02-01T00:00:00.000Z"), 0.5,
                          "2026-01-10T00:00:00.000Z");
  EXPECT_EQ(import("p1.jsonl", {p1}), LearningLine(1, 0, 0, 0, 0, 0, 0));
  EXPECT_EQ(Pattern("x.db", id), p1["pattern"]);
  EXPECT_EQ(import("p1.jsonl", {p1}), LearningLine(0, 0, 1, 0, 0, 0, 0));
  EXPECT_EQ(Pattern("x.db", id), p1["pattern"]);

  // Learned apart (another id, no shared evidence): counts and uses add up; the decay of
  // the side used last; the stored id stays.
  json p2 = PatternRecord(other, key, 2, 2, {4, 5}, Effectiveness(3, 1, 1, 0, "2026-03-01T00:00:00.000Z"), 0.9,
                          "2026-01-20T00:00:00.000Z");
  EXPECT_EQ(import("p2.jsonl", {p2}), LearningLine(0, 1, 0, 0, 0, 0, 0));
  json m = Pattern("x.db", id);
  EXPECT_EQ(m["occurrences"], 5);
  EXPECT_EQ(m["successes"], 4);
  EXPECT_DOUBLE_EQ(m["success_rate"].get<double>(), 0.8);
  EXPECT_EQ(m["evidence"].size(), 5u);
  EXPECT_EQ(m["effectiveness"], Effectiveness(8, 3, 2, 1, "2026-03-01T00:00:00.000Z"));
  EXPECT_DOUBLE_EQ(m["decay_weight"].get<double>(), 0.9);
  EXPECT_EQ(m["created_at"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(m["updated_at"], "2026-01-20T00:00:00.000Z");
  const std::string after_p2 = Engram("x.db", "export").out;
  // Again, and the first one again: nothing is counted twice.
  EXPECT_EQ(import("p2.jsonl", {p2}), LearningLine(0, 0, 1, 0, 0, 0, 0));
  EXPECT_EQ(import("p1.jsonl", {p1}), LearningLine(0, 0, 1, 0, 0, 0, 0));
  EXPECT_EQ(Engram("x.db", "export").out, after_p2);

  // A later copy of the first pattern (same id, its 3 episodes and 2 more; shown more since):
  // the 2 new episodes are added, with successes in proportion to the copy's rate (2 × 3/5
  // rounds to 1); each use counter is the larger of the two.
  json p3 = PatternRecord(id, key, 5, 3, {1, 2, 3, 6, 7}, Effectiveness(9, 2, 1, 1, "2026-02-15T00:00:00.000Z"), 0.7,
                          "2026-01-30T00:00:00.000Z");
  EXPECT_EQ(import("p3.jsonl", {p3}), LearningLine(0, 1, 0, 0, 0, 0, 0));
  m = Pattern("x.db", id);
  EXPECT_EQ(m["occurrences"], 7);
  EXPECT_EQ(m["successes"], 5);
  EXPECT_EQ(m["evidence"].size(), 7u);
  EXPECT_EQ(m["effectiveness"], Effectiveness(9, 3, 2, 1, "2026-03-01T00:00:00.000Z"));
  EXPECT_EQ(m["updated_at"], "2026-01-30T00:00:00.000Z");
  const std::string after_p3 = Engram("x.db", "export").out;
  EXPECT_EQ(import("p3.jsonl", {p3}), LearningLine(0, 0, 1, 0, 0, 0, 0));
  EXPECT_EQ(import("p2.jsonl", {p1, p2, p3}), LearningLine(0, 0, 3, 0, 0, 0, 0));
  EXPECT_EQ(Engram("x.db", "export").out, after_p3);
}

TEST_F(ExportImportTest, PatternTextsAreRedactedLikeLiveWrites) {
  const std::string id = "01a21ed1-0000-7000-8000-0000000000a1";
  json p = PatternRecord(id, "tool_sequence|web-api|push", 1, 1, {1}, Effectiveness(0, 0, 0, 0, "2026-02-01T00:00:00.000Z"),
                         1.0, "2026-01-10T00:00:00.000Z");
  p["pattern"]["description"] = "git push with " + kToken;
  p["pattern"]["body"]["actions"] = {"export GITHUB_TOKEN=" + kToken};
  json h = {{"record", "heuristic"},
            {"heuristic",
             {{"heuristic_id", id}, {"condition", "when push fails"}, {"action", "use " + kToken},
              {"confidence", 0.5}, {"evidence", {{"episode_ids", json::array()}, {"success_rate", 1.0}, {"sample_size", 1}}},
              {"source_pattern_id", id}, {"created_at", "2026-01-10T00:00:00.000Z"},
              {"updated_at", "2026-01-10T00:00:00.000Z"}}}};
  WriteFile(dir_.File("s.jsonl"), LearningFile({p, h}, 1, 1));
  const std::string file = testing::ShellQuote(dir_.File("s.jsonl"));
  CliRun r = Engram("s.db", "import " + file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string exported = Engram("s.db", "export").out;
  EXPECT_EQ(exported.find(kToken), std::string::npos) << exported;
  json stored = Pattern("s.db", id);
  EXPECT_EQ(stored["description"], "git push with [REDACTED:github_token]");
  EXPECT_EQ(stored["body"]["actions"][0], "export GITHUB_TOKEN=[REDACTED:github_token]");
  EXPECT_EQ(Records(exported, "heuristic").at(0)["action"], "use [REDACTED:github_token]");
  EXPECT_EQ(ReadFile(dir_.File("s.db")).find(kToken), std::string::npos);

  // redaction.mode = reject: the lines are errors naming the field; nothing stored.
  CliRun rej = Engram("r.db", "--set redaction.mode=reject import " + file);
  EXPECT_EQ(rej.exit_code, 1);
  EXPECT_NE(rej.err.find("line 1: pattern.description: holds a secret (github_token)"), std::string::npos) << rej.err;
  EXPECT_NE(rej.err.find("line 2: heuristic.action: holds a secret (github_token)"), std::string::npos) << rej.err;
  EXPECT_EQ(rej.err.find(kToken), std::string::npos) << rej.err;
  EXPECT_EQ(Engram("r.db", "export").out, NoLearningLine({}));
}

TEST_F(ExportImportTest, BadLearningLinesAreReportedAndTheEpisodesStayPending) {
  std::vector<std::string> ids = Learn("a.db", "flaky", 2);
  std::vector<std::string> lines = Lines(Engram("a.db", "export").out);
  ASSERT_EQ(lines.size(), 2u + 4u + 1u + 1u);
  json bad = json::parse(lines[2]);
  bad["pattern"]["successes"] = 7;  // more than its 2 occurrences
  lines[2] = bad.dump();
  lines[3] = R"({"record":"playbook"})";
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  WriteFile(dir_.File("bad.jsonl"), text);
  const std::string file = testing::ShellQuote(dir_.File("bad.jsonl"));

  CliRun strict = Engram("b.db", "import --strict " + file);
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("line 3: pattern.successes: more than occurrences (2)"), std::string::npos)
      << strict.err;
  EXPECT_NE(strict.err.find("line 4: record: unknown kind \"playbook\""), std::string::npos) << strict.err;
  EXPECT_EQ(Engram("b.db", "export").out, NoLearningLine({}));

  // Without --strict: the good lines are imported, the bad ones named, and the episodes
  // stay pending (their patterns did not all come) so this store's pipeline learns from them.
  CliRun r = Engram("b.db", "import " + file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "added 2, updated 0, skipped 0, errors 2\n" + LearningLine(2, 0, 0, 1, 0, 0, 0) +
                       "note: the completed episodes written stay pending extraction: some pattern, heuristic or "
                       "learning lines were not imported\n");
  const std::string b = Engram("b.db", "export").out;
  EXPECT_EQ(Records(b, "pattern").size(), 2u);
  EXPECT_EQ(LearningRecord(b)["pending_extraction"], json(ids));

  // A learning record of a newer format is refused by name.
  WriteFile(dir_.File("v2.jsonl"), R"({"record":"learning","version":2,"patterns":0,"heuristics":0})" "\n");
  CliRun v2 = Engram("c.db", "import " + testing::ShellQuote(dir_.File("v2.jsonl")));
  EXPECT_EQ(v2.exit_code, 1);
  EXPECT_NE(v2.err.find("line 1: learning.version: 2 is newer than this engram reads (1)"), std::string::npos)
      << v2.err;

  // A file of the first format (episodes only) still imports; its completed episodes stay
  // pending for this store's pipeline.
  WriteFile(dir_.File("old.jsonl"), ToJsonl(RichEpisodes()));
  CliRun old = Engram("d.db", "import " + testing::ShellQuote(dir_.File("old.jsonl")));
  EXPECT_EQ(old.exit_code, 0) << old.err;
  EXPECT_EQ(old.out, "added 3, updated 0, skipped 0, errors 0\n");
  EXPECT_EQ(LearningRecord(Engram("d.db", "export").out)["pending_extraction"],
            json({RichEpisodes()[0]["episode_id"], RichEpisodes()[1]["episode_id"]}));
}

TEST_F(ExportImportTest, LearningSqliteToPostgresToSqliteIsByteIdentical) {
  if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::TestPgSkipReason();
  Learn("a.db", "flaky", 3);
  std::string shown = Create("a.db", "--task 'Fix another flaky test' --domain web-api --type debugging");
  ASSERT_EQ(Engram("a.db", "pattern recommend 'fix flaky async test' --domain web-api --episode " + shown).exit_code, 0);
  // Completed after the extraction: pending in the source, so pending after every move.
  std::string late = Create("a.db", "--task 'Late one' --domain docs");
  ASSERT_EQ(Engram("a.db", "episode complete " + late + " --outcome success --verdict ok").exit_code, 0);
  // One pattern with every effectiveness counter set and a decayed weight.
  WriteFile(dir_.File("p.jsonl"),
            LearningFile({PatternRecord("01a21ed1-0000-7000-8000-0000000000a1", "tool_sequence|web-api|x y", 9, 7,
                                        {1, 2, 3}, Effectiveness(11, 6, 4, 2, "2026-02-01T00:00:00.123Z"), 0.25,
                                        "2026-01-10T00:00:00.000Z")},
                         1, 0));
  ASSERT_EQ(Engram("a.db", "import " + testing::ShellQuote(dir_.File("p.jsonl"))).exit_code, 0);
  const std::string a = Engram("a.db", "export").out;
  WriteFile(dir_.File("a.jsonl"), a);
  ASSERT_EQ(Records(a, "pattern").size(), 5u) << a;
  ASSERT_EQ(Records(a, "heuristic").size(), 1u) << a;
  EXPECT_EQ(LearningRecord(a)["pending_extraction"], json::array({late}));

  const std::string pg = PgStoreUrl(dir_.File("pg"));
  ASSERT_FALSE(pg.empty());
  CliRun im = Engram(pg, "import " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(im.out, "added 5, updated 0, skipped 0, errors 0\n" + LearningLine(5, 0, 0, 1, 0, 0, 3));
  const std::string b = Engram(pg, "export").out;
  EXPECT_EQ(b, a);
  for (const json& p : Records(a, "pattern")) EXPECT_EQ(Pattern(pg, p["pattern_id"]), Pattern("a.db", p["pattern_id"]));
  EXPECT_EQ(Engram(pg, "import " + testing::ShellQuote(dir_.File("a.jsonl"))).out,
            "added 0, updated 0, skipped 5, errors 0\n" + LearningLine(0, 0, 5, 0, 0, 1, 0));
  EXPECT_EQ(Engram(pg, "export").out, a);

  // And back into a fresh SQLite store.
  WriteFile(dir_.File("b.jsonl"), b);
  CliRun back = Engram("c.db", "import " + testing::ShellQuote(dir_.File("b.jsonl")));
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(Engram("c.db", "export").out, a);
  EXPECT_EQ(Engram("c.db", "--json pattern list --limit 0").out, Engram(pg, "--json pattern list --limit 0").out);
}

TEST_F(ExportImportTest, ALineThePostgresStoreCannotHoldIsReportedAndTheRestImported) {
  if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::TestPgSkipReason();
  std::vector<json> episodes = RichEpisodes();
  // SQLite keeps a NUL character in a step's output; PostgreSQL text cannot.
  episodes[1]["steps"][0]["result"]["output"] = std::string("binary\0output", 13);
  WriteFile(dir_.File("nul.jsonl"), ToJsonl(episodes));
  ASSERT_EQ(Engram("a.db", "import " + testing::ShellQuote(dir_.File("nul.jsonl"))).exit_code, 0);
  const std::string a = Engram("a.db", "export").out;
  ASSERT_EQ(Lines(a).size(), 4u);
  WriteFile(dir_.File("a.jsonl"), a);

  const std::string pg = PgStoreUrl(dir_.File("pg"));
  ASSERT_FALSE(pg.empty());
  CliRun r = Engram(pg, "import " + testing::ShellQuote(dir_.File("a.jsonl")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "added 2, updated 0, skipped 0, errors 1\n" + kNoLearning);
  EXPECT_NE(r.err.find("line 2: episode " + episodes[1]["episode_id"].get<std::string>()), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("NUL"), std::string::npos) << r.err;
  std::vector<std::string> lines = Lines(a);
  EXPECT_EQ(Engram(pg, "export").out,
            lines[0] + "\n" + lines[2] + "\n" + NoLearningLine({episodes[0]["episode_id"].get<std::string>()}));
}

TEST_F(ExportImportTest, PostgresStorageStatsVerifyVacuumMigrate) {
  if (!testing::TestPgSkipReason().empty()) GTEST_SKIP() << testing::TestPgSkipReason();
  const std::string pg = PgStoreUrl(dir_.File("pg"));
  ASSERT_FALSE(pg.empty());

  CliRun fresh = Engram(pg, "--json storage migrate");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  json m = json::parse(fresh.out);
  EXPECT_EQ(m["backend"], "postgres");
  EXPECT_EQ(m["schema_version_before"], 0);
  EXPECT_GE(m["schema_version_after"].get<int>(), 3);
  CliRun again = Engram(pg, "storage migrate");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "schema version: " + std::to_string(m["schema_version_after"].get<int>()) + " -> " +
                           std::to_string(m["schema_version_after"].get<int>()) + " (already current)\n");

  WriteFile(dir_.File("rich.jsonl"), ToJsonl(RichEpisodes()));
  ASSERT_EQ(Engram(pg, "import " + testing::ShellQuote(dir_.File("rich.jsonl"))).exit_code, 0);
  json st = Stats(pg, "postgres", 3, 2, 4);
  EXPECT_EQ(st["schema_version"], m["schema_version_after"]);
  EXPECT_EQ(st["location"].get<std::string>().find("password"), std::string::npos);
  EXPECT_FALSE(st.contains("files"));
  ASSERT_TRUE(st["tables"].contains("episodes"));
  EXPECT_GT(st["tables"]["steps"].get<int64_t>(), 0);
  EXPECT_GT(st["table_bytes"].get<int64_t>(), st["tables"]["steps"].get<int64_t>());
  CliRun text = Engram(pg, "storage stats");
  EXPECT_NE(text.out.find("episodes:  3 (2 completed)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("tables:    "), std::string::npos) << text.out;

  CliRun verify = Engram(pg, "storage verify");
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_NE(verify.out.find("ok: 3 episodes read, 0 bad"), std::string::npos) << verify.out;

  // Vacuum (ANALYZE) records the live row counts the planner uses (reltuples: -1 on a table
  // never analyzed; too few rows here for autovacuum to have done it). The sizes are only
  // reported: VACUUM may add free-space and visibility maps, so "after" can be larger.
  ASSERT_EQ(Engram(pg, "episode delete --yes " + RichEpisodes()[1]["episode_id"].get<std::string>()).exit_code, 0);
  CliRun vac = Engram(pg, "--json storage vacuum");
  ASSERT_EQ(vac.exit_code, 0) << vac.err;
  json v = json::parse(vac.out);
  EXPECT_GT(v["bytes_before"].get<int64_t>(), 0);
  EXPECT_GT(v["bytes_after"].get<int64_t>(), 0);
  EXPECT_NE(std::find(v["tables"].begin(), v["tables"].end(), "episodes"), v["tables"].end()) << v;
  EXPECT_NE(std::find(v["tables"].begin(), v["tables"].end(), "steps"), v["tables"].end()) << v;
  const std::string where = "c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())";
  EXPECT_EQ(PgScalar(pg, "SELECT reltuples::bigint FROM pg_class c WHERE relname = 'episodes' AND " + where), "2");
  EXPECT_EQ(PgScalar(pg, "SELECT reltuples::bigint FROM pg_class c WHERE relname = 'steps' AND " + where), "3");
  CliRun vac_text = Engram(pg, "storage vacuum");
  EXPECT_EQ(vac_text.exit_code, 0) << vac_text.err;
  EXPECT_NE(vac_text.out.find("vacuumed and analyzed"), std::string::npos) << vac_text.out;
  EXPECT_EQ(EpisodeLines(Engram(pg, "export").out).size(), 2u);
  Stats(pg, "postgres", 2, 1, 3);
}

TEST_F(ExportImportTest, ProgressBarsOnlyOnATerminal) {
  if (system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs script(1) for a terminal";
  Populate("a.db");
  // Not a terminal (stderr is a file here): no bar, whatever the command.
  CliRun ex = Engram("a.db", "export -o " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_EQ(ex.err, "");
  CliRun im = Engram("b.db", "import " + testing::ShellQuote(dir_.File("a.jsonl")));
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_EQ(im.err, "");

  // On a terminal (script(1) gives the command a pseudo-terminal; its output is the screen).
  auto on_tty = [&](const std::string& store, const std::string& args) {
    std::string cmd = "env -u ENGRAM_CONFIG -u ENGRAM_STORE XDG_CONFIG_HOME=" +
                      testing::ShellQuote(dir_.File("config")) + " " ENGRAM_BINARY " --db " +
                      testing::ShellQuote(dir_.File(store)) + " " + args;
    testing::ShellResult r = testing::RunShell("script -qec " + testing::ShellQuote(cmd) + " /dev/null </dev/null");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return r.out;
  };
  const std::string full = "[" + std::string(30, '#') + "] ";
  std::string screen = on_tty("a.db", "export -o " + testing::ShellQuote(dir_.File("t.jsonl")));
  EXPECT_NE(screen.find("\r" + full + "3/3 episodes"), std::string::npos) << screen;
  EXPECT_EQ(ReadFile(dir_.File("t.jsonl")), ReadFile(dir_.File("a.jsonl")));  // the file has no bar in it
  screen = on_tty("c.db", "import " + testing::ShellQuote(dir_.File("a.jsonl")));
  EXPECT_NE(screen.find("\r" + full + "4/4 lines"), std::string::npos) << screen;
  EXPECT_NE(screen.find("added 3, updated 0, skipped 0, errors 0"), std::string::npos) << screen;
  screen = on_tty("d.db", "import --strict " + testing::ShellQuote(dir_.File("a.jsonl")));
  EXPECT_NE(screen.find("\r" + full + "4/4 lines checked"), std::string::npos) << screen;

  // With --json, and when the episodes themselves go to the terminal: no bar.
  screen = on_tty("a.db", "--json export -o " + testing::ShellQuote(dir_.File("t.jsonl")));
  EXPECT_EQ(screen.find("["), std::string::npos) << screen;
  screen = on_tty("e.db", "--json import " + testing::ShellQuote(dir_.File("a.jsonl")));
  EXPECT_EQ(screen.find("#"), std::string::npos) << screen;
  screen = on_tty("a.db", "export");
  EXPECT_EQ(screen.find("\r["), std::string::npos) << screen;
  EXPECT_EQ(Lines(screen).size(), 4u) << screen;
}

}  // namespace
}  // namespace engram
