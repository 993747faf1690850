// Scenario tests of the learning pipeline with every real part: a SqliteBackend in a temp
// folder, Memory, the EventBus and the PatternProcessor with the built-in extractors.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "core/event_bus.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "learning/learning.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using nlohmann::json;

struct PlannedStep {
  std::string tool;
  std::string action;
  StepStatus status = StepStatus::kSuccess;
  std::string message;
};

std::vector<PlannedStep> FixTestRun() {
  return {{"bash", "run tests", StepStatus::kError, "1 failed: assertion failed in parse_header"},
          {"edit_file", "fix assertion in parser.rs"},
          {"bash", "run tests"}};
}

std::vector<PlannedStep> DocsRun() {
  return {{"read_file", "read api.md"}, {"write_file", "write docs/api.md"}, {"markdownlint", "docs"}};
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  // `cached`: the store behind an LMDB cache, as `engram serve` opens it by default.
  void Open(LearningOptions options = {}, bool cached = false) {
    processor_.reset();
    memory_.reset();
    bus_.reset();
    store_.reset();
    SqliteOptions so;
    so.path = dir_.File("memory.db");
    so.durability = Durability::kNormal;
    auto store = OpenSqliteBackend(so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
    if (cached) {
      LmdbOptions lo;
      lo.path = dir_.File("memory.db.cache");
      lo.map_size = 64 << 20;
      auto with_cache = OpenLmdbCache(lo, std::move(store_));
      ASSERT_TRUE(with_cache.ok()) << with_cache.status().ToString();
      store_ = *std::move(with_cache);
    }
    bus_ = std::make_unique<EventBus>();
    memory_ = std::make_unique<Memory>(*store_, clock_, bus_.get());
    options_ = options;
    processor_ = std::make_unique<PatternProcessor>(*store_, clock_, bus_.get(), options_);
    ASSERT_TRUE(RegisterBuiltinExtractors(processor_->extractors()).ok());
  }

  void TearDown() override {
    // The bus delivers into the processor: stop both before the store goes.
    if (bus_) bus_->Flush();
    processor_.reset();
    bus_.reset();
    memory_.reset();
    store_.reset();
  }

  void Start() { ASSERT_TRUE(processor_->Start().ok()); }

  void Idle() {
    bus_->Flush();
    processor_->WaitIdle();
  }

  // Creates, steps and completes an episode; returns its id.
  std::string Run(const std::string& task, const std::vector<PlannedStep>& steps, bool success = true,
                  const std::string& domain = "web-api", std::optional<std::string> applied = std::nullopt) {
    NewEpisode ne;
    ne.task_description = task;
    ne.task_type = TaskType::kDebugging;
    ne.context.domain = domain;
    ne.context.language = "rust";
    auto id = memory_->CreateEpisode(ne);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (applied.has_value()) {
      EXPECT_TRUE(RecordApplied(*store_, clock_, *id, *applied).ok());
    }
    for (const PlannedStep& p : steps) {
      NewStep s;
      s.tool = p.tool;
      s.action = p.action;
      s.result = StepResult{p.status, std::nullopt, p.message.empty() ? std::nullopt : std::optional(p.message)};
      s.latency_ms = 50;
      EXPECT_TRUE(memory_->AddStep(*id, s).ok());
    }
    clock_.Advance(std::chrono::seconds(30));
    Outcome o;
    if (success) {
      o.kind = OutcomeKind::kSuccess;
      o.verdict = "tests pass";
    } else {
      o.kind = OutcomeKind::kFailure;
      o.reason = "tests still fail";
    }
    auto done = memory_->CompleteEpisode(*id, o);
    EXPECT_TRUE(done.ok()) << done.status().ToString();
    return *id;
  }

  std::string NewEpisodeId(const std::string& task) {
    NewEpisode ne;
    ne.task_description = task;
    ne.context.domain = "web-api";
    return *memory_->CreateEpisode(ne);
  }

  std::vector<std::string> PatternIdsOf(const std::string& episode_id) {
    auto e = memory_->GetEpisode(episode_id);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->pattern_ids : std::vector<std::string>{};
  }

  // Every pattern `episode_id` lists exists and holds the episode in its evidence.
  void ExpectPatternIdsAreFed(const std::string& episode_id) {
    for (const std::string& pattern_id : PatternIdsOf(episode_id)) {
      auto p = store_->GetPattern(pattern_id);
      ASSERT_TRUE(p.ok()) << episode_id << " lists " << pattern_id << ": " << p.status().ToString();
      EXPECT_NE(std::find(p->evidence.begin(), p->evidence.end(), episode_id), p->evidence.end()) << pattern_id;
    }
  }

  std::vector<Pattern> List(std::optional<PatternType> type = std::nullopt) {
    PatternFilter f;
    f.type = type;
    auto r = store_->ListPatterns(f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.value_or({});
  }

  testing::TempDir dir_;
  FakeClock clock_;
  LearningOptions options_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<EventBus> bus_;
  std::unique_ptr<Memory> memory_;
  std::unique_ptr<PatternProcessor> processor_;
};

TEST_F(PipelineTest, TwentySimilarEpisodesMergeIntoOneToolSequence) {
  Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    // Every fifth fails (after the first): 16 of 20 succeed.
    ids.push_back(Run("Fix a failing test in the parser", FixTestRun(), i % 5 != 4));
  }
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  const Pattern& p = seqs[0];
  EXPECT_EQ(p.occurrences, 20);
  EXPECT_EQ(p.successes, 16);
  EXPECT_DOUBLE_EQ(p.success_rate, 0.8);
  EXPECT_EQ(p.evidence, ids);
  EXPECT_EQ(json::parse(p.body_json)["tools"], json({"bash", "edit_file", "bash"}));
  EXPECT_DOUBLE_EQ(p.avg_latency_ms, 50.0);
  auto pending = store_->PendingExtraction(100);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
  ProcessorStats stats = processor_->Stats();
  EXPECT_EQ(stats.extracted, 20u);
  EXPECT_EQ(stats.failures, 0u);

  // The decision point "tests fail → edit" became a heuristic.
  auto heuristics = store_->ListHeuristics(10);
  ASSERT_TRUE(heuristics.ok());
  ASSERT_EQ(heuristics->size(), 1u);
  EXPECT_EQ((*heuristics)[0].condition, "when bash run tests fails");
  EXPECT_EQ((*heuristics)[0].action, "edit_file: fix assertion parser");
  EXPECT_EQ((*heuristics)[0].sample_size, 20);

  // Every episode lists the pattern it fed (get_episode, show and export read pattern_ids),
  // once, and the decision point whose heuristic that is.
  for (const std::string& id : ids) {
    std::vector<std::string> listed = PatternIdsOf(id);
    EXPECT_EQ(std::count(listed.begin(), listed.end(), p.pattern_id), 1) << id;
    EXPECT_EQ(std::count(listed.begin(), listed.end(), (*heuristics)[0].source_pattern_id), 1) << id;
    ExpectPatternIdsAreFed(id);
  }
}

TEST_F(PipelineTest, PatternIdsThroughTheLmdbCacheAreCurrentAfterExtraction) {
  Open({}, /*cached=*/true);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Run("Fix a failing test in the parser", FixTestRun()));
  // Cached before extraction, with no pattern ids yet.
  for (const std::string& id : ids) EXPECT_TRUE(PatternIdsOf(id).empty());
  const LmdbCache* cache = AsLmdbCache(*store_);
  ASSERT_NE(cache, nullptr);
  const uint64_t hits_before = cache->Metrics().hits;
  for (const std::string& id : ids) EXPECT_TRUE(PatternIdsOf(id).empty());
  EXPECT_GT(cache->Metrics().hits, hits_before) << "the episodes are served from the cache";

  Start();
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  for (const std::string& id : ids) {
    // Twice: the refill after the extraction dropped the copy, then a hit on it.
    for (int read = 0; read < 2; ++read) {
      std::vector<std::string> listed = PatternIdsOf(id);
      EXPECT_NE(std::find(listed.begin(), listed.end(), seqs[0].pattern_id), listed.end()) << id;
    }
  }

  // Re-extraction empties them first (every copy goes), then lists the new patterns.
  auto report = processor_->ReextractAll({});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  for (const std::string& id : ids) {
    std::vector<std::string> listed = PatternIdsOf(id);
    EXPECT_EQ(std::count(listed.begin(), listed.end(), seqs[0].pattern_id), 1) << id;
    ExpectPatternIdsAreFed(id);
  }
}

