// The learning half of the StorageBackend contract (schema v3), the same cases on every
// backend: MergePatterns (create, merge, exact round trip, abort on error, one key per
// pattern, no lost update under concurrent merges), ListPatterns filters and order,
// decay, heuristics, attributions (record, upgrade, credit once), the extraction marker,
// CommitExtraction (one batch, all or nothing, episodes' pattern_ids) and ResetLearning.
// Every learning write also bumps Generation.
#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "conformance/conformance_fixture.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram::testing {
namespace {

class LearningConformance : public ConformanceTest {
 protected:
  // A pattern with every field set to something a lossy store would change: a fraction
  // with no short decimal form, unicode, JSON with odd spacing, ms timestamps.
  Pattern MakePattern(const std::string& key, PatternType type = PatternType::kToolSequence,
                      const std::string& domain = "web-api") {
    clock_.Advance(std::chrono::milliseconds(7));
    Pattern p;
    p.pattern_id = NewUuidV7(clock_);
    p.type = type;
    p.similarity_key = key;
    p.description = "cargo → edit_file → cargo fixes flaky tests (ünïcode ✓)";
    p.body_json = R"({"tools": ["cargo","edit_file","cargo"], "gap_ms":12.5,"nested":{"a":[1,2,{"b":null}]}})";
    p.context.domain = domain;
    p.context.language = "rust";
    p.context.framework = "tokio";
    p.context.complexity = Complexity::kComplex;
    p.context.tags = {"async", "flaky"};
    p.context.repo = "git@example.com:team/web-api.git";
    p.occurrences = 3;
    p.successes = 2;
    p.success_rate = 2.0 / 3.0;
    p.avg_latency_ms = 1234.5678901234;
    p.evidence = {NewUuidV7(clock_), NewUuidV7(clock_), NewUuidV7(clock_)};
    p.effectiveness.times_retrieved = 5;
    p.effectiveness.times_applied = 2;
    p.effectiveness.success_when_applied = 1;
    p.effectiveness.failure_when_applied = 1;
    p.effectiveness.last_used = clock_.Now();
    p.decay_weight = 0.1 + 0.2;  // 0.30000000000000004
    p.created_at = clock_.Now();
    p.updated_at = clock_.Now() + std::chrono::milliseconds(1);
    return p;
  }

  // Stores `p` as a new pattern through MergePatterns. Returns what the merge saw.
  size_t Insert(const Pattern& p) {
    size_t seen = 99;
    std::vector<std::string> keys = {p.similarity_key};
    Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
      seen = patterns.size();
      patterns.push_back(p);
      return OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return seen;
  }

  Heuristic MakeHeuristic(double confidence) {
    clock_.Advance(std::chrono::milliseconds(3));
    Heuristic h;
    h.heuristic_id = NewUuidV7(clock_);
    h.condition = "when cargo test fails with \"timeout\"";
    h.action = "raise the tokio test timeout — then rerun";
    h.confidence = confidence;
    h.evidence_episode_ids = {NewUuidV7(clock_), NewUuidV7(clock_)};
    h.success_rate = 0.7 + 0.1;  // 0.7999999999999999
    h.sample_size = 11;
    h.source_pattern_id = NewUuidV7(clock_);
    h.created_at = clock_.Now();
    h.updated_at = clock_.Now() + std::chrono::milliseconds(2);
    return h;
  }

  std::vector<std::string> Ids(const std::vector<Pattern>& patterns) {
    std::vector<std::string> ids;
    for (const Pattern& p : patterns) ids.push_back(p.pattern_id);
    return ids;
  }

  // Credits the attributions of `episode_id` with one CommitExtraction that does nothing
  // else. Returns how many were credited.
  size_t Credit(const std::string& episode_id, bool success) {
    ExtractionBatch batch;
    batch.outcomes = {{episode_id, success}};
    Result<size_t> credited = store_->CommitExtraction(batch);
    EXPECT_TRUE(credited.ok()) << credited.status().ToString();
    return credited.ok() ? *credited : 99;
  }

  std::vector<std::string> PatternIdsOf(const std::string& episode_id) {
    Result<Episode> e = store_->GetEpisode(episode_id);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? e->pattern_ids : std::vector<std::string>{"<no episode>"};
  }

