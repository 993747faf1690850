#include "cli/export_format.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "core/redaction.h"
#include "model/json_reader.h"
#include "model/pattern_json.h"

namespace engram::cli {
namespace {

using nlohmann::json;

Status CheckId(const std::string& id, const std::string& path) {
  if (!IsUuid(id)) return InvalidArgumentError(path + ": not a UUID: \"" + id.substr(0, 80) + "\"");
  return OkStatus();
}

Status CheckIds(const std::vector<std::string>& ids, const std::string& path) {
  for (size_t i = 0; i < ids.size(); ++i) {
    ENGRAM_RETURN_IF_ERROR(CheckId(ids[i], path + "[" + std::to_string(i) + "]"));
  }
  return OkStatus();
}

Status CheckPattern(const Pattern& p) {
  ENGRAM_RETURN_IF_ERROR(CheckId(p.pattern_id, "pattern.pattern_id"));
  ENGRAM_RETURN_IF_ERROR(CheckIds(p.evidence, "pattern.evidence"));
  if (!std::isfinite(p.avg_latency_ms) || p.avg_latency_ms < 0) {
    return InvalidArgumentError("pattern.avg_latency_ms: must be a finite number >= 0");
  }
  return OkStatus();
}

Status CheckHeuristic(const Heuristic& h) {
  ENGRAM_RETURN_IF_ERROR(CheckId(h.heuristic_id, "heuristic.heuristic_id"));
  ENGRAM_RETURN_IF_ERROR(CheckId(h.source_pattern_id, "heuristic.source_pattern_id"));
  return CheckIds(h.evidence_episode_ids, "heuristic.evidence.episode_ids");
}

Result<LearningRecord> LearningRecordFromJson(const json& j) {
  LearningRecord r;
  JsonReader reader(j, "learning");
  int64_t version = 0;
  reader.RequiredInt("version", &version, 1);
  if (reader.ok() && version != kLearningRecordVersion) {
    return InvalidArgumentError("learning.version: " + std::to_string(version) + " is newer than this engram reads (" +
                                std::to_string(kLearningRecordVersion) + ")");
  }
  r.version = static_cast<int>(version);
  reader.RequiredInt("patterns", &r.patterns, 0);
  reader.RequiredInt("heuristics", &r.heuristics, 0);
  reader.OptionalStringList("pending_extraction", &r.pending_extraction, SIZE_MAX, 64);
  ENGRAM_RETURN_IF_ERROR(reader.status());
  ENGRAM_RETURN_IF_ERROR(CheckIds(r.pending_extraction, "learning.pending_extraction"));
  return r;
}

Status Scrub(const Redactor& redactor, std::string& text, const std::string& field) {
  if (redactor.mode() == RedactionMode::kReject) {
    std::vector<SecretFinding> findings = redactor.Find(text);
    if (findings.empty()) return OkStatus();
    return InvalidArgumentError(field + ": holds a secret (" + std::string(findings.front().kind) +
                                "); engram does not store secrets (redaction.mode = reject)");
  }
  redactor.RedactInPlace(text);
  return OkStatus();
}

Status Scrub(const Redactor& redactor, std::optional<std::string>& text, const std::string& field) {
  return text ? Scrub(redactor, *text, field) : OkStatus();
}

Status ScrubJson(const Redactor& redactor, json& j, const std::string& path) {
  if (j.is_string()) return Scrub(redactor, j.get_ref<std::string&>(), path);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) ENGRAM_RETURN_IF_ERROR(ScrubJson(redactor, v, path + "." + k));
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) ENGRAM_RETURN_IF_ERROR(ScrubJson(redactor, j[i], path + "[" + std::to_string(i) + "]"));
  }
  return OkStatus();
}

}  // namespace

