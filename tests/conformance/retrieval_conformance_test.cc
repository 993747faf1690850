// The retrieval index of every backend (schema v2): full-text search over completed
// episodes, document frequencies, the store generation, and the vectors of one embedding
// space. Same cases for every backend in backend_factories.cc.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "conformance/conformance_fixture.h"
#include "model/search_text.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram::testing {
namespace {

class RetrievalConformance : public ConformanceTest {
 protected:
  // A completed episode whose title is `title` and whose one step's action is `body`.
  Episode Doc(const std::string& title, const std::string& body, const std::string& domain = "web-api") {
    clock_.Advance(std::chrono::milliseconds(3));
    Episode e = MakeEpisode(clock_, 0, domain);
    e.task_description = title;
    e.context.language.reset();  // MakeEpisode's context and tags would put the same
    e.context.framework.reset();  // words into every document
    e.context.tags.clear();
    e.tags.clear();
    Step s = MakeStep(1, "shell");
    s.action = body;
    e.steps = {s};
    return Completed(e);
  }

  // Stores `e` as an agent would: create in progress, then complete.
  void Record(const Episode& e) {
    Episode started = e;
    started.end_time.reset();
    started.outcome.reset();
    started.reward.reset();
    started.reflection.reset();
    ASSERT_TRUE(store_->CreateEpisode(started).ok());
    Status s = store_->CompleteEpisode(e);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::vector<TextHit> Search(std::vector<std::string> words, size_t limit = 100,
                              std::optional<std::string> domain = std::nullopt,
                              std::vector<std::string> allowed = {}) {
    TextSearchRequest request;
    request.words = std::move(words);
    request.limit = limit;
    request.domain = std::move(domain);
    request.allowed_domains = std::move(allowed);
    auto hits = store_->SearchText(request);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    return hits.ok() ? *hits : std::vector<TextHit>{};
  }

  static std::vector<std::string> Ids(const std::vector<TextHit>& hits) {
    std::vector<std::string> ids;
    for (const TextHit& h : hits) ids.push_back(h.episode_id);
    return ids;
  }
  static std::set<std::string> IdSet(const std::vector<TextHit>& hits) {
    std::vector<std::string> ids = Ids(hits);
    return {ids.begin(), ids.end()};
  }

  std::vector<EpisodeVector> AllVectors(const EmbeddingSpace& space, int64_t after = 0) {
    return Drain<EpisodeVector>(store_->ListVectors(space, after));
  }

  Pattern NewPattern(const std::string& key) {
    Pattern p;
    p.pattern_id = NewUuidV7(clock_);
    p.similarity_key = key;
    p.description = "cargo test after edit";
    p.occurrences = 1;
    p.successes = 1;
    p.success_rate = 1.0;
    p.created_at = At(1'767'225'600'000);
    p.updated_at = p.created_at;
    return p;
  }
};

const EmbeddingSpace kSpace{"hashing", "hash-v1", 4};
const EmbeddingSpace kOtherSpace{"http", "text-embedding-3-small", 4};

// ---- full-text search ----

TEST_P(RetrievalConformance, EmptyStoreAndEmptyWordsFindNothing) {
  EXPECT_TRUE(Search({"anything"}).empty());
  Record(Doc("kafka consumer rebalance", "restart the broker"));
  EXPECT_TRUE(Search({}).empty());
  EXPECT_TRUE(Search({"kafka"}, /*limit=*/0).empty());
  auto stats = store_->GetTermStats({});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->documents, 1);
  EXPECT_TRUE(stats->doc_frequency.empty());
}

TEST_P(RetrievalConformance, OnlyCompletedEpisodesAreFound) {
  Episode done = Doc("kafka consumer rebalance", "restart the broker");
  Record(done);
  Episode open = MakeEpisode(clock_, 1);
  open.task_description = "kafka partition lag";
  ASSERT_TRUE(store_->CreateEpisode(open).ok());
  EXPECT_EQ(Ids(Search({"kafka"})), std::vector<std::string>{done.episode_id});
  EXPECT_TRUE(Search({"partition"}).empty()) << "an episode in progress is not indexed";

  // Completing it indexes its title and its steps, appended ones included.
  Step extra = MakeStep(0, "shell");
  extra.action = "bump the zookeeper session timeout";
  ASSERT_TRUE(store_->AppendStep(open.episode_id, extra).ok());
  auto loaded = store_->GetEpisode(open.episode_id);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE(store_->CompleteEpisode(Completed(*loaded)).ok());
  EXPECT_EQ(IdSet(Search({"kafka"})), (std::set<std::string>{done.episode_id, open.episode_id}));
  EXPECT_EQ(Ids(Search({"zookeeper"})), std::vector<std::string>{open.episode_id});
  EXPECT_EQ(Ids(Search({"partition"})), std::vector<std::string>{open.episode_id});
}

TEST_P(RetrievalConformance, EpisodeCreatedCompletedIsIndexed) {
  Episode e = Doc("terraform state lock", "force unlock");
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  EXPECT_EQ(Ids(Search({"terraform"})), std::vector<std::string>{e.episode_id});
}

TEST_P(RetrievalConformance, ScoresArePositiveBestFirstAndTitleOutweighsBody) {
  // Fillers make the searched words rare, as they are in a real store.
  for (int i = 0; i < 6; ++i) Record(Doc("filler task number " + std::to_string(i), "nothing relevant"));
  Episode in_title = Doc("zebra migration", "alpha");
  Episode in_body = Doc("alpha migration", "zebra");
  Episode both_words = Doc("kafka rebalance storm", "check the consumer group");
  Episode one_word = Doc("kafka upgrade", "check the consumer group");
  for (const Episode* e : {&in_body, &in_title, &both_words, &one_word}) Record(*e);

  std::vector<TextHit> zebra = Search({"zebra"});
  ASSERT_EQ(zebra.size(), 2u);
  EXPECT_EQ(zebra[0].episode_id, in_title.episode_id) << "a title hit ranks above a body hit";
  EXPECT_EQ(zebra[1].episode_id, in_body.episode_id);
  EXPECT_GT(zebra[0].score, zebra[1].score);
  EXPECT_GT(zebra[1].score, 0);

  std::vector<TextHit> kafka = Search({"kafka", "rebalance"});
  ASSERT_EQ(kafka.size(), 2u);
  EXPECT_EQ(kafka[0].episode_id, both_words.episode_id) << "more query words matched ranks higher";
  EXPECT_EQ(kafka[1].episode_id, one_word.episode_id);
  EXPECT_GT(kafka[0].score, kafka[1].score);
  EXPECT_GT(kafka[1].score, 0);
}

TEST_P(RetrievalConformance, LimitKeepsTheBest) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) Record(Doc("unrelated chore " + std::to_string(i), "nothing"));
  for (int i = 0; i < 5; ++i) {
    // The more often "flaky" appears, the better the match.
    std::string body;
    for (int k = 0; k <= i; ++k) body += "flaky ";
    Episode e = Doc("test suite " + std::to_string(i), body);
    Record(e);
    ids.push_back(e.episode_id);
  }
  std::vector<TextHit> all = Search({"flaky"});
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].score, all[i].score);
  std::vector<TextHit> top = Search({"flaky"}, /*limit=*/2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].episode_id, all[0].episode_id);
  EXPECT_EQ(top[1].episode_id, all[1].episode_id);
}

