#include "model/pattern_json.h"

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "model/episode_json.h"
#include "model/json_reader.h"

namespace engram {

using nlohmann::json;

namespace {

// The stored body is written by the extractors; anything else shows as an empty object
// rather than failing a read of the whole pattern.
json ParseBody(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return json::object();
  return j;
}

void ReadTimestamp(JsonReader& r, const char* key, Timestamp* out) {
  if (!r.ok()) return;
  if (!r.Has(key)) return r.Fail(InvalidArgumentError(r.PathOf(key) + ": missing required field"));
  std::string text;
  r.RequiredString(key, &text, 64);
  if (!r.ok()) return;
  Result<Timestamp> t = ParseTimestamp(text);
  if (!t.ok()) return r.Fail(t.status().WithContext(r.PathOf(key)));
  *out = *t;
}

void ReadOptionalTimestamp(JsonReader& r, const char* key, std::optional<Timestamp>* out) {
  if (!r.ok() || r.Find(key) == nullptr) return;
  Timestamp t{};
  ReadTimestamp(r, key, &t);
  if (r.ok()) *out = t;
}

void ReadRate(JsonReader& r, const char* key, double* out) {
  r.RequiredDouble(key, out);
  if (r.ok() && !(*out >= 0 && *out <= 1)) {
    r.Fail(InvalidArgumentError(r.PathOf(key) + ": must be in [0, 1]"));
  }
}

}  // namespace

json PatternEffectivenessToJson(const PatternEffectiveness& e) {
  json j = {{"times_retrieved", e.times_retrieved},
            {"times_applied", e.times_applied},
            {"success_when_applied", e.success_when_applied},
            {"failure_when_applied", e.failure_when_applied}};
  if (e.last_used) j["last_used"] = FormatTimestamp(*e.last_used);
  return j;
}

json PatternToJson(const Pattern& p) {
  return {{"pattern_id", p.pattern_id},
          {"type", PatternTypeName(p.type)},
          {"similarity_key", p.similarity_key},
          {"description", p.description},
          {"body", ParseBody(p.body_json)},
          {"context", TaskContextToJson(p.context)},
          {"occurrences", p.occurrences},
          {"successes", p.successes},
          {"success_rate", p.success_rate},
          {"avg_latency_ms", p.avg_latency_ms},
          {"evidence", p.evidence},
          {"effectiveness", PatternEffectivenessToJson(p.effectiveness)},
          {"decay_weight", p.decay_weight},
          {"created_at", FormatTimestamp(p.created_at)},
          {"updated_at", FormatTimestamp(p.updated_at)}};
}

json HeuristicToJson(const Heuristic& h) {
  return {{"heuristic_id", h.heuristic_id},
          {"condition", h.condition},
          {"action", h.action},
          {"confidence", h.confidence},
          {"evidence",
           {{"episode_ids", h.evidence_episode_ids}, {"success_rate", h.success_rate}, {"sample_size", h.sample_size}}},
          {"source_pattern_id", h.source_pattern_id},
          {"created_at", FormatTimestamp(h.created_at)},
          {"updated_at", FormatTimestamp(h.updated_at)}};
}

Result<Pattern> PatternFromJson(const json& j, const std::string& path) {
  Pattern p;
  JsonReader r(j, path);
  r.RequiredString("pattern_id", &p.pattern_id, 64);
  if (r.ok()) {
    std::string type;
    r.RequiredString("type", &type, 64);
    if (r.ok()) {
      Result<PatternType> t = ParsePatternType(type);
      if (!t.ok()) return t.status().WithContext(r.PathOf("type"));
      p.type = *t;
    }
  }
  r.RequiredString("similarity_key", &p.similarity_key);
  r.RequiredString("description", &p.description, SIZE_MAX, /*allow_empty=*/true);
  if (r.ok()) {
    if (const json* body = r.Find("body")) {
      if (!body->is_object()) return InvalidArgumentError(r.PathOf("body") + ": expected an object");
      p.body_json = body->dump();
    }
  }
  if (r.ok()) {
    const json* context = r.Find("context");
    if (context == nullptr) return InvalidArgumentError(r.PathOf("context") + ": missing required field");
    ENGRAM_ASSIGN_OR_RETURN(p.context, TaskContextFromJson(*context, r.PathOf("context")));
  }
  r.RequiredInt("occurrences", &p.occurrences, 0);
  r.RequiredInt("successes", &p.successes, 0);
  ReadRate(r, "success_rate", &p.success_rate);
  r.OptionalDouble("avg_latency_ms", &p.avg_latency_ms);
  r.OptionalStringList("evidence", &p.evidence, kMaxPatternEvidence, 64);
  if (r.ok()) {
    if (const json* e = r.Find("effectiveness")) {
      JsonReader er(*e, r.PathOf("effectiveness"));
      std::optional<int64_t> n;
      auto count = [&](const char* key, int64_t* out) {
        n.reset();
        er.OptionalInt(key, &n, 0);
        if (n) *out = *n;
      };
      count("times_retrieved", &p.effectiveness.times_retrieved);
      count("times_applied", &p.effectiveness.times_applied);
      count("success_when_applied", &p.effectiveness.success_when_applied);
      count("failure_when_applied", &p.effectiveness.failure_when_applied);
      ReadOptionalTimestamp(er, "last_used", &p.effectiveness.last_used);
      r.Fail(er.status());
    }
  }
  if (r.ok() && r.Has("decay_weight")) ReadRate(r, "decay_weight", &p.decay_weight);
  ReadTimestamp(r, "created_at", &p.created_at);
  ReadTimestamp(r, "updated_at", &p.updated_at);
  ENGRAM_RETURN_IF_ERROR(r.status());
  if (p.successes > p.occurrences) {
    return InvalidArgumentError(path + ".successes: more than occurrences (" + std::to_string(p.occurrences) + ")");
  }
  return p;
}

Result<Heuristic> HeuristicFromJson(const json& j, const std::string& path) {
  Heuristic h;
  JsonReader r(j, path);
  r.RequiredString("heuristic_id", &h.heuristic_id, 64);
  r.RequiredString("condition", &h.condition);
  r.RequiredString("action", &h.action);
  ReadRate(r, "confidence", &h.confidence);
  if (r.ok()) {
    const json* e = r.Find("evidence");
    if (e == nullptr) return InvalidArgumentError(r.PathOf("evidence") + ": missing required field");
    JsonReader er(*e, r.PathOf("evidence"));
    er.OptionalStringList("episode_ids", &h.evidence_episode_ids, SIZE_MAX, 64);
    ReadRate(er, "success_rate", &h.success_rate);
    er.RequiredInt("sample_size", &h.sample_size, 0);
    r.Fail(er.status());
  }
  r.OptionalString("source_pattern_id", &h.source_pattern_id, 64);
  ReadTimestamp(r, "created_at", &h.created_at);
  ReadTimestamp(r, "updated_at", &h.updated_at);
  ENGRAM_RETURN_IF_ERROR(r.status());
  return h;
}

}  // namespace engram
