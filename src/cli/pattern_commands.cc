// `engram pattern list|show|search|recommend|playbook|decay|reextract`: the learned
// patterns (learning/learning.h) for people, or --json for scripts. decay and reextract
// write: decay stores the new weights it prints, reextract rebuilds every pattern from the
// stored episodes.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "learning/learning.h"
#include "model/episode_json.h"
#include "model/pattern_json.h"
#include "server/open_learning.h"

namespace engram::cli {
namespace {

using nlohmann::json;

struct ListArgs {
  std::optional<std::string> type, domain;
  std::optional<double> min_success;
  size_t limit = 50;
};

struct SearchArgs {
  std::string query;
  std::optional<std::string> domain, type;
  size_t limit = 10;
  bool all = false;
};

struct TaskArgs {
  std::string task;
  std::optional<std::string> domain, language, framework, episode;
  size_t limit = kDefaultRecommendLimit;
  size_t max_steps = kDefaultPlaybookSteps;
};

std::string Fixed(double v, int digits = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// What the commands share: the store, its clock and the configured learning options.
struct Learning {
  StorageBackend* storage = nullptr;
  Clock* clock = nullptr;
  LearningOptions options;
  const Config* config = nullptr;
};

Result<Learning> OpenLearning(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  Learning l;
  l.storage = &memory->storage();
  l.clock = &memory->clock();
  l.options = server::LearningOptionsFromConfig(*config);
  l.config = config;
  return l;
}

Result<std::optional<PatternType>> ParseTypeFlag(const std::optional<std::string>& type) {
  if (!type) return std::optional<PatternType>();
  Result<PatternType> t = ParsePatternType(*type);
  if (!t.ok()) return t.status().WithContext("--type");
  return std::optional<PatternType>(*t);
}

// A hint for an empty result: episodes completed outside `engram serve` wait for it (or
// for `engram pattern reextract`) before they teach anything.
void PrintPendingHint(StorageBackend& storage) {
  Result<std::vector<std::string>> pending = storage.PendingExtraction(1);
  if (pending.ok() && !pending->empty()) {
    std::cout << "Completed episodes are waiting for pattern extraction: `engram serve` extracts them, or run "
                 "`engram pattern reextract`.\n";
  }
}

json Summary(const Pattern& p) {
  return {{"pattern_id", p.pattern_id},
          {"type", PatternTypeName(p.type)},
          {"description", p.description},
          {"domain", p.context.domain},
          {"success_rate", p.success_rate},
          {"occurrences", p.occurrences},
          {"effectiveness", Effectiveness(p.effectiveness)},
          {"decay_weight", p.decay_weight}};
}

// ---- list ------------------------------------------------------------------------------

Status RunList(Session& session, const ListArgs& a) {
  PatternFilter filter;
  ENGRAM_ASSIGN_OR_RETURN(filter.type, ParseTypeFlag(a.type));
  filter.domain = a.domain;
  if (a.min_success) {
    if (!(*a.min_success >= 0 && *a.min_success <= 1)) {
      return InvalidArgumentError("--min-success: must be between 0 and 1, e.g. 0.8");
    }
    filter.min_success_rate = *a.min_success;
  }
  filter.limit = a.limit;
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Pattern> patterns, l.storage->ListPatterns(filter));
  if (session.json()) {
    json items = json::array();
    for (const Pattern& p : patterns) items.push_back(Summary(p));
    PrintJson({{"patterns", std::move(items)}});
    return OkStatus();
  }
  if (patterns.empty()) {
    std::cout << "No patterns" << (filter.type || filter.domain || filter.min_success_rate ? " match." : " yet.")
              << "\n";
    PrintPendingHint(*l.storage);
    return OkStatus();
  }
  Table table({"PATTERN_ID", "TYPE", "OCCURRENCES", "SUCCESS", "EFFECTIVENESS", "DESCRIPTION"});
  for (const Pattern& p : patterns) {
    table.AddRow({p.pattern_id, std::string(PatternTypeName(p.type)), std::to_string(p.occurrences),
                  Fixed(p.success_rate), Fixed(Effectiveness(p.effectiveness)), Ellipsize(OneLine(p.description), 70)});
  }
  table.Print(std::cout);
  return OkStatus();
}

// ---- show ------------------------------------------------------------------------------

Status RunShow(Session& session, const std::string& id) {
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  ENGRAM_ASSIGN_OR_RETURN(Pattern p, l.storage->GetPattern(id));
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Heuristic> heuristics, l.storage->ListHeuristics(0));
  std::erase_if(heuristics, [&](const Heuristic& h) { return h.source_pattern_id != p.pattern_id; });
  const double effectiveness = Effectiveness(p.effectiveness);
  if (session.json()) {
    json j = PatternToJson(p);
    j["effectiveness_score"] = effectiveness;
    json hs = json::array();
    for (const Heuristic& h : heuristics) hs.push_back(HeuristicToJson(h));
    j["heuristics"] = std::move(hs);
    PrintJson(j);
    return OkStatus();
  }
  const TaskContext& c = p.context;
  std::string context = "domain " + c.domain;
  if (c.language) context += ", language " + *c.language;
  if (c.framework) context += ", framework " + *c.framework;
  context += ", " + std::string(ComplexityName(c.complexity));
  if (!c.tags.empty()) {
    context += ", tags";
    for (size_t i = 0; i < c.tags.size(); ++i) context += (i == 0 ? " " : ", ") + c.tags[i];
  }
  const PatternEffectiveness& e = p.effectiveness;
  std::cout << "Pattern " << p.pattern_id << "\n"
            << "  Type:          " << PatternTypeName(p.type) << "\n"
            << "  Description:   " << p.description << "\n"
            << "  Context:       " << context << "\n"
            << "  Occurrences:   " << p.occurrences << " (" << p.successes << " succeeded), success rate "
            << Fixed(p.success_rate) << "\n";
  if (p.avg_latency_ms > 0) std::cout << "  Step latency:  " << Fixed(p.avg_latency_ms, 0) << " ms (mean)\n";
  std::cout << "  Effectiveness: " << Fixed(effectiveness) << " (shown " << e.times_retrieved << " times, applied "
            << e.times_applied << " times; afterwards " << e.success_when_applied << " successes, "
            << e.failure_when_applied << " failures";
  if (e.last_used) std::cout << "; last used " << FormatTimestamp(*e.last_used);
  std::cout << ")\n"
            << "  Decay weight:  " << Fixed(p.decay_weight, 3) << "\n"
            << "  Created:       " << FormatTimestamp(p.created_at) << "\n"
            << "  Updated:       " << FormatTimestamp(p.updated_at) << "\n"
            << "  Key:           " << p.similarity_key << "\n"
            << "  Body:\n";
  std::string body = DumpJson(PatternToJson(p)["body"], 2);
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    std::cout << "    " << body.substr(start, end - start) << "\n";
    start = end + 1;
  }
  for (const Heuristic& h : heuristics) {
    std::cout << "  Heuristic:     " << h.condition << " → " << h.action << " (confidence " << Fixed(h.confidence)
              << ", success rate " << Fixed(h.success_rate) << " over " << h.sample_size << ")\n";
  }
  std::cout << "  Evidence:      " << p.evidence.size() << " episode" << (p.evidence.size() == 1 ? "" : "s")
            << " (newest last; engram episode get ID shows one)\n";
  for (const std::string& ep : p.evidence) std::cout << "    " << ep << "\n";
  return OkStatus();
}