TEST_P(RetrievalConformance, DomainFilterAndAllowedDomains) {
  Episode cli = Doc("parse arguments flag", "clap", "cli");
  Episode web = Doc("parse request body", "serde", "web-api");
  Episode data = Doc("parse csv export", "polars", "data");
  for (const Episode* e : {&cli, &web, &data}) Record(*e);
  EXPECT_EQ(IdSet(Search({"parse"})), (std::set<std::string>{cli.episode_id, web.episode_id, data.episode_id}));
  EXPECT_EQ(Ids(Search({"parse"}, 100, "cli")), std::vector<std::string>{cli.episode_id});
  EXPECT_TRUE(Search({"parse"}, 100, "mobile").empty());
  EXPECT_EQ(IdSet(Search({"parse"}, 100, std::nullopt, {"cli", "data"})),
            (std::set<std::string>{cli.episode_id, data.episode_id}));
  EXPECT_EQ(Ids(Search({"parse"}, 100, "data", {"cli", "data"})), std::vector<std::string>{data.episode_id});
  EXPECT_TRUE(Search({"parse"}, 100, "web-api", {"cli", "data"}).empty());
  EXPECT_TRUE(Search({"parse"}, 100, std::nullopt, {"nowhere"}).empty());
}

TEST_P(RetrievalConformance, NoWordCharacterIsQuerySyntax) {
  Episode e = Doc("deploy near the edge cache", "invalidate cdn");
  Record(e);
  const std::vector<std::string> hostile = {
      "\"", "\"\"", "\"deploy", "*", "deploy*", "NEAR", "NEAR(deploy cache)", "AND", "OR", "NOT", "-", "-deploy",
      ":", "title:deploy", "body:", "^", "^deploy", "(", ")", "((", "{title body}:deploy", "+", "!", "&", "|",
      "'", "''", "\\", "%", "_", ";", "--", "/*", "<->", "!!", "a:b:c", "deploy\"cache", std::string("nul\0byte", 8),
      "\xff\xfe", "\xc3", "ünïcode", "",
  };
  for (const std::string& word : hostile) {
    TextSearchRequest request;
    request.words = {word};
    auto hits = store_->SearchText(request);
    EXPECT_TRUE(hits.ok()) << "word [" << word << "]: " << hits.status().ToString();
    auto stats = store_->GetTermStats(std::span<const std::string>(&word, 1));
    EXPECT_TRUE(stats.ok()) << "word [" << word << "]: " << stats.status().ToString();
  }
  // All at once, next to a real word: still a working query.
  std::vector<std::string> words = hostile;
  words.push_back("cdn");
  std::vector<TextHit> hits = Search(words);
  EXPECT_EQ(IdSet(hits).count(e.episode_id), 1u);
}

