// The circuit breaker's state machine, with time driven by a FakeClock.
#include "common/circuit_breaker.h"

#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using std::chrono::milliseconds;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  CircuitBreaker breaker_{CircuitBreakerOptions{.failure_threshold = 3, .open_for = milliseconds(10'000)}, clock_};

  void Fail(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(breaker_.Allow().ok());
      breaker_.RecordFailure();
    }
  }
};

TEST_F(CircuitBreakerTest, StartsClosedAndAllowsCalls) {
  EXPECT_EQ(breaker_.state(), CircuitState::kClosed);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(breaker_.Allow().ok());
    breaker_.RecordSuccess();
  }
  EXPECT_EQ(breaker_.consecutive_failures(), 0);
  EXPECT_EQ(breaker_.times_opened(), 0);
}

TEST_F(CircuitBreakerTest, OpensAfterThresholdConsecutiveFailures) {
  Fail(2);
  EXPECT_EQ(breaker_.state(), CircuitState::kClosed);
  EXPECT_EQ(breaker_.consecutive_failures(), 2);
  Fail(1);
  EXPECT_EQ(breaker_.state(), CircuitState::kOpen);
  EXPECT_EQ(breaker_.times_opened(), 1);

  Status refused = breaker_.Allow();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(), "circuit open (3 consecutive failures; retry in 10s)");

  clock_.Advance(milliseconds(7'500));
  EXPECT_EQ(breaker_.Allow().message(), "circuit open (3 consecutive failures; retry in 3s)");
}

TEST_F(CircuitBreakerTest, SuccessResetsTheConsecutiveCount) {
  Fail(2);
  ASSERT_TRUE(breaker_.Allow().ok());
  breaker_.RecordSuccess();
  Fail(2);
  EXPECT_EQ(breaker_.state(), CircuitState::kClosed);
  EXPECT_EQ(breaker_.consecutive_failures(), 2);
}

TEST_F(CircuitBreakerTest, HalfOpenLetsExactlyOneProbeThrough) {
  Fail(3);
  clock_.Advance(milliseconds(9'999));
  EXPECT_EQ(breaker_.state(), CircuitState::kOpen);
  EXPECT_FALSE(breaker_.Allow().ok());

  clock_.Advance(milliseconds(1));
  EXPECT_EQ(breaker_.state(), CircuitState::kHalfOpen);
  EXPECT_TRUE(breaker_.Allow().ok());  // the probe
  Status second = breaker_.Allow();     // refused while the probe is in flight
  EXPECT_EQ(second.code(), StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.message()), HasSubstr("probe"));
}

TEST_F(CircuitBreakerTest, SuccessfulProbeCloses) {
  Fail(3);
  clock_.Advance(milliseconds(10'000));
  ASSERT_TRUE(breaker_.Allow().ok());
  breaker_.RecordSuccess();
  EXPECT_EQ(breaker_.state(), CircuitState::kClosed);
  EXPECT_EQ(breaker_.consecutive_failures(), 0);
  EXPECT_TRUE(breaker_.Allow().ok());
  EXPECT_TRUE(breaker_.Allow().ok());
}

TEST_F(CircuitBreakerTest, FailedProbeReopensForAFullPause) {
  Fail(3);
  clock_.Advance(milliseconds(15'000));
  ASSERT_TRUE(breaker_.Allow().ok());
  breaker_.RecordFailure();
  EXPECT_EQ(breaker_.state(), CircuitState::kOpen);
  EXPECT_EQ(breaker_.times_opened(), 2);
  EXPECT_EQ(breaker_.Allow().message(), "circuit open (4 consecutive failures; retry in 10s)");

  clock_.Advance(milliseconds(9'000));
  EXPECT_FALSE(breaker_.Allow().ok());
  clock_.Advance(milliseconds(1'000));
  ASSERT_TRUE(breaker_.Allow().ok());
  breaker_.RecordSuccess();
  EXPECT_EQ(breaker_.state(), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, StragglerFailureWhileOpenDoesNotExtendThePause) {
  // Two calls allowed while closed; the first failure opens, the second arrives late.
  CircuitBreaker breaker(CircuitBreakerOptions{.failure_threshold = 1, .open_for = milliseconds(1'000)}, clock_);
  ASSERT_TRUE(breaker.Allow().ok());
  ASSERT_TRUE(breaker.Allow().ok());
  breaker.RecordFailure();
  clock_.Advance(milliseconds(600));
  breaker.RecordFailure();
  clock_.Advance(milliseconds(400));
  EXPECT_EQ(breaker.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(breaker.times_opened(), 1);
}

TEST_F(CircuitBreakerTest, AnAbandonedProbeStopsBlockingAfterAnotherPause) {
  Fail(3);
  clock_.Advance(milliseconds(10'000));
  ASSERT_TRUE(breaker_.Allow().ok());  // a probe whose caller never reports back
  clock_.Advance(milliseconds(9'000));
  EXPECT_FALSE(breaker_.Allow().ok());
  clock_.Advance(milliseconds(1'000));
  EXPECT_TRUE(breaker_.Allow().ok());
}

TEST(CircuitBreakerOptionsTest, BadOptionsAreNamed) {
  Status s = ValidateCircuitBreakerOptions({.failure_threshold = 0, .open_for = milliseconds(1)}, "x.");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("x.failure_threshold"));
  s = ValidateCircuitBreakerOptions({.failure_threshold = 1, .open_for = milliseconds(0)});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("open_for"));
  EXPECT_TRUE(ValidateCircuitBreakerOptions({}).ok());
  EXPECT_EQ(CircuitStateName(CircuitState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace engram
