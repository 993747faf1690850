#include "core/reflection.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "core/reward.h"

namespace engram {
namespace {

// Lengths are in code points. Long enough to identify a tool or an error, short enough
// that five items stay readable in a retrieval result.
constexpr size_t kMaxToolChars = 40;
constexpr size_t kMaxVerdictChars = 120;
constexpr size_t kMaxReasonChars = 160;
constexpr size_t kMaxStepMessageChars = 120;
constexpr size_t kMaxListItemChars = 60;
constexpr size_t kMaxListItems = 3;
constexpr size_t kMaxStepNumbersShown = 5;
constexpr size_t kMaxSequenceTools = 8;
constexpr size_t kMaxRecoveryItems = 2;
constexpr size_t kMaxUnrecoveredItems = 2;
constexpr size_t kMinRetryLoop = 3;
constexpr double kEfficientRun = 1.2;
constexpr double kSlowRun = 0.8;
constexpr int64_t kSlowStepMs = 10'000;
constexpr size_t kMinStepsForDominantTool = 5;
constexpr double kGoodCoveragePct = 60.0;  // as in reward.cc: above it coverage is a plus

// Collapses whitespace runs to one space, trims, and cuts to `max_chars`.
std::string Clip(std::string_view text, size_t max_chars) {
  // A code point is at most 4 bytes, so past this many bytes the text is cut anyway; step
  // outputs can be a MiB and need not be copied whole.
  const size_t enough_bytes = 4 * (max_chars + 1);
  std::string out;
  out.reserve(std::min(text.size(), enough_bytes));
  bool pending_space = false;
  for (char c : text) {
    if (out.size() > enough_bytes) break;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return Ellipsize(out, max_chars);
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string Count(size_t n, std::string_view noun) {
  std::string out = std::to_string(n) + " " + std::string(noun);
  if (n != 1) out += "s";
  return out;
}

std::string FormatDuration(int64_t ms) {
  if (ms < 1'000) return std::to_string(ms) + " ms";
  if (ms < 120'000) return Fixed(static_cast<double>(ms) / 1'000.0, 1) + " s";
  if (ms < 120 * 60'000) return Fixed(static_cast<double>(ms) / 60'000.0, 1) + " min";
  return Fixed(static_cast<double>(ms) / 3'600'000.0, 1) + " h";
}

// "a, b, c, +2 more", each item clipped.
std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMaxListItems; ++i) {
    if (i > 0) out += ", ";
    out += Clip(items[i], kMaxListItemChars);
  }
  if (items.size() > kMaxListItems) out += ", +" + std::to_string(items.size() - kMaxListItems) + " more";
  return out;
}

int StepNumber(const std::vector<Step>& steps, size_t index) {
  return steps[index].step_number > 0 ? steps[index].step_number : static_cast<int>(index) + 1;
}

std::string ToolName(const Step& step) {
  if (step.tool.empty()) return "unnamed tool";
  return Clip(step.tool, kMaxToolChars);
}

// "step 3 (cargo test)"
std::string StepRef(const std::vector<Step>& steps, size_t index) {
  return "step " + std::to_string(StepNumber(steps, index)) + " (" + ToolName(steps[index]) + ")";
}

// "step 2" or "steps 2, 5, 7, 9, 11, …"
std::string StepNumbers(const std::vector<int>& numbers) {
  std::string out = numbers.size() == 1 ? "step " : "steps ";
  for (size_t i = 0; i < numbers.size() && i < kMaxStepNumbersShown; ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(numbers[i]);
  }
  if (numbers.size() > kMaxStepNumbersShown) out += ", …";
  return out;
}

// "an error", "a timeout", "a step with no result"
std::string_view FailureKind(const Step& step) {
  if (!step.result) return "a step with no result";
  return step.result->status == StepStatus::kTimeout ? "a timeout" : "an error";
}

std::optional<int64_t> DurationMs(const Episode& episode) {
  if (!episode.end_time) return std::nullopt;
  return std::max<int64_t>(0, (*episode.end_time - episode.start_time).count());
}

// "debugging in web-api (rust, axum)"
std::string TaskLabel(const Episode& episode) {
  std::string label(TaskTypeName(episode.task_type));
  std::replace(label.begin(), label.end(), '_', ' ');
  const TaskContext& ctx = episode.context;
  if (!ctx.domain.empty() && ctx.domain != "general") label += " in " + Clip(ctx.domain, kMaxListItemChars);
  std::vector<std::string> stack;
  if (ctx.language && !ctx.language->empty()) stack.push_back(Clip(*ctx.language, kMaxToolChars));
  if (ctx.framework && !ctx.framework->empty()) stack.push_back(Clip(*ctx.framework, kMaxToolChars));
  if (!stack.empty()) label += " (" + JoinList(stack) + ")";
  return label;
}

// Appends while the list has room, so rules earlier in the function win.
void Add(std::vector<std::string>& list, std::string item) {
  if (list.size() < kMaxReflectionItems) list.push_back(std::move(item));
}

// ---- successes ----

void OutcomeSuccess(const Episode& episode, std::vector<std::string>& out) {
  const Outcome& o = *episode.outcome;
  if (o.kind == OutcomeKind::kSuccess) {
    std::string msg = episode.steps.empty() ? "Task succeeded with no steps recorded"
                                            : "Task succeeded in " + Count(episode.steps.size(), "step");
    if (auto ms = DurationMs(episode); ms && !episode.steps.empty()) msg += " over " + FormatDuration(*ms);
    const std::string verdict = Clip(o.verdict, kMaxVerdictChars);
    if (!verdict.empty()) msg += ": " + verdict;
    if (!o.artifacts.empty()) msg += "; artifacts: " + JoinList(o.artifacts);
    Add(out, std::move(msg));
  } else if (o.kind == OutcomeKind::kPartialSuccess) {
    const size_t total = o.completed.size() + o.failed.size();
    if (!o.completed.empty()) {
      Add(out, "Completed " + std::to_string(o.completed.size()) + " of " + Count(total, "part") + ": " +
                   JoinList(o.completed));
    } else if (total == 0) {
      std::string msg = "Partially succeeded";
      const std::string verdict = Clip(o.verdict, kMaxVerdictChars);
      if (!verdict.empty()) msg += ": " + verdict;
      Add(out, std::move(msg));
    }
  }
}

void VerificationSuccess(const Verification& v, std::vector<std::string>& out) {
  std::vector<std::string> good;
  if (v.tests_failed.value_or(0) <= 0 && v.tests_passed.value_or(0) > 0) {
    good.push_back(Count(static_cast<size_t>(*v.tests_passed), "test") + " passed");
  }
  if (v.build_ok.value_or(false)) good.push_back("build ok");
  if (v.coverage_pct && *v.coverage_pct > kGoodCoveragePct) {
    good.push_back("coverage " + Fixed(*v.coverage_pct, 1) + "%");
  }
  if (v.lint_warnings && *v.lint_warnings == 0) good.push_back("no lint warnings");
  if (good.empty()) return;
  std::string msg = "Verified: ";
  for (size_t i = 0; i < good.size(); ++i) msg += (i > 0 ? ", " : "") + good[i];
  Add(out, std::move(msg));
}

void RecoverySuccesses(const std::vector<Step>& steps, const std::vector<StepRecovery>& recoveries,
                       std::vector<std::string>& out) {
  // Group the failures each successful step recovered from, in order of that step.
  std::vector<std::pair<size_t, std::vector<size_t>>> groups;
  for (const StepRecovery& r : recoveries) {
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == r.recovered_by_index; });
    if (it == groups.end()) {
      groups.push_back({r.recovered_by_index, {r.failed_index}});
    } else {
      it->second.push_back(r.failed_index);
    }
  }
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t g = 0; g < groups.size() && g < kMaxRecoveryItems; ++g) {
    const auto& [by, failed] = groups[g];
    std::string msg;
    if (failed.size() == 1) {
      msg = "Recovered from " + std::string(FailureKind(steps[failed[0]])) + " in " +
            StepRef(steps, failed[0]);
    } else {
      msg = "Recovered from failures in steps ";
      for (size_t i = 0; i < failed.size() && i < kMaxStepNumbersShown; ++i) {
        if (i > 0) msg += ", ";
        msg += std::to_string(StepNumber(steps, failed[i])) + " (" + ToolName(steps[failed[i]]) + ")";
      }
      if (failed.size() > kMaxStepNumbersShown) msg += ", …";
    }
    msg += " by " + StepRef(steps, by);
    Add(out, std::move(msg));
  }
}

