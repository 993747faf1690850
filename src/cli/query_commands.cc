// `engram query TEXT` — what query_memory answers, for people (or --json for scripts) —
// and `engram reindex`, which re-embeds every completed episode with the configured
// embedding provider (after embedding.provider or embedding.dimension changed).
#include <chrono>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/strings.h"
#include "model/episode_json.h"
#include "server/open_retrieval.h"

namespace engram::cli {
namespace {

struct QueryArgs {
  std::string text;
  std::optional<std::string> domain;
  std::optional<std::string> task_type;
  std::optional<std::string> language;
  std::optional<std::string> framework;
  std::vector<std::string> tags;
  bool domain_filter = false;
  size_t limit = kDefaultRetrievalLimit;
  std::optional<size_t> max_tokens;
  std::string mode = "hybrid";
  bool explain = false;
};

std::string Fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

Status RunQuery(Session& session, const QueryArgs& a) {
  RetrievalQuery q;
  q.text = a.text;
  q.domain = a.domain;
  q.language = a.language;
  q.framework = a.framework;
  q.tags = a.tags;
  q.domain_filter = a.domain_filter;
  q.limit = a.limit;
  q.max_tokens = a.max_tokens;
  if (a.task_type) {
    ENGRAM_ASSIGN_OR_RETURN(q.task_type, ParseTaskType(*a.task_type));
  }
  if (a.mode == "hybrid") {
    q.mode = RetrievalMode::kHybrid;
  } else if (a.mode == "lexical") {
    q.mode = RetrievalMode::kLexical;
  } else if (a.mode == "vector") {
    q.mode = RetrievalMode::kVector;
  } else {
    return InvalidArgumentError("--mode: expected hybrid, lexical or vector, got \"" + a.mode + "\"");
  }
  ENGRAM_ASSIGN_OR_RETURN(server::RetrievalStack * retrieval, session.retrieval());
  const auto start = std::chrono::steady_clock::now();
  ENGRAM_ASSIGN_OR_RETURN(RetrievalResult r, retrieval->retriever().Retrieve(q));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  if (session.json()) {
    nlohmann::json episodes = nlohmann::json::array();
    for (const ScoredEpisode& s : r.episodes) {
      const Episode& e = s.episode;
      nlohmann::json hit = {{"episode_id", e.episode_id},
                            {"task_description", e.task_description},
                            {"domain", e.context.domain},
                            {"outcome", e.outcome ? OutcomeKindName(e.outcome->kind) : "failure"},
                            {"reward", e.reward ? e.reward->total : 0.0},
                            {"score", s.score}};
      if (a.explain) {
        hit["why"] = {{"semantic", s.semantic}, {"lexical", s.lexical}, {"context", s.context},
                      {"reward", s.reward},     {"recency", s.recency},
                      {"concepts", s.concepts}, {"wordnet", s.wordnet}};
      }
      episodes.push_back(std::move(hit));
    }
    nlohmann::json out = {{"episodes", std::move(episodes)},
                          {"semantic", r.semantic_used},
                          {"lexical_hits", r.lexical_hits},
                          {"vector_hits", r.vector_hits},
                          {"elapsed_ms", ms}};
    if (!r.notice.empty()) out["notice"] = r.notice;
    PrintJson(out);
    return OkStatus();
  }
  if (!r.notice.empty()) std::cout << "note: " << r.notice << "\n";
  if (r.episodes.empty()) {
    std::cout << "No completed episode matches.\n";
    return OkStatus();
  }
  std::vector<std::string> header = {"SCORE", "EPISODE", "DOMAIN", "OUTCOME", "TASK"};
  if (a.explain) header.insert(header.begin() + 1, {"SEM", "LEX", "CTX", "REW", "REC"});
  Table table(header);
  for (const ScoredEpisode& s : r.episodes) {
    const Episode& e = s.episode;
    std::vector<std::string> row = {Fixed(s.score), e.episode_id, e.context.domain, EpisodeStatusText(e),
                                    Ellipsize(e.task_description, 70)};
    if (a.explain) {
      row.insert(row.begin() + 1,
                 {Fixed(s.semantic), Fixed(s.lexical), Fixed(s.context), Fixed(s.reward), Fixed(s.recency)});
    }
    table.AddRow(std::move(row));
  }
  table.Print(std::cout);
  std::printf("%zu episodes in %.1f ms (%zu lexical, %zu vector candidates)\n", r.episodes.size(), ms,
              r.lexical_hits, r.vector_hits);
  return OkStatus();
}

Status RunReindex(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(server::RetrievalStack * retrieval, session.retrieval());
  if (retrieval->provider() == nullptr) {
    return FailedPreconditionError("embedding.provider is none: there is nothing to index");
  }
  ProgressBar bar(ProgressBar::Wanted(session.json()));
  const auto start = std::chrono::steady_clock::now();
  ENGRAM_ASSIGN_OR_RETURN(size_t n, retrieval->retriever().Reindex([&](size_t done, size_t total) {
    bar.Update(done, total);
  }));
  bar.Finish();
  // The index was opened before the space changed; reopen it so the file matches.
  ENGRAM_RETURN_IF_ERROR(retrieval->OpenIndex());
  retrieval->Save();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (session.json()) {
    PrintJson({{"indexed", n}, {"provider", retrieval->ProviderName()}, {"seconds", s}});
  } else {
    std::printf("indexed %zu episodes with %s in %.1f s\n", n, retrieval->ProviderName().c_str(), s);
  }
  return OkStatus();
}

}  // namespace

void AddQueryCommands(CLI::App& app, Command* selected) {
  auto qa = std::make_shared<QueryArgs>();
  auto* q = app.add_subcommand("query", "Find the past episodes most relevant to a task (what query_memory answers)");
  q->add_option("text", qa->text, "What you are about to do or want to know")->required();
  q->add_option("--domain", qa->domain, "Your project or area (a signal; a filter with --domain-filter)");
  q->add_flag("--domain-filter", qa->domain_filter, "Only episodes of --domain");
  q->add_option("--task-type", qa->task_type, "code_generation, debugging, refactoring, testing, ...");
  q->add_option("--language", qa->language, "Programming language (a signal)");
  q->add_option("--framework", qa->framework, "Framework (a signal)");
  q->add_option("--tag", qa->tags, "A tag (a signal); repeatable");
  q->add_option("--limit", qa->limit, "At most this many episodes (1-100)")->capture_default_str();
  q->add_option("--max-tokens", qa->max_tokens, "Budget for the returned text");
  q->add_option("--mode", qa->mode, "hybrid, lexical or vector")->capture_default_str();
  q->add_flag("--explain", qa->explain, "Show the component scores of each episode");
  q->callback([=] { *selected = [qa](Session& s) { return RunQuery(s, *qa); }; });

  app.add_subcommand("reindex", "Re-embed every completed episode with the configured embedding provider")
      ->callback([=] { *selected = RunReindex; });
}

}  // namespace engram::cli
