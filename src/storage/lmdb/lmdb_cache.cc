// LmdbCacheImpl: the LmdbCache decorator (include/engram/lmdb_cache.h).
//
// Why refills can never install a stale copy, with several processes on one cache:
//   - A write runs BeginWrite (one LMDB transaction: add a pending marker per id, drop the
//     ids' copies, bump the generation), then the base write, then EndWrite (remove the
//     markers, drop the copies again, bump the generation).
//   - A miss reads the generation and checks for markers in the same read transaction
//     before it reads the base, and stores its copy only if, in the storing transaction,
//     the generation is unchanged and no live marker exists for the id.
//   So a base read that may predate some write's base commit either saw that write's
//   marker (no refill) or is followed by that write's generation bump (refill refused);
//   and a copy stored before a write's base commit is dropped by its EndWrite. A writer
//   killed between its base commit and EndWrite leaves its marker behind: it already
//   dropped the copy, and refills wait until the marker is seen to be dead (its process is
//   gone, or it is older than kMarkerMaxAgeMs).
#include "engram/lmdb_cache.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/mutex.h"
#include "storage/lmdb/episode_codec.h"
#include "storage/lmdb/lmdb_env.h"

namespace engram {
namespace lmdb {
namespace {

constexpr size_t kMaxIdBytes = 400;         // LMDB keys are at most 511 bytes; lru keys add 8
constexpr size_t kMaxWriteThrough = 64;     // larger PutEpisodes batches (imports) only invalidate
constexpr size_t kTouchBatch = 128;         // recency updates are written in batches...
constexpr int64_t kTouchFlushMs = 1000;     // ...or at least once a second,
constexpr int64_t kTouchGranularityMs = 60'000;  // and only for entries not used in the last minute
constexpr int64_t kMarkerMaxAgeMs = 3'600'000;  // no base write takes an hour

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

void PutBigEndian(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
uint64_t GetBigEndian(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "tick|id": the lru key, oldest tick first.
std::string LruKey(uint64_t tick, std::string_view id) {
  std::string key(8, '\0');
  PutBigEndian(tick, key.data());
  key.append(id);
  return key;
}

// A write in progress as recorded in the pending database: which process, which of its
// writes, and when it began (wall clock, shared by every process).
struct Marker {
  uint64_t pid = 0;
  uint64_t seq = 0;
  int64_t created_ms = 0;

  std::string Encode() const {
    std::string out(24, '\0');
    PutBigEndian(pid, out.data());
    PutBigEndian(seq, out.data() + 8);
    PutBigEndian(static_cast<uint64_t>(created_ms), out.data() + 16);
    return out;
  }
  static std::optional<Marker> Decode(std::string_view v) {
    if (v.size() != 24) return std::nullopt;
    return Marker{GetBigEndian(v.data()), GetBigEndian(v.data() + 8), static_cast<int64_t>(GetBigEndian(v.data() + 16))};
  }
  // Live while its writer may still commit to the base.
  bool Live(int64_t now_ms) const {
    if (now_ms - created_ms > kMarkerMaxAgeMs) return false;
    if (pid == static_cast<uint64_t>(getpid())) return true;
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
  }
};

int ReadU64(MDB_txn* txn, MDB_dbi dbi, std::string_view name, uint64_t* out) {
  MDB_val key = Val(name), val;
  int rc = mdb_get(txn, dbi, &key, &val);
  if (rc != 0) return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
  if (val.mv_size != sizeof *out) return MDB_CORRUPTED;
  std::memcpy(out, val.mv_data, sizeof *out);
  return 0;
}

// Whether `id` has a live pending marker; with `stale` set, collects the dead ones.
int CheckMarkers(MDB_txn* txn, MDB_dbi pending, std::string_view id, bool* live, std::vector<std::string>* stale) {
  *live = false;
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn, pending, &cursor);
  if (rc != 0) return rc;
  MDB_val key = Val(id), val;
  rc = mdb_cursor_get(cursor, &key, &val, MDB_SET_KEY);
  const int64_t now = WallMs();
  while (rc == 0) {
    std::optional<Marker> marker = Marker::Decode(View(val));
    if (marker.has_value() && marker->Live(now)) {
      *live = true;
    } else if (stale != nullptr) {
      stale->emplace_back(View(val));
    }
    rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT_DUP);
  }
  mdb_cursor_close(cursor);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

// The databases as one write transaction changes them, keeping the byte count in step.
class WriteOps {
 public:
  WriteOps(Env& env, MDB_txn* txn) : env_(env), txn_(txn) {}

  uint64_t generation = 0;
  uint64_t bytes = 0;

  int Load() {
    int rc = ReadU64(txn_, env_.meta, kGenerationKey, &generation);
    return rc != 0 ? rc : ReadU64(txn_, env_.meta, kBytesKey, &bytes);
  }
  int Store() {
    int rc = PutU64(kGenerationKey, generation);
    return rc != 0 ? rc : PutU64(kBytesKey, bytes);
  }

  int DeleteEntry(std::string_view id, bool* existed) {
    *existed = false;
    MDB_val key = Val(id), val;
    int rc = mdb_get(txn_, env_.entries, &key, &val);
    if (rc == 0) {
      const uint64_t size = val.mv_size;
      rc = mdb_del(txn_, env_.entries, &key, nullptr);
      if (rc != 0) return rc;
      bytes -= std::min(bytes, size);
      *existed = true;
    } else if (rc != MDB_NOTFOUND) {
      return rc;
    }
    rc = mdb_get(txn_, env_.atime, &key, &val);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) return rc;
    uint64_t tick = 0;
    if (val.mv_size == sizeof tick) std::memcpy(&tick, val.mv_data, sizeof tick);
    rc = mdb_del(txn_, env_.atime, &key, nullptr);
    if (rc != 0) return rc;
    return DeleteLru(LruKey(tick, id));
  }

  int PutEntry(std::string_view id, std::string_view value, uint64_t tick) {
    bool existed = false;
    int rc = DeleteEntry(id, &existed);
    if (rc != 0) return rc;
    MDB_val key = Val(id), val = Val(value);
    rc = mdb_put(txn_, env_.entries, &key, &val, 0);
    if (rc != 0) return rc;
    bytes += value.size();
    MDB_val tick_val{sizeof tick, &tick};
    rc = mdb_put(txn_, env_.atime, &key, &tick_val, 0);
    if (rc != 0) return rc;
    const std::string lru_key = LruKey(tick, id);
    MDB_val lk = Val(lru_key), empty{0, nullptr};
    return mdb_put(txn_, env_.lru, &lk, &empty, 0);
  }

  // Moves `id` to `tick` in the recency order, if it is still cached and was used earlier.
  int Touch(std::string_view id, uint64_t tick) {
    MDB_val key = Val(id), val;
    int rc = mdb_get(txn_, env_.atime, &key, &val);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) return rc;
    uint64_t old = 0;
    if (val.mv_size == sizeof old) std::memcpy(&old, val.mv_data, sizeof old);
    if (tick <= old) return 0;
    rc = DeleteLru(LruKey(old, id));
    if (rc != 0) return rc;
    MDB_val tick_val{sizeof tick, &tick};
    rc = mdb_put(txn_, env_.atime, &key, &tick_val, 0);
    if (rc != 0) return rc;
    const std::string lru_key = LruKey(tick, id);
    MDB_val lk = Val(lru_key), empty{0, nullptr};
    return mdb_put(txn_, env_.lru, &lk, &empty, 0);
  }

