#include "model/pattern_json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/episodes.h"

namespace engram {
namespace {

using nlohmann::json;
using testing::At;

Pattern MakePattern() {
  Pattern p;
  p.pattern_id = "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d";
  p.type = PatternType::kErrorRecovery;
  p.similarity_key = "error_recovery|web-api|cargo run test assertion failed";
  p.description = "When cargo 'run test' fails, recover with edit_file → cargo — ünïcode ✓";
  p.body_json = R"({"error_tool":"cargo","recovery":[{"action":"fix assertion","tool":"edit_file"}],"task_types":{"debugging":3}})";
  p.context.domain = "web-api";
  p.context.language = "rust";
  p.context.framework = "tokio";
  p.context.tags = {"ci"};
  p.occurrences = 4;
  p.successes = 3;
  p.success_rate = 0.75;
  p.avg_latency_ms = 812.5;
  p.evidence = {"0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b70", "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b71"};
  p.effectiveness = PatternEffectiveness{5, 2, 3, 1, At(1'767'225'700'000)};
  p.decay_weight = 0.5;
  p.created_at = At(1'767'225'600'000);
  p.updated_at = At(1'767'225'650'000);
  return p;
}

TEST(PatternJsonTest, RoundTripIsExact) {
  Pattern p = MakePattern();
  json j = PatternToJson(p);
  EXPECT_EQ(j["type"], "error_recovery");
  EXPECT_TRUE(j["body"].is_object()) << "the body is structure, not an escaped string";
  EXPECT_EQ(j["body"]["recovery"][0]["tool"], "edit_file");
  EXPECT_EQ(j["context"]["language"], "rust");
  EXPECT_EQ(j["effectiveness"]["times_applied"], 2);
  EXPECT_EQ(j["effectiveness"]["last_used"], "2026-01-01T00:01:40.000Z");
  Result<Pattern> back = PatternFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);

  p.effectiveness.last_used.reset();
  j = PatternToJson(p);
  EXPECT_FALSE(j["effectiveness"].contains("last_used"));
  back = PatternFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
}

TEST(PatternJsonTest, ABodyThatIsNotAnObjectShowsAsEmpty) {
  Pattern p = MakePattern();
  p.body_json = "not json";
  EXPECT_EQ(PatternToJson(p)["body"], json::object());
}

TEST(PatternJsonTest, ErrorsNameTheField) {
  json j = PatternToJson(MakePattern());
  j["type"] = "workflow";
  EXPECT_NE(PatternFromJson(j).status().message().find("pattern.type"), std::string::npos);
  j = PatternToJson(MakePattern());
  j["success_rate"] = 1.5;
  EXPECT_NE(PatternFromJson(j).status().message().find("pattern.success_rate"), std::string::npos);
  j = PatternToJson(MakePattern());
  j["effectiveness"]["times_applied"] = "two";
  EXPECT_NE(PatternFromJson(j).status().message().find("pattern.effectiveness.times_applied"), std::string::npos);
  j = PatternToJson(MakePattern());
  j["successes"] = 9;
  EXPECT_NE(PatternFromJson(j).status().message().find("successes"), std::string::npos);
  j = PatternToJson(MakePattern());
  j.erase("created_at");
  EXPECT_NE(PatternFromJson(j).status().message().find("pattern.created_at"), std::string::npos);
}

TEST(PatternJsonTest, HeuristicRoundTrip) {
  Heuristic h;
  h.heuristic_id = "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d";
  h.condition = "when cargo run test fails";
  h.action = "edit_file: fix assertion";
  h.confidence = 0.42;
  h.evidence_episode_ids = {"0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b70"};
  h.success_rate = 0.9;
  h.sample_size = 10;
  h.source_pattern_id = "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d";
  h.created_at = At(1'767'225'600'000);
  h.updated_at = At(1'767'225'650'000);
  json j = HeuristicToJson(h);
  EXPECT_EQ(j["evidence"]["sample_size"], 10);
  EXPECT_EQ(j["evidence"]["episode_ids"].size(), 1u);
  Result<Heuristic> back = HeuristicFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, h);
  j["confidence"] = -1;
  EXPECT_NE(HeuristicFromJson(j).status().message().find("heuristic.confidence"), std::string::npos);
}

}  // namespace
}  // namespace engram
