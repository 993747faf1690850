// Memory: the episode lifecycle of DESIGN §3 over any StorageBackend.
//
//   Memory memory(*store, SystemClock(), &bus);
//   ENGRAM_ASSIGN_OR_RETURN(std::string id, memory.CreateEpisode({.task_description = "Fix flaky test"}));
//   ENGRAM_RETURN_IF_ERROR(memory.AddStep(id, {.tool = "bash", .action = "run tests"}).status());
//   ENGRAM_ASSIGN_OR_RETURN(Episode done, memory.CompleteEpisode(id, Outcome{}));
//   // done.reward, done.reflection are set and stored.
//
// Every input is validated before anything is written; a call that fails writes nothing.
//
// With a Redactor (core/redaction.h), every text that enters the store passes it first:
// task description, context, tags, metadata values, tool, action, step parameter values,
// output and message, and the outcome's verdict, reason, error details and item lists. The
// original never reaches the store, its FTS index or the events. Reflections are derived
// from the redacted episode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/storage.h"
#include "engram/types.h"

namespace engram {

class EventBus;
class Redactor;

struct NewEpisode {
  std::string task_description;  // required, 1..10,000 characters
  TaskType task_type = TaskType::kOther;
  TaskContext context;
  std::vector<std::string> tags;
  std::string metadata_json = "{}";  // a JSON object
};

struct NewStep {
  std::string tool;    // required
  std::string action;  // required
  std::string parameters_json = "{}";  // a JSON object
  std::optional<StepResult> result;    // none: the step counts as failed
  std::optional<int64_t> latency_ms;
  std::optional<int64_t> tokens_used;
  int step_number = 0;  // 0: the next number
};

// Thread-safe (the backend is; Memory keeps no mutable state of its own).
class Memory {
 public:
  // `storage` and `clock` must outlive *this. `events` may be null (no events published).
  // Texts are stored as given.
  Memory(StorageBackend& storage, Clock& clock, EventBus* events);
  // As above, and every text passes `redactor` before it is stored (see the file comment).
  // `redactor` may be null (texts stored as given). In RedactionMode::kReject a write
  // holding a secret fails with kInvalidArgument and stores nothing.
  Memory(StorageBackend& storage, Clock& clock, EventBus* events, std::unique_ptr<const Redactor> redactor);
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;
  ~Memory();

  // Starts an episode and returns its id (a UUIDv7).
  // Errors: kInvalidArgument naming the bad field, or (reject mode) the field holding a
  // secret and the kind of secret, e.g. "task_description: holds a secret (github_token)";
  // storage errors unchanged.
  Result<std::string> CreateEpisode(NewEpisode episode);

  // Appends a step and returns its number.
  // Errors: kInvalidArgument (bad field or id; in reject mode a field holding a secret,
  // e.g. "result.output" or "parameters.headers.Authorization"); kNotFound;
  // kFailedPrecondition (the episode is completed); kAlreadyExists (number taken);
  // kResourceExhausted (a limit).
  Result<int> AddStep(std::string_view episode_id, NewStep step);

  // Ends the episode: sets its end time and outcome, computes reward and reflection,
  // stores all of it in one transaction, then publishes Completed and
  // ReflectionGenerated. Returns the completed episode with its steps.
  // Errors: kInvalidArgument (bad outcome; in reject mode an outcome field holding a
  // secret); kNotFound; kFailedPrecondition (already completed); storage errors unchanged
  // (and then nothing is marked completed).
  Result<Episode> CompleteEpisode(std::string_view episode_id, Outcome outcome);

  // Errors: kInvalidArgument (not an episode id); kNotFound.
  Result<Episode> GetEpisode(std::string_view episode_id);
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter);
  // Returns false when there was no such episode.
  Result<bool> DeleteEpisode(std::string_view episode_id);

  // For import (`engram import`): checks a whole episode that comes from outside (id,
  // texts, limits, steps, outcome) and passes every text through the same redactor as live
  // writes (reflection items included), in place. Stores nothing: the caller writes it with
  // storage().PutEpisodes. Errors: kInvalidArgument naming the field (in reject mode, the
  // field holding a secret); kResourceExhausted (a limit).
  Status PrepareImportedEpisode(Episode& episode) const;

  StorageBackend& storage() { return storage_; }
  // The clock episodes are stamped with; retrieval measures recency with it too.
  Clock& clock() { return clock_; }

 private:
  void Publish(auto event);

  StorageBackend& storage_;
  Clock& clock_;
  EventBus* const events_;  // may be null
  const std::unique_ptr<const Redactor> redactor_;  // may be null: no redaction
};

// Validation shared by every way in (CLI, MCP tools): kInvalidArgument naming the field.
Status ValidateEpisodeId(std::string_view episode_id);
Status ValidateOutcome(const Outcome& outcome);

}  // namespace engram