  std::string NewCompletedEpisode() {
    clock_.Advance(std::chrono::milliseconds(5));
    Episode e = MakeEpisode(clock_, 2);
    EXPECT_TRUE(store_->CreateEpisode(e).ok());
    EXPECT_TRUE(store_->CompleteEpisode(Completed(e)).ok());
    return e.episode_id;
  }
};

TEST_P(LearningConformance, MergeCreatesAPatternThatRoundTripsExactly) {
  Pattern p = MakePattern("tool_sequence|cargo>edit_file>cargo|web-api");
  EXPECT_EQ(Insert(p), 0u) << "a new key loads nothing";
  auto got = store_->GetPattern(p.pattern_id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, p);

  // The merge sees the stored pattern exactly, and its changes are written back.
  Pattern merged;
  std::vector<std::string> keys = {p.similarity_key};
  Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    EXPECT_EQ(patterns.size(), 1u);
    if (patterns.size() != 1) return InternalError("expected one pattern");
    EXPECT_EQ(patterns[0], p);
    Pattern& q = patterns[0];
    q.occurrences += 1;
    q.successes += 1;
    q.success_rate = 3.0 / 4.0;
    q.evidence.push_back(NewUuidV7(clock_));
    q.effectiveness.last_used.reset();
    q.context.language.reset();
    q.body_json = "{}";
    q.updated_at = clock_.Now() + std::chrono::milliseconds(100);
    merged = q;
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  got = store_->GetPattern(p.pattern_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, merged);
  EXPECT_EQ(got->occurrences, 4);

  Reopen();
  got = store_->GetPattern(p.pattern_id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, merged);
  EXPECT_EQ(store_->GetPattern("no-such-pattern").status().code(), StatusCode::kNotFound);
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->patterns, 1);
}

TEST_P(LearningConformance, EveryPatternTypeRoundTrips) {
  for (PatternType type : {PatternType::kToolSequence, PatternType::kDecisionPoint, PatternType::kErrorRecovery,
                           PatternType::kContextPattern}) {
    Pattern p = MakePattern("key-" + std::string(PatternTypeName(type)), type);
    Insert(p);
    auto got = store_->GetPattern(p.pattern_id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, p);
  }
}

TEST_P(LearningConformance, MergeLoadsExactlyThePatternsOfTheGivenKeys) {
  Pattern a = MakePattern("a"), b = MakePattern("b"), c = MakePattern("c");
  Insert(a);
  Insert(b);
  Insert(c);
  std::vector<std::string> keys = {"c", "never-stored", "a", "a"};
  std::set<std::string> seen;
  Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    for (const Pattern& p : patterns) seen.insert(p.similarity_key);
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(seen, (std::set<std::string>{"a", "c"}));

  // Several keys, several new and changed patterns in one merge.
  Pattern d = MakePattern("d");
  keys = {"b", "d"};
  s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    EXPECT_EQ(patterns.size(), 1u);
    for (Pattern& p : patterns) p.occurrences = 40;
    patterns.push_back(d);
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(store_->GetPattern(b.pattern_id)->occurrences, 40);
  EXPECT_EQ(*store_->GetPattern(d.pattern_id), d);
  EXPECT_EQ(store_->Stats()->patterns, 4);
}

TEST_P(LearningConformance, MergeThatFailsWritesNothing) {
  Pattern p = MakePattern("k");
  Insert(p);
  const int64_t before = Generation();
  Pattern extra = MakePattern("k2");
  std::vector<std::string> keys = {"k", "k2"};
  Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    for (Pattern& q : patterns) q.occurrences = 1000;
    patterns.push_back(extra);
    return FailedPreconditionError("the extractor changed its mind");
  });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("changed its mind"), std::string_view::npos) << s.ToString();
  EXPECT_EQ(*store_->GetPattern(p.pattern_id), p);
  EXPECT_EQ(store_->GetPattern(extra.pattern_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Stats()->patterns, 1);
  EXPECT_EQ(Generation(), before) << "a merge that wrote nothing is not a write";
}

