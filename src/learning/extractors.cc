// The four built-in extractors and the registry. learning.h's file comment is the
// specification of what each one extracts.
#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "common/strings.h"
#include "core/reward.h"  // StepRecovery
#include "learning/internal.h"
#include "learning/learning.h"
#include "model/search_text.h"

namespace engram {
namespace learning_internal {

bool EpisodeSucceeded(const Episode& episode) {
  return episode.outcome.has_value() && episode.outcome->kind == OutcomeKind::kSuccess;
}

std::string NormaliseTool(std::string_view tool) {
  std::string out;
  bool pending_space = false;
  for (char ch : StripAsciiWhitespace(tool)) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c) != 0 || ch == '|') {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out.push_back('_');
    pending_space = false;
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  return out.empty() ? "unknown" : out;
}

std::string NormaliseScopePart(std::string_view part) {
  std::string out = AsciiLower(StripAsciiWhitespace(part));
  for (char& c : out) {
    if (c == '|' || c == ',') c = '_';
  }
  return out.empty() ? "-" : out;
}

std::vector<SearchWord> SearchWordsOf(std::string_view text) {
  std::vector<SearchWord> out;
  std::string word;
  // Words are cut as ForEachSearchToken cuts them; each whole word then goes through it
  // alone, so the stop words and the stemming stay those of model/search_text.
  auto flush = [&] {
    if (word.empty()) return;
    ForEachSearchToken(word, [&](const std::string& key) { out.push_back({word, key}); });
    word.clear();
  };
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      word.push_back(ch);
    } else if (c >= 'A' && c <= 'Z') {
      word.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      flush();
    }
  }
  flush();
  return out;
}

std::string SearchKeyOf(const std::string& word) {
  std::string key = word;
  bool found = false;
  ForEachSearchToken(word, [&](const std::string& k) {
    if (found) return;
    key = k;
    found = true;
  });
  return key;
}

