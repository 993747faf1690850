#include "core/event_bus.h"

#include <exception>

#include "common/logging.h"

namespace engram {

std::string_view EpisodeEventName(const EpisodeEvent& event) {
  struct Name {
    std::string_view operator()(const EpisodeCreated&) const { return "created"; }
    std::string_view operator()(const StepAdded&) const { return "step_added"; }
    std::string_view operator()(const EpisodeCompleted&) const { return "completed"; }
    std::string_view operator()(const ReflectionGenerated&) const { return "reflection_generated"; }
    std::string_view operator()(const PatternExtracted&) const { return "pattern_extracted"; }
  };
  return std::visit(Name{}, event);
}

const std::string& EpisodeIdOf(const EpisodeEvent& event) {
  return std::visit([](const auto& e) -> const std::string& { return e.episode_id; }, event);
}

EventBus::EventBus(size_t capacity)
    : capacity_(capacity), thread_([this](std::stop_token stop) { Run(stop); }) {}

EventBus::~EventBus() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  thread_.request_stop();
  thread_.join();
}

void EventBus::Subscribe(std::string name, Handler handler) {
  MutexLock lock(mu_);
  subscribers_.push_back({std::move(name), std::move(handler)});
}

bool EventBus::Publish(EpisodeEvent event) {
  {
    MutexLock lock(mu_);
    if (queue_.size() >= capacity_) {
      ++dropped_;
      LogWarn("event bus full; event dropped",
              {{"event", std::string(EpisodeEventName(event))}, {"episode_id", EpisodeIdOf(event)}});
      return false;
    }
    queue_.push_back(std::move(event));
    ++published_;
  }
  cv_.SignalAll();
  return true;
}

void EventBus::Flush() {
  MutexLock lock(mu_);
  const uint64_t target = published_;
  while (finished_ < target) cv_.Wait(mu_);
}

EventBusStats EventBus::Stats() {
  MutexLock lock(mu_);
  return {published_, delivered_, failed_, dropped_, queue_.size()};
}

void EventBus::Run(std::stop_token stop) {
  for (;;) {
    EpisodeEvent event;
    std::vector<Subscriber> subscribers;
    {
      MutexLock lock(mu_);
      while (queue_.empty() && !stopping_) cv_.Wait(mu_);
      if (queue_.empty()) return;  // stopping, and everything delivered
      event = std::move(queue_.front());
      queue_.pop_front();
      subscribers = subscribers_;
    }
    uint64_t ok = 0, failed = 0;
    for (const Subscriber& s : subscribers) {
      Status status;
      // The one catch: a thread entry point must not let a handler's exception escape.
      try {
        status = s.handler(event);
      } catch (const std::exception& e) {
        status = InternalError(std::string("handler threw: ") + e.what());
      } catch (...) {
        status = InternalError("handler threw a non-standard exception");
      }
      if (status.ok()) {
        ++ok;
      } else {
        ++failed;
        LogWarn("event handler failed", {{"handler", s.name},
                                         {"event", std::string(EpisodeEventName(event))},
                                         {"episode_id", EpisodeIdOf(event)},
                                         {"error", status.ToString()}});
      }
    }
    {
      MutexLock lock(mu_);
      delivered_ += ok;
      failed_ += failed;
      ++finished_;
    }
    cv_.SignalAll();
  }
}

}  // namespace engram
