// Checks shared by the reliability tests on what engram_test_writer wrote.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include <sqlite3.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engram/types.h"

extern "C" char** environ;

namespace engram {

// Starts engram_test_writer with `args`, its file descriptors set up by `actions`.
// Returns its pid, or -1.
inline pid_t SpawnTestWriter(const std::vector<std::string>& args, const posix_spawn_file_actions_t* actions) {
  std::string program = ENGRAM_TEST_WRITER;
  std::vector<std::string> owned = args;
  std::vector<char*> argv{program.data()};
  for (std::string& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), actions, nullptr, argv.data(), environ);
  return rc == 0 ? pid : -1;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "ok", or what SQLite's integrity check found wrong, read with the C API so the check
// does not depend on the backend under test.
inline std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string error = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return "cannot open: " + error;
  }
  std::string result;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    result = std::string("cannot prepare: ") + sqlite3_errmsg(db);
  } else {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (!result.empty()) result += "\n";
      result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    if (rc != SQLITE_DONE) result += std::string("\nstep failed: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

inline bool HasTag(const Episode& e, const std::string& tag) {
  for (const std::string& t : e.tags) {
    if (t == tag) return true;
  }
  return false;
}

// The episode is exactly what engram_test_writer --tag `tag` writes: complete, all its
// steps in order with their content, a reward and a reflection.
inline ::testing::AssertionResult IsIntact(const Episode& e, const std::string& tag, int steps) {
  const std::string prefix = "writer " + tag + " episode ";
  if (e.task_description.rfind(prefix, 0) != 0) {
    return ::testing::AssertionFailure() << e.episode_id << ": task_description \"" << e.task_description
                                         << "\" is not from writer " << tag;
  }
  const std::string index = e.task_description.substr(prefix.size());
  if (!HasTag(e, "writer:" + tag)) return ::testing::AssertionFailure() << e.episode_id << ": no tag writer:" << tag;
  if (!e.completed()) return ::testing::AssertionFailure() << e.episode_id << ": not completed";
  if (!e.end_time) return ::testing::AssertionFailure() << e.episode_id << ": no end_time";
  if (!e.reward) return ::testing::AssertionFailure() << e.episode_id << ": no reward";
  if (!e.reflection) return ::testing::AssertionFailure() << e.episode_id << ": no reflection";
  if (e.outcome->verdict != "done " + tag + "/" + index) {
    return ::testing::AssertionFailure() << e.episode_id << ": outcome verdict \"" << e.outcome->verdict << "\"";
  }
  if (static_cast<int>(e.steps.size()) != steps) {
    return ::testing::AssertionFailure() << e.episode_id << ": " << e.steps.size() << " steps, expected " << steps;
  }
  for (int j = 1; j <= steps; ++j) {
    const Step& s = e.steps[j - 1];
    const std::string action = tag + "/" + index + "/step " + std::to_string(j);
    if (s.step_number != j || s.action != action || !s.Succeeded() || s.result->output != "ok " + action) {
      return ::testing::AssertionFailure() << e.episode_id << ": step " << j << " is #" << s.step_number << " \""
                                           << s.action << "\", expected \"" << action << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

// The lines of `text`.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Starts engram_test_writer with stdout and stderr sent to files. Returns its pid, or -1.
inline pid_t SpawnWriter(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = SpawnTestWriter(args, &actions);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

}  // namespace engram
