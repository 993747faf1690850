// JSON form of the data model (DESIGN §2), used by the CLI's --json output, export and
// the MCP tools. Round trips are exact: FromJson(ToJson(x)) == x. Unknown fields are
// ignored; a missing required field or a wrong type is kInvalidArgument naming the
// field by its path ("steps[2].result.status: ...").
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engram/result.h"
#include "engram/types.h"

namespace engram {

nlohmann::json TaskContextToJson(const TaskContext& context);
nlohmann::json StepToJson(const Step& step);
nlohmann::json OutcomeToJson(const Outcome& outcome);
nlohmann::json VerificationToJson(const Verification& v);
nlohmann::json RewardToJson(const Reward& reward);
nlohmann::json ReflectionToJson(const Reflection& reflection);
nlohmann::json EpisodeToJson(const Episode& episode);

// `path` prefixes error messages ("episode", "arguments.outcome").
Result<TaskContext> TaskContextFromJson(const nlohmann::json& j, const std::string& path = "context");
Result<Step> StepFromJson(const nlohmann::json& j, const std::string& path = "step");
Result<Outcome> OutcomeFromJson(const nlohmann::json& j, const std::string& path = "outcome");
Result<Verification> VerificationFromJson(const nlohmann::json& j,
                                          const std::string& path = "verification");
Result<Reward> RewardFromJson(const nlohmann::json& j, const std::string& path = "reward");
Result<Reflection> ReflectionFromJson(const nlohmann::json& j, const std::string& path = "reflection");
Result<Episode> EpisodeFromJson(const nlohmann::json& j, const std::string& path = "episode");

// Parses `text` as a JSON object (for parameters and metadata) and returns it
// re-serialized compactly. Errors: kInvalidArgument if it is not valid JSON or not an object.
Result<std::string> NormalizeJsonObject(std::string_view text, const std::string& what);

}  // namespace engram