std::vector<SearchWord> ActionWords(std::string_view action) {
  std::vector<SearchWord> words;
  for (SearchWord& w : SearchWordsOf(action)) {
    if (words.size() >= kMaxActionKeyWords) break;
    if (std::any_of(w.key.begin(), w.key.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    words.push_back(std::move(w));
  }
  return words;
}

std::vector<std::string> Keys(const std::vector<SearchWord>& words) {
  std::vector<std::string> out;
  for (const SearchWord& w : words) out.push_back(w.key);
  return out;
}

std::vector<std::string> Displays(const std::vector<SearchWord>& words) {
  std::vector<std::string> out;
  for (const SearchWord& w : words) out.push_back(w.display);
  return out;
}

std::string Join(const std::vector<std::string>& words, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += sep;
    out += words[i];
  }
  return out;
}

nlohmann::json ParseBody(std::string_view body_json) {
  nlohmann::json j = nlohmann::json::parse(body_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return nlohmann::json::object();
  return j;
}

std::string_view StepOutcomeName(const Step& step) {
  if (!step.result.has_value()) return "none";
  return StepStatusName(step.result->status);
}

}  // namespace learning_internal

namespace {

using namespace learning_internal;

// A run of consecutive steps with the same (normalised) tool.
struct ToolRun {
  std::string tool;
  std::string action;  // action words of the run's first step, as written
  size_t first = 0;    // index of its first step
};

std::vector<ToolRun> CollapseRuns(const std::vector<Step>& steps) {
  std::vector<ToolRun> runs;
  for (size_t i = 0; i < steps.size(); ++i) {
    std::string tool = NormaliseTool(steps[i].tool);
    if (!runs.empty() && runs.back().tool == tool) continue;
    runs.push_back({std::move(tool), Join(Displays(ActionWords(steps[i].action)), " "), i});
  }
  return runs;
}

std::optional<double> MeanLatency(const std::vector<Step>& steps, size_t begin, size_t end) {
  double sum = 0;
  size_t n = 0;
  for (size_t i = begin; i < end && i < steps.size(); ++i) {
    if (steps[i].latency_ms.has_value()) {
      sum += static_cast<double>(*steps[i].latency_ms);
      ++n;
    }
  }
  if (n == 0) return std::nullopt;
  return sum / static_cast<double>(n);
}

PatternObservation Base(const Episode& episode, PatternType type, std::string scope,
                        std::vector<std::string> signature) {
  PatternObservation o;
  o.type = type;
  o.scope = std::move(scope);
  o.signature = std::move(signature);
  o.similarity_key = std::string(PatternTypeName(type)) + "|" + o.scope + "|" + Join(o.signature, " ");
  o.context = episode.context;
  o.task_type = episode.task_type;
  o.episode_id = episode.episode_id;
  std::vector<std::string> task_keys;
  for (SearchWord& w : SearchWordsOf(episode.task_description)) {
    if (std::find(task_keys.begin(), task_keys.end(), w.key) != task_keys.end()) continue;
    task_keys.push_back(std::move(w.key));
    o.task_words.push_back(std::move(w.display));
  }
  o.success = EpisodeSucceeded(episode);
  return o;
}

std::string ToolAction(std::string_view tool, std::string_view action) {
  std::string out(tool);
  if (!action.empty()) {
    out += " '";
    out += action;
    out += "'";
  }
  return out;
}

class ToolSequenceExtractor final : public PatternExtractor {
 public:
  std::string_view Name() const override { return "tool_sequence"; }
  std::vector<PatternObservation> Extract(const Episode& episode) const override {
    const std::vector<ToolRun> all_runs = CollapseRuns(episode.steps);
    if (all_runs.size() < kMinToolSequenceLength) return {};
    std::vector<ToolRun> runs(all_runs.begin(),
                              all_runs.begin() + static_cast<std::ptrdiff_t>(std::min(all_runs.size(), kMaxToolSequenceLength)));
    std::vector<std::string> tools;
    nlohmann::json actions = nlohmann::json::array();
    for (const ToolRun& r : runs) {
      tools.push_back(r.tool);
      actions.push_back(r.action);
    }
    PatternObservation o =
        Base(episode, PatternType::kToolSequence, NormaliseScopePart(episode.context.domain), tools);
    o.description = "Tool sequence: " + Join(tools, " → ");
    o.body_json = nlohmann::json{{"tools", tools}, {"actions", actions}}.dump();
    // The steps the sequence covers: up to the first step after the last kept run.
    const size_t end = all_runs.size() > runs.size() ? all_runs[runs.size()].first : episode.steps.size();
    o.latency_ms = MeanLatency(episode.steps, 0, end);
    return {std::move(o)};
  }
};

// The word forms that make a step a check (decision_point). Whole words only.
// "assertion" is left out on purpose: it names what failed ("fix assertion"), not a check.
constexpr std::array<std::string_view, 37> kCheckWords{{
    "check",    "checks",     "checking",  "checked",   "verify",    "verifies",  "verified",  "verifying",
    "verification", "validate", "validates", "validated", "validating", "validation", "test", "tests",
    "testing",  "tested",     "assert",    "asserts",   "lint",      "linting",   "linter",
    "inspect",  "inspecting", "inspection", "confirm",  "confirms",  "confirming", "ensure",   "ensures",
    "review",   "reviewing",  "typecheck", "probe",     "audit",     "compare",
}};

// The lower-cased whole words of `text` (letters, digits; everything else separates).
std::vector<std::string> PlainWords(std::string_view text) {
  std::vector<std::string> words;
  std::string w;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0) {
      w.push_back(static_cast<char>(std::tolower(c)));
    } else if (!w.empty()) {
      words.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) words.push_back(std::move(w));
  return words;
}

bool IsCheckStep(const Step& step) {
  for (std::string_view text : {std::string_view(step.tool), std::string_view(step.action)}) {
    for (const std::string& w : PlainWords(text)) {
      if (IsCheckWord(w)) return true;
    }
  }
  return false;
}

class DecisionPointExtractor final : public PatternExtractor {
 public:
  std::string_view Name() const override { return "decision_point"; }
  std::vector<PatternObservation> Extract(const Episode& episode) const override {
    std::vector<PatternObservation> out;
    const std::vector<Step>& steps = episode.steps;
    for (size_t i = 0; i + 1 < steps.size(); ++i) {
      if (!IsCheckStep(steps[i])) continue;
      const Step& check = steps[i];
      const Step& next = steps[i + 1];
      std::string check_tool = NormaliseTool(check.tool);
      const std::vector<SearchWord> check_words = ActionWords(check.action);
      std::string action_tool = NormaliseTool(next.tool);
      const std::vector<SearchWord> action_words = ActionWords(next.action);
      const bool check_passed = check.Succeeded();
      std::vector<std::string> signature{check_tool};
      for (const SearchWord& w : check_words) signature.push_back(w.key);
      signature.push_back(check_passed ? "passes" : "fails");
      signature.push_back("->");
      signature.push_back(action_tool);
      for (const SearchWord& w : action_words) signature.push_back(w.key);

      PatternObservation o =
          Base(episode, PatternType::kDecisionPoint, NormaliseScopePart(episode.context.domain), signature);
      o.success = o.success && next.Succeeded();
      std::string check_action = Join(Displays(check_words), " ");
      std::string action = Join(Displays(action_words), " ");
      o.description = "When " + ToolAction(check_tool, check_action) + (check_passed ? " passes" : " fails") +
                      ", then " + ToolAction(action_tool, action);
      o.body_json = nlohmann::json{{"check",
                                    {{"tool", check_tool},
                                     {"action", check_action},
                                     {"result", std::string(StepOutcomeName(check))}}},
                                   {"action", {{"tool", action_tool}, {"action", action}}},
                                   {"result", std::string(StepOutcomeName(next))}}
                        .dump();
      o.latency_ms = MeanLatency(steps, i, i + 2);
      out.push_back(std::move(o));
    }
    return out;
  }
};

// Failed steps (the first of a run of failures of one tool) and where their recovery ends:
// the next success of the same tool within kMaxRecoverySteps, else the next step when it
// succeeded (core/reward.h's first rule). Unrecovered failures are left out.
std::vector<StepRecovery> FindRecoveries(const std::vector<Step>& steps) {
  std::vector<StepRecovery> out;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].Succeeded()) continue;
    const std::string tool = NormaliseTool(steps[i].tool);
    if (i > 0 && !steps[i - 1].Succeeded() && NormaliseTool(steps[i - 1].tool) == tool) continue;
    std::optional<size_t> end;
    for (size_t j = i + 1; j < steps.size() && j <= i + kMaxRecoverySteps; ++j) {
      if (steps[j].Succeeded() && NormaliseTool(steps[j].tool) == tool) {
        end = j;
        break;
      }
    }
    if (!end.has_value() && i + 1 < steps.size() && steps[i + 1].Succeeded()) end = i + 1;
    if (end.has_value()) out.push_back({i, *end});
  }
  return out;
}

