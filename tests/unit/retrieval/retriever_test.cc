#include "retrieval/retriever.h"

#include <chrono>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/embedding.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "retrieval/vector_index.h"
#include "semantics/concept_map.h"
#include "semantics/query_expander.h"
#include "testing/sqlite_store.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::chrono::hours kDay{24};

class RetrievalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::OpenTestSqlite(dir_.File("memory.db"));
    ASSERT_NE(store_, nullptr);
    memory_ = std::make_unique<Memory>(*store_, clock_, nullptr);
    retriever_ = std::make_unique<Retriever>(*store_, clock_, nullptr, nullptr, RankingOptions{});
  }

  // Switches to hybrid retrieval: the hashing provider over this store, a memory-only
  // vector index, and every completed episode embedded.
  void EnableVectors(RankingOptions options = {}) {
    Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider(HashingOptions{}, store_.get());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    provider_ = *std::move(p);
    retriever_ = std::make_unique<Retriever>(*store_, clock_, provider_.get(), nullptr, options);
    ASSERT_TRUE(retriever_->IndexPending(0).ok());
    Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*store_, provider_->Space(), VectorIndexOptions{});
    ASSERT_TRUE(index.ok()) << index.status().ToString();
    index_ = *std::move(index);
    retriever_->SetIndex(index_.get());
  }

  struct Spec {
    std::string task{};
    std::string domain = "web-api";
    TaskType type = TaskType::kDebugging;
    std::vector<std::pair<std::string, std::string>> steps = {{"bash", "run the tests"}};
    OutcomeKind outcome = OutcomeKind::kSuccess;
    bool complete = true;
  };

  // Records an episode through Memory (so reward and reflection are real) and moves the
  // clock on a second, so ids and times are distinct.
  std::string Record(const Spec& spec) {
    NewEpisode ne;
    ne.task_description = spec.task;
    ne.task_type = spec.type;
    ne.context.domain = spec.domain;
    Result<std::string> id = memory_->CreateEpisode(std::move(ne));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    for (const auto& [tool, action] : spec.steps) {
      NewStep step;
      step.tool = tool;
      step.action = action;
      step.result = StepResult{StepStatus::kSuccess, "ok", std::nullopt};
      EXPECT_TRUE(memory_->AddStep(*id, std::move(step)).ok());
    }
    clock_.Advance(std::chrono::seconds(30));
    if (spec.complete) {
      Outcome o;
      o.kind = spec.outcome;
      if (o.kind == OutcomeKind::kFailure) o.reason = "gave up"; else o.verdict = "done";
      Result<Episode> done = memory_->CompleteEpisode(*id, o);
      EXPECT_TRUE(done.ok()) << done.status().ToString();
    }
    clock_.Advance(std::chrono::seconds(1));
    return *id;
  }

  Result<std::vector<ScoredEpisode>> Retrieve(RetrievalQuery q) {
    if (!provider_) q.mode = RetrievalMode::kLexical;
    ENGRAM_ASSIGN_OR_RETURN(RetrievalResult r, retriever_->Retrieve(q));
    last_ = r;
    return std::move(r.episodes);
  }

  static std::vector<std::string> Ids(const std::vector<ScoredEpisode>& hits) {
    std::vector<std::string> ids;
    for (const auto& h : hits) ids.push_back(h.episode.episode_id);
    return ids;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<Memory> memory_;
  std::unique_ptr<EmbeddingProvider> provider_;
  std::unique_ptr<VectorIndex> index_;
  std::unique_ptr<Retriever> retriever_;
  RetrievalResult last_;
};

TEST(RetrievalTokensTest, LowerCasesDropsStopWordsAndPlurals) {
  EXPECT_THAT(RetrievalTokens("Fix the flaky Tests in web_api (class Status)!"),
              ElementsAre("fix", "flaky", "test", "web", "api", "class", "status"));
  EXPECT_THAT(RetrievalTokens("a I to"), ElementsAre());
  EXPECT_THAT(RetrievalTokens("Größe über"), ElementsAre("größe", "über"));
  // A light stemmer: plurals, -ing and -ed, so "deploying" meets "deployed".
  EXPECT_THAT(RetrievalTokens("deploying deployed deployments queries running stopped falling bed ring e2e tested"),
              ElementsAre("deploy", "deploy", "deployment", "query", "run", "stop", "fall", "bed", "ring", "e2e",
                          "test"));
}

