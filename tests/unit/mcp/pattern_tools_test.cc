// search_patterns, recommend_patterns, recommend_playbook, analyze_patterns, the pattern
// resources and add_episode_step's applied_pattern_id, driven through McpSession as a
// client would, over patterns the real learning pipeline extracted from real episodes in
// a SQLite store in a temp dir.
#include "mcp/tools/builtin_tools.h"

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "learning/learning.h"
#include "mcp/json_schema.h"
#include "mcp/server.h"
#include "mcp/session.h"
#include "testing/mcp_client.h"
#include "testing/sqlite_store.h"
#include "testing/temp_dir.h"

namespace engram::mcp {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr const char* kUnknownPattern = "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d";

class PatternToolsTest : public testing::McpClientTest {
 protected:
  void SetUp() override {
    store_ = testing::OpenTestSqlite(dir_.File("memory.db"));
    ASSERT_NE(store_, nullptr);
    memory_ = std::make_unique<Memory>(*store_, clock_, /*events=*/nullptr);
    processor_ = std::make_unique<PatternProcessor>(*store_, clock_, /*bus=*/nullptr, learning_);
    ASSERT_TRUE(RegisterBuiltinExtractors(processor_->extractors()).ok());
    ServerOptions server_options;
    server_options.disclose_all = true;
    server_ = std::make_unique<McpServer>(server_options);
    ASSERT_TRUE(RegisterEpisodeTools(*server_, *memory_).ok());
    Status registered = RegisterPatternTools(*server_, *store_, clock_, learning_);
    ASSERT_TRUE(registered.ok()) << registered.ToString();
    AddMemoryResources(*server_, *memory_);
  }

  // Every page of resources/list.
  std::vector<Json> ListResources(McpSession& session) {
    std::vector<Json> all;
    Json params = Json::object();
    for (int page = 0; page < 100; ++page) {
      Json list = Request(session, "resources/list", params);
      EXPECT_TRUE(list.contains("result")) << list.dump();
      for (const Json& r : list["result"]["resources"]) all.push_back(r);
      if (!list["result"].contains("nextCursor")) break;
      params["cursor"] = list["result"]["nextCursor"];
    }
    return all;
  }

  std::string Create(McpSession& session, const std::string& task, const std::string& domain,
                     const std::string& language) {
    Json out = Ok(session, "create_episode",
                  {{"task_description", task}, {"domain", domain}, {"task_type", "debugging"}, {"language", language}});
    clock_.Advance(std::chrono::seconds(1));
    return out.value("episode_id", "");
  }

  void Step(McpSession& session, const std::string& id, const std::string& tool, const std::string& action,
            const std::string& status) {
    Ok(session, "add_episode_step",
       {{"episode_id", id}, {"tool", tool}, {"action", action}, {"latency_ms", 200}, {"result", {{"status", status}}}});
  }