// ---- search ----------------------------------------------------------------------------

Status RunSearch(Session& session, const SearchArgs& a) {
  SearchRequest request;
  request.query = a.query;
  request.domain = a.domain;
  ENGRAM_ASSIGN_OR_RETURN(request.type, ParseTypeFlag(a.type));
  request.limit = a.limit;
  request.include_below_threshold = a.all;
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  // The engine names the option in its errors ("limit: ...", "query: has no search words").
  Result<std::vector<ScoredPattern>> found = SearchPatterns(*l.storage, *l.clock, request, l.options);
  if (!found.ok()) return found.status();
  if (session.json()) {
    json items = json::array();
    for (const ScoredPattern& s : *found) {
      json item = Summary(s.pattern);
      item["score"] = s.score;
      items.push_back(std::move(item));
    }
    PrintJson({{"patterns", std::move(items)}});
    return OkStatus();
  }
  if (found->empty()) {
    std::cout << "No pattern matches.\n";
    PrintPendingHint(*l.storage);
    return OkStatus();
  }
  Table table({"SCORE", "PATTERN_ID", "TYPE", "OCCURRENCES", "SUCCESS", "DESCRIPTION"});
  for (const ScoredPattern& s : *found) {
    const Pattern& p = s.pattern;
    table.AddRow({Fixed(s.score, 3), p.pattern_id, std::string(PatternTypeName(p.type)), std::to_string(p.occurrences),
                  Fixed(p.success_rate), Ellipsize(OneLine(p.description), 70)});
  }
  table.Print(std::cout);
  return OkStatus();
}