TEST_F(RetrievalTest, EmptyStoreAnswersAnEmptyList) {
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "anything at all"});
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  EXPECT_TRUE(hits->empty());
}

TEST_F(RetrievalTest, RelevantEpisodeRanksFirstAndUnrelatedOnesAreLeftOut) {
  std::string docs = Record({.task = "Write the README section about installation", .type = TaskType::kDocumentation,
                             .steps = {{"edit_file", "wrote README.md"}}});
  std::string flaky = Record({.task = "Fix the flaky async retry test in the payments client",
                              .steps = {{"cargo", "ran cargo test retry"}, {"edit_file", "added a timeout"}}});
  std::string pool = Record({.task = "Refactor the database connection pool", .type = TaskType::kRefactoring});

  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "flaky retry test keeps failing"});
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_FALSE(hits->empty());
  EXPECT_EQ((*hits)[0].episode.episode_id, flaky);
  EXPECT_GT((*hits)[0].lexical, 0);
  for (const ScoredEpisode& h : *hits) {
    EXPECT_NE(h.episode.episode_id, docs) << "shares no word with the query";
    EXPECT_GE(h.score, 0);
    EXPECT_LE(h.score, 1);
    EXPECT_GE(h.reward, 0);
    EXPECT_LE(h.reward, 1);
  }
  // "run the tests" is a step of the pool episode: it matches "test", but ranks lower.
  EXPECT_THAT(Ids(*hits), ElementsAre(flaky, pool));

  // Step tools are searchable too.
  hits = Retrieve({.text = "cargo"});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(flaky));
}

TEST_F(RetrievalTest, DomainIsAStrongSignalButNotAFilter) {
  std::string a = Record({.task = "Fix the login timeout", .domain = "auth-service"});
  std::string b = Record({.task = "Fix the login timeout", .domain = "web-api"});

  RetrievalQuery q{.text = "login timeout"};
  q.domain = "auth-service";
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(a, b)) << "the older episode wins on domain";
  EXPECT_EQ((*hits)[0].context, 1.0);
  EXPECT_EQ((*hits)[1].context, 0.0);

  q.domain = "web-api";
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(b, a));

  q.domain = "auth-service";
  q.domain_filter = true;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(a));

  RetrievalQuery no_domain{.text = "login", .domain_filter = true};
  EXPECT_EQ(Retrieve(no_domain).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RetrievalTest, TaskTypeMatchCounts) {
  std::string testing_ep = Record({.task = "Parser edge cases", .type = TaskType::kTesting});
  std::string docs_ep = Record({.task = "Parser edge cases", .type = TaskType::kDocumentation});
  RetrievalQuery q{.text = "parser edge cases", .task_type = TaskType::kTesting};
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(testing_ep, docs_ep));
}

TEST_F(RetrievalTest, LimitDefaultsToTenAndIsChecked) {
  // Two-digit attempt numbers keep every description the same length in words.
  for (int i = 10; i < 22; ++i) Record({.task = "Tune the cache eviction policy, attempt " + std::to_string(i)});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "cache eviction"});
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), kDefaultRetrievalLimit);
  hits = Retrieve({.text = "cache eviction", .limit = 3});
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 3u);
  // Identical relevance: the most recent first.
  EXPECT_THAT((*hits)[0].episode.task_description, HasSubstr("attempt 21"));

  Result<std::vector<ScoredEpisode>> bad = Retrieve({.text = "cache", .limit = 0});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("limit"));
  EXPECT_EQ(Retrieve({.text = "cache", .limit = kMaxQueryLimit + 1}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RetrievalTest, MaxTokensCutsTheListInRankOrder) {
  for (int i = 0; i < 4; ++i) Record({.task = "Speed up the image resize pipeline " + std::to_string(i)});
  Result<std::vector<ScoredEpisode>> all = Retrieve({.text = "image resize"});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  size_t first_two = (*all)[0].tokens + (*all)[1].tokens;
  EXPECT_EQ((*all)[0].tokens, EstimateTokens((*all)[0].episode));

  RetrievalQuery q{.text = "image resize"};
  q.max_tokens = first_two;
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre((*all)[0].episode.episode_id, (*all)[1].episode.episode_id));

  q.max_tokens = 1;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty()) << "nothing fits in one token";
}