Status ScrubRecord(const Redactor* redactor, ExportRecord& record) {
  if (redactor == nullptr) return OkStatus();
  const Redactor& r = *redactor;
  if (record.kind == RecordKind::kPattern) {
    Pattern& p = record.pattern;
    ENGRAM_RETURN_IF_ERROR(Scrub(r, p.description, "pattern.description"));
    json body = json::parse(p.body_json, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) return InvalidArgumentError("pattern.body: expected an object");
    ENGRAM_RETURN_IF_ERROR(ScrubJson(r, body, "pattern.body"));
    p.body_json = body.dump();
    TaskContext& c = p.context;
    ENGRAM_RETURN_IF_ERROR(Scrub(r, c.domain, "pattern.context.domain"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, c.language, "pattern.context.language"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, c.framework, "pattern.context.framework"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, c.repo, "pattern.context.repo"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, c.commit, "pattern.context.commit"));
    for (size_t i = 0; i < c.tags.size(); ++i) {
      ENGRAM_RETURN_IF_ERROR(Scrub(r, c.tags[i], "pattern.context.tags[" + std::to_string(i) + "]"));
    }
  } else if (record.kind == RecordKind::kHeuristic) {
    ENGRAM_RETURN_IF_ERROR(Scrub(r, record.heuristic.condition, "heuristic.condition"));
    ENGRAM_RETURN_IF_ERROR(Scrub(r, record.heuristic.action, "heuristic.action"));
  }
  return OkStatus();
}

json PatternRecordToJson(const Pattern& pattern) { return {{"record", "pattern"}, {"pattern", PatternToJson(pattern)}}; }

json HeuristicRecordToJson(const Heuristic& heuristic) {
  return {{"record", "heuristic"}, {"heuristic", HeuristicToJson(heuristic)}};
}

json LearningRecordToJson(const LearningRecord& r) {
  return {{"record", "learning"},
          {"version", r.version},
          {"patterns", r.patterns},
          {"heuristics", r.heuristics},
          {"pending_extraction", r.pending_extraction}};
}

bool IsExportRecord(const json& j) { return j.is_object() && j.contains("record"); }

Result<ExportRecord> ParseExportRecord(const json& j) {
  const json& kind = j.at("record");
  if (!kind.is_string()) return InvalidArgumentError("record: expected a string");
  const std::string name = kind.get<std::string>();
  ExportRecord r;
  auto body = [&](const char* key) -> Result<const json*> {
    auto it = j.find(key);
    if (it == j.end()) return InvalidArgumentError(std::string(key) + ": missing required field");
    if (!it->is_object()) return InvalidArgumentError(std::string(key) + ": expected an object");
    return &*it;
  };
  if (name == "pattern") {
    r.kind = RecordKind::kPattern;
    ENGRAM_ASSIGN_OR_RETURN(const json* p, body("pattern"));
    ENGRAM_ASSIGN_OR_RETURN(r.pattern, PatternFromJson(*p, "pattern"));
    ENGRAM_RETURN_IF_ERROR(CheckPattern(r.pattern));
  } else if (name == "heuristic") {
    r.kind = RecordKind::kHeuristic;
    ENGRAM_ASSIGN_OR_RETURN(const json* h, body("heuristic"));
    ENGRAM_ASSIGN_OR_RETURN(r.heuristic, HeuristicFromJson(*h, "heuristic"));
    ENGRAM_RETURN_IF_ERROR(CheckHeuristic(r.heuristic));
  } else if (name == "learning") {
    r.kind = RecordKind::kLearning;
    ENGRAM_ASSIGN_OR_RETURN(r.learning, LearningRecordFromJson(j));
  } else {
    return InvalidArgumentError("record: unknown kind \"" + name.substr(0, 40) +
                                "\" (expected pattern, heuristic or learning)");
  }
  return r;
}