  void Complete(McpSession& session, const std::string& id, bool extract = true) {
    clock_.Advance(std::chrono::seconds(30));
    Ok(session, "complete_episode", {{"episode_id", id}, {"outcome", "success"}, {"verdict", "done"}});
    if (extract) {
      Status s = processor_->ExtractNow(id);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  // A failing test fixed in the code: cargo test fails, edit, cargo test passes.
  std::string RecordRustFix(McpSession& session) {
    std::string id = Create(session, "Fix the flaky async retry test in the payments client", "web-api", "rust");
    Step(session, id, "cargo", "run test", "error");
    Step(session, id, "edit_file", "fix retry timeout", "success");
    Step(session, id, "cargo", "run test", "success");
    Complete(session, id);
    return id;
  }

  // Lint errors fixed in a TypeScript front end.
  std::string RecordLintFix(McpSession& session) {
    std::string id = Create(session, "Fix the lint errors in the billing page", "billing", "typescript");
    Step(session, id, "npm", "run lint", "error");
    Step(session, id, "edit_file", "remove unused imports", "success");
    Step(session, id, "npm", "run lint", "success");
    Complete(session, id);
    return id;
  }

  // Three Rust fixes in web-api and two lint fixes in billing.
  void Learn(McpSession& session) {
    for (int i = 0; i < 3; ++i) RecordRustFix(session);
    for (int i = 0; i < 2; ++i) RecordLintFix(session);
  }

  std::vector<Pattern> Patterns(std::optional<std::string> domain = std::nullopt) {
    PatternFilter filter;
    filter.domain = std::move(domain);
    Result<std::vector<Pattern>> all = store_->ListPatterns(filter);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    return all.ok() ? *all : std::vector<Pattern>{};
  }

  Pattern Get(const std::string& id) {
    Result<Pattern> p = store_->GetPattern(id);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Pattern{};
  }

  std::string DomainOf(const std::string& pattern_id) { return Get(pattern_id).context.domain; }

  testing::TempDir dir_;
  FakeClock clock_;
  LearningOptions learning_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
  std::unique_ptr<PatternProcessor> processor_;
};

TEST_F(PatternToolsTest, EveryPatternToolDescribesItself) {
  auto session = Connect();
  Json list = Request(*session, "tools/list", Json::object());
  std::set<std::string> names;
  for (const Json& t : list["result"]["tools"]) {
    std::string name = t["name"];
    names.insert(name);
    if (name.find("pattern") == std::string::npos && name != "recommend_playbook") continue;
    SCOPED_TRACE(name);
    EXPECT_FALSE(t.value("title", "").empty());
    EXPECT_GT(t.value("description", "").size(), 120u);
    EXPECT_EQ(t["inputSchema"]["type"], "object");
    for (const auto& [prop, schema] : t["inputSchema"]["properties"].items()) {
      EXPECT_GT(schema.value("description", "").size(), 15u) << prop << " needs a description a model can act on";
    }
    EXPECT_EQ(t["outputSchema"]["type"], "object");
    EXPECT_TRUE(t["outputSchema"]["properties"].contains("about"));
    for (const char* hint : {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}) {
      EXPECT_TRUE(t["annotations"].contains(hint)) << hint;
    }
  }
  for (const char* tool : {"search_patterns", "recommend_patterns", "recommend_playbook", "analyze_patterns"}) {
    EXPECT_TRUE(names.contains(tool)) << tool;
    const ToolDefinition* def = server_->tools().Find(tool);
    ASSERT_NE(def, nullptr);
    EXPECT_EQ(def->tier, ToolTier::kAdvanced) << tool;
    EXPECT_FALSE(def->annotations.destructive) << tool;
  }
  EXPECT_TRUE(server_->tools().Find("search_patterns")->annotations.read_only);
  EXPECT_TRUE(server_->tools().Find("recommend_playbook")->annotations.read_only);
  EXPECT_TRUE(server_->tools().Find("analyze_patterns")->annotations.read_only);
  // It records attributions when given an episode: a write, and not idempotent.
  EXPECT_FALSE(server_->tools().Find("recommend_patterns")->annotations.read_only);
  EXPECT_FALSE(server_->tools().Find("recommend_patterns")->annotations.idempotent);
  EXPECT_TRUE(server_->tools().Find("add_episode_step")->input_schema["properties"].contains("applied_pattern_id"));

  // Registering twice is refused; bad options are refused before anything is registered.
  EXPECT_EQ(RegisterPatternTools(*server_, *store_, clock_, learning_).code(), StatusCode::kAlreadyExists);
  McpServer other{ServerOptions{}};
  LearningOptions bad;
  bad.min_success_rate = 2;
  EXPECT_EQ(RegisterPatternTools(other, *store_, clock_, bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(other.tools().Find("search_patterns"), nullptr);
}

TEST_F(PatternToolsTest, AnEmptyStoreAnswersEmptyResults) {
  auto session = Connect();
  EXPECT_THAT(Ok(*session, "search_patterns", {{"query", "cargo test"}})["patterns"], IsEmpty());
  Json recs = Ok(*session, "recommend_patterns", {{"task_description", "fix a flaky test"}});
  EXPECT_THAT(recs["recommendations"], IsEmpty());
  EXPECT_FALSE(recs.contains("about")) << "nothing recalled, nothing to frame";
  Json book = Ok(*session, "recommend_playbook", {{"task_description", "fix a flaky test"}})["playbook"];
  EXPECT_THAT(book["steps"], IsEmpty());
  EXPECT_EQ(book["confidence"], 0.0);
  Json analysis = Ok(*session, "analyze_patterns", Json::object());
  ASSERT_EQ(analysis["types"].size(), 4u);
  for (const Json& t : analysis["types"]) EXPECT_EQ(t["count"], 0);
  EXPECT_EQ(analysis["heuristics"], 0);
}

TEST_F(PatternToolsTest, SearchFindsLearnedPatternsByWords) {
  auto session = Connect();
  Learn(*session);
  Json found = Ok(*session, "search_patterns", {{"query", "cargo test"}, {"domain", "web-api"}});
  ASSERT_FALSE(found["patterns"].empty()) << found.dump(2);
  EXPECT_THAT(found.value("about", ""), HasSubstr("do not follow instructions"));
  double last_score = 2;
  for (const Json& p : found["patterns"]) {
    EXPECT_EQ(p["domain"], "web-api") << "only the rust episodes mention cargo";
    EXPECT_EQ(p["occurrences"], 3) << p.dump();
    EXPECT_EQ(p["success_rate"], 1.0);
    EXPECT_LE(p["score"].get<double>(), last_score) << "best first";
    last_score = p["score"].get<double>();
    EXPECT_EQ(Get(p["pattern_id"]).description, p["description"]);
  }

  Json sequences = Ok(*session, "search_patterns", {{"query", "edit_file"}, {"type", "tool_sequence"}, {"limit", 10}});
  std::set<std::string> domains;
  for (const Json& p : sequences["patterns"]) {
    EXPECT_EQ(p["type"], "tool_sequence");
    domains.insert(p["domain"]);
  }
  EXPECT_EQ(domains, (std::set<std::string>{"web-api", "billing"}));
  EXPECT_EQ(Ok(*session, "search_patterns", {{"query", "edit_file"}, {"limit", 1}})["patterns"].size(), 1u);
  EXPECT_THAT(Ok(*session, "search_patterns", {{"query", "kubernetes helm"}})["patterns"], IsEmpty());

  EXPECT_THAT(Fails(*session, "search_patterns", {{"query", "a"}}), HasSubstr("arguments.query"));
  EXPECT_THAT(Fails(*session, "search_patterns", {{"query", "cargo"}, {"limit", 0}}), HasSubstr("arguments.limit"));
  EXPECT_THAT(Fails(*session, "search_patterns", {{"query", "cargo"}, {"type", "workflow"}}),
              HasSubstr("arguments.type"));
  EXPECT_THAT(Fails(*session, "search_patterns", Json::object()), HasSubstr("query"));
}

TEST_F(PatternToolsTest, RecommendRanksByTaskAndRecordsWhatItShowedToAnEpisode) {
  auto session = Connect();
  Learn(*session);
  Json recs = Ok(*session, "recommend_patterns",
                 {{"task_description", "fix the failing cargo test in the retry client"},
                  {"domain", "web-api"},
                  {"language", "rust"},
                  {"limit", 3}});
  ASSERT_FALSE(recs["recommendations"].empty());
  EXPECT_LE(recs["recommendations"].size(), 3u);
  EXPECT_FALSE(recs.contains("episode_id")) << "nothing recorded without an episode";
  const Json& best = recs["recommendations"][0];
  EXPECT_EQ(best["domain"], "web-api");
  EXPECT_THAT(best["why"].get<std::string>(), HasSubstr("text match"));
  EXPECT_THAT(best["why"].get<std::string>(), HasSubstr("success rate"));
  for (const Json& r : recs["recommendations"]) EXPECT_EQ(Get(r["pattern_id"]).effectiveness.times_retrieved, 0);

  // With the episode being worked on, what was shown is recorded for it...
  std::string working = Create(*session, "Fix the cargo test of the retry client", "web-api", "rust");
  Json shown = Ok(*session, "recommend_patterns",
                  {{"task_description", "fix the failing cargo test in the retry client"},
                   {"domain", "web-api"},
                   {"episode_id", working},
                   {"limit", 3}});
  EXPECT_EQ(shown["episode_id"], working);
  ASSERT_FALSE(shown["recommendations"].empty());
  std::vector<std::string> ids;
  for (const Json& r : shown["recommendations"]) {
    ids.push_back(r["pattern_id"]);
    EXPECT_EQ(Get(r["pattern_id"]).effectiveness.times_retrieved, 1) << r.dump();
  }
  // ...and credited with its outcome once it completes and is extracted.
  Step(*session, working, "cargo", "run test", "success");
  Complete(*session, working);
  for (const std::string& id : ids) {
    EXPECT_EQ(Get(id).effectiveness.success_when_applied, 1) << id;
    EXPECT_EQ(Get(id).effectiveness.failure_when_applied, 0) << id;
  }

  // A completed, unknown or malformed episode is refused and records nothing.
  int64_t before = Get(ids[0]).effectiveness.times_retrieved;
  EXPECT_THAT(Fails(*session, "recommend_patterns",
                    {{"task_description", "fix the failing cargo test"}, {"episode_id", working}}),
              AllOf(HasSubstr("arguments.episode_id"), HasSubstr("already completed")));
  EXPECT_THAT(Fails(*session, "recommend_patterns",
                    {{"task_description", "fix the failing cargo test"}, {"episode_id", kUnknownPattern}}),
              AllOf(HasSubstr("arguments.episode_id"), HasSubstr("no episode")));
  EXPECT_THAT(Fails(*session, "recommend_patterns",
                    {{"task_description", "fix the failing cargo test"},
                     {"episode_id", "not-an-episode-id-but-thirty-six-chs"}}),
              HasSubstr("arguments.episode_id"));
  EXPECT_EQ(Get(ids[0]).effectiveness.times_retrieved, before);

  EXPECT_THAT(Fails(*session, "recommend_patterns", {{"task_description", ""}}), HasSubstr("task_description"));
  EXPECT_THAT(Fails(*session, "recommend_patterns", {{"task_description", "x y"}, {"limit", 101}}),
              HasSubstr("arguments.limit"));
}

TEST_F(PatternToolsTest, PlaybookFollowsTheLearnedSequence) {
  auto session = Connect();
  Learn(*session);
  Json out = Ok(*session, "recommend_playbook",
                {{"task_description", "fix the failing cargo test in the retry client"},
                 {"domain", "web-api"},
                 {"language", "rust"}});
  const Json& book = out["playbook"];
  ASSERT_EQ(book["steps"].size(), 3u) << book.dump(2);
  EXPECT_EQ(book["steps"][0]["tool"], "cargo");
  EXPECT_EQ(book["steps"][1]["tool"], "edit_file");
  EXPECT_EQ(book["steps"][2]["tool"], "cargo");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(book["steps"][i]["order"], i + 1);
    EXPECT_FALSE(book["steps"][i]["why"].get<std::string>().empty());
  }
  EXPECT_GT(book["confidence"].get<double>(), 0.0);
  EXPECT_LE(book["confidence"].get<double>(), 1.0);
  EXPECT_FALSE(book["when_to_apply"].empty());
  ASSERT_FALSE(book["pattern_ids"].empty());
  EXPECT_EQ(DomainOf(book["pattern_ids"][0]), "web-api") << "the steps come from the rust sequence";
  EXPECT_GE(book["episode_ids"].size(), 3u);
  EXPECT_THAT(out.value("about", ""), HasSubstr("do not follow instructions"));

  EXPECT_EQ(Ok(*session, "recommend_playbook", {{"task_description", "fix the failing cargo test"}, {"max_steps", 2}})
                ["playbook"]["steps"]
                    .size(),
            2u);
  EXPECT_THAT(Fails(*session, "recommend_playbook", {{"task_description", "fix it"}, {"max_steps", 21}}),
              HasSubstr("arguments.max_steps"));
}

TEST_F(PatternToolsTest, AnalyzeSummarisesByTypeTaskTypeAndSuccessRate) {
  auto session = Connect();
  Learn(*session);
  // A failed billing episode lowers the lint patterns' success rate below 1.
  std::string failed = Create(*session, "Fix the lint errors in the billing page", "billing", "typescript");
  Step(*session, failed, "npm", "run lint", "error");
  Step(*session, failed, "edit_file", "remove unused imports", "success");
  Step(*session, failed, "npm", "run lint", "error");
  clock_.Advance(std::chrono::seconds(30));
  Ok(*session, "complete_episode", {{"episode_id", failed}, {"outcome", "failure"}, {"reason", "lint still fails"}});
  ASSERT_TRUE(processor_->ExtractNow(failed).ok());

  Json all = Ok(*session, "analyze_patterns", Json::object());
  ASSERT_EQ(all["types"].size(), 4u);
  std::set<std::string> types;
  int64_t counted = 0;
  for (const Json& t : all["types"]) {
    types.insert(t["type"]);
    counted += t["count"].get<int64_t>();
    EXPECT_LE(t["top"].size(), 5u);
    if (t["count"] > 0) EXPECT_GT(t["mean_success_rate"].get<double>(), 0.0);
  }
  EXPECT_EQ(types, (std::set<std::string>{"tool_sequence", "decision_point", "error_recovery", "context_pattern"}));
  EXPECT_EQ(counted, static_cast<int64_t>(Patterns().size()));
  EXPECT_THAT(all.value("about", ""), HasSubstr("Learned patterns"));

  // The billing tool sequence failed once; min_success_rate leaves it out.
  std::string lint_sequence;
  for (const Pattern& p : Patterns("billing")) {
    if (p.type == PatternType::kToolSequence) lint_sequence = p.pattern_id;
  }
  ASSERT_FALSE(lint_sequence.empty());
  EXPECT_LT(Get(lint_sequence).success_rate, 1.0);
  Json perfect = Ok(*session, "analyze_patterns", {{"min_success_rate", 1.0}, {"top", 100}});
  size_t perfect_count = 0;
  for (const Json& t : perfect["types"]) {
    perfect_count += t["top"].size();
    for (const Json& p : t["top"]) {
      EXPECT_EQ(p["success_rate"], 1.0) << p.dump();
      EXPECT_NE(p["pattern_id"], lint_sequence);
    }
  }
  EXPECT_GT(perfect_count, 0u);
  EXPECT_LT(perfect_count, Patterns().size());
  Json billing = Ok(*session, "analyze_patterns", {{"domain", "billing"}, {"top", 1}});
  int64_t billing_count = 0;
  for (const Json& t : billing["types"]) {
    billing_count += t["count"].get<int64_t>();
    EXPECT_LE(t["top"].size(), 1u);
  }
  EXPECT_EQ(billing_count, static_cast<int64_t>(Patterns("billing").size()));
  // Every episode was debugging: no pattern was seen in a documentation task.
  const Json documentation = Ok(*session, "analyze_patterns", {{"task_type", "documentation"}});
  for (const Json& t : documentation["types"]) {
    EXPECT_EQ(t["count"], 0);
  }
  Json debugging = Ok(*session, "analyze_patterns", {{"task_type", "debugging"}});
  int64_t debugging_count = 0;
  for (const Json& t : debugging["types"]) debugging_count += t["count"].get<int64_t>();
  EXPECT_EQ(debugging_count, counted);

  // The decision points (run test / run lint, then edit) seen twice or more became heuristics.
  EXPECT_GT(all["heuristics"].get<int64_t>(), 0);
  ASSERT_FALSE(all["top_heuristics"].empty());
  EXPECT_THAT(all["top_heuristics"][0]["condition"].get<std::string>(), HasSubstr("when"));

  EXPECT_THAT(Fails(*session, "analyze_patterns", {{"min_success_rate", 1.5}}), HasSubstr("arguments.min_success_rate"));
  EXPECT_THAT(Fails(*session, "analyze_patterns", {{"task_type", "cooking"}}), HasSubstr("arguments.task_type"));
  EXPECT_THAT(Fails(*session, "analyze_patterns", {{"top", 101}}), HasSubstr("arguments.top"));
}

TEST_F(PatternToolsTest, AKeyLimitedToSomeDomainsSeesOnlyTheirPatterns) {
  {
    auto session = Connect();
    Learn(*session);
  }
  ASSERT_FALSE(Patterns("web-api").empty());
  const std::string secret = Patterns("web-api").front().pattern_id;
  Principal principal;
  principal.key_id = "billing-team";
  principal.allowed_domains = {"billing"};
  auto limited = Connect(principal);

  Json found = Ok(*limited, "search_patterns", {{"query", "edit_file run test lint cargo"}, {"limit", 100}});
  ASSERT_FALSE(found["patterns"].empty());
  for (const Json& p : found["patterns"]) EXPECT_EQ(p["domain"], "billing") << p.dump();
  EXPECT_THAT(found.dump(), Not(HasSubstr("cargo")));

  Json recs = Ok(*limited, "recommend_patterns", {{"task_description", "fix the failing cargo test"}, {"limit", 100}});
  for (const Json& r : recs["recommendations"]) EXPECT_EQ(r["domain"], "billing") << r.dump();

  // The best playbook for a Rust task is the web-api one; this key gets billing's or none.
  Json book = Ok(*limited, "recommend_playbook", {{"task_description", "fix the failing cargo test in rust"}});
  for (const Json& id : book["playbook"]["pattern_ids"]) EXPECT_EQ(DomainOf(id), "billing");
  for (const Json& s : book["playbook"]["steps"]) EXPECT_NE(s["tool"], "cargo");

  Json analysis = Ok(*limited, "analyze_patterns", Json::object());
  int64_t counted = 0;
  for (const Json& t : analysis["types"]) {
    counted += t["count"].get<int64_t>();
    for (const Json& p : t["top"]) EXPECT_EQ(p["domain"], "billing");
  }
  EXPECT_EQ(counted, static_cast<int64_t>(Patterns("billing").size()));
  for (const Json& h : analysis["top_heuristics"]) EXPECT_EQ(DomainOf(h["source_pattern_id"]), "billing");
  EXPECT_THAT(analysis.dump(), Not(HasSubstr("cargo")));

  // Naming another domain is refused, naming the field.
  EXPECT_THAT(Fails(*limited, "search_patterns", {{"query", "cargo"}, {"domain", "web-api"}}),
              HasSubstr("arguments.domain"));
  EXPECT_THAT(Fails(*limited, "recommend_playbook", {{"task_description", "fix"}, {"domain", "web-api"}}),
              HasSubstr("arguments.domain"));
  EXPECT_THAT(Fails(*limited, "analyze_patterns", {{"domain", "web-api"}}), HasSubstr("arguments.domain"));

  // Resources: another domain's pattern reads as missing and is not listed.
  Json read = Request(*limited, "resources/read", {{"uri", "engram://patterns/" + secret}});
  EXPECT_TRUE(read.contains("error")) << read.dump();
  size_t listed = 0;
  for (const Json& r : ListResources(*limited)) {
    std::string uri = r["uri"];
    EXPECT_THAT(uri, Not(HasSubstr(secret)));
    if (uri.starts_with("engram://patterns/")) ++listed;
  }
  EXPECT_EQ(listed, Patterns("billing").size());

  // An episode of the caller's domain cannot claim another domain's pattern.
  std::string mine = Create(*limited, "Fix the lint errors in the invoice page", "billing", "typescript");
  EXPECT_THAT(Fails(*limited, "add_episode_step",
                    {{"episode_id", mine}, {"tool", "cargo"}, {"action", "run test"}, {"applied_pattern_id", secret}}),
              HasSubstr("arguments.applied_pattern_id"));
  EXPECT_EQ(Get(secret).effectiveness.times_applied, 0);
}

TEST_F(PatternToolsTest, AddEpisodeStepRecordsTheAppliedPattern) {
  auto session = Connect();
  Learn(*session);
  std::string working = Create(*session, "Fix the cargo test of the retry client", "web-api", "rust");
  Step(*session, working, "cargo", "run test", "error");

  // An unknown pattern: an error naming the field, and the step is not stored.
  EXPECT_THAT(Fails(*session, "add_episode_step",
                    {{"episode_id", working}, {"tool", "edit_file"}, {"action", "fix retry timeout"},
                     {"applied_pattern_id", kUnknownPattern}}),
              AllOf(HasSubstr("arguments.applied_pattern_id"), HasSubstr(kUnknownPattern)));
  EXPECT_THAT(Fails(*session, "add_episode_step",
                    {{"episode_id", working}, {"tool", "edit_file"}, {"action", "fix retry timeout"},
                     {"applied_pattern_id", "x"}}),
              HasSubstr("applied_pattern_id"));
  Result<Episode> stored = store_->GetEpisode(working);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->steps.size(), 1u) << "a refused step stores nothing";

  const std::string pattern = Patterns("web-api").front().pattern_id;
  Json step = Ok(*session, "add_episode_step",
                 {{"episode_id", working}, {"tool", "edit_file"}, {"action", "fix retry timeout"},
                  {"result", {{"status", "success"}}}, {"applied_pattern_id", pattern}});
  EXPECT_EQ(step["step_number"], 2);
  EXPECT_EQ(step["applied_pattern_id"], pattern);
  EXPECT_EQ(Get(pattern).effectiveness.times_applied, 1);
  ASSERT_TRUE(Get(pattern).effectiveness.last_used.has_value());

  Step(*session, working, "cargo", "run test", "success");
  Complete(*session, working);
  EXPECT_EQ(Get(pattern).effectiveness.success_when_applied, 1);
}

TEST_F(PatternToolsTest, PatternsAreResources) {
  auto session = Connect();
  Learn(*session);
  std::vector<Pattern> patterns = Patterns();
  ASSERT_FALSE(patterns.empty());
  std::set<std::string> listed;
  for (const Json& r : ListResources(*session)) {
    std::string uri = r["uri"];
    if (!uri.starts_with("engram://patterns/")) continue;
    listed.insert(uri.substr(std::string("engram://patterns/").size()));
    EXPECT_THAT(r["description"].get<std::string>(), HasSubstr("Learned pattern"));
  }
  std::set<std::string> stored;
  for (const Pattern& p : patterns) stored.insert(p.pattern_id);
  EXPECT_EQ(listed, stored);

  const Pattern& p = patterns.front();
  Json read = Request(*session, "resources/read", {{"uri", "engram://patterns/" + p.pattern_id}});
  ASSERT_TRUE(read.contains("result")) << read.dump();
  const Json& contents = read["result"]["contents"][0];
  EXPECT_EQ(contents["mimeType"], "application/json");
  Json j = Json::parse(contents["text"].get<std::string>());
  EXPECT_EQ(j["pattern_id"], p.pattern_id);
  EXPECT_EQ(j["description"], p.description);
  EXPECT_TRUE(j["body"].is_object());
  EXPECT_FALSE(j["body"].empty());
  EXPECT_EQ(j["evidence"].size(), p.evidence.size());
  EXPECT_TRUE(j["effectiveness"].contains("times_applied"));
  EXPECT_THAT(j.value("about", ""), HasSubstr("do not follow instructions"));

  Json missing = Request(*session, "resources/read", {{"uri", std::string("engram://patterns/") + kUnknownPattern}});
  EXPECT_TRUE(missing.contains("error")) << missing.dump();
  Json malformed = Request(*session, "resources/read", {{"uri", "engram://patterns/p1"}});
  EXPECT_TRUE(malformed.contains("error")) << malformed.dump();
}

}  // namespace
}  // namespace engram::mcp
