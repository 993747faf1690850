#include "embedding/embedding_cache.h"

#include <string>
#include <utility>

#include "embedding/hash.h"

namespace engram::embedding {

namespace {
constexpr uint64_t kCacheSeed = 0x656e6772616d4543ULL;  // "engramEC"
}  // namespace

EmbeddingCache::EmbeddingCache(std::string_view provider, std::string_view model, size_t capacity)
    : seed_(Hash64(std::string(provider) + '\0' + std::string(model), kCacheSeed)), capacity_(capacity) {}

EmbeddingCache::Key EmbeddingCache::KeyOf(std::string_view text) const {
  return Key{Hash64(text, seed_), static_cast<uint64_t>(text.size())};
}

std::optional<std::vector<float>> EmbeddingCache::Get(std::string_view text) {
  const Key key = KeyOf(text);
  MutexLock lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->vector;
}

void EmbeddingCache::Put(std::string_view text, std::vector<float> vector) {
  if (capacity_ == 0) return;
  const Key key = KeyOf(text);
  MutexLock lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->vector = std::move(vector);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (lru_.size() >= capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, std::move(vector)});
  index_.emplace(key, lru_.begin());
}

size_t EmbeddingCache::size() const {
  MutexLock lock(mu_);
  return lru_.size();
}

int64_t EmbeddingCache::hits() const {
  MutexLock lock(mu_);
  return hits_;
}

int64_t EmbeddingCache::misses() const {
  MutexLock lock(mu_);
  return misses_;
}

}  // namespace engram::embedding
