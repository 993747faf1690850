#include "engram/memory.h"

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/logging.h"
#include "core/event_bus.h"
#include "core/redaction.h"
#include "core/reflection.h"
#include "core/reward.h"
#include "model/episode_json.h"
#include "model/json_reader.h"

namespace engram {
namespace {

// ---- redaction ------------------------------------------------------------------------
// Every Scrub* runs after validation and before anything is written, so in reject mode a
// refused write leaves nothing behind. The error names the field and the kind of secret,
// never the secret itself.

Status SecretRejected(std::string_view field, std::string_view kind) {
  return InvalidArgumentError(std::string(field) + ": holds a secret (" + std::string(kind) +
                              "); engram does not store secrets (redaction.mode = reject): remove it or put a "
                              "placeholder such as $TOKEN in its place");
}

Status Scrub(const Redactor* redactor, std::string& text, std::string_view field) {
  if (redactor == nullptr) return OkStatus();
  if (redactor->mode() == RedactionMode::kReject) {
    std::vector<SecretFinding> findings = redactor->Find(text);
    if (!findings.empty()) return SecretRejected(field, findings.front().kind);
    return OkStatus();
  }
  redactor->RedactInPlace(text);
  return OkStatus();
}

Status Scrub(const Redactor* redactor, std::optional<std::string>& text, std::string_view field) {
  if (!text) return OkStatus();
  return Scrub(redactor, *text, field);
}

Status Scrub(const Redactor* redactor, std::vector<std::string>& items, std::string_view field) {
  for (size_t i = 0; i < items.size(); ++i) {
    ENGRAM_RETURN_IF_ERROR(Scrub(redactor, items[i], std::string(field) + "[" + std::to_string(i) + "]"));
  }
  return OkStatus();
}

// Walks a JSON value: a string is scanned like any text, and is a secret as a whole when
// its key is secret-looking ({"password": "hunter2"}, {"Authorization": "Bearer x"}).
// Sets `changed` when a value was replaced.
Status ScrubJsonValue(const Redactor& redactor, nlohmann::json& j, const std::string& path, std::string_view key,
                      bool& changed) {
  if (j.is_string()) {
    std::string& s = j.get_ref<std::string&>();
    std::vector<SecretFinding> findings = redactor.Find(s);
    std::optional<std::string_view> named;
    if (findings.empty() && !key.empty()) named = redactor.KindOfNamedValue(key, s);
    if (findings.empty() && !named) return OkStatus();
    if (redactor.mode() == RedactionMode::kReject) {
      return SecretRejected(path, findings.empty() ? *named : findings.front().kind);
    }
    if (named) {
      s = RedactionMarker(*named);
    } else {
      redactor.RedactInPlace(s);
    }
    changed = true;
  } else if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      ENGRAM_RETURN_IF_ERROR(ScrubJsonValue(redactor, v, path + "." + k, k, changed));
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      ENGRAM_RETURN_IF_ERROR(ScrubJsonValue(redactor, j[i], path + "[" + std::to_string(i) + "]", key, changed));
    }
  }
  return OkStatus();
}

// `json_text` is a normalized JSON object (NormalizeJsonObject).
Status ScrubJsonObject(const Redactor* redactor, std::string& json_text, const std::string& field) {
  if (redactor == nullptr || json_text.size() <= 2) return OkStatus();
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(field + ": not valid JSON");
  bool changed = false;
  ENGRAM_RETURN_IF_ERROR(ScrubJsonValue(*redactor, j, field, "", changed));
  if (changed) json_text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return OkStatus();
}

Status ScrubContext(const Redactor* r, TaskContext& c) {
  ENGRAM_RETURN_IF_ERROR(Scrub(r, c.domain, "domain"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, c.language, "language"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, c.framework, "framework"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, c.repo, "repo"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, c.commit, "commit"));
  return Scrub(r, c.tags, "context.tags");
}

Status ScrubOutcome(const Redactor* r, Outcome& o) {
  ENGRAM_RETURN_IF_ERROR(Scrub(r, o.verdict, "outcome.verdict"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, o.reason, "outcome.reason"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, o.error_details, "outcome.error_details"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, o.artifacts, "outcome.artifacts"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, o.completed, "outcome.completed"));
  return Scrub(r, o.failed, "outcome.failed");
}

// ---- validation -----------------------------------------------------------------------

Status CheckShort(std::string_view value, const char* field) {
  return CheckText(value, field, kMaxShortFieldChars, /*allow_empty=*/false);
}