TEST_P(LearningConformance, TwoPatternsWithOneKeyAreAlreadyExists) {
  Pattern p = MakePattern("same");
  Insert(p);
  // Two new patterns with one key in one merge.
  Pattern x = MakePattern("twice"), y = MakePattern("twice");
  std::vector<std::string> keys = {"twice"};
  Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    patterns.push_back(x);
    patterns.push_back(y);
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(store_->GetPattern(x.pattern_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetPattern(y.pattern_id).status().code(), StatusCode::kNotFound);

  // A new pattern taking the key of a stored one the merge did not load.
  Pattern clash = MakePattern("same");
  keys = {"other"};
  s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
    patterns.push_back(clash);
    return OkStatus();
  });
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(store_->GetPattern(clash.pattern_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->GetPattern(p.pattern_id), p);
  EXPECT_EQ(store_->Stats()->patterns, 1);
}

// The pipeline's workers (and other processes) merge the same key at once: each merge
// must see the one before it, or occurrences would be lost.
TEST_P(LearningConformance, ConcurrentMergesOfOneKeyLoseNoIncrement) {
  constexpr int kThreads = 4, kMerges = 25;
  const std::string key = "tool_sequence|bash>bash|cli";
  std::atomic<int> errors{0}, created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kMerges; ++i) {
        std::string evidence = "episode-" + std::to_string(t) + "-" + std::to_string(i);
        std::vector<std::string> keys = {key};
        bool made = false;
        Status s = store_->MergePatterns(keys, [&](std::vector<Pattern>& patterns) {
          made = false;
          if (patterns.empty()) {
            Pattern p;
            p.pattern_id = NewUuidV7(SystemClock());
            p.similarity_key = key;
            p.description = "bash twice";
            p.context.domain = "cli";
            p.occurrences = 1;
            p.successes = 1;
            p.success_rate = 1;
            p.evidence = {evidence};
            patterns.push_back(std::move(p));
            made = true;
            return OkStatus();
          }
          if (patterns.size() != 1) return InternalError("more than one pattern for one key");
          Pattern& p = patterns[0];
          p.occurrences += 1;
          if (i % 2 == 0) p.successes += 1;
          p.success_rate = static_cast<double>(p.successes) / static_cast<double>(p.occurrences);
          p.evidence.push_back(evidence);
          return OkStatus();
        });
        if (!s.ok()) {
          ++errors;
          ADD_FAILURE() << s.ToString();
        } else if (made) {
          ++created;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(created.load(), 1) << "exactly one merge found the key absent";
  auto all = store_->ListPatterns({});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 1u);
  const Pattern& p = (*all)[0];
  EXPECT_EQ(p.occurrences, kThreads * kMerges);
  EXPECT_EQ(p.evidence.size(), static_cast<size_t>(kThreads * kMerges));
  EXPECT_EQ(std::set<std::string>(p.evidence.begin(), p.evidence.end()).size(),
            static_cast<size_t>(kThreads * kMerges));
}