TEST_F(PipelineTest, ErrorFixPassRunGivesAnErrorRecovery) {
  Start();
  Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto recoveries = List(PatternType::kErrorRecovery);
  ASSERT_EQ(recoveries.size(), 1u);
  json body = json::parse(recoveries[0].body_json);
  EXPECT_EQ(body["error_tool"], "bash");
  EXPECT_EQ(body["error_message"], "1 failed: assertion failed in parse_header");
  ASSERT_EQ(body["recovery"].size(), 2u);
  EXPECT_EQ(body["recovery"][0]["tool"], "edit_file");
  EXPECT_EQ(body["recovery"][1]["tool"], "bash");
  EXPECT_EQ(recoveries[0].occurrences, 1);
}

TEST_F(PipelineTest, FailedEpisodesProduceNoPatterns) {
  Start();
  for (int i = 0; i < 5; ++i) Run("Fix a failing test in the parser", FixTestRun(), /*success=*/false);
  Idle();
  EXPECT_TRUE(List().empty());
  EXPECT_EQ(processor_->Stats().extracted, 5u);
  auto pending = store_->PendingExtraction(100);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());  // extracted (and found nothing), not left behind
}

TEST_F(PipelineTest, SimilarTaskGetsThatPatternFirst) {
  Start();
  std::vector<std::string> fix_ids;
  for (int i = 0; i < 6; ++i) fix_ids.push_back(Run("Fix a failing test in the parser", FixTestRun()));
  for (int i = 0; i < 6; ++i) Run("Write documentation for the REST api", DocsRun(), true, "docs");
  Idle();

  RecommendRequest req;
  req.task_description = "fix the failing parser test again";
  req.domain = "web-api";
  req.limit = 10;
  auto recs = RecommendPatterns(*store_, clock_, req);
  ASSERT_TRUE(recs.ok()) << recs.status().ToString();
  ASSERT_FALSE(recs->empty());
  const Recommendation& first = (*recs)[0];
  EXPECT_EQ(first.pattern.type, PatternType::kToolSequence);
  EXPECT_EQ(json::parse(first.pattern.body_json)["tools"], json({"bash", "edit_file", "bash"}));
  EXPECT_EQ(first.pattern.occurrences, 6);
  EXPECT_NE(first.why.find("text match"), std::string::npos);
  EXPECT_NE(first.why.find("success rate 1.00 over 6 occurrences"), std::string::npos);
  // Nothing learned from the docs episodes outranks anything learned from the fix episodes.
  bool seen_docs = false;
  for (const Recommendation& r : *recs) {
    bool from_fix = std::find(fix_ids.begin(), fix_ids.end(), r.pattern.evidence[0]) != fix_ids.end();
    if (!from_fix) seen_docs = true;
    if (seen_docs) {
      EXPECT_FALSE(from_fix) << r.pattern.description;
    }
  }

  // Search finds it by words too.
  SearchRequest sr;
  sr.query = "edit_file parser";
  auto found = SearchPatterns(*store_, clock_, sr);
  ASSERT_TRUE(found.ok());
  ASSERT_FALSE(found->empty());
  for (const ScoredPattern& s : *found) EXPECT_GT(s.parts.text, 0);
  EXPECT_EQ(SearchPatterns(*store_, clock_, {.query = "the a of"}).status().code(), StatusCode::kInvalidArgument);

  // An empty answer is a list, not an error.
  req.task_description = "quantum chromodynamics lattice";
  req.domain = "physics";
  auto none = RecommendPatterns(*store_, clock_, req);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(PipelineTest, EffectivenessRisesWithSuccessAndFallsWithFailure) {
  Start();
  for (int i = 0; i < 3; ++i) Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  const std::string pid = seqs[0].pattern_id;
  auto effectiveness = [&] {
    auto p = store_->GetPattern(pid);
    EXPECT_TRUE(p.ok());
    return p.ok() ? Effectiveness(p->effectiveness) : -1.0;
  };
  const double untried = effectiveness();

  // Shown by recommend_patterns to an episode that then succeeds.
  std::string shown_to = NewEpisodeId("fix failing test");
  RecommendRequest req{.task_description = "fix failing parser test", .domain = "web-api", .episode_id = shown_to};
  auto recs = RecommendPatterns(*store_, clock_, req);
  ASSERT_TRUE(recs.ok()) << recs.status().ToString();
  ASSERT_FALSE(recs->empty());
  {
    NewStep s{.tool = "bash", .action = "run tests", .result = StepResult{}};
    ASSERT_TRUE(memory_->AddStep(shown_to, s).ok());
    ASSERT_TRUE(memory_->CompleteEpisode(shown_to, Outcome{}).ok());
  }
  Idle();
  auto after_shown = store_->GetPattern(pid);
  ASSERT_TRUE(after_shown.ok());
  EXPECT_EQ(after_shown->effectiveness.times_retrieved, 1);
  EXPECT_EQ(after_shown->effectiveness.success_when_applied, 1);
  const double after_success = effectiveness();
  EXPECT_GT(after_success, untried);

  // Applied twice more with success: it rises further.
  for (int i = 0; i < 2; ++i) Run("Fix a failing test in the lexer", FixTestRun(), true, "web-api", pid);
  Idle();
  const double after_three = effectiveness();
  EXPECT_GT(after_three, after_success);
  EXPECT_EQ(store_->GetPattern(pid)->effectiveness.times_applied, 2);

  // Applied by runs that fail: it falls.
  for (int i = 0; i < 4; ++i) Run("Fix a failing test in the lexer", FixTestRun(), false, "web-api", pid);
  Idle();
  auto after_failures = store_->GetPattern(pid);
  ASSERT_TRUE(after_failures.ok());
  EXPECT_EQ(after_failures->effectiveness.success_when_applied, 3);
  EXPECT_EQ(after_failures->effectiveness.failure_when_applied, 4);
  EXPECT_LT(effectiveness(), after_three);

  EXPECT_EQ(RecordApplied(*store_, clock_, shown_to, "0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(RecordShown(*store_, clock_, "not-an-id", {pid}).code(), StatusCode::kInvalidArgument);
}

TEST_F(PipelineTest, CompletedButNotExtractedBeforeKillIsExtractedOnRestart) {
  // Close our handles so the child is the only writer while it runs.
  processor_.reset();
  memory_.reset();
  bus_.reset();
  store_.reset();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    // The child completes episodes without a running pipeline, reports, and waits to be killed.
    SqliteOptions so;
    so.path = dir_.File("memory.db");
    auto store = OpenSqliteBackend(so);
    if (!store.ok()) _exit(2);
    FakeClock clock;
    Memory memory(**store, clock, nullptr);
    for (int i = 0; i < 3; ++i) {
      auto id = memory.CreateEpisode({.task_description = "Fix a failing test in the parser",
                                      .context = TaskContext{.domain = "web-api"}});
      if (!id.ok()) _exit(3);
      for (const PlannedStep& p : FixTestRun()) {
        NewStep s{.tool = p.tool, .action = p.action, .result = StepResult{p.status, std::nullopt, p.message}};
        if (!memory.AddStep(*id, s).ok()) _exit(4);
      }
      if (!memory.CompleteEpisode(*id, Outcome{}).ok()) _exit(5);
    }
    char ok = 'k';
    if (write(fds[1], &ok, 1) != 1) _exit(6);
    for (;;) pause();
  }
  close(fds[1]);
  char buf = 0;
  ASSERT_EQ(read(fds[0], &buf, 1), 1);
  close(fds[0]);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));

  Open();
  auto pending = store_->PendingExtraction(100);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 3u);
  EXPECT_TRUE(List().empty());
  Start();  // sweeps what the killed process left
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].occurrences, 3);
  pending = store_->PendingExtraction(100);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
}