class ErrorRecoveryExtractor final : public PatternExtractor {
 public:
  std::string_view Name() const override { return "error_recovery"; }
  std::vector<PatternObservation> Extract(const Episode& episode) const override {
    std::vector<PatternObservation> out;
    const std::vector<Step>& steps = episode.steps;
    for (const StepRecovery& r : FindRecoveries(steps)) {
      const Step& failed = steps[r.failed_index];
      std::string error_tool = NormaliseTool(failed.tool);
      std::string message;
      if (failed.result.has_value()) {
        if (failed.result->message.has_value() && !failed.result->message->empty()) {
          message = *failed.result->message;
        } else if (failed.result->output.has_value()) {
          message = failed.result->output->substr(0, kIndexedOutputBytes);
        }
      }
      std::vector<SearchWord> error_words;
      for (SearchWord& w : SearchWordsOf(message)) {
        if (error_words.size() >= kMaxErrorSignatureWords) break;
        if (std::any_of(w.key.begin(), w.key.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        error_words.push_back(std::move(w));
      }
      if (error_words.empty()) {
        std::string outcome(StepOutcomeName(failed));
        error_words.push_back({outcome, outcome});
      }

      size_t end = std::min(r.recovered_by_index + 1, r.failed_index + 1 + kMaxRecoverySteps);
      std::vector<std::string> recovery_tools;
      nlohmann::json recovery = nlohmann::json::array();
      for (size_t i = r.failed_index + 1; i < end; ++i) {
        std::string tool = NormaliseTool(steps[i].tool);
        std::string action = Join(Displays(ActionWords(steps[i].action)), " ");
        recovery.push_back({{"tool", tool}, {"action", action}});
        recovery_tools.push_back(std::move(tool));
      }
      std::vector<std::string> signature{error_tool};
      for (const SearchWord& w : error_words) signature.push_back(w.key);
      signature.push_back("->");
      signature.insert(signature.end(), recovery_tools.begin(), recovery_tools.end());

      PatternObservation o =
          Base(episode, PatternType::kErrorRecovery, NormaliseScopePart(episode.context.domain), signature);
      std::string error = Join(Displays(error_words), " ");
      std::string error_action = Join(Displays(ActionWords(failed.action)), " ");
      o.description = "When " + ToolAction(error_tool, error_action) + " fails (" + error + "), recover with " +
                      Join(recovery_tools, " → ");
      o.body_json = nlohmann::json{{"error_tool", error_tool},
                                   {"error_action", error_action},
                                   {"error", error},
                                   {"error_message", Ellipsize(message, kMaxErrorMessageChars)},
                                   {"recovery", recovery}}
                        .dump();
      o.latency_ms = MeanLatency(steps, r.failed_index + 1, end);
      out.push_back(std::move(o));
    }
    return out;
  }
};

class ContextPatternExtractor final : public PatternExtractor {
 public:
  std::string_view Name() const override { return "context_pattern"; }
  std::vector<PatternObservation> Extract(const Episode& episode) const override {
    std::vector<std::string> approach;
    for (const Step& s : episode.steps) {
      std::string tool = NormaliseTool(s.tool);
      if (std::find(approach.begin(), approach.end(), tool) != approach.end()) continue;
      if (approach.size() >= kMaxToolSequenceLength) break;
      approach.push_back(std::move(tool));
    }
    if (approach.empty()) return {};
    const TaskContext& c = episode.context;
    std::string domain = NormaliseScopePart(c.domain);
    std::string language = NormaliseScopePart(c.language.value_or(""));
    std::string framework = NormaliseScopePart(c.framework.value_or(""));
    std::string complexity(ComplexityName(c.complexity));
    std::string task_type(TaskTypeName(episode.task_type));
    std::string scope = Join({domain, language, framework, complexity, task_type}, ",");
    PatternObservation o = Base(episode, PatternType::kContextPattern, scope, approach);
    nlohmann::json features = {{"domain", domain}, {"complexity", complexity}, {"task_type", task_type}};
    std::string stack;
    if (c.language.has_value()) {
      features["language"] = language;
      stack = language;
    }
    if (c.framework.has_value()) {
      features["framework"] = framework;
      stack += stack.empty() ? framework : "/" + framework;
    }
    o.description = "For " + (stack.empty() ? std::string() : stack + " ") + task_type + " in " + domain + " (" +
                    complexity + "): " + Join(approach, ", ");
    o.body_json = nlohmann::json{{"features", features}, {"approach", approach}}.dump();
    o.latency_ms = MeanLatency(episode.steps, 0, episode.steps.size());
    return {std::move(o)};
  }
};

}  // namespace

bool IsCheckWord(std::string_view word) {
  return std::find(kCheckWords.begin(), kCheckWords.end(), word) != kCheckWords.end();
}

Status ExtractorRegistry::Register(std::unique_ptr<PatternExtractor> extractor) {
  if (extractor == nullptr || extractor->Name().empty()) {
    return InvalidArgumentError("extractor: null or unnamed");
  }
  if (Find(extractor->Name()) != nullptr) {
    return AlreadyExistsError("extractor " + std::string(extractor->Name()) + " is already registered");
  }
  extractors_.push_back(std::move(extractor));
  return OkStatus();
}

const PatternExtractor* ExtractorRegistry::Find(std::string_view name) const {
  for (const auto& e : extractors_) {
    if (e->Name() == name) return e.get();
  }
  return nullptr;
}

std::vector<const PatternExtractor*> ExtractorRegistry::All() const {
  std::vector<const PatternExtractor*> out;
  for (const auto& e : extractors_) out.push_back(e.get());
  return out;
}

std::unique_ptr<PatternExtractor> NewToolSequenceExtractor() { return std::make_unique<ToolSequenceExtractor>(); }
std::unique_ptr<PatternExtractor> NewDecisionPointExtractor() { return std::make_unique<DecisionPointExtractor>(); }
std::unique_ptr<PatternExtractor> NewErrorRecoveryExtractor() { return std::make_unique<ErrorRecoveryExtractor>(); }
std::unique_ptr<PatternExtractor> NewContextPatternExtractor() {
  return std::make_unique<ContextPatternExtractor>();
}

Status RegisterBuiltinExtractors(ExtractorRegistry& registry) {
  ENGRAM_RETURN_IF_ERROR(registry.Register(NewToolSequenceExtractor()));
  ENGRAM_RETURN_IF_ERROR(registry.Register(NewDecisionPointExtractor()));
  ENGRAM_RETURN_IF_ERROR(registry.Register(NewErrorRecoveryExtractor()));
  ENGRAM_RETURN_IF_ERROR(registry.Register(NewContextPatternExtractor()));
  return OkStatus();
}

std::vector<PatternObservation> ExtractObservations(const ExtractorRegistry& registry, const Episode& episode) {
  std::vector<PatternObservation> out;
  for (const PatternExtractor* e : registry.All()) {
    std::vector<PatternObservation> part = e->Extract(episode);
    for (PatternObservation& o : part) out.push_back(std::move(o));
  }
  return out;
}

std::optional<ParsedKey> ParseSimilarityKey(std::string_view key) {
  size_t a = key.find('|');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = key.find('|', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  Result<PatternType> type = ParsePatternType(key.substr(0, a));
  if (!type.ok()) return std::nullopt;
  ParsedKey parsed{*type, std::string(key.substr(a + 1, b - a - 1)), {}};
  std::string_view rest = key.substr(b + 1);
  size_t pos = 0;
  while (pos <= rest.size()) {
    size_t sp = rest.find(' ', pos);
    if (sp == std::string_view::npos) sp = rest.size();
    if (sp > pos) parsed.signature.emplace_back(rest.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return parsed;
}

}  // namespace engram
