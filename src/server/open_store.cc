#include "server/open_store.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "common/fnv.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "engram/lmdb_cache.h"
#include "engram/postgres_backend.h"
#include "engram/sqlite_backend.h"
#include "engram/turso_backend.h"

namespace engram::server {
namespace {

// `store` behind the LMDB cache in the folder `cache_path` when cache.enabled. Every process
// that writes the store must agree: one writing around the cache is not seen by the others
// until cache.ttl_seconds pass.
Result<std::unique_ptr<StorageBackend>> WithCache(const Config& config, std::unique_ptr<StorageBackend> store,
                                                  std::string cache_path) {
  if (!config.cache_enabled) return store;
  return OpenLmdbCache(CacheOptionsFromConfig(config, std::move(cache_path)), std::move(store));
}

// An LMDB cache in front of a store on a server, kept true to it across processes and hosts:
// `cached_` is the LmdbCache over the backend `base_`. Every call goes through the cache;
// reads of episodes are served from copies only when CopiesAreCurrent() says no other
// process or host changed the store behind the cache's back, else they go to the base.
// Subclasses say how they know. Thread-safe when CopiesAreCurrent is.
class RemoteStoreCache : public LmdbCache {
 public:
  RemoteStoreCache(std::unique_ptr<StorageBackend> cached, StorageBackend& base)
      : cached_(std::move(cached)), cache_(*AsLmdbCache(*cached_)), base_(base) {}

  // StorageBackend
  std::string Name() const override { return cached_->Name(); }
  std::string Location() const override { return cached_->Location(); }
  int SchemaVersion() const override { return cached_->SchemaVersion(); }
  Status CreateEpisode(const Episode& episode) override { return cached_->CreateEpisode(episode); }
  Status PutEpisodes(std::span<const Episode> episodes) override { return cached_->PutEpisodes(episodes); }
  Result<int> AppendStep(std::string_view episode_id, const Step& step) override {
    return cached_->AppendStep(episode_id, step);
  }
  Status CompleteEpisode(const Episode& episode) override { return cached_->CompleteEpisode(episode); }
  Result<Episode> GetEpisode(std::string_view episode_id) override {
    if (CopiesAreCurrent()) return cached_->GetEpisode(episode_id);
    return ReadThrough(episode_id);
  }
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids) override {
    if (CopiesAreCurrent()) return cached_->GetEpisodes(episode_ids);
    read_through_.fetch_add(episode_ids.size(), std::memory_order_relaxed);
    return base_.GetEpisodes(episode_ids);  // one round trip for all
  }
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override {
    return cached_->ListEpisodes(filter);
  }
  Result<bool> DeleteEpisode(std::string_view episode_id) override { return cached_->DeleteEpisode(episode_id); }
  Result<StoreStats> Stats() override { return cached_->Stats(); }
  Result<int64_t> Generation() override { return cached_->Generation(); }
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override {
    return cached_->SearchText(request);
  }
  Result<TermStats> GetTermStats(std::span<const std::string> words) override { return cached_->GetTermStats(words); }
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override { return cached_->GetEmbeddingSpace(); }
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override { return cached_->SetEmbeddingSpace(space); }
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override {
    return cached_->PutVectors(space, vectors);
  }
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override {
    return cached_->ListVectors(space, after_seq);
  }
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override {
    return cached_->EpisodesWithoutVector(space, after, limit);
  }
  Status MergePatterns(std::span<const std::string> keys,
                       const std::function<Status(std::vector<Pattern>&)>& merge) override {
    return cached_->MergePatterns(keys, merge);
  }
  Result<Pattern> GetPattern(std::string_view pattern_id) override { return cached_->GetPattern(pattern_id); }
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter& filter) override {
    return cached_->ListPatterns(filter);
  }
  Status SetPatternDecay(std::span<const std::pair<std::string, double>> weights) override {
    return cached_->SetPatternDecay(weights);
  }
  Status ResetLearning() override { return cached_->ResetLearning(); }
  Status PutHeuristics(std::span<const Heuristic> heuristics) override { return cached_->PutHeuristics(heuristics); }
  Result<std::vector<Heuristic>> ListHeuristics(size_t limit) override { return cached_->ListHeuristics(limit); }
  Status RecordAttributions(std::span<const Attribution> attributions) override {
    return cached_->RecordAttributions(attributions);
  }
  Result<std::vector<std::string>> PendingExtraction(size_t limit) override {
    return cached_->PendingExtraction(limit);
  }
  Status MarkExtracted(std::span<const std::string> episode_ids) override {
    return cached_->MarkExtracted(episode_ids);
  }
  Result<size_t> CommitExtraction(const ExtractionBatch& batch) override { return cached_->CommitExtraction(batch); }
  Status CheckHealth() override { return cached_->CheckHealth(); }

