#include "core/event_bus.h"

#include <thread>

#include <gtest/gtest.h>

namespace engram {
namespace {

TEST(EventBusTest, DeliversInOrderOffTheCallersThread) {
  EventBus bus;
  Mutex mu;
  std::vector<std::string> seen;
  std::thread::id handler_thread;
  bus.Subscribe("order", [&](const EpisodeEvent& e) {
    MutexLock lock(mu);
    handler_thread = std::this_thread::get_id();
    seen.push_back(std::string(EpisodeEventName(e)) + ":" + EpisodeIdOf(e));
    return OkStatus();
  });
  bus.Publish(EpisodeCreated{"a"});
  bus.Publish(StepAdded{"a", 1});
  bus.Publish(EpisodeCompleted{"a", 1.5});
  bus.Publish(ReflectionGenerated{"a"});
  bus.Publish(PatternExtracted{"a", "p"});
  bus.Flush();
  MutexLock lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"created:a", "step_added:a", "completed:a", "reflection_generated:a",
                                            "pattern_extracted:a"}));
  EXPECT_NE(handler_thread, std::this_thread::get_id());
  EXPECT_EQ(bus.Stats().delivered, 5u);
}

TEST(EventBusTest, FullQueueDropsAndCountsInsteadOfBlocking) {
  EventBus bus(/*capacity=*/2);
  std::mutex gate;
  gate.lock();  // the handler blocks until released, so the queue fills up
  bus.Subscribe("slow", [&](const EpisodeEvent&) {
    std::lock_guard<std::mutex> l(gate);
    return OkStatus();
  });
  int accepted = 0;
  for (int i = 0; i < 10; ++i) accepted += bus.Publish(EpisodeCreated{std::to_string(i)}) ? 1 : 0;
  gate.unlock();
  bus.Flush();
  EventBusStats stats = bus.Stats();
  EXPECT_GE(accepted, 2);
  EXPECT_LE(accepted, 3);  // two queued, plus possibly one already taken by the handler
  EXPECT_EQ(stats.dropped, static_cast<uint64_t>(10 - accepted));
  EXPECT_EQ(stats.delivered, static_cast<uint64_t>(accepted));
}

TEST(EventBusTest, DestructorDeliversWhatIsQueued) {
  std::atomic<int> handled{0};
  {
    EventBus bus;
    bus.Subscribe("count", [&](const EpisodeEvent&) {
      ++handled;
      return OkStatus();
    });
    for (int i = 0; i < 100; ++i) bus.Publish(EpisodeCreated{"x"});
  }
  EXPECT_EQ(handled.load(), 100);
}

}  // namespace
}  // namespace engram
