// A strict parser of the Prometheus text exposition format 0.0.4, for tests that check
// what GET /metrics serves. It fails (returns the reason) on anything a Prometheus server
// would reject or that the format forbids: a sample before its family's TYPE, a second
// HELP or TYPE for one family, a family's samples split up, a malformed line, a bad
// escape, a histogram whose buckets are not cumulative or do not end with le="+Inf"
// equal to its _count.
//
//   Result<ParsedMetrics> m = ParsePrometheusText(body);
//   double ok = m->Value("engram_tool_calls_total", {{"tool", "echo"}, {"status", "ok"}});
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engram/result.h"
#include "engram/status.h"

namespace engram::testing {

struct ParsedSample {
  std::string name;                           // e.g. "engram_x_bucket"
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct ParsedFamily {
  std::string help;  // unescaped
  std::string type;  // counter, gauge, histogram, ...
  std::vector<ParsedSample> samples;
};

struct ParsedMetrics {
  std::map<std::string, ParsedFamily> families;

  // The value of the one sample named `name` with exactly these labels; nullopt if none.
  std::optional<double> Find(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [family_name, family] : families) {
      for (const ParsedSample& s : family.samples) {
        if (s.name == name && s.labels == labels) return s.value;
      }
    }
    return std::nullopt;
  }
  // As Find, but 0 when absent (a counter not yet created counts nothing).
  double Value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    return Find(name, labels).value_or(0);
  }
};

namespace prometheus_internal {

inline bool IsNameChar(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

// Reads a metric or label name at `pos`; empty if there is none.
inline std::string ReadName(std::string_view line, size_t& pos) {
  size_t start = pos;
  while (pos < line.size() && IsNameChar(line[pos], pos == start)) ++pos;
  return std::string(line.substr(start, pos - start));
}

inline std::optional<double> ParseValue(std::string_view text) {
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// The family a sample name belongs to: itself, or for histograms its base name.
inline std::string FamilyOf(const std::string& name, const std::map<std::string, ParsedFamily>& families) {
  if (families.count(name) != 0) return name;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      std::string base = name.substr(0, name.size() - suffix.size());
      auto it = families.find(base);
      if (it != families.end() && it->second.type == "histogram") return base;
    }
  }
  return "";
}

inline Status CheckHistogram(const std::string& name, const ParsedFamily& family) {
  // Group by the labels other than le.
  std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
  std::map<std::map<std::string, std::string>, double> counts;
  for (const ParsedSample& s : family.samples) {
    std::map<std::string, std::string> series = s.labels;
    if (s.name == name + "_bucket") {
      auto le = series.find("le");
      if (le == series.end()) return InvalidArgumentError(name + ": a bucket without le");
      std::optional<double> bound = ParseValue(le->second);
      if (!bound) return InvalidArgumentError(name + ": bad le \"" + le->second + "\"");
      series.erase(le);
      buckets[series].emplace_back(*bound, s.value);
    } else if (s.name == name + "_count") {
      counts[series] = s.value;
    } else if (s.name != name + "_sum") {
      return InvalidArgumentError(name + ": sample " + s.name + " in a histogram");
    }
  }
  if (buckets.size() != counts.size()) return InvalidArgumentError(name + ": series without _count or buckets");
  for (const auto& [series, list] : buckets) {
    for (size_t i = 1; i < list.size(); ++i) {
      if (!(list[i].first > list[i - 1].first)) return InvalidArgumentError(name + ": le not increasing");
      if (list[i].second < list[i - 1].second) return InvalidArgumentError(name + ": buckets not cumulative");
    }
    if (list.empty() || !std::isinf(list.back().first)) return InvalidArgumentError(name + ": no le=\"+Inf\" bucket");
    auto count = counts.find(series);
    if (count == counts.end() || count->second != list.back().second) {
      return InvalidArgumentError(name + ": +Inf bucket differs from _count");
    }
  }
  return OkStatus();
}

}  // namespace prometheus_internal

