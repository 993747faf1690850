// Structured logging to stderr (never stdout: stdout may carry protocol messages).
// Text on a terminal, JSON lines otherwise or when asked. spdlog stays inside
// logging.cc so this header is cheap to include.
//
//   LogInfo("episode completed", {{"episode_id", id}, {"reward", "0.93"}});
//
// Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "engram/result.h"

namespace engram {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };
enum class LogFormat { kAuto, kText, kJson };

Result<LogLevel> ParseLogLevel(std::string_view text);
Result<LogFormat> ParseLogFormat(std::string_view text);

// Configures the process's logger; may be called again to change it (config reload).
void InitLogging(LogLevel level, LogFormat format);

using LogField = std::pair<std::string_view, std::string>;

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});
inline void LogDebug(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kDebug, m, f);
}
inline void LogInfo(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarn(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kWarn, m, f);
}
inline void LogError(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kError, m, f);
}

}  // namespace engram
