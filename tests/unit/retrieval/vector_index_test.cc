#include "retrieval/vector_index.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "common/ids.h"
#include "engram/sqlite_backend.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::Each;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<float> RandomUnit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(dim));
  double norm = 0;
  for (float& x : v) {
    x = normal(rng);
    norm += double{x} * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

float Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double{a[i]} * b[i];
  return static_cast<float>(s);
}

std::unique_ptr<StorageBackend> OpenStore(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  options.durability = Durability::kNormal;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? *std::move(store) : nullptr;
}

ino_t Inode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class VectorIndexTest : public ::testing::Test {
 protected:
  static constexpr int kDim = 32;
  // How far an int8 graph's cosine (the default encoding) may be from the exact one for
  // these random 32-dimension unit vectors (measured: ~0.002 at most).
  static constexpr double kInt8Error = 0.01;

  void SetUp() override {
    store_ = OpenStore(dir_.File("memory.db"));
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->SetEmbeddingSpace(space_).ok());
  }

  // Stores n completed episodes with random unit vectors (appended to ids_/vectors_).
  void AddVectors(size_t n, StorageBackend* store = nullptr) {
    if (store == nullptr) store = store_.get();
    std::vector<Episode> episodes;
    std::vector<EpisodeVector> vectors;
    for (size_t i = 0; i < n; ++i) {
      Episode e = testing::Completed(testing::MakeEpisode(clock_, 0));
      clock_.Advance(std::chrono::milliseconds(1));
      EpisodeVector v{e.episode_id, RandomUnit(rng_, space_.dimension)};
      ids_.push_back(e.episode_id);
      vectors_.push_back(v.vector);
      episodes.push_back(std::move(e));
      vectors.push_back(std::move(v));
    }
    ASSERT_TRUE(store->PutEpisodes(episodes).ok());
    ASSERT_TRUE(store->PutVectors(space_, vectors).ok());
  }

  // Replaces the stored vector of ids_[i] with a new random one.
  void ReplaceVector(size_t i, StorageBackend* store = nullptr) {
    if (store == nullptr) store = store_.get();
    vectors_[i] = RandomUnit(rng_, space_.dimension);
    std::vector<EpisodeVector> v{{ids_[i], vectors_[i]}};
    ASSERT_TRUE(store->PutVectors(space_, v).ok());
  }

  std::unique_ptr<VectorIndex> Open(VectorIndexOptions options) {
    Result<std::unique_ptr<VectorIndex>> index = VectorIndex::Open(*store_, space_, options);
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    return index.ok() ? *std::move(index) : nullptr;
  }

  // The true top k among the indices `accept` allows, by brute force in doubles.
  std::vector<std::string> TrueTopK(const std::vector<float>& q, size_t k,
                                    const std::function<bool(size_t)>& accept = {}) const {
    std::vector<std::pair<float, size_t>> all;
    for (size_t i = 0; i < vectors_.size(); ++i) {
      if (!accept || accept(i)) all.emplace_back(Dot(q, vectors_[i]), i);
    }
    k = std::min(k, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::string> out;
    for (size_t i = 0; i < k; ++i) out.push_back(ids_[all[i].second]);
    return out;
  }

  static std::vector<std::string> Ids(const std::vector<VectorHit>& hits) {
    std::vector<std::string> out;
    for (const VectorHit& h : hits) out.push_back(h.episode_id);
    return out;
  }

  std::vector<VectorHit> Search(const VectorIndex& index, const std::vector<float>& q, size_t k,
                                const std::function<bool(std::string_view)>& accept = {}) {
    Result<std::vector<VectorHit>> hits = index.Search(q, k, accept);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    return hits.ok() ? *hits : std::vector<VectorHit>{};
  }

  // Average recall@k of the index over `queries` random queries.
  double Recall(const VectorIndex& index, size_t k, int queries) {
    double found = 0;
    for (int i = 0; i < queries; ++i) {
      std::vector<float> q = RandomUnit(rng_, space_.dimension);
      std::vector<std::string> truth = TrueTopK(q, k);
      std::set<std::string> got;
      for (const VectorHit& h : Search(index, q, k)) got.insert(h.episode_id);
      for (const std::string& id : truth) found += got.count(id);
    }
    return found / (double(k) * queries);
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::mt19937 rng_{42};
  EmbeddingSpace space_{"test", "random-v1", kDim};
  std::unique_ptr<StorageBackend> store_;
  std::vector<std::string> ids_;
  std::vector<std::vector<float>> vectors_;
};

TEST_F(VectorIndexTest, EmptyStoreAnswersNothing) {
  auto index = Open({});
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->size(), 0u);
  EXPECT_EQ(index->mode(), "exact");
  EXPECT_TRUE(Search(*index, RandomUnit(rng_, kDim), 10).empty());
}

