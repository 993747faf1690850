// The read side of the learning pipeline: search, recommendations, playbooks and the
// per-type analysis (learning.h, "Effectiveness and ranking").
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include "common/logging.h"
#include "common/strings.h"
#include "engram/memory.h"
#include "learning/internal.h"
#include "learning/learning.h"
#include "model/search_text.h"

namespace engram {

using namespace learning_internal;

std::vector<std::string> PatternWords(const Pattern& p) {
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  auto add = [&](std::string_view text) {
    ForEachSearchToken(text, [&](const std::string& w) {
      if (seen.insert(w).second) words.push_back(w);
    });
  };
  add(p.description);
  if (std::optional<ParsedKey> key = ParseSimilarityKey(p.similarity_key)) {
    for (const std::string& w : key->signature) add(w);
  }
  if (p.context.language.has_value()) add(*p.context.language);
  if (p.context.framework.has_value()) add(*p.context.framework);
  for (const std::string& t : p.context.tags) add(t);
  return words;
}

namespace {

struct ContextQuery {
  std::optional<std::string> domain;
  std::optional<std::string> language;
  std::optional<std::string> framework;
};

bool SameValue(const std::optional<std::string>& want, const std::optional<std::string>& have) {
  return want.has_value() && have.has_value() && AsciiLower(StripAsciiWhitespace(*want)) ==
                                                     AsciiLower(StripAsciiWhitespace(*have));
}

// Scores every pattern against a query; see the file comment of learning.h.
class Scorer {
 public:
  Scorer(std::string_view text, ContextQuery context) : context_(std::move(context)) {
    std::unordered_set<std::string> seen;
    ForEachSearchToken(text, [&](const std::string& w) {
      if (seen.insert(w).second) words_.push_back(w);
    });
  }

  const std::vector<std::string>& words() const { return words_; }
  bool names_context() const {
    return context_.domain.has_value() || context_.language.has_value() || context_.framework.has_value();
  }

  // `pattern_words`: PatternWords(p), sorted.
  ScoreParts Parts(const Pattern& p, const std::vector<std::string>& pattern_words,
                   std::vector<std::string>* matched = nullptr) const {
    ScoreParts parts;
    if (!words_.empty()) {
      size_t hits = 0;
      for (const std::string& w : words_) {
        if (std::binary_search(pattern_words.begin(), pattern_words.end(), w)) {
          ++hits;
          if (matched != nullptr) matched->push_back(w);
        }
      }
      parts.text = static_cast<double>(hits) / static_cast<double>(words_.size());
    }
    double named = 0;
    double got = 0;
    if (context_.domain.has_value()) {
      named += kDomainShare;
      if (SameValue(context_.domain, p.context.domain)) got += kDomainShare;
    }
    if (context_.language.has_value()) {
      named += kLanguageShare;
      if (SameValue(context_.language, p.context.language)) got += kLanguageShare;
    }
    if (context_.framework.has_value()) {
      named += kFrameworkShare;
      if (SameValue(context_.framework, p.context.framework)) got += kFrameworkShare;
    }
    parts.context = named > 0 ? got / named : 1.0;
    parts.effectiveness = Effectiveness(p.effectiveness);
    parts.success_rate = std::clamp(p.success_rate, 0.0, 1.0);
    parts.frequency =
        std::min(1.0, std::log1p(static_cast<double>(std::max<int64_t>(0, p.occurrences))) /
                          std::log1p(kFrequencySaturation));
    parts.decay = std::clamp(p.decay_weight, 0.0, 1.0);
    return parts;
  }

  // A pattern is relevant when it shares a word with the query, or (when the query names
  // a context) matches part of it.
  bool Relevant(const ScoreParts& parts) const {
    return parts.text > 0 || (names_context() && parts.context > 0);
  }