TEST_F(PipelineTest, PlaybookFollowsTheMergedSequence) {
  Start();
  for (int i = 0; i < 5; ++i) Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto book = RecommendPlaybook(*store_, clock_, {.task_description = "fix failing test in parser", .domain = "web-api"});
  ASSERT_TRUE(book.ok()) << book.status().ToString();
  ASSERT_EQ(book->steps.size(), 3u);
  EXPECT_EQ(book->steps[0].tool, "bash");
  EXPECT_EQ(book->steps[0].action, "run tests");
  EXPECT_EQ(book->steps[1].tool, "edit_file");
  EXPECT_EQ(book->steps[1].action, "fix assertion parser");
  EXPECT_EQ(book->steps[2].tool, "bash");
  for (size_t i = 0; i < book->steps.size(); ++i) EXPECT_EQ(book->steps[i].order, static_cast<int>(i) + 1);
  // The decision point on bash says what to do when the tests fail.
  EXPECT_NE(book->steps[0].why.find("When bash 'run tests' fails, then edit_file"), std::string::npos)
      << book->steps[0].why;
  ASSERT_FALSE(book->pitfalls.empty());
  EXPECT_NE(book->pitfalls[0].find("recover with edit_file 'fix assertion parser' → bash 'run tests'"),
            std::string::npos)
      << book->pitfalls[0];
  EXPECT_GT(book->confidence, 0);
  EXPECT_LE(book->confidence, 1);
  EXPECT_EQ(book->episode_ids.size(), 5u);
  EXPECT_FALSE(book->when_to_apply.empty());

  auto limited = RecommendPlaybook(*store_, clock_, {.task_description = "fix failing test", .max_steps = 2});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->steps.size(), 2u);
  auto empty = RecommendPlaybook(*store_, clock_, {.task_description = "bake sourdough bread"});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->steps.empty());
  EXPECT_EQ(empty->confidence, 0);
  EXPECT_EQ(RecommendPlaybook(*store_, clock_, {.task_description = "x", .max_steps = 0}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(PipelineTest, NearDuplicateSequencesMerge) {
  Start();
  const std::vector<PlannedStep> five = {{"git", "pull"}, {"bash", "build"}, {"edit_file", "patch"}, {"bash", "make"},
                                         {"git", "commit"}};
  std::vector<PlannedStep> variant = five;
  variant[2].tool = "apply_patch";  // one of five differs: similarity 0.8
  for (int i = 0; i < 3; ++i) Run("Patch the build", five);
  Run("Patch the build", variant);
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].occurrences, 4);
  EXPECT_EQ(json::parse(seqs[0].body_json)["tools"][2], "edit_file");
}

