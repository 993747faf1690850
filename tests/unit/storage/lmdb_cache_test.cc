// The LMDB cache decorator: what it counts, what it forgets and when, and that nothing it
// serves is older than the store, in this process or after another process wrote.
#include "engram/lmdb_cache.h"

#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/sqlite_backend.h"
#include "storage/lmdb/episode_codec.h"
#include "storage/lmdb/lmdb_env.h"
#include "testing/episodes.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using testing::Completed;
using testing::MakeEpisode;
using testing::MakeStep;
using testing::TempDir;

// Forwards to a base store, running hooks around some calls: to make a write land in the
// middle of a read, or to "crash" right after a base commit.
class HookedBackend final : public StorageBackend {
 public:
  explicit HookedBackend(std::unique_ptr<StorageBackend> base) : base_(std::move(base)) {}

  std::function<void()> after_get;       // runs once, after the next base read
  std::function<void()> before_append;   // runs before every AppendStep...
  std::function<void()> after_append;    // ...and after it committed
  std::function<void()> after_complete;  // runs after every CompleteEpisode

  std::string Name() const override { return base_->Name(); }
  std::string Location() const override { return base_->Location(); }
  int SchemaVersion() const override { return base_->SchemaVersion(); }
  Status CreateEpisode(const Episode& e) override { return base_->CreateEpisode(e); }
  Status PutEpisodes(std::span<const Episode> e) override { return base_->PutEpisodes(e); }
  Result<int> AppendStep(std::string_view id, const Step& s) override {
    if (before_append) before_append();
    Result<int> n = base_->AppendStep(id, s);
    if (after_append) after_append();
    return n;
  }
  Status CompleteEpisode(const Episode& e) override {
    Status s = base_->CompleteEpisode(e);
    if (after_complete) after_complete();
    return s;
  }
  Result<Episode> GetEpisode(std::string_view id) override {
    ++get_calls;
    Result<Episode> e = base_->GetEpisode(id);
    if (after_get) std::exchange(after_get, nullptr)();
    return e;
  }
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> ids) override {
    get_many_ids.emplace_back(ids.begin(), ids.end());
    Result<std::vector<Episode>> e = base_->GetEpisodes(ids);
    if (after_get) std::exchange(after_get, nullptr)();
    return e;
  }
  int get_calls = 0;                                 // GetEpisode calls
  std::vector<std::vector<std::string>> get_many_ids;  // the ids of each GetEpisodes call
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& f) override {
    return base_->ListEpisodes(f);
  }
  Result<bool> DeleteEpisode(std::string_view id) override { return base_->DeleteEpisode(id); }
  Result<StoreStats> Stats() override { return base_->Stats(); }
  Result<int64_t> Generation() override { return base_->Generation(); }
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& r) override { return base_->SearchText(r); }
  Result<TermStats> GetTermStats(std::span<const std::string> w) override { return base_->GetTermStats(w); }
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override { return base_->GetEmbeddingSpace(); }
  Status SetEmbeddingSpace(const EmbeddingSpace& s) override { return base_->SetEmbeddingSpace(s); }
  Status PutVectors(const EmbeddingSpace& s, std::span<const EpisodeVector> v) override {
    return base_->PutVectors(s, v);
  }
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& s, int64_t after) override {
    return base_->ListVectors(s, after);
  }
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& s, std::string_view after, size_t limit) override {
    return base_->EpisodesWithoutVector(s, after, limit);
  }
  Status MergePatterns(std::span<const std::string> keys,
                       const std::function<Status(std::vector<Pattern>&)>& merge) override {
    return base_->MergePatterns(keys, merge);
  }
  Result<Pattern> GetPattern(std::string_view id) override { return base_->GetPattern(id); }
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter& f) override { return base_->ListPatterns(f); }
  Status SetPatternDecay(std::span<const std::pair<std::string, double>> w) override {
    return base_->SetPatternDecay(w);
  }
  Status ResetLearning() override { return base_->ResetLearning(); }
  Status PutHeuristics(std::span<const Heuristic> h) override { return base_->PutHeuristics(h); }
  Result<std::vector<Heuristic>> ListHeuristics(size_t limit) override { return base_->ListHeuristics(limit); }
  Status RecordAttributions(std::span<const Attribution> a) override { return base_->RecordAttributions(a); }
  Result<std::vector<std::string>> PendingExtraction(size_t limit) override { return base_->PendingExtraction(limit); }
  Status MarkExtracted(std::span<const std::string> ids) override { return base_->MarkExtracted(ids); }
  Result<size_t> CommitExtraction(const ExtractionBatch& batch) override { return base_->CommitExtraction(batch); }
  Status CheckHealth() override { return base_->CheckHealth(); }

 private:
  std::unique_ptr<StorageBackend> base_;
};

class LmdbCacheTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.File("memory.db"); }
  std::string CachePath() const { return dir_.File("memory.db.cache"); }

  std::unique_ptr<StorageBackend> OpenSqlite(const std::string& path) {
    SqliteOptions options;
    options.path = path;
    options.durability = Durability::kNormal;
    Result<std::unique_ptr<StorageBackend>> base = OpenSqliteBackend(options);
    EXPECT_TRUE(base.ok()) << base.status().ToString();
    return base.ok() ? *std::move(base) : nullptr;
  }

  LmdbOptions Options() {
    LmdbOptions options;
    options.path = CachePath();
    options.map_size = 64 << 20;
    options.clock = &clock_;
    return options;
  }

  std::unique_ptr<StorageBackend> OpenCached(std::unique_ptr<StorageBackend> base, const LmdbOptions& options) {
    Result<std::unique_ptr<StorageBackend>> store = OpenLmdbCache(options, std::move(base));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<StorageBackend> OpenCached() { return OpenCached(OpenSqlite(DbPath()), Options()); }

  static LmdbCacheMetrics Metrics(const StorageBackend& store) {
    const LmdbCache* cache = AsLmdbCache(store);
    EXPECT_NE(cache, nullptr);
    return cache != nullptr ? cache->Metrics() : LmdbCacheMetrics{};
  }

  // Runs `fn` in a forked child, which exits 0 when it returns true. Returns the exit code.
  static int InChild(const std::function<bool()>& fn) {
    pid_t pid = fork();
    if (pid == 0) _exit(fn() ? 0 : 1);  // _exit: the parent's objects are not the child's to destroy
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Replaces the cached value of `id` with `value`, directly in LMDB, while no cache object
  // of this process has the folder open.
  void PlantValue(const std::string& id, const std::string& value) {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 8), 0);
    ASSERT_EQ(mdb_env_open(env, CachePath().c_str(), MDB_NOTLS, 0600), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, lmdb::kEntriesDb, 0, &dbi), 0);
    MDB_val key{id.size(), const_cast<char*>(id.data())};
    MDB_val val{value.size(), const_cast<char*>(value.data())};
    ASSERT_EQ(mdb_put(txn, dbi, &key, &val, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(LmdbCacheTest, CountsHitsAndMisses) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 2);
  ASSERT_TRUE(store->CreateEpisode(e).ok());  // written through: the first read is a hit
  EXPECT_EQ(*store->GetEpisode(e.episode_id), e);
  EXPECT_EQ(Metrics(*store).hits, 1u);
  EXPECT_EQ(Metrics(*store).misses, 0u);

  ASSERT_TRUE(store->AppendStep(e.episode_id, MakeStep(0)).ok());  // invalidates
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 3u);    // miss, refilled
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 3u);    // hit
  EXPECT_EQ(store->GetEpisode(NewUuidV7(clock_)).status().code(), StatusCode::kNotFound);  // miss, not cached

  LmdbCacheMetrics m = Metrics(*store);
  EXPECT_EQ(m.hits, 2u);
  EXPECT_EQ(m.misses, 2u);
  EXPECT_EQ(m.fills, 2u);
  EXPECT_EQ(m.invalidations, 2u);
  EXPECT_EQ(m.errors, 0u);
  EXPECT_EQ(store->Name(), "sqlite");  // transparent
  EXPECT_EQ(AsLmdbCache(*store)->CachePath(), std::filesystem::canonical(CachePath()).string());
}

TEST_F(LmdbCacheTest, PlainBackendIsNotACache) {
  auto store = OpenSqlite(DbPath());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(AsLmdbCache(*store), nullptr);
}