TEST_P(LearningConformance, ListPatternsFiltersAndOrdersByDecayedSuccessRate) {
  // Created in this order, so each later one is newer by created_at and by id.
  Pattern low = MakePattern("low", PatternType::kToolSequence, "web-api");
  low.success_rate = 0.5;
  Pattern high = MakePattern("high", PatternType::kErrorRecovery, "web-api");
  high.success_rate = 0.9;
  Pattern decayed = MakePattern("decayed", PatternType::kToolSequence, "cli");
  decayed.success_rate = 1.0;
  decayed.decay_weight = 0.25;  // 0.25 effective
  Pattern tie_old = MakePattern("tie-old", PatternType::kDecisionPoint, "cli");
  tie_old.success_rate = 0.8;
  tie_old.decay_weight = 1.0;
  Pattern tie_new = MakePattern("tie-new", PatternType::kToolSequence, "cli");
  tie_new.success_rate = 0.8;
  tie_new.decay_weight = 1.0;
  for (const Pattern* p : {&low, &high, &decayed, &tie_old, &tie_new}) Insert(*p);

  auto list = [&](PatternFilter f) {
    auto r = store_->ListPatterns(f);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Ids(*r) : std::vector<std::string>{};
  };
  // MakePattern's decay_weight is 0.3; with high and low back at 1.0 the decayed rates are
  // 0.9, 0.8 and 0.8 (the newer first), 0.5, and 1.0 × 0.25.
  high.decay_weight = 1.0;
  low.decay_weight = 1.0;
  std::vector<std::pair<std::string, double>> weights = {{high.pattern_id, 1.0}, {low.pattern_id, 1.0}};
  ASSERT_TRUE(store_->SetPatternDecay(weights).ok());
  EXPECT_EQ(list({}), (std::vector<std::string>{high.pattern_id, tie_new.pattern_id, tie_old.pattern_id,
                                               low.pattern_id, decayed.pattern_id}));
  EXPECT_EQ(list({.limit = 2}), (std::vector<std::string>{high.pattern_id, tie_new.pattern_id}));
  EXPECT_EQ(list({.type = PatternType::kToolSequence}),
            (std::vector<std::string>{tie_new.pattern_id, low.pattern_id, decayed.pattern_id}));
  EXPECT_EQ(list({.domain = "cli"}),
            (std::vector<std::string>{tie_new.pattern_id, tie_old.pattern_id, decayed.pattern_id}));
  EXPECT_EQ(list({.min_success_rate = 0.8}), (std::vector<std::string>{high.pattern_id, tie_new.pattern_id,
                                                                       tie_old.pattern_id, decayed.pattern_id}));
  EXPECT_EQ(list({.type = PatternType::kToolSequence, .domain = "cli", .min_success_rate = 0.9}),
            (std::vector<std::string>{decayed.pattern_id}));
  EXPECT_TRUE(list({.domain = "nowhere"}).empty());

  // What comes back is the whole pattern.
  auto all = store_->ListPatterns({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0], high);
}

// A listing reads each row whole and exactly, whatever its evidence holds and however many
// patterns share its context: every listed pattern equals what was stored, in every
// filter and limit.
TEST_P(LearningConformance, ListPatternsReturnsEveryRowExactly) {
  std::vector<Pattern> stored;
  for (int i = 0; i < 12; ++i) {
    Pattern p = MakePattern("exact-" + std::to_string(i), i % 2 == 0 ? PatternType::kToolSequence
                                                                     : PatternType::kErrorRecovery,
                            i % 3 == 0 ? "cli" : "web-api");
    p.success_rate = 0.5 + 0.04 * i;
    p.decay_weight = 1.0;
    if (i % 4 == 1) p.context.language = "go";  // contexts shared by some, not by others
    if (i % 4 == 2) p.context.tags.clear();
    if (i == 3) p.evidence.clear();
    if (i == 5) p.evidence = {"quote \" inside", "back\\slash", "ünï ✓", "tab\tand\nnewline", ""};
    if (i == 7) p.evidence = {"a,b", "[x]", "\"\""};
    stored.push_back(p);
    Insert(p);
  }
  // Highest decayed rate first: the reverse of insertion.
  std::vector<Pattern> expected(stored.rbegin(), stored.rend());
  auto all = store_->ListPatterns({});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, expected);

  auto top = store_->ListPatterns({.limit = 5});
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(*top, std::vector<Pattern>(expected.begin(), expected.begin() + 5));

  std::vector<Pattern> cli_recoveries;
  for (const Pattern& p : expected) {
    if (p.type == PatternType::kErrorRecovery && p.context.domain == "cli") cli_recoveries.push_back(p);
  }
  auto filtered = store_->ListPatterns({.type = PatternType::kErrorRecovery, .domain = "cli"});
  ASSERT_TRUE(filtered.ok()) << filtered.status().ToString();
  EXPECT_EQ(*filtered, cli_recoveries);
  EXPECT_EQ(filtered->size(), 2u);  // 3 and 9
}

TEST_P(LearningConformance, SetPatternDecayChangesOnlyTheNamedPatterns) {
  Pattern a = MakePattern("a"), b = MakePattern("b");
  Insert(a);
  Insert(b);
  const int64_t before = Generation();
  std::vector<std::pair<std::string, double>> weights = {
      {a.pattern_id, 0.123456789012345}, {"unknown-pattern", 0.5}};
  Status s = store_->SetPatternDecay(weights);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(Generation(), before);
  a.decay_weight = 0.123456789012345;
  EXPECT_EQ(*store_->GetPattern(a.pattern_id), a);
  EXPECT_EQ(*store_->GetPattern(b.pattern_id), b);
  EXPECT_EQ(store_->GetPattern("unknown-pattern").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Stats()->patterns, 2);
}

