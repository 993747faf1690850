// `engram export`, `engram import` and `engram storage stats|verify|vacuum|migrate`.
//
// Export writes one compact EpisodeToJson object per line (steps included), oldest first by
// episode id, so two exports of the same data are byte-identical. It streams: the ids are
// listed first (light: no steps), then episodes are read back in chunks of kChunk. After
// the episodes come what the store learned from them (cli/export_format.h): its patterns
// (effectiveness and decay included) by pattern_id, its heuristics by heuristic_id, and a
// last "learning" record naming the exported episodes not yet learned from. With --domain,
// the patterns of that domain (context.domain) and their heuristics.
// Import reads such lines, passes every episode through the same validation and redactor as
// live writes (Memory::PrepareImportedEpisode) and merges by episode id: identical ->
// skipped, different -> updated (replaced), new -> added, written kBatch per transaction.
// Then it merges the patterns by similarity key (MergePatterns, MergeImportedPattern: a
// second import of one file changes nothing), writes the heuristics, and — only when the
// file's learning record came through — marks the completed episodes it wrote as extracted
// unless the source had them pending, so the target's pipeline does not count them again.
// Files of the first format (episodes only) import as before: their completed episodes
// stay pending and the target's pipeline derives their patterns.
// Both show a progress bar on stderr when it is a terminal (never with --json).
//
// Not carried: attribution records (which episode was shown or applied which pattern; the
// storage interface has no reader for them). Their effect is in the effectiveness counters,
// which are carried; an episode still in progress that was shown a pattern is not credited
// when it completes in the target store.
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/export_format.h"
#include "common/ids.h"
#include "cli/output.h"
#include "core/redaction.h"
#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "learning/learning.h"
#include "model/episode_json.h"
#include "server/open_learning.h"
#include "server/open_retrieval.h"
#include "server/open_store.h"

namespace engram::cli {
namespace {

constexpr size_t kChunk = 200;  // episodes read back per ListEpisodes call on export
constexpr size_t kBatch = 500;  // episodes per PutEpisodes transaction on import
constexpr size_t kMaxPrintedErrors = 100;
constexpr size_t kImportProgressEvery = 100;  // lines between redraws of the import bar

struct ExportArgs {
  std::string format = "jsonl";
  std::optional<std::string> domain;
  std::string output = "-";
};

struct ImportArgs {
  std::string input;
  bool strict = false;
};

// Ids of the matching episodes, oldest first.
Result<std::vector<std::string>> ListIdsOldestFirst(Memory& memory, const std::optional<std::string>& domain) {
  EpisodeFilter filter;
  filter.domain = domain;
  filter.include_steps = false;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, memory.ListEpisodes(filter));
  std::vector<std::string> ids;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> e, stream->Next());
    if (!e) break;
    ids.push_back(std::move(e->episode_id));
  }
  std::reverse(ids.begin(), ids.end());
  return ids;
}

// Calls `fn` with every matching episode (steps included), oldest first; at most kChunk
// episodes are in memory at once. `bar` (may be null) counts the episodes done.
template <typename Fn>
Status ForEachEpisodeOldestFirst(Memory& memory, const std::optional<std::string>& domain, ProgressBar* bar,
                                 Fn fn) {
  ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIdsOldestFirst(memory, domain));
  size_t done = 0;
  for (size_t i = 0; i < ids.size(); i += kChunk) {
    size_t j = std::min(i + kChunk, ids.size());
    EpisodeFilter filter;
    filter.domain = domain;
    filter.include_steps = true;
    if (j < ids.size()) filter.before_id = ids[j];
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, memory.ListEpisodes(filter));
    std::vector<Episode> chunk;
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> e, stream->Next());
      if (!e || e->episode_id < ids[i]) break;
      if (e->episode_id > ids[j - 1]) continue;  // written after the listing: not exported
      chunk.push_back(*std::move(e));
    }
    for (auto it = chunk.rbegin(); it != chunk.rend(); ++it) {
      ENGRAM_RETURN_IF_ERROR(fn(*it));
      if (bar != nullptr) bar->Update(++done, ids.size());
    }
  }
  if (bar != nullptr) bar->Finish();
  return OkStatus();
}

// What the store learned, for export: patterns (of `domain` when set) by pattern_id, their
// heuristics (all of them without a domain) by heuristic_id, and which of `completed` (the
// exported completed episodes) are still pending extraction. Read after the episodes, so
// an episode extracted meanwhile is counted in the patterns and not listed as pending.
struct Learned {
  std::vector<Pattern> patterns;
  std::vector<Heuristic> heuristics;
  LearningRecord record;
};

Result<Learned> ReadLearned(StorageBackend& store, const std::optional<std::string>& domain,
                            const std::unordered_set<std::string>& completed) {
  Learned l;
  ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> pending, store.PendingExtraction(0));
  for (std::string& id : pending) {
    if (completed.contains(id)) l.record.pending_extraction.push_back(std::move(id));
  }
  std::sort(l.record.pending_extraction.begin(), l.record.pending_extraction.end());
  PatternFilter filter;
  filter.domain = domain;
  ENGRAM_ASSIGN_OR_RETURN(l.patterns, store.ListPatterns(filter));
  std::sort(l.patterns.begin(), l.patterns.end(),
            [](const Pattern& x, const Pattern& y) { return x.pattern_id < y.pattern_id; });
  std::unordered_set<std::string> pattern_ids;
  for (const Pattern& p : l.patterns) pattern_ids.insert(p.pattern_id);
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Heuristic> heuristics, store.ListHeuristics(0));
  for (Heuristic& h : heuristics) {
    if (!domain || pattern_ids.contains(h.source_pattern_id)) l.heuristics.push_back(std::move(h));
  }
  std::sort(l.heuristics.begin(), l.heuristics.end(),
            [](const Heuristic& x, const Heuristic& y) { return x.heuristic_id < y.heuristic_id; });
  l.record.patterns = static_cast<int64_t>(l.patterns.size());
  l.record.heuristics = static_cast<int64_t>(l.heuristics.size());
  return l;
}

