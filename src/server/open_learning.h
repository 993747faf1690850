// The learning pipeline's options from the configuration (learning.*), for `engram serve`
// (the PatternProcessor) and `engram pattern ...` (thresholds, decay, re-extraction).
//
//   LearningOptions options = LearningOptionsFromConfig(config);
//   PatternProcessor processor(*store, clock, &bus, options);
#pragma once

#include "config/config.h"
#include "learning/learning.h"

namespace engram::server {

// learning.min_success_rate, min_error_recovery_rate, decay_half_life_days (days → the
// half-life), queue_capacity and workers; every other field keeps its LearningOptions
// default. learning.enabled is not an option of the pipeline: the caller decides whether
// to start it. The config's ranges (checked by LoadConfig) make the result pass
// ValidateLearningOptions.
LearningOptions LearningOptionsFromConfig(const Config& config);

}  // namespace engram::server