// ---- recommend -------------------------------------------------------------------------

Status RunRecommend(Session& session, const TaskArgs& a) {
  RecommendRequest request;
  request.task_description = a.task;
  request.domain = a.domain;
  request.language = a.language;
  request.framework = a.framework;
  request.limit = a.limit;
  request.episode_id = a.episode;
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  if (a.episode) {
    // Attributions are credited when the episode completes; a completed one never would be.
    ENGRAM_ASSIGN_OR_RETURN(Episode e, l.storage->GetEpisode(*a.episode));
    if (e.completed()) {
      return FailedPreconditionError("--episode: episode " + *a.episode +
                                     " is already completed; name the episode in progress, or leave --episode out");
    }
  }
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Recommendation> recs,
                          RecommendPatterns(*l.storage, *l.clock, request, l.options));
  if (session.json()) {
    json items = json::array();
    for (const Recommendation& r : recs) {
      json item = Summary(r.pattern);
      item["score"] = r.score;
      item["why"] = r.why;
      items.push_back(std::move(item));
    }
    json out = {{"recommendations", std::move(items)}};
    if (a.episode && !recs.empty()) out["episode_id"] = *a.episode;
    PrintJson(out);
    return OkStatus();
  }
  if (recs.empty()) {
    std::cout << "No learned pattern fits this task yet.\n";
    PrintPendingHint(*l.storage);
    return OkStatus();
  }
  for (size_t i = 0; i < recs.size(); ++i) {
    const Pattern& p = recs[i].pattern;
    std::cout << i + 1 << ". " << OneLine(p.description) << "\n"
              << "   " << PatternTypeName(p.type) << " " << p.pattern_id << ", score " << Fixed(recs[i].score, 3)
              << ", success rate " << Fixed(p.success_rate) << " over " << p.occurrences << " episodes\n"
              << "   why: " << recs[i].why << "\n";
  }
  if (a.episode) std::cout << "Recorded as shown to episode " << *a.episode << ".\n";
  return OkStatus();
}

// ---- playbook --------------------------------------------------------------------------

