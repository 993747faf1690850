// An annotated mutex so clang's -Wthread-safety can check ENGRAM_GUARDED_BY fields
// (libstdc++'s std::mutex carries no annotations). Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace engram {

class ENGRAM_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ENGRAM_ACQUIRE() { mu_.lock(); }
  void Unlock() ENGRAM_RELEASE() { mu_.unlock(); }

  // For CondVar only.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Holds `mu` for the enclosing scope.
class ENGRAM_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ENGRAM_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() ENGRAM_RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A condition variable over Mutex. REQUIRES the mutex held around Wait*.
class CondVar {
 public:
  void Wait(Mutex& mu) ENGRAM_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns false on timeout.
  template <typename Duration>
  bool WaitFor(Mutex& mu, Duration d) ENGRAM_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    bool signalled = cv_.wait_for(lock, d) == std::cv_status::no_timeout;
    lock.release();
    return signalled;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace engram