// An extra extractor (alongside the real ones) that holds the worker until released, so
// the queue fills up for certain.
class GateExtractor final : public PatternExtractor {
 public:
  std::string_view Name() const override { return "gate"; }
  std::vector<PatternObservation> Extract(const Episode&) const override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
    return {};
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool open_ = false;
};

TEST_F(PipelineTest, FullQueueDefersButLosesNothing) {
  LearningOptions tight;
  tight.queue_capacity = 1;
  tight.enqueue_wait = std::chrono::milliseconds(0);
  Open(tight);
  auto gate = std::make_unique<GateExtractor>();
  GateExtractor* gate_ptr = gate.get();
  ASSERT_TRUE(processor_->extractors().Register(std::move(gate)).ok());
  Start();
  // One episode held by the worker, one queued, the other 28 deferred (left pending).
  for (int i = 0; i < 30; ++i) Run("Fix a failing test in the parser", FixTestRun());
  bus_->Flush();
  ProcessorStats held = processor_->Stats();
  EXPECT_GE(held.deferred, 28u);
  EXPECT_LE(held.queue_depth, 1u);
  gate_ptr->Open();
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].occurrences, 30);
  EXPECT_EQ(processor_->Stats().failures, 0u);
  auto pending = store_->PendingExtraction(100);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
}

