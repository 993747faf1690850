// Writes metrics in the Prometheus text exposition format, version 0.0.4 (served by
// GET /metrics, DESIGN §9): per family one `# HELP` and one `# TYPE` line, then its
// samples; label values and help text escaped as the format requires.
//
//   PrometheusWriter w;
//   w.Counter("engram_tool_calls_total", "Tool calls by tool and status", {{"tool", "x"}, {"status", "ok"}}, 3);
//   w.Histogram("engram_tool_call_duration_seconds", "...", {{"tool", "x"}}, histogram);
//   std::string body = w.Text();
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/histogram.h"

namespace engram {

// The content type of Text(), for the HTTP response.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// Label name → value, in the order written. Names must match [a-zA-Z_][a-zA-Z0-9_]*
// (our own constants); values are any text and are escaped.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Collects samples family by family. Samples of one family may be added at any time:
// Text() groups them under the family's single HELP/TYPE header, families in the order
// they were first used. A family name must be a valid metric name and keep one type and
// help text (a programming error otherwise: ENGRAM_CHECK). Not thread-safe: owned by one
// thread.
class PrometheusWriter {
 public:
  // Writes the family's HELP and TYPE even if no sample follows, so a scraper knows a
  // labelled family (calls by tool) before its first sample.
  void Declare(std::string_view name, std::string_view help, MetricType type) { FamilyFor(name, help, type); }
  void Counter(std::string_view name, std::string_view help, const MetricLabels& labels, double value);
  void Gauge(std::string_view name, std::string_view help, const MetricLabels& labels, double value);
  // A latency histogram exported in seconds (Prometheus' base unit): cumulative
  // `name_bucket{le="…"}` lines ending with le="+Inf", then `name_sum` and `name_count`.
  void Histogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                 const LatencyHistogram& histogram);

  std::string Text() const;

 private:
  struct Family {
    std::string name;
    std::string help;
    MetricType type;
    std::string samples;  // complete lines
  };
  Family& FamilyFor(std::string_view name, std::string_view help, MetricType type);
  static void AppendSample(std::string& out, std::string_view name, const MetricLabels& labels, double value);

  std::vector<Family> families_;
  std::map<std::string, size_t, std::less<>> index_;  // name → families_ index
};

// The label value as written between quotes: backslash, double quote and line feed
// escaped as \\, \" and \n.
std::string EscapePrometheusLabelValue(std::string_view value);

// A sample value: integers without a fraction ("42"), others in the shortest form that
// reads back exactly ("0.0025"), and "+Inf", "-Inf", "NaN".
std::string FormatPrometheusValue(double value);

}  // namespace engram
