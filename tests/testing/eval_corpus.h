// bench/eval's corpus (366 episodes of real coding text) and queries, for tests that compare
// full-text rankings on it. REQUIRES: ENGRAM_SOURCE_DIR defined (the repository root).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "testing/episodes.h"

namespace engram::testing {

// Every line of the .jsonl files in bench/eval/<sub>, files in name order.
inline std::vector<nlohmann::json> ReadEvalJsonl(const std::string& sub) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(ENGRAM_SOURCE_DIR) / "bench" / "eval" / sub;
  std::vector<nlohmann::json> out;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    }
  }
  return out;
}

// A completed episode with only `title` and `body` as its words (MakeEpisode's context
// and tags would put the same words into every document).
inline Episode MakeSearchDoc(FakeClock& clock, const std::string& title, const std::string& body,
                             const std::string& domain) {
  clock.Advance(std::chrono::milliseconds(5));
  Episode e = MakeEpisode(clock, 0, domain);
  e.task_description = title;
  e.context.language.reset();
  e.context.framework.reset();
  e.context.tags.clear();
  e.tags.clear();
  Step s = MakeStep(1, "shell");
  s.action = body;
  s.result.reset();
  e.steps = {s};
  Episode done = Completed(e);
  done.reflection.reset();
  done.outcome->verdict.clear();
  return done;
}

// The corpus as completed episodes: task, domain, context, steps and verdict.
inline std::vector<Episode> EvalCorpusEpisodes(FakeClock& clock) {
  std::vector<Episode> episodes;
  for (const nlohmann::json& j : ReadEvalJsonl("corpus")) {
    Episode e = MakeSearchDoc(clock, j.at("task").get<std::string>(), "", j.value("domain", "general"));
    e.context.language = j.value("language", "");
    e.context.framework = j.value("framework", "");
    e.context.tags = j.value("tags", std::vector<std::string>{});
    e.steps.clear();
    int n = 0;
    for (const nlohmann::json& js : j.value("steps", nlohmann::json::array())) {
      Step step = MakeStep(++n, js.value("tool", "bash"));
      step.action = js.value("action", "");
      step.result->status = js.value("status", "success") == "success" ? StepStatus::kSuccess : StepStatus::kError;
      step.result->output = js.value("output", "");
      if (js.contains("message")) step.result->message = js.value("message", "");
      e.steps.push_back(step);
    }
    e.outcome->verdict = j.contains("outcome") ? j["outcome"].value("verdict", "") : "";
    episodes.push_back(std::move(e));
  }
  return episodes;
}

}  // namespace engram::testing