TEST_F(RetrievalTest, OnlyCompletedEpisodesAreCandidates) {
  Record({.task = "Investigate the memory leak in the worker", .complete = false});
  std::string done = Record({.task = "Investigate the memory leak in the scheduler"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "memory leak"});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(done));
}

TEST_F(RetrievalTest, RecencyHalvesEveryThirtyDays) {
  std::string old = Record({.task = "Rotate the TLS certificates"});
  clock_.Advance(60 * kDay);
  std::string recent = Record({.task = "Rotate the TLS certificates"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "rotate tls certificates"});
  ASSERT_TRUE(hits.ok());
  ASSERT_THAT(Ids(*hits), ElementsAre(recent, old));
  EXPECT_NEAR((*hits)[0].recency, 1.0, 0.01);
  EXPECT_NEAR((*hits)[1].recency, 0.25, 0.01);
}

TEST_F(RetrievalTest, RewardLiftsSuccessOverFailure) {
  std::string failed = Record({.task = "Upgrade the web framework", .outcome = OutcomeKind::kFailure});
  std::string worked = Record({.task = "Upgrade the web framework", .outcome = OutcomeKind::kSuccess});
  clock_.Advance(std::chrono::seconds(1));
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "upgrade web framework"});
  ASSERT_TRUE(hits.ok());
  ASSERT_THAT(Ids(*hits), ElementsAre(worked, failed));
  EXPECT_GT((*hits)[0].reward, (*hits)[1].reward);
  EXPECT_LT((*hits)[1].reward, 0.1) << "a failure earns at most its learning bonus";
}

TEST_F(RetrievalTest, AllowedDomainsHideOtherDomains) {
  std::string mine = Record({.task = "Rate limit the public endpoints", .domain = "web-api"});
  Record({.task = "Rate limit the admin endpoints", .domain = "secret"});
  RetrievalQuery q{.text = "rate limit endpoints", .allowed_domains = {"web-api"}};
  Result<std::vector<ScoredEpisode>> hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(mine));

  q.allowed_domains = {"web-api", "other"};
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(Ids(*hits), ElementsAre(mine));

  q.domain = "secret";
  q.domain_filter = true;
  hits = Retrieve(q);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
}

TEST_F(RetrievalTest, StepOutputsAreDroppedFromResults) {
  std::string id = Record({.task = "Bisect the regression in the renderer", .steps = {{"git", "bisect run"}}});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "bisect renderer regression"});
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  ASSERT_EQ((*hits)[0].episode.steps.size(), 1u);
  EXPECT_EQ((*hits)[0].episode.steps[0].tool, "git");
  ASSERT_TRUE((*hits)[0].episode.steps[0].result.has_value());
  EXPECT_FALSE((*hits)[0].episode.steps[0].result->output.has_value());
  EXPECT_TRUE((*hits)[0].episode.reflection.has_value());
}

TEST_F(RetrievalTest, QueryOfOnlyStopWordsFindsNothing) {
  Record({.task = "One"});
  Result<std::vector<ScoredEpisode>> hits = Retrieve({.text = "the"});
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
}

TEST_F(RetrievalTest, CancellationStopsTheScan) {
  Record({.task = "Anything"});
  RetrievalQuery q{.text = "anything", .cancelled = [] { return true; }};
  EXPECT_EQ(Retrieve(q).status().code(), StatusCode::kCancelled);
}