// ---- improvements ----

void OutcomeImprovement(const Outcome& o, std::vector<std::string>& out) {
  if (o.kind == OutcomeKind::kFailure) {
    std::string msg = "Task failed";
    const std::string reason = Clip(o.reason, kMaxReasonChars);
    if (!reason.empty()) msg += ": " + reason;
    if (o.error_details) {
      const std::string details = Clip(*o.error_details, kMaxReasonChars);
      if (!details.empty()) msg += " (" + details + ")";
    }
    Add(out, std::move(msg));
  } else if (o.kind == OutcomeKind::kPartialSuccess && !o.failed.empty()) {
    const size_t total = o.completed.size() + o.failed.size();
    Add(out, "Left unfinished: " + JoinList(o.failed) + " (" + std::to_string(o.failed.size()) + " of " +
                 Count(total, "part") + ")");
  }
}

void VerificationImprovement(const Verification& v, std::vector<std::string>& out) {
  std::vector<std::string> bad;
  if (v.tests_failed.value_or(0) > 0) {
    const auto failed = static_cast<size_t>(*v.tests_failed);
    if (v.tests_passed.value_or(0) > 0) {
      const size_t total = failed + static_cast<size_t>(*v.tests_passed);
      bad.push_back(std::to_string(failed) + " of " + std::to_string(total) + " tests failed");
    } else {
      bad.push_back(Count(failed, "test") + " failed");
    }
  }
  if (v.build_ok && !*v.build_ok) bad.push_back("build broken");
  if (v.coverage_pct && *v.coverage_pct <= kGoodCoveragePct) {
    bad.push_back("coverage only " + Fixed(*v.coverage_pct, 1) + "%");
  }
  if (v.lint_warnings && *v.lint_warnings > 0) {
    bad.push_back(Count(static_cast<size_t>(*v.lint_warnings), "lint warning"));
  }
  if (bad.empty()) return;
  std::string msg = "Verification problems: ";
  for (size_t i = 0; i < bad.size(); ++i) msg += (i > 0 ? ", " : "") + bad[i];
  Add(out, std::move(msg));
}

