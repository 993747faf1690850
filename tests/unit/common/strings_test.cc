#include "common/strings.h"

#include <gtest/gtest.h>

namespace engram {
namespace {

TEST(StringsTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("ünïcode ✓ 𝄞"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));             // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));         // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));     // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_EQ(Utf8Length("ü✓𝄞a"), 4u);
}

TEST(StringsTest, EllipsizeCountsCharacters) {
  EXPECT_EQ(Ellipsize("hello", 10), "hello");
  EXPECT_EQ(Ellipsize("hello", 3), "hel…");
  EXPECT_EQ(Ellipsize("üüüü", 2), "üü…");
}

TEST(StringsTest, JsonQuoteEscapes) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(StringsTest, SplitAndTrim) {
  EXPECT_EQ(SplitAndTrim(" a, b ,,c ", ','), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(SplitAndTrim("", ',').empty());
  EXPECT_EQ(AsciiLower("MiXeD"), "mixed");
}

}  // namespace
}  // namespace engram
