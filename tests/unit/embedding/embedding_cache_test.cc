// The LRU embedding cache: hits and misses, eviction of the least recently used entry,
// replacement, and capacity 0 meaning off.
#include "embedding/embedding_cache.h"

#include <gtest/gtest.h>

namespace engram::embedding {
namespace {

TEST(EmbeddingCacheTest, HitsMissesAndLeastRecentlyUsedEviction) {
  EmbeddingCache cache("http", "model-a", 2);
  EXPECT_FALSE(cache.Get("one").has_value());
  cache.Put("one", {1.0f});
  cache.Put("two", {2.0f});
  ASSERT_TRUE(cache.Get("one").has_value());  // "one" is now the most recently used
  cache.Put("three", {3.0f});                 // evicts "two"
  EXPECT_FALSE(cache.Get("two").has_value());
  EXPECT_EQ(cache.Get("one"), std::vector<float>{1.0f});
  EXPECT_EQ(cache.Get("three"), std::vector<float>{3.0f});
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.hits(), 3);
  EXPECT_EQ(cache.misses(), 2);
}

TEST(EmbeddingCacheTest, PutReplacesAndTextsDifferingOnlyInLengthDoNotCollide) {
  EmbeddingCache cache("http", "m", 10);
  cache.Put("text", {1.0f});
  cache.Put("text", {5.0f});
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get("text"), std::vector<float>{5.0f});
  EXPECT_FALSE(cache.Get("text ").has_value());
  EXPECT_FALSE(cache.Get(std::string_view("text\0", 5)).has_value());
}

TEST(EmbeddingCacheTest, CapacityZeroKeepsNothing) {
  EmbeddingCache cache("http", "m", 0);
  cache.Put("x", {1.0f});
  EXPECT_FALSE(cache.Get("x").has_value());
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace engram::embedding