  // LmdbCache
  LmdbCacheMetrics Metrics() const override {
    LmdbCacheMetrics m = cache_.Metrics();
    m.misses += read_through_.load(std::memory_order_relaxed);  // they went to the base too
    return m;
  }
  std::string CachePath() const override { return cache_.CachePath(); }
  void SetLimits(size_t max_entries, std::chrono::seconds ttl) override { cache_.SetLimits(max_entries, ttl); }
  Status Invalidate(std::span<const std::string> episode_ids) override { return cache_.Invalidate(episode_ids); }
  Status Clear() override { return cache_.Clear(); }

 protected:
  // Whether the cached copies may be served now.
  virtual bool CopiesAreCurrent() = 0;
  // The episode from the base, counted as a miss.
  Result<Episode> ReadThrough(std::string_view episode_id) {
    read_through_.fetch_add(1, std::memory_order_relaxed);
    return base_.GetEpisode(episode_id);
  }

  // Constant after construction; cache_ is *cached_ and base_ sits under it.
  const std::unique_ptr<StorageBackend> cached_;
  LmdbCache& cache_;
  StorageBackend& base_;

 private:
  std::atomic<uint64_t> read_through_{0};
};

// The LMDB cache in front of PostgreSQL (see open_store.h): `base_` is the PostgresBackend,
// `listener_` drops the copies other hosts' writes changed, and a copy is served only when
// the listener has applied every write up to the store's current generation; otherwise the
// read goes to the base. Thread-safe.
class PostgresCache final : public RemoteStoreCache {
 public:
  // `writer_tag`: the PostgresOptions::writer_tag `base` announces its writes with.
  PostgresCache(std::unique_ptr<StorageBackend> cached, StorageBackend& base,
                std::unique_ptr<PostgresChangeListener> listener, std::string writer_tag)
      : RemoteStoreCache(std::move(cached), base), writer_tag_(std::move(writer_tag)), listener_(std::move(listener)) {
    listener_->Start({.on_connected = [this](int64_t generation) { OnConnected(generation); },
                      .on_change = [this](const PostgresChange& change) { OnChange(change); },
                      .on_disconnected = [this](const Status&) { connected_.store(false); }});
  }

  // The listener's callbacks use the cache: it stops first.
  ~PostgresCache() override { listener_->Stop(); }

 private:
  // The listener is connected and has applied (invalidated) every write committed before this
  // call began (read after the generation).
  bool CopiesAreCurrent() override {
    if (!connected_.load()) return false;
    Result<int64_t> generation = base_.Generation();
    return generation.ok() && applied_.load() >= *generation;
  }

  // LISTEN is in effect and the store was at `generation` after that: what was missed
  // before is dropped wholesale.
  void OnConnected(int64_t generation) {
    Status cleared = cache_.Clear();
    if (!cleared.ok()) {
      // connected_ stays false: every read goes to the store until the next reconnection.
      LogWarn("LMDB cache: cannot clear after (re)connecting to PostgreSQL's notifications; reading through",
              {{"error", cleared.ToString()}});
      return;
    }
    Advance(generation);
    connected_.store(true);
  }

  void OnChange(const PostgresChange& change) {
    // A write of this process went through cache_, which dropped (or refreshed) its copies
    // before the write returned: dropping them again would only turn the next reads into
    // misses.
    if (!writer_tag_.empty() && change.writer == writer_tag_) {
      Advance(change.generation);
      return;
    }
    Status s = change.all_episodes ? cache_.Clear() : cache_.Invalidate(change.episode_ids);
    if (!s.ok() && !change.all_episodes) s = cache_.Clear();
    if (!s.ok()) {
      // A copy may be stale and stays so: stop serving copies until a reconnection clears them.
      connected_.store(false);
      LogWarn("LMDB cache: cannot drop copies another host changed; reading through", {{"error", s.ToString()}});
      return;
    }
    Advance(change.generation);
  }