TEST_F(RetrievalTest, BadInputGetsClearErrors) {
  Record({.task = "Anything"});
  for (const char* blank : {"", "   ", "\t\n "}) {
    Result<std::vector<ScoredEpisode>> r = Retrieve({.text = blank});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "[" << blank << "]";
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("query"));
  }
  RetrievalQuery q{.text = "anything"};
  q.max_tokens = 0;
  EXPECT_EQ(Retrieve(q).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RetrievalTest, FullTextSyntaxInQueriesIsNeverAnError) {
  std::string id = Record({.task = "Fix the quoting bug in the CSV exporter"});
  for (const char* hostile : {"\"quoting", "csv*", "NEAR(csv exporter)", "csv AND OR NOT", "-csv", "csv:exporter",
                              "^csv", "(((", "\"\"\"", "{csv}", "csv + exporter", "'; DROP TABLE episodes; --"}) {
    Result<std::vector<ScoredEpisode>> r = Retrieve({.text = hostile});
    ASSERT_TRUE(r.ok()) << hostile << ": " << r.status().ToString();
  }
  Result<std::vector<ScoredEpisode>> r = Retrieve({.text = "NEAR(csv exporter)"});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(Ids(*r), ElementsAre(id)) << "syntax characters are ignored, the words still match";
}

TEST_F(RetrievalTest, MegabyteQueryIsCutNotRefused) {
  std::string id = Record({.task = "Tune the garbage collector pauses"});
  std::string huge = "garbage collector pauses ";
  while (huge.size() < (1 << 20)) huge += "lorem ipsum dolor sit amet ";
  Result<std::vector<ScoredEpisode>> r = Retrieve({.text = huge});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(Ids(*r), ElementsAre(id));
}

TEST_F(RetrievalTest, QueryCacheIsInvalidatedByAnyWrite) {
  EnableVectors();
  std::string first = Record({.task = "Shard the sessions table"});
  RetrievalQuery q{.text = "shard sessions table"};
  ASSERT_TRUE(Retrieve(q).ok());
  EXPECT_FALSE(last_.from_cache);
  ASSERT_TRUE(Retrieve(q).ok());
  EXPECT_TRUE(last_.from_cache) << "same request, no write in between";
  std::string second = Record({.task = "Shard the sessions table again"});
  Result<std::vector<ScoredEpisode>> r = Retrieve(q);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(last_.from_cache) << "a write bumps the store's generation";
  EXPECT_EQ(r->size(), 2u);
  RetrievalQuery other = q;
  other.limit = 1;
  ASSERT_TRUE(Retrieve(other).ok());
  EXPECT_FALSE(last_.from_cache) << "the key is the whole request";
  RetrievalMetrics m = retriever_->Metrics();
  EXPECT_EQ(m.cache_hits, 1);
}

TEST_F(RetrievalTest, HybridFindsWordPiecesLexicalMisses) {
  // "deploys" / "deployment" share no whole word with "deploying", but the hashed
  // character n-grams overlap: only the vector side can see it.
  std::string target = Record({.task = "Speed up deployments of the billing service"});
  Record({.task = "Write the onboarding guide for new hires"});
  Record({.task = "Rotate the database credentials"});
  EnableVectors();
  RetrievalQuery q{.text = "deploying billing faster", .mode = RetrievalMode::kVector};
  Result<std::vector<ScoredEpisode>> r = Retrieve(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->empty());
  EXPECT_EQ((*r)[0].episode.episode_id, target);
  EXPECT_GT((*r)[0].semantic, 0);
  EXPECT_TRUE(last_.semantic_used);
  EXPECT_TRUE(last_.notice.empty());

  q.mode = RetrievalMode::kHybrid;
  r = Retrieve(q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].episode.episode_id, target);
  EXPECT_GT((*r)[0].semantic, 0);
  EXPECT_GT((*r)[0].lexical, 0) << "\"billing\" matches lexically too";
}

TEST_F(RetrievalTest, WithoutVectorsTheResultSaysItIsLexicalOnly) {
  Record({.task = "Profile the image thumbnailer"});
  RetrievalQuery q{.text = "image thumbnailer"};
  Result<RetrievalResult> r = retriever_->Retrieve(q);  // hybrid asked, no provider configured: no notice
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->semantic_used);
  EXPECT_TRUE(r->notice.empty());
  ASSERT_EQ(r->episodes.size(), 1u);

  // A provider whose index is not open yet: lexical only, and the result says so.
  Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider(HashingOptions{}, store_.get());
  ASSERT_TRUE(p.ok());
  Retriever loading(*store_, clock_, p->get(), nullptr, RankingOptions{});
  r = loading.Retrieve(q);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->semantic_used);
  EXPECT_THAT(r->notice, HasSubstr("lexical match only"));
  EXPECT_THAT(r->notice, HasSubstr("loading"));
  ASSERT_EQ(r->episodes.size(), 1u);
}