Status RunExport(Session& session, const ExportArgs& a) {
  if (a.format != "jsonl") return InvalidArgumentError("--format: only jsonl is supported, got \"" + a.format + "\"");
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  std::ofstream file;
  std::ostream* out = &std::cout;
  std::string tmp;
  if (a.output != "-") {
    tmp = a.output + ".tmp";
    file.open(tmp, std::ios::binary | std::ios::trunc);
    if (!file) return UnavailableError("cannot write " + tmp);
    out = &file;
  }
  // Not when the episodes themselves go to the terminal: the bar would break their lines.
  ProgressBar bar(ProgressBar::Wanted(session.json()) && !(a.output == "-" && isatty(STDOUT_FILENO)), "episodes");
  size_t n = 0;
  std::unordered_set<std::string> completed;
  Status s = ForEachEpisodeOldestFirst(*memory, a.domain, &bar, [&](const Episode& e) -> Status {
    *out << DumpJson(EpisodeToJson(e)) << '\n';
    ++n;
    if (e.completed()) completed.insert(e.episode_id);
    if (!*out) return UnavailableError("write failed");
    return OkStatus();
  });
  bar.Finish();  // ends the bar's line before any error message
  Learned learned;
  if (s.ok()) {
    Result<Learned> l = ReadLearned(memory->storage(), a.domain, completed);
    if (l.ok()) {
      learned = *std::move(l);
      for (const Pattern& p : learned.patterns) *out << DumpJson(PatternRecordToJson(p)) << '\n';
      for (const Heuristic& h : learned.heuristics) *out << DumpJson(HeuristicRecordToJson(h)) << '\n';
      *out << DumpJson(LearningRecordToJson(learned.record)) << '\n';
      if (!*out) s = UnavailableError("write failed");
    } else {
      s = l.status().WithContext("reading patterns and heuristics");
    }
  }
  out->flush();
  if (a.output != "-") {
    file.close();
    if (s.ok() && !file) s = UnavailableError("cannot write " + tmp);
    std::error_code ec;
    if (!s.ok()) {
      std::filesystem::remove(tmp, ec);
      return s;
    }
    std::filesystem::rename(tmp, a.output, ec);
    if (ec) return UnavailableError("cannot rename " + tmp + " to " + a.output + ": " + ec.message());
    if (session.json()) {
      PrintJson({{"exported", n},
                 {"patterns", learned.patterns.size()},
                 {"heuristics", learned.heuristics.size()},
                 {"output", a.output}});
    } else {
      std::cout << "exported " << n << " episodes, " << learned.patterns.size() << " patterns and "
                << learned.heuristics.size() << " heuristics to " << a.output << "\n";
    }
  }
  return s;
}

struct LineError {
  size_t line;
  std::string message;
};

// One line of an export: blank, an episode, or a record of cli/export_format.h.
struct Decoded {
  enum class Kind { kBlank, kEpisode, kRecord } kind = Kind::kBlank;
  Episode episode;
  ExportRecord record;
};

// Parses, validates and redacts one JSONL line.
Result<Decoded> DecodeLine(Memory& memory, const Redactor* redactor, std::string& line) {
  Decoded d;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.find_first_not_of(" \t") == std::string::npos) return d;
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return InvalidArgumentError("episode: expected a JSON object");
  if (IsExportRecord(j)) {
    d.kind = Decoded::Kind::kRecord;
    ENGRAM_ASSIGN_OR_RETURN(d.record, ParseExportRecord(j));
    ENGRAM_RETURN_IF_ERROR(ScrubRecord(redactor, d.record));
    return d;
  }
  d.kind = Decoded::Kind::kEpisode;
  ENGRAM_ASSIGN_OR_RETURN(d.episode, EpisodeFromJson(j, "episode"));
  Status s = memory.PrepareImportedEpisode(d.episode);
  if (!s.ok()) return Status(s.code(), "episode." + std::string(s.message()));
  return d;
}

struct ImportCounts {
  size_t added = 0, updated = 0, skipped = 0;
  std::vector<LineError> errors;
  bool learning = false;  // the file had pattern, heuristic or learning records
  size_t patterns_added = 0, patterns_merged = 0, patterns_unchanged = 0;
  size_t heuristics_added = 0, heuristics_updated = 0, heuristics_unchanged = 0;
  size_t marked_extracted = 0;
  std::string not_marked;  // why the written episodes were left pending, if they were
};

// The file's learning records, applied after its episodes, and what that needs to know.
struct LearnedInput {
  std::vector<std::pair<size_t, Pattern>> patterns;  // (line, pattern)
  std::vector<std::pair<size_t, Heuristic>> heuristics;
  size_t learning_records = 0;
  int64_t declared_patterns = 0;  // what the learning records say the file holds
  int64_t declared_heuristics = 0;
  size_t record_errors = 0;  // bad pattern / heuristic / learning lines
  std::unordered_set<std::string> pending;  // the source had not learned from these
  std::vector<std::string> written_completed;  // completed episodes this import wrote
};

