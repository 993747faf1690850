// The LMDB cache layer (DESIGN §6): a StorageBackend decorator that keeps recently read
// episodes in an LMDB environment beside the store, shared by every engram process on the
// machine. It is never the source of truth: deleting its folder while engram is stopped
// loses nothing, and a corrupt one is discarded and rebuilt when opened.
//
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> base, OpenSqliteBackend(sqlite));
//   LmdbOptions cache;
//   cache.path = sqlite.path + ".cache";
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenLmdbCache(cache, std::move(base)));
//   if (const LmdbCache* c = AsLmdbCache(*store)) Report(c->Metrics());
//
// Behaviour:
//   - GetEpisode reads through: a fresh cached copy is returned without touching the base;
//     otherwise the base is read and the copy stored (unless a write raced the read, below).
//   - Every write (CreateEpisode, PutEpisodes, AppendStep, CompleteEpisode, DeleteEpisode) goes
//     to the base synchronously and invalidates the episode's cached copy in every process;
//     whole-episode writes (CreateEpisode, small PutEpisodes) also store the new copy when no
//     other write could have overtaken it (write-through).
//   - ListEpisodes, Stats and SchemaVersion pass through; CheckHealth checks both.
//   - Once a write has returned, no process sharing the cache folder serves the old copy, even
//     if the writer is killed between its base commit and its cache update: a write first
//     drops the copy and leaves a marker that refuses refills until it is finished, and a
//     process-wide generation counter rejects any refill whose base read may predate a write.
//   - Values are msgpack with a codec version and a checksum; one of another version, or one
//     that does not decode, is a miss (and is replaced), never an error.
//   - The cache must sit in front of every writer of the store: a process that writes the
//     store without it (or with cache.enabled = false) is not seen until `ttl` expires.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

struct LmdbOptions {
  // The cache folder (LMDB's data.mdb and lock.mdb, plus engram's lock and boot files),
  // created when missing. Put it beside the store: "/home/me/.local/share/engram/memory.db.cache".
  std::string path;
  // Address space reserved for the map; the file only grows as entries are written. Applies
  // when the cache file is (re)created; an existing file keeps the size it was created with.
  size_t map_size = size_t{1} << 30;  // 1 GiB
  // Size bounds; past either, the least recently used entries are evicted. 0: no bound on
  // entries; max_bytes 0 means map_size / 4 (LMDB needs headroom for copy-on-write).
  size_t max_entries = 10'000;
  size_t max_bytes = 0;
  // Entries older than this are misses and are refilled from the base. Bounds how long a
  // write made without the cache can go unseen. 0: no expiry.
  std::chrono::seconds ttl{3600};
  // When the file must be rebuilt (corrupt, or written by another cache format) but other
  // processes still have it open, how long to wait for them before failing with kUnavailable.
  std::chrono::milliseconds rebuild_wait{10'000};
  // Time source for TTL and recency; nullptr: SystemClock(). Not owned; outlives the cache.
  Clock* clock = nullptr;
};

// Counters of one cache object (this process), since it was opened.
struct LmdbCacheMetrics {
  uint64_t hits = 0;           // GetEpisode answered from the cache
  uint64_t misses = 0;         // GetEpisode that went to the base
  uint64_t fills = 0;          // copies stored after a miss or by write-through
  uint64_t fills_skipped = 0;  // refills refused because a write overlapped the read
  uint64_t invalidations = 0;  // episode ids invalidated by writes
  uint64_t evictions = 0;      // entries evicted to stay within the size bounds
  uint64_t expired = 0;        // misses because the copy was older than the TTL
  uint64_t undecodable = 0;    // misses because the copy had another codec version or was corrupt
  uint64_t errors = 0;         // LMDB errors absorbed as misses (reads) or ignored (refills)
};

// A StorageBackend that caches another. Obtained from OpenLmdbCache as a StorageBackend;
// AsLmdbCache recovers this interface. Thread-safe.
class LmdbCache : public StorageBackend {
 public:
  // This object's counters. Thread-safe; the values are read one by one, not as a snapshot.
  virtual LmdbCacheMetrics Metrics() const = 0;
  // The cache folder.
  virtual std::string CachePath() const = 0;
  // Replaces LmdbOptions::max_entries and ::ttl for every later read and fill of this
  // object (config reload: cache.max_entries, cache.ttl_seconds). Entries past a lowered
  // bound go at the next fill. Other processes keep their own settings.
  virtual void SetLimits(size_t max_entries, std::chrono::seconds ttl) = 0;
  // Drops the cached copies of `episode_ids` in every process, for writes that reached the
  // store some other way (another host's PostgreSQL NOTIFY). Errors: kUnavailable, kDataLoss
  // (the cache file is unusable).
  virtual Status Invalidate(std::span<const std::string> episode_ids) = 0;
  // Drops every cached copy. Errors: as Invalidate.
  virtual Status Clear() = 0;

 protected:
  LmdbCache() = default;
};

// Opens (creating, or rebuilding when corrupt) the cache at options.path in front of `base`,
// which it owns. The cache remembers which store it belongs to (base->Name() and Location()):
// a folder made for another store is rebuilt.
// Errors: kInvalidArgument (empty path, or a bound larger than the map); kUnavailable (the
// folder cannot be created or opened, or it must be rebuilt while other processes still have
// it open after options.rebuild_wait).
Result<std::unique_ptr<StorageBackend>> OpenLmdbCache(const LmdbOptions& options,
                                                      std::unique_ptr<StorageBackend> base);

// `backend` as an LmdbCache, or nullptr if it is not one (for metrics and invalidation).
// Inline, so code that only reports on a store needs this header, not the cache library.
inline LmdbCache* AsLmdbCache(StorageBackend& backend) { return dynamic_cast<LmdbCache*>(&backend); }
inline const LmdbCache* AsLmdbCache(const StorageBackend& backend) {
  return dynamic_cast<const LmdbCache*>(&backend);
}

}  // namespace engram