 private:
  std::vector<std::string> words_;
  ContextQuery context_;
};

double Combine(const ScoreParts& p) {
  return p.decay * (kTextWeight * p.text + kContextWeight * p.context + kEffectivenessWeight * p.effectiveness +
                    kSuccessWeight * p.success_rate + kFrequencyWeight * p.frequency);
}

bool MeetsThreshold(const Pattern& p, const LearningOptions& options) {
  return p.success_rate >= SuccessThreshold(p.type, options);
}

Status ValidateLimit(size_t limit, std::string_view field) {
  if (limit == 0 || limit > kMaxQueryLimit) {
    return InvalidArgumentError(fmt::format("{}: must be in 1..{}", field, kMaxQueryLimit));
  }
  return OkStatus();
}

Status ValidateTask(std::string_view task) {
  if (StripAsciiWhitespace(task).empty()) return InvalidArgumentError("task_description: must not be empty");
  if (Utf8Length(task) > kMaxTaskDescriptionChars) {
    return InvalidArgumentError(fmt::format("task_description: longer than {} characters", kMaxTaskDescriptionChars));
  }
  return OkStatus();
}

// On equal scores, the pattern that says more about the whole task comes first.
int TypeRank(PatternType t) {
  switch (t) {
    case PatternType::kToolSequence: return 0;
    case PatternType::kErrorRecovery: return 1;
    case PatternType::kDecisionPoint: return 2;
    case PatternType::kContextPattern: return 3;
  }
  return 4;
}

std::vector<std::string> SortedWords(const Pattern& p) {
  std::vector<std::string> words = PatternWords(p);
  std::sort(words.begin(), words.end());
  return words;
}

// The patterns a read works on: a catalog snapshot, or what was just read from the store.
class PatternSet {
 public:
  static Result<PatternSet> Load(StorageBackend& storage, PatternCatalog* catalog, std::optional<PatternType> type) {
    PatternSet set;
    if (catalog != nullptr) {
      ENGRAM_ASSIGN_OR_RETURN(set.snapshot_, catalog->Get());
      set.type_ = type;
      return set;
    }
    PatternFilter filter;
    filter.type = type;
    auto owned = std::make_shared<PatternSnapshot>();
    ENGRAM_ASSIGN_OR_RETURN(owned->patterns, storage.ListPatterns(filter));
    for (const Pattern& p : owned->patterns) owned->words.push_back(SortedWords(p));
    set.snapshot_ = std::move(owned);
    return set;
  }
  size_t size() const { return snapshot_->patterns.size(); }
  // Null when the pattern is not of the requested type.
  const Pattern* pattern(size_t i) const {
    const Pattern& p = snapshot_->patterns[i];
    return type_.has_value() && p.type != *type_ ? nullptr : &p;
  }
  const std::vector<std::string>& words(size_t i) const { return snapshot_->words[i]; }