TEST_F(RetrievalTest, AnUnreachableEmbeddingServerFallsBackToLexical) {
  Record({.task = "Shrink the docker image of the API"});
  HttpEmbeddingOptions http;
  http.url = "http://127.0.0.1:1/v1/embeddings";  // nothing listens on port 1
  http.model = "test";
  http.dimension = 8;
  http.timeout = std::chrono::milliseconds(500);
  http.max_retries = 0;
  http.breaker_failure_threshold = 1;
  Result<std::unique_ptr<EmbeddingProvider>> p = MakeHttpProvider(http, clock_);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*store_, (*p)->Space(), VectorIndexOptions{});
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  Retriever retriever(*store_, clock_, p->get(), index->get(), RankingOptions{});
  for (int i = 0; i < 2; ++i) {  // the first call fails on the network, the second on the open breaker
    Result<RetrievalResult> r = retriever.Retrieve({.text = "docker image size"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->semantic_used);
    EXPECT_THAT(r->notice, HasSubstr("lexical match only"));
    ASSERT_EQ(r->episodes.size(), 1u) << "the lexical side still answers";
  }
  EXPECT_FALSE((*p)->Health().available) << "one failure opens this breaker";
  EXPECT_EQ(retriever.Metrics().degraded, 2);
}

// A provider that forwards to another until told to fail (a server down, a breaker open).
class SwitchedProvider final : public EmbeddingProvider {
 public:
  explicit SwitchedProvider(EmbeddingProvider& inner) : inner_(inner) {}
  EmbeddingSpace Space() const override { return inner_.Space(); }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose purpose) override {
    if (down) return UnavailableError("embedding server is down");
    return inner_.Embed(texts, purpose);
  }
  EmbeddingHealth Health() const override { return inner_.Health(); }
  bool down = false;

 private:
  EmbeddingProvider& inner_;
};

TEST_F(RetrievalTest, EpisodesWhoseEmbeddingFailedAreEmbeddedWithTheNextCompletion) {
  Result<std::unique_ptr<EmbeddingProvider>> hashing = MakeHashingProvider(HashingOptions{}, store_.get());
  ASSERT_TRUE(hashing.ok());
  SwitchedProvider provider(**hashing);
  Retriever retriever(*store_, clock_, &provider, nullptr, RankingOptions{});
  ASSERT_TRUE(retriever.IndexPending(0).ok());  // records the space
  Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*store_, provider.Space(), VectorIndexOptions{});
  ASSERT_TRUE(index.ok());
  retriever.SetIndex(index->get());

  provider.down = true;
  const std::string a = Record({.task = "Shrink the docker image of the API"});
  const std::string b = Record({.task = "Pin the base image digest"});
  EXPECT_FALSE(retriever.IndexEpisodes({a}).ok());
  EXPECT_FALSE(retriever.IndexEpisodes({b}).ok());
  EXPECT_EQ(retriever.RetryBacklog(), 2u);
  EXPECT_EQ((*index)->size(), 0u);

  provider.down = false;
  const std::string c = Record({.task = "Cache the npm install layer"});
  Result<size_t> n = retriever.IndexEpisodes({c});
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3u) << "the two that failed come along with the new one";
  EXPECT_EQ(retriever.RetryBacklog(), 0u);
  EXPECT_EQ((*index)->size(), 3u);
  for (const std::string& id : {a, b, c}) {
    EXPECT_TRUE((*index)->Similarity(std::vector<float>(provider.Space().dimension, 0.1f), id).has_value()) << id;
  }
}

