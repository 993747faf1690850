// The hashing embedding provider: determinism (bit for bit, across threads and
// instances), unit length, similarity that follows shared words, zero vectors for
// word-less text, option checks, and IDF from the store changing the weights.
//
// Most IDF cases use TermStatsSource, a StorageBackend test double that answers only
// GetTermStats from a table the test controls: it sets exact document frequencies and
// counts how often the provider asks. The RealStore cases read them from a real SQLite
// store of completed episodes.
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/embedding.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;

// Answers GetTermStats from `df` (a word not in it: 0) and `documents`; every other
// method of the interface is unused by the provider and reports so.
class TermStatsSource final : public StorageBackend {
 public:
  std::map<std::string, int64_t> df;
  int64_t documents = 0;
  Status fail;  // when not OK, GetTermStats returns it
  std::vector<size_t> call_sizes;

  Result<TermStats> GetTermStats(std::span<const std::string> words) override {
    std::lock_guard<std::mutex> lock(mu_);
    call_sizes.push_back(words.size());
    if (!fail.ok()) return fail;
    TermStats stats;
    stats.documents = documents;
    for (const std::string& w : words) {
      auto it = df.find(w);
      stats.doc_frequency.push_back(it == df.end() ? 0 : it->second);
    }
    return stats;
  }

  std::string Name() const override { return "term-stats-double"; }
  std::string Location() const override { return "memory"; }
  int SchemaVersion() const override { return 0; }
  Status CreateEpisode(const Episode&) override { return Unused(); }
  Status PutEpisodes(std::span<const Episode>) override { return Unused(); }
  Result<int> AppendStep(std::string_view, const Step&) override { return Unused(); }
  Status CompleteEpisode(const Episode&) override { return Unused(); }
  Result<Episode> GetEpisode(std::string_view) override { return Unused(); }
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter&) override { return Unused(); }
  Result<bool> DeleteEpisode(std::string_view) override { return Unused(); }
  Result<StoreStats> Stats() override { return Unused(); }
  Result<int64_t> Generation() override { return Unused(); }
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest&) override { return Unused(); }
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override { return Unused(); }
  Status SetEmbeddingSpace(const EmbeddingSpace&) override { return Unused(); }
  Status PutVectors(const EmbeddingSpace&, std::span<const EpisodeVector>) override { return Unused(); }
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace&, int64_t) override { return Unused(); }
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace&, std::string_view, size_t) override { return Unused(); }
  Status MergePatterns(std::span<const std::string>, const std::function<Status(std::vector<Pattern>&)>&) override {
    return Unused();
  }
  Result<Pattern> GetPattern(std::string_view) override { return Unused(); }
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter&) override { return Unused(); }
  Status SetPatternDecay(std::span<const std::pair<std::string, double>>) override { return Unused(); }
  Status ResetLearning() override { return Unused(); }
  Status PutHeuristics(std::span<const Heuristic>) override { return Unused(); }
  Result<std::vector<Heuristic>> ListHeuristics(size_t) override { return Unused(); }
  Status RecordAttributions(std::span<const Attribution>) override { return Unused(); }
  Result<std::vector<std::string>> PendingExtraction(size_t) override { return Unused(); }
  Status MarkExtracted(std::span<const std::string>) override { return Unused(); }
  Result<size_t> CommitExtraction(const ExtractionBatch&) override { return Unused(); }
  Status CheckHealth() override { return OkStatus(); }

 private:
  static Status Unused() { return FailedPreconditionError("the hashing provider test double serves term stats only"); }
  std::mutex mu_;
};

constexpr const char* kEpisodeText =
    "Fix the flaky async test in web-api: test_checkout_timeout fails one run in ten. "
    "Ran pytest -k checkout, saw asyncio.TimeoutError from the payment client mock; "
    "raised the fixture timeout and awaited the pending tasks before teardown. "
    "All 142 tests passed three times in a row; coverage 84%.";

std::unique_ptr<EmbeddingProvider> Make(const HashingOptions& options = {}, StorageBackend* source = nullptr) {
  Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider(options, source);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *std::move(p) : nullptr;
}

std::vector<float> EmbedOne(EmbeddingProvider& p, const std::string& text) {
  std::vector<std::string> texts = {text};
  Result<std::vector<std::vector<float>>> r = p.Embed(texts, EmbedPurpose::kDocument);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok() || r->size() != 1) return {};
  return (*r)[0];
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double Norm(const std::vector<float>& a) { return std::sqrt(Dot(a, a)); }