TEST_P(RetrievalConformance, IndexFollowsPutEpisodesAndDelete) {
  Episode a = Doc("graphql schema stitching", "merge resolvers");
  Episode b = Doc("graphql subscription leak", "close websocket");
  Episode open = MakeEpisode(clock_, 1);
  open.task_description = "graphql federation gateway";
  std::vector<Episode> batch = {a, b, open};
  ASSERT_TRUE(store_->PutEpisodes(batch).ok());
  EXPECT_EQ(IdSet(Search({"graphql"})), (std::set<std::string>{a.episode_id, b.episode_id}));

  // Replacing an episode replaces its entry: the old words go, the new ones come.
  Episode a2 = a;
  a2.task_description = "protobuf schema evolution";
  ASSERT_TRUE(store_->PutEpisodes(std::span<const Episode>(&a2, 1)).ok());
  EXPECT_EQ(Ids(Search({"graphql"})), std::vector<std::string>{b.episode_id});
  EXPECT_EQ(Ids(Search({"protobuf"})), std::vector<std::string>{a.episode_id});
  EXPECT_EQ(Search({"schema"}).size(), 1u) << "one entry per episode";

  // Replacing a completed episode by an unfinished one takes it out of the index.
  Episode b_open = b;
  b_open.end_time.reset();
  b_open.outcome.reset();
  b_open.reward.reset();
  b_open.reflection.reset();
  ASSERT_TRUE(store_->PutEpisodes(std::span<const Episode>(&b_open, 1)).ok());
  EXPECT_TRUE(Search({"graphql"}).empty());

  // A whole completed episode put over one in progress enters it.
  Episode open_done = Completed(open);
  ASSERT_TRUE(store_->PutEpisodes(std::span<const Episode>(&open_done, 1)).ok());
  EXPECT_EQ(Ids(Search({"federation"})), std::vector<std::string>{open.episode_id});

  auto deleted = store_->DeleteEpisode(a.episode_id);
  ASSERT_TRUE(deleted.ok() && *deleted);
  EXPECT_TRUE(Search({"protobuf"}).empty());
  auto stats = store_->GetTermStats(std::vector<std::string>{"protobuf", "federation"});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->documents, 1);
  EXPECT_EQ(stats->doc_frequency, (std::vector<int64_t>{0, 1}));
}