  void Advance(int64_t generation) {
    int64_t seen = applied_.load();
    while (seen < generation && !applied_.compare_exchange_weak(seen, generation)) {
    }
  }

  const std::string writer_tag_;
  // Stopped (in the destructor) before the members above go.
  const std::unique_ptr<PostgresChangeListener> listener_;

  // Written by the listener's thread, read by every caller.
  std::atomic<bool> connected_{false};  // false until the first on_connected, and while disconnected
  std::atomic<int64_t> applied_{-1};    // every write up to this generation is invalidated
};

// The LMDB cache in front of a Turso store (see open_store.h): `base_` is the TursoBackend.
// Turso sends no change notifications, so before serving a copy a read asks the store for
// its generation (one round trip): unchanged since the cache was last known good, or moved
// only by this process's own writes (which went through the cache and dropped what they
// changed), the copies are served; moved by anyone else, whose changes are unknown, every
// copy is dropped first. Thread-safe.
class TursoCache final : public RemoteStoreCache {
 public:
  TursoCache(std::unique_ptr<StorageBackend> cached, StorageBackend& base)
      : RemoteStoreCache(std::move(cached), base) {}

  Status CreateEpisode(const Episode& episode) override {
    Status s = cached_->CreateEpisode(episode);
    // Steps numbered 0 were numbered by the store: the copy would not know how.
    const bool numbered = std::none_of(episode.steps.begin(), episode.steps.end(),
                                       [](const Step& step) { return step.step_number == 0; });
    if (s.ok() && !episode.completed() && numbered) KeepWriting(episode);
    return s;
  }
  Status PutEpisodes(std::span<const Episode> episodes) override {
    for (const Episode& e : episodes) ForgetWriting(e.episode_id);
    return cached_->PutEpisodes(episodes);
  }
  Result<int> AppendStep(std::string_view episode_id, const Step& step) override {
    Result<int> n = cached_->AppendStep(episode_id, step);
    MutexLock lock(mu_);
    auto it = writing_.find(std::string(episode_id));
    if (it == writing_.end()) return n;
    if (!n.ok()) {
      writing_.erase(it);  // the store may know more than the copy: read it next time
      return n;
    }
    Step stored = step;
    stored.step_number = *n;
    it->second.steps.push_back(std::move(stored));
    return n;
  }
  Status CompleteEpisode(const Episode& episode) override {
    // Done or not, the next read of it goes to the store: after a success the episode is
    // complete (and cacheable); a failure (kAborted: another process added a step) means the
    // copy is behind.
    ForgetWriting(episode.episode_id);
    return cached_->CompleteEpisode(episode);
  }
  Result<Episode> GetEpisode(std::string_view episode_id) override {
    {
      // complete_episode reads the episode it is about to complete: an episode this process
      // created and wrote every step of is answered from its own copy, without a round trip.
      MutexLock lock(mu_);
      if (auto it = writing_.find(std::string(episode_id)); it != writing_.end()) return it->second;
    }
    return RemoteStoreCache::GetEpisode(episode_id);
  }
  Result<bool> DeleteEpisode(std::string_view episode_id) override {
    ForgetWriting(episode_id);
    return cached_->DeleteEpisode(episode_id);
  }

 private:
  // Episodes in progress that this process created, as they are in the store as long as no
  // other process writes them (it may add steps: CompleteEpisode then answers kAborted and
  // the copy is dropped, so the retry reads the store). Only an optimisation: emptied when it
  // grows large (episodes abandoned unfinished).
  static constexpr size_t kMaxWriting = 1'000;
  void KeepWriting(const Episode& episode) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    if (writing_.size() >= kMaxWriting) writing_.clear();
    writing_.insert_or_assign(episode.episode_id, episode);
  }
  void ForgetWriting(std::string_view episode_id) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    writing_.erase(std::string(episode_id));
  }

  // Drops every copy first when the store changed in ways this process did not make. A fill
  // whose store read predates such a Clear is refused by the cache (its generation moved), so
  // no older state survives it.
  bool CopiesAreCurrent() override ENGRAM_LOCKS_EXCLUDED(mu_) {
    Result<int64_t> generation = base_.Generation();
    if (!generation.ok()) return false;
    MutexLock lock(mu_);
    if (*generation == known_) return true;
    if (known_ >= 0 && *generation > known_ && TursoWritesAreOwn(base_, known_, *generation)) {
      known_ = *generation;
      return true;
    }
    // Another process or host wrote (or this is the first read since opening).
    Status cleared = cache_.Clear();
    if (!cleared.ok()) {
      LogWarn("LMDB cache: cannot clear after another writer changed the Turso store; reading through",
              {{"error", cleared.ToString()}});
      return false;
    }
    known_ = *generation;
    return true;
  }

  Mutex mu_;
  // Every write up to this store generation has no stale copy in the cache; -1: none known.
  int64_t known_ ENGRAM_GUARDED_BY(mu_) = -1;
  std::unordered_map<std::string, Episode> writing_ ENGRAM_GUARDED_BY(mu_);
};