  int AddMarker(std::string_view id, std::string_view marker) {
    MDB_val key = Val(id), val = Val(marker);
    return mdb_put(txn_, env_.pending, &key, &val, 0);
  }
  int RemoveMarker(std::string_view id, std::string_view marker) {
    MDB_val key = Val(id), val = Val(marker);
    int rc = mdb_del(txn_, env_.pending, &key, &val);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  // Whether `id` has a live pending marker; dead markers are removed on the way.
  int LiveMarker(std::string_view id, bool* live) {
    std::vector<std::string> stale;
    int rc = CheckMarkers(txn_, env_.pending, id, live, &stale);
    for (const std::string& marker : stale) {
      if (rc == 0) rc = RemoveMarker(id, marker);
    }
    return rc;
  }

  // Evicts least recently used entries until both bounds hold.
  int Evict(size_t max_entries, size_t max_bytes, uint64_t* evicted) {
    for (;;) {
      MDB_stat stat;
      int rc = mdb_stat(txn_, env_.entries, &stat);
      if (rc != 0) return rc;
      if ((max_entries == 0 || stat.ms_entries <= max_entries) && bytes <= max_bytes) return 0;
      MDB_cursor* cursor = nullptr;
      rc = mdb_cursor_open(txn_, env_.lru, &cursor);
      if (rc != 0) return rc;
      MDB_val key, val;
      rc = mdb_cursor_get(cursor, &key, &val, MDB_FIRST);
      std::string lru_key = rc == 0 ? std::string(View(key)) : std::string();
      mdb_cursor_close(cursor);
      if (rc == MDB_NOTFOUND) {
        if (stat.ms_entries == 0) bytes = 0;  // nothing left: the count drifted
        return 0;
      }
      if (rc != 0) return rc;
      if (lru_key.size() < 8) {
        rc = DeleteLru(lru_key);  // not ours; drop it
        if (rc != 0) return rc;
        continue;
      }
      bool existed = false;
      rc = DeleteEntry(std::string_view(lru_key).substr(8), &existed);
      if (rc == 0) rc = DeleteLru(lru_key);  // in case atime disagreed with it
      if (rc != 0) return rc;
      if (existed) ++*evicted;
    }
  }

  int Clear() {
    int rc = mdb_drop(txn_, env_.entries, 0);
    if (rc == 0) rc = mdb_drop(txn_, env_.atime, 0);
    if (rc == 0) rc = mdb_drop(txn_, env_.lru, 0);
    bytes = 0;
    return rc;
  }

 private:
  int PutU64(std::string_view name, uint64_t v) {
    MDB_val key = Val(name), val{sizeof v, &v};
    return mdb_put(txn_, env_.meta, &key, &val, 0);
  }
  int DeleteLru(const std::string& lru_key) {
    MDB_val key = Val(lru_key);
    int rc = mdb_del(txn_, env_.lru, &key, nullptr);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  Env& env_;
  MDB_txn* const txn_;
};

using Touches = std::vector<std::pair<std::string, int64_t>>;

// Thread-safe.
class LmdbCacheImpl final : public LmdbCache {
 public:
  LmdbCacheImpl(std::shared_ptr<Env> env, std::unique_ptr<StorageBackend> base, const LmdbOptions& options,
                size_t max_bytes)
      : env_(std::move(env)),
        base_(std::move(base)),
        clock_(options.clock != nullptr ? *options.clock : SystemClock()),
        max_bytes_(max_bytes),
        max_entries_(options.max_entries),
        ttl_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(options.ttl).count()) {}

  ~LmdbCacheImpl() override {
    Touches touches = TakeTouches(/*force=*/true);
    if (!touches.empty()) FlushTouches(touches);
  }

  // StorageBackend
  std::string Name() const override { return base_->Name(); }
  std::string Location() const override { return base_->Location(); }
  int SchemaVersion() const override { return base_->SchemaVersion(); }

  Status CreateEpisode(const Episode& episode) override {
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite({episode.episode_id}));
    Status s = base_->CreateEpisode(episode);
    EndWrite(ticket, s.ok() ? std::span<const Episode>(&episode, 1) : std::span<const Episode>());
    return s;
  }