// An episode waiting in the import batch, with what writing it will count.
struct Pending {
  Episode episode;
  size_t line = 0;  // the last line that set it
  size_t added = 0, updated = 0;
};

// Writes `batch` in one transaction and counts it. When the store refuses the batch's
// data (kInvalidArgument: e.g. a NUL character PostgreSQL cannot store, in an export from
// SQLite), each episode is written on its own so only the refused lines become errors.
// The completed episodes written are appended to `written_completed`.
Status WriteBatch(Memory& memory, std::vector<Pending>& batch, ImportCounts& counts,
                  std::vector<std::string>& written_completed) {
  if (batch.empty()) return OkStatus();
  std::vector<Episode> episodes;
  episodes.reserve(batch.size());
  for (Pending& p : batch) episodes.push_back(std::move(p.episode));
  auto count = [&](size_t i) {
    counts.added += batch[i].added;
    counts.updated += batch[i].updated;
    if (episodes[i].completed()) written_completed.push_back(episodes[i].episode_id);
  };
  Status s = memory.storage().PutEpisodes(episodes);
  if (s.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) count(i);
  } else if (s.code() == StatusCode::kInvalidArgument) {
    for (size_t i = 0; i < batch.size(); ++i) {
      Status one = memory.storage().PutEpisodes(std::span<const Episode>(&episodes[i], 1));
      if (one.ok()) {
        count(i);
      } else if (one.code() == StatusCode::kInvalidArgument) {
        counts.errors.push_back(
            {batch[i].line, "episode " + episodes[i].episode_id + ": " + std::string(one.message())});
      } else {
        return one;
      }
    }
    // Errors are reported by line number, in input order.
    std::stable_sort(counts.errors.begin(), counts.errors.end(),
                     [](const LineError& x, const LineError& y) { return x.line < y.line; });
  } else {
    return s;
  }
  batch.clear();
  return OkStatus();
}

constexpr size_t kPatternBatch = 200;  // similarity keys per MergePatterns transaction

enum class PatternOutcome { kAdded, kMerged, kUnchanged };

// Merges `chunk` into the store in one MergePatterns transaction: a key the store lacks
// gets the imported pattern as it is, a key it has gets MergeImportedPattern. Returns, per
// record, the outcome and the pattern the store then holds under that key.
Status MergePatternChunk(StorageBackend& store, const std::vector<Pattern>& chunk,
                         std::vector<PatternOutcome>& outcomes, std::vector<Pattern>& results) {
  std::vector<std::string> keys;
  for (const Pattern& p : chunk) keys.push_back(p.similarity_key);
  return store.MergePatterns(keys, [&](std::vector<Pattern>& stored) -> Status {
    // May run again when the store retries the transaction: starts from scratch.
    outcomes.assign(chunk.size(), PatternOutcome::kUnchanged);
    std::unordered_map<std::string, size_t> by_key;
    for (size_t i = 0; i < stored.size(); ++i) by_key.emplace(stored[i].similarity_key, i);
    for (size_t j = 0; j < chunk.size(); ++j) {
      const Pattern& y = chunk[j];
      auto it = by_key.find(y.similarity_key);
      if (it == by_key.end()) {
        by_key.emplace(y.similarity_key, stored.size());
        stored.push_back(y);
        outcomes[j] = PatternOutcome::kAdded;
      } else if (MergeImportedPattern(stored[it->second], y)) {
        outcomes[j] = PatternOutcome::kMerged;
      }
    }
    results.clear();
    for (const Pattern& y : chunk) results.push_back(stored[by_key.at(y.similarity_key)]);
    return OkStatus();
  });
}