TEST_P(RetrievalConformance, OneBatchOfManyKeepsExactTermCounts) {
  // A batch that adds, replaces (the same id twice: the last counts) and unindexes at once.
  std::vector<Episode> first;
  for (int i = 0; i < 40; ++i) first.push_back(Doc("kafka consumer lag " + std::to_string(i), "rebalance"));
  ASSERT_TRUE(store_->PutEpisodes(first).ok());
  Episode renamed = first[0];
  renamed.task_description = "zookeeper session expiry";
  Episode renamed_again = first[0];
  renamed_again.task_description = "kafka broker disk full";
  Episode reopened = first[1];
  reopened.end_time.reset();
  reopened.outcome.reset();
  reopened.reward.reset();
  reopened.reflection.reset();
  std::vector<Episode> second = {renamed, reopened, Doc("kafka topic compaction", "tombstones"), renamed_again};
  ASSERT_TRUE(store_->PutEpisodes(second).ok());
  auto stats = store_->GetTermStats(std::vector<std::string>{"kafka", "zookeeper", "broker", "rebalance", "lag"});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->documents, 40);  // 40 - 1 reopened + 1 new
  // kafka: 38 untouched + renamed_again + the new one; lag: the 38 untouched.
  EXPECT_EQ(stats->doc_frequency, (std::vector<int64_t>{40, 0, 1, 39, 38}));
  EXPECT_EQ(Search({"zookeeper"}).size(), 0u);
  EXPECT_EQ(Ids(Search({"broker"})), std::vector<std::string>{first[0].episode_id});
}

TEST_P(RetrievalConformance, FailedBatchIndexesNothing) {
  Episode good = Doc("redis eviction policy", "maxmemory");
  Episode bad = Doc("redis cluster failover", "sentinel");
  bad.steps.clear();
  for (int i = 1; i <= 1001; ++i) bad.steps.push_back(MakeStep(i));
  std::vector<Episode> batch = {good, bad};
  EXPECT_FALSE(store_->PutEpisodes(batch).ok());
  EXPECT_TRUE(Search({"redis"}).empty());
  EXPECT_EQ(store_->GetTermStats(std::vector<std::string>{"redis"})->documents, 0);
}

TEST_P(RetrievalConformance, TermStatsCountDocumentsHoldingEachWord) {
  Record(Doc("postgres vacuum tuning", "autovacuum settings"));
  Record(Doc("postgres replication lag", "wal sender"));
  Record(Doc("mysql deadlock", "postgres comparison"));  // body only
  Episode open = MakeEpisode(clock_, 1);
  open.task_description = "postgres upgrade";
  ASSERT_TRUE(store_->CreateEpisode(open).ok());  // not indexed: in progress

  // Words as a query is cut into them ("postgres" becomes "postgre", as in the index).
  std::vector<std::string> words = SearchTokens("Postgres vacuum WAL mysql oracle postgres");
  ASSERT_EQ(words.size(), 6u);
  auto stats = store_->GetTermStats(words);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->documents, 3);
  EXPECT_EQ(stats->doc_frequency, (std::vector<int64_t>{3, 1, 1, 1, 0, 3}));
}

// ---- generation ----

