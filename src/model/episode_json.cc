#include "model/episode_json.h"

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "model/json_reader.h"

namespace engram {

using nlohmann::json;

namespace {

void PutOpt(json& j, const char* key, const std::optional<std::string>& v) {
  if (v) j[key] = *v;
}
template <typename T>
void PutOptNum(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

// Parses a JSON object held as text; stored text is ours, so failure means corruption.
json ParseObjectText(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return json::object();
  return j;
}

void ReadTimestamp(JsonReader& r, const char* key, Timestamp* out, bool required) {
  if (!r.ok()) return;
  if (!r.Has(key)) {
    if (required) r.Fail(InvalidArgumentError(r.PathOf(key) + ": missing required field"));
    return;
  }
  std::string text;
  r.RequiredString(key, &text, 64);
  if (!r.ok()) return;
  Result<Timestamp> t = ParseTimestamp(text);
  if (!t.ok()) return r.Fail(t.status().WithContext(r.PathOf(key)));
  *out = *t;
}

template <typename E, typename Parse>
void ReadEnum(JsonReader& r, const char* key, E* out, bool required, Parse parse) {
  if (!r.ok()) return;
  if (!r.Has(key)) {
    if (required) r.Fail(InvalidArgumentError(r.PathOf(key) + ": missing required field"));
    return;
  }
  std::string name;
  r.RequiredString(key, &name, 64);
  if (!r.ok()) return;
  Result<E> e = parse(name);
  if (!e.ok()) return r.Fail(e.status().WithContext(r.PathOf(key)));
  *out = *e;
}

// Reads an optional JSON object field and stores it serialized.
void ReadObjectText(JsonReader& r, const char* key, std::string* out) {
  if (!r.ok()) return;
  const json* v = r.Find(key);
  if (v == nullptr) return;
  if (!v->is_object()) return r.Fail(InvalidArgumentError(r.PathOf(key) + ": expected an object"));
  *out = v->dump();
}

template <typename T, typename Parse>
void ReadNested(JsonReader& r, const char* key, std::optional<T>* out, Parse parse) {
  if (!r.ok()) return;
  const json* v = r.Find(key);
  if (v == nullptr) return;
  Result<T> t = parse(*v, r.PathOf(key));
  if (!t.ok()) return r.Fail(t.status());
  *out = *std::move(t);
}

}  // namespace

json TaskContextToJson(const TaskContext& c) {
  json j = {{"domain", c.domain}, {"complexity", ComplexityName(c.complexity)}, {"tags", c.tags}};
  PutOpt(j, "language", c.language);
  PutOpt(j, "framework", c.framework);
  PutOpt(j, "repo", c.repo);
  PutOpt(j, "commit", c.commit);
  return j;
}

Result<TaskContext> TaskContextFromJson(const json& j, const std::string& path) {
  TaskContext c;
  JsonReader r(j, path);
  r.OptionalString("domain", &c.domain, kMaxShortFieldChars);
  if (r.ok() && r.Has("domain")) r.Fail(CheckText(c.domain, r.PathOf("domain"), kMaxShortFieldChars, false));
  r.OptionalString("language", &c.language, kMaxShortFieldChars);
  r.OptionalString("framework", &c.framework, kMaxShortFieldChars);
  ReadEnum(r, "complexity", &c.complexity, false, ParseComplexity);
  r.OptionalStringList("tags", &c.tags, 100, kMaxShortFieldChars);
  r.OptionalString("repo", &c.repo, kMaxShortFieldChars);
  r.OptionalString("commit", &c.commit, kMaxShortFieldChars);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return c;
}

json StepToJson(const Step& s) {
  json j = {{"step_number", s.step_number},
            {"timestamp", FormatTimestamp(s.timestamp)},
            {"tool", s.tool},
            {"action", s.action},
            {"parameters", ParseObjectText(s.parameters_json)}};
  if (s.result) {
    json r = {{"status", StepStatusName(s.result->status)}};
    PutOpt(r, "output", s.result->output);
    PutOpt(r, "message", s.result->message);
    j["result"] = std::move(r);
  }
  PutOptNum(j, "latency_ms", s.latency_ms);
  PutOptNum(j, "tokens_used", s.tokens_used);
  return j;
}

Result<Step> StepFromJson(const json& j, const std::string& path) {
  Step s;
  JsonReader r(j, path);
  int64_t number = 0;
  r.RequiredInt("step_number", &number, 1, static_cast<int64_t>(kMaxStepsPerEpisode));
  s.step_number = static_cast<int>(number);
  ReadTimestamp(r, "timestamp", &s.timestamp, true);
  r.RequiredString("tool", &s.tool, kMaxShortFieldChars);
  r.RequiredString("action", &s.action, kMaxShortFieldChars);
  ReadObjectText(r, "parameters", &s.parameters_json);
  if (r.ok() && r.Find("result") != nullptr) {
    JsonReader rr(*r.Find("result"), r.PathOf("result"));
    StepResult result;
    ReadEnum(rr, "status", &result.status, true, ParseStepStatus);
    rr.OptionalString("output", &result.output, SIZE_MAX);
    rr.OptionalString("message", &result.message, SIZE_MAX);
    if (rr.ok() && result.output && result.output->size() > kMaxStepOutputBytes) {
      rr.Fail(ResourceExhaustedError(rr.PathOf("output") + ": output is " + std::to_string(result.output->size()) +
                                     " bytes; the limit is 1 MiB per step"));
    }
    r.Fail(rr.status());
    s.result = std::move(result);
  }
  r.OptionalInt("latency_ms", &s.latency_ms, 0);
  r.OptionalInt("tokens_used", &s.tokens_used, 0);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return s;
}

json VerificationToJson(const Verification& v) {
  json j = json::object();
  PutOptNum(j, "tests_passed", v.tests_passed);
  PutOptNum(j, "tests_failed", v.tests_failed);
  PutOptNum(j, "build_ok", v.build_ok);
  PutOptNum(j, "lint_warnings", v.lint_warnings);
  PutOptNum(j, "coverage_pct", v.coverage_pct);
  return j;
}

Result<Verification> VerificationFromJson(const json& j, const std::string& path) {
  Verification v;
  JsonReader r(j, path);
  r.OptionalInt("tests_passed", &v.tests_passed, 0);
  r.OptionalInt("tests_failed", &v.tests_failed, 0);
  r.OptionalBool("build_ok", &v.build_ok);
  r.OptionalInt("lint_warnings", &v.lint_warnings, 0);
  r.OptionalDouble("coverage_pct", &v.coverage_pct, 0.0, 100.0);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return v;
}

json OutcomeToJson(const Outcome& o) {
  json j = {{"type", OutcomeKindName(o.kind)}};
  switch (o.kind) {
    case OutcomeKind::kSuccess:
      j["verdict"] = o.verdict;
      j["artifacts"] = o.artifacts;
      break;
    case OutcomeKind::kPartialSuccess:
      j["verdict"] = o.verdict;
      j["completed"] = o.completed;
      j["failed"] = o.failed;
      break;
    case OutcomeKind::kFailure:
      j["reason"] = o.reason;
      PutOpt(j, "error_details", o.error_details);
      break;
  }
  if (o.verification) j["verification"] = VerificationToJson(*o.verification);
  return j;
}

Result<Outcome> OutcomeFromJson(const json& j, const std::string& path) {
  Outcome o;
  JsonReader r(j, path);
  ReadEnum(r, "type", &o.kind, true, ParseOutcomeKind);
  switch (o.kind) {
    case OutcomeKind::kSuccess:
      r.OptionalString("verdict", &o.verdict, kMaxTaskDescriptionChars);
      r.OptionalStringList("artifacts", &o.artifacts, 1000, kMaxShortFieldChars);
      break;
    case OutcomeKind::kPartialSuccess:
      r.OptionalString("verdict", &o.verdict, kMaxTaskDescriptionChars);
      r.OptionalStringList("completed", &o.completed, 1000, kMaxShortFieldChars);
      r.OptionalStringList("failed", &o.failed, 1000, kMaxShortFieldChars);
      break;
    case OutcomeKind::kFailure:
      r.RequiredString("reason", &o.reason, kMaxTaskDescriptionChars);
      r.OptionalString("error_details", &o.error_details, kMaxStepOutputBytes);
      break;
  }
  ReadNested(r, "verification", &o.verification, VerificationFromJson);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return o;
}

json RewardToJson(const Reward& w) {
  return {{"total", w.total},
          {"base", w.base},
          {"efficiency", w.efficiency},
          {"complexity_bonus", w.complexity_bonus},
          {"quality_multiplier", w.quality_multiplier},
          {"learning_bonus", w.learning_bonus}};
}

Result<Reward> RewardFromJson(const json& j, const std::string& path) {
  Reward w;
  JsonReader r(j, path);
  r.RequiredDouble("total", &w.total);
  r.OptionalDouble("base", &w.base);
  r.OptionalDouble("efficiency", &w.efficiency);
  r.OptionalDouble("complexity_bonus", &w.complexity_bonus);
  r.OptionalDouble("quality_multiplier", &w.quality_multiplier);
  r.OptionalDouble("learning_bonus", &w.learning_bonus);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return w;
}

json ReflectionToJson(const Reflection& f) {
  return {{"successes", f.successes}, {"improvements", f.improvements}, {"insights", f.insights}};
}

Result<Reflection> ReflectionFromJson(const json& j, const std::string& path) {
  Reflection f;
  JsonReader r(j, path);
  r.OptionalStringList("successes", &f.successes, kMaxReflectionItems, kMaxTaskDescriptionChars);
  r.OptionalStringList("improvements", &f.improvements, kMaxReflectionItems, kMaxTaskDescriptionChars);
  r.OptionalStringList("insights", &f.insights, kMaxReflectionItems, kMaxTaskDescriptionChars);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return f;
}

json EpisodeToJson(const Episode& e) {
  json steps = json::array();
  for (const Step& s : e.steps) steps.push_back(StepToJson(s));
  json j = {{"episode_id", e.episode_id},
            {"task_description", e.task_description},
            {"task_type", TaskTypeName(e.task_type)},
            {"context", TaskContextToJson(e.context)},
            {"start_time", FormatTimestamp(e.start_time)},
            {"steps", std::move(steps)},
            {"pattern_ids", e.pattern_ids},
            {"tags", e.tags},
            {"metadata", ParseObjectText(e.metadata_json)}};
  if (e.end_time) j["end_time"] = FormatTimestamp(*e.end_time);
  if (e.outcome) j["outcome"] = OutcomeToJson(*e.outcome);
  if (e.reward) j["reward"] = RewardToJson(*e.reward);
  if (e.reflection) j["reflection"] = ReflectionToJson(*e.reflection);
  return j;
}

Result<Episode> EpisodeFromJson(const json& j, const std::string& path) {
  Episode e;
  JsonReader r(j, path);
  r.RequiredString("episode_id", &e.episode_id, 64);
  r.RequiredString("task_description", &e.task_description, kMaxTaskDescriptionChars);
  ReadEnum(r, "task_type", &e.task_type, false, ParseTaskType);
  if (r.ok() && r.Find("context") != nullptr) {
    Result<TaskContext> c = TaskContextFromJson(*r.Find("context"), r.PathOf("context"));
    if (c.ok()) e.context = *std::move(c); else r.Fail(c.status());
  }
  ReadTimestamp(r, "start_time", &e.start_time, true);
  std::optional<Timestamp> end;
  if (r.ok() && r.Has("end_time")) {
    Timestamp t{};
    ReadTimestamp(r, "end_time", &t, true);
    e.end_time = t;
  }
  if (r.ok() && r.Find("steps") != nullptr) {
    const json& steps = *r.Find("steps");
    if (!steps.is_array()) {
      r.Fail(InvalidArgumentError(r.PathOf("steps") + ": expected an array"));
    } else if (steps.size() > kMaxStepsPerEpisode) {
      r.Fail(ResourceExhaustedError(r.PathOf("steps") + ": " + std::to_string(steps.size()) +
                                    " steps; the limit is 1000 per episode"));
    } else {
      for (size_t i = 0; i < steps.size() && r.ok(); ++i) {
        Result<Step> s = StepFromJson(steps[i], r.PathOf("steps") + "[" + std::to_string(i) + "]");
        if (s.ok()) e.steps.push_back(*std::move(s)); else r.Fail(s.status());
      }
    }
  }
  ReadNested(r, "outcome", &e.outcome, OutcomeFromJson);
  ReadNested(r, "reward", &e.reward, RewardFromJson);
  ReadNested(r, "reflection", &e.reflection, ReflectionFromJson);
  r.OptionalStringList("pattern_ids", &e.pattern_ids, 10'000, 64);
  r.OptionalStringList("tags", &e.tags, 100, kMaxShortFieldChars);
  ReadObjectText(r, "metadata", &e.metadata_json);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return e;
}

Result<std::string> NormalizeJsonObject(std::string_view text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(what + ": not valid JSON");
  if (!j.is_object()) return InvalidArgumentError(what + ": expected a JSON object");
  return j.dump();
}

}  // namespace engram