TEST_P(LearningConformance, HeuristicsAreReplacedByIdAndListedByConfidence) {
  Heuristic mid = MakeHeuristic(0.5), top = MakeHeuristic(0.95), low = MakeHeuristic(0.1);
  std::vector<Heuristic> batch = {mid, top, low};
  const int64_t before = Generation();
  ASSERT_TRUE(store_->PutHeuristics(batch).ok());
  EXPECT_GT(Generation(), before);
  auto listed = store_->ListHeuristics(10);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(*listed, (std::vector<Heuristic>{top, mid, low}));
  EXPECT_EQ(*store_->ListHeuristics(2), (std::vector<Heuristic>{top, mid}));

  // Same id: replaced, not added.
  low.confidence = 0.99;
  low.action = "split the test";
  low.sample_size = 12;
  ASSERT_TRUE(store_->PutHeuristics(std::span<const Heuristic>(&low, 1)).ok());
  Reopen();
  listed = store_->ListHeuristics(10);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<Heuristic>{low, top, mid}));
  EXPECT_EQ(store_->Stats()->heuristics, 3);
}

TEST_P(LearningConformance, AttributionsBumpEffectivenessAndCreditOnce) {
  Pattern a = MakePattern("a"), b = MakePattern("b");
  a.effectiveness = {};
  b.effectiveness = {};
  Insert(a);
  Insert(b);
  const std::string episode = NewCompletedEpisode();
  const std::string other = NewCompletedEpisode();
  const Timestamp t1 = clock_.Now() + std::chrono::seconds(1);
  const Timestamp t2 = t1 + std::chrono::seconds(1);

  // Shown: a and b to `episode`, a to `other`; an unknown pattern is ignored.
  std::vector<Attribution> shown = {{episode, a.pattern_id, false, t1},
                                    {episode, b.pattern_id, false, t1},
                                    {other, a.pattern_id, false, t1},
                                    {episode, "unknown-pattern", false, t1}};
  int64_t before = Generation();
  Status s = store_->RecordAttributions(shown);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(Generation(), before);
  Pattern got_a = *store_->GetPattern(a.pattern_id);
  Pattern got_b = *store_->GetPattern(b.pattern_id);
  EXPECT_EQ(got_a.effectiveness.times_retrieved, 2);
  EXPECT_EQ(got_a.effectiveness.times_applied, 0);
  EXPECT_EQ(got_a.effectiveness.last_used, t1);
  EXPECT_EQ(got_b.effectiveness.times_retrieved, 1);
  // Nothing else of the pattern changes.
  got_a.effectiveness = a.effectiveness;
  EXPECT_EQ(got_a, a);

  // Applied: upgrades the shown pair of b.
  std::vector<Attribution> applied = {{episode, b.pattern_id, true, t2}};
  ASSERT_TRUE(store_->RecordAttributions(applied).ok());
  got_b = *store_->GetPattern(b.pattern_id);
  EXPECT_EQ(got_b.effectiveness.times_retrieved, 1);
  EXPECT_EQ(got_b.effectiveness.times_applied, 1);
  EXPECT_EQ(got_b.effectiveness.last_used, t2);

  // Credited once per episode and pattern.
  before = Generation();
  EXPECT_EQ(Credit(episode, /*success=*/true), 2u);
  EXPECT_GT(Generation(), before);
  EXPECT_EQ(store_->GetPattern(a.pattern_id)->effectiveness.success_when_applied, 1);
  EXPECT_EQ(store_->GetPattern(b.pattern_id)->effectiveness.success_when_applied, 1);
  EXPECT_EQ(Credit(episode, /*success=*/true), 0u);
  EXPECT_EQ(Credit(other, /*success=*/false), 1u);
  EXPECT_EQ(Credit("episode-never-attributed", true), 0u);

  Reopen();
  got_a = *store_->GetPattern(a.pattern_id);
  got_b = *store_->GetPattern(b.pattern_id);
  EXPECT_EQ(got_a.effectiveness.success_when_applied, 1);
  EXPECT_EQ(got_a.effectiveness.failure_when_applied, 1);
  EXPECT_EQ(got_b.effectiveness.success_when_applied, 1);
  EXPECT_EQ(got_b.effectiveness.failure_when_applied, 0);
  EXPECT_EQ(Credit(episode, false), 0u) << "credited state survives reopen";
}

