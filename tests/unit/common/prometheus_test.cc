// The Prometheus text writer and the latency histogram: what a scraper reads — one
// HELP/TYPE per family, escaped label values, cumulative buckets ending at +Inf.
#include "common/prometheus.h"

#include <cmath>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/histogram.h"
#include "testing/prometheus_text.h"

namespace engram {
namespace {

using ::testing::HasSubstr;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

TEST(LatencyHistogramTest, BucketsAreUpperInclusive) {
  LatencyHistogram h;
  h.Observe(0.05);   // exactly the first bound: first bucket
  h.Observe(0.051);  // just above: second
  h.Observe(1);      // the bound 1 ms
  h.Observe(1e9);    // above every bound
  h.Observe(-3);     // a stepped clock counts as 0
  EXPECT_EQ(h.count, 5);
  EXPECT_EQ(h.buckets[0], 2);  // 0.05 and the clamped -3
  EXPECT_EQ(h.buckets[1], 1);
  EXPECT_EQ(h.buckets[4], 1);  // kLatencyBucketsMs[4] == 1
  EXPECT_EQ(h.buckets.back(), 1);
  EXPECT_DOUBLE_EQ(h.sum_ms, 0.05 + 0.051 + 1 + 1e9);
}

TEST(LatencyHistogramsTest, KeepsOneHistogramPerName) {
  LatencyHistograms hs;
  hs.Observe("GetEpisode", 1);
  hs.Observe("GetEpisode", 2);
  hs.Observe("Stats", 3);
  auto snapshot = hs.Snapshot();
  ASSERT_EQ(snapshot.size(), 2u);
  EXPECT_EQ(snapshot["GetEpisode"].count, 2);
  EXPECT_EQ(snapshot["Stats"].count, 1);
}

TEST(PrometheusValueTest, FormatsIntegersExactlyAndOthersShortest) {
  EXPECT_EQ(FormatPrometheusValue(0), "0");
  EXPECT_EQ(FormatPrometheusValue(42), "42");
  EXPECT_EQ(FormatPrometheusValue(-7), "-7");
  EXPECT_EQ(FormatPrometheusValue(123456789012.0), "123456789012");
  EXPECT_EQ(FormatPrometheusValue(0.0025), "0.0025");
  EXPECT_EQ(FormatPrometheusValue(0.00005), "0.00005");
  EXPECT_EQ(FormatPrometheusValue(1.5), "1.5");
  EXPECT_EQ(FormatPrometheusValue(1e-9), "1e-09");
  EXPECT_EQ(FormatPrometheusValue(HUGE_VAL), "+Inf");
  EXPECT_EQ(FormatPrometheusValue(-HUGE_VAL), "-Inf");
  EXPECT_EQ(FormatPrometheusValue(std::nan("")), "NaN");
}

TEST(PrometheusWriterTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapePrometheusLabelValue(R"(a"b\c)" "\nd"), R"(a\"b\\c\nd)");
  PrometheusWriter w;
  w.Counter("engram_x_total", "Help with \\ and\na line feed", {{"tool", "we\"ird\\name\n"}}, 1);
  std::string text = w.Text();
  EXPECT_THAT(text, HasSubstr("# HELP engram_x_total Help with \\\\ and\\na line feed\n"));
  EXPECT_THAT(text, HasSubstr("engram_x_total{tool=\"we\\\"ird\\\\name\\n\"} 1\n"));
  // A parser gets the original value back.
  Result<testing::ParsedMetrics> parsed = testing::ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  EXPECT_EQ(parsed->families["engram_x_total"].help, "Help with \\ and\na line feed");
  EXPECT_EQ(parsed->Find("engram_x_total", {{"tool", "we\"ird\\name\n"}}), 1);
}

TEST(PrometheusWriterTest, GroupsSamplesUnderOneHelpAndTypePerFamily) {
  PrometheusWriter w;
  // Interleaved on purpose: the text must still group each family's samples.
  w.Counter("engram_calls_total", "Calls", {{"tool", "a"}, {"status", "ok"}}, 1);
  w.Gauge("engram_depth", "Depth", {}, 3);
  w.Counter("engram_calls_total", "Calls", {{"tool", "b"}, {"status", "error"}}, 2);
  std::string text = w.Text();
  EXPECT_EQ(Count(text, "# TYPE engram_calls_total counter\n"), 1u);
  EXPECT_EQ(Count(text, "# HELP engram_calls_total Calls\n"), 1u);
  EXPECT_EQ(Count(text, "# TYPE engram_depth gauge\n"), 1u);
  EXPECT_EQ(text,
            "# HELP engram_calls_total Calls\n"
            "# TYPE engram_calls_total counter\n"
            "engram_calls_total{tool=\"a\",status=\"ok\"} 1\n"
            "engram_calls_total{tool=\"b\",status=\"error\"} 2\n"
            "# HELP engram_depth Depth\n"
            "# TYPE engram_depth gauge\n"
            "engram_depth 3\n");
  ASSERT_TRUE(testing::ParsePrometheusText(text).ok());
}

TEST(PrometheusWriterTest, ADeclaredFamilyWithoutSamplesStillHasItsHeader) {
  PrometheusWriter w;
  w.Declare("engram_runs_total", "Runs by language", MetricType::kCounter);
  w.Gauge("engram_depth", "Depth", {}, 0);
  EXPECT_EQ(w.Text(),
            "# HELP engram_runs_total Runs by language\n"
            "# TYPE engram_runs_total counter\n"
            "# HELP engram_depth Depth\n"
            "# TYPE engram_depth gauge\n"
            "engram_depth 0\n");
  Result<testing::ParsedMetrics> parsed = testing::ParsePrometheusText(w.Text());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->families["engram_runs_total"].type, "counter");
}

TEST(PrometheusWriterTest, HistogramBucketsAreCumulativeInSecondsAndEndAtCount) {
  LatencyHistogram h;
  h.Observe(0.3);    // <= 0.5 ms
  h.Observe(0.4);    // <= 0.5 ms
  h.Observe(7);      // <= 10 ms
  h.Observe(20000);  // +Inf
  PrometheusWriter w;
  w.Histogram("engram_op_duration_seconds", "Op latency", {{"operation", "GetEpisode"}}, h);
  std::string text = w.Text();
  EXPECT_EQ(Count(text, "# TYPE engram_op_duration_seconds histogram\n"), 1u);
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"0.00025\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"0.0005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"0.01\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"10\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_bucket{operation=\"GetEpisode\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("engram_op_duration_seconds_count{operation=\"GetEpisode\"} 4\n"));
  Result<testing::ParsedMetrics> parsed = testing::ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_NEAR(parsed->Value("engram_op_duration_seconds_sum", {{"operation", "GetEpisode"}}), 20.0077, 1e-9);
  // Every bucket line, in order, never decreases (the parser checks it too).
  EXPECT_EQ(parsed->families["engram_op_duration_seconds"].samples.size(), kLatencyBucketsMs.size() + 1 + 2);
}

TEST(PrometheusParserTest, RejectsWhatTheFormatForbids) {
  // The test parser must itself catch mistakes, or the checks above prove nothing.
  EXPECT_FALSE(testing::ParsePrometheusText("engram_x 1\n").ok());  // no TYPE
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a counter\n# TYPE a counter\na 1\n").ok());
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n").ok());
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE a counter\na{x=\"\\q\"} 1\n").ok());
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                                            "h_sum 1\nh_count 1\n")
                   .ok());
  EXPECT_FALSE(testing::ParsePrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").ok());
  EXPECT_TRUE(testing::ParsePrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
                                           "h_sum 1\nh_count 1\n")
                  .ok());
}

}  // namespace
}  // namespace engram