// Applies the file's patterns and heuristics (after its episodes), then marks the completed
// episodes it wrote as extracted when the file's learning came through whole.
Status ImportLearned(Memory& memory, const LearningOptions& options, LearnedInput& in, ImportCounts& counts) {
  StorageBackend& store = memory.storage();
  // Per imported pattern id: what happened to it and the id its key has in this store.
  std::unordered_map<std::string, std::pair<PatternOutcome, std::string>> by_imported_id;
  std::map<std::string, Pattern> merged;  // patterns changed by a merge, by id: heuristics derived again
  size_t failed_patterns = 0;
  for (size_t i = 0; i < in.patterns.size(); i += kPatternBatch) {
    const size_t end = std::min(i + kPatternBatch, in.patterns.size());
    std::vector<Pattern> chunk;
    std::vector<std::string> imported_ids;
    for (size_t k = i; k < end; ++k) {
      Pattern p = in.patterns[k].second;
      imported_ids.push_back(p.pattern_id);
      // An id this store already gives to a pattern of another key: the import takes a new one.
      Result<Pattern> other = store.GetPattern(p.pattern_id);
      if (other.ok()) {
        if (other->similarity_key != p.similarity_key) p.pattern_id = NewUuidV7(memory.clock());
      } else if (other.status().code() != StatusCode::kNotFound) {
        return other.status();
      }
      chunk.push_back(std::move(p));
    }
    std::vector<PatternOutcome> outcomes;
    std::vector<Pattern> results;
    Status s = MergePatternChunk(store, chunk, outcomes, results);
    std::vector<bool> ok(chunk.size(), true);
    if (s.code() == StatusCode::kInvalidArgument) {
      // The store refused some pattern: one at a time, so only those lines fail.
      outcomes.assign(chunk.size(), PatternOutcome::kUnchanged);
      results.assign(chunk.size(), Pattern{});
      for (size_t j = 0; j < chunk.size(); ++j) {
        std::vector<PatternOutcome> one_outcome;
        std::vector<Pattern> one_result;
        Status one = MergePatternChunk(store, std::vector<Pattern>{chunk[j]}, one_outcome, one_result);
        if (one.ok()) {
          outcomes[j] = one_outcome[0];
          results[j] = std::move(one_result[0]);
        } else if (one.code() == StatusCode::kInvalidArgument) {
          ok[j] = false;
          ++failed_patterns;
          counts.errors.push_back({in.patterns[i + j].first, "pattern " + chunk[j].pattern_id + ": " +
                                                                 std::string(one.message())});
        } else {
          return one;
        }
      }
    } else {
      ENGRAM_RETURN_IF_ERROR(s);
    }
    for (size_t j = 0; j < chunk.size(); ++j) {
      if (!ok[j]) continue;
      switch (outcomes[j]) {
        case PatternOutcome::kAdded: ++counts.patterns_added; break;
        case PatternOutcome::kMerged: ++counts.patterns_merged; break;
        case PatternOutcome::kUnchanged: ++counts.patterns_unchanged; break;
      }
      // A later record of the same key may have merged into one added here: the last word
      // on the key's pattern is its final state.
      if (outcomes[j] == PatternOutcome::kMerged) {
        merged[results[j].pattern_id] = results[j];
      } else if (auto it = merged.find(results[j].pattern_id); it != merged.end()) {
        it->second = results[j];
      }
      by_imported_id[imported_ids[j]] = {outcomes[j], results[j].pattern_id};
    }
  }

  // Heuristics: a pattern merged here gets its heuristic derived again (as the learning
  // pipeline does for the patterns it touches); a file heuristic whose pattern was added
  // follows the pattern's id; one whose pattern lives here under another id is that
  // pattern's business. Others are written when new, or newer than the stored one.
  std::unordered_map<std::string, Heuristic> existing;
  if (!in.heuristics.empty() || !merged.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(std::vector<Heuristic> existing_list, store.ListHeuristics(0));
    for (Heuristic& h : existing_list) existing.emplace(h.heuristic_id, std::move(h));
  }
  std::map<std::string, Heuristic> to_put;
  auto offer = [&](Heuristic h, bool newer_only) {
    auto it = existing.find(h.heuristic_id);
    if (it != existing.end() && (it->second == h || (newer_only && h.updated_at <= it->second.updated_at))) {
      ++counts.heuristics_unchanged;
      return;
    }
    ++(it == existing.end() ? counts.heuristics_added : counts.heuristics_updated);
    existing[h.heuristic_id] = h;
    to_put[h.heuristic_id] = std::move(h);
  };
  for (auto& [line, h] : in.heuristics) {
    auto it = by_imported_id.find(h.source_pattern_id);
    if (it != by_imported_id.end()) {
      const auto& [outcome, here_id] = it->second;
      if (outcome == PatternOutcome::kMerged) continue;  // derived below
      if (here_id != h.source_pattern_id) {
        if (outcome != PatternOutcome::kAdded) {
          ++counts.heuristics_unchanged;
          continue;
        }
        if (h.heuristic_id == h.source_pattern_id) h.heuristic_id = here_id;
        h.source_pattern_id = here_id;
      }
      if (merged.contains(here_id)) continue;  // a later record of its key merged into it
    }
    offer(std::move(h), /*newer_only=*/true);
  }
  for (const auto& [id, p] : merged) {
    if (std::optional<Heuristic> h = DeriveHeuristic(p, options)) offer(*std::move(h), /*newer_only=*/false);
  }
  std::vector<Heuristic> heuristics;
  for (auto& [id, h] : to_put) heuristics.push_back(std::move(h));
  if (!heuristics.empty()) ENGRAM_RETURN_IF_ERROR(store.PutHeuristics(heuristics));

  // The written completed episodes are learned from when the file's patterns all came
  // through; otherwise they stay pending and this store's pipeline learns from them (it
  // skips an episode a pattern already lists as evidence).
  if (in.learning_records == 0) {
    if (!in.written_completed.empty()) counts.not_marked = "the file has no learning record";
  } else if (in.record_errors > 0 || failed_patterns > 0) {
    counts.not_marked = "some pattern, heuristic or learning lines were not imported";
  } else if (in.declared_patterns != static_cast<int64_t>(in.patterns.size()) ||
             in.declared_heuristics != static_cast<int64_t>(in.heuristics.size())) {
    counts.not_marked = "the learning record counts " + std::to_string(in.declared_patterns) + " patterns and " +
                        std::to_string(in.declared_heuristics) + " heuristics, the file has " +
                        std::to_string(in.patterns.size()) + " and " + std::to_string(in.heuristics.size());
  } else {
    std::vector<std::string> learned;
    for (const std::string& id : in.written_completed) {
      if (!in.pending.contains(id)) learned.push_back(id);
    }
    for (size_t i = 0; i < learned.size(); i += kBatch) {
      const size_t end = std::min(i + kBatch, learned.size());
      ENGRAM_RETURN_IF_ERROR(store.MarkExtracted(std::span<const std::string>(learned.data() + i, end - i)));
    }
    counts.marked_extracted = learned.size();
  }
  return OkStatus();
}