TEST_F(LmdbCacheTest, EveryKindOfWriteInvalidates) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  auto cached = [&] { return *store->GetEpisode(e.episode_id); };
  ASSERT_EQ(cached(), e);

  // AppendStep.
  ASSERT_TRUE(store->AppendStep(e.episode_id, MakeStep(0)).ok());
  EXPECT_EQ(cached().steps.size(), 2u);
  e = cached();

  // PutEpisodes replacing it.
  Episode replaced = e;
  replaced.task_description = "replaced by an import";
  ASSERT_TRUE(store->PutEpisodes(std::span<const Episode>(&replaced, 1)).ok());
  EXPECT_EQ(cached(), replaced);

  // PutEpisodes too large to write through still invalidates.
  std::vector<Episode> batch;
  replaced.task_description = "replaced by a large import";
  batch.push_back(replaced);
  for (int i = 0; i < 80; ++i) batch.push_back(MakeEpisode(clock_, 0));
  ASSERT_TRUE(store->PutEpisodes(batch).ok());
  EXPECT_EQ(cached(), replaced);

  // CompleteEpisode.
  Episode done = Completed(replaced);
  ASSERT_TRUE(store->CompleteEpisode(done).ok());
  EXPECT_EQ(cached(), done);

  // A failed write changes nothing and serves nothing stale.
  EXPECT_EQ(store->CompleteEpisode(done).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(cached(), done);
  EXPECT_EQ(store->CreateEpisode(done).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(cached(), done);

  // DeleteEpisode.
  ASSERT_TRUE(*store->DeleteEpisode(e.episode_id));
  EXPECT_EQ(store->GetEpisode(e.episode_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Metrics(*store).errors, 0u);
}

// SetLimits (config reload): the next read uses the new TTL, the next fill the new bound.
TEST_F(LmdbCacheTest, SetLimitsAppliesToTheNextReadAndFill) {
  LmdbOptions options = Options();
  options.ttl = std::chrono::seconds(3600);
  auto store = OpenCached(OpenSqlite(DbPath()), options);
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  clock_.Advance(std::chrono::seconds(30));
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());
  EXPECT_EQ(Metrics(*store).hits, 1u);

  AsLmdbCache(*store)->SetLimits(/*max_entries=*/1, std::chrono::seconds(10));
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());  // 30 s old: past the new TTL
  EXPECT_EQ(Metrics(*store).expired, 1u);
  ASSERT_TRUE(store->CreateEpisode(MakeEpisode(clock_, 1)).ok());
  ASSERT_TRUE(store->CreateEpisode(MakeEpisode(clock_, 1)).ok());
  EXPECT_GE(Metrics(*store).evictions, 1u);
}

TEST_F(LmdbCacheTest, EntriesExpireAfterTheTtl) {
  LmdbOptions options = Options();
  options.ttl = std::chrono::seconds(60);
  auto store = OpenCached(OpenSqlite(DbPath()), options);
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  clock_.Advance(std::chrono::seconds(59));
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());
  EXPECT_EQ(Metrics(*store).hits, 1u);

  clock_.Advance(std::chrono::seconds(2));  // 61 s after it was stored
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());
  EXPECT_EQ(Metrics(*store).misses, 1u);
  EXPECT_EQ(Metrics(*store).expired, 1u);
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());  // refilled at the new time
  EXPECT_EQ(Metrics(*store).hits, 2u);
}

TEST_F(LmdbCacheTest, EvictsTheLeastRecentlyUsedAtTheEntryBound) {
  LmdbOptions options = Options();
  options.max_entries = 3;
  auto store = OpenCached(OpenSqlite(DbPath()), options);
  ASSERT_NE(store, nullptr);
  std::vector<Episode> e;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(std::chrono::minutes(2));  // recency is kept at a minute's grain
    e.push_back(MakeEpisode(clock_, 1));
    ASSERT_TRUE(store->CreateEpisode(e.back()).ok());
  }
  clock_.Advance(std::chrono::minutes(2));
  ASSERT_TRUE(store->GetEpisode(e[0].episode_id).ok());  // e[0] is now more recent than e[1]
  clock_.Advance(std::chrono::minutes(2));
  e.push_back(MakeEpisode(clock_, 1));
  ASSERT_TRUE(store->CreateEpisode(e.back()).ok());  // a 4th entry: e[1] goes
  EXPECT_EQ(Metrics(*store).evictions, 1u);

  const uint64_t hits = Metrics(*store).hits;
  for (int i : {0, 2, 3}) ASSERT_TRUE(store->GetEpisode(e[i].episode_id).ok());
  EXPECT_EQ(Metrics(*store).hits, hits + 3);
  EXPECT_EQ(Metrics(*store).misses, 0u);
  ASSERT_TRUE(store->GetEpisode(e[1].episode_id).ok());
  EXPECT_EQ(Metrics(*store).misses, 1u);
}