void FailedStepsSummary(const std::vector<Step>& steps, std::vector<std::string>& out) {
  std::vector<std::pair<std::string, std::vector<int>>> by_tool;  // in order of first failure
  size_t failed = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].Succeeded()) continue;
    ++failed;
    const std::string tool = ToolName(steps[i]);
    auto it = std::find_if(by_tool.begin(), by_tool.end(), [&](const auto& t) { return t.first == tool; });
    if (it == by_tool.end()) {
      by_tool.push_back({tool, {StepNumber(steps, i)}});
    } else {
      it->second.push_back(StepNumber(steps, i));
    }
  }
  if (failed == 0) return;
  std::string msg = std::to_string(failed) + " of " + Count(steps.size(), "step") + " failed: ";
  for (size_t t = 0; t < by_tool.size() && t < kMaxListItems; ++t) {
    if (t > 0) msg += ", ";
    msg += by_tool[t].first + " (" + StepNumbers(by_tool[t].second) + ")";
  }
  if (by_tool.size() > kMaxListItems) msg += ", +" + Count(by_tool.size() - kMaxListItems, "more tool");
  Add(out, std::move(msg));
}

void UnrecoveredFailures(const std::vector<Step>& steps, const std::vector<StepRecovery>& recoveries,
                         std::vector<std::string>& out) {
  size_t shown = 0;
  for (size_t i = 0; i < steps.size() && shown < kMaxUnrecoveredItems; ++i) {
    if (steps[i].Succeeded()) continue;
    const bool recovered = std::any_of(recoveries.begin(), recoveries.end(),
                                       [&](const StepRecovery& r) { return r.failed_index == i; });
    if (recovered) continue;
    ++shown;
    const Step& s = steps[i];
    std::string ref = "Step " + std::to_string(StepNumber(steps, i)) + " (" + ToolName(s) + ")";
    if (!s.result) {
      Add(out, ref + " has no recorded result; record the result of every step");
      continue;
    }
    std::string msg = ref + (s.result->status == StepStatus::kTimeout ? " timed out" : " failed") +
                      " and was not recovered";
    std::string detail;
    if (s.result->message) detail = Clip(*s.result->message, kMaxStepMessageChars);
    if (detail.empty() && s.result->output) detail = Clip(*s.result->output, kMaxStepMessageChars);
    if (!detail.empty()) msg += ": " + detail;
    Add(out, std::move(msg));
  }
}