// One pass over `in`. With `write` false only decodes (the --strict check). `bar` counts
// lines out of `total_lines` (0: unknown, no bar).
Status ImportPass(Memory& memory, const Redactor* redactor, const LearningOptions& options, std::istream& in,
                  bool write, size_t total_lines, ProgressBar& bar, ImportCounts& counts) {
  std::vector<Pending> batch;
  std::map<std::string, size_t> in_batch;
  LearnedInput learned;
  auto flush = [&]() -> Status {
    in_batch.clear();
    return WriteBatch(memory, batch, counts, learned.written_completed);
  };
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (total_lines > 0 && number % kImportProgressEvery == 0) bar.Update(number, std::max(number, total_lines));
    const bool record_line = line.find("\"record\"") != std::string::npos;
    Result<Decoded> decoded = DecodeLine(memory, redactor, line);
    if (!decoded.ok()) {
      counts.errors.push_back({number, std::string(decoded.status().message())});
      if (record_line) ++learned.record_errors;
      continue;
    }
    if (decoded->kind == Decoded::Kind::kBlank) continue;
    if (decoded->kind == Decoded::Kind::kRecord) {
      counts.learning = true;
      if (!write) continue;
      ExportRecord& r = decoded->record;
      switch (r.kind) {
        case RecordKind::kPattern: learned.patterns.emplace_back(number, std::move(r.pattern)); break;
        case RecordKind::kHeuristic: learned.heuristics.emplace_back(number, std::move(r.heuristic)); break;
        case RecordKind::kLearning:
          ++learned.learning_records;
          learned.declared_patterns += r.learning.patterns;
          learned.declared_heuristics += r.learning.heuristics;
          learned.pending.insert(r.learning.pending_extraction.begin(), r.learning.pending_extraction.end());
          break;
      }
      continue;
    }
    Episode e = std::move(decoded->episode);
    if (!write) continue;
    if (auto it = in_batch.find(e.episode_id); it != in_batch.end()) {
      Pending& p = batch[it->second];
      if (p.episode == e) {
        ++counts.skipped;
      } else {
        p.episode = std::move(e);
        p.line = number;
        ++p.updated;
      }
      continue;
    }
    Pending p;
    p.line = number;
    Result<Episode> existing = memory.storage().GetEpisode(e.episode_id);
    if (existing.ok()) {
      if (*existing == e) {
        ++counts.skipped;
        continue;
      }
      p.updated = 1;
    } else if (existing.status().code() == StatusCode::kNotFound) {
      p.added = 1;
    } else {
      return existing.status();
    }
    p.episode = std::move(e);
    in_batch[p.episode.episode_id] = batch.size();
    batch.push_back(std::move(p));
    if (batch.size() >= kBatch) ENGRAM_RETURN_IF_ERROR(flush());
  }
  if (in.bad()) return UnavailableError("read failed at line " + std::to_string(number + 1));
  ENGRAM_RETURN_IF_ERROR(flush());
  if (write) {
    ENGRAM_RETURN_IF_ERROR(ImportLearned(memory, options, learned, counts));
    // Errors are reported by line number, in input order (patterns fail after episodes).
    std::stable_sort(counts.errors.begin(), counts.errors.end(),
                     [](const LineError& x, const LineError& y) { return x.line < y.line; });
  }
  if (total_lines > 0) bar.Update(number, std::max(number, total_lines));
  bar.Finish();
  return OkStatus();
}

// Lines in the file at `path` (a last line without a newline counts), for the progress
// bar; 0 if it cannot be read.
size_t CountLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  std::vector<char> buf(1 << 20);
  size_t lines = 0;
  char last = '\n';
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    lines += static_cast<size_t>(std::count(buf.data(), buf.data() + n, '\n'));
    last = buf[static_cast<size_t>(n) - 1];
  }
  return lines + (last != '\n' ? 1 : 0);
}

void ReportErrors(const std::vector<LineError>& errors) {
  for (size_t i = 0; i < errors.size() && i < kMaxPrintedErrors; ++i) {
    std::cerr << "engram: line " << errors[i].line << ": " << OneLine(errors[i].message) << "\n";
  }
  if (errors.size() > kMaxPrintedErrors) {
    std::cerr << "engram: ... and " << errors.size() - kMaxPrintedErrors << " more bad lines\n";
  }
}

