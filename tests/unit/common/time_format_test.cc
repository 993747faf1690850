#include "common/time_format.h"

#include <gtest/gtest.h>

namespace engram {
namespace {

Timestamp Ms(int64_t ms) { return Timestamp(std::chrono::milliseconds(ms)); }

TEST(TimeFormatTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatTimestamp(Ms(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(Ms(1'767'225'600'123)), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(FormatTimestamp(Ms(951'782'400'000)), "2000-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(FormatTimestamp(Ms(-1)), "1969-12-31T23:59:59.999Z");
}

TEST(TimeFormatTest, ParsesWhatItFormatsAndOffsets) {
  for (int64_t ms : {0LL, 1'767'225'600'123LL, 951'782'400'000LL, 4'102'444'799'999LL}) {
    auto t = ParseTimestamp(FormatTimestamp(Ms(ms)));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->time_since_epoch().count(), ms);
  }
  EXPECT_EQ(ParseTimestamp("2026-01-01T02:00:00+02:00")->time_since_epoch().count(), 1'767'225'600'000);
  EXPECT_EQ(ParseTimestamp("2025-12-31T19:00:00-05:00")->time_since_epoch().count(), 1'767'225'600'000);
  EXPECT_EQ(ParseTimestamp("2026-01-01 00:00:00.5z")->time_since_epoch().count(), 1'767'225'600'500);
  EXPECT_EQ(ParseTimestamp("2026-01-01T00:00:00.123456Z")->time_since_epoch().count(), 1'767'225'600'123);
}

TEST(TimeFormatTest, RejectsMalformedWithReason) {
  for (const char* bad : {"", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z",
                          "2026-01-01T00:00:00", "2026-01-01T00:00:00Zjunk", "2026-01-01T00:00:00.Z",
                          "2026-01-01T00:00:00+2:00"}) {
    auto t = ParseTimestamp(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("RFC 3339"), std::string_view::npos);
  }
}

}  // namespace
}  // namespace engram
