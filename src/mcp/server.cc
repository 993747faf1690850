#include "mcp/server.h"

#include <algorithm>
#include <cmath>

namespace engram::mcp {

void ServerMetrics::RecordToolCall(const std::string& tool, double latency_ms, bool error) {
  MutexLock lock(mu_);
  ++tool_calls_;
  if (error) ++tool_errors_;
  ++calls_by_tool_[tool];
  latencies_.push_back(latency_ms);
  if (latencies_.size() > kWindow) latencies_.pop_front();
}

void ServerMetrics::RecordRequest() {
  MutexLock lock(mu_);
  ++requests_;
}

ServerMetrics::Snapshot ServerMetrics::Get() const {
  Snapshot s;
  std::vector<double> sorted;
  {
    MutexLock lock(mu_);
    s.requests = requests_;
    s.tool_calls = tool_calls_;
    s.tool_errors = tool_errors_;
    s.calls_by_tool = calls_by_tool_;
    sorted.assign(latencies_.begin(), latencies_.end());
  }
  if (!sorted.empty()) {
    std::sort(sorted.begin(), sorted.end());
    // Nearest-rank percentiles.
    auto rank = [&](double p) { return sorted[static_cast<size_t>(std::ceil(p * sorted.size())) - 1]; };
    s.p50_ms = rank(0.50);
    s.p95_ms = rank(0.95);
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