Status RunImport(Session& session, const ImportArgs& a) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  // Patterns and heuristics pass the same redactor as episodes (Memory keeps its own).
  const std::unique_ptr<const Redactor> redactor = NewRedactor(config->redaction);
  const LearningOptions options = server::LearningOptionsFromConfig(*config);
  std::ifstream file;
  std::istream* in = &std::cin;
  std::string spool;  // stdin copied here under --strict, which reads the input twice
  if (a.input == "-" && a.strict) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "engram-import-XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    if (fd < 0) return UnavailableError("cannot create a temporary file for stdin");
    close(fd);
    spool = tmpl;
    std::ofstream copy(spool, std::ios::binary | std::ios::trunc);
    copy << std::cin.rdbuf();
    copy.close();
  }
  const std::string path = spool.empty() ? a.input : spool;
  auto open = [&]() -> Status {
    if (path == "-") return OkStatus();
    file.close();
    file.clear();
    file.open(path, std::ios::binary);
    if (!file) return NotFoundError("cannot read " + a.input);
    in = &file;
    return OkStatus();
  };
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove(path, ec);
    }
  } cleanup{spool};

  // A bar only when the length is known: a file, or stdin spooled for --strict.
  const bool show_bar = ProgressBar::Wanted(session.json()) && path != "-";
  const size_t total_lines = show_bar ? CountLines(path) : 0;
  ImportCounts counts;
  if (a.strict) {
    ENGRAM_RETURN_IF_ERROR(open());
    ProgressBar check_bar(show_bar, "lines checked");
    ENGRAM_RETURN_IF_ERROR(ImportPass(*memory, redactor.get(), options, *in, /*write=*/false, total_lines, check_bar, counts));
    if (!counts.errors.empty()) {
      ReportErrors(counts.errors);
      return InvalidArgumentError(std::to_string(counts.errors.size()) +
                                  " bad lines; nothing was imported (--strict)");
    }
  }
  ENGRAM_RETURN_IF_ERROR(open());
  ProgressBar bar(show_bar, "lines");
  Status s = ImportPass(*memory, redactor.get(), options, *in, /*write=*/true, total_lines, bar, counts);
  bar.Finish();
  ReportErrors(counts.errors);
  if (session.json()) {
    nlohmann::json errors = nlohmann::json::array();
    for (const LineError& e : counts.errors) errors.push_back({{"line", e.line}, {"message", e.message}});
    nlohmann::json j = {{"added", counts.added},
                        {"updated", counts.updated},
                        {"skipped", counts.skipped},
                        {"errors", counts.errors.size()},
                        {"error_lines", errors},
                        {"patterns",
                         {{"added", counts.patterns_added},
                          {"merged", counts.patterns_merged},
                          {"unchanged", counts.patterns_unchanged}}},
                        {"heuristics",
                         {{"added", counts.heuristics_added},
                          {"updated", counts.heuristics_updated},
                          {"unchanged", counts.heuristics_unchanged}}},
                        {"marked_extracted", counts.marked_extracted}};
    if (!counts.not_marked.empty()) j["left_pending_because"] = counts.not_marked;
    PrintJson(j);
  } else {
    std::cout << "added " << counts.added << ", updated " << counts.updated << ", skipped " << counts.skipped
              << ", errors " << counts.errors.size() << "\n";
    if (counts.learning) {
      std::cout << "patterns: added " << counts.patterns_added << ", merged " << counts.patterns_merged
                << ", unchanged " << counts.patterns_unchanged << "; heuristics: added " << counts.heuristics_added
                << ", updated " << counts.heuristics_updated << ", unchanged " << counts.heuristics_unchanged
                << "; episodes marked as learned from: " << counts.marked_extracted << "\n";
    }
    if (counts.learning && !counts.not_marked.empty()) {
      std::cout << "note: the completed episodes written stay pending extraction: " << counts.not_marked << "\n";
    }
  }
  ENGRAM_RETURN_IF_ERROR(s);
  if (!counts.errors.empty()) {
    return InvalidArgumentError(std::to_string(counts.errors.size()) + " bad lines were skipped; the rest was imported");
  }
  return OkStatus();
}

// ---- storage ---------------------------------------------------------------------------

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

int64_t DirSize(const std::string& path) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) total += static_cast<int64_t>(it->file_size(fec));
  }
  return total;
}

bool IsSqlite(Memory& memory) { return memory.storage().Name() == "sqlite"; }

// The PostgreSQL store's connection settings, as server::OpenStore builds them, for the
// maintenance calls that connect on their own.
Result<PostgresOptions> PostgresOptionsFor(const Config& config) {
  PostgresOptions options;
  options.conninfo = config.store_url;
  if (!config.password_file.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(options.password, server::ReadSecretFile("storage.password_file", config.password_file));
  }
  return options;
}

Status RunStats(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  StorageBackend& store = memory->storage();
  ENGRAM_ASSIGN_OR_RETURN(StoreStats stats, store.Stats());
  nlohmann::json j = {{"backend", store.Name()},
                      {"location", store.Location()},
                      {"schema_version", store.SchemaVersion()},
                      {"episodes", stats.episodes},
                      {"completed_episodes", stats.completed_episodes},
                      {"steps", stats.steps}};
  if (IsSqlite(*memory)) {
    const std::string db = store.Location();
    j["files"] = {{"db", FileSize(db)},
                  {"wal", FileSize(db + "-wal")},
                  {"shm", FileSize(db + "-shm")},
                  {"cache", config->cache_enabled ? DirSize(config->db_path + ".cache") : 0}};
  } else if (IsPostgresUrl(config->store_url)) {
    ENGRAM_ASSIGN_OR_RETURN(PostgresOptions options, PostgresOptionsFor(*config));
    ENGRAM_ASSIGN_OR_RETURN(std::vector<PostgresTableSize> sizes, PostgresTableSizes(options));
    nlohmann::json tables = nlohmann::json::object();
    int64_t total = 0;
    for (const PostgresTableSize& t : sizes) {
      tables[t.table] = t.bytes;
      total += t.bytes;
    }
    j["tables"] = std::move(tables);
    j["table_bytes"] = total;
  }
  if (session.json()) {
    PrintJson(j);
    return OkStatus();
  }
  std::cout << "backend:   " << store.Name() << "\n"
            << "location:  " << store.Location() << "\n"
            << "schema:    " << store.SchemaVersion() << "\n"
            << "episodes:  " << stats.episodes << " (" << stats.completed_episodes << " completed)\n"
            << "steps:     " << stats.steps << "\n";
  if (j.contains("files")) {
    const auto& f = j["files"];
    std::cout << "db file:   " << f["db"].get<int64_t>() << " bytes\n"
              << "wal file:  " << f["wal"].get<int64_t>() << " bytes\n"
              << "shm file:  " << f["shm"].get<int64_t>() << " bytes\n"
              << "cache dir: " << f["cache"].get<int64_t>() << " bytes\n";
  }
  if (j.contains("table_bytes")) {
    std::cout << "tables:    " << j["table_bytes"].get<int64_t>() << " bytes (" << j["tables"].size()
              << " tables, indexes included)\n";
  }
  return OkStatus();
}

