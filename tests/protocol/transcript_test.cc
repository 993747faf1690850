// Runs the protocol transcripts in tests/protocol/*.jsonl against an in-process MCP
// server with every built-in tool over a fresh SQLite store (DuckDB-style: most
// protocol coverage is data, not C++).
//
// Transcript format, one JSON value per line:
//   # comment            ignored, as are blank lines
//   > {request}          sent to the session (a line that is not valid JSON after "> " is
//                        sent as raw text, to test parse errors)
//   < {expected}         the next message the session produced, matched as a pattern
//   < none               the last message sent produced nothing (notifications, responses)
// Patterns: objects match when every expected key matches (extra keys are allowed);
// arrays match element by element with equal length; "<any>" matches any value,
// "<string>" / "<number>" / "<object>" / "<array>" a value of that type, and a string
// "<contains>text" a string containing text. Saved values: "<save:NAME>" stores the
// actual value and "$NAME" in a later line is replaced by it.
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/event_bus.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "mcp/server.h"
#include "retrieval/retriever.h"
#include "server/register_builtins.h"
#include "testing/temp_dir.h"

namespace engram::mcp {
namespace {

// Records everything the session sends besides responses.
class RecordingChannel final : public ClientChannel {
 public:
  bool Send(const Json& message) override {
    MutexLock lock(mu_);
    messages_.push_back(message);
    return true;
  }
  std::vector<Json> Take() {
    MutexLock lock(mu_);
    return std::exchange(messages_, {});
  }

 private:
  Mutex mu_;
  std::vector<Json> messages_ ENGRAM_GUARDED_BY(mu_);
};

class Matcher {
 public:
  // Empty string on a match, else where and why it differs.
  std::string Match(const Json& expected, const Json& actual, const std::string& path) {
    if (expected.is_string()) {
      const std::string& e = expected.get_ref<const std::string&>();
      if (e == "<any>") return "";
      if (e == "<string>") return actual.is_string() ? "" : path + ": expected a string";
      if (e == "<number>") return actual.is_number() ? "" : path + ": expected a number";
      if (e == "<object>") return actual.is_object() ? "" : path + ": expected an object";
      if (e == "<array>") return actual.is_array() ? "" : path + ": expected an array";
      if (e.rfind("<save:", 0) == 0 && e.back() == '>') {
        saved_[e.substr(6, e.size() - 7)] = actual;
        return "";
      }
      if (e.rfind("<contains>", 0) == 0) {
        if (!actual.is_string()) return path + ": expected a string";
        return actual.get<std::string>().find(e.substr(10)) != std::string::npos
                   ? ""
                   : path + ": \"" + actual.get<std::string>() + "\" does not contain \"" + e.substr(10) + "\"";
      }
    }
    if (expected.is_object()) {
      if (!actual.is_object()) return path + ": expected an object, got " + Dump(actual);
      for (auto it = expected.begin(); it != expected.end(); ++it) {
        if (!actual.contains(it.key())) return path + "." + it.key() + ": missing in " + Dump(actual);
        std::string m = Match(*it, actual[it.key()], path + "." + it.key());
        if (!m.empty()) return m;
      }
      return "";
    }
    if (expected.is_array()) {
      if (!actual.is_array() || actual.size() != expected.size()) {
        return path + ": expected " + std::to_string(expected.size()) + " items, got " + Dump(actual);
      }
      for (size_t i = 0; i < expected.size(); ++i) {
        std::string m = Match(expected[i], actual[i], path + "[" + std::to_string(i) + "]");
        if (!m.empty()) return m;
      }
      return "";
    }
    return expected == actual ? "" : path + ": expected " + Dump(expected) + ", got " + Dump(actual);
  }

  std::string Substitute(std::string line) const {
    for (const auto& [name, value] : saved_) {
      std::string token = "$" + name;
      std::string replacement = value.is_string() ? value.get<std::string>() : Dump(value);
      for (size_t pos; (pos = line.find(token)) != std::string::npos;) line.replace(pos, token.size(), replacement);
    }
    return line;
  }

 private:
  std::map<std::string, Json> saved_;
};

std::vector<std::string> TranscriptFiles() {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(ENGRAM_TRANSCRIPT_DIR)) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class TranscriptTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TranscriptTest, Runs) {
  testing::TempDir dir;
  SqliteOptions options;
  options.path = dir.File("memory.db");
  auto store = OpenSqliteBackend(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EventBus events;
  Memory memory(**store, SystemClock(), &events);
  ServerOptions server_options;
  server_options.version = "test";
  server_options.instructions = server::kInstructions;
  server_options.page_size = 3;  // small pages so transcripts exercise cursors
  McpServer server(server_options);
  Retriever retriever(**store, SystemClock(), nullptr, nullptr, RankingOptions{});
  ASSERT_TRUE(server::RegisterBuiltins(server, {.memory = memory, .storage = **store, .retriever = retriever,
                                                .events = &events})
                  .ok());
  auto session = server.NewSession(Principal{});
  RecordingChannel channel;

  std::ifstream in(std::string(ENGRAM_TRANSCRIPT_DIR) + "/" + GetParam());
  ASSERT_TRUE(in) << GetParam();
  Matcher matcher;
  std::vector<Json> produced;  // messages not yet matched
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    const std::string where = GetParam() + ":" + std::to_string(number);
    if (line.rfind("> ", 0) == 0) {
      ASSERT_TRUE(produced.empty()) << where << ": unmatched output before this request: " << Dump(produced[0]);
      std::string text = matcher.Substitute(line.substr(2));
      std::optional<Json> reply = session->HandleText(text, channel);
      produced = channel.Take();
      if (reply) produced.push_back(*reply);
    } else if (line == "< none") {
      EXPECT_TRUE(produced.empty()) << where << ": expected nothing, got " << Dump(produced[0]);
      produced.clear();
    } else if (line.rfind("< ", 0) == 0) {
      std::optional<Json> expected = ParseJson(matcher.Substitute(line.substr(2)));
      ASSERT_TRUE(expected) << where << ": the expected line is not JSON";
      ASSERT_FALSE(produced.empty()) << where << ": expected " << line.substr(2) << ", got nothing";
      std::string mismatch = matcher.Match(*expected, produced.front(), "message");
      EXPECT_EQ(mismatch, "") << where;
      produced.erase(produced.begin());
    } else {
      FAIL() << where << ": lines start with \"> \", \"< \" or \"#\"";
    }
  }
  EXPECT_TRUE(produced.empty()) << GetParam() << ": unmatched output at the end: " << Dump(produced[0]);
}

INSTANTIATE_TEST_SUITE_P(Protocol, TranscriptTest, ::testing::ValuesIn(TranscriptFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(0, info.param.size() - 6);
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace engram::mcp