Status CheckList(const std::vector<std::string>& items, const std::string& field, size_t max_items) {
  if (items.size() > max_items) {
    return InvalidArgumentError(field + ": too many items (" + std::to_string(items.size()) + "; the limit is " +
                                std::to_string(max_items) + ")");
  }
  for (size_t i = 0; i < items.size(); ++i) {
    ENGRAM_RETURN_IF_ERROR(CheckShort(items[i], (field + "[" + std::to_string(i) + "]").c_str()));
  }
  return OkStatus();
}

Status CheckOptShort(const std::optional<std::string>& value, const char* field) {
  if (!value) return OkStatus();
  return CheckShort(*value, field);
}

Status ValidateContext(const TaskContext& c) {
  ENGRAM_RETURN_IF_ERROR(CheckShort(c.domain, "domain"));
  ENGRAM_RETURN_IF_ERROR(CheckOptShort(c.language, "language"));
  ENGRAM_RETURN_IF_ERROR(CheckOptShort(c.framework, "framework"));
  ENGRAM_RETURN_IF_ERROR(CheckOptShort(c.repo, "repo"));
  ENGRAM_RETURN_IF_ERROR(CheckOptShort(c.commit, "commit"));
  return CheckList(c.tags, "context.tags", 100);
}

}  // namespace

Status ValidateEpisodeId(std::string_view episode_id) {
  if (!IsUuid(episode_id)) {
    return InvalidArgumentError("episode_id \"" + std::string(episode_id.substr(0, 64)) +
                                "\" is not an episode id (expected a UUID like 0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d)");
  }
  return OkStatus();
}

Status ValidateOutcome(const Outcome& o) {
  switch (o.kind) {
    case OutcomeKind::kSuccess:
    case OutcomeKind::kPartialSuccess:
      ENGRAM_RETURN_IF_ERROR(CheckText(o.verdict, "outcome.verdict", kMaxTaskDescriptionChars, true));
      break;
    case OutcomeKind::kFailure:
      ENGRAM_RETURN_IF_ERROR(CheckText(o.reason, "outcome.reason", kMaxTaskDescriptionChars, false));
      if (o.error_details) {
        ENGRAM_RETURN_IF_ERROR(CheckText(*o.error_details, "outcome.error_details", kMaxStepOutputBytes, true));
      }
      break;
  }
  ENGRAM_RETURN_IF_ERROR(CheckList(o.artifacts, "outcome.artifacts", 1000));
  ENGRAM_RETURN_IF_ERROR(CheckList(o.completed, "outcome.completed", 1000));
  ENGRAM_RETURN_IF_ERROR(CheckList(o.failed, "outcome.failed", 1000));
  if (o.verification) {
    const Verification& v = *o.verification;
    auto non_negative = [](const std::optional<int64_t>& x, const char* name) -> Status {
      if (x && *x < 0) return InvalidArgumentError(std::string("outcome.verification.") + name + ": must be >= 0");
      return OkStatus();
    };
    ENGRAM_RETURN_IF_ERROR(non_negative(v.tests_passed, "tests_passed"));
    ENGRAM_RETURN_IF_ERROR(non_negative(v.tests_failed, "tests_failed"));
    ENGRAM_RETURN_IF_ERROR(non_negative(v.lint_warnings, "lint_warnings"));
    if (v.coverage_pct && !(*v.coverage_pct >= 0 && *v.coverage_pct <= 100)) {
      return InvalidArgumentError("outcome.verification.coverage_pct: must be between 0 and 100");
    }
  }
  return OkStatus();
}

Memory::Memory(StorageBackend& storage, Clock& clock, EventBus* events)
    : Memory(storage, clock, events, nullptr) {}

Memory::Memory(StorageBackend& storage, Clock& clock, EventBus* events, std::unique_ptr<const Redactor> redactor)
    : storage_(storage), clock_(clock), events_(events), redactor_(std::move(redactor)) {}

Memory::~Memory() = default;

void Memory::Publish(auto event) {
  if (events_ != nullptr) events_->Publish(std::move(event));
}

Result<std::string> Memory::CreateEpisode(NewEpisode in) {
  ENGRAM_RETURN_IF_ERROR(CheckText(in.task_description, "task_description", kMaxTaskDescriptionChars, false));
  ENGRAM_RETURN_IF_ERROR(ValidateContext(in.context));
  ENGRAM_RETURN_IF_ERROR(CheckList(in.tags, "tags", 100));
  ENGRAM_ASSIGN_OR_RETURN(std::string metadata, NormalizeJsonObject(in.metadata_json, "metadata"));
  const Redactor* r = redactor_.get();
  ENGRAM_RETURN_IF_ERROR(Scrub(r, in.task_description, "task_description"));
  ENGRAM_RETURN_IF_ERROR(ScrubContext(r, in.context));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, in.tags, "tags"));
  ENGRAM_RETURN_IF_ERROR(ScrubJsonObject(r, metadata, "metadata"));

  Episode e;
  e.episode_id = NewUuidV7(clock_);
  e.task_description = std::move(in.task_description);
  e.task_type = in.task_type;
  e.context = std::move(in.context);
  e.start_time = clock_.Now();
  e.tags = std::move(in.tags);
  e.metadata_json = std::move(metadata);
  ENGRAM_RETURN_IF_ERROR(storage_.CreateEpisode(e));
  Publish(EpisodeCreated{e.episode_id});
  return e.episode_id;
}

