// StorageBackend: the durable store of episodes and their steps (DESIGN §6).
// Implementations: SqliteBackend (the embedded default, storage/sqlite); later issues
// add PostgreSQL, Turso and the LMDB cache decorator behind this same interface, and the
// backend conformance suite (tests/conformance) runs every one of them.
//
// Every method is one transaction: it happens completely or not at all, and once it
// returns OK the change survives a kill -9 of the process at any moment.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/status.h"
#include "engram/types.h"

namespace engram {

// How hard a commit works to survive failures. Backends map it to their own settings.
enum class Durability {
  kFull,    // fsync at every commit: survives power loss. The default.
  kNormal,  // survives a process crash (kill -9) but may lose the last commits on power
            // loss; faster on slow disks.
};
// "full" / "normal". Errors: kInvalidArgument naming the accepted values.
Result<Durability> ParseDurability(std::string_view name);
std::string_view DurabilityName(Durability d);

// Which episodes ListEpisodes yields, newest first (by episode id, which is time-ordered).
struct EpisodeFilter {
  std::optional<std::string> domain;      // exact match
  std::optional<TaskType> task_type;
  std::optional<bool> completed;          // true: completed only; false: in progress only
  std::optional<std::string> before_id;   // keyset pagination: ids strictly older than this
  size_t limit = 0;                       // 0: no limit
  bool include_steps = false;             // steps are loaded only when asked
};

// A forward-only stream of episodes. Holds a read snapshot of the store until destroyed.
// Not thread-safe: owned by one thread.
class EpisodeStream {
 public:
  EpisodeStream(const EpisodeStream&) = delete;
  EpisodeStream& operator=(const EpisodeStream&) = delete;
  virtual ~EpisodeStream() = default;

  // The next episode, or nullopt at the end. Errors: kUnavailable, kDataLoss.
  virtual Result<std::optional<Episode>> Next() = 0;

 protected:
  EpisodeStream() = default;
};

struct StoreStats {
  int64_t episodes = 0;
  int64_t completed_episodes = 0;
  int64_t steps = 0;
};

// Thread-safe. Several processes may open the same store at once; none of them sees
// "database is locked": contention waits (bounded by the busy timeout) and retries.
class StorageBackend {
 public:
  StorageBackend(const StorageBackend&) = delete;
  StorageBackend& operator=(const StorageBackend&) = delete;
  virtual ~StorageBackend() = default;

  // "sqlite", ... and where it stores ("/home/me/.local/share/engram/memory.db").
  virtual std::string Name() const = 0;
  virtual std::string Location() const = 0;
  // The schema version this store is at after opening (migrations already applied).
  virtual int SchemaVersion() const = 0;

  // Inserts a new episode together with any steps it already has.
  // Errors: kAlreadyExists if the id is taken; kUnavailable; kDataLoss.
  virtual Status CreateEpisode(const Episode& episode) = 0;

  // Inserts or replaces whole episodes (steps included) in ONE transaction: all are
  // written or none. For import and batch ingest.
  virtual Status PutEpisodes(std::span<const Episode> episodes) = 0;

  // Appends `step` to an episode in progress and returns its step number. A
  // step_number of 0 takes the next free number (max + 1).
  // Errors: kNotFound (no such episode); kFailedPrecondition (episode completed);
  // kAlreadyExists (step number taken); kResourceExhausted (kMaxStepsPerEpisode or
  // kMaxEpisodeBytes would be exceeded).
  virtual Result<int> AppendStep(std::string_view episode_id, const Step& step) = 0;

  // Records completion: end_time, outcome, reward and reflection of `episode`. Steps
  // are not rewritten. `episode.steps.size()` must equal the stored step count, so a
  // reward is never computed over steps that changed underneath it.
  // Errors: kNotFound; kFailedPrecondition (already completed); kAborted (a step was
  // added meanwhile: reload and retry).
  virtual Status CompleteEpisode(const Episode& episode) = 0;

  // The episode with all its steps in step order. Errors: kNotFound.
  virtual Result<Episode> GetEpisode(std::string_view episode_id) = 0;

  // Streams episodes matching `filter`, newest first, without loading them all.
  virtual Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) = 0;

  // Deletes the episode and its steps. Returns false if there was none.
  virtual Result<bool> DeleteEpisode(std::string_view episode_id) = 0;

  virtual Result<StoreStats> Stats() = 0;

  // Checks the store is reachable and writable, and its structure is intact.
  // Errors: kUnavailable, kDataLoss (with what is wrong).
  virtual Status CheckHealth() = 0;

 protected:
  StorageBackend() = default;
};

}  // namespace engram