TEST_P(LearningConformance, CompletionMarksEpisodesPendingExtractionUntilMarked) {
  clock_.Advance(std::chrono::milliseconds(5));
  Episode first = MakeEpisode(clock_, 1);
  clock_.Advance(std::chrono::milliseconds(5));
  Episode second = MakeEpisode(clock_, 1);
  clock_.Advance(std::chrono::milliseconds(5));
  Episode running = MakeEpisode(clock_, 1);
  for (const Episode* e : {&first, &second, &running}) ASSERT_TRUE(store_->CreateEpisode(*e).ok());
  EXPECT_TRUE(store_->PendingExtraction(10)->empty()) << "episodes in progress are not pending";

  ASSERT_TRUE(store_->CompleteEpisode(Completed(first)).ok());
  ASSERT_TRUE(store_->CompleteEpisode(Completed(second)).ok());
  // PutEpisodes: a completed one is pending, one in progress is not.
  clock_.Advance(std::chrono::milliseconds(5));
  Episode imported = Completed(MakeEpisode(clock_, 2));
  clock_.Advance(std::chrono::milliseconds(5));
  Episode imported_running = MakeEpisode(clock_, 2);
  std::vector<Episode> batch = {imported, imported_running};
  ASSERT_TRUE(store_->PutEpisodes(batch).ok());

  auto pending = store_->PendingExtraction(10);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  EXPECT_EQ(*pending, (std::vector<std::string>{first.episode_id, second.episode_id, imported.episode_id}));
  EXPECT_EQ(*store_->PendingExtraction(2), (std::vector<std::string>{first.episode_id, second.episode_id}));

  const int64_t before = Generation();
  std::vector<std::string> done = {second.episode_id, "unknown-episode"};
  ASSERT_TRUE(store_->MarkExtracted(done).ok());
  EXPECT_GT(Generation(), before);
  Reopen();
  EXPECT_EQ(*store_->PendingExtraction(10), (std::vector<std::string>{first.episode_id, imported.episode_id}));

  // Deleting an episode takes its mark with it.
  ASSERT_TRUE(*store_->DeleteEpisode(first.episode_id));
  EXPECT_EQ(*store_->PendingExtraction(10), (std::vector<std::string>{imported.episode_id}));
}

TEST_P(LearningConformance, ResetLearningClearsLearningAndMarksEveryCompletedEpisode) {
  const std::string e1 = NewCompletedEpisode();
  const std::string e2 = NewCompletedEpisode();
  clock_.Advance(std::chrono::milliseconds(5));
  Episode running = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(running).ok());
  std::vector<std::string> both = {e1, e2};
  ASSERT_TRUE(store_->MarkExtracted(both).ok());
  ASSERT_TRUE(store_->PendingExtraction(10)->empty());

  Pattern p = MakePattern("k");
  Insert(p);
  Heuristic h = MakeHeuristic(0.7);
  ASSERT_TRUE(store_->PutHeuristics(std::span<const Heuristic>(&h, 1)).ok());
  std::vector<Attribution> shown = {{running.episode_id, p.pattern_id, true, clock_.Now()}};
  ASSERT_TRUE(store_->RecordAttributions(shown).ok());
  ExtractionBatch fed;
  fed.keys = {p.similarity_key};
  fed.merge = [&](std::vector<Pattern>&, ExtractionOutput& out) {
    out.episode_patterns = {{e1, p.pattern_id}, {e2, p.pattern_id}};
    return OkStatus();
  };
  ASSERT_TRUE(store_->CommitExtraction(fed).ok());
  ASSERT_EQ(PatternIdsOf(e1), std::vector<std::string>{p.pattern_id});

  const int64_t before = Generation();
  Status s = store_->ResetLearning();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(Generation(), before);
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->patterns, 0);
  EXPECT_EQ(stats->heuristics, 0);
  EXPECT_EQ(stats->episodes, 3) << "episodes stay";
  EXPECT_TRUE(store_->ListPatterns({})->empty());
  EXPECT_TRUE(store_->ListHeuristics(10)->empty());
  EXPECT_EQ(store_->GetPattern(p.pattern_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->PendingExtraction(10), (std::vector<std::string>{e1, e2}));
  EXPECT_TRUE(PatternIdsOf(e1).empty()) << "re-extraction fills pattern_ids again";
  EXPECT_TRUE(PatternIdsOf(e2).empty());
  // The attribution went too: nothing to credit when the running episode ends.
  EXPECT_EQ(Credit(running.episode_id, true), 0u);

  // The key is free again.
  Pattern fresh = MakePattern("k");
  EXPECT_EQ(Insert(fresh), 0u);
  EXPECT_EQ(*store_->GetPattern(fresh.pattern_id), fresh);
}

