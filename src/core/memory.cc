#include "engram/memory.h"

#include "common/ids.h"
#include "common/logging.h"
#include "core/event_bus.h"
#include "core/reflection.h"
#include "core/reward.h"
#include "model/episode_json.h"
#include "model/json_reader.h"

namespace engram {
namespace {

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
    : storage_(storage), clock_(clock), events_(events) {}

void Memory::Publish(auto event) {
  if (events_ != nullptr) events_->Publish(std::move(event));
}

Result<std::string> Memory::CreateEpisode(NewEpisode in) {
  ENGRAM_RETURN_IF_ERROR(CheckText(in.task_description, "task_description", kMaxTaskDescriptionChars, false));
  ENGRAM_RETURN_IF_ERROR(ValidateContext(in.context));
  ENGRAM_RETURN_IF_ERROR(CheckList(in.tags, "tags", 100));
  ENGRAM_ASSIGN_OR_RETURN(std::string metadata, NormalizeJsonObject(in.metadata_json, "metadata"));

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

}  // namespace engram