inline Result<ParsedMetrics> ParsePrometheusText(std::string_view text) {
  using namespace prometheus_internal;
  ParsedMetrics out;
  std::set<std::string> helped;
  std::string current;  // the family whose samples are being read
  std::set<std::string> finished;
  size_t line_no = 0;
  size_t pos = 0;
  if (!text.empty() && text.back() != '\n') return InvalidArgumentError("the last line has no line feed");
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto error = [&](const std::string& what) {
      return InvalidArgumentError("line " + std::to_string(line_no) + ": " + what + ": " + std::string(line));
    };
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      bool is_help = line[2] == 'H';
      size_t p = 7;
      std::string name = ReadName(line, p);
      if (name.empty() || p >= line.size() || line[p] != ' ') return error("bad comment");
      std::string rest(line.substr(p + 1));
      if (finished.count(name) != 0 || (current != name && out.families.count(name) != 0 &&
                                        !out.families[name].samples.empty())) {
        return error("family declared after its samples");
      }
      if (current != name && !current.empty()) finished.insert(current);
      current = name;
      ParsedFamily& family = out.families[name];
      if (is_help) {
        if (!helped.insert(name).second) return error("second HELP");
        std::string help;
        for (size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size()) {
            char n = rest[++i];
            if (n == 'n') {
              help += '\n';
            } else if (n == '\\') {
              help += '\\';
            } else {
              return error("bad escape in HELP");
            }
          } else {
            help += rest[i];
          }
        }
        family.help = help;
      } else {
        if (!family.type.empty()) return error("second TYPE");
        if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" && rest != "untyped") {
          return error("unknown type");
        }
        family.type = rest;
      }
      continue;
    }
    if (line.starts_with("#")) continue;  // other comments
    ParsedSample sample;
    size_t p = 0;
    sample.name = ReadName(line, p);
    if (sample.name.empty()) return error("no metric name");
    if (p < line.size() && line[p] == '{') {
      ++p;
      while (p < line.size() && line[p] != '}') {
        std::string label = ReadName(line, p);
        if (label.empty() || p + 1 >= line.size() || line[p] != '=' || line[p + 1] != '"') return error("bad label");
        p += 2;
        std::string value;
        bool closed = false;
        while (p < line.size()) {
          char c = line[p++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (p >= line.size()) return error("bad escape");
            char n = line[p++];
            if (n == 'n') {
              value += '\n';
            } else if (n == '\\' || n == '"') {
              value += n;
            } else {
              return error("bad escape");
            }
          } else {
            value += c;
          }
        }
        if (!closed) return error("unterminated label value");
        if (!sample.labels.emplace(label, value).second) return error("repeated label " + label);
        if (p < line.size() && line[p] == ',') ++p;
      }
      if (p >= line.size()) return error("unterminated labels");
      ++p;  // '}'
    }
    if (p >= line.size() || line[p] != ' ') return error("no value");
    std::string_view value_text = line.substr(p + 1);
    if (size_t space = value_text.find(' '); space != std::string_view::npos) {
      value_text = value_text.substr(0, space);  // a timestamp follows
    }
    std::optional<double> value = ParseValue(value_text);
    if (!value) return error("bad value");
    sample.value = *value;
    std::string family = FamilyOf(sample.name, out.families);
    if (family.empty() || out.families[family].type.empty()) return error("sample before its family's TYPE");
    if (family != current) return error("sample outside its family's group");
    for (const ParsedSample& seen : out.families[family].samples) {
      if (seen.name == sample.name && seen.labels == sample.labels) return error("repeated series");
    }
    out.families[family].samples.push_back(std::move(sample));
  }
  for (const auto& [name, family] : out.families) {
    if (family.type.empty()) return InvalidArgumentError(name + ": HELP without TYPE");
    if (family.type == "histogram") ENGRAM_RETURN_IF_ERROR(CheckHistogram(name, family));
  }
  return out;
}

}  // namespace engram::testing
