#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "common/strings.h"

namespace engram {
namespace {

std::atomic<bool> g_json{false};

spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("engram", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_level(spdlog::level::info);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    g_json = isatty(STDERR_FILENO) == 0;
    if (g_json) l->set_pattern("%v");
    return l;
  }();
  return *logger;
}

spdlog::level::level_enum ToSpd(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "info";
}

}  // namespace

Result<LogLevel> ParseLogLevel(std::string_view text) {
  std::string t = AsciiLower(text);
  if (t == "trace") return LogLevel::kTrace;
  if (t == "debug") return LogLevel::kDebug;
  if (t == "info") return LogLevel::kInfo;
  if (t == "warn" || t == "warning") return LogLevel::kWarn;
  if (t == "error") return LogLevel::kError;
  if (t == "off") return LogLevel::kOff;
  return InvalidArgumentError("unknown log level \"" + std::string(text) +
                              "\" (expected trace, debug, info, warn, error or off)");
}

Result<LogFormat> ParseLogFormat(std::string_view text) {
  std::string t = AsciiLower(text);
  if (t == "auto") return LogFormat::kAuto;
  if (t == "text") return LogFormat::kText;
  if (t == "json") return LogFormat::kJson;
  return InvalidArgumentError("unknown log format \"" + std::string(text) +
                              "\" (expected auto, text or json)");
}

void InitLogging(LogLevel level, LogFormat format) {
  spdlog::logger& l = Logger();
  l.set_level(ToSpd(level));
  bool json = format == LogFormat::kJson || (format == LogFormat::kAuto && isatty(STDERR_FILENO) == 0);
  g_json = json;
  if (json) {
    l.set_pattern("%v");
  } else {
    l.set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
}

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  spdlog::logger& l = Logger();
  if (!l.should_log(ToSpd(level))) return;
  std::string line;
  if (g_json) {
    // The timestamp is ours so the line is one JSON object with no prefix.
    line = "{\"ts\":\"" + UtcNowIso8601() + "\",\"level\":\"" + std::string(LevelName(level)) +
           "\",\"msg\":" + JsonQuote(message);
    for (const auto& [key, value] : fields) line += "," + JsonQuote(key) + ":" + JsonQuote(value);
    line += "}";
  } else {
    line = std::string(message);
    for (const auto& [key, value] : fields) {
      line += " ";
      line += key;
      line += "=";
      line += value;
    }
  }
  l.log(ToSpd(level), "{}", line);
}

}  // namespace engram
