// How the CLI shows things: JSON for scripts (--json), aligned tables and short
// summaries for people. Everything goes to stdout except errors.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engram/types.h"

namespace engram::cli {

// Compact JSON on one line (invalid UTF-8 replaced, never thrown).
std::string DumpJson(const nlohmann::json& j, int indent = -1);
void PrintJson(const nlohmann::json& j);

// Columns sized to their widest cell (in characters, not bytes). Not thread-safe.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "[#########.........] 512/1024 episodes" on stderr, redrawn in place, when `enabled` (a
// terminal, not --json); silent otherwise. `unit` (may be empty) follows the counts.
// Not thread-safe.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled, std::string unit = {}) : enabled_(enabled), unit_(std::move(unit)) {}
  // True when stderr is a terminal and the output is not JSON.
  static bool Wanted(bool json);
  void Update(size_t done, size_t total);
  // Ends the line (when anything was drawn).
  void Finish();

 private:
  bool enabled_;
  std::string unit_;
  bool drawn_ = false;
};

// "success 1.85", "in progress", "failure 0.00".
std::string EpisodeStatusText(const Episode& e);
// Several lines: task, context, steps, outcome, reward, reflection.
void PrintEpisodeDetail(std::ostream& out, const Episode& e);
// "2026-11-27 14:16" (UTC), for tables.
std::string FormatTimestampShort(Timestamp t);
// One line, as an error for a person: no newlines, at most 2,000 characters.
std::string OneLine(std::string_view text);

}  // namespace engram::cli