TEST_P(LearningConformance, CommitExtractionWritesTheWholeBatchInOneTransaction) {
  Pattern a = MakePattern("a");
  a.effectiveness = {};
  Insert(a);
  const std::string e1 = NewCompletedEpisode();
  const std::string e2 = NewCompletedEpisode();
  const std::string untouched = NewCompletedEpisode();
  std::vector<Attribution> shown = {{e1, a.pattern_id, true, clock_.Now()}};
  ASSERT_TRUE(store_->RecordAttributions(shown).ok());
  Pattern b = MakePattern("b");
  Heuristic h = MakeHeuristic(0.6);

  ExtractionBatch batch;
  batch.keys = {"a", "b", "a"};
  size_t seen = 99;
  batch.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) {
    seen = patterns.size();
    for (Pattern& p : patterns) p.occurrences += 10;
    patterns.push_back(b);
    out.heuristics = {h};
    // e1 fed both (b twice), e2 fed b; an unknown episode is ignored.
    out.episode_patterns = {{e1, a.pattern_id}, {e1, b.pattern_id}, {e2, b.pattern_id},
                            {e1, b.pattern_id}, {"episode-that-does-not-exist", a.pattern_id}};
    return OkStatus();
  };
  batch.outcomes = {{e1, true}, {e2, false}};
  batch.extracted = {e1, e2, "episode-that-does-not-exist"};
  const int64_t before = Generation();
  Result<size_t> credited = store_->CommitExtraction(batch);
  ASSERT_TRUE(credited.ok()) << credited.status().ToString();
  EXPECT_EQ(*credited, 1u);
  EXPECT_EQ(seen, 1u) << "the merge sees the stored patterns of its keys";
  EXPECT_GT(Generation(), before);

  Reopen();
  EXPECT_EQ(PatternIdsOf(e1), (std::vector<std::string>{a.pattern_id, b.pattern_id}));
  EXPECT_EQ(PatternIdsOf(e2), std::vector<std::string>{b.pattern_id});
  EXPECT_TRUE(PatternIdsOf(untouched).empty());
  EXPECT_EQ(store_->GetPattern(a.pattern_id)->occurrences, a.occurrences + 10);
  EXPECT_EQ(store_->GetPattern(a.pattern_id)->effectiveness.success_when_applied, 1);
  EXPECT_EQ(*store_->GetPattern(b.pattern_id), b);
  EXPECT_EQ(*store_->ListHeuristics(10), std::vector<Heuristic>{h});
  EXPECT_EQ(*store_->PendingExtraction(10), std::vector<std::string>{untouched});

  // Again: nothing is listed twice, nothing credited twice; new ids go after the old.
  Pattern c = MakePattern("c");
  ExtractionBatch again;
  again.keys = {"c"};
  again.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) {
    patterns.push_back(c);
    out.episode_patterns = {{e1, b.pattern_id}, {e1, c.pattern_id}, {e1, a.pattern_id}};
    return OkStatus();
  };
  again.outcomes = {{e1, true}};
  again.extracted = {e1};
  credited = store_->CommitExtraction(again);
  ASSERT_TRUE(credited.ok()) << credited.status().ToString();
  EXPECT_EQ(*credited, 0u);
  EXPECT_EQ(PatternIdsOf(e1), (std::vector<std::string>{a.pattern_id, b.pattern_id, c.pattern_id}));
  EXPECT_EQ(store_->GetPattern(a.pattern_id)->effectiveness.success_when_applied, 1);

  // Without a merge: credits and marks only.
  ExtractionBatch marks_only;
  marks_only.extracted = {untouched};
  ASSERT_TRUE(store_->CommitExtraction(marks_only).ok());
  EXPECT_TRUE(store_->PendingExtraction(10)->empty());
}

