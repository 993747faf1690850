#include "server/open_learning.h"

#include <chrono>

namespace engram::server {

LearningOptions LearningOptionsFromConfig(const Config& config) {
  const Config::Learning& l = config.learning;
  LearningOptions options;
  options.min_success_rate = l.min_success_rate;
  options.min_error_recovery_success_rate = l.min_error_recovery_rate;
  options.decay_half_life = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::hours(24) * l.decay_half_life_days);
  options.queue_capacity = static_cast<size_t>(l.queue_capacity);
  options.workers = static_cast<size_t>(l.workers);
  options.quiet_period = std::chrono::milliseconds(l.quiet_period_ms);
  options.max_defer = std::chrono::milliseconds(l.max_defer_ms);
  return options;
}

}  // namespace engram::server
