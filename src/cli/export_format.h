// The records of `engram export` besides episodes, and how `engram import` merges the
// learned patterns they carry into a store (docs/export-format.md is the user's reference).
//
// An export is JSON lines: first the episodes (EpisodeToJson objects, unchanged since the
// first format, so older files still import), then
//   {"record":"pattern","pattern":{PatternToJson}}        by pattern_id
//   {"record":"heuristic","heuristic":{HeuristicToJson}}  by heuristic_id
//   {"record":"learning","version":1,"patterns":N,"heuristics":M,"pending_extraction":[ids]}
// The learning record comes last: it says the file carries what the source store learned
// from its episodes, and which exported episodes the source had not yet learned from. A
// file cut short has no learning record, so its episodes stay pending in the target (its
// pipeline derives their patterns again) rather than being wrongly marked as learned.
//
//   ENGRAM_ASSIGN_OR_RETURN(ExportRecord r, ParseExportRecord(j));  // j has "record"
//   if (MergeImportedPattern(stored, r.pattern)) ... write `stored` back
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engram/patterns.h"
#include "engram/result.h"

namespace engram {
class Redactor;
}

namespace engram::cli {

inline constexpr int kLearningRecordVersion = 1;

// The last line of an export.
struct LearningRecord {
  int version = kLearningRecordVersion;
  int64_t patterns = 0;    // pattern records in the file
  int64_t heuristics = 0;  // heuristic records in the file
  // Exported completed episodes the source had not yet passed through its learning
  // pipeline (its patterns do not count them). By id ascending.
  std::vector<std::string> pending_extraction;
};

nlohmann::json PatternRecordToJson(const Pattern& pattern);
nlohmann::json HeuristicRecordToJson(const Heuristic& heuristic);
nlohmann::json LearningRecordToJson(const LearningRecord& record);

enum class RecordKind { kPattern, kHeuristic, kLearning };

struct ExportRecord {
  RecordKind kind = RecordKind::kPattern;
  Pattern pattern;      // kPattern
  Heuristic heuristic;  // kHeuristic
  LearningRecord learning;  // kLearning
};

// True when the line's object is one of the records above (it has "record"); an object
// without it is an episode.
bool IsExportRecord(const nlohmann::json& j);

// Parses and checks a record: PatternFromJson / HeuristicFromJson's checks (counters not
// negative, successes <= occurrences, ...), ids are UUIDs, the learning record's version
// is known. Errors: kInvalidArgument naming the
// field by its path ("pattern.successes: ...", "record: unknown kind \"x\"").
Result<ExportRecord> ParseExportRecord(const nlohmann::json& j);

// Passes the texts of a pattern or heuristic record (description, the strings of the body,
// the context, condition and action) through `redactor` like live writes: in redact mode a
// secret is replaced, in reject mode it is kInvalidArgument naming the field and the kind
// of secret (never the secret). A null `redactor` (redaction off) changes nothing.
Status ScrubRecord(const Redactor* redactor, ExportRecord& record);

// Merges `imported` (a pattern from an export) into `stored`, the pattern the target store
// already has under the same similarity key, and returns whether `stored` changed.
// Idempotent: merging the same `imported` again changes nothing. The rules:
// - Observations (occurrences, successes, avg_latency_ms, evidence) are counted once per
//   episode. Evidence ids the stored pattern already lists are counted already. When the
//   two share no evidence and have different ids they were learned apart, and the imported
//   counts are added whole. When they share evidence (or the id: one is an older copy of
//   the other), only the imported evidence the stored pattern lacks is added, with
//   successes in proportion (exact for a later copy of the same pattern). Ids older than
//   every evidence id of a stored pattern whose evidence was capped count as seen (no
//   double counting when it cannot tell).
// - Effectiveness counters: added when learned apart, else the larger of each (two copies
//   of one pattern's counters). last_used and updated_at: the later; created_at: the
//   earlier; decay_weight: that of the side used or updated last.
// - The description and body come from the side with more occurrences; the stored id and
//   key stay.
bool MergeImportedPattern(Pattern& stored, const Pattern& imported);

}  // namespace engram::cli
