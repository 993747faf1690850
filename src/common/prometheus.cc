#include "common/prometheus.h"

#include <charconv>
#include <cmath>

#include "common/check.h"

namespace engram {
namespace {

bool IsMetricNameChar(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool IsValidName(std::string_view name, bool label) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (label && name[i] == ':') return false;
    if (!IsMetricNameChar(name[i], i == 0)) return false;
  }
  return true;
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// Backslash and line feed become \\ and \n; with `quotes` (label values, not HELP text)
// a double quote becomes \" too.
std::string Escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapePrometheusLabelValue(std::string_view value) { return Escape(value, /*quotes=*/true); }

std::string FormatPrometheusValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  // Counts up to 2^53 are exact doubles; print them as integers.
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), static_cast<long long>(value));
    return std::string(buffer, end);
  }
  // Plain decimals where they stay short ("0.0005", not the shorter "5e-04"): bucket
  // bounds read as they are written in the code.
  double magnitude = std::fabs(value);
  auto [end, ec] = magnitude >= 1e-6 && magnitude < 1e15
                       ? std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed)
                       : std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

PrometheusWriter::Family& PrometheusWriter::FamilyFor(std::string_view name, std::string_view help,
                                                      MetricType type) {
  ENGRAM_CHECK(IsValidName(name, /*label=*/false));
  auto it = index_.find(name);
  if (it != index_.end()) {
    Family& family = families_[it->second];
    ENGRAM_CHECK(family.type == type && family.help == help);
    return family;
  }
  index_.emplace(std::string(name), families_.size());
  families_.push_back(Family{std::string(name), std::string(help), type, ""});
  return families_.back();
}

void PrometheusWriter::AppendSample(std::string& out, std::string_view name, const MetricLabels& labels,
                                    double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      ENGRAM_CHECK(IsValidName(labels[i].first, /*label=*/true));
      if (i > 0) out += ',';
      out += labels[i].first;
      out += "=\"";
      out += EscapePrometheusLabelValue(labels[i].second);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += FormatPrometheusValue(value);
  out += '\n';
}

void PrometheusWriter::Counter(std::string_view name, std::string_view help, const MetricLabels& labels,
                               double value) {
  AppendSample(FamilyFor(name, help, MetricType::kCounter).samples, name, labels, value);
}

void PrometheusWriter::Gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                             double value) {
  AppendSample(FamilyFor(name, help, MetricType::kGauge).samples, name, labels, value);
}

void PrometheusWriter::Histogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                                 const LatencyHistogram& histogram) {
  std::string& out = FamilyFor(name, help, MetricType::kHistogram).samples;
  const std::string base(name);
  MetricLabels with_le = labels;
  with_le.emplace_back("le", "");
  int64_t cumulative = 0;
  for (size_t i = 0; i < histogram.buckets.size(); ++i) {
    cumulative += histogram.buckets[i];
    with_le.back().second = i < kLatencyBucketsMs.size() ? FormatPrometheusValue(kLatencyBucketsMs[i] / 1000.0)
                                                         : std::string("+Inf");
    AppendSample(out, base + "_bucket", with_le, static_cast<double>(cumulative));
  }
  AppendSample(out, base + "_sum", labels, histogram.sum_ms / 1000.0);
  AppendSample(out, base + "_count", labels, static_cast<double>(histogram.count));
}

std::string PrometheusWriter::Text() const {
  std::string out;
  for (const Family& family : families_) {
    out += "# HELP " + family.name + " " + Escape(family.help, /*quotes=*/false) + "\n";
    out += "# TYPE " + family.name + " " + std::string(TypeName(family.type)) + "\n";
    out += family.samples;
  }
  return out;
}

}  // namespace engram