// Extraction waits for a pause in completions (quiet_period), at most max_defer; WaitIdle
// does not wait for it.
TEST_F(PipelineTest, ExtractionWaitsForAPauseInCompletions) {
  LearningOptions patient;
  patient.quiet_period = std::chrono::minutes(10);
  patient.max_defer = std::chrono::minutes(10);
  Open(patient);
  Start();
  const std::string id = Run("Fix a failing test in the parser", FixTestRun());
  bus_->Flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto pending = store_->PendingExtraction(10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, std::vector<std::string>{id}) << "held back: a completion came less than quiet_period ago";
  Idle();  // returns without the ten minutes
  pending = store_->PendingExtraction(10);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());

  // max_defer bounds the wait while completions keep coming.
  LearningOptions bounded;
  bounded.quiet_period = std::chrono::minutes(10);
  bounded.max_defer = std::chrono::milliseconds(50);
  Open(bounded);
  Start();
  const std::string second = Run("Fix a failing test in the lexer", FixTestRun());
  bus_->Flush();
  bool extracted = false;
  for (int i = 0; i < 600 && !extracted; ++i) {  // up to a minute on a loaded machine
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto left = store_->PendingExtraction(10);
    ASSERT_TRUE(left.ok());
    extracted = left->empty();
  }
  EXPECT_TRUE(extracted) << "extracted after max_defer without WaitIdle";
  EXPECT_FALSE(ValidateLearningOptions([] {
                 LearningOptions o;
                 o.quiet_period = std::chrono::milliseconds(-1);
                 return o;
               }()).ok());
}

