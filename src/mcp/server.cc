#include "mcp/server.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace engram::mcp {

namespace {

// Nearest-rank percentile of sorted, non-empty `v`.
double Percentile(const std::vector<double>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::max<size_t>(rank, 1) - 1];
}

int64_t MinuteOf(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::minutes>(t).time_since_epoch().count();
}

}  // namespace

void ServerMetrics::RecordToolCallAt(const std::string& tool, double latency_ms, bool error,
                                     std::chrono::system_clock::time_point now) {
  const int64_t minute = MinuteOf(now);
  MutexLock lock(mu_);
  ++tool_calls_;
  if (error) ++tool_errors_;
  ToolStats& stats = tools_[tool];
  ++(error ? stats.errors : stats.ok);
  stats.latency.Observe(latency_ms);
  latencies_.push_back(latency_ms);
  if (latencies_.size() > kWindow) latencies_.pop_front();

  // Calls finish out of order across threads: file a late one under its own minute if
  // that is still kept, else under the newest.
  auto it = std::find_if(minutes_.begin(), minutes_.end(), [&](const MinuteSamples& m) { return m.minute == minute; });
  if (it == minutes_.end()) {
    if (minutes_.empty() || minutes_.back().minute < minute) {
      minutes_.push_back(MinuteSamples{.minute = minute});
      it = std::prev(minutes_.end());
    } else {
      it = std::prev(minutes_.end());
    }
  }
  ++it->calls;
  if (it->latencies.size() < kWindow) it->latencies.push_back(latency_ms);
  while (!minutes_.empty() && minutes_.front().minute <= minutes_.back().minute - kHistoryMinutes) {
    minutes_.pop_front();
  }
}

void ServerMetrics::RecordRequest() {
  MutexLock lock(mu_);
  ++requests_;
}

void ServerMetrics::RecordExecution(const std::string& language, const std::vector<std::string>& violation_kinds) {
  MutexLock lock(mu_);
  ++executions_by_language_[language];
  for (const std::string& kind : violation_kinds) ++violations_by_kind_[kind];
}

ServerMetrics::Snapshot ServerMetrics::GetAt(std::chrono::system_clock::time_point now) const {
  const int64_t oldest_kept = MinuteOf(now) - kHistoryMinutes + 1;
  Snapshot s;
  std::vector<double> sorted;
  std::vector<MinuteSamples> minutes;
  {
    MutexLock lock(mu_);
    s.requests = requests_;
    s.tool_calls = tool_calls_;
    s.tool_errors = tool_errors_;
    s.tools = tools_;
    s.executions_by_language = executions_by_language_;
    s.violations_by_kind = violations_by_kind_;
    sorted.assign(latencies_.begin(), latencies_.end());
    for (const MinuteSamples& m : minutes_) {
      if (m.minute >= oldest_kept) minutes.push_back(m);
    }
  }
  for (const auto& [tool, stats] : s.tools) s.calls_by_tool[tool] = stats.ok + stats.errors;
  if (!sorted.empty()) {
    std::sort(sorted.begin(), sorted.end());
    s.p50_ms = Percentile(sorted, 0.50);
    s.p95_ms = Percentile(sorted, 0.95);
  }
  for (MinuteSamples& m : minutes) {
    std::sort(m.latencies.begin(), m.latencies.end());
    s.history.push_back(Minute{.start = std::chrono::system_clock::time_point(std::chrono::minutes(m.minute)),
                               .calls = m.calls,
                               .p50_ms = Percentile(m.latencies, 0.50),
                               .p95_ms = Percentile(m.latencies, 0.95)});
  }
  return s;
}

Status McpServer::AddPrompt(PromptDefinition prompt) {
  for (const PromptDefinition& p : prompts_) {
    if (p.name == prompt.name) return AlreadyExistsError("prompt " + prompt.name + " is already registered");
  }
  if (!prompt.get) return InvalidArgumentError("prompt " + prompt.name + " has no get function");
  prompts_.push_back(std::move(prompt));
  return OkStatus();
}

}  // namespace engram::mcp
