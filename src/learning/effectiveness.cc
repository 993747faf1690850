// Attribution (which patterns an episode was shown or applied), the Wilson lower bound
// the ranking uses, and decay of unused patterns (learning.h, "Effectiveness").
#include <algorithm>
#include <cmath>

#include "engram/memory.h"
#include "learning/learning.h"

namespace engram {

double WilsonLowerBound(double successes, double trials, double z) {
  if (trials <= 0) return 0;
  const double p = std::clamp(successes / trials, 0.0, 1.0);
  const double z2 = z * z;
  const double centre = p + z2 / (2 * trials);
  const double margin = z * std::sqrt((p * (1 - p) + z2 / (4 * trials)) / trials);
  return std::max(0.0, (centre - margin) / (1 + z2 / trials));
}

double Effectiveness(const PatternEffectiveness& e) {
  const double successes = static_cast<double>(e.success_when_applied) + kEffectivenessPriorSuccesses;
  const double trials =
      static_cast<double>(e.success_when_applied + e.failure_when_applied) + kEffectivenessPriorTrials;
  return WilsonLowerBound(successes, trials);
}

Status RecordShown(StorageBackend& storage, Clock& clock, std::string_view episode_id,
                   const std::vector<std::string>& pattern_ids) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  if (pattern_ids.empty()) return OkStatus();
  const Timestamp now = clock.Now();
  std::vector<Attribution> records;
  records.reserve(pattern_ids.size());
  for (const std::string& id : pattern_ids) records.push_back({std::string(episode_id), id, false, now});
  return storage.RecordAttributions(records);
}

Status RecordApplied(StorageBackend& storage, Clock& clock, std::string_view episode_id,
                     std::string_view pattern_id) {
  ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(episode_id));
  if (pattern_id.empty()) return InvalidArgumentError("applied_pattern_id: must not be empty");
  Result<Pattern> pattern = storage.GetPattern(pattern_id);
  if (!pattern.ok()) {
    if (pattern.status().code() == StatusCode::kNotFound) {
      return NotFoundError("applied_pattern_id: no pattern " + std::string(pattern_id));
    }
    return pattern.status();
  }
  Attribution a{std::string(episode_id), std::string(pattern_id), true, clock.Now()};
  return storage.RecordAttributions(std::span<const Attribution>(&a, 1));
}

Result<DecayReport> ApplyDecay(StorageBackend& storage, Clock& clock, std::chrono::milliseconds half_life) {
  if (half_life.count() <= 0) return InvalidArgumentError("half_life: must be positive");
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Pattern> patterns, storage.ListPatterns(PatternFilter{}));
  const Timestamp now = clock.Now();
  DecayReport report;
  report.examined = patterns.size();
  std::vector<std::pair<std::string, double>> weights;
  for (const Pattern& p : patterns) {
    Timestamp last = p.updated_at;
    if (p.effectiveness.last_used.has_value()) last = std::max(last, *p.effectiveness.last_used);
    const double idle_ms = std::max<double>(0, static_cast<double>((now - last).count()));
    const double weight = std::pow(0.5, idle_ms / static_cast<double>(half_life.count()));
    if (std::abs(weight - p.decay_weight) <= kDecayEpsilon) continue;
    weights.emplace_back(p.pattern_id, weight);
    report.changes.push_back({p.pattern_id, p.description, p.decay_weight, weight});
  }
  if (!weights.empty()) ENGRAM_RETURN_IF_ERROR(storage.SetPatternDecay(weights));
  return report;
}

}  // namespace engram