Status RunPlaybook(Session& session, const TaskArgs& a) {
  PlaybookRequest request;
  request.task_description = a.task;
  request.domain = a.domain;
  request.language = a.language;
  request.framework = a.framework;
  request.max_steps = a.max_steps;
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  Result<Playbook> book = RecommendPlaybook(*l.storage, *l.clock, request, l.options);
  if (!book.ok()) return book.status();
  if (session.json()) {
    json steps = json::array();
    for (const PlaybookStep& s : book->steps) {
      steps.push_back({{"order", s.order}, {"tool", s.tool}, {"action", s.action}, {"why", s.why}});
    }
    PrintJson({{"playbook",
                {{"steps", std::move(steps)},
                 {"pitfalls", book->pitfalls},
                 {"when_to_apply", book->when_to_apply},
                 {"when_not_to_apply", book->when_not_to_apply},
                 {"confidence", book->confidence},
                 {"pattern_ids", book->pattern_ids},
                 {"episode_ids", book->episode_ids}}}});
    return OkStatus();
  }
  if (book->steps.empty()) {
    std::cout << "No playbook yet: no learned tool sequence fits this task.\n";
    for (const std::string& s : book->when_to_apply) std::cout << "  " << s << "\n";
    PrintPendingHint(*l.storage);
    return OkStatus();
  }
  std::cout << "Playbook (confidence " << Fixed(book->confidence) << ")\n";
  for (const PlaybookStep& s : book->steps) {
    std::cout << "  " << s.order << ". " << s.tool;
    if (!s.action.empty()) std::cout << ": " << s.action;
    std::cout << "\n     " << s.why << "\n";
  }
  auto section = [](const char* title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    std::cout << title << ":\n";
    for (const std::string& s : items) std::cout << "  - " << s << "\n";
  };
  section("Pitfalls", book->pitfalls);
  section("When to apply", book->when_to_apply);
  section("When not to apply", book->when_not_to_apply);
  std::cout << "From " << book->pattern_ids.size() << " pattern" << (book->pattern_ids.size() == 1 ? "" : "s")
            << " and " << book->episode_ids.size() << " episode" << (book->episode_ids.size() == 1 ? "" : "s")
            << " (engram pattern show ID):\n";
  for (const std::string& id : book->pattern_ids) std::cout << "  " << id << "\n";
  return OkStatus();
}

// ---- decay -----------------------------------------------------------------------------

Status RunDecay(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  ENGRAM_ASSIGN_OR_RETURN(DecayReport report, ApplyDecay(*l.storage, *l.clock, l.options.decay_half_life));
  const int64_t days = l.config->learning.decay_half_life_days;
  if (session.json()) {
    json changes = json::array();
    for (const DecayChange& c : report.changes) {
      changes.push_back({{"pattern_id", c.pattern_id},
                         {"description", c.description},
                         {"old_weight", c.old_weight},
                         {"new_weight", c.new_weight}});
    }
    PrintJson({{"examined", report.examined}, {"half_life_days", days}, {"changes", std::move(changes)}});
    return OkStatus();
  }
  if (report.changes.empty()) {
    std::cout << "Examined " << report.examined << " pattern" << (report.examined == 1 ? "" : "s")
              << " (half-life " << days << " days): nothing changed.\n";
    return OkStatus();
  }
  Table table({"PATTERN_ID", "OLD", "NEW", "DESCRIPTION"});
  for (const DecayChange& c : report.changes) {
    table.AddRow({c.pattern_id, Fixed(c.old_weight, 3), Fixed(c.new_weight, 3), Ellipsize(OneLine(c.description), 70)});
  }
  table.Print(std::cout);
  std::cout << report.changes.size() << " of " << report.examined << " patterns changed (half-life " << days
            << " days).\n";
  return OkStatus();
}

// ---- reextract -------------------------------------------------------------------------

Status RunReextract(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(Learning l, OpenLearning(session));
  PatternProcessor processor(*l.storage, *l.clock, /*bus=*/nullptr, l.options);
  ENGRAM_RETURN_IF_ERROR(RegisterBuiltinExtractors(processor.extractors()));
  ProgressBar bar(ProgressBar::Wanted(session.json()), "episodes");
  Result<ReextractReport> report = processor.ReextractAll([&](size_t done, size_t total) { bar.Update(done, total); });
  bar.Finish();
  if (!report.ok()) return report.status();
  const double seconds = std::chrono::duration<double>(report->elapsed).count();
  if (session.json()) {
    PrintJson({{"episodes", report->episodes},
               {"failures", report->failures},
               {"patterns", report->patterns},
               {"heuristics", report->heuristics},
               {"seconds", seconds}});
  } else {
    std::printf("re-extracted %zu episode%s in %.1f s: %zu pattern%s, %zu heuristic%s\n", report->episodes,
                report->episodes == 1 ? "" : "s", seconds, report->patterns, report->patterns == 1 ? "" : "s",
                report->heuristics, report->heuristics == 1 ? "" : "s");
  }
  if (report->failures > 0) {
    std::string why = processor.Stats().last_error;
    return InternalError(std::to_string(report->failures) + " episode" + (report->failures == 1 ? "" : "s") +
                         " could not be extracted and stay pending" + (why.empty() ? "" : " (last error: " + why + ")"));
  }
  return OkStatus();
}

}  // namespace

