#include "common/ids.h"

#include <set>

#include <gtest/gtest.h>

#include "common/fake_clock.h"

namespace engram {
namespace {

TEST(IdsTest, UuidV7HasVersionVariantAndTime) {
  FakeClock clock;
  std::string id = NewUuidV7(clock);
  ASSERT_TRUE(IsUuid(id)) << id;
  EXPECT_EQ(id[14], '7');                              // version
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);  // variant 10xx
  // The first 48 bits are the Unix time in ms.
  std::string hex = id.substr(0, 8) + id.substr(9, 4);
  EXPECT_EQ(std::stoll(hex, nullptr, 16), clock.Now().time_since_epoch().count());
}

TEST(IdsTest, IdsAreUniqueAndOrderedEvenWithinOneMillisecond) {
  FakeClock clock;  // time stands still: every id is in the same millisecond
  std::string prev;
  std::set<std::string> seen;
  for (int i = 0; i < 20000; ++i) {
    std::string id = NewUuidV7(clock);
    EXPECT_GT(id, prev);
    EXPECT_TRUE(seen.insert(id).second);
    prev = id;
    if (i % 5000 == 0) clock.Advance(std::chrono::milliseconds(1));
  }
}

TEST(IdsTest, IsUuidRejectsOtherText) {
  EXPECT_TRUE(IsUuid("0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7d"));
  EXPECT_TRUE(IsUuid("0193B5C2-7F3A-7C4E-9D2B-5A1E3F4C6B7D"));
  EXPECT_FALSE(IsUuid(""));
  EXPECT_FALSE(IsUuid("nope"));
  EXPECT_FALSE(IsUuid("0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7"));
  EXPECT_FALSE(IsUuid("0193b5c2x7f3a-7c4e-9d2b-5a1e3f4c6b7d"));
  EXPECT_FALSE(IsUuid("0193b5c2-7f3a-7c4e-9d2b-5a1e3f4c6b7g"));
}

}  // namespace
}  // namespace engram