TEST_P(LearningConformance, CommitExtractionThatFailsWritesNothing) {
  Pattern a = MakePattern("a");
  a.effectiveness = {};
  Insert(a);
  const std::string e1 = NewCompletedEpisode();
  std::vector<Attribution> shown = {{e1, a.pattern_id, false, clock_.Now()}};
  ASSERT_TRUE(store_->RecordAttributions(shown).ok());
  const Pattern stored = *store_->GetPattern(a.pattern_id);

  ExtractionBatch batch;
  batch.keys = {"a", "b"};
  batch.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) {
    for (Pattern& p : patterns) p.occurrences += 1;
    patterns.push_back(MakePattern("b"));
    out.heuristics = {MakeHeuristic(0.9)};
    out.episode_patterns = {{e1, a.pattern_id}};
    return InternalError("merge gave up");
  };
  batch.outcomes = {{e1, true}};
  batch.extracted = {e1};
  Result<size_t> credited = store_->CommitExtraction(batch);
  EXPECT_EQ(credited.status().code(), StatusCode::kInternal);
  EXPECT_EQ(*store_->GetPattern(a.pattern_id), stored);
  EXPECT_EQ(store_->ListPatterns({})->size(), 1u);
  EXPECT_TRUE(store_->ListHeuristics(10)->empty());
  EXPECT_TRUE(PatternIdsOf(e1).empty());
  EXPECT_EQ(*store_->PendingExtraction(10), std::vector<std::string>{e1});
  EXPECT_EQ(Credit(e1, true), 1u) << "the failed commit credited nothing";

  // A heuristic that cannot be stored fails the batch too, after a merge that succeeded.
  ExtractionBatch bad;
  bad.keys = {"a"};
  bad.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) {
    for (Pattern& p : patterns) p.occurrences += 1;
    Heuristic h = MakeHeuristic(0.5);
    h.heuristic_id.clear();
    out.heuristics = {h};
    out.episode_patterns = {{e1, a.pattern_id}};
    return OkStatus();
  };
  bad.extracted = {e1};
  EXPECT_EQ(store_->CommitExtraction(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetPattern(a.pattern_id)->occurrences, stored.occurrences);
  EXPECT_TRUE(PatternIdsOf(e1).empty());
  EXPECT_EQ(*store_->PendingExtraction(10), std::vector<std::string>{e1});
}

TEST_P(LearningConformance, EveryLearningWriteBumpsTheGeneration) {
  int64_t g = Generation();
  auto bumped = [&](const char* what) {
    int64_t now = Generation();
    EXPECT_GT(now, g) << what;
    g = now;
  };
  Insert(MakePattern("k"));
  bumped("MergePatterns");
  Heuristic h = MakeHeuristic(0.5);
  ASSERT_TRUE(store_->PutHeuristics(std::span<const Heuristic>(&h, 1)).ok());
  bumped("PutHeuristics");
  const std::string e = NewCompletedEpisode();
  bumped("CompleteEpisode");
  std::vector<std::string> ids = {e};
  ASSERT_TRUE(store_->MarkExtracted(ids).ok());
  bumped("MarkExtracted");
  ASSERT_TRUE(store_->ResetLearning().ok());
  bumped("ResetLearning");
}

INSTANTIATE_TEST_SUITE_P(AllBackends, LearningConformance, ::testing::ValuesIn(AllBackendFactories()),
                         BackendName);

}  // namespace
}  // namespace engram::testing