void AddPatternCommands(CLI::App& app, Command* selected) {
  auto* pattern = app.add_subcommand("pattern", "Inspect and maintain the patterns learned from episodes");
  pattern->require_subcommand(1);

  auto list = std::make_shared<ListArgs>();
  auto* ls = pattern->add_subcommand("list", "List patterns, best first (success rate × decay weight)");
  ls->add_option("--type", list->type, "tool_sequence, decision_point, error_recovery or context_pattern");
  ls->add_option("--domain,-d", list->domain, "Only this domain");
  ls->add_option("--min-success", list->min_success, "Only patterns with at least this success rate (0-1)");
  ls->add_option("--limit,-n", list->limit, "How many (0 for all)")->capture_default_str();
  ls->callback([=] { *selected = [list](Session& s) { return RunList(s, *list); }; });

  auto show_id = std::make_shared<std::string>();
  auto* show = pattern->add_subcommand("show", "Show a pattern: body, context, evidence and effectiveness");
  show->add_option("pattern_id", *show_id, "The pattern")->required();
  show->callback([=] { *selected = [show_id](Session& s) { return RunShow(s, *show_id); }; });

  auto search = std::make_shared<SearchArgs>();
  auto* se = pattern->add_subcommand("search", "Find patterns by words (what search_patterns answers)");
  se->add_option("query", search->query, "Words: tools, actions, errors, e.g. \"cargo test timeout\"")->required();
  se->add_option("--domain,-d", search->domain, "Your project or area (ranks its patterns higher)");
  se->add_option("--type", search->type, "Only this pattern type");
  se->add_option("--limit,-n", search->limit, "At most this many (1-100)")->capture_default_str();
  se->add_flag("--all", search->all, "Include patterns below their type's success threshold");
  se->callback([=] { *selected = [search](Session& s) { return RunSearch(s, *search); }; });

  auto rec = std::make_shared<TaskArgs>();
  auto* re = pattern->add_subcommand("recommend", "The patterns that fit a task best (what recommend_patterns answers)");
  re->add_option("task", rec->task, "What you are about to do")->required();
  re->add_option("--domain,-d", rec->domain, "Your project or area");
  re->add_option("--language", rec->language, "Programming language");
  re->add_option("--framework", rec->framework, "Framework");
  re->add_option("--limit,-n", rec->limit, "At most this many (1-100)")->capture_default_str();
  re->add_option("--episode", rec->episode, "Record the recommendations as shown to this episode in progress");
  re->callback([=] { *selected = [rec](Session& s) { return RunRecommend(s, *rec); }; });

  auto book = std::make_shared<TaskArgs>();
  auto* pb = pattern->add_subcommand("playbook", "A step-by-step plan for a task from what worked before");
  pb->add_option("task", book->task, "What you are about to do")->required();
  pb->add_option("--domain,-d", book->domain, "Your project or area");
  pb->add_option("--language", book->language, "Programming language");
  pb->add_option("--framework", book->framework, "Framework");
  pb->add_option("--max-steps", book->max_steps, "At most this many steps (1-20)")->capture_default_str();
  pb->callback([=] { *selected = [book](Session& s) { return RunPlaybook(s, *book); }; });

  pattern->add_subcommand("decay", "Apply decay to unused patterns now (learning.decay_half_life_days) and print "
                                   "what changed")
      ->callback([=] { *selected = RunDecay; });
  pattern->add_subcommand("reextract", "Rebuild every pattern and heuristic from the stored episodes (effectiveness "
                                       "counts start over)")
      ->callback([=] { *selected = RunReextract; });
}

}  // namespace engram::cli