TEST_F(LmdbCacheTest, EvictsAtTheByteBound) {
  Episode probe = MakeEpisode(clock_, 2);
  const size_t value_size = lmdb::EncodeCachedEpisode(probe, 0).size();
  LmdbOptions options = Options();
  options.max_entries = 0;
  options.max_bytes = value_size * 3 + value_size / 2;  // room for three
  auto store = OpenCached(OpenSqlite(DbPath()), options);
  ASSERT_NE(store, nullptr);
  std::vector<Episode> e;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(std::chrono::seconds(1));
    e.push_back(MakeEpisode(clock_, 2));
    ASSERT_TRUE(store->CreateEpisode(e.back()).ok());
  }
  EXPECT_EQ(Metrics(*store).evictions, 2u);
  for (int i : {2, 3, 4}) ASSERT_TRUE(store->GetEpisode(e[i].episode_id).ok());
  EXPECT_EQ(Metrics(*store).hits, 3u);
  EXPECT_EQ(Metrics(*store).misses, 0u);
}

TEST_F(LmdbCacheTest, ValueOfAnotherCodecVersionOrGarbageIsAMiss) {
  Episode e = MakeEpisode(clock_, 2);
  {
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateEpisode(e).ok());
  }
  Episode other = e;
  other.task_description = "what a future codec wrote";
  const int64_t now = clock_.Now().time_since_epoch().count();
  for (const std::string& value : {lmdb::EncodeCachedEpisode(other, now, lmdb::kCodecVersion + 1),
                                   std::string("\x94\x01garbage", 9), std::string(), std::string(5000, '\xc1')}) {
    PlantValue(e.episode_id, value);
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->GetEpisode(e.episode_id), e);
    EXPECT_EQ(Metrics(*store).misses, 1u);
    EXPECT_EQ(Metrics(*store).undecodable, 1u);
    EXPECT_EQ(*store->GetEpisode(e.episode_id), e);  // replaced by a good copy
    EXPECT_EQ(Metrics(*store).hits, 1u);
  }
  // A copy whose bytes changed under its checksum is not served either.
  std::string value = lmdb::EncodeCachedEpisode(other, now);
  value[value.size() - 5] ^= 0x01;
  PlantValue(e.episode_id, value);
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->GetEpisode(e.episode_id), e);
  EXPECT_EQ(Metrics(*store).undecodable, 1u);
}

TEST_F(LmdbCacheTest, CodecRoundTripsEveryField) {
  Episode e = Completed(MakeEpisode(clock_, 3));
  e.steps[1].result.reset();
  e.steps[2].latency_ms.reset();
  e.context.language.reset();
  e.outcome->verification->build_ok.reset();
  e.outcome->error_details = "boom";
  e.pattern_ids = {"p1", "p2"};
  Result<lmdb::CachedEpisode> back = lmdb::DecodeCachedEpisode(lmdb::EncodeCachedEpisode(e, 42));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->filled_at_ms, 42);
  EXPECT_EQ(back->episode, e);
  EXPECT_EQ(lmdb::DecodeCachedEpisode(lmdb::EncodeCachedEpisode(e, 42, 7)).status().code(),
            StatusCode::kFailedPrecondition);
  const std::string good = lmdb::EncodeCachedEpisode(e, 42);
  for (size_t cut = 0; cut < good.size(); cut += 7) {  // every truncation is refused, none crashes
    EXPECT_FALSE(lmdb::DecodeCachedEpisode(std::string_view(good).substr(0, cut)).ok()) << cut;
  }
}

TEST_F(LmdbCacheTest, CorruptCacheFileIsDiscardedAndRebuilt) {
  Episode e = MakeEpisode(clock_, 2);
  {
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateEpisode(e).ok());
  }
  for (const std::string& garbage : {std::string(64 << 10, '\x5a'), std::string("not lmdb"), std::string()}) {
    {
      std::ofstream out(CachePath() + "/data.mdb", std::ios::binary | std::ios::trunc);
      out << garbage;
    }
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    Status health = store->CheckHealth();
    EXPECT_TRUE(health.ok()) << health.ToString();
    EXPECT_EQ(*store->GetEpisode(e.episode_id), e);  // from the store: the cache started empty
    EXPECT_EQ(Metrics(*store).misses, 1u);
    EXPECT_EQ(*store->GetEpisode(e.episode_id), e);
    EXPECT_EQ(Metrics(*store).hits, 1u);
  }
}