bool BitIdentical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(HashingProviderTest, SpaceNamesProviderModelAndDimension) {
  auto p = Make({.dimension = 384});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->Space(), (EmbeddingSpace{"hashing", "hash-v1", 384}));
  EXPECT_EQ(p->Space().Key(), "hashing/hash-v1/384");
}

TEST(HashingProviderTest, SameTextSameBitsAcrossCallsInstancesAndThreads) {
  TermStatsSource source;
  source.documents = 50;
  source.df = {{"flaky", 3}, {"test", 40}, {"async", 7}};
  auto a = Make({}, &source);
  auto b = Make({}, &source);
  std::vector<float> first = EmbedOne(*a, kEpisodeText);
  ASSERT_EQ(first.size(), 256u);
  EXPECT_TRUE(BitIdentical(first, EmbedOne(*a, kEpisodeText)));
  EXPECT_TRUE(BitIdentical(first, EmbedOne(*b, kEpisodeText)));

  // Another thread whose scratch table has grown on a big text first.
  std::vector<float> other;
  std::thread t([&] {
    std::string big;
    for (int i = 0; i < 3000; ++i) big.append("word").append(std::to_string(i)).append(" ");
    EmbedOne(*a, big);
    other = EmbedOne(*a, kEpisodeText);
  });
  t.join();
  EXPECT_TRUE(BitIdentical(first, other));

  // In a batch, each text gets what it gets alone.
  std::vector<std::string> texts = {kEpisodeText, "update billing docs", kEpisodeText};
  Result<std::vector<std::vector<float>>> batch = a->Embed(texts, EmbedPurpose::kQuery);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 3u);
  EXPECT_TRUE(BitIdentical((*batch)[0], first));
  EXPECT_TRUE(BitIdentical((*batch)[2], first));
  EXPECT_TRUE(BitIdentical((*batch)[1], EmbedOne(*a, "update billing docs")));
}

TEST(HashingProviderTest, VectorsHaveUnitLength) {
  for (int dim : {16, 100, 256, 4096}) {
    auto p = Make({.dimension = dim});
    for (const char* text : {kEpisodeText, "x2", "naïve café résumé", "ab cd ef gh ij kl mn op qr st uv wx yz"}) {
      std::vector<float> v = EmbedOne(*p, text);
      ASSERT_EQ(v.size(), static_cast<size_t>(dim));
      EXPECT_NEAR(Norm(v), 1.0, 1e-5) << dim << " " << text;
    }
  }
}

TEST(HashingProviderTest, WordlessTextGetsTheZeroVector) {
  auto p = Make();
  std::vector<std::string> texts = {"", "   \n\t", "!!! ??? ...", "the of and to", "a"};
  Result<std::vector<std::vector<float>>> r = p->Embed(texts, EmbedPurpose::kDocument);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), texts.size());
  for (const std::vector<float>& v : *r) {
    ASSERT_EQ(v.size(), 256u);
    EXPECT_EQ(Norm(v), 0.0);
  }
  Result<std::vector<std::vector<float>>> none = p->Embed({}, EmbedPurpose::kDocument);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(HashingProviderTest, SimilarTextsAreCloserThanUnrelatedOnes) {
  auto p = Make();
  std::vector<float> query = EmbedOne(*p, "flaky async test in web-api times out");
  std::vector<float> similar = EmbedOne(*p, "Fixing flaky asynchronous tests for the web api: timeouts in checkout");
  std::vector<float> unrelated = EmbedOne(*p, "Update the billing documentation and export invoices as PDF");
  EXPECT_GT(Dot(query, similar), Dot(query, unrelated) + 0.2);
  // Character n-grams relate inflections the words alone would miss.
  std::vector<float> morph = EmbedOne(*p, "refactoring");
  EXPECT_GT(Dot(morph, EmbedOne(*p, "refactored")), Dot(morph, EmbedOne(*p, "documentation")));
}

TEST(HashingProviderTest, RepeatedWordsWeighSublinearly) {
  HashingOptions words_only{.dimension = 4096, .bigram_weight = 0, .char_ngram_weight = 0};
  auto p = Make(words_only);
  std::vector<float> flaky = EmbedOne(*p, "flaky");
  std::vector<float> once = EmbedOne(*p, "flaky build");
  std::vector<float> thrice = EmbedOne(*p, "flaky flaky flaky build");
  // Two words of equal weight: each contributes 1/sqrt(2) of the unit vector.
  EXPECT_NEAR(Dot(flaky, once), 1 / std::sqrt(2.0), 1e-5);
  // tf 3 weighs 1 + ln 3, not 3.
  const double w = 1 + std::log(3.0);
  EXPECT_NEAR(Dot(flaky, thrice), w / std::sqrt(w * w + 1), 1e-5);
}