Status RunVerify(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  StorageBackend& store = memory->storage();
  Status health = store.CheckHealth();
  std::vector<std::string> bad;
  std::vector<std::string> problems;
  size_t checked = 0;
  if (!health.ok()) problems.push_back("health check: " + std::string(health.message()));
  Result<std::vector<std::string>> ids = ListIdsOldestFirst(*memory, std::nullopt);
  if (!ids.ok()) {
    problems.push_back("listing episodes: " + std::string(ids.status().message()));
  } else {
    for (const std::string& id : *ids) {
      ++checked;
      Result<Episode> e = store.GetEpisode(id);
      if (!e.ok()) {
        bad.push_back(id);
        problems.push_back(id + ": " + std::string(e.status().message()));
        continue;
      }
      // What export would write must read back as the same episode.
      Result<Episode> back = EpisodeFromJson(EpisodeToJson(*e));
      if (!back.ok() || !(*back == *e)) {
        bad.push_back(id);
        problems.push_back(id + ": does not round-trip through JSON");
      }
    }
  }
  bool ok = problems.empty();
  if (session.json()) {
    PrintJson({{"ok", ok}, {"checked", checked}, {"bad_ids", bad}, {"problems", problems}});
  } else {
    for (const std::string& p : problems) std::cout << "problem: " << OneLine(p) << "\n";
    std::cout << (ok ? "ok" : "FAILED") << ": " << checked << " episodes read, " << bad.size() << " bad\n";
  }
  if (!ok) return DataLossError("store verification failed: " + std::to_string(problems.size()) + " problems");
  return OkStatus();
}

Status SqliteExec(const std::string& path, const char* sql, int busy_ms) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, busy_ms);
    rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  }
  std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  sqlite3_close(db);
  if (rc != SQLITE_OK) return UnavailableError(path + ": " + message);
  return OkStatus();
}

// VACUUM (ANALYZE) of engram's tables in the store's schema; other processes keep working.
Status RunPostgresVacuum(Session& session, const Config& config) {
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());  // opening migrates: the tables exist
  ENGRAM_ASSIGN_OR_RETURN(PostgresOptions options, PostgresOptionsFor(config));
  ENGRAM_ASSIGN_OR_RETURN(PostgresVacuumReport report, VacuumPostgres(options));
  const std::string where = memory->storage().Location() + " (schema " + report.schema + ")";
  if (session.json()) {
    PrintJson({{"vacuumed", where},
               {"tables", report.tables},
               {"bytes_before", report.bytes_before},
               {"bytes_after", report.bytes_after}});
  } else {
    std::cout << "vacuumed and analyzed " << report.tables.size() << " tables of " << where << ": "
              << report.bytes_before << " -> " << report.bytes_after << " bytes\n";
  }
  return OkStatus();
}

Status RunVacuum(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  if (IsPostgresUrl(config->store_url)) return RunPostgresVacuum(session, *config);
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  if (!IsSqlite(*memory)) {
    return UnimplementedError("storage vacuum: engram vacuums SQLite and PostgreSQL stores, not " +
                              memory->storage().Name());
  }
  const std::string db = memory->storage().Location();
  int64_t before = FileSize(db) + FileSize(db + "-wal");
  int busy_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(config->busy_timeout).count());
  ENGRAM_RETURN_IF_ERROR(SqliteExec(db, "VACUUM; PRAGMA wal_checkpoint(TRUNCATE);", std::max(busy_ms, 1000)));
  int64_t after = FileSize(db) + FileSize(db + "-wal");
  if (session.json()) {
    PrintJson({{"vacuumed", db}, {"bytes_before", before}, {"bytes_after", after}});
  } else {
    std::cout << "vacuumed " << db << ": " << before << " -> " << after << " bytes\n";
  }
  return OkStatus();
}

// `engram storage scan-secrets`: every stored episode passes the redactor again (in redact
// mode, whatever redaction.mode says: the secret is already stored, refusing it would leave
// it there). Episodes that change are written back in batches of kBatch (PutEpisodes
// replaces the episode and its full-text entry in one transaction; the LMDB cache drops
// its copy), then re-embedded, and a SQLite file is vacuumed so no freed page keeps the old
// text. --dry-run only reports.
struct ScanArgs {
  bool dry_run = false;
};