 private:
  std::shared_ptr<const PatternSnapshot> snapshot_;
  std::optional<PatternType> type_;  // filter applied on read (the catalog holds every type)
};

struct Ranked {
  size_t index = 0;
  double score = 0;
  ScoreParts parts;
};

// Every relevant pattern meeting its threshold (and with a shared word when `need_text`),
// scored, best first, at most `limit`.
std::vector<Ranked> Rank(const PatternSet& set, const Scorer& scorer, bool include_below_threshold, bool need_text,
                         const LearningOptions& options, size_t limit) {
  std::vector<Ranked> out;
  for (size_t i = 0; i < set.size(); ++i) {
    const Pattern* p = set.pattern(i);
    if (p == nullptr) continue;
    if (!include_below_threshold && !MeetsThreshold(*p, options)) continue;
    ScoreParts parts = scorer.Parts(*p, set.words(i));
    if (!scorer.Relevant(parts) || (need_text && parts.text <= 0)) continue;
    out.push_back({i, Combine(parts), parts});
  }
  auto better = [&](const Ranked& x, const Ranked& y) {
    if (x.score != y.score) return x.score > y.score;
    const Pattern& a = *set.pattern(x.index);
    const Pattern& b = *set.pattern(y.index);
    if (a.occurrences != b.occurrences) return a.occurrences > b.occurrences;
    if (a.type != b.type) return TypeRank(a.type) < TypeRank(b.type);
    return a.pattern_id > b.pattern_id;  // newer first
  };
  if (out.size() > limit) {
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(limit), out.end(), better);
    out.resize(limit);
  } else {
    std::sort(out.begin(), out.end(), better);
  }
  return out;
}

std::vector<ScoredPattern> Materialise(const PatternSet& set, const std::vector<Ranked>& ranked) {
  std::vector<ScoredPattern> out;
  out.reserve(ranked.size());
  for (const Ranked& r : ranked) out.push_back({*set.pattern(r.index), r.score, r.parts});
  return out;
}

std::string Why(const Scorer& scorer, const ScoredPattern& s, const std::optional<std::string>& domain) {
  std::vector<std::string> matched;
  scorer.Parts(s.pattern, SortedWords(s.pattern), &matched);
  const PatternEffectiveness& e = s.pattern.effectiveness;
  std::string text = fmt::format("text match {:.2f}", s.parts.text);
  if (!matched.empty()) text += " (" + Join(matched, ", ") + ")";
  std::string context = fmt::format("context match {:.2f}", s.parts.context);
  if (domain.has_value()) context += " (domain " + s.pattern.context.domain + ")";
  return fmt::format(
      "{}, {}, effectiveness {:.2f} (Wilson lower bound of {}/{} successes when shown or applied, with a "
      "1/2 prior), success rate {:.2f} over {} occurrences, decay {:.2f}; score {:.3f}",
      text, context, s.parts.effectiveness, e.success_when_applied, e.success_when_applied + e.failure_when_applied,
      s.parts.success_rate, s.pattern.occurrences, s.parts.decay, s.score);
}

std::string JsonString(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::string ToolWithAction(const std::string& tool, const std::string& action) {
  return action.empty() ? tool : tool + " '" + action + "'";
}

}  // namespace

Result<std::vector<ScoredPattern>> SearchPatterns(StorageBackend& storage, Clock& clock, const SearchRequest& request,
                                                  const LearningOptions& options, PatternCatalog* catalog) {
  ENGRAM_RETURN_IF_ERROR(ValidateLimit(request.limit, "limit"));
  Scorer scorer(request.query, ContextQuery{request.domain, std::nullopt, std::nullopt});
  if (scorer.words().empty()) {
    return InvalidArgumentError("query: has no search words (only stop words, punctuation or one-letter words)");
  }
  ENGRAM_ASSIGN_OR_RETURN(PatternSet set, PatternSet::Load(storage, catalog, request.type));
  // Search needs a shared word; the domain only ranks.
  return Materialise(set, Rank(set, scorer, request.include_below_threshold, /*need_text=*/true, options,
                               request.limit));
}

Result<std::vector<Recommendation>> RecommendPatterns(StorageBackend& storage, Clock& clock,
                                                      const RecommendRequest& request,
                                                      const LearningOptions& options, PatternCatalog* catalog) {
  ENGRAM_RETURN_IF_ERROR(ValidateTask(request.task_description));
  ENGRAM_RETURN_IF_ERROR(ValidateLimit(request.limit, "limit"));
  if (request.episode_id.has_value()) ENGRAM_RETURN_IF_ERROR(ValidateEpisodeId(*request.episode_id));
  Scorer scorer(request.task_description, ContextQuery{request.domain, request.language, request.framework});
  ENGRAM_ASSIGN_OR_RETURN(PatternSet set, PatternSet::Load(storage, catalog, std::nullopt));
  std::vector<ScoredPattern> ranked = Materialise(set, Rank(set, scorer, false, false, options, request.limit));
  std::vector<Recommendation> out;
  std::vector<std::string> shown;
  for (ScoredPattern& s : ranked) {
    std::string why = Why(scorer, s, request.domain);
    shown.push_back(s.pattern.pattern_id);
    out.push_back({std::move(s.pattern), s.score, s.parts, std::move(why)});
  }
  if (request.episode_id.has_value() && !shown.empty()) {
    ENGRAM_RETURN_IF_ERROR(RecordShown(storage, clock, *request.episode_id, shown));
  }
  return out;
}

Result<Playbook> RecommendPlaybook(StorageBackend& storage, Clock& clock, const PlaybookRequest& request,
                                   const LearningOptions& options, PatternCatalog* catalog) {
  ENGRAM_RETURN_IF_ERROR(ValidateTask(request.task_description));
  if (request.max_steps == 0 || request.max_steps > kMaxPlaybookSteps) {
    return InvalidArgumentError(fmt::format("max_steps: must be in 1..{}", kMaxPlaybookSteps));
  }
  Scorer scorer(request.task_description, ContextQuery{request.domain, request.language, request.framework});
  ENGRAM_ASSIGN_OR_RETURN(PatternSet set, PatternSet::Load(storage, catalog, std::nullopt));
  const std::vector<ScoredPattern> ranked =
      Materialise(set, Rank(set, scorer, false, false, options, kPlaybookCandidates));

  Playbook book;
  const ScoredPattern* backbone = nullptr;
  for (PatternType type : {PatternType::kToolSequence, PatternType::kContextPattern}) {
    for (const ScoredPattern& s : ranked) {
      if (s.pattern.type == type) {
        backbone = &s;
        break;
      }
    }
    if (backbone != nullptr) break;
  }
  if (backbone == nullptr) {
    book.when_to_apply.push_back("No learned tool sequence matches this task yet; record episodes of it so one can form");
    return book;
  }

  std::vector<const Pattern*> used{&backbone->pattern};
  const Pattern& seq = backbone->pattern;
  nlohmann::json body = ParseBody(seq.body_json);
  const bool is_sequence = seq.type == PatternType::kToolSequence;
  const nlohmann::json tools = body.contains(is_sequence ? "tools" : "approach") ? body[is_sequence ? "tools" : "approach"]
                                                                                  : nlohmann::json::array();
  const nlohmann::json actions = body.contains("actions") ? body["actions"] : nlohmann::json::array();
  for (size_t i = 0; i < tools.size() && book.steps.size() < request.max_steps; ++i) {
    if (!tools[i].is_string()) continue;
    PlaybookStep step;
    step.order = static_cast<int>(book.steps.size()) + 1;
    step.tool = tools[i].get<std::string>();
    if (i < actions.size() && actions[i].is_string()) step.action = actions[i].get<std::string>();
    step.why = fmt::format("step {} of {} in \"{}\", seen in {} episodes with success rate {:.2f}", i + 1,
                           tools.size(), seq.description, seq.occurrences, seq.success_rate);
    // A decision point on this step's tool says what to do next.
    for (const ScoredPattern& s : ranked) {
      if (s.pattern.type != PatternType::kDecisionPoint) continue;
      nlohmann::json dp = ParseBody(s.pattern.body_json);
      if (!dp.contains("check") || JsonString(dp["check"], "tool") != step.tool) continue;
      step.why += fmt::format("; {} (success rate {:.2f} over {})", s.pattern.description, s.pattern.success_rate,
                              s.pattern.occurrences);
      used.push_back(&s.pattern);
      break;
    }
    book.steps.push_back(std::move(step));
  }

  // Pitfalls: error recoveries, those on a playbook tool first.
  std::vector<const ScoredPattern*> recoveries;
  for (const ScoredPattern& s : ranked) {
    if (s.pattern.type == PatternType::kErrorRecovery) recoveries.push_back(&s);
  }
  auto on_step_tool = [&](const ScoredPattern* s) {
    std::string tool = JsonString(ParseBody(s->pattern.body_json), "error_tool");
    return std::any_of(book.steps.begin(), book.steps.end(), [&](const PlaybookStep& st) { return st.tool == tool; });
  };
  std::stable_partition(recoveries.begin(), recoveries.end(), on_step_tool);
  for (const ScoredPattern* s : recoveries) {
    if (book.pitfalls.size() >= kMaxPlaybookPitfalls) break;
    nlohmann::json er = ParseBody(s->pattern.body_json);
    std::vector<std::string> recovery;
    if (er.contains("recovery") && er["recovery"].is_array()) {
      for (const nlohmann::json& r : er["recovery"]) recovery.push_back(ToolWithAction(JsonString(r, "tool"), JsonString(r, "action")));
    }
    book.pitfalls.push_back(fmt::format("{} fails ({}): recover with {} (led to success in {} of {} episodes)",
                                        ToolWithAction(JsonString(er, "error_tool"), JsonString(er, "error_action")),
                                        JsonString(er, "error"), Join(recovery, " → "), s->pattern.successes,
                                        s->pattern.occurrences));
    used.push_back(&s->pattern);
  }

  // When to apply: the contexts and task types the backbone was learned in.
  const TaskContext& c = seq.context;
  std::string where = "Tasks in domain " + c.domain;
  if (c.language.has_value()) where += ", language " + *c.language;
  if (c.framework.has_value()) where += ", framework " + *c.framework;
  book.when_to_apply.push_back(where);
  if (body.contains("task_types") && body["task_types"].is_object()) {
    std::vector<std::string> kinds;
    for (const auto& [name, count] : body["task_types"].items()) {
      kinds.push_back(fmt::format("{} ({})", name, count.is_number_integer() ? count.get<int64_t>() : 0));
    }
    if (!kinds.empty()) book.when_to_apply.push_back("Task types it was seen in: " + Join(kinds, ", "));
  }
  for (const ScoredPattern& s : ranked) {
    if (s.pattern.type != PatternType::kContextPattern || &s == backbone) continue;
    book.when_to_apply.push_back(fmt::format("{} (success rate {:.2f} over {})", s.pattern.description,
                                             s.pattern.success_rate, s.pattern.occurrences));
    used.push_back(&s.pattern);
    break;
  }

  // When not to apply: what the evidence says against it.
  if (request.domain.has_value() && !SameValue(request.domain, std::optional<std::string>(c.domain))) {
    book.when_not_to_apply.push_back("The evidence is from domain " + c.domain + ", not " + *request.domain +
                                     "; check the steps fit before following them");
  }
  if (request.language.has_value() && c.language.has_value() && !SameValue(request.language, c.language)) {
    book.when_not_to_apply.push_back("It was learned for " + *c.language + ", not " + *request.language);
  }
  if (seq.occurrences > seq.successes) {
    book.when_not_to_apply.push_back(fmt::format("It did not succeed in {} of {} episodes",
                                                 seq.occurrences - seq.successes, seq.occurrences));
  }
  const PatternEffectiveness& e = seq.effectiveness;
  if (e.failure_when_applied > e.success_when_applied) {
    book.when_not_to_apply.push_back(fmt::format("When recommended before, it led to failure {} of {} times",
                                                 e.failure_when_applied,
                                                 e.failure_when_applied + e.success_when_applied));
  }
  if (seq.occurrences < kMinHeuristicSamples) {
    book.when_not_to_apply.push_back("It rests on a single episode; treat it as a hint");
  }

  const double n = static_cast<double>(seq.occurrences);
  book.confidence = std::clamp(
      seq.success_rate * std::min(1.0, std::sqrt(n) / std::sqrt(kHeuristicConfidenceSamples)) * seq.decay_weight, 0.0,
      1.0);
  std::unordered_set<std::string> seen_episodes;
  for (const Pattern* p : used) {
    if (std::find(book.pattern_ids.begin(), book.pattern_ids.end(), p->pattern_id) == book.pattern_ids.end()) {
      book.pattern_ids.push_back(p->pattern_id);
    }
    for (const std::string& id : p->evidence) {
      if (book.episode_ids.size() >= kMaxPatternEvidence) break;
      if (seen_episodes.insert(id).second) book.episode_ids.push_back(id);
    }
  }
  return book;
}

PatternCatalog::PatternCatalog(StorageBackend& storage, PatternCatalogOptions options)
    : storage_(storage), options_(options) {}

PatternCatalog::~PatternCatalog() {
  MutexLock lock(reload_mu_);
  if (reloader_.joinable()) reloader_.join();
}

Result<std::shared_ptr<const PatternSnapshot>> PatternCatalog::Load() {
  auto snapshot = std::make_shared<PatternSnapshot>();
  // The generation first: a write that lands during the read moves it past this value, so
  // the next Get reloads rather than keeping a snapshot that may have missed it.
  ENGRAM_ASSIGN_OR_RETURN(snapshot->generation, storage_.Generation());
  ENGRAM_ASSIGN_OR_RETURN(snapshot->patterns, storage_.ListPatterns(PatternFilter{}));
  snapshot->words.reserve(snapshot->patterns.size());
  for (const Pattern& p : snapshot->patterns) snapshot->words.push_back(SortedWords(p));
  return std::shared_ptr<const PatternSnapshot>(std::move(snapshot));
}

void PatternCatalog::Install(std::shared_ptr<const PatternSnapshot> snapshot) {
  MutexLock lock(mu_);
  snapshot_ = std::move(snapshot);
  loaded_at_ = std::chrono::steady_clock::now();
}

Status PatternCatalog::Refresh() {
  ENGRAM_ASSIGN_OR_RETURN(std::shared_ptr<const PatternSnapshot> snapshot, Load());
  Install(std::move(snapshot));
  return OkStatus();
}

Result<std::shared_ptr<const PatternSnapshot>> PatternCatalog::Get() {
  std::shared_ptr<const PatternSnapshot> current;
  bool stale = false;
  {
    MutexLock lock(mu_);
    current = snapshot_;
    stale = current != nullptr && !reloading_ &&
            std::chrono::steady_clock::now() - loaded_at_ >= options_.refresh_interval;
  }
  if (current == nullptr) {
    ENGRAM_RETURN_IF_ERROR(Refresh());
    MutexLock lock(mu_);
    return snapshot_;
  }
  if (!stale) return current;
  Result<int64_t> generation = storage_.Generation();
  if (!generation.ok() || *generation == current->generation) {
    MutexLock lock(mu_);
    loaded_at_ = std::chrono::steady_clock::now();  // checked: nothing new; look again later
    return current;
  }
  {
    MutexLock lock(mu_);
    if (reloading_) return current;
    reloading_ = true;
  }
  MutexLock reload_lock(reload_mu_);
  if (reloader_.joinable()) reloader_.join();
  reloader_ = std::jthread([this] {
    Result<std::shared_ptr<const PatternSnapshot>> fresh = Load();
    if (fresh.ok()) {
      Install(*std::move(fresh));
    } else {
      LogWarn("pattern catalog reload failed", {{"error", fresh.status().ToString()}});
    }
    MutexLock lock(mu_);
    reloading_ = false;
    loaded_at_ = std::chrono::steady_clock::now();
  });
  return current;
}

Result<PatternAnalysis> AnalyzePatterns(StorageBackend& storage, const AnalyzeRequest& request) {
  if (!(request.min_success_rate >= 0 && request.min_success_rate <= 1)) {
    return InvalidArgumentError("min_success_rate: must be in [0, 1]");
  }
  if (request.top > kMaxQueryLimit) return InvalidArgumentError(fmt::format("top: at most {}", kMaxQueryLimit));
  PatternFilter filter;
  filter.domain = request.domain;
  if (request.min_success_rate > 0) filter.min_success_rate = request.min_success_rate;
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Pattern> patterns, storage.ListPatterns(filter));

