// Merging observations into stored patterns, and heuristics derived from the merged
// decision points (learning.h, "Merging" and "Heuristics").
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "common/ids.h"
#include "learning/internal.h"
#include "learning/learning.h"

namespace engram {

using namespace learning_internal;

Status ValidateLearningOptions(const LearningOptions& o) {
  auto rate_ok = [](double r) { return r >= 0 && r <= 1; };
  if (!rate_ok(o.min_success_rate)) return InvalidArgumentError("learning.min_success_rate: must be in [0, 1]");
  if (!rate_ok(o.min_error_recovery_success_rate)) {
    return InvalidArgumentError("learning.min_error_recovery_success_rate: must be in [0, 1]");
  }
  if (!(o.near_duplicate_threshold > 0 && o.near_duplicate_threshold <= 1)) {
    return InvalidArgumentError("learning.near_duplicate_threshold: must be in (0, 1]");
  }
  if (o.queue_capacity == 0) return InvalidArgumentError("learning.queue_capacity: must be at least 1");
  if (o.enqueue_wait.count() < 0) return InvalidArgumentError("learning.enqueue_wait: must not be negative");
  if (o.workers == 0) return InvalidArgumentError("learning.workers: must be at least 1");
  if (o.batch_size == 0) return InvalidArgumentError("learning.batch_size: must be at least 1");
  if (o.decay_half_life.count() <= 0) return InvalidArgumentError("learning.decay_half_life: must be positive");
  if (o.sweep_interval.count() < 0) return InvalidArgumentError("learning.sweep_interval: must not be negative");
  if (o.quiet_period.count() < 0) return InvalidArgumentError("learning.quiet_period: must not be negative");
  if (o.max_defer.count() < 0) return InvalidArgumentError("learning.max_defer: must not be negative");
  if (o.max_evidence == 0 || o.max_evidence > kMaxPatternEvidence) {
    return InvalidArgumentError("learning.max_evidence: must be in 1.." + std::to_string(kMaxPatternEvidence));
  }
  return OkStatus();
}

double SuccessThreshold(PatternType type, const LearningOptions& options) {
  return type == PatternType::kErrorRecovery ? options.min_error_recovery_success_rate : options.min_success_rate;
}

double SignatureSimilarity(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  const size_t n = a.size();
  const size_t m = b.size();
  if (n == 0 && m == 0) return 1;
  // Levenshtein over words with two rows.
  std::vector<size_t> prev(m + 1);
  std::vector<size_t> cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return 1.0 - static_cast<double>(prev[m]) / static_cast<double>(std::max(n, m));
}

namespace {

int64_t CountOf(const nlohmann::json& counts, const std::string& key) {
  auto it = counts.find(key);
  return it != counts.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// Merges `o` into `p`, whose body is `body` (parsed once per merge and written back by
// FinishMerge, so a pattern that takes many observations of a batch is parsed and
// serialised once).
void MergeInto(Pattern& p, nlohmann::json& body, const PatternObservation& o, const LearningOptions& options,
               Timestamp now, std::unordered_map<std::string, std::string>& key_of) {
  // SearchKeyOf, remembered for the batch (task words repeat from episode to episode).
  auto key = [&](const std::string& word) -> const std::string& {
    auto [it, fresh] = key_of.try_emplace(word);
    if (fresh) it->second = SearchKeyOf(word);
    return it->second;
  };
  // The running mean covers only observations that had a latency; occurrences that had
  // none are not known, so the mean is weighted by the count before this one.
  if (o.latency_ms.has_value()) {
    if (p.occurrences == 0 || p.avg_latency_ms <= 0) {
      p.avg_latency_ms = *o.latency_ms;
    } else {
      p.avg_latency_ms += (*o.latency_ms - p.avg_latency_ms) / static_cast<double>(p.occurrences + 1);
    }
  }
  p.occurrences += 1;
  if (o.success) p.successes += 1;
  p.success_rate = static_cast<double>(p.successes) / static_cast<double>(p.occurrences);
  p.evidence.push_back(o.episode_id);
  if (p.evidence.size() > options.max_evidence) {
    p.evidence.erase(p.evidence.begin(),
                     p.evidence.begin() + static_cast<std::ptrdiff_t>(p.evidence.size() - options.max_evidence));
  }
  if (o.similarity_key == p.similarity_key) {
    // The same key: the observation says what the pattern says, in the words of its episode.
    // Its body's fields and summary replace the stored ones, so the wording shown is the
    // newest (and a pattern stored with search tokens for words shows words again).
    nlohmann::json fresh = ParseBody(o.body_json);
    for (auto it = fresh.begin(); it != fresh.end(); ++it) body[it.key()] = it.value();
    body["summary"] = o.description;
  } else if (!body.contains("summary") || !body["summary"].is_string()) {
    body["summary"] = o.description;  // a near-duplicate keeps the pattern's own wording
  }
  nlohmann::json& task_types = body["task_types"];
  if (!task_types.is_object()) task_types = nlohmann::json::object();
  std::string tt(TaskTypeName(o.task_type));
  task_types[tt] = CountOf(task_types, tt) + 1;

  // Task words, counted by search key ("tests" and "test" are one word) and shown as
  // written: add this episode's, keep the kMaxTaskWords most frequent (ties: alphabetical).
  nlohmann::json& task_words = body["task_words"];
  if (!task_words.is_object()) task_words = nlohmann::json::object();
  std::unordered_map<std::string, std::string> stored_by_key;
  for (const auto& [w, n] : task_words.items()) stored_by_key.emplace(key(w), w);
  for (const std::string& w : o.task_words) {
    const std::string& k = key(w);
    auto it = stored_by_key.find(k);
    if (it == stored_by_key.end()) {
      task_words[w] = 1;
      stored_by_key.emplace(k, w);
    } else if (it->second == k && w != k) {
      // Stored as a bare search token (patterns learned before words were kept as
      // written): show the word as written from now on.
      const int64_t n = CountOf(task_words, it->second) + 1;
      task_words.erase(it->second);
      task_words[w] = n;
      it->second = w;
    } else {
      task_words[it->second] = CountOf(task_words, it->second) + 1;
    }
  }
  std::vector<std::pair<std::string, int64_t>> ranked;
  for (const auto& [w, n] : task_words.items()) ranked.emplace_back(w, n.is_number_integer() ? n.get<int64_t>() : 0);
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (ranked.size() > kMaxTaskWords) ranked.resize(kMaxTaskWords);
  task_words = nlohmann::json::object();
  for (const auto& [w, n] : ranked) task_words[w] = n;
  p.decay_weight = 1.0;  // fresh evidence: the pattern is in use again
  p.updated_at = now;
}

// Writes `body` back into `p` with the description it gives: the summary plus the task
// words, most frequent first (ties: alphabetical).
void FinishMerge(Pattern& p, const nlohmann::json& body) {
  std::vector<std::pair<std::string, int64_t>> ranked;
  if (auto tw = body.find("task_words"); tw != body.end() && tw->is_object()) {
    for (const auto& [w, n] : tw->items()) ranked.emplace_back(w, n.is_number_integer() ? n.get<int64_t>() : 0);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> words;
  for (const auto& [w, n] : ranked) words.push_back(w);
  auto summary = body.find("summary");
  p.description = summary != body.end() && summary->is_string() ? summary->get<std::string>() : p.description;
  if (!words.empty()) p.description += " (tasks: " + Join(words, " ") + ")";
  p.body_json = body.dump();
}

}  // namespace

MergeStats MergeObservations(std::vector<Pattern>& patterns, const std::vector<PatternObservation>& observations,
                             const std::vector<std::string>& targets, const LearningOptions& options, Clock& clock) {
  MergeStats stats;
  std::unordered_map<std::string, size_t> by_key;
  for (size_t i = 0; i < patterns.size(); ++i) by_key.emplace(patterns[i].similarity_key, i);
  const Timestamp now = clock.Now();
  auto touch = [&](const std::string& id) {
    if (std::find(stats.touched_ids.begin(), stats.touched_ids.end(), id) == stats.touched_ids.end()) {
      stats.touched_ids.push_back(id);
    }
  };
  // The parsed bodies of the patterns merged into, by index in `patterns`.
  std::unordered_map<size_t, nlohmann::json> bodies;
  std::unordered_map<std::string, std::string> key_of;  // SearchKeyOf of task words
  auto body_of = [&](size_t index) -> nlohmann::json& {
    auto [it, fresh] = bodies.try_emplace(index);
    if (fresh) it->second = ParseBody(patterns[index].body_json);
    return it->second;
  };
  for (size_t i = 0; i < observations.size(); ++i) {
    const PatternObservation& o = observations[i];
    const std::string& target = i < targets.size() ? targets[i] : o.similarity_key;
    auto it = by_key.find(target);
    if (it == by_key.end()) it = by_key.find(o.similarity_key);
    if (it != by_key.end()) {
      Pattern& p = patterns[it->second];
      stats.fed.emplace_back(o.episode_id, p.pattern_id);
      if (std::find(p.evidence.begin(), p.evidence.end(), o.episode_id) != p.evidence.end()) {
        ++stats.skipped;
        continue;
      }
      MergeInto(p, body_of(it->second), o, options, now, key_of);
      ++stats.merged;
      touch(p.pattern_id);
      continue;
    }
    const double rate = o.success ? 1.0 : 0.0;
    if (rate < SuccessThreshold(o.type, options)) {
      ++stats.skipped;
      continue;
    }
    Pattern p;
    p.pattern_id = NewUuidV7(clock);
    p.type = o.type;
    p.similarity_key = o.similarity_key;
    p.description = o.description;
    p.body_json = o.body_json;
    p.context = o.context;
    p.context.repo.reset();  // where one episode happened says nothing about the pattern
    p.context.commit.reset();
    p.created_at = now;
    const size_t index = patterns.size();
    by_key.emplace(p.similarity_key, index);
    touch(p.pattern_id);
    stats.fed.emplace_back(o.episode_id, p.pattern_id);
    patterns.push_back(std::move(p));
    MergeInto(patterns[index], body_of(index), o, options, now, key_of);
    ++stats.created;
  }
  for (auto& [index, body] : bodies) FinishMerge(patterns[index], body);
  return stats;
}

std::optional<Heuristic> DeriveHeuristic(const Pattern& p, const LearningOptions& options) {
  if (p.type != PatternType::kDecisionPoint) return std::nullopt;
  if (p.occurrences < kMinHeuristicSamples) return std::nullopt;
  if (p.success_rate < SuccessThreshold(p.type, options)) return std::nullopt;
  nlohmann::json body = ParseBody(p.body_json);
  auto str = [](const nlohmann::json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  const nlohmann::json check = body.contains("check") ? body["check"] : nlohmann::json::object();
  const nlohmann::json action = body.contains("action") ? body["action"] : nlohmann::json::object();
  std::string check_text = str(check, "tool");
  if (const std::string check_action = str(check, "action"); !check_action.empty()) {
    check_text += ' ';
    check_text += check_action;
  }
  const bool passed = str(check, "result") == "success";
  std::string action_text = str(action, "tool");
  if (!str(action, "action").empty()) action_text += ": " + str(action, "action");

  Heuristic h;
  h.heuristic_id = p.pattern_id;
  h.source_pattern_id = p.pattern_id;
  h.condition = "when " + check_text + (passed ? " passes" : " fails");
  h.action = action_text;
  const double n = static_cast<double>(p.occurrences);
  h.confidence = p.success_rate * std::min(1.0, std::sqrt(n) / std::sqrt(kHeuristicConfidenceSamples));
  h.evidence_episode_ids = p.evidence;
  h.success_rate = p.success_rate;
  h.sample_size = p.occurrences;
  h.created_at = p.created_at;
  h.updated_at = p.updated_at;
  return h;
}

}  // namespace engram