void RetryLoop(const std::vector<Step>& steps, std::vector<std::string>& out) {
  size_t best_start = 0;
  size_t best_len = 0;
  for (size_t i = 0; i < steps.size();) {
    if (steps[i].Succeeded()) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < steps.size() && !steps[j].Succeeded() && steps[j].tool == steps[i].tool) ++j;
    if (j - i > best_len) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < kMinRetryLoop) return;
  Add(out, ToolName(steps[best_start]) + " failed " + std::to_string(best_len) + " times in a row (steps " +
               std::to_string(StepNumber(steps, best_start)) + "-" +
               std::to_string(StepNumber(steps, best_start + best_len - 1)) +
               "); change approach sooner instead of retrying");
}

// ---- insights ----

void ToolSequence(const Episode& episode, std::vector<std::string>& out) {
  const OutcomeKind kind = episode.outcome->kind;
  std::vector<std::string> tools;
  for (const Step& s : episode.steps) {
    if (kind != OutcomeKind::kFailure && !s.Succeeded()) continue;
    std::string tool = ToolName(s);
    if (tools.empty() || tools.back() != tool) tools.push_back(std::move(tool));
  }
  if (tools.empty()) return;
  std::string msg = kind == OutcomeKind::kSuccess          ? "Tool sequence that worked for "
                    : kind == OutcomeKind::kPartialSuccess ? "Tool sequence that partly worked for "
                                                           : "Tool sequence that did not succeed for ";
  msg += TaskLabel(episode) + ": ";
  for (size_t i = 0; i < tools.size() && i < kMaxSequenceTools; ++i) {
    if (i > 0) msg += " → ";
    msg += tools[i];
  }
  if (tools.size() > kMaxSequenceTools) msg += " → …";
  Add(out, std::move(msg));
}

void RecoveryInsight(const std::vector<Step>& steps, const std::vector<StepRecovery>& recoveries,
                     std::vector<std::string>& out) {
  if (recoveries.empty()) return;
  const StepRecovery& r = recoveries.front();
  const Step& failed = steps[r.failed_index];
  const Step& fix = steps[r.recovered_by_index];
  const std::string failed_at = std::to_string(StepNumber(steps, r.failed_index));
  const std::string fixed_at = std::to_string(StepNumber(steps, r.recovered_by_index));
  if (failed.tool == fix.tool) {
    Add(out, "Retrying " + ToolName(fix) + " worked after " + std::string(FailureKind(failed)) + " (step " +
                 failed_at + " → step " + fixed_at + ")");
    return;
  }
  // The fix is only proven when the tool that failed later succeeds too.
  std::string msg = "After " + ToolName(failed) + " failed in step " + failed_at + ", " + ToolName(fix);
  for (size_t k = r.recovered_by_index + 1; k < steps.size(); ++k) {
    if (steps[k].Succeeded() && steps[k].tool == failed.tool) {
      Add(out, msg + " in step " + fixed_at + " led to " + ToolName(failed) + " succeeding in step " +
                   std::to_string(StepNumber(steps, k)));
      return;
    }
  }
  Add(out, msg + " succeeded next (step " + fixed_at + ")");
}

