#include "model/episode_json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "testing/episodes.h"

namespace engram {
namespace {

using nlohmann::json;
using testing::Completed;
using testing::MakeEpisode;

TEST(EpisodeJsonTest, RoundTripIsExact) {
  FakeClock clock;
  Episode e = Completed(MakeEpisode(clock, 5));
  e.steps[1].result.reset();  // a step without a result
  e.steps[2].latency_ms.reset();
  e.pattern_ids = {"0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d"};
  json j = EpisodeToJson(e);
  auto back = EpisodeFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, e);
  // And through text.
  auto again = EpisodeFromJson(json::parse(j.dump()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, e);
}

TEST(EpisodeJsonTest, InProgressEpisodeHasNoOutcomeFields) {
  FakeClock clock;
  Episode e = MakeEpisode(clock, 1);
  json j = EpisodeToJson(e);
  EXPECT_FALSE(j.contains("outcome"));
  EXPECT_FALSE(j.contains("end_time"));
  EXPECT_EQ(j["task_type"], "debugging");
  EXPECT_EQ(j["context"]["complexity"], "complex");
  EXPECT_EQ(j["steps"][0]["result"]["status"], "success");
  EXPECT_EQ(j["metadata"]["agent"], "claude-code");
}

TEST(EpisodeJsonTest, EveryOutcomeKindRoundTrips) {
  Outcome partial;
  partial.kind = OutcomeKind::kPartialSuccess;
  partial.verdict = "half";
  partial.completed = {"parser"};
  partial.failed = {"printer"};
  Outcome failure;
  failure.kind = OutcomeKind::kFailure;
  failure.reason = "build broke";
  failure.error_details = "E0308 mismatched types";
  failure.verification = Verification{std::nullopt, 3, false, 7, std::nullopt};
  for (const Outcome& o : {partial, failure}) {
    auto back = OutcomeFromJson(OutcomeToJson(o));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, o);
  }
  EXPECT_EQ(OutcomeToJson(partial)["type"], "partial_success");
}

TEST(EpisodeJsonTest, UnknownFieldsAreIgnored) {
  FakeClock clock;
  json j = EpisodeToJson(MakeEpisode(clock, 1));
  j["future_field"] = {{"x", 1}};
  j["steps"][0]["shiny"] = true;
  j["context"]["mood"] = "good";
  EXPECT_TRUE(EpisodeFromJson(j).ok());
}

TEST(EpisodeJsonTest, MissingRequiredFieldsNameThePath) {
  FakeClock clock;
  json base = EpisodeToJson(MakeEpisode(clock, 2));
  struct Case {
    std::function<void(json&)> mutate;
    std::string expected;
  };
  std::vector<Case> cases = {
      {[](json& j) { j.erase("task_description"); }, "episode.task_description: missing required field"},
      {[](json& j) { j.erase("episode_id"); }, "episode.episode_id: missing required field"},
      {[](json& j) { j.erase("start_time"); }, "episode.start_time: missing required field"},
      {[](json& j) { j["steps"][1].erase("tool"); }, "episode.steps[1].tool: missing required field"},
      {[](json& j) { j["steps"][0]["result"]["status"] = "meh"; }, "episode.steps[0].result.status: unknown step status"},
      {[](json& j) { j["task_type"] = 3; }, "episode.task_type: expected a string, got an integer"},
      {[](json& j) { j["context"]["complexity"] = "huge"; }, "episode.context.complexity: unknown complexity"},
      {[](json& j) { j["start_time"] = "noon"; }, "episode.start_time: invalid timestamp"},
      {[](json& j) { j["outcome"] = {{"verdict", "x"}}; }, "episode.outcome.type: missing required field"},
      {[](json& j) { j["outcome"] = {{"type", "failure"}}; }, "episode.outcome.reason: missing required field"},
      {[](json& j) { j["steps"] = json::object(); }, "episode.steps: expected an array"},
      {[](json& j) { j["tags"] = {1, 2}; }, "episode.tags[0]: expected a string"},
      {[](json& j) { j["metadata"] = "x"; }, "episode.metadata: expected an object"},
      {[](json& j) { j["steps"][0]["step_number"] = 0; }, "episode.steps[0].step_number: 0 is out of range"},
      {[](json& j) { j["task_description"] = std::string(10'001, 'a'); }, "episode.task_description: too long"},
  };
  for (const Case& c : cases) {
    json j = base;
    c.mutate(j);
    auto r = EpisodeFromJson(j);
    ASSERT_FALSE(r.ok()) << c.expected;
    EXPECT_EQ(r.status().code() == StatusCode::kInvalidArgument ||
                  r.status().code() == StatusCode::kResourceExhausted,
              true);
    EXPECT_NE(r.status().message().find(c.expected), std::string_view::npos)
        << "got: " << r.status().message() << "\nwant: " << c.expected;
  }
}

TEST(EpisodeJsonTest, NotAnObjectIsAClearError) {
  auto r = EpisodeFromJson(json::array());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "episode: expected an object, got an array");
}

TEST(EpisodeJsonTest, NormalizeJsonObject) {
  EXPECT_EQ(*NormalizeJsonObject(R"( { "b" : 1 , "a": [1,2] } )", "parameters"), R"({"a":[1,2],"b":1})");
  EXPECT_EQ(NormalizeJsonObject("[1]", "parameters").status().message(), "parameters: expected a JSON object");
  EXPECT_EQ(NormalizeJsonObject("{", "parameters").status().message(), "parameters: not valid JSON");
}

}  // namespace
}  // namespace engram
