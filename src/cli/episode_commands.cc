// `engram episode create|log-step|complete|get|list|delete`.
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/strings.h"
#include "model/episode_json.h"

namespace engram::cli {
namespace {

// Options are parsed into these by CLI11, then turned into engine calls; enum names are
// parsed by the same functions the MCP tools use, so errors read the same.
struct CreateArgs {
  std::string task;
  std::string domain = "general";
  std::optional<std::string> type, language, framework, complexity, repo, commit, metadata;
  std::vector<std::string> tags;
};

struct StepArgs {
  std::string episode_id, tool, action;
  std::optional<std::string> status, output, output_file, message, params;
  std::optional<int64_t> latency_ms, tokens;
  int step_number = 0;
};

struct CompleteArgs {
  std::string episode_id, outcome;
  std::optional<std::string> verdict, reason, error_details, build_ok;
  std::vector<std::string> artifacts, completed, failed;
  std::optional<int64_t> tests_passed, tests_failed, lint_warnings;
  std::optional<double> coverage;
};

struct ListArgs {
  size_t limit = 20;
  std::optional<std::string> domain, type, status, before;
};

struct IdArgs {
  std::string episode_id;
  bool yes = false;
};

Result<std::string> ReadFileOrStdin(const std::string& path) {
  std::ostringstream buf;
  if (path == "-") {
    buf << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError("cannot read --output-file " + path);
    buf << in.rdbuf();
  }
  return buf.str();
}

Status RunCreate(Session& session, const CreateArgs& a) {
  NewEpisode ne;
  ne.task_description = a.task;
  if (a.type) {
    ENGRAM_ASSIGN_OR_RETURN(ne.task_type, ParseTaskType(*a.type));
  }
  ne.context.domain = a.domain;
  ne.context.language = a.language;
  ne.context.framework = a.framework;
  if (a.complexity) {
    ENGRAM_ASSIGN_OR_RETURN(ne.context.complexity, ParseComplexity(*a.complexity));
  }
  ne.context.repo = a.repo;
  ne.context.commit = a.commit;
  ne.tags = a.tags;
  if (a.metadata) ne.metadata_json = *a.metadata;
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(std::string id, memory->CreateEpisode(std::move(ne)));
  if (session.json()) {
    PrintJson({{"episode_id", id}});
  } else {
    std::cout << id << "\n";  // bare, so `id=$(engram episode create ...)` works
  }
  return OkStatus();
}

Status RunLogStep(Session& session, const StepArgs& a) {
  NewStep s;
  s.tool = a.tool;
  s.action = a.action;
  s.step_number = a.step_number;
  s.latency_ms = a.latency_ms;
  s.tokens_used = a.tokens;
  if (a.params) s.parameters_json = *a.params;
  if (a.output && a.output_file) return InvalidArgumentError("give --output or --output-file, not both");
  if (a.status) {
    StepResult r;
    ENGRAM_ASSIGN_OR_RETURN(r.status, ParseStepStatus(*a.status));
    r.output = a.output;
    if (a.output_file) {
      ENGRAM_ASSIGN_OR_RETURN(r.output, ReadFileOrStdin(*a.output_file));
    }
    r.message = a.message;
    s.result = std::move(r);
  } else if (a.output || a.output_file || a.message) {
    return InvalidArgumentError("--output, --output-file and --message need --status (success, error or timeout)");
  }
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(int number, memory->AddStep(a.episode_id, std::move(s)));
  if (session.json()) {
    PrintJson({{"episode_id", a.episode_id}, {"step_number", number}});
  } else {
    std::cout << "step " << number << "\n";
  }
  return OkStatus();
}

Status RunComplete(Session& session, const CompleteArgs& a) {
  Outcome o;
  ENGRAM_ASSIGN_OR_RETURN(o.kind, ParseOutcomeKind(a.outcome));
  o.verdict = a.verdict.value_or("");
  o.artifacts = a.artifacts;
  o.completed = a.completed;
  o.failed = a.failed;
  o.reason = a.reason.value_or("");
  o.error_details = a.error_details;
  if (o.kind == OutcomeKind::kFailure && o.reason.empty()) {
    return InvalidArgumentError("--outcome failure needs --reason (what went wrong)");
  }
  if (a.tests_passed || a.tests_failed || a.build_ok || a.lint_warnings || a.coverage) {
    Verification v;
    v.tests_passed = a.tests_passed;
    v.tests_failed = a.tests_failed;
    v.lint_warnings = a.lint_warnings;
    v.coverage_pct = a.coverage;
    if (a.build_ok) {
      std::string b = AsciiLower(*a.build_ok);
      if (b == "true" || b == "yes" || b == "1") v.build_ok = true;
      else if (b == "false" || b == "no" || b == "0") v.build_ok = false;
      else return InvalidArgumentError("--build-ok: expected true or false, got \"" + *a.build_ok + "\"");
    }
    o.verification = v;
  }
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(Episode done, memory->CompleteEpisode(a.episode_id, std::move(o)));
  if (session.json()) {
    PrintJson({{"episode_id", done.episode_id},
               {"reward", RewardToJson(*done.reward)},
               {"reflection", ReflectionToJson(*done.reflection)}});
  } else {
    PrintEpisodeDetail(std::cout, done);
  }
  return OkStatus();
}

Status RunGet(Session& session, const IdArgs& a) {
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(Episode e, memory->GetEpisode(a.episode_id));
  if (session.json()) {
    PrintJson(EpisodeToJson(e));
  } else {
    PrintEpisodeDetail(std::cout, e);
  }
  return OkStatus();
}

Status RunList(Session& session, const ListArgs& a) {
  EpisodeFilter filter;
  filter.domain = a.domain;
  filter.limit = a.limit;
  filter.before_id = a.before;
  filter.include_steps = !session.json();  // the table shows step counts; JSON lines stay light
  if (a.type) {
    ENGRAM_ASSIGN_OR_RETURN(filter.task_type, ParseTaskType(*a.type));
  }
  if (a.status) {
    std::string st = AsciiLower(*a.status);
    if (st == "completed") filter.completed = true;
    else if (st == "in_progress" || st == "in-progress") filter.completed = false;
    else if (st != "all") return InvalidArgumentError("--status: expected completed, in_progress or all");
  }
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, memory->ListEpisodes(filter));
  Table table({"EPISODE_ID", "STARTED", "STATUS", "STEPS", "DOMAIN", "TASK"});
  size_t n = 0;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> e, stream->Next());
    if (!e) break;
    ++n;
    if (session.json()) {
      // One episode per line, streamed: a list of any size never sits in memory.
      nlohmann::json j = EpisodeToJson(*e);
      j.erase("steps");
      PrintJson(j);
    } else {
      std::string started = FormatTimestampShort(e->start_time);
      table.AddRow({e->episode_id, started, EpisodeStatusText(*e), std::to_string(e->steps.size()), e->context.domain,
                    Ellipsize(OneLine(e->task_description), 60)});
    }
  }
  if (!session.json()) {
    if (n == 0) {
      std::cout << "No episodes yet. Record one with: engram episode create --task \"...\"\n";
    } else {
      table.Print(std::cout);
    }
  }
  return OkStatus();
}