TEST_P(RetrievalConformance, EveryWriteBumpsTheGenerationAndReadsDoNot) {
  int64_t g = Generation();
  auto bumped = [&](const char* what) {
    int64_t now = Generation();
    EXPECT_GT(now, g) << what << " did not bump the generation";
    g = now;
  };
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  bumped("CreateEpisode");
  ASSERT_TRUE(store_->AppendStep(e.episode_id, MakeStep(0)).ok());
  bumped("AppendStep");
  e.steps.push_back(MakeStep(2));
  ASSERT_TRUE(store_->CompleteEpisode(Completed(e)).ok());
  bumped("CompleteEpisode");
  Episode other = Completed(MakeEpisode(clock_, 2));
  ASSERT_TRUE(store_->PutEpisodes(std::span<const Episode>(&other, 1)).ok());
  bumped("PutEpisodes");
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  bumped("SetEmbeddingSpace");
  std::vector<EpisodeVector> vectors = {{e.episode_id, {1, 2, 3, 4}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, vectors).ok());
  bumped("PutVectors");
  Pattern p = NewPattern("cargo>edit>cargo");
  ASSERT_TRUE(store_->MergePatterns(std::vector<std::string>{p.similarity_key}, [&](std::vector<Pattern>& ps) {
                      ps.push_back(p);
                      return OkStatus();
                    }).ok());
  bumped("MergePatterns");
  ASSERT_TRUE(store_->SetPatternDecay(std::vector<std::pair<std::string, double>>{{p.pattern_id, 0.5}}).ok());
  bumped("SetPatternDecay");
  Heuristic h;
  h.heuristic_id = NewUuidV7(clock_);
  h.condition = "when cargo test fails";
  h.action = "run cargo clean";
  h.source_pattern_id = p.pattern_id;
  ASSERT_TRUE(store_->PutHeuristics(std::span<const Heuristic>(&h, 1)).ok());
  bumped("PutHeuristics");
  Attribution a{other.episode_id, p.pattern_id, /*applied=*/true, At(1'767'225'700'000)};
  ASSERT_TRUE(store_->RecordAttributions(std::span<const Attribution>(&a, 1)).ok());
  bumped("RecordAttributions");
  ExtractionBatch extraction;
  extraction.outcomes = {{other.episode_id, true}};
  extraction.extracted = {other.episode_id};
  ASSERT_TRUE(store_->CommitExtraction(extraction).ok());
  bumped("CommitExtraction");
  ASSERT_TRUE(store_->MarkExtracted(std::vector<std::string>{e.episode_id}).ok());
  bumped("MarkExtracted");
  ASSERT_TRUE(store_->ResetLearning().ok());
  bumped("ResetLearning");
  ASSERT_TRUE(store_->DeleteEpisode(other.episode_id).ok());
  bumped("DeleteEpisode");

  // Reads leave it alone.
  ASSERT_TRUE(store_->GetEpisode(e.episode_id).ok());
  Search({"flaky"});
  ASSERT_TRUE(store_->GetTermStats(std::vector<std::string>{"flaky"}).ok());
  ASSERT_TRUE(store_->Stats().ok());
  AllVectors(kSpace);
  ASSERT_TRUE(store_->EpisodesWithoutVector(kSpace, "", 10).ok());
  ASSERT_TRUE(store_->ListPatterns({}).ok());
  ASSERT_TRUE(store_->PendingExtraction(10).ok());
  EXPECT_EQ(Generation(), g);
}

TEST_P(RetrievalConformance, GenerationIsSharedByEveryHandleOnTheStore) {
  std::unique_ptr<StorageBackend> other = Open();
  ASSERT_NE(other, nullptr);
  auto before = other->Generation();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(*before, Generation());
  ASSERT_TRUE(store_->CreateEpisode(MakeEpisode(clock_, 1)).ok());
  auto after = other->Generation();
  ASSERT_TRUE(after.ok());
  EXPECT_GT(*after, *before) << "a write through one handle shows in the other";
  EXPECT_EQ(*after, Generation());
  // And it survives reopening.
  int64_t g = Generation();
  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(Generation(), g);
}

TEST_P(RetrievalConformance, FailedWriteLeavesTheGenerationAlone) {
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(e).ok());
  int64_t g = Generation();
  EXPECT_EQ(store_->CreateEpisode(e).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Generation(), g);
}

// ---- embedding space and vectors ----