Result<int> Memory::AddStep(std::string_view episode_id, NewStep in) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  ENGRAM_RETURN_IF_ERROR(CheckShort(in.tool, "tool"));
  ENGRAM_RETURN_IF_ERROR(CheckShort(in.action, "action"));
  if (in.step_number < 0 || in.step_number > static_cast<int>(kMaxStepsPerEpisode)) {
    return InvalidArgumentError("step_number: must be between 1 and 1000");
  }
  if (in.latency_ms && *in.latency_ms < 0) return InvalidArgumentError("latency_ms: must be >= 0");
  if (in.tokens_used && *in.tokens_used < 0) return InvalidArgumentError("tokens_used: must be >= 0");
  ENGRAM_ASSIGN_OR_RETURN(std::string parameters, NormalizeJsonObject(in.parameters_json, "parameters"));
  if (in.result) {
    if (in.result->output) {
      if (in.result->output->size() > kMaxStepOutputBytes) {
        return ResourceExhaustedError("result.output is " + std::to_string(in.result->output->size()) +
                                      " bytes; the limit is 1 MiB per step (truncate it)");
      }
      ENGRAM_RETURN_IF_ERROR(CheckText(*in.result->output, "result.output", SIZE_MAX, true));
    }
    if (in.result->message) {
      ENGRAM_RETURN_IF_ERROR(CheckText(*in.result->message, "result.message", kMaxTaskDescriptionChars, true));
    }
  }
  const Redactor* r = redactor_.get();
  ENGRAM_RETURN_IF_ERROR(Scrub(r, in.tool, "tool"));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, in.action, "action"));
  ENGRAM_RETURN_IF_ERROR(ScrubJsonObject(r, parameters, "parameters"));
  if (in.result) {
    ENGRAM_RETURN_IF_ERROR(Scrub(r, in.result->output, "result.output"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, in.result->message, "result.message"));
  }

  Step s;
  s.step_number = in.step_number;
  s.timestamp = clock_.Now();
  s.tool = std::move(in.tool);
  s.action = std::move(in.action);
  s.parameters_json = std::move(parameters);
  s.result = std::move(in.result);
  s.latency_ms = in.latency_ms;
  s.tokens_used = in.tokens_used;
  ENGRAM_ASSIGN_OR_RETURN(int number, storage_.AppendStep(episode_id, s));
  Publish(StepAdded{std::string(episode_id), number});
  return number;
}

Result<Episode> Memory::CompleteEpisode(std::string_view episode_id, Outcome outcome) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  ENGRAM_RETURN_IF_ERROR(ValidateOutcome(outcome));
  ENGRAM_RETURN_IF_ERROR(ScrubOutcome(redactor_.get(), outcome));
  // A step appended by another process between reading and storing makes the store
  // answer kAborted; the reward is then recomputed over the steps as they now are.
  for (int attempt = 0;; ++attempt) {
    ENGRAM_ASSIGN_OR_RETURN(Episode e, storage_.GetEpisode(episode_id));
    if (e.completed()) {
      return FailedPreconditionError("episode " + e.episode_id + " is already completed");
    }
    e.end_time = clock_.Now();
    if (*e.end_time < e.start_time) e.end_time = e.start_time;
    e.outcome = outcome;
    e.reward = ComputeReward(e);
    e.reflection = GenerateReflection(e, *e.reward);
    Status s = storage_.CompleteEpisode(e);
    if (s.code() == StatusCode::kAborted && attempt < 10) continue;
    ENGRAM_RETURN_IF_ERROR(s);
    Publish(EpisodeCompleted{e.episode_id, e.reward->total});
    Publish(ReflectionGenerated{e.episode_id});
    return e;
  }
}

Result<Episode> Memory::GetEpisode(std::string_view episode_id) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  return storage_.GetEpisode(episode_id);
}

Result<std::unique_ptr<EpisodeStream>> Memory::ListEpisodes(const EpisodeFilter& filter) {
  if (filter.before_id) ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(*filter.before_id));
  return storage_.ListEpisodes(filter);
}