Status RunDelete(Session& session, const IdArgs& a) {
  if (!a.yes) return FailedPreconditionError("deleting an episode cannot be undone; add --yes to confirm");
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(bool deleted, memory->DeleteEpisode(a.episode_id));
  if (!deleted) return NotFoundError("no episode " + a.episode_id);
  if (session.json()) {
    PrintJson({{"deleted", true}, {"episode_id", a.episode_id}});
  } else {
    std::cout << "deleted " << a.episode_id << "\n";
  }
  return OkStatus();
}

}  // namespace

void AddEpisodeCommands(CLI::App& app, Command* selected) {
  auto* episode = app.add_subcommand("episode", "Record and inspect episodes");
  episode->require_subcommand(1);

  auto create = std::make_shared<CreateArgs>();
  auto* c = episode->add_subcommand("create", "Start an episode; prints its id");
  c->add_option("--task,-t", create->task, "What the task is (1-10,000 characters)")->required();
  c->add_option("--domain,-d", create->domain, "Project or area, e.g. web-api (default: general)");
  c->add_option("--type", create->type,
                "code_generation, debugging, refactoring, testing, analysis, documentation or other");
  c->add_option("--language", create->language, "Programming language");
  c->add_option("--framework", create->framework, "Framework");
  c->add_option("--complexity", create->complexity, "simple, moderate (default) or complex");
  c->add_option("--tag", create->tags, "A tag (repeatable)");
  c->add_option("--repo", create->repo, "Repository where the work happens");
  c->add_option("--commit", create->commit, "Commit the work starts from");
  c->add_option("--metadata", create->metadata, "A JSON object of extra data");
  c->callback([=] { *selected = [create](Session& s) { return RunCreate(s, *create); }; });

  auto step = std::make_shared<StepArgs>();
  auto* l = episode->add_subcommand("log-step", "Append a step to an episode in progress");
  l->add_option("episode_id", step->episode_id, "The episode")->required();
  l->add_option("--tool", step->tool, "The tool used, e.g. bash")->required();
  l->add_option("--action", step->action, "What was done, e.g. cargo test")->required();
  l->add_option("--status", step->status, "success, error or timeout (without it the step counts as failed)");
  l->add_option("--output", step->output, "What the tool returned");
  l->add_option("--output-file", step->output_file, "Read the output from a file, or - for stdin");
  l->add_option("--message", step->message, "An error message or note");
  l->add_option("--params", step->params, "The tool's parameters as a JSON object");
  l->add_option("--latency-ms", step->latency_ms, "How long the step took");
  l->add_option("--tokens", step->tokens, "Tokens used");
  l->add_option("--step", step->step_number, "Step number (default: the next one)");
  l->callback([=] { *selected = [step](Session& s) { return RunLogStep(s, *step); }; });

  auto complete = std::make_shared<CompleteArgs>();
  auto* m = episode->add_subcommand("complete", "End an episode: scores it and writes its reflection");
  m->add_option("episode_id", complete->episode_id, "The episode")->required();
  m->add_option("--outcome", complete->outcome, "success, partial_success or failure")->required();
  m->add_option("--verdict", complete->verdict, "What was achieved");
  m->add_option("--artifact", complete->artifacts, "A file or thing produced (repeatable)");
  m->add_option("--completed", complete->completed, "A part that got done (partial_success; repeatable)");
  m->add_option("--failed", complete->failed, "A part that did not (partial_success; repeatable)");
  m->add_option("--reason", complete->reason, "Why it failed (failure)");
  m->add_option("--error-details", complete->error_details, "Error text (failure)");
  m->add_option("--tests-passed", complete->tests_passed, "Verification: tests passing");
  m->add_option("--tests-failed", complete->tests_failed, "Verification: tests failing");
  m->add_option("--build-ok", complete->build_ok, "Verification: true or false");
  m->add_option("--lint-warnings", complete->lint_warnings, "Verification: lint warnings");
  m->add_option("--coverage", complete->coverage, "Verification: coverage percent");
  m->callback([=] { *selected = [complete](Session& s) { return RunComplete(s, *complete); }; });

  auto get = std::make_shared<IdArgs>();
  auto* g = episode->add_subcommand("get", "Show an episode with its steps, reward and reflection");
  g->add_option("episode_id", get->episode_id, "The episode")->required();
  g->callback([=] { *selected = [get](Session& s) { return RunGet(s, *get); }; });

  auto list = std::make_shared<ListArgs>();
  auto* ls = episode->add_subcommand("list", "List episodes, newest first");
  ls->add_option("--limit,-n", list->limit, "How many (default 20; 0 for all)");
  ls->add_option("--domain,-d", list->domain, "Only this domain");
  ls->add_option("--type", list->type, "Only this task type");
  ls->add_option("--status", list->status, "completed, in_progress or all (default)");
  ls->add_option("--before", list->before, "Only episodes older than this id (paging)");
  ls->callback([=] { *selected = [list](Session& s) { return RunList(s, *list); }; });

  auto del = std::make_shared<IdArgs>();
  auto* d = episode->add_subcommand("delete", "Delete an episode and its steps");
  d->add_option("episode_id", del->episode_id, "The episode")->required();
  d->add_flag("--yes,-y", del->yes, "Confirm");
  d->callback([=] { *selected = [del](Session& s) { return RunDelete(s, *del); }; });
}

}  // namespace engram::cli