TEST(HashingProviderTest, IdfFromTheStoreChangesTheWeights) {
  HashingOptions words_only{.dimension = 4096, .bigram_weight = 0, .char_ngram_weight = 0};
  TermStatsSource source;
  source.documents = 1000;
  source.df = {{"flaky", 2}, {"test", 900}};
  auto with_idf = Make(words_only, &source);
  auto without = Make(words_only, nullptr);

  std::vector<float> both = EmbedOne(*with_idf, "flaky test");
  std::vector<float> flaky = EmbedOne(*with_idf, "flaky");
  std::vector<float> test = EmbedOne(*with_idf, "test");
  // The rare word dominates: idf(flaky) = ln(1001/3) + 1, idf(test) = ln(1001/901) + 1.
  const double rare = std::log(1001.0 / 3) + 1, common = std::log(1001.0 / 901) + 1;
  const double norm = std::sqrt(rare * rare + common * common);
  EXPECT_NEAR(Dot(both, flaky), rare / norm, 1e-5);
  EXPECT_NEAR(Dot(both, test), common / norm, 1e-5);

  std::vector<float> flat = EmbedOne(*without, "flaky test");
  EXPECT_NEAR(Dot(flat, EmbedOne(*without, "flaky")), Dot(flat, EmbedOne(*without, "test")), 1e-6);
  EXPECT_FALSE(BitIdentical(both, flat));
}

TEST(HashingProviderTest, FrequenciesAreCachedAndReReadWhenTheStoreGrows) {
  TermStatsSource source;
  source.documents = 100;
  source.df = {{"alpha", 1}, {"beta", 50}};
  auto p = Make({.idf_refresh_documents = 10}, &source);
  std::vector<float> before = EmbedOne(*p, "alpha beta");
  ASSERT_EQ(source.call_sizes.size(), 1u);
  EXPECT_TRUE(BitIdentical(before, EmbedOne(*p, "alpha beta")));
  EXPECT_EQ(source.call_sizes.size(), 1u);  // served from the cache
  EmbeddingHealth health = p->Health();
  EXPECT_EQ(health.cache_misses, 2);
  EXPECT_EQ(health.cache_hits, 2);
  EXPECT_EQ(health.requests, 2);

  // The store grows by fewer than idf_refresh_documents: cached frequencies stand.
  source.documents = 105;
  source.df["alpha"] = 60;
  EmbedOne(*p, "gamma");
  EXPECT_TRUE(BitIdentical(before, EmbedOne(*p, "alpha beta")));

  // By idf_refresh_documents or more: the next read of a new word starts over.
  source.documents = 110;
  size_t calls = source.call_sizes.size();
  EmbedOne(*p, "delta");
  EXPECT_EQ(source.call_sizes.size(), calls + 2);  // "delta", then every word of the call again
  std::vector<float> after = EmbedOne(*p, "alpha beta");
  EXPECT_FALSE(BitIdentical(before, after));
  auto fresh = Make({.idf_refresh_documents = 10}, &source);
  EXPECT_TRUE(BitIdentical(after, EmbedOne(*fresh, "alpha beta")));
}

TEST(HashingProviderTest, ManyWordsAreAskedForInChunks) {
  TermStatsSource source;
  source.documents = 10;
  auto p = Make({}, &source);
  std::string text;
  for (int i = 0; i < 1234; ++i) text.append("w").append(std::to_string(i)).append(" ");
  EXPECT_NEAR(Norm(EmbedOne(*p, text)), 1.0, 1e-5);
  ASSERT_EQ(source.call_sizes.size(), 3u);
  EXPECT_EQ(source.call_sizes[0] + source.call_sizes[1] + source.call_sizes[2], 1234u);
  for (size_t n : source.call_sizes) EXPECT_LE(n, 500u);
}

TEST(HashingProviderTest, StoreErrorsAreReturnedAndReported) {
  TermStatsSource source;
  source.fail = UnavailableError("database is gone");
  auto p = Make({}, &source);
  std::vector<std::string> texts = {kEpisodeText};
  Result<std::vector<std::vector<float>>> r = p->Embed(texts, EmbedPurpose::kDocument);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("term statistics"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("database is gone"));
  EmbeddingHealth health = p->Health();
  EXPECT_EQ(health.failures, 1);
  EXPECT_THAT(health.last_error, HasSubstr("database is gone"));

  source.fail = OkStatus();
  EXPECT_NEAR(Norm(EmbedOne(*p, kEpisodeText)), 1.0, 1e-5);
}

