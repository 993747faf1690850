// The four extractors, merging and heuristics as pure functions on Episode values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "learning/learning.h"
#include "model/search_text.h"

namespace engram {
namespace {

using nlohmann::json;

// The words the pipeline keeps of `text` (search words without digits, in order, at most
// `max`), computed with the same tokeniser so these tests follow its stemming rules.
std::string Words(std::string_view text, size_t max = SIZE_MAX, bool dedupe = false) {
  std::vector<std::string> out;
  for (const std::string& w : SearchTokens(text)) {
    if (out.size() >= max) break;
    if (std::any_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (dedupe && std::find(out.begin(), out.end(), w) != out.end()) continue;
    out.push_back(w);
  }
  std::string joined;
  for (const std::string& w : out) joined += (joined.empty() ? "" : " ") + w;
  return joined;
}

Step MakeStep(const std::string& tool, const std::string& action, std::optional<StepStatus> status,
              std::optional<std::string> message = std::nullopt, int64_t latency = 100) {
  Step s;
  s.tool = tool;
  s.action = action;
  if (status.has_value()) s.result = StepResult{*status, std::nullopt, message};
  s.latency_ms = latency;
  return s;
}

class ExtractorsTest : public ::testing::Test {
 protected:
  ExtractorsTest() { EXPECT_TRUE(RegisterBuiltinExtractors(registry_).ok()); }

  Episode Make(std::vector<Step> steps, OutcomeKind outcome = OutcomeKind::kSuccess,
               const std::string& task = "Fix a failing test in the parser") {
    Episode e;
    e.episode_id = NewUuidV7(clock_);
    e.task_description = task;
    e.task_type = TaskType::kDebugging;
    e.context.domain = "web-api";
    e.context.language = "rust";
    e.context.framework = "tokio";
    for (size_t i = 0; i < steps.size(); ++i) steps[i].step_number = static_cast<int>(i) + 1;
    e.steps = std::move(steps);
    Outcome o;
    o.kind = outcome;
    e.outcome = o;
    e.end_time = e.start_time;
    return e;
  }

  std::vector<PatternObservation> Of(PatternType type, const Episode& e) {
    std::vector<PatternObservation> out;
    for (PatternObservation& o : ExtractObservations(registry_, e)) {
      if (o.type == type) out.push_back(std::move(o));
    }
    return out;
  }

  // error → fix → pass
  std::vector<Step> FixTestSteps() {
    return {MakeStep("bash", "run tests", StepStatus::kError, "1 failed: assertion failed in parse_header"),
            MakeStep("edit_file", "fix assertion in parser.rs", StepStatus::kSuccess),
            MakeStep("bash", "run tests", StepStatus::kSuccess)};
  }

  FakeClock clock_;
  ExtractorRegistry registry_;
};

TEST_F(ExtractorsTest, RegistryIsFilledExplicitlyAndRefusesDuplicates) {
  EXPECT_NE(registry_.Find("tool_sequence"), nullptr);
  EXPECT_NE(registry_.Find("decision_point"), nullptr);
  EXPECT_NE(registry_.Find("error_recovery"), nullptr);
  EXPECT_NE(registry_.Find("context_pattern"), nullptr);
  EXPECT_EQ(registry_.Find("nope"), nullptr);
  EXPECT_EQ(registry_.Register(NewToolSequenceExtractor()).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(registry_.Register(nullptr).code(), StatusCode::kInvalidArgument);
  ExtractorRegistry empty;
  EXPECT_TRUE(empty.empty());
}

TEST_F(ExtractorsTest, ToolSequenceCollapsesRepeatsAndNormalisesTools) {
  Episode e = Make({MakeStep("Bash", "cargo build", StepStatus::kSuccess),
                    MakeStep("bash ", "cargo test", StepStatus::kSuccess),
                    MakeStep("Edit File", "edit src/lib.rs", StepStatus::kSuccess, std::nullopt, 300),
                    MakeStep("bash", "cargo test", StepStatus::kSuccess)});
  auto obs = Of(PatternType::kToolSequence, e);
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_EQ(obs[0].similarity_key, "tool_sequence|web-api|bash edit_file bash");
  json body = json::parse(obs[0].body_json);
  EXPECT_EQ(body["tools"], json({"bash", "edit_file", "bash"}));
  EXPECT_EQ(body["actions"][0], "cargo build");
  EXPECT_TRUE(obs[0].success);
  ASSERT_TRUE(obs[0].latency_ms.has_value());
  EXPECT_DOUBLE_EQ(*obs[0].latency_ms, 150.0);
  std::string task_words;
  for (const std::string& w : obs[0].task_words) task_words += (task_words.empty() ? "" : " ") + w;
  // The task's search words as written (lower-cased), not their search tokens ("fail").
  EXPECT_EQ(task_words, "fix failing test parser");
}

TEST_F(ExtractorsTest, ToolSequenceNeedsTwoToolsAndKeepsAtMostEight) {
  EXPECT_TRUE(Of(PatternType::kToolSequence, Make({MakeStep("bash", "a", StepStatus::kSuccess),
                                                   MakeStep("bash", "b", StepStatus::kSuccess)}))
                  .empty());
  std::vector<Step> many;
  for (int i = 0; i < 11; ++i) many.push_back(MakeStep("tool" + std::string(1, char('a' + i)), "x", StepStatus::kSuccess));
  auto obs = Of(PatternType::kToolSequence, Make(many));
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_EQ(obs[0].signature.size(), kMaxToolSequenceLength);
  EXPECT_EQ(obs[0].signature.back(), "toolh");
}

TEST_F(ExtractorsTest, FailedEpisodeObservationsAreFailures) {
  for (const PatternObservation& o : ExtractObservations(registry_, Make(FixTestSteps(), OutcomeKind::kFailure))) {
    EXPECT_FALSE(o.success) << o.similarity_key;
  }
}

TEST_F(ExtractorsTest, DecisionPointMatchesCheckWordsOnWordBoundaries) {
  EXPECT_TRUE(IsCheckWord("verify"));
  EXPECT_TRUE(IsCheckWord("tests"));
  EXPECT_FALSE(IsCheckWord("checkout"));
  EXPECT_FALSE(IsCheckWord("pytest"));
  EXPECT_FALSE(IsCheckWord("contest"));

  // "git checkout" / "attestation" / "pytest_cache" hold check words only as substrings.
  Episode none = Make({MakeStep("git", "checkout feature-branch", StepStatus::kSuccess),
                       MakeStep("bash", "print attestation pytest_cache", StepStatus::kSuccess),
                       MakeStep("edit_file", "write code", StepStatus::kSuccess)});
  EXPECT_TRUE(Of(PatternType::kDecisionPoint, none).empty());

  auto obs = Of(PatternType::kDecisionPoint, Make(FixTestSteps()));
  ASSERT_EQ(obs.size(), 1u);  // the final "run tests" has no next step
  json body = json::parse(obs[0].body_json);
  EXPECT_EQ(body["check"]["tool"], "bash");
  EXPECT_EQ(body["check"]["action"], "run tests");
  EXPECT_EQ(body["check"]["result"], "error");
  EXPECT_EQ(body["action"]["tool"], "edit_file");
  EXPECT_EQ(body["action"]["action"], "fix assertion parser");
  EXPECT_EQ(body["result"], "success");
  EXPECT_TRUE(obs[0].success);
  EXPECT_EQ(obs[0].description, "When bash 'run tests' fails, then edit_file 'fix assertion parser'");
  // The key holds search tokens, so "run test" and "running tests" are one decision.
  EXPECT_EQ(obs[0].similarity_key, "decision_point|web-api|bash run test fails -> edit_file fix assertion parser");

  // A check step by tool name, with a failing follow-up: the observation is a failure.
  auto failing = Of(PatternType::kDecisionPoint,
                    Make({MakeStep("validate_schema", "schema.json", StepStatus::kSuccess),
                          MakeStep("deploy", "push", StepStatus::kError)}));
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_FALSE(failing[0].success);
}

TEST_F(ExtractorsTest, ErrorRecoveryTakesTheStepsThatMadeItPass) {
  auto obs = Of(PatternType::kErrorRecovery, Make(FixTestSteps()));
  ASSERT_EQ(obs.size(), 1u);
  json body = json::parse(obs[0].body_json);
  EXPECT_EQ(body["error_tool"], "bash");
  const std::string error = Words("1 failed: assertion failed in parse_header", kMaxErrorSignatureWords);
  EXPECT_EQ(body["error"], "failed assertion failed parse header");  // shown as written
  EXPECT_EQ(body["error_action"], "run tests");
  EXPECT_EQ(body["recovery"][0]["action"], "fix assertion parser");
  ASSERT_EQ(body["recovery"].size(), 2u);
  EXPECT_EQ(body["recovery"][0]["tool"], "edit_file");
  EXPECT_EQ(body["recovery"][1]["tool"], "bash");
  EXPECT_EQ(obs[0].similarity_key, "error_recovery|web-api|bash " + error + " -> edit_file bash");

  // Two failures of one tool in a row are one error; an unrecovered failure is none.
  Episode twice = Make({MakeStep("bash", "run tests", StepStatus::kError, "boom"),
                        MakeStep("bash", "run tests", StepStatus::kTimeout),
                        MakeStep("bash", "run tests again", StepStatus::kSuccess)});
  auto t = Of(PatternType::kErrorRecovery, twice);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(json::parse(t[0].body_json)["recovery"].size(), 2u);
  Episode unrecovered = Make({MakeStep("bash", "run tests", StepStatus::kSuccess),
                              MakeStep("bash", "deploy", StepStatus::kError, "denied")},
                             OutcomeKind::kFailure);
  EXPECT_TRUE(Of(PatternType::kErrorRecovery, unrecovered).empty());
  // A step with no result is a failure too.
  Episode no_result = Make({MakeStep("npm", "install", std::nullopt), MakeStep("npm", "install", StepStatus::kSuccess)});
  auto n = Of(PatternType::kErrorRecovery, no_result);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(json::parse(n[0].body_json)["error"], "none");
}

TEST_F(ExtractorsTest, ContextPatternMapsFeaturesToTheApproach) {
  auto obs = Of(PatternType::kContextPattern, Make(FixTestSteps()));
  ASSERT_EQ(obs.size(), 1u);
  json body = json::parse(obs[0].body_json);
  EXPECT_EQ(body["features"]["language"], "rust");
  EXPECT_EQ(body["features"]["framework"], "tokio");
  EXPECT_EQ(body["features"]["complexity"], "moderate");
  EXPECT_EQ(body["features"]["task_type"], "debugging");
  EXPECT_EQ(body["approach"], json({"bash", "edit_file"}));
  EXPECT_EQ(obs[0].similarity_key, "context_pattern|web-api,rust,tokio,moderate,debugging|bash edit_file");
}

TEST_F(ExtractorsTest, KeysParseBack) {
  auto parsed = ParseSimilarityKey("decision_point|web-api|bash run test fails -> edit_file");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->type, PatternType::kDecisionPoint);
  EXPECT_EQ(parsed->scope, "web-api");
  EXPECT_EQ(parsed->signature.size(), 6u);
  EXPECT_FALSE(ParseSimilarityKey("nonsense").has_value());
  EXPECT_FALSE(ParseSimilarityKey("bogus|a|b").has_value());
}

TEST(SignatureSimilarityTest, IsOneMinusNormalisedEditDistance) {
  using V = std::vector<std::string>;
  EXPECT_DOUBLE_EQ(SignatureSimilarity(V{"a", "b", "c"}, V{"a", "b", "c"}), 1.0);
  EXPECT_DOUBLE_EQ(SignatureSimilarity(V{"a", "b", "c", "d", "e"}, V{"a", "b", "x", "d", "e"}), 0.8);
  EXPECT_DOUBLE_EQ(SignatureSimilarity(V{"a", "b"}, V{"a", "b", "c"}), 1.0 - 1.0 / 3);
  EXPECT_DOUBLE_EQ(SignatureSimilarity(V{}, V{"a"}), 0.0);
  EXPECT_DOUBLE_EQ(SignatureSimilarity(V{}, V{}), 1.0);
}

class MergeTest : public ExtractorsTest {
 protected:
  // Merges the tool_sequence observation of `e` into patterns_ (targets = own keys).
  MergeStats Merge(const Episode& e) {
    auto obs = Of(PatternType::kToolSequence, e);
    std::vector<std::string> targets;
    for (const auto& o : obs) targets.push_back(o.similarity_key);
    return MergeObservations(patterns_, obs, targets, options_, clock_);
  }
  LearningOptions options_;
  std::vector<Pattern> patterns_;
};

TEST_F(MergeTest, SameKeyMergesIntoOnePatternWithRealCounts) {
  for (int i = 0; i < 20; ++i) {
    Episode e = Make(FixTestSteps(), i % 5 == 4 ? OutcomeKind::kFailure : OutcomeKind::kSuccess);
    e.steps[0].latency_ms = 100 + i;
    Merge(e);
  }
  ASSERT_EQ(patterns_.size(), 1u);
  const Pattern& p = patterns_[0];
  EXPECT_EQ(p.occurrences, 20);
  EXPECT_EQ(p.successes, 16);
  EXPECT_DOUBLE_EQ(p.success_rate, 0.8);
  EXPECT_EQ(p.evidence.size(), 20u);
  EXPECT_TRUE(IsUuid(p.pattern_id));
  json body = json::parse(p.body_json);
  EXPECT_EQ(body["task_types"]["debugging"], 20);
  EXPECT_EQ(body["task_words"]["parser"], 20);
  // The task words as written, most frequent first; all tie here, so alphabetical.
  EXPECT_EQ(p.description, "Tool sequence: bash → edit_file → bash (tasks: failing fix parser test)");
  // Mean of the per-episode step means: (100+i, 100, 100)/3 over i = 0..19.
  EXPECT_NEAR(p.avg_latency_ms, 100 + 9.5 / 3, 1e-9);
}

// Descriptions and bodies show words as people wrote them; the key and the counts go by
// search token, so "backoffs"/"backoff" and "tests"/"test" are one word each.
TEST_F(MergeTest, DescriptionsShowWrittenWordsAndCountThemBySearchToken) {
  auto steps = [](const std::string& fix) {
    return std::vector<Step>{MakeStep("pytest", "run tests", StepStatus::kError, "Timeout raised by client"),
                             MakeStep("edit_file", fix, StepStatus::kSuccess),
                             MakeStep("pytest", "run tests", StepStatus::kSuccess)};
  };
  auto merge_all = [&](const Episode& e) {
    auto obs = ExtractObservations(registry_, e);
    std::vector<std::string> targets;
    for (const auto& o : obs) targets.push_back(o.similarity_key);
    MergeObservations(patterns_, obs, targets, options_, clock_);
  };
  merge_all(Make(steps("raised retry backoff"), OutcomeKind::kSuccess, "Raised the retry backoff for failing tests"));
  merge_all(Make(steps("Raised retry backoffs"), OutcomeKind::kSuccess, "Raised retry backoff; test failed"));
  ASSERT_EQ(patterns_.size(), 4u);  // one per type: the second episode merged into each
  for (const Pattern& p : patterns_) {
    EXPECT_EQ(p.occurrences, 2) << p.similarity_key;
    // No search token such as "rais" or "fail" is shown.
    for (const char* stem : {"rais ", "rais)", "rais'", "rais\"", "fail ", "fail)", "fail\""}) {
      EXPECT_EQ(p.description.find(stem), std::string::npos) << p.description;
      EXPECT_EQ(p.body_json.find(stem), std::string::npos) << p.body_json;
    }
    json body = json::parse(p.body_json);
    // "tests" (first episode) and "test" (second) are one word; so are "failing" and "failed".
    EXPECT_EQ(body["task_words"]["tests"], 2) << body.dump();
    EXPECT_EQ(body["task_words"]["failing"], 2) << body.dump();
    EXPECT_EQ(body["task_words"]["retry"], 2) << body.dump();
    EXPECT_FALSE(body["task_words"].contains("test")) << body.dump();
    // The search words a request matches on are still there.
    std::vector<std::string> words = PatternWords(p);
    EXPECT_NE(std::find(words.begin(), words.end(), "retry"), words.end());
    EXPECT_NE(std::find(words.begin(), words.end(), "rais"), words.end()) << p.description;
  }
  const Pattern* dp = nullptr;
  const Pattern* er = nullptr;
  for (const Pattern& p : patterns_) {
    if (p.type == PatternType::kDecisionPoint) dp = &p;
    if (p.type == PatternType::kErrorRecovery) er = &p;
  }
  ASSERT_NE(dp, nullptr);
  ASSERT_NE(er, nullptr);
  // The newest episode's wording of the same key is shown.
  EXPECT_EQ(dp->description.substr(0, dp->description.find(" (tasks")),
            "When pytest 'run tests' fails, then edit_file 'raised retry backoffs'");
  EXPECT_EQ(er->description.substr(0, er->description.find(" (tasks")),
            "When pytest 'run tests' fails (timeout raised client), recover with edit_file → pytest");
  EXPECT_NE(dp->similarity_key.find("rais retry backoff"), std::string::npos) << dp->similarity_key;
}

// A pattern learned before words were kept as written (its body and description hold
// search tokens) shows words again after its next merge.
TEST_F(MergeTest, PatternsStoredWithSearchTokensShowWordsAfterTheNextMerge) {
  Episode e = Make(FixTestSteps(), OutcomeKind::kSuccess, "Raised the retry backoff");
  auto obs = Of(PatternType::kDecisionPoint, e);
  ASSERT_EQ(obs.size(), 1u);
  ASSERT_EQ(MergeObservations(patterns_, obs, {obs[0].similarity_key}, options_, clock_).created, 1u);
  // What such a pattern looked like.
  Pattern& p = patterns_[0];
  json old = json::parse(p.body_json);
  old["check"]["action"] = "run test";
  old["summary"] = "When bash 'run test' fails, then edit_file 'fix assertion parser'";
  old["task_words"] = {{"rais", 1}, {"retry", 1}, {"backoff", 1}};
  p.body_json = old.dump();
  p.evidence.clear();  // so the same episode merges again

  MergeObservations(patterns_, obs, {obs[0].similarity_key}, options_, clock_);
  json body = json::parse(p.body_json);
  EXPECT_EQ(body["check"]["action"], "run tests");
  EXPECT_EQ(body["task_words"], json({{"raised", 2}, {"retry", 2}, {"backoff", 2}}));
  EXPECT_EQ(p.description, "When bash 'run tests' fails, then edit_file 'fix assertion parser' (tasks: backoff raised retry)");
}

TEST_F(MergeTest, FailuresAloneStoreNothingAndRepeatsAreNotCounted) {
  Episode failed = Make(FixTestSteps(), OutcomeKind::kFailure);
  MergeStats s = Merge(failed);
  EXPECT_EQ(s.created, 0u);
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_TRUE(patterns_.empty());

  Episode ok = Make(FixTestSteps());
  EXPECT_EQ(Merge(ok).created, 1u);
  MergeStats again = Merge(ok);  // the same episode extracted twice
  EXPECT_EQ(again.merged, 0u);
  EXPECT_EQ(again.skipped, 1u);
  EXPECT_EQ(patterns_[0].occurrences, 1);
}

TEST_F(MergeTest, NearDuplicateTargetMergesAndEvidenceIsCapped) {
  options_.max_evidence = 3;
  Episode a = Make(FixTestSteps());
  Merge(a);
  Episode b = Make({MakeStep("bash", "x", StepStatus::kSuccess), MakeStep("vim", "x", StepStatus::kSuccess),
                    MakeStep("bash", "x", StepStatus::kSuccess)});
  auto obs = Of(PatternType::kToolSequence, b);
  std::vector<std::string> targets{patterns_[0].similarity_key};  // as the key index would pick
  MergeStats s = MergeObservations(patterns_, obs, targets, options_, clock_);
  EXPECT_EQ(s.merged, 1u);
  ASSERT_EQ(patterns_.size(), 1u);
  EXPECT_EQ(patterns_[0].occurrences, 2);
  for (int i = 0; i < 3; ++i) Merge(Make(FixTestSteps()));
  EXPECT_EQ(patterns_[0].occurrences, 5);
  EXPECT_EQ(patterns_[0].evidence.size(), 3u);
  EXPECT_EQ(std::find(patterns_[0].evidence.begin(), patterns_[0].evidence.end(), a.episode_id),
            patterns_[0].evidence.end());
}

TEST_F(MergeTest, ErrorRecoveryHasItsOwnThreshold) {
  options_.min_error_recovery_success_rate = 0.0;  // even a failed run's recovery is kept
  auto obs = Of(PatternType::kErrorRecovery, Make(FixTestSteps(), OutcomeKind::kFailure));
  ASSERT_EQ(obs.size(), 1u);
  MergeStats s = MergeObservations(patterns_, obs, {obs[0].similarity_key}, options_, clock_);
  EXPECT_EQ(s.created, 1u);
  EXPECT_DOUBLE_EQ(patterns_[0].success_rate, 0.0);
}

TEST_F(MergeTest, HeuristicFromMergedDecisionPoints) {
  auto merge_dp = [&](const Episode& e) {
    auto obs = Of(PatternType::kDecisionPoint, e);
    MergeObservations(patterns_, obs, {obs[0].similarity_key}, options_, clock_);
  };
  merge_dp(Make(FixTestSteps()));
  ASSERT_EQ(patterns_.size(), 1u);
  EXPECT_FALSE(DeriveHeuristic(patterns_[0], options_).has_value());  // one sample
  for (int i = 0; i < 8; ++i) merge_dp(Make(FixTestSteps()));
  auto h = DeriveHeuristic(patterns_[0], options_);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->condition, "when bash run tests fails");
  EXPECT_EQ(h->action, "edit_file: fix assertion parser");
  EXPECT_EQ(h->sample_size, 9);
  EXPECT_DOUBLE_EQ(h->confidence, 1.0 * 3.0 / 5.0);  // success 1 × √9 / √25
  EXPECT_EQ(h->heuristic_id, patterns_[0].pattern_id);
}

TEST(WilsonTest, KnownValues) {
  EXPECT_DOUBLE_EQ(WilsonLowerBound(0, 0), 0.0);
  EXPECT_NEAR(WilsonLowerBound(10, 10), 0.7225, 1e-4);
  EXPECT_NEAR(WilsonLowerBound(5, 10), 0.2366, 1e-4);
  EXPECT_NEAR(WilsonLowerBound(0, 10), 0.0, 1e-12);
  PatternEffectiveness e;
  const double untried = Effectiveness(e);
  e.success_when_applied = 1;
  const double one_success = Effectiveness(e);
  e.failure_when_applied = 3;
  const double then_failures = Effectiveness(e);
  EXPECT_GT(one_success, untried);
  EXPECT_LT(then_failures, one_success);
}

TEST(LearningOptionsTest, BadValuesNameTheField) {
  LearningOptions o;
  EXPECT_TRUE(ValidateLearningOptions(o).ok());
  o.min_success_rate = 1.5;
  Status s = ValidateLearningOptions(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("min_success_rate"), std::string_view::npos);
  o = {};
  o.workers = 0;
  EXPECT_NE(ValidateLearningOptions(o).message().find("workers"), std::string_view::npos);
  o = {};
  o.max_evidence = kMaxPatternEvidence + 1;
  EXPECT_NE(ValidateLearningOptions(o).message().find("max_evidence"), std::string_view::npos);
}

}  // namespace
}  // namespace engram