TEST_F(PipelineTest, ReextractRebuildsTheSamePatterns) {
  Start();
  for (int i = 0; i < 4; ++i) Run("Fix a failing test in the parser", FixTestRun());
  Run("Fix a failing test in the parser", FixTestRun(), false);
  Idle();
  std::vector<Pattern> before = List();
  ASSERT_FALSE(before.empty());
  std::vector<std::pair<size_t, size_t>> progress;
  auto report = processor_->ReextractAll([&](size_t done, size_t total) { progress.emplace_back(done, total); });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->episodes, 5u);
  EXPECT_EQ(report->failures, 0u);
  EXPECT_EQ(report->patterns, before.size());
  ASSERT_EQ(progress.size(), 5u);
  EXPECT_EQ(progress.back(), std::make_pair(size_t{5}, size_t{5}));
  std::vector<Pattern> after = List();
  ASSERT_EQ(after.size(), before.size());
  for (const Pattern& b : before) {
    auto match = std::find_if(after.begin(), after.end(),
                              [&](const Pattern& a) { return a.similarity_key == b.similarity_key; });
    ASSERT_NE(match, after.end()) << b.similarity_key;
    EXPECT_EQ(match->occurrences, b.occurrences);
    EXPECT_EQ(match->successes, b.successes);
  }
  // The episodes list the rebuilt patterns only: ResetLearning emptied their pattern_ids.
  for (const Pattern& a : after) {
    for (const std::string& id : a.evidence) {
      ExpectPatternIdsAreFed(id);
      std::vector<std::string> listed = PatternIdsOf(id);
      EXPECT_EQ(std::count(listed.begin(), listed.end(), a.pattern_id), 1) << id;
    }
  }
}

TEST_F(PipelineTest, DecayHalvesUnusedPatternsAndReportsRealChanges) {
  Start();
  Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto first = ApplyDecay(*store_, clock_, std::chrono::hours(24));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->changes.empty());  // nothing is idle yet
  EXPECT_EQ(first->examined, List().size());

  clock_.Advance(std::chrono::hours(24));
  auto decayed = ApplyDecay(*store_, clock_, std::chrono::hours(24));
  ASSERT_TRUE(decayed.ok());
  ASSERT_EQ(decayed->changes.size(), List().size());
  for (const DecayChange& c : decayed->changes) {
    EXPECT_DOUBLE_EQ(c.old_weight, 1.0);
    EXPECT_NEAR(c.new_weight, 0.5, 1e-6);
    EXPECT_NEAR(store_->GetPattern(c.pattern_id)->decay_weight, 0.5, 1e-6);
  }
  auto again = ApplyDecay(*store_, clock_, std::chrono::hours(24));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->changes.empty());
  EXPECT_EQ(ApplyDecay(*store_, clock_, std::chrono::hours(0)).status().code(), StatusCode::kInvalidArgument);

  // A new observation makes the pattern fresh again.
  Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  for (const Pattern& p : List(PatternType::kToolSequence)) EXPECT_DOUBLE_EQ(p.decay_weight, 1.0);
}