TEST_F(LmdbCacheTest, CorruptionFoundAtRunTimeFailsHealthAndIsRebuiltAtTheNextOpen) {
  Episode e = MakeEpisode(clock_, 1);
  {
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateEpisode(e).ok());
    std::ofstream(CachePath() + "/corrupt") << "found by another process";
    EXPECT_EQ(store->CheckHealth().code(), StatusCode::kDataLoss);
  }
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->CheckHealth().ok());
  EXPECT_FALSE(std::filesystem::exists(CachePath() + "/corrupt"));
  EXPECT_EQ(*store->GetEpisode(e.episode_id), e);
  EXPECT_EQ(Metrics(*store).misses, 1u);
}

TEST_F(LmdbCacheTest, DeletingTheCacheWhileStoppedLosesNothing) {
  std::vector<Episode> e;
  {
    auto store = OpenCached();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 5; ++i) {
      e.push_back(Completed(MakeEpisode(clock_, 3)));
      ASSERT_TRUE(store->CreateEpisode(e.back()).ok());
    }
  }
  std::filesystem::remove_all(CachePath());
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  for (const Episode& x : e) EXPECT_EQ(*store->GetEpisode(x.episode_id), x);
  EXPECT_EQ(store->Stats()->episodes, 5);
}

TEST_F(LmdbCacheTest, CacheOfAnotherStoreIsRebuilt) {
  Episode e = MakeEpisode(clock_, 1);
  {
    auto store = OpenCached();  // memory.db, cache memory.db.cache
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateEpisode(e).ok());
  }
  Episode elsewhere = e;
  elsewhere.task_description = "the same id in another store";
  {
    auto other = OpenSqlite(dir_.File("other.db"));
    ASSERT_TRUE(other->CreateEpisode(elsewhere).ok());
  }
  auto store = OpenCached(OpenSqlite(dir_.File("other.db")), Options());  // same cache folder
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->GetEpisode(e.episode_id), elsewhere);
}

// The race the generation counter exists for: a read of the store that happens before a
// write commits must not be stored after the write has invalidated.
TEST_F(LmdbCacheTest, RefillRacingAWriteIsDiscarded) {
  auto hooked = std::make_unique<HookedBackend>(OpenSqlite(DbPath()));
  HookedBackend* hooks = hooked.get();
  auto reader = OpenCached(std::move(hooked), Options());
  auto writer = OpenCached();  // another cache object on the same folder and store
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(writer, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(writer->CreateEpisode(e).ok());
  ASSERT_TRUE(AsLmdbCache(*reader)->Clear().ok());

  hooks->after_get = [&] { ASSERT_TRUE(writer->AppendStep(e.episode_id, MakeStep(0)).ok()); };
  EXPECT_EQ(reader->GetEpisode(e.episode_id)->steps.size(), 1u);  // read before the write: fine
  EXPECT_EQ(Metrics(*reader).fills_skipped, 1u);
  EXPECT_EQ(reader->GetEpisode(e.episode_id)->steps.size(), 2u);  // never the old copy again
  EXPECT_EQ(reader->GetEpisode(e.episode_id)->steps.size(), 2u);
  EXPECT_EQ(Metrics(*reader).hits, 1u);
}

// GetEpisodes answers hits from the cache and reads every miss from the base in one call
// (one round trip on a remote store), in the order asked, each id once, unknown ids left out.
TEST_F(LmdbCacheTest, GetEpisodesReadsTheMissesFromTheBaseInOneCall) {
  auto hooked = std::make_unique<HookedBackend>(OpenSqlite(DbPath()));
  HookedBackend* hooks = hooked.get();
  auto store = OpenCached(std::move(hooked), Options());
  ASSERT_NE(store, nullptr);
  std::vector<Episode> e;
  for (int i = 0; i < 5; ++i) {
    e.push_back(MakeEpisode(clock_, 1 + i % 2));
    ASSERT_TRUE(store->CreateEpisode(e.back()).ok());
  }
  ASSERT_TRUE(AsLmdbCache(*store)->Clear().ok());
  const uint64_t fills_before = Metrics(*store).fills;  // the creates wrote through
  ASSERT_EQ(*store->GetEpisode(e[0].episode_id), e[0]);  // miss, refilled
  ASSERT_EQ(hooks->get_calls, 1);
  const std::string unknown = NewUuidV7(clock_);
  std::vector<std::string> ids = {e[3].episode_id, e[0].episode_id, e[1].episode_id, unknown,
                                  e[1].episode_id, e[2].episode_id, e[4].episode_id};
  Result<std::vector<Episode>> got = store->GetEpisodes(ids);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (std::vector<Episode>{e[3], e[0], e[1], e[2], e[4]}));
  EXPECT_EQ(hooks->get_calls, 1);  // no per-episode reads
  ASSERT_EQ(hooks->get_many_ids.size(), 1u);
  EXPECT_EQ(hooks->get_many_ids[0],
            (std::vector<std::string>{e[3].episode_id, e[1].episode_id, unknown, e[2].episode_id, e[4].episode_id}));
  LmdbCacheMetrics m = Metrics(*store);
  EXPECT_EQ(m.hits, 1u);
  EXPECT_EQ(m.misses, 1u + 5u);
  EXPECT_EQ(m.fills - fills_before, 1u + 4u);

  // Now every one is a hit: the base is not asked at all.
  got = store->GetEpisodes(ids);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 5u);
  EXPECT_EQ(hooks->get_many_ids.size(), 2u);  // only the unknown id
  EXPECT_EQ(hooks->get_many_ids[1], std::vector<std::string>{unknown});
  EXPECT_EQ(Metrics(*store).hits, 1u + 5u);
  EXPECT_EQ(hooks->get_calls, 1);
}