TEST_F(VectorIndexTest, ExactModeReturnsTheTrueNearestNeighbours) {
  AddVectors(500);
  auto index = Open({});
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->mode(), "exact");
  EXPECT_EQ(index->size(), 500u);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> q = RandomUnit(rng_, kDim);
    std::vector<VectorHit> hits = Search(*index, q, 10);
    EXPECT_THAT(Ids(hits), ElementsAreArray(TrueTopK(q, 10)));
    for (const VectorHit& h : hits) {
      size_t at = static_cast<size_t>(std::find(ids_.begin(), ids_.end(), h.episode_id) - ids_.begin());
      EXPECT_NEAR(h.similarity, Dot(q, vectors_[at]), 1e-5);
    }
  }
  // A stored vector finds itself first, with cosine 1.
  std::vector<VectorHit> self = Search(*index, vectors_[123], 3);
  ASSERT_FALSE(self.empty());
  EXPECT_EQ(self[0].episode_id, ids_[123]);
  EXPECT_NEAR(self[0].similarity, 1.0, 1e-5);
  // k above the count returns everything once, best first.
  std::vector<VectorHit> all = Search(*index, vectors_[0], 1000);
  EXPECT_EQ(all.size(), 500u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const VectorHit& a, const VectorHit& b) { return a.similarity > b.similarity; }));
}