TEST_F(PipelineTest, AnalyzeSummarisesByTypeAndTaskType) {
  Start();
  for (int i = 0; i < 3; ++i) Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto a = AnalyzePatterns(*store_, {.task_type = TaskType::kDebugging, .min_success_rate = 0.5});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->types.size(), 4u);
  for (const PatternTypeSummary& t : a->types) {
    EXPECT_EQ(t.count, 1u) << PatternTypeName(t.type);
    EXPECT_EQ(t.occurrences, 3);
    EXPECT_DOUBLE_EQ(t.mean_success_rate, 1.0);
    ASSERT_EQ(t.top.size(), 1u);
  }
  EXPECT_EQ(a->heuristics, 1u);
  auto other = AnalyzePatterns(*store_, {.task_type = TaskType::kDocumentation});
  ASSERT_TRUE(other.ok());
  for (const PatternTypeSummary& t : other->types) EXPECT_EQ(t.count, 0u);
  EXPECT_EQ(AnalyzePatterns(*store_, {.min_success_rate = 2}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PipelineTest, CatalogServesTheSameRankingAndCatchesUp) {
  Start();
  for (int i = 0; i < 3; ++i) Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  PatternCatalog catalog(*store_, {.refresh_interval = std::chrono::milliseconds(0)});
  RecommendRequest req{.task_description = "fix the failing parser test", .domain = "web-api", .limit = 10};
  auto direct = RecommendPatterns(*store_, clock_, req);
  auto cached = RecommendPatterns(*store_, clock_, req, options_, &catalog);
  ASSERT_TRUE(direct.ok());
  ASSERT_TRUE(cached.ok());
  ASSERT_EQ(direct->size(), cached->size());
  for (size_t i = 0; i < direct->size(); ++i) {
    EXPECT_EQ((*direct)[i].pattern.pattern_id, (*cached)[i].pattern.pattern_id);
    EXPECT_DOUBLE_EQ((*direct)[i].score, (*cached)[i].score);
  }

  // New patterns reach the catalog: at once with Refresh, or by a background reload
  // once the store's generation moved.
  for (int i = 0; i < 2; ++i) Run("Write documentation for the REST api", DocsRun(), true, "docs");
  Idle();
  SearchRequest sr{.query = "documentation markdownlint"};
  auto before = SearchPatterns(*store_, clock_, sr, options_, &catalog);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(before->empty()) << (before->empty() ? "" : (*before)[0].pattern.description);  // the snapshot predates them
  ASSERT_TRUE(catalog.Refresh().ok());
  auto after = SearchPatterns(*store_, clock_, sr, options_, &catalog);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->empty());

  Run("Write documentation for the REST api", DocsRun(), true, "docs");
  Idle();
  int64_t seen = 0;
  for (int attempt = 0; attempt < 500 && seen != 3; ++attempt) {
    auto snap = catalog.Get();
    ASSERT_TRUE(snap.ok());
    for (const Pattern& p : (*snap)->patterns) {
      if (p.type == PatternType::kToolSequence && p.context.domain == "docs") seen = p.occurrences;
    }
    if (seen != 3) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(seen, 3);
}

TEST_F(PipelineTest, ExtractNowAndStartErrors) {
  EXPECT_EQ(processor_->ExtractNow("0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d").code(), StatusCode::kNotFound);
  std::string open_id = NewEpisodeId("unfinished");
  EXPECT_EQ(processor_->ExtractNow(open_id).code(), StatusCode::kFailedPrecondition);
  PatternProcessor bare(*store_, clock_, nullptr);
  EXPECT_EQ(bare.Start().code(), StatusCode::kInvalidArgument);  // no extractors
  Start();
  EXPECT_EQ(processor_->Start().code(), StatusCode::kFailedPrecondition);
  processor_->Stop();
  processor_->Stop();  // idempotent

  // Completed while stopped: left pending, extracted after the next Start.
  Run("Fix a failing test in the parser", FixTestRun());
  bus_->Flush();
  auto pending = store_->PendingExtraction(10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 1u);
  Start();
  Run("Fix a failing test in the parser", FixTestRun());
  Idle();
  auto seqs = List(PatternType::kToolSequence);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].occurrences, 2);
}

}  // namespace
}  // namespace engram