// A write landing during the batched base read: the episode it changed is not refilled
// with the copy read before it (the others are), and the next read sees the write.
TEST_F(LmdbCacheTest, BatchedRefillRacingAWriteIsDiscarded) {
  auto hooked = std::make_unique<HookedBackend>(OpenSqlite(DbPath()));
  HookedBackend* hooks = hooked.get();
  auto reader = OpenCached(std::move(hooked), Options());
  auto writer = OpenCached();
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(writer, nullptr);
  Episode a = MakeEpisode(clock_, 1);
  Episode b = MakeEpisode(clock_, 1);
  ASSERT_TRUE(writer->CreateEpisode(a).ok());
  ASSERT_TRUE(writer->CreateEpisode(b).ok());
  ASSERT_TRUE(AsLmdbCache(*reader)->Clear().ok());

  hooks->after_get = [&] { ASSERT_TRUE(writer->AppendStep(a.episode_id, MakeStep(0)).ok()); };
  std::vector<std::string> ids = {a.episode_id, b.episode_id};
  Result<std::vector<Episode>> got = reader->GetEpisodes(ids);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0].steps.size(), 1u);  // read before the write: fine
  // The generation moved during the read, so neither copy can be proven current.
  EXPECT_EQ(Metrics(*reader).fills_skipped, 2u);
  got = reader->GetEpisodes(ids);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0].steps.size(), 2u);  // never the old copy again
  EXPECT_EQ((*got)[1], b);
  got = reader->GetEpisodes(ids);
  EXPECT_EQ((*got)[0].steps.size(), 2u);
  EXPECT_EQ(Metrics(*reader).hits, 2u);  // the third read: both from the cache
}

TEST_F(LmdbCacheTest, InvalidateDropsCopiesOfWritesMadeElsewhere) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  auto direct = OpenSqlite(DbPath());  // e.g. another host's write to a shared PostgreSQL
  ASSERT_TRUE(direct->AppendStep(e.episode_id, MakeStep(0)).ok());
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 1u);  // the cache cannot know
  const std::vector<std::string> ids = {e.episode_id};
  ASSERT_TRUE(AsLmdbCache(*store)->Invalidate(ids).ok());
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 2u);
}

TEST_F(LmdbCacheTest, WriteByAnotherProcessIsNeverServedStale) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 2);
  Episode gone = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  ASSERT_TRUE(store->CreateEpisode(gone).ok());
  ASSERT_TRUE(store->GetEpisode(e.episode_id).ok());  // cached here
  ASSERT_TRUE(store->GetEpisode(gone.episode_id).ok());
  ASSERT_EQ(Metrics(*store).hits, 2u);

  Episode done = Completed(e);
  done.steps.push_back(MakeStep(3));
  ASSERT_EQ(InChild([&] {
              auto child = OpenCached();  // its own cache object, in its own process
              if (child == nullptr || !child->GetEpisode(e.episode_id).ok()) return false;
              if (!child->AppendStep(e.episode_id, MakeStep(3)).ok()) return false;
              if (!child->CompleteEpisode(done).ok()) return false;
              return *child->DeleteEpisode(gone.episode_id);
            }),
            0);

  Result<Episode> got = store->GetEpisode(e.episode_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, done);
  EXPECT_EQ(store->GetEpisode(gone.episode_id).status().code(), StatusCode::kNotFound);
}