TEST_F(RetrievalTest, ComponentsExplainTheScore) {
  EnableVectors();
  Record({.task = "Cache the pricing rules", .domain = "billing"});
  RetrievalQuery q{.text = "cache pricing rules"};
  q.domain = "billing";
  Result<std::vector<ScoredEpisode>> r = Retrieve(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  const ScoredEpisode& s = (*r)[0];
  const RankingWeights w;
  double expected = (w.semantic * s.semantic + w.lexical * s.lexical + w.context * s.context +
                     w.reward * s.reward + w.recency * s.recency) /
                    (w.semantic + w.lexical + w.context + w.reward + w.recency);
  EXPECT_NEAR(s.score, expected, 1e-9);
  EXPECT_EQ(s.context, 1.0);
  EXPECT_EQ(s.lexical, 1.0) << "the best lexical hit scores 1";
}

TEST(MmrTest, DiversityPromotesADifferentItemOverANearDuplicate) {
  // Items 0 and 1 are near duplicates; 2 is different and scores a little lower.
  std::vector<double> scores = {0.90, 0.89, 0.80};
  auto sim = [](size_t i, size_t j) { return (i < 2 && j < 2) ? 0.95 : 0.0; };
  EXPECT_THAT(MmrOrder(scores, 0.7, 3, sim), ElementsAre(0, 2, 1));
  EXPECT_THAT(MmrOrder(scores, 1.0, 3, sim), ElementsAre(0, 1, 2)) << "lambda 1: relevance only";
  EXPECT_THAT(MmrOrder(scores, 0.7, 1, sim), ElementsAre(0));
  EXPECT_TRUE(MmrOrder({}, 0.7, 5, sim).empty());
}

TEST(RankingOptionsTest, BadOptionsAreNamed) {
  RankingOptions o;
  EXPECT_TRUE(ValidateRankingOptions(o).ok());
  o.weights.lexical = -1;
  EXPECT_THAT(std::string(ValidateRankingOptions(o).message()), HasSubstr("lexical"));
  o = {};
  o.mmr_lambda = 1.5;
  EXPECT_THAT(std::string(ValidateRankingOptions(o).message()), HasSubstr("mmr_lambda"));
  o = {};
  o.weights = {0, 0, 0, 0, 0, 0, 0};  // the expansion weights too
  EXPECT_FALSE(ValidateRankingOptions(o).ok());
}

// The expansion's full-text search (concept alternatives' words) runs only when the vector
// side did not already search with the alternatives: hybrid finds the target through its
// expanded query vector, lexical-only through the extra search.
TEST_F(RetrievalTest, ExpansionSearchRunsOnlyWhenTheVectorSideDidNot) {
  const std::string target = Record({.task = "Session expired after five minutes on the dashboard"});
  Record({.task = "Add pagination to the orders endpoint"});
  Record({.task = "Rotate the database credentials"});
  Result<ConceptMap> map = ConceptMap::Parse("logged-out: logged out, signed out, session expired\n", "test");
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  QueryExpander expander(&*map, nullptr);
  RankingOptions options;
  options.weights.concepts = 0.4;
  EnableVectors(options);
  retriever_->SetExpander(&expander, ExpansionHealth{.detail = "test"});

  RetrievalQuery q{.text = "users signed out"};
  Result<std::vector<ScoredEpisode>> r = Retrieve(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(last_.semantic_used);
  EXPECT_EQ(last_.expansion_hits, 0u);
  ASSERT_FALSE(r->empty());
  EXPECT_EQ((*r)[0].episode.episode_id, target);
  EXPECT_DOUBLE_EQ((*r)[0].concepts, 1.0);

  q.mode = RetrievalMode::kLexical;
  r = Retrieve(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(last_.expansion_hits, 0u);
  ASSERT_FALSE(r->empty());
  EXPECT_EQ((*r)[0].episode.episode_id, target);

  // Without vector expansion the query vector lacks the alternatives: the search runs.
  options.vector_expansion = 0;
  ASSERT_TRUE(retriever_->SetOptions(options).ok());
  q.mode = RetrievalMode::kHybrid;
  r = Retrieve(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(last_.semantic_used);
  EXPECT_GT(last_.expansion_hits, 0u);
  ASSERT_FALSE(r->empty());
  EXPECT_EQ((*r)[0].episode.episode_id, target);
}

}  // namespace
}  // namespace engram
