// A fixed pool of worker threads running queued tasks (STYLE §4: transports hand
// complete requests to a worker pool). Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace engram {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  // Runs every queued task, then joins the threads.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task) ENGRAM_LOCKS_EXCLUDED(mu_);
  // Blocks until the queue is empty and no task is running.
  void WaitIdle() ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  void Work();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ ENGRAM_GUARDED_BY(mu_);
  size_t running_ ENGRAM_GUARDED_BY(mu_) = 0;
  bool stopping_ ENGRAM_GUARDED_BY(mu_) = false;
  std::vector<std::jthread> threads_;  // last: started after the fields above
};

}  // namespace engram