Result<bool> Memory::DeleteEpisode(std::string_view episode_id) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  return storage_.DeleteEpisode(episode_id);
}

Status Memory::PrepareImportedEpisode(Episode& e) const {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(e.episode_id));
  ENGRAM_RETURN_IF_ERROR(CheckText(e.task_description, "task_description", kMaxTaskDescriptionChars, false));
  ENGRAM_RETURN_IF_ERROR(ValidateContext(e.context));
  ENGRAM_RETURN_IF_ERROR(CheckList(e.tags, "tags", 100));
  ENGRAM_ASSIGN_OR_RETURN(e.metadata_json, NormalizeJsonObject(e.metadata_json, "metadata"));
  if (e.steps.size() > kMaxStepsPerEpisode) {
    return ResourceExhaustedError("steps: " + std::to_string(e.steps.size()) + " steps; the limit is " +
                                  std::to_string(kMaxStepsPerEpisode) + " per episode");
  }
  if (e.end_time && !e.outcome) return InvalidArgumentError("end_time: set on an episode without an outcome");
  const Redactor* r = redactor_.get();
  for (size_t i = 0; i < e.steps.size(); ++i) {
    Step& s = e.steps[i];
    const std::string p = "steps[" + std::to_string(i) + "]";
    if (s.step_number < 1 || s.step_number > static_cast<int>(kMaxStepsPerEpisode)) {
      return InvalidArgumentError(p + ".step_number: must be between 1 and 1000");
    }
    if (i > 0 && s.step_number <= e.steps[i - 1].step_number) {
      return InvalidArgumentError(p + ".step_number: steps must be in increasing step order");
    }
    ENGRAM_RETURN_IF_ERROR(CheckShort(s.tool, (p + ".tool").c_str()));
    ENGRAM_RETURN_IF_ERROR(CheckShort(s.action, (p + ".action").c_str()));
    if (s.latency_ms && *s.latency_ms < 0) return InvalidArgumentError(p + ".latency_ms: must be >= 0");
    if (s.tokens_used && *s.tokens_used < 0) return InvalidArgumentError(p + ".tokens_used: must be >= 0");
    ENGRAM_ASSIGN_OR_RETURN(s.parameters_json, NormalizeJsonObject(s.parameters_json, p + ".parameters"));
    if (s.result && s.result->output) {
      if (s.result->output->size() > kMaxStepOutputBytes) {
        return ResourceExhaustedError(p + ".result.output is " + std::to_string(s.result->output->size()) +
                                      " bytes; the limit is 1 MiB per step");
      }
      ENGRAM_RETURN_IF_ERROR(CheckText(*s.result->output, (p + ".result.output").c_str(), SIZE_MAX, true));
    }
    if (s.result && s.result->message) {
      ENGRAM_RETURN_IF_ERROR(
          CheckText(*s.result->message, (p + ".result.message").c_str(), kMaxTaskDescriptionChars, true));
    }
    ENGRAM_RETURN_IF_ERROR(Scrub(r, s.tool, p + ".tool"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, s.action, p + ".action"));
    ENGRAM_RETURN_IF_ERROR(ScrubJsonObject(r, s.parameters_json, p + ".parameters"));
    if (s.result) {
      ENGRAM_RETURN_IF_ERROR(Scrub(r, s.result->output, p + ".result.output"));
      ENGRAM_RETURN_IF_ERROR(Scrub(r, s.result->message, p + ".result.message"));
    }
  }
  if (e.ByteSize() > kMaxEpisodeBytes) {
    return ResourceExhaustedError("episode is " + std::to_string(e.ByteSize()) + " bytes; the limit is 10 MiB");
  }
  if (e.outcome) {
    ENGRAM_RETURN_IF_ERROR(ValidateOutcome(*e.outcome));
    ENGRAM_RETURN_IF_ERROR(ScrubOutcome(r, *e.outcome));
  }
  ENGRAM_RETURN_IF_ERROR(Scrub(r, e.task_description, "task_description"));
  ENGRAM_RETURN_IF_ERROR(ScrubContext(r, e.context));
  ENGRAM_RETURN_IF_ERROR(Scrub(r, e.tags, "tags"));
  ENGRAM_RETURN_IF_ERROR(ScrubJsonObject(r, e.metadata_json, "metadata"));
  if (e.reflection) {
    ENGRAM_RETURN_IF_ERROR(Scrub(r, e.reflection->successes, "reflection.successes"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, e.reflection->improvements, "reflection.improvements"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, e.reflection->insights, "reflection.insights"));
  }
  return OkStatus();
}

}  // namespace engram