TEST_F(VectorIndexTest, HnswRecallAt10IsAtLeast95PercentOn20kVectors) {
  AddVectors(20'000);
  auto index = Open({.exact_below = 1'000});
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->mode(), "hnsw");
  EXPECT_EQ(index->size(), 20'000u);
  double recall = Recall(*index, 10, 200);
  EXPECT_GE(recall, 0.95);
  RecordProperty("recall_at_10", std::to_string(recall));
  // Stored vectors find themselves.
  for (size_t i : {0u, 777u, 19'999u}) {
    std::vector<VectorHit> hits = Search(*index, vectors_[i], 1);
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].episode_id, ids_[i]);
  }
}

TEST_F(VectorIndexTest, AcceptFiltersInBothModes) {
  AddVectors(3'000);
  std::set<std::string> tenth;  // every tenth episode
  for (size_t i = 3; i < ids_.size(); i += 10) tenth.insert(ids_[i]);
  auto in_tenth = [&](std::string_view id) { return tenth.count(std::string(id)) > 0; };
  auto index_of_tenth = [](size_t i) { return i % 10 == 3; };
  std::set<std::string> five(ids_.begin() + 100, ids_.begin() + 105);  // a very selective filter
  auto in_five = [&](std::string_view id) { return five.count(std::string(id)) > 0; };

  for (size_t exact_below : {size_t{5'000}, size_t{500}}) {
    auto index = Open({.exact_below = exact_below});
    ASSERT_NE(index, nullptr);
    EXPECT_EQ(index->mode(), exact_below > 3'000 ? "exact" : "hnsw");
    size_t agree = 0;
    for (int i = 0; i < 20; ++i) {
      std::vector<float> q = RandomUnit(rng_, kDim);
      std::vector<VectorHit> hits = Search(*index, q, 10, in_tenth);
      ASSERT_EQ(hits.size(), 10u);
      for (const VectorHit& h : hits) EXPECT_TRUE(in_tenth(h.episode_id)) << h.episode_id;
      std::vector<std::string> truth = TrueTopK(q, 10, index_of_tenth);
      for (const std::string& id : Ids(hits)) agree += std::count(truth.begin(), truth.end(), id);

      // Only five episodes pass: exactly those five come back, best first.
      std::vector<VectorHit> few = Search(*index, q, 10, in_five);
      std::vector<std::string> few_truth =
          TrueTopK(q, 10, [](size_t j) { return j >= 100 && j < 105; });
      EXPECT_THAT(Ids(few), ElementsAreArray(few_truth));
    }
    if (index->mode() == "exact") {
      EXPECT_EQ(agree, 200u);
    } else {
      EXPECT_GE(agree, 190u);  // recall ≥ 0.95 under the filter too
    }
  }
}

TEST_F(VectorIndexTest, CatchUpAddsVectorsStoredByAnotherBackendInstance) {
  AddVectors(100);
  auto index = Open({.exact_below = 150});
  ASSERT_NE(index, nullptr);
  int64_t seq = index->max_seq();
  EXPECT_GT(seq, 0);
  ASSERT_TRUE(index->CatchUp().ok());
  EXPECT_EQ(index->max_seq(), seq);  // nothing new

  // Another process writes to the same file.
  std::unique_ptr<StorageBackend> other = OpenStore(dir_.File("memory.db"));
  ASSERT_NE(other, nullptr);
  AddVectors(200, other.get());
  EXPECT_EQ(index->size(), 100u);
  ASSERT_TRUE(index->CatchUp().ok());
  EXPECT_EQ(index->size(), 300u);
  EXPECT_GT(index->max_seq(), seq);
  EXPECT_EQ(index->mode(), "hnsw");  // crossed exact_below on the way
  std::vector<VectorHit> hits = Search(*index, vectors_[250], 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].episode_id, ids_[250]);
  EXPECT_GE(Recall(*index, 10, 50), 0.95);
}

TEST_F(VectorIndexTest, ReplacedVectorsAreReturnedOnceWithTheirNewVector) {
  AddVectors(400);
  for (size_t exact_below : {size_t{5'000}, size_t{100}}) {
    auto index = Open({.exact_below = exact_below});
    ASSERT_NE(index, nullptr);
    std::vector<float> old = vectors_[7];
    std::unique_ptr<StorageBackend> other = OpenStore(dir_.File("memory.db"));
    ReplaceVector(7, other.get());
    ReplaceVector(7, other.get());  // twice: the stream holds only the latest
    ReplaceVector(9, other.get());
    ASSERT_TRUE(index->CatchUp().ok());
    EXPECT_EQ(index->size(), 400u);

    std::vector<VectorHit> hits = Search(*index, vectors_[7], 400);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].episode_id, ids_[7]);
    const double tolerance = index->mode() == "hnsw" ? kInt8Error : 1e-5;
    EXPECT_NEAR(hits[0].similarity, 1.0, tolerance);
    EXPECT_EQ(std::count_if(hits.begin(), hits.end(), [&](const VectorHit& h) { return h.episode_id == ids_[7]; }), 1);
    std::vector<std::string> all = Ids(hits);
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());
    // The old vector no longer finds it with cosine 1.
    for (const VectorHit& h : Search(*index, old, 5)) {
      if (h.episode_id == ids_[7]) EXPECT_NEAR(h.similarity, Dot(old, vectors_[7]), tolerance);
    }
    // Add of what the store holds (as after this process's own PutVectors) changes nothing.
    ASSERT_TRUE(index->Add({ids_[9], vectors_[9]}).ok());
    EXPECT_EQ(index->size(), 400u);
    EXPECT_EQ(Search(*index, vectors_[9], 1)[0].episode_id, ids_[9]);
  }
}

TEST_F(VectorIndexTest, AddAndRemoveInBothModes) {
  AddVectors(300);
  for (size_t exact_below : {size_t{5'000}, size_t{100}}) {
    auto index = Open({.exact_below = exact_below});
    ASSERT_NE(index, nullptr);
    std::vector<float> v = RandomUnit(rng_, kDim);
    ASSERT_TRUE(index->Add({"local-episode", v}).ok());
    EXPECT_EQ(index->size(), 301u);
    EXPECT_EQ(Search(*index, v, 1)[0].episode_id, "local-episode");

    EXPECT_TRUE(index->Remove(ids_[5]));
    EXPECT_FALSE(index->Remove(ids_[5]));
    EXPECT_FALSE(index->Remove("never-there"));
    EXPECT_EQ(index->size(), 300u);
    for (const VectorHit& h : Search(*index, vectors_[5], 300)) EXPECT_NE(h.episode_id, ids_[5]);
    // Others are still found, the moved slot included (exact mode fills the hole with the last one).
    EXPECT_EQ(Search(*index, v, 1)[0].episode_id, "local-episode");
    EXPECT_EQ(Search(*index, vectors_[6], 1)[0].episode_id, ids_[6]);
    // Added back: found again, once.
    ASSERT_TRUE(index->Add({ids_[5], vectors_[5]}).ok());
    std::vector<VectorHit> hits = Search(*index, vectors_[5], 301);
    EXPECT_EQ(hits[0].episode_id, ids_[5]);
    EXPECT_EQ(std::count_if(hits.begin(), hits.end(), [&](const VectorHit& h) { return h.episode_id == ids_[5]; }), 1);
  }
}

TEST_F(VectorIndexTest, SimilarityScoresOneEpisodeInBothModes) {
  AddVectors(300);
  for (size_t exact_below : {size_t{5'000}, size_t{100}}) {
    auto index = Open({.exact_below = exact_below});
    ASSERT_NE(index, nullptr);
    std::vector<float> q = RandomUnit(rng_, kDim);
    for (size_t i : {0u, 150u, 299u}) {
      std::optional<float> sim = index->Similarity(q, ids_[i]);
      ASSERT_TRUE(sim.has_value());
      EXPECT_NEAR(*sim, Dot(q, vectors_[i]), index->mode() == "hnsw" ? kInt8Error : 1e-5);
    }
    EXPECT_FALSE(index->Similarity(q, "no-such-episode").has_value());
    EXPECT_FALSE(index->Similarity(std::vector<float>(kDim - 1, 0.1f), ids_[0]).has_value());
    ASSERT_TRUE(index->Remove(ids_[10]));
    EXPECT_FALSE(index->Similarity(q, ids_[10]).has_value());
    ASSERT_TRUE(index->Add({ids_[10], vectors_[10]}).ok());
  }
}

TEST_F(VectorIndexTest, Int8AndFloat32GraphsAgreeAndAFileOfTheOtherEncodingIsRebuilt) {
  AddVectors(400);
  const std::string path = dir_.File("memory.db.vectors.hnsw");
  auto f32 = Open({.path = path, .exact_below = 100, .encoding = VectorEncoding::kFloat32});
  ASSERT_NE(f32, nullptr);
  ASSERT_EQ(f32->mode(), "hnsw");
  const ino_t float_file = Inode(path);
  ASSERT_NE(float_file, 0u);
  // The default (int8) does not trust the float32 file: it rebuilds and saves its own.
  auto i8 = Open({.path = path, .exact_below = 100});
  ASSERT_NE(i8, nullptr);
  ASSERT_EQ(i8->mode(), "hnsw");
  const ino_t int8_file = Inode(path);
  EXPECT_NE(int8_file, float_file);
  EXPECT_LT(i8->MemoryBytes(), f32->MemoryBytes());
  std::vector<float> q = RandomUnit(rng_, kDim);
  for (size_t i : {0u, 200u, 399u}) {
    EXPECT_NEAR(*f32->Similarity(q, ids_[i]), Dot(q, vectors_[i]), 1e-5);  // float32: exact
    EXPECT_NEAR(*i8->Similarity(q, ids_[i]), Dot(q, vectors_[i]), kInt8Error);
    EXPECT_EQ(Search(*i8, vectors_[i], 1)[0].episode_id, ids_[i]);
  }
  EXPECT_GE(Recall(*i8, 10, 50), 0.95);
  // Its own encoding's file is loaded as it is, and answers the same.
  auto again = Open({.path = path, .exact_below = 100});
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Inode(path), int8_file);
  EXPECT_EQ(Ids(Search(*again, q, 10)), Ids(Search(*i8, q, 10)));
  // And float32 rebuilds from an int8 file in turn.
  auto back = Open({.path = path, .exact_below = 100, .encoding = VectorEncoding::kFloat32});
  ASSERT_NE(back, nullptr);
  EXPECT_NE(Inode(path), int8_file);
  EXPECT_NEAR(*back->Similarity(q, ids_[3]), Dot(q, vectors_[3]), 1e-5);
}

TEST_F(VectorIndexTest, BadInputIsRefusedWithAClearError) {
  AddVectors(10);
  auto index = Open({});
  ASSERT_NE(index, nullptr);
  Result<std::vector<VectorHit>> wrong = index->Search(std::vector<float>(kDim + 1, 0.1f), 5);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("33 values"));
  EXPECT_TRUE(Search(*index, vectors_[0], 0).empty());

  std::vector<float> nan(kDim, 0.0f);
  nan[3] = std::nanf("");
  EXPECT_EQ(index->Add({"x", nan}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index->Add({"x", std::vector<float>(5, 0.1f)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index->Add({"", vectors_[0]}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index->size(), 10u);

  for (VectorIndexOptions bad : {VectorIndexOptions{.m = 1}, VectorIndexOptions{.ef_search = 0},
                                 VectorIndexOptions{.ef_construction = 0}}) {
    Result<std::unique_ptr<VectorIndex>> r = VectorIndex::Open(*store_, space_, bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

class VectorIndexFileTest : public VectorIndexTest, public ::testing::WithParamInterface<size_t> {
 protected:
  // exact_below from the parameter: the file holds a flat array or a graph.
  VectorIndexOptions Options() const { return {.path = dir_.File("memory.db.vectors.hnsw"), .exact_below = GetParam()}; }
  std::string Path() const { return Options().path; }

  // An index opened on the file must match the store exactly as one built from scratch.
  void ExpectServesTheStore(const VectorIndex& index) {
    EXPECT_EQ(index.size(), ids_.size());
    EXPECT_EQ(index.mode(), ids_.size() >= GetParam() ? "hnsw" : "exact");
    for (size_t i : {size_t{0}, ids_.size() / 2, ids_.size() - 1}) {
      std::vector<VectorHit> hits = Search(index, vectors_[i], 1);
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].episode_id, ids_[i]);
    }
    EXPECT_GE(Recall(index, 10, 30), 0.95);
  }

  void Corrupt(const std::function<void(std::string&)>& change) {
    std::string bytes;
    {
      std::ifstream in(Path(), std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    ASSERT_GT(bytes.size(), 200u);
    change(bytes);
    std::ofstream out(Path(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

TEST_P(VectorIndexFileTest, SaveThenOpenLoadsTheFile) {
  AddVectors(1'500);
  {
    auto index = Open(Options());  // the file is missing: built and saved
    ASSERT_NE(index, nullptr);
    ExpectServesTheStore(*index);
    ASSERT_TRUE(std::filesystem::exists(Path()));
    ASSERT_TRUE(index->Remove(ids_.back()));  // a removal survives the round trip
    ASSERT_TRUE(index->Save().ok());
  }
  ids_.pop_back();
  vectors_.pop_back();
  ino_t saved = Inode(Path());
  auto loaded = Open(Options());
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(Inode(Path()), saved);  // loaded, not rebuilt and rewritten
  ExpectServesTheStore(*loaded);
  EXPECT_TRUE(loaded->Save().ok());  // nothing changed: nothing written
  EXPECT_EQ(Inode(Path()), saved);
}

TEST_P(VectorIndexFileTest, VectorsStoredAfterTheSaveAreCaughtUpOnOpen) {
  AddVectors(1'200);
  {
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
  }
  ino_t saved = Inode(Path());
  AddVectors(300);
  ReplaceVector(3);
  auto index = Open(Options());
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(Inode(Path()), saved);  // the file was still good: loaded, then caught up
  ExpectServesTheStore(*index);
  EXPECT_EQ(Search(*index, vectors_[3], 1)[0].episode_id, ids_[3]);
}

TEST_P(VectorIndexFileTest, ABrokenFileIsRebuiltWithoutError) {
  AddVectors(1'500);
  {
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
  }
  const std::vector<std::pair<std::string, std::function<void(std::string&)>>> damages = {
      {"truncated", [](std::string& b) { b.resize(b.size() / 2); }},
      {"cut by one byte", [](std::string& b) { b.pop_back(); }},
      {"one byte longer", [](std::string& b) { b.push_back('\0'); }},
      {"bit flip in the payload", [](std::string& b) { b[b.size() / 2] ^= 0x10; }},
      {"bit flip in the last byte", [](std::string& b) { b.back() ^= 0x01; }},
      {"bit flip in the header", [](std::string& b) { b[40] ^= 0x01; }},
      {"empty", [](std::string& b) { b.clear(); }},
      {"header only", [](std::string& b) { b.resize(88); }},
      {"garbage", [](std::string& b) { std::fill(b.begin(), b.end(), '\x5a'); }},
  };
  for (const auto& [name, damage] : damages) {
    SCOPED_TRACE(name);
    if (name == "empty") {
      std::ofstream(Path(), std::ios::trunc);
    } else {
      Corrupt(damage);
    }
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
    ExpectServesTheStore(*index);
    // Rebuilt and saved again: the next Open loads it.
    ino_t rebuilt = Inode(Path());
    auto again = Open(Options());
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(Inode(Path()), rebuilt);
    EXPECT_EQ(again->size(), ids_.size());
  }
  // Missing.
  std::filesystem::remove(Path());
  auto index = Open(Options());
  ASSERT_NE(index, nullptr);
  ExpectServesTheStore(*index);
  EXPECT_TRUE(std::filesystem::exists(Path()));
}

TEST_P(VectorIndexFileTest, AFileOfAnotherSpaceIsRebuilt) {
  AddVectors(1'200);
  {
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
  }
  // The store moves to another model: its old vectors go, new ones come.
  EmbeddingSpace other{"test", "random-v2", kDim};
  ASSERT_TRUE(store_->SetEmbeddingSpace(other).ok());
  space_ = other;
  std::vector<EpisodeVector> fresh;
  for (size_t i = 0; i < ids_.size(); ++i) {
    vectors_[i] = RandomUnit(rng_, kDim);
    fresh.push_back({ids_[i], vectors_[i]});
  }
  ASSERT_TRUE(store_->PutVectors(space_, fresh).ok());
  auto index = Open(Options());
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->space(), other);
  ExpectServesTheStore(*index);
}

TEST_P(VectorIndexFileTest, AFileOfAnotherStoreIsStaleAndRebuilt) {
  AddVectors(1'200);
  {
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
  }
  // The store is replaced by a fresh one (deleted and recreated; a backup restored) with
  // other episodes; the index file next to it is left over.
  store_.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(dir_.File(std::string("memory.db") + suffix));
  store_ = OpenStore(dir_.File("memory.db"));
  ASSERT_NE(store_, nullptr);
  ASSERT_TRUE(store_->SetEmbeddingSpace(space_).ok());
  ids_.clear();
  vectors_.clear();
  AddVectors(1'100);
  auto index = Open(Options());
  ASSERT_NE(index, nullptr);
  ExpectServesTheStore(*index);
}

// A file whose checksums are right but whose content is not (a bug, a crafted file) is
// refused before hnswlib sees it: hnswlib trusts its input and would read out of bounds.
TEST_P(VectorIndexFileTest, AFileWithGoodChecksumsButBadContentIsRebuilt) {
  AddVectors(1'500);
  {
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
  }
  // Header layout (vector_index.cc FileHeader): u64 key_bytes at 48, checksums at 72 and
  // 80, 88 bytes in all; the graph follows the space key.
  auto rewrite = [&](const std::function<void(char* graph)>& change) {
    Corrupt([&](std::string& b) {
      uint64_t key_bytes;
      std::memcpy(&key_bytes, b.data() + 48, 8);
      change(b.data() + 88 + key_bytes);
      uint64_t payload = 0;
      for (size_t off = 88; off < b.size(); off += size_t{1} << 20) {
        payload = internal::Xxh64(b.data() + off, std::min(size_t{1} << 20, b.size() - off), payload);
      }
      std::memcpy(b.data() + 72, &payload, 8);
      uint64_t header = internal::Xxh64(b.data(), 80, 0);
      std::memcpy(b.data() + 80, &header, 8);
    });
  };
  std::vector<std::pair<std::string, std::function<void(char*)>>> changes;
  if (GetParam() > 2'000) {
    changes.push_back({"a NaN in a vector", [](char* g) {
                         float nan = std::nanf("");
                         std::memcpy(g + 4 * 17, &nan, 4);
                       }});
  } else {
    // hnswlib's saveIndex format: a 96-byte header, then per element its level-0 links
    // (u16 count, u8 flags, u8 unused, then u32 ids), vector and label.
    changes.push_back({"a link out of range", [](char* g) {
                         uint32_t far = 1u << 30;
                         std::memcpy(g + 96 + 4, &far, 4);
                       }});
    changes.push_back({"a link count above 2M", [](char* g) {
                         uint16_t count = 0xffff;
                         std::memcpy(g + 96, &count, 2);
                       }});
    changes.push_back({"an entry point out of range", [](char* g) {
                         uint32_t far = 1u << 30;
                         std::memcpy(g + 52, &far, 4);
                       }});
  }
  for (const auto& [name, change] : changes) {
    SCOPED_TRACE(name);
    rewrite(change);
    ino_t crafted = Inode(Path());
    auto index = Open(Options());
    ASSERT_NE(index, nullptr);
    EXPECT_NE(Inode(Path()), crafted);  // refused, rebuilt and saved anew
    ExpectServesTheStore(*index);
  }
}

TEST_P(VectorIndexFileTest, TempFilesOfDeadSaversAreRemovedOnOpen) {
  AddVectors(100);
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // a pid that is surely gone
  std::string dead = Path() + ".tmp-" + std::to_string(child) + "-0";
  std::string alive = Path() + ".tmp-" + std::to_string(::getppid()) + "-3";
  std::ofstream(dead) << "half a save";
  std::ofstream(alive) << "a save in progress";
  auto index = Open(Options());
  ASSERT_NE(index, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive));
  EXPECT_EQ(index->size(), 100u);
}

INSTANTIATE_TEST_SUITE_P(ExactAndHnsw, VectorIndexFileTest, ::testing::Values(size_t{5'000}, size_t{1'000}),
                         [](const auto& info) { return info.param > 2'000 ? "Exact" : "Hnsw"; });

TEST_F(VectorIndexTest, MemoryOnlyIndexWritesNoFile) {
  AddVectors(50);
  auto index = Open({});
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->Add({"local", RandomUnit(rng_, kDim)}).ok());
  EXPECT_TRUE(index->Save().ok());
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::StartsWith("memory.db"));
    EXPECT_THAT(entry.path().string(), ::testing::Not(HasSubstr("vectors")));
  }
}

TEST_F(VectorIndexTest, SearchesRunWhileVectorsAreAddedAndSaved) {
  AddVectors(1'500);
  auto index = Open({.path = dir_.File("memory.db.vectors.hnsw"), .exact_below = 1'000});
  ASSERT_NE(index, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!stop.load()) {
        std::vector<float> q = RandomUnit(rng, kDim);
        Result<std::vector<VectorHit>> hits = index->Search(q, 10);
        if (!hits.ok() || hits->size() != 10) failures.fetch_add(1);
      }
    });
  }
  std::vector<std::vector<float>> added;
  for (int i = 0; i < 500; ++i) {
    added.push_back(RandomUnit(rng_, kDim));
    ASSERT_TRUE(index->Add({"added-" + std::to_string(i), added.back()}).ok());
    if (i % 100 == 0) ASSERT_TRUE(index->Save().ok());
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(index->size(), 2'000u);
  EXPECT_EQ(Search(*index, added[321], 1)[0].episode_id, "added-321");
}

}  // namespace
}  // namespace engram