TEST(HashingProviderTest, BadOptionsAreRejectedByName) {
  struct Case {
    HashingOptions options;
    const char* field;
  };
  const Case cases[] = {
      {{.dimension = 8}, "dimension"},
      {{.dimension = 5000}, "dimension"},
      {{.char_ngram_min = 0}, "char_ngram_min"},
      {{.char_ngram_min = 4, .char_ngram_max = 3}, "char_ngram_max"},
      {{.char_ngram_max = 40}, "char_ngram_max"},
      {{.unigram_weight = -1}, "unigram_weight"},
      {{.bigram_weight = std::nan("")}, "bigram_weight"},
      {{.unigram_weight = 0, .bigram_weight = 0, .char_ngram_weight = 0}, "at least one"},
      {{.idf_refresh_documents = 0}, "idf_refresh_documents"},
      {{.idf_refresh = std::chrono::seconds(0)}, "idf_refresh"},
  };
  for (const Case& c : cases) {
    Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider(c.options, nullptr);
    ASSERT_FALSE(p.ok()) << c.field;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.field));
  }
}

TEST(HashingProviderTest, OtherScriptsEmbedByCodePoint) {
  auto p = Make();
  std::vector<float> a = EmbedOne(*p, "ошибка сборки");
  std::vector<float> b = EmbedOne(*p, "ошибки сборки проекта");
  std::vector<float> c = EmbedOne(*p, "documentation update");
  EXPECT_NEAR(Norm(a), 1.0, 1e-5);
  EXPECT_GT(Dot(a, b), Dot(a, c));
  // Invalid UTF-8 is embedded, not rejected.
  EXPECT_NEAR(Norm(EmbedOne(*p, "bad\xff\xfe bytes")), 1.0, 1e-5);
}

// ---- against a real store -------------------------------------------------------------

class HashingProviderRealStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = dir_.File("memory.db");
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
  }

  // Stores `n` completed episodes whose task is "<description> <i>".
  void AddEpisodes(int n, const std::string& description) {
    std::vector<Episode> episodes;
    for (int i = 0; i < n; ++i) {
      Episode e = testing::Completed(testing::MakeEpisode(clock_, 1));
      e.task_description = description + " " + std::to_string(i);
      episodes.push_back(std::move(e));
    }
    ASSERT_TRUE(store_->PutEpisodes(episodes).ok());
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
};

TEST_F(HashingProviderRealStoreTest, RareWordsOfTheStoreWeighMore) {
  AddEpisodes(9, "repair the checkout pipeline");
  AddEpisodes(1, "repair the zeppelin hangar");
  std::vector<std::string> words = {"zeppelin", "checkout"};
  Result<TermStats> stats = store_->GetTermStats(words);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->documents, 10);
  ASSERT_EQ(stats->doc_frequency, (std::vector<int64_t>{1, 9}));

  HashingOptions words_only{.dimension = 4096, .bigram_weight = 0, .char_ngram_weight = 0};
  auto p = Make(words_only, store_.get());
  std::vector<float> both = EmbedOne(*p, "zeppelin checkout");
  const double rare = std::log(11.0 / 2) + 1, common = std::log(11.0 / 10) + 1;
  const double norm = std::sqrt(rare * rare + common * common);
  EXPECT_NEAR(Dot(both, EmbedOne(*p, "zeppelin")), rare / norm, 1e-5);
  EXPECT_NEAR(Dot(both, EmbedOne(*p, "checkout")), common / norm, 1e-5);
}

TEST_F(HashingProviderRealStoreTest, NewDocumentsRefreshTheFrequencies) {
  AddEpisodes(4, "tune the cache eviction");
  AddEpisodes(4, "tune the query planner");
  auto p = Make({.idf_refresh_documents = 5}, store_.get());
  std::vector<float> before = EmbedOne(*p, "cache planner");
  EXPECT_TRUE(BitIdentical(before, EmbedOne(*p, "cache planner")));

  // "planner" becomes common; the provider notices when it next reads a new word.
  AddEpisodes(6, "planner rewrite");
  EXPECT_TRUE(BitIdentical(before, EmbedOne(*p, "cache planner")));  // still cached
  EmbedOne(*p, "rewrite");
  std::vector<float> after = EmbedOne(*p, "cache planner");
  EXPECT_FALSE(BitIdentical(before, after));
  // Exactly what a provider that starts now computes.
  auto fresh = Make({.idf_refresh_documents = 5}, store_.get());
  EXPECT_TRUE(BitIdentical(after, EmbedOne(*fresh, "cache planner")));
}

}  // namespace
}  // namespace engram
