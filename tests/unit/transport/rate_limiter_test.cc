#include "transport/rate_limiter.h"

#include <chrono>

#include <gtest/gtest.h>

#include "common/fake_clock.h"

namespace engram::transport {
namespace {

using std::chrono::milliseconds;

TEST(RateLimiterTest, OffByDefaultAndWhenSetToZero) {
  FakeClock clock;
  RateLimiter limiter(clock);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.Acquire("a").has_value());
  limiter.Set({.per_second = 0, .burst = 1});
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(limiter.Acquire("a").has_value());
  EXPECT_EQ(limiter.client_count(), 0u);
}

TEST(RateLimiterTest, BurstThenOneTokenPerInterval) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.Set({.per_second = 2, .burst = 3});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Acquire("a").has_value()) << i;
  std::optional<milliseconds> wait = limiter.Acquire("a");
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, milliseconds(500));  // one token every 500 ms

  clock.Advance(milliseconds(499));
  EXPECT_TRUE(limiter.Acquire("a").has_value());
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  EXPECT_TRUE(limiter.Acquire("a").has_value());

  // Idle refills to the burst, not beyond.
  clock.Advance(std::chrono::hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Acquire("a").has_value()) << i;
  EXPECT_TRUE(limiter.Acquire("a").has_value());
}

TEST(RateLimiterTest, ClientsHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.Set({.per_second = 1, .burst = 1});
  EXPECT_FALSE(limiter.Acquire("key a").has_value());
  EXPECT_TRUE(limiter.Acquire("key a").has_value());
  EXPECT_FALSE(limiter.Acquire("key b").has_value());
  EXPECT_EQ(limiter.client_count(), 2u);
}

TEST(RateLimiterTest, ChangingTheLimitAppliesToTheNextRequest) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.Set({.per_second = 1, .burst = 10});
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(limiter.Acquire("a").has_value());
  // A smaller burst caps the tokens already held.
  limiter.Set({.per_second = 1, .burst = 2});
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  EXPECT_TRUE(limiter.Acquire("a").has_value());
  // Off, then on again: a fresh bucket.
  limiter.Set({.per_second = 0});
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  limiter.Set({.per_second = 1, .burst = 1});
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  EXPECT_TRUE(limiter.Acquire("a").has_value());
  EXPECT_EQ(limiter.limit().burst, 1);
}

TEST(RateLimiterTest, IdleClientsAreForgotten) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.Set({.per_second = 10, .burst = 2});
  for (int i = 0; i < 10'001; ++i) limiter.Acquire("client " + std::to_string(i));
  EXPECT_EQ(limiter.client_count(), 10'001u);
  EXPECT_FALSE(limiter.Acquire("client 0").has_value());  // one token left of two
  clock.Advance(std::chrono::seconds(1));                 // every bucket full again
  EXPECT_FALSE(limiter.Acquire("newcomer").has_value());
  EXPECT_EQ(limiter.client_count(), 1u);
}

TEST(RateLimiterTest, BurstBelowOneCountsAsOne) {
  FakeClock clock;
  RateLimiter limiter(clock);
  limiter.Set({.per_second = 0.5, .burst = 0});
  EXPECT_FALSE(limiter.Acquire("a").has_value());
  std::optional<milliseconds> wait = limiter.Acquire("a");
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, milliseconds(2000));
}

}  // namespace
}  // namespace engram::transport