  PatternAnalysis analysis;
  for (PatternType type : {PatternType::kToolSequence, PatternType::kDecisionPoint, PatternType::kErrorRecovery,
                           PatternType::kContextPattern}) {
    PatternTypeSummary summary;
    summary.type = type;
    std::vector<Pattern> of_type;
    double rate_sum = 0;
    for (const Pattern& p : patterns) {
      if (p.type != type || p.success_rate < request.min_success_rate) continue;
      if (request.task_type.has_value()) {
        nlohmann::json body = ParseBody(p.body_json);
        std::string name(TaskTypeName(*request.task_type));
        if (!body.contains("task_types") || !body["task_types"].is_object() ||
            !body["task_types"].contains(name)) {
          continue;
        }
      }
      ++summary.count;
      summary.occurrences += p.occurrences;
      rate_sum += p.success_rate;
      of_type.push_back(p);
    }
    if (summary.count > 0) summary.mean_success_rate = rate_sum / static_cast<double>(summary.count);
    std::stable_sort(of_type.begin(), of_type.end(), [](const Pattern& a, const Pattern& b) {
      double sa = a.success_rate * a.decay_weight;
      double sb = b.success_rate * b.decay_weight;
      if (sa != sb) return sa > sb;
      return a.occurrences > b.occurrences;
    });
    if (of_type.size() > request.top) of_type.resize(request.top);
    summary.top = std::move(of_type);
    analysis.types.push_back(std::move(summary));
  }
  ENGRAM_ASSIGN_OR_RETURN(StoreStats stats, storage.Stats());
  analysis.heuristics = static_cast<size_t>(stats.heuristics);
  if (request.top > 0) {
    ENGRAM_ASSIGN_OR_RETURN(analysis.top_heuristics, storage.ListHeuristics(request.top));
  }
  return analysis;
}

}  // namespace engram