void SlowestStep(const std::vector<Step>& steps, std::vector<std::string>& out) {
  std::optional<size_t> slowest;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].latency_ms) continue;
    if (!slowest || *steps[i].latency_ms > *steps[*slowest].latency_ms) slowest = i;
  }
  if (!slowest || *steps[*slowest].latency_ms < kSlowStepMs) return;
  Add(out, "Slowest step: " + std::to_string(StepNumber(steps, *slowest)) + " (" + ToolName(steps[*slowest]) +
               ") took " + FormatDuration(*steps[*slowest].latency_ms));
}

void DominantTool(const std::vector<Step>& steps, std::vector<std::string>& out) {
  if (steps.size() < kMinStepsForDominantTool) return;
  std::vector<std::pair<std::string, size_t>> counts;  // in order of first use
  for (const Step& s : steps) {
    const std::string tool = ToolName(s);
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == tool; });
    if (it == counts.end()) {
      counts.push_back({tool, 1});
    } else {
      ++it->second;
    }
  }
  // max_element keeps the first of equals: the tool used first wins a tie.
  auto top = std::max_element(counts.begin(), counts.end(),
                              [](const auto& a, const auto& b) { return a.second < b.second; });
  if (top->second * 2 < steps.size()) return;
  Add(out, "Most used tool: " + top->first + " (" + std::to_string(top->second) + " of " +
               Count(steps.size(), "step") + ")");
}

void RewardBreakdown(const Reward& reward, std::vector<std::string>& out) {
  Add(out, "Reward " + Fixed(reward.total, 2) + " = base " + Fixed(reward.base, 2) + " × efficiency " +
               Fixed(reward.efficiency, 2) + " × complexity " + Fixed(reward.complexity_bonus, 2) +
               " × quality " + Fixed(reward.quality_multiplier, 2) + " + learning " +
               Fixed(reward.learning_bonus, 2));
}

}  // namespace

Reflection GenerateReflection(const Episode& episode, const Reward& reward) {
  const std::vector<Step>& steps = episode.steps;
  const std::vector<StepRecovery> recoveries = FindStepRecoveries(steps);
  const Verification* verification =
      episode.outcome && episode.outcome->verification ? &*episode.outcome->verification : nullptr;
  const bool any_failed =
      std::any_of(steps.begin(), steps.end(), [](const Step& s) { return !s.Succeeded(); });
  const auto duration = DurationMs(episode);

  Reflection r;
  if (episode.outcome) OutcomeSuccess(episode, r.successes);
  if (verification) VerificationSuccess(*verification, r.successes);
  if (steps.size() == 1 && !any_failed) Add(r.successes, "The single step succeeded");
  if (steps.size() > 1 && !any_failed) Add(r.successes, "All " + Count(steps.size(), "step") + " succeeded");
  RecoverySuccesses(steps, recoveries, r.successes);
  if (!steps.empty() && reward.efficiency >= kEfficientRun) {
    std::string msg = "Efficient run: " + Count(steps.size(), "step");
    if (duration) msg += " in " + FormatDuration(*duration);
    Add(r.successes, msg + " (efficiency " + Fixed(reward.efficiency, 2) + ")");
  }

  if (episode.outcome) OutcomeImprovement(*episode.outcome, r.improvements);
  if (steps.empty()) {
    Add(r.improvements,
        "No steps were recorded; record each tool call (add_episode_step) so later tasks can learn from it");
  }
  if (verification) VerificationImprovement(*verification, r.improvements);
  FailedStepsSummary(steps, r.improvements);
  UnrecoveredFailures(steps, recoveries, r.improvements);
  RetryLoop(steps, r.improvements);
  if (reward.efficiency < kSlowRun) {
    std::string msg = "Slow run: " + Count(steps.size(), "step");
    if (duration) msg += " over " + FormatDuration(*duration);
    Add(r.improvements, msg + " (efficiency " + Fixed(reward.efficiency, 2) + "); look for a shorter path");
  }

  if (episode.outcome) ToolSequence(episode, r.insights);
  RecoveryInsight(steps, recoveries, r.insights);
  SlowestStep(steps, r.insights);
  DominantTool(steps, r.insights);
  RewardBreakdown(reward, r.insights);
  return r;
}

}  // namespace engram