TEST_F(LmdbCacheTest, WriterKilledBetweenStoreCommitAndCacheUpdateLeavesNothingStale) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  ASSERT_FALSE(store->GetEpisode(e.episode_id)->completed());  // cached, in progress

  ASSERT_EQ(InChild([&] {
              auto hooked = std::make_unique<HookedBackend>(OpenSqlite(DbPath()));
              hooked->after_complete = [] { _exit(0); };  // dies before the cache hears of it
              auto child = OpenCached(std::move(hooked), Options());
              if (child != nullptr) child->CompleteEpisode(Completed(e)).IgnoreError();
              return false;
            }),
            0);

  EXPECT_TRUE(store->GetEpisode(e.episode_id)->completed());  // the copy went before the commit
  EXPECT_TRUE(store->GetEpisode(e.episode_id)->completed());  // the dead writer's marker is cleared
  EXPECT_EQ(Metrics(*store).hits, 2u);  // 1 before, 1 after the refill
  EXPECT_EQ(Metrics(*store).misses, 1u);
}

// The pending marker's job: a read in the middle of a write (after the copy was dropped,
// before the store commits) reads the old episode and must not store it, even if the writer
// then dies before it can drop copies again.
TEST_F(LmdbCacheTest, ReadDuringAWriteThatDiesBeforeFinishingIsNotCached) {
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  Episode e = MakeEpisode(clock_, 1);
  ASSERT_TRUE(store->CreateEpisode(e).ok());
  store.reset();

  ASSERT_EQ(InChild([&] {
              auto hooked = std::make_unique<HookedBackend>(OpenSqlite(DbPath()));
              HookedBackend* hooks = hooked.get();
              auto writer = OpenCached(std::move(hooked), Options());
              auto reader = OpenCached();  // another cache object, same folder
              if (writer == nullptr || reader == nullptr) return false;
              hooks->before_append = [&] {
                if (reader->GetEpisode(e.episode_id)->steps.size() != 1) _exit(2);  // the old episode
              };
              hooks->after_append = [] { _exit(0); };  // committed, then killed
              writer->AppendStep(e.episode_id, MakeStep(0)).status().IgnoreError();
              return false;
            }),
            0);

  store = OpenCached();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 2u);
  EXPECT_EQ(store->GetEpisode(e.episode_id)->steps.size(), 2u);
}

// Agent sessions start together: the first process builds the file, the others wait for it
// and use it (none fails, none rebuilds it under another's feet).
TEST_F(LmdbCacheTest, ProcessesStartingTogetherShareOneNewCacheFile) {
  ASSERT_NE(OpenSqlite(DbPath()), nullptr);  // the store exists; the cache folder does not
  std::vector<pid_t> children;
  for (int i = 0; i < 6; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      auto store = OpenCached();
      if (store == nullptr) _exit(1);
      Episode e = MakeEpisode(clock_, 1);
      e.episode_id.back() = "0123456789abcdef"[i];  // forked children share the parent's random state
      if (!store->CreateEpisode(e).ok()) _exit(2);
      _exit(store->GetEpisode(e.episode_id).value_or(Episode{}) == e ? 0 : 3);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  }
  auto store = OpenCached();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats()->episodes, 6);
}

TEST_F(LmdbCacheTest, RejectsBadOptions) {
  LmdbOptions options = Options();
  options.path.clear();
  EXPECT_EQ(OpenLmdbCache(options, OpenSqlite(DbPath())).status().code(), StatusCode::kInvalidArgument);
  options = Options();
  options.max_bytes = options.map_size;
  EXPECT_EQ(OpenLmdbCache(options, OpenSqlite(DbPath())).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenLmdbCache(Options(), nullptr).status().code(), StatusCode::kInvalidArgument);
  std::ofstream(dir_.File("a-file")) << "x";
  options = Options();
  options.path = dir_.File("a-file");
  EXPECT_FALSE(OpenLmdbCache(options, OpenSqlite(DbPath())).ok());
}

}  // namespace
}  // namespace engram
