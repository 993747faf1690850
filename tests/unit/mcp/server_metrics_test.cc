// ServerMetrics: tool calls by tool and status with latency histograms, the per-minute
// latency history of the last hour (what the dashboard draws), and code executions.
#include "mcp/server.h"

#include <chrono>

#include <gtest/gtest.h>

namespace engram::mcp {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;

// 2026-11-27T10:00:00Z.
const system_clock::time_point kTen = system_clock::time_point(seconds(1795773600));

TEST(ServerMetricsTest, CountsCallsByToolAndStatus) {
  ServerMetrics m;
  m.RecordToolCallAt("query_memory", 2, false, kTen);
  m.RecordToolCallAt("query_memory", 4, true, kTen);
  m.RecordToolCallAt("create_episode", 1, false, kTen);
  ServerMetrics::Snapshot s = m.GetAt(kTen);
  EXPECT_EQ(s.tool_calls, 3);
  EXPECT_EQ(s.tool_errors, 1);
  EXPECT_EQ(s.tools["query_memory"].ok, 1);
  EXPECT_EQ(s.tools["query_memory"].errors, 1);
  EXPECT_EQ(s.tools["query_memory"].latency.count, 2);
  EXPECT_DOUBLE_EQ(s.tools["query_memory"].latency.sum_ms, 6);
  EXPECT_EQ(s.calls_by_tool["query_memory"], 2);
  EXPECT_EQ(s.calls_by_tool["create_episode"], 1);
}

TEST(ServerMetricsTest, HistoryHasOneEntryPerMinuteWithCallsOldestFirst) {
  ServerMetrics m;
  for (int i = 1; i <= 10; ++i) m.RecordToolCallAt("t", i, false, kTen + seconds(5));  // 10:00
  m.RecordToolCallAt("t", 100, false, kTen + minutes(3) + seconds(59));                  // 10:03
  ServerMetrics::Snapshot s = m.GetAt(kTen + minutes(4));
  ASSERT_EQ(s.history.size(), 2u);  // 10:01, 10:02 and 10:04 had no calls
  EXPECT_EQ(s.history[0].start, kTen);
  EXPECT_EQ(s.history[0].calls, 10);
  EXPECT_DOUBLE_EQ(s.history[0].p50_ms, 5);   // nearest rank of 1..10
  EXPECT_DOUBLE_EQ(s.history[0].p95_ms, 10);
  EXPECT_EQ(s.history[1].start, kTen + minutes(3));
  EXPECT_EQ(s.history[1].calls, 1);
  EXPECT_DOUBLE_EQ(s.history[1].p95_ms, 100);
}

TEST(ServerMetricsTest, HistoryKeepsOnlyTheLastHour) {
  ServerMetrics m;
  m.RecordToolCallAt("t", 1, false, kTen);
  m.RecordToolCallAt("t", 2, false, kTen + minutes(59));
  EXPECT_EQ(m.GetAt(kTen + minutes(59)).history.size(), 2u);
  // An hour after 10:00 its minute has left the window, even with no new call.
  ServerMetrics::Snapshot later = m.GetAt(kTen + minutes(60));
  ASSERT_EQ(later.history.size(), 1u);
  EXPECT_EQ(later.history[0].start, kTen + minutes(59));
  // A new call drops the minutes that fell out.
  for (int i = 0; i < 70; ++i) m.RecordToolCallAt("t", 1, false, kTen + minutes(60 + i));
  ServerMetrics::Snapshot s = m.GetAt(kTen + minutes(129));
  ASSERT_EQ(s.history.size(), static_cast<size_t>(ServerMetrics::kHistoryMinutes));
  EXPECT_EQ(s.history.front().start, kTen + minutes(70));
  EXPECT_EQ(s.history.back().start, kTen + minutes(129));
  // The totals are not windowed.
  EXPECT_EQ(s.tool_calls, 72);
}

TEST(ServerMetricsTest, CountsExecutionsAndViolationsByKind) {
  ServerMetrics m;
  m.RecordExecution("javascript", {});
  m.RecordExecution("python", {"syscall", "syscall", "timeout"});
  ServerMetrics::Snapshot s = m.Get();
  EXPECT_EQ(s.executions_by_language["javascript"], 1);
  EXPECT_EQ(s.executions_by_language["python"], 1);
  EXPECT_EQ(s.violations_by_kind["syscall"], 2);
  EXPECT_EQ(s.violations_by_kind["timeout"], 1);
}

}  // namespace
}  // namespace engram::mcp