  Status PutEpisodes(std::span<const Episode> episodes) override {
    std::vector<std::string> ids;
    ids.reserve(episodes.size());
    for (const Episode& e : episodes) ids.push_back(e.episode_id);
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite(std::move(ids)));
    Status s = base_->PutEpisodes(episodes);
    EndWrite(ticket, s.ok() && episodes.size() <= kMaxWriteThrough ? episodes : std::span<const Episode>());
    return s;
  }

  Result<int> AppendStep(std::string_view episode_id, const Step& step) override {
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite({std::string(episode_id)}));
    Result<int> number = base_->AppendStep(episode_id, step);
    EndWrite(ticket, {});
    return number;
  }

  Status CompleteEpisode(const Episode& episode) override {
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite({episode.episode_id}));
    Status s = base_->CompleteEpisode(episode);
    EndWrite(ticket, {});
    return s;
  }

  Result<Episode> GetEpisode(std::string_view episode_id) override {
    if (!Cacheable(episode_id)) return base_->GetEpisode(episode_id);
    Lookup lookup = Find(episode_id);
    if (lookup.hit.has_value()) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      // Recency at a minute's grain: exact LRU would make every hit a write.
      if (NowMs() - lookup.last_used_ms >= kTouchGranularityMs) Touch(episode_id);
      return *std::move(lookup.hit);
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    Result<Episode> episode = base_->GetEpisode(episode_id);
    if (episode.ok() && lookup.fillable) Fill(episode_id, *episode, lookup.generation);
    return episode;
  }

  // Hits come from the cache; the misses are read from the base in ONE GetEpisodes (one
  // round trip on a remote store, not one per miss) and refilled in one write transaction.
  // Each refill is guarded as in GetEpisode: by the generation and markers its own lookup
  // read before the base read.
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids) override {
    std::vector<std::string_view> ids;  // in request order, each once
    std::unordered_set<std::string_view> seen;
    for (const std::string& id : episode_ids) {
      if (seen.insert(id).second) ids.push_back(id);
    }
    std::vector<std::optional<Episode>> found(ids.size());
    std::vector<Lookup> lookups(ids.size());
    std::vector<std::string> missing;
    std::vector<size_t> missing_at;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (Cacheable(ids[i])) {
        lookups[i] = Find(ids[i]);
        if (lookups[i].hit.has_value()) {
          hits_.fetch_add(1, std::memory_order_relaxed);
          if (NowMs() - lookups[i].last_used_ms >= kTouchGranularityMs) Touch(ids[i]);
          found[i] = std::move(lookups[i].hit);
          continue;
        }
        misses_.fetch_add(1, std::memory_order_relaxed);
      }
      missing.emplace_back(ids[i]);
      missing_at.push_back(i);
    }
    if (!missing.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(std::vector<Episode> read, base_->GetEpisodes(missing));
      std::unordered_map<std::string_view, Episode*> by_id;
      for (Episode& e : read) by_id.emplace(e.episode_id, &e);
      std::vector<FillItem> fills;
      for (size_t k = 0; k < missing.size(); ++k) {
        auto it = by_id.find(missing[k]);
        if (it == by_id.end()) continue;  // no such episode
        const size_t i = missing_at[k];
        if (lookups[i].fillable) fills.push_back({ids[i], it->second, lookups[i].generation});
        found[i] = *it->second;
      }
      FillAll(fills);
    }
    std::vector<Episode> out;
    out.reserve(ids.size());
    for (std::optional<Episode>& e : found) {
      if (e.has_value()) out.push_back(*std::move(e));
    }
    return out;
  }

  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override {
    return base_->ListEpisodes(filter);
  }

  Result<bool> DeleteEpisode(std::string_view episode_id) override {
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite({std::string(episode_id)}));
    Result<bool> deleted = base_->DeleteEpisode(episode_id);
    EndWrite(ticket, {});
    return deleted;
  }

  Result<StoreStats> Stats() override { return base_->Stats(); }

  // The retrieval index and the learning tables are not cached: they change with every
  // completion and are read in bulk, so these forward to the base. Only ResetLearning and
  // CommitExtraction change cached episodes (their pattern_ids); the rest change none (a
  // copy holds the episode's own fields only).
  Result<int64_t> Generation() override { return base_->Generation(); }
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override {
    return base_->SearchText(request);
  }
  Result<TermStats> GetTermStats(std::span<const std::string> words) override { return base_->GetTermStats(words); }
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override { return base_->GetEmbeddingSpace(); }
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override { return base_->SetEmbeddingSpace(space); }
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override {
    return base_->PutVectors(space, vectors);
  }
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override {
    return base_->ListVectors(space, after_seq);
  }
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override {
    return base_->EpisodesWithoutVector(space, after, limit);
  }
  Status MergePatterns(std::span<const std::string> keys,
                       const std::function<Status(std::vector<Pattern>&)>& merge) override {
    return base_->MergePatterns(keys, merge);
  }
  Result<Pattern> GetPattern(std::string_view pattern_id) override { return base_->GetPattern(pattern_id); }
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter& filter) override {
    return base_->ListPatterns(filter);
  }
  Status SetPatternDecay(std::span<const std::pair<std::string, double>> weights) override {
    return base_->SetPatternDecay(weights);
  }
  // Every episode's pattern_ids may have been emptied: every copy goes. Clear bumps the
  // generation, so a refill whose base read predates the reset is refused.
  Status ResetLearning() override {
    ENGRAM_RETURN_IF_ERROR(base_->ResetLearning());
    return Clear();
  }
  Status PutHeuristics(std::span<const Heuristic> heuristics) override { return base_->PutHeuristics(heuristics); }
  Result<std::vector<Heuristic>> ListHeuristics(size_t limit) override { return base_->ListHeuristics(limit); }
  Status RecordAttributions(std::span<const Attribution> attributions) override {
    return base_->RecordAttributions(attributions);
  }
  Result<std::vector<std::string>> PendingExtraction(size_t limit) override { return base_->PendingExtraction(limit); }
  Status MarkExtracted(std::span<const std::string> episode_ids) override { return base_->MarkExtracted(episode_ids); }

  // The batch's episodes (those it credits or marks) are the ones whose pattern_ids it
  // appends to, so they are written as any episode write is (BeginWrite/EndWrite). An episode
  // the merge names beyond them is dropped after the commit.
  Result<size_t> CommitExtraction(const ExtractionBatch& batch) override {
    std::vector<std::string> ids;
    std::unordered_set<std::string> listed;
    auto add = [&](const std::string& id) {
      if (listed.insert(id).second) ids.push_back(id);
    };
    for (const auto& [id, success] : batch.outcomes) add(id);
    for (const std::string& id : batch.extracted) add(id);
    std::vector<std::string> named;  // episodes the last run of the merge appended to
    ExtractionBatch forwarded = batch;
    if (batch.merge) {
      forwarded.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) -> Status {
        Status s = batch.merge(patterns, out);
        named.clear();
        for (const auto& [episode_id, pattern_id] : out.episode_patterns) named.push_back(episode_id);
        return s;
      };
    }
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket, BeginWrite(std::move(ids)));
    Result<size_t> credited = base_->CommitExtraction(forwarded);
    EndWrite(ticket, {});
    std::vector<std::string> others;
    for (std::string& id : named) {
      if (listed.insert(id).second) others.push_back(std::move(id));
    }
    if (!others.empty()) ENGRAM_RETURN_IF_ERROR(Invalidate(others));
    return credited;
  }

  Status CheckHealth() override {
    ENGRAM_RETURN_IF_ERROR(base_->CheckHealth());
    return env_->Check();
  }

  // LmdbCache
  LmdbCacheMetrics Metrics() const override {
    LmdbCacheMetrics m;
    m.hits = hits_.load(std::memory_order_relaxed);
    m.misses = misses_.load(std::memory_order_relaxed);
    m.fills = fills_.load(std::memory_order_relaxed);
    m.fills_skipped = fills_skipped_.load(std::memory_order_relaxed);
    m.invalidations = invalidations_.load(std::memory_order_relaxed);
    m.evictions = evictions_.load(std::memory_order_relaxed);
    m.expired = expired_.load(std::memory_order_relaxed);
    m.undecodable = undecodable_.load(std::memory_order_relaxed);
    m.errors = errors_.load(std::memory_order_relaxed);
    return m;
  }

  std::string CachePath() const override { return env_->path(); }
  void SetLimits(size_t max_entries, std::chrono::seconds ttl) override {
    max_entries_.store(max_entries, std::memory_order_relaxed);
    ttl_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count(), std::memory_order_relaxed);
  }

  Status Invalidate(std::span<const std::string> episode_ids) override {
    ENGRAM_ASSIGN_OR_RETURN(Ticket ticket,
                            BeginWrite(std::vector<std::string>(episode_ids.begin(), episode_ids.end())));
    EndWrite(ticket, {});
    return OkStatus();
  }

  Status Clear() override {
    return env_->Write([&](MDB_txn* txn) -> int {
      WriteOps ops(*env_, txn);
      int rc = ops.Load();
      if (rc == 0) rc = ops.Clear();
      ++ops.generation;
      return rc != 0 ? rc : ops.Store();
    });
  }

 private:
  // A write between BeginWrite and EndWrite.
  struct Ticket {
    std::vector<std::string> ids;  // the cacheable ones, without repeats
    std::string marker;            // Marker::Encode()
    uint64_t generation = 0;       // after BeginWrite's bump
  };

  struct Lookup {
    std::optional<Episode> hit;
    int64_t last_used_ms = 0;  // of a hit, as recorded in the recency order
    bool fillable = false;    // no write in progress on the id when the generation was read
    uint64_t generation = 0;  // read before the base is
  };

  static bool Cacheable(std::string_view id) { return !id.empty() && id.size() <= kMaxIdBytes; }

  int64_t NowMs() { return clock_.Now().time_since_epoch().count(); }

  Result<Ticket> BeginWrite(std::vector<std::string> ids) {
    Ticket ticket;
    std::unordered_set<std::string_view> seen;
    for (const std::string& id : ids) {
      // An id that is too long is never cached by anyone, so there is nothing to invalidate.
      if (Cacheable(id) && seen.insert(id).second) ticket.ids.push_back(id);
    }
    if (ticket.ids.empty()) return ticket;
    ticket.marker = Marker{static_cast<uint64_t>(getpid()), seq_.fetch_add(1) + 1, WallMs()}.Encode();
    auto begin = [&](MDB_txn* txn) -> int {
      WriteOps ops(*env_, txn);
      int rc = ops.Load();
      for (const std::string& id : ticket.ids) {
        bool existed = false;
        if (rc == 0) rc = ops.AddMarker(id, ticket.marker);
        if (rc == 0) rc = ops.DeleteEntry(id, &existed);
      }
      ++ops.generation;
      ticket.generation = ops.generation;
      return rc != 0 ? rc : ops.Store();
    };
    Status s = env_->Write(begin);
    if (s.code() == StatusCode::kResourceExhausted && Clear().ok()) s = env_->Write(begin);
    if (!s.ok()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      // Writing without invalidating would let other processes serve the old copy.
      return UnavailableError(std::string(s.message()) +
                              "; the write was not made. Delete the cache folder while engram is stopped, or "
                              "set cache.enabled = false in every engram process");
    }
    invalidations_.fetch_add(ticket.ids.size(), std::memory_order_relaxed);
    return ticket;
  }

  // Finishes a write whether or not the base write succeeded (a failed one may still have
  // committed, e.g. a timeout). `written` are whole episodes now in the base, stored as
  // copies when no other write can have overtaken this one.
  void EndWrite(const Ticket& ticket, std::span<const Episode> written) {
    if (ticket.ids.empty()) return;
    std::map<std::string_view, std::string> values;  // id -> encoded copy
    const int64_t now = NowMs();
    for (const Episode& e : written) {
      if (!Cacheable(e.episode_id)) continue;
      std::string value = EncodeCachedEpisode(e, now);
      if (value.size() <= max_bytes_ / 2) {
        values[e.episode_id] = std::move(value);  // a later duplicate replaced an earlier one
      } else {
        values.erase(e.episode_id);
      }
    }
    Touches touches = TakeTouches(/*force=*/true);
    uint64_t filled = 0, evicted = 0;
    Status s = env_->Write([&](MDB_txn* txn) -> int {
      filled = evicted = 0;
      WriteOps ops(*env_, txn);
      int rc = ops.Load();
      // Any other write since BeginWrite may have committed to the base after this one.
      const bool can_fill = rc == 0 && ops.generation == ticket.generation;
      for (const std::string& id : ticket.ids) {
        bool existed = false;
        if (rc == 0) rc = ops.RemoveMarker(id, ticket.marker);
        if (rc == 0) rc = ops.DeleteEntry(id, &existed);
      }
      for (const auto& [id, value] : values) {
        if (rc != 0 || !can_fill) break;
        bool live = false;
        rc = ops.LiveMarker(id, &live);
        if (rc == 0 && !live) {
          rc = ops.PutEntry(id, value, static_cast<uint64_t>(now));
          ++filled;
        }
      }
      ++ops.generation;
      if (rc == 0) rc = ApplyTouches(ops, touches);
      if (rc == 0) rc = ops.Evict(max_entries_.load(std::memory_order_relaxed), max_bytes_, &evicted);
      return rc != 0 ? rc : ops.Store();
    });
    if (!s.ok()) {
      // The copies were dropped by BeginWrite and this process's markers keep refills away
      // until they age out, so nothing stale can be served; only caching suffers.
      errors_.fetch_add(1, std::memory_order_relaxed);
      LogWarn("LMDB cache: finishing a write failed", {{"error", s.ToString()}});
      return;
    }
    fills_.fetch_add(filled, std::memory_order_relaxed);
    evictions_.fetch_add(evicted, std::memory_order_relaxed);
  }

  Lookup Find(std::string_view id) {
    Lookup out;
    bool expired = false, undecodable = false;
    const int64_t now = NowMs();
    Status s = env_->Read([&](MDB_txn* txn) -> int {
      MDB_val key = Val(id), val;
      int rc = mdb_get(txn, env_->entries, &key, &val);
      if (rc == 0) {
        Result<CachedEpisode> cached = DecodeCachedEpisode(View(val));
        if (!cached.ok() || cached->episode.episode_id != id) {
          undecodable = true;
        } else if (const int64_t ttl_ms = ttl_ms_.load(std::memory_order_relaxed);
                   ttl_ms > 0 && (now - cached->filled_at_ms >= ttl_ms || cached->filled_at_ms - now >= ttl_ms)) {
          expired = true;
        } else {
          out.hit = std::move(cached->episode);
          MDB_val tick;
          if (mdb_get(txn, env_->atime, &key, &tick) == 0 && tick.mv_size == sizeof(uint64_t)) {
            uint64_t last_used = 0;
            std::memcpy(&last_used, tick.mv_data, sizeof last_used);
            out.last_used_ms = static_cast<int64_t>(last_used);
          }
          return 0;
        }
      } else if (rc != MDB_NOTFOUND) {
        return rc;
      }
      rc = ReadU64(txn, env_->meta, kGenerationKey, &out.generation);
      if (rc != 0) return rc;
      bool live = false;
      rc = CheckMarkers(txn, env_->pending, id, &live, nullptr);
      out.fillable = rc == 0 && !live;
      return rc;
    });
    if (!s.ok()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      return Lookup{};  // a miss that is not refilled
    }
    if (expired) expired_.fetch_add(1, std::memory_order_relaxed);
    if (undecodable) undecodable_.fetch_add(1, std::memory_order_relaxed);
    return out;
  }

  // A copy to store after a miss: `generation` is what the miss's lookup read before the
  // base read.
  struct FillItem {
    std::string_view id;
    const Episode* episode;
    uint64_t generation;
  };

  void Fill(std::string_view id, const Episode& episode, uint64_t generation) {
    FillAll(std::vector<FillItem>{{id, &episode, generation}});
  }

  // Stores the copies of `items` in one write transaction; each is skipped when a write
  // overlapped its base read (the generation moved since its lookup, or a live marker).
  void FillAll(const std::vector<FillItem>& items) {
    if (items.empty()) return;
    const int64_t now = NowMs();
    std::vector<std::string> values;
    values.reserve(items.size());
    for (const FillItem& item : items) {
      values.push_back(EncodeCachedEpisode(*item.episode, now));
      if (values.back().size() > max_bytes_ / 2) values.back().clear();  // would push out too much else
    }
    Touches touches = TakeTouches(/*force=*/true);
    uint64_t filled = 0, skipped = 0, evicted = 0;
    Status s = env_->Write([&](MDB_txn* txn) -> int {
      filled = skipped = evicted = 0;
      WriteOps ops(*env_, txn);
      int rc = ops.Load();
      if (rc != 0) return rc;
      for (size_t i = 0; i < items.size() && rc == 0; ++i) {
        if (values[i].empty()) continue;
        bool live = false;
        if (ops.generation == items[i].generation) rc = ops.LiveMarker(items[i].id, &live);
        if (rc != 0) break;
        if (ops.generation != items[i].generation || live) {
          ++skipped;  // a write overlapped the base read: its value may be older
          continue;
        }
        rc = ops.PutEntry(items[i].id, values[i], static_cast<uint64_t>(now));
        if (rc == 0) ++filled;
      }
      if (rc != 0) return rc;
      if (filled == 0 && touches.empty()) return kRollback;
      rc = ApplyTouches(ops, touches);
      if (rc == 0 && filled > 0) rc = ops.Evict(max_entries_.load(std::memory_order_relaxed), max_bytes_, &evicted);
      if (rc == 0 && filled > 0) rc = ops.Store();
      return rc;
    });
    if (!s.ok()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      if (s.code() == StatusCode::kResourceExhausted) Clear().IgnoreError();  // start over rather than stay full
      return;
    }
    fills_.fetch_add(filled, std::memory_order_relaxed);
    fills_skipped_.fetch_add(skipped, std::memory_order_relaxed);
    evictions_.fetch_add(evicted, std::memory_order_relaxed);
  }

  // Records a hit for the recency order. Written in batches: a write transaction per hit
  // would make every read a write.
  void Touch(std::string_view id) {
    const int64_t now = NowMs();
    Touches batch;
    {
      MutexLock lock(mu_);
      int64_t& tick = touches_[std::string(id)];
      tick = std::max(tick, now);
      if (touches_.size() >= kTouchBatch || now - last_flush_ms_ >= kTouchFlushMs) {
        batch.assign(touches_.begin(), touches_.end());
        touches_.clear();
        last_flush_ms_ = now;
      }
    }
    if (!batch.empty()) FlushTouches(batch);
  }

  Touches TakeTouches(bool force) {
    MutexLock lock(mu_);
    Touches out;
    if (force || touches_.size() >= kTouchBatch) {
      out.assign(touches_.begin(), touches_.end());
      touches_.clear();
    }
    return out;
  }

  static int ApplyTouches(WriteOps& ops, const Touches& touches) {
    for (const auto& [id, tick] : touches) {
      int rc = ops.Touch(id, static_cast<uint64_t>(tick));
      if (rc != 0) return rc;
    }
    return 0;
  }

  void FlushTouches(const Touches& touches) {
    Status s = env_->Write([&](MDB_txn* txn) -> int {
      WriteOps ops(*env_, txn);
      return ApplyTouches(ops, touches);
    });
    if (!s.ok()) errors_.fetch_add(1, std::memory_order_relaxed);
  }

  // Constant after construction.
  const std::shared_ptr<Env> env_;
  const std::unique_ptr<StorageBackend> base_;
  Clock& clock_;
  const size_t max_bytes_;
  // Changed by SetLimits (config reload); read once per operation.
  std::atomic<size_t> max_entries_;
  std::atomic<int64_t> ttl_ms_;

  // Lock-free.
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> hits_{0}, misses_{0}, fills_{0}, fills_skipped_{0}, invalidations_{0}, evictions_{0},
      expired_{0}, undecodable_{0}, errors_{0};

  // Hits not yet written to the recency order.
  Mutex mu_;
  std::unordered_map<std::string, int64_t> touches_ ENGRAM_GUARDED_BY(mu_);
  int64_t last_flush_ms_ ENGRAM_GUARDED_BY(mu_) = 0;
};

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// What store a cache belongs to: the backend's name and its location, with file paths
// made absolute so two spellings of one file agree. Hashed: a location may hold secrets.
std::string StoreId(const StorageBackend& base) {
  std::string location = base.Location();
  if (location.find("://") == std::string::npos) {
    std::error_code ec;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(location, ec);
    if (!ec) location = canonical.string();
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a64(location)));
  return base.Name() + ":" + hex;
}

}  // namespace
}  // namespace lmdb