// The folder `name` under $XDG_CACHE_HOME/engram (~/.cache/engram), else beside storage.db:
// where this host caches a store that lives on a server.
std::string HostCachePath(const Config& config, const std::string& name) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/engram/" + name;
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/engram/" + name;
  return (std::filesystem::path(config.db_path).parent_path() / name).string();
}

// Where this host caches the Turso store at `base_url`.
std::string TursoCachePath(const Config& config, const std::string& base_url) {
  return HostCachePath(config, "turso-" + Fnv1aHex(base_url) + ".cache");
}

// Where this host caches the PostgreSQL store `conninfo`/`schema`.
std::string PostgresCachePath(const Config& config, const std::string& conninfo, const std::string& schema) {
  return HostCachePath(config, "postgres-" + Fnv1aHex(MaskPostgresConninfo(conninfo) + '\n' + schema) + ".cache");
}

}  // namespace

LmdbOptions CacheOptionsFromConfig(const Config& config, std::string path) {
  LmdbOptions options;
  options.path = std::move(path);
  options.max_entries = static_cast<size_t>(config.cache_max_entries);
  options.ttl = config.cache_ttl;
  return options;
}

Result<std::string> ReadSecretFile(std::string_view setting, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string message = std::string(setting) + " " + path + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFoundError(message);
    return UnavailableError(message);
  }
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return InvalidArgumentError(std::string(setting) + " " + path + " is empty");
  return line;
}

Result<std::unique_ptr<StorageBackend>> OpenStore(const Config& config) {
  if (IsPostgresUrl(config.store_url)) {
    PostgresOptions options;
    options.conninfo = config.store_url;
    options.pool_size = static_cast<size_t>(config.pool_size);
    if (!config.password_file.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(options.password, ReadSecretFile("storage.password_file", config.password_file));
    }
    // This process's writes are announced with its own tag: its cache handled them already.
    if (config.cache_enabled) options.writer_tag = NewUuidV7(SystemClock());
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenPostgresBackend(options));
    if (!config.cache_enabled) return store;
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<PostgresChangeListener> listener, OpenPostgresChangeListener(options));
    StorageBackend& base = *store;
    ENGRAM_ASSIGN_OR_RETURN(
        std::unique_ptr<StorageBackend> cached,
        WithCache(config, std::move(store), PostgresCachePath(config, options.conninfo, listener->schema())));
    return std::unique_ptr<StorageBackend>(
        std::make_unique<PostgresCache>(std::move(cached), base, std::move(listener), options.writer_tag));
  }
  if (IsTursoUrl(config.store_url)) {
    TursoOptions options;
    options.url = config.store_url;
    options.pool_size = static_cast<size_t>(config.pool_size);
    options.auth_token = config.turso_token;
    if (!config.turso_token_file.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(options.auth_token,
                              ReadSecretFile("storage.turso_token_file", config.turso_token_file));
    }
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenTursoBackend(options));
    if (!config.cache_enabled) return store;
    StorageBackend& base = *store;
    const std::string cache_path = TursoCachePath(config, store->Location());
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> cached, WithCache(config, std::move(store), cache_path));
    return std::unique_ptr<StorageBackend>(std::make_unique<TursoCache>(std::move(cached), base));
  }
  SqliteOptions options;
  options.path = config.db_path;
  options.durability = config.durability;
  options.busy_timeout = config.busy_timeout;
  options.full_text_in_memory = config.full_text_in_memory;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenSqliteBackend(options));
  return WithCache(config, std::move(store), config.db_path + ".cache");
}

}  // namespace engram::server