bool MergeImportedPattern(Pattern& stored, const Pattern& imported) {
  if (stored == imported) return false;
  const Pattern before = stored;
  const Pattern& y = imported;
  Pattern& x = stored;

  const std::set<std::string> seen(x.evidence.begin(), x.evidence.end());
  // A stored pattern lists only its newest evidence: ids older than all of them may have
  // been counted, and cannot be told apart.
  const bool capped = static_cast<int64_t>(x.evidence.size()) < x.occurrences && !x.evidence.empty();
  const std::string oldest_listed = x.evidence.empty() ? std::string() : *std::min_element(x.evidence.begin(), x.evidence.end());
  size_t shared = 0;
  std::vector<std::string> fresh;  // imported evidence not counted in `stored`
  for (const std::string& id : y.evidence) {
    if (seen.contains(id)) {
      ++shared;
    } else if (!(capped && id < oldest_listed)) {
      fresh.push_back(id);
    }
  }
  const bool same_id = x.pattern_id == y.pattern_id;
  // Learned apart: nothing in common, and not all of it hidden behind the cap.
  const bool apart = !same_id && shared == 0 && !y.evidence.empty() && !fresh.empty();

  int64_t new_occurrences = 0;
  int64_t new_successes = 0;
  if (apart) {
    new_occurrences = y.occurrences;
    new_successes = y.successes;
  } else {
    new_occurrences = static_cast<int64_t>(fresh.size());
    if (same_id) new_occurrences = std::max(new_occurrences, y.occurrences - x.occurrences);
    new_occurrences = std::min(new_occurrences, y.occurrences);
    if (new_occurrences > 0) {
      if (same_id && new_occurrences == y.occurrences - x.occurrences && y.successes >= x.successes) {
        new_successes = y.successes - x.successes;  // a later copy of the same pattern
      } else {
        new_successes = std::llround(static_cast<double>(new_occurrences) * static_cast<double>(y.successes) /
                                     static_cast<double>(y.occurrences));
      }
      new_successes = std::clamp<int64_t>(new_successes, 0, std::min(new_occurrences, y.successes));
    }
  }

  if (new_occurrences > 0) {
    if (y.avg_latency_ms > 0) {
      x.avg_latency_ms = x.avg_latency_ms > 0 && x.occurrences > 0
                             ? (x.avg_latency_ms * static_cast<double>(x.occurrences) +
                                y.avg_latency_ms * static_cast<double>(new_occurrences)) /
                                   static_cast<double>(x.occurrences + new_occurrences)
                             : y.avg_latency_ms;
    }
    if (y.occurrences > x.occurrences) {
      x.description = y.description;
      x.body_json = y.body_json;
    }
    x.occurrences += new_occurrences;
    x.successes += new_successes;
    x.success_rate = static_cast<double>(x.successes) / static_cast<double>(x.occurrences);
    // Evidence: oldest first (ids are time-ordered), the newest kMaxPatternEvidence kept.
    std::vector<std::string> evidence = x.evidence;
    for (const std::string& id : apart ? y.evidence : fresh) {
      if (!seen.contains(id)) evidence.push_back(id);
    }
    std::sort(evidence.begin(), evidence.end());
    evidence.erase(std::unique(evidence.begin(), evidence.end()), evidence.end());
    if (evidence.size() > kMaxPatternEvidence) {
      evidence.erase(evidence.begin(), evidence.end() - static_cast<std::ptrdiff_t>(kMaxPatternEvidence));
    }
    x.evidence = std::move(evidence);
  }

  PatternEffectiveness& e = x.effectiveness;
  const PatternEffectiveness& f = y.effectiveness;
  if (apart) {
    e.times_retrieved += f.times_retrieved;
    e.times_applied += f.times_applied;
    e.success_when_applied += f.success_when_applied;
    e.failure_when_applied += f.failure_when_applied;
  } else {
    e.times_retrieved = std::max(e.times_retrieved, f.times_retrieved);
    e.times_applied = std::max(e.times_applied, f.times_applied);
    e.success_when_applied = std::max(e.success_when_applied, f.success_when_applied);
    e.failure_when_applied = std::max(e.failure_when_applied, f.failure_when_applied);
  }
  // Decay is a function of the last activity (learning's ApplyDecay): keep the weight of
  // the side active last.
  auto activity = [](const Pattern& p) {
    return p.effectiveness.last_used ? std::max(p.updated_at, *p.effectiveness.last_used) : p.updated_at;
  };
  const Timestamp x_active = activity(before);
  const Timestamp y_active = activity(y);
  if (y_active > x_active) {
    x.decay_weight = y.decay_weight;
  } else if (y_active == x_active) {
    x.decay_weight = std::max(x.decay_weight, y.decay_weight);
  }
  if (f.last_used && (!e.last_used || *f.last_used > *e.last_used)) e.last_used = f.last_used;
  x.created_at = std::min(x.created_at, y.created_at);
  x.updated_at = std::max(x.updated_at, y.updated_at);
  return !(x == before);
}

}  // namespace engram::cli
