// The in-process event bus of the episode lifecycle (DESIGN §3): each stage publishes an
// EpisodeEvent; subscribers (the learning pipeline, metrics) handle them on the bus's own
// thread, never on the caller's. Publishing never fails a write: the write is already
// durable when its event is published, and a handler's failure is logged and counted.
//
//   EventBus bus;
//   bus.Subscribe("metrics", [](const EpisodeEvent& e) { ...; return OkStatus(); });
//   bus.Publish(EpisodeCompleted{id, 0.93});
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/mutex.h"
#include "engram/status.h"

namespace engram {

struct EpisodeCreated {
  std::string episode_id;
};
struct StepAdded {
  std::string episode_id;
  int step_number = 0;
};
struct EpisodeCompleted {
  std::string episode_id;
  double reward_total = 0;
};
struct ReflectionGenerated {
  std::string episode_id;
};
struct PatternExtracted {
  std::string episode_id;
  std::string pattern_id;
};
using EpisodeEvent =
    std::variant<EpisodeCreated, StepAdded, EpisodeCompleted, ReflectionGenerated, PatternExtracted>;

// "created", "step_added", "completed", "reflection_generated", "pattern_extracted".
std::string_view EpisodeEventName(const EpisodeEvent& event);
const std::string& EpisodeIdOf(const EpisodeEvent& event);

struct EventBusStats {
  uint64_t published = 0;
  uint64_t delivered = 0;  // handler calls that returned OK
  uint64_t failed = 0;     // handler calls that returned an error (or threw)
  uint64_t dropped = 0;    // events refused because the queue was full
  size_t queued = 0;
};

// Thread-safe. Events are delivered in publish order, one at a time, to every handler.
class EventBus {
 public:
  using Handler = std::function<Status(const EpisodeEvent&)>;

  // At most `capacity` events wait; beyond that Publish drops and counts them rather
  // than grow without bound or block the request path.
  explicit EventBus(size_t capacity = 10'000);
  // Delivers what is queued, then stops the thread.
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Handlers subscribed after an event was published may or may not see it.
  void Subscribe(std::string name, Handler handler) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Queues `event`; returns false (and counts a drop) when the queue is full.
  bool Publish(EpisodeEvent event) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Blocks until every event published before the call has been handled.
  void Flush() ENGRAM_LOCKS_EXCLUDED(mu_);

  EventBusStats Stats() ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  struct Subscriber {
    std::string name;
    Handler handler;
  };
  void Run(std::stop_token stop);

  const size_t capacity_;

  Mutex mu_;
  CondVar cv_;  // signalled on publish, on delivery and on stop
  std::deque<EpisodeEvent> queue_ ENGRAM_GUARDED_BY(mu_);
  std::vector<Subscriber> subscribers_ ENGRAM_GUARDED_BY(mu_);
  uint64_t published_ ENGRAM_GUARDED_BY(mu_) = 0;
  uint64_t finished_ ENGRAM_GUARDED_BY(mu_) = 0;  // events fully handled
  uint64_t delivered_ ENGRAM_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ENGRAM_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ENGRAM_GUARDED_BY(mu_) = 0;
  bool stopping_ ENGRAM_GUARDED_BY(mu_) = false;

  std::jthread thread_;  // last: started after every field above exists
};

}  // namespace engram