TEST_P(RetrievalConformance, EmbeddingSpaceIsRecordedAndGuardsVectors) {
  auto none = store_->GetEmbeddingSpace();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());
  Episode e = Doc("vector search", "cosine");
  Record(e);
  std::vector<EpisodeVector> v = {{e.episode_id, {0.5f, -1.0f, 2.0f, 0.0f}}};
  EXPECT_EQ(store_->PutVectors(kSpace, v).code(), StatusCode::kFailedPrecondition) << "no space recorded yet";

  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  auto space = store_->GetEmbeddingSpace();
  ASSERT_TRUE(space.ok() && space->has_value());
  EXPECT_EQ(**space, kSpace);
  EXPECT_EQ(store_->PutVectors(kOtherSpace, v).code(), StatusCode::kFailedPrecondition) << "not the recorded space";
  ASSERT_TRUE(store_->PutVectors(kSpace, v).ok());

  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  space = store_->GetEmbeddingSpace();
  ASSERT_TRUE(space.ok() && space->has_value());
  EXPECT_EQ(**space, kSpace);
  EXPECT_EQ(AllVectors(kSpace).size(), 1u);
}

TEST_P(RetrievalConformance, VectorsRoundTripExactlyBySeq) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  Episode a = Doc("first", "one");
  Episode b = Doc("second", "two");
  Record(a);
  Record(b);
  const std::vector<float> va = {-0.0f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                                 -std::numeric_limits<float>::infinity()};
  const std::vector<float> vb = {0.1f, 1.0f / 3.0f, -123456.789f, std::numeric_limits<float>::lowest()};
  std::vector<EpisodeVector> vectors = {{a.episode_id, va}, {b.episode_id, vb}};
  ASSERT_TRUE(store_->PutVectors(kSpace, vectors).ok());

  std::vector<EpisodeVector> got = AllVectors(kSpace);
  ASSERT_EQ(got.size(), 2u);
  std::map<std::string, std::vector<float>> by_id;
  for (const EpisodeVector& v : got) by_id[v.episode_id] = v.vector;
  ASSERT_EQ(by_id.size(), 2u);
  // Bit for bit (memcmp tells -0.0 from 0.0).
  ASSERT_EQ(by_id[a.episode_id].size(), 4u);
  EXPECT_EQ(std::memcmp(by_id[a.episode_id].data(), va.data(), sizeof(float) * 4), 0);
  EXPECT_EQ(by_id[b.episode_id], vb);
  EXPECT_LT(got[0].seq, got[1].seq);
  EXPECT_GT(got[0].seq, 0);

  // A replaced vector gets a seq above every other, so a reader that caught up sees it.
  int64_t caught_up = got[1].seq;
  std::vector<EpisodeVector> replace = {{a.episode_id, {1, 1, 1, 1}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, replace).ok());
  std::vector<EpisodeVector> newer = AllVectors(kSpace, caught_up);
  ASSERT_EQ(newer.size(), 1u);
  EXPECT_EQ(newer[0].episode_id, a.episode_id);
  EXPECT_EQ(newer[0].vector, (std::vector<float>{1, 1, 1, 1}));
  EXPECT_GT(newer[0].seq, caught_up);
  EXPECT_EQ(AllVectors(kSpace).size(), 2u) << "replaced, not added";
  EXPECT_TRUE(AllVectors(kSpace, newer[0].seq).empty());

  // Deleting the newest does not let its seq be handed out again.
  int64_t newest = newer[0].seq;
  ASSERT_TRUE(*store_->DeleteEpisode(a.episode_id));
  std::vector<EpisodeVector> again = {{b.episode_id, {2, 2, 2, 2}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, again).ok());
  std::vector<EpisodeVector> after_delete = AllVectors(kSpace, newest);
  ASSERT_EQ(after_delete.size(), 1u);
  EXPECT_EQ(after_delete[0].episode_id, b.episode_id);
}

TEST_P(RetrievalConformance, BadVectorBatchesWriteNothing) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  Episode done = Doc("done", "x");
  Record(done);
  Episode open = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store_->CreateEpisode(open).ok());

  std::vector<EpisodeVector> unknown = {{done.episode_id, {1, 2, 3, 4}}, {NewUuidV7(clock_), {1, 2, 3, 4}}};
  EXPECT_EQ(store_->PutVectors(kSpace, unknown).code(), StatusCode::kNotFound);
  std::vector<EpisodeVector> in_progress = {{done.episode_id, {1, 2, 3, 4}}, {open.episode_id, {1, 2, 3, 4}}};
  EXPECT_EQ(store_->PutVectors(kSpace, in_progress).code(), StatusCode::kNotFound);
  std::vector<EpisodeVector> short_one = {{done.episode_id, {1, 2, 3, 4}}, {done.episode_id, {1, 2, 3}}};
  EXPECT_EQ(store_->PutVectors(kSpace, short_one).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(AllVectors(kSpace).empty()) << "nothing of a refused batch is stored";
}

