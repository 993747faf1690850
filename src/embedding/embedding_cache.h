// EmbeddingCache: a bounded LRU of vectors keyed by provider + model + text, so a text
// embedded once is not sent to a remote embedding service again. The key holds a 64-bit
// hash of the text (seeded with provider and model) and its length, not the text itself:
// two texts share an entry only if both collide, which at 2^-64 per pair is accepted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"

namespace engram::embedding {

// Thread-safe.
class EmbeddingCache {
 public:
  // `capacity` 0 disables the cache (every Get misses, Put keeps nothing).
  EmbeddingCache(std::string_view provider, std::string_view model, size_t capacity);
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  // The cached vector of `text`, marked most recently used; nullopt on a miss.
  std::optional<std::vector<float>> Get(std::string_view text) ENGRAM_LOCKS_EXCLUDED(mu_);
  // Stores (or replaces) the vector of `text`, evicting the least recently used entry
  // when full.
  void Put(std::string_view text, std::vector<float> vector) ENGRAM_LOCKS_EXCLUDED(mu_);

  size_t size() const ENGRAM_LOCKS_EXCLUDED(mu_);
  size_t capacity() const { return capacity_; }
  int64_t hits() const ENGRAM_LOCKS_EXCLUDED(mu_);
  int64_t misses() const ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  struct Key {
    uint64_t hash;
    uint64_t length;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return static_cast<size_t>(k.hash); }
  };
  struct Entry {
    Key key;
    std::vector<float> vector;
  };
  Key KeyOf(std::string_view text) const;

  // Constant after construction.
  const uint64_t seed_;  // hash of provider and model
  const size_t capacity_;

  mutable Mutex mu_;
  std::list<Entry> lru_ ENGRAM_GUARDED_BY(mu_);  // most recently used first
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_ ENGRAM_GUARDED_BY(mu_);
  int64_t hits_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t misses_ ENGRAM_GUARDED_BY(mu_) = 0;
};

}  // namespace engram::embedding
