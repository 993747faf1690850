#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "common/time_format.h"

namespace engram::cli {

std::string DumpJson(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintJson(const nlohmann::json& j) { std::cout << DumpJson(j) << "\n"; }

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], Utf8Length(row[i]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - Utf8Length(row[i]) + 2, ' ');
    }
    out << line << "\n";
  };
  print(header_);
  for (const auto& row : rows_) print(row);
}

namespace {
std::string Fixed(double v, int digits = 2) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}
std::string Duration(Timestamp start, Timestamp end) {
  int64_t ms = (end - start).count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms < 120'000) return Fixed(ms / 1000.0, 1) + " s";
  return Fixed(ms / 60'000.0, 1) + " min";
}
std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}
void Section(std::ostream& out, const char* title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  out << "  " << title << ":\n";
  for (const auto& s : items) out << "    - " << s << "\n";
}
}  // namespace

std::string EpisodeStatusText(const Episode& e) {
  if (!e.outcome) return "in progress";
  std::string s(OutcomeKindName(e.outcome->kind));
  if (e.reward) s += " " + Fixed(e.reward->total);
  return s;
}

void PrintEpisodeDetail(std::ostream& out, const Episode& e) {
  out << "Episode " << e.episode_id << "\n";
  out << "  Task:      " << e.task_description << "\n";
  out << "  Type:      " << TaskTypeName(e.task_type) << "\n";
  std::string ctx = "domain " + e.context.domain;
  if (e.context.language) ctx += ", language " + *e.context.language;
  if (e.context.framework) ctx += ", framework " + *e.context.framework;
  ctx += ", " + std::string(ComplexityName(e.context.complexity));
  out << "  Context:   " << ctx << "\n";
  if (!e.context.tags.empty() || !e.tags.empty()) {
    std::vector<std::string> tags = e.context.tags;
    tags.insert(tags.end(), e.tags.begin(), e.tags.end());
    out << "  Tags:      " << Joined(tags) << "\n";
  }
  if (e.context.repo) out << "  Repo:      " << *e.context.repo << (e.context.commit ? " @ " + *e.context.commit : "") << "\n";
  out << "  Started:   " << FormatTimestamp(e.start_time) << "\n";
  if (e.end_time) out << "  Finished:  " << FormatTimestamp(*e.end_time) << " (" << Duration(e.start_time, *e.end_time) << ")\n";
  out << "  Status:    " << EpisodeStatusText(e) << "\n";
  if (!e.steps.empty()) {
    out << "\n";
    Table t({"  #", "TOOL", "ACTION", "RESULT", "LATENCY", "OUTPUT"});
    for (const Step& s : e.steps) {
      std::string result = s.result ? std::string(StepStatusName(s.result->status)) : "(none)";
      std::string output;
      if (s.result && s.result->message && !s.result->message->empty()) output = *s.result->message;
      else if (s.result && s.result->output) output = *s.result->output;
      t.AddRow({"  " + std::to_string(s.step_number), Ellipsize(s.tool, 24), Ellipsize(OneLine(s.action), 40), result,
                s.latency_ms ? std::to_string(*s.latency_ms) + " ms" : "", Ellipsize(OneLine(output), 50)});
    }
    t.Print(out);
  }
  if (e.outcome) {
    const Outcome& o = *e.outcome;
    out << "\nOutcome: " << OutcomeKindName(o.kind);
    if (!o.verdict.empty()) out << " — " << o.verdict;
    if (!o.reason.empty()) out << " — " << o.reason;
    out << "\n";
    if (!o.artifacts.empty()) out << "  Artifacts: " << Joined(o.artifacts) << "\n";
    if (!o.completed.empty()) out << "  Completed: " << Joined(o.completed) << "\n";
    if (!o.failed.empty()) out << "  Failed:    " << Joined(o.failed) << "\n";
    if (o.error_details) out << "  Error:     " << OneLine(*o.error_details) << "\n";
    if (o.verification) {
      const Verification& v = *o.verification;
      std::vector<std::string> parts;
      if (v.tests_passed) parts.push_back(std::to_string(*v.tests_passed) + " tests passed");
      if (v.tests_failed) parts.push_back(std::to_string(*v.tests_failed) + " failed");
      if (v.build_ok) parts.push_back(*v.build_ok ? "build ok" : "build broken");
      if (v.lint_warnings) parts.push_back(std::to_string(*v.lint_warnings) + " lint warnings");
      if (v.coverage_pct) parts.push_back("coverage " + Fixed(*v.coverage_pct, 1) + "%");
      out << "  Verified:  " << Joined(parts) << "\n";
    }
  }
  if (e.reward) {
    const Reward& r = *e.reward;
    out << "\nReward: " << Fixed(r.total) << "  (base " << Fixed(r.base) << " × efficiency " << Fixed(r.efficiency)
        << " × complexity " << Fixed(r.complexity_bonus) << " × quality " << Fixed(r.quality_multiplier)
        << " + learning " << Fixed(r.learning_bonus) << ")\n";
  }
  if (e.reflection) {
    out << "\nReflection:\n";
    Section(out, "Successes", e.reflection->successes);
    Section(out, "Improvements", e.reflection->improvements);
    Section(out, "Insights", e.reflection->insights);
  }
}

std::string FormatTimestampShort(Timestamp t) {
  std::string full = FormatTimestamp(t);  // 2026-11-27T14:16:33.123Z
  return full.substr(0, 10) + " " + full.substr(11, 5);
}

std::string OneLine(std::string_view text) {
  std::string out;
  for (char c : text) out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  return Ellipsize(out, 2000);
}

bool ProgressBar::Wanted(bool json) { return !json && isatty(STDERR_FILENO); }

void ProgressBar::Update(size_t done, size_t total) {
  if (!enabled_ || total == 0) return;
  constexpr size_t kWidth = 30;
  const size_t filled = kWidth * std::min(done, total) / total;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu%s%s", std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(), done, total, unit_.empty() ? "" : " ", unit_.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace engram::cli