TEST_P(RetrievalConformance, EpisodesWithoutVectorAreCompletedOnesOldestFirst) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    Episode e = Doc("task " + std::to_string(i), "body");
    Record(e);
    ids.push_back(e.episode_id);
  }
  ASSERT_TRUE(store_->CreateEpisode(MakeEpisode(clock_, 1)).ok());  // in progress: never listed

  auto missing = store_->EpisodesWithoutVector(kSpace, "", 10);
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_EQ(*missing, ids);
  EXPECT_EQ(*store_->EpisodesWithoutVector(kSpace, "", 2), (std::vector<std::string>{ids[0], ids[1]}));

  std::vector<EpisodeVector> some = {{ids[0], {1, 0, 0, 0}}, {ids[2], {0, 1, 0, 0}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, some).ok());
  EXPECT_EQ(*store_->EpisodesWithoutVector(kSpace, "", 10), (std::vector<std::string>{ids[1], ids[3]}));
  EXPECT_EQ(*store_->EpisodesWithoutVector(kOtherSpace, "", 10), ids) << "vectors count only in their own space";
  // A walk resumes after the last id it got.
  EXPECT_EQ(*store_->EpisodesWithoutVector(kSpace, ids[1], 10), std::vector<std::string>{ids[3]});
  EXPECT_TRUE(store_->EpisodesWithoutVector(kSpace, ids[3], 10)->empty());
  EXPECT_EQ(*store_->EpisodesWithoutVector(kOtherSpace, ids[0], 2), (std::vector<std::string>{ids[1], ids[2]}));
}

TEST_P(RetrievalConformance, ChangingTheSpaceDropsTheOldVectors) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  Episode e = Doc("task", "body");
  Record(e);
  std::vector<EpisodeVector> v = {{e.episode_id, {1, 2, 3, 4}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, v).ok());
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  EXPECT_EQ(AllVectors(kSpace).size(), 1u) << "setting the same space keeps its vectors";

  ASSERT_TRUE(store_->SetEmbeddingSpace(kOtherSpace).ok());
  EXPECT_TRUE(AllVectors(kSpace).empty());
  EXPECT_TRUE(AllVectors(kOtherSpace).empty());
  EXPECT_EQ(*store_->EpisodesWithoutVector(kOtherSpace, "", 10), std::vector<std::string>{e.episode_id});
  ASSERT_TRUE(store_->PutVectors(kOtherSpace, v).ok());
  EXPECT_EQ(AllVectors(kOtherSpace).size(), 1u);
}

TEST_P(RetrievalConformance, VectorsGoWithTheirEpisode) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  Episode a = Doc("a", "x");
  Episode b = Doc("b", "y");
  Record(a);
  Record(b);
  std::vector<EpisodeVector> v = {{a.episode_id, {1, 2, 3, 4}}, {b.episode_id, {4, 3, 2, 1}}};
  ASSERT_TRUE(store_->PutVectors(kSpace, v).ok());
  ASSERT_TRUE(*store_->DeleteEpisode(a.episode_id));
  std::vector<EpisodeVector> left = AllVectors(kSpace);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].episode_id, b.episode_id);
}

TEST_P(RetrievalConformance, EmptyVectorBatchIsFine) {
  ASSERT_TRUE(store_->SetEmbeddingSpace(kSpace).ok());
  EXPECT_TRUE(store_->PutVectors(kSpace, {}).ok());
  EXPECT_TRUE(AllVectors(kSpace).empty());
  EXPECT_TRUE(store_->EpisodesWithoutVector(kSpace, "", 10)->empty());
}

INSTANTIATE_TEST_SUITE_P(AllBackends, RetrievalConformance, ::testing::ValuesIn(AllBackendFactories()),
                         BackendName);

}  // namespace
}  // namespace engram::testing