Result<std::unique_ptr<StorageBackend>> OpenLmdbCache(const LmdbOptions& options,
                                                      std::unique_ptr<StorageBackend> base) {
  if (base == nullptr) return InvalidArgumentError("OpenLmdbCache: no base store");
  if (options.path.empty()) return InvalidArgumentError("the cache path is empty");
  if (options.map_size < (size_t{1} << 20)) return InvalidArgumentError("the cache map_size must be at least 1 MiB");
  const size_t max_bytes = options.max_bytes != 0 ? options.max_bytes : options.map_size / 4;
  if (max_bytes > options.map_size / 2) {
    return InvalidArgumentError("the cache max_bytes (" + std::to_string(max_bytes) +
                                ") must be at most half its map_size (" + std::to_string(options.map_size) + ")");
  }
  lmdb::EnvOptions env_options;
  env_options.path = options.path;
  env_options.map_size = options.map_size;
  env_options.store_id = lmdb::StoreId(*base);
  env_options.rebuild_wait = options.rebuild_wait;
  ENGRAM_ASSIGN_OR_RETURN(std::shared_ptr<lmdb::Env> env, lmdb::Env::Open(env_options));
  return std::unique_ptr<StorageBackend>(
      std::make_unique<lmdb::LmdbCacheImpl>(std::move(env), std::move(base), options, max_bytes));
}

}  // namespace engram