Status RunScanSecrets(Session& session, const ScanArgs& args) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  RedactionOptions options = config->redaction;
  options.enabled = true;
  options.mode = RedactionMode::kRedact;
  Memory scanner(memory->storage(), memory->clock(), nullptr, NewRedactor(options));

  ProgressBar bar(ProgressBar::Wanted(session.json()));
  size_t scanned = 0;
  std::vector<Episode> pending;
  std::vector<std::string> changed;
  auto flush = [&]() -> Status {
    if (pending.empty() || args.dry_run) {
      pending.clear();
      return OkStatus();
    }
    ENGRAM_RETURN_IF_ERROR(memory->storage().PutEpisodes(pending));
    pending.clear();
    return OkStatus();
  };
  ENGRAM_RETURN_IF_ERROR(ForEachEpisodeOldestFirst(*memory, std::nullopt, &bar, [&](const Episode& e) -> Status {
    Episode copy = e;
    ENGRAM_RETURN_IF_ERROR(scanner.PrepareImportedEpisode(copy).WithContext("episode " + e.episode_id));
    ++scanned;
    if (!(copy == e)) {
      changed.push_back(e.episode_id);
      pending.push_back(std::move(copy));
      if (pending.size() == kBatch) ENGRAM_RETURN_IF_ERROR(flush());
    }
    return OkStatus();
  }));
  ENGRAM_RETURN_IF_ERROR(flush());

  size_t reembedded = 0;
  bool vacuumed = false;
  std::string cache_note;
  if (!args.dry_run && !changed.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(server::RetrievalStack * retrieval, session.retrieval());
    ENGRAM_ASSIGN_OR_RETURN(reembedded, retrieval->retriever().IndexEpisodes(changed));
    retrieval->Save();
    // Every process shares the LMDB cache: dropping it here drops it for all of them. Its
    // freed pages may still hold old bytes until reused; the note below says how to be sure.
    if (LmdbCache* cache = AsLmdbCache(memory->storage())) {
      ENGRAM_RETURN_IF_ERROR(cache->Clear());
      cache_note = "the cache was cleared; to be sure no freed cache page keeps old bytes, stop every engram and "
                   "delete " + cache->CachePath();
    }
    if (IsSqlite(*memory)) {
      const std::string db = memory->storage().Location();
      int busy_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(config->busy_timeout).count());
      ENGRAM_RETURN_IF_ERROR(SqliteExec(db, "VACUUM; PRAGMA wal_checkpoint(TRUNCATE);", std::max(busy_ms, 1000)));
      vacuumed = true;
    }
  }
  if (session.json()) {
    PrintJson({{"scanned", scanned},
               {"episodes_with_secrets", changed.size()},
               {"redacted", args.dry_run ? 0 : changed.size()},
               {"reembedded", reembedded},
               {"vacuumed", vacuumed},
               {"episode_ids", changed},
               {"dry_run", args.dry_run}});
    if (!cache_note.empty()) std::cerr << "note: " << cache_note << "\n";
  } else {
    std::cout << "scanned " << scanned << " episodes: " << changed.size() << " held secrets";
    if (args.dry_run) {
      std::cout << " (dry run: nothing changed)\n";
    } else {
      std::cout << ", redacted in place" << (vacuumed ? " and vacuumed" : "") << "\n";
    }
    for (const std::string& id : changed) std::cout << "  " << id << "\n";
    if (!cache_note.empty()) std::cout << "note: " << cache_note << "\n";
  }
  return OkStatus();
}

// PRAGMA user_version of an existing SQLite file, 0 for a missing or new one.
int SqliteUserVersion(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return 0;
  sqlite3* db = nullptr;
  int version = 0;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
      version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return version;
}

Status RunMigrate(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  std::optional<int> before;
  bool sqlite_file = config->store_url.empty() || config->store_url.find("://") == std::string::npos;
  if (sqlite_file) {
    before = SqliteUserVersion(config->db_path);
  } else if (IsPostgresUrl(config->store_url)) {
    ENGRAM_ASSIGN_OR_RETURN(PostgresOptions options, PostgresOptionsFor(*config));
    ENGRAM_ASSIGN_OR_RETURN(before, ReadPostgresSchemaVersion(options));
  }
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());  // opening migrates
  int after = memory->storage().SchemaVersion();
  if (session.json()) {
    nlohmann::json j = {{"backend", memory->storage().Name()}, {"schema_version_after", after}};
    j["schema_version_before"] = before ? nlohmann::json(*before) : nlohmann::json(nullptr);
    PrintJson(j);
  } else {
    std::cout << "schema version: " << (before ? std::to_string(*before) : std::string("unknown")) << " -> " << after
              << (before && *before == after ? " (already current)" : "") << "\n";
  }
  return OkStatus();
}

}  // namespace

void AddStorageCommands(CLI::App& app, Command* selected) {
  auto ex = std::make_shared<ExportArgs>();
  auto* e = app.add_subcommand("export", "Write every episode (steps included), then the learned patterns and heuristics, as JSON lines");
  e->add_option("--format", ex->format, "jsonl (the only format)");
  e->add_option("--domain,-d", ex->domain, "Only this domain");
  e->add_option("--output,-o", ex->output, "File to write, or - for stdout (default)");
  e->callback([=] { *selected = [ex](Session& s) { return RunExport(s, *ex); }; });

  auto im = std::make_shared<ImportArgs>();
  auto* i = app.add_subcommand("import", "Merge an export: episodes by id, patterns by similarity key (redacted like live writes)");
  i->add_option("file", im->input, "A JSONL file from engram export, or - for stdin")->required();
  i->add_flag("--strict", im->strict, "Import nothing if any line is bad");
  i->callback([=] { *selected = [im](Session& s) { return RunImport(s, *im); }; });

  auto* storage = app.add_subcommand("storage", "Inspect and maintain the store");
  storage->require_subcommand(1);
  storage->add_subcommand("stats", "Counts, location, backend, schema and file sizes")->callback([=] {
    *selected = RunStats;
  });
  storage->add_subcommand("verify", "Check the store's health and read back every episode")->callback([=] {
    *selected = RunVerify;
  });
  storage->add_subcommand("vacuum", "Reclaim free space (SQLite) or VACUUM (ANALYZE) engram's tables (PostgreSQL)")
      ->callback([=] { *selected = RunVacuum; });
  storage->add_subcommand("migrate", "Bring the store's schema up to date (opening does) and show the versions")
      ->callback([=] { *selected = RunMigrate; });
  auto scan = std::make_shared<ScanArgs>();
  auto* sc = storage->add_subcommand(
      "scan-secrets", "Find secrets already stored (older versions, imports) and redact them in place");
  sc->add_flag("--dry-run", scan->dry_run, "Only report which episodes hold secrets");
  sc->callback([=] { *selected = [scan](Session& s) { return RunScanSecrets(s, *scan); }; });
}

}  // namespace engram::cli
