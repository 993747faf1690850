#include "semantics/concept_map.h"

#include <fstream>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/search_text.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;

TEST(ConceptMapTest, BuiltinMapParsesAndIsLarge) {
  const ConceptMap& map = ConceptMap::Builtin();
  EXPECT_GE(map.size(), 150u);
  std::set<std::string> names;
  for (const ConceptGroup& g : map.groups()) {
    EXPECT_GE(g.terms.size(), 2u) << g.name;
    EXPECT_TRUE(names.insert(g.name).second) << g.name;
    for (const ConceptTerm& t : g.terms) EXPECT_FALSE(t.words.empty()) << g.name << ": " << t.text;
  }
  // The groups the issue names.
  for (const char* name : {"out-of-memory", "rate-limit", "flaky-test", "logged-out"}) {
    EXPECT_TRUE(names.contains(name)) << name;
  }
}

TEST(ConceptMapTest, ParsesTermsWeightsAndComments) {
  Result<ConceptMap> map = ConceptMap::Parse(
      "# a comment\n"
      "\n"
      "oom: out of memory, OOMKilled, exit code 137, ~killed\r\n"
      "  rate-limit : 429 , too many requests  \n",
      "test.txt");
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  ASSERT_EQ(map->size(), 2u);
  const ConceptGroup& oom = map->groups()[0];
  EXPECT_EQ(oom.name, "oom");
  EXPECT_EQ(oom.source, "test.txt:3");
  ASSERT_EQ(oom.terms.size(), 4u);
  EXPECT_EQ(oom.terms[0].words, (std::vector<std::string>{"out", "memory"}));  // "of" is a stop word
  EXPECT_EQ(oom.terms[1].words, SearchTokens("OOMKilled"));  // normalised: "oomkill"
  EXPECT_EQ(oom.terms[2].words, (std::vector<std::string>{"exit", "code", "137"}));
  EXPECT_EQ(oom.terms[3].text, "killed");
  EXPECT_DOUBLE_EQ(oom.terms[3].weight, kRelatedTermWeight);
  EXPECT_DOUBLE_EQ(oom.terms[0].weight, 1.0);
  EXPECT_EQ(map->groups()[1].name, "rate-limit");
  EXPECT_EQ(map->groups()[1].terms[1].text, "too many requests");
}

TEST(ConceptMapTest, FindsPhrasesOnSearchWords) {
  Result<ConceptMap> map = ConceptMap::Parse("oom: out of memory, memory, exit code 137\nrl: rate limited, 429\n", "t");
  ASSERT_TRUE(map.ok());
  // "ran out of memory" holds "out of memory"; "rate-limiting" normalises like "rate limited".
  std::vector<ConceptMatch> m = map->Find(SearchTokens("The job ran out of memory after rate-limiting"));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].group, 0u);
  EXPECT_EQ(m[0].term, 0u);  // at one position the longer term first
  EXPECT_EQ(m[0].length, 2u);
  EXPECT_EQ(m[1].group, 0u);
  EXPECT_EQ(m[1].term, 1u);  // "memory" alone, one word later
  EXPECT_EQ(m[2].group, 1u);
  // A phrase broken by another word does not match.
  EXPECT_TRUE(map->Find(SearchTokens("exit status code 137")).empty());
  EXPECT_EQ(map->Find(SearchTokens("Exit code 137")).size(), 1u);
}

// Every malformed line is refused with its line number and what is wrong.
TEST(ConceptMapTest, MalformedLinesNameTheLine) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {"ok: a1, b1\nno colon here\n", "f.txt:2: expected \"name: term, term, ...\""},
      {"# c\n\nbad name!: x1, y1\n", "f.txt:3: bad group name \"bad name!\""},
      {": x1, y1\n", "f.txt:1: bad group name \"\""},
      {"a: x1, y1\nb: z1, w1\na: q1, r1\n", "f.txt:3: group \"a\" is defined twice (first at f.txt:1)"},
      {"solo: only one\n", "f.txt:1: group \"solo\" needs at least two terms"},
      {"e: x1,, y1\n", "f.txt:1: empty term in group \"e\""},
      {"e: x1, ~ \n", "f.txt:1: empty term in group \"e\""},
      {"s: x1, of the\n", "f.txt:1: term \"of the\" has no search words"},
      {"d: tests failed, test fails\n", "f.txt:1: terms \"tests failed\" and \"test fails\" are the same search words"},
  };
  for (const Case& c : cases) {
    Result<ConceptMap> map = ConceptMap::Parse(c.text, "f.txt");
    ASSERT_FALSE(map.ok()) << c.text;
    EXPECT_EQ(map.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(map.status().message(), HasSubstr(c.want)) << c.text;
  }
}

TEST(ConceptMapTest, LoadFileAndMerge) {
  testing::TempDir dir;
  EXPECT_EQ(ConceptMap::LoadFile(dir.File("missing.txt")).status().code(), StatusCode::kNotFound);
  {
    std::ofstream out(dir.File("extra.txt"));
    out << "logged-out: booted from the app\nbilling-x: invoice run, dunning\n";
  }
  Result<ConceptMap> extra = ConceptMap::LoadFile(dir.File("extra.txt"));
  ASSERT_FALSE(extra.ok());  // "logged-out" with one term
  EXPECT_THAT(extra.status().message(), HasSubstr("extra.txt:1:"));
  {
    std::ofstream out(dir.File("extra.txt"));
    out << "logged-out: booted from the app, logout\nbilling-x: invoice run, dunning\n";
  }
  extra = ConceptMap::LoadFile(dir.File("extra.txt"));
  ASSERT_TRUE(extra.ok()) << extra.status().ToString();
  ConceptMap map = ConceptMap::Builtin();
  const size_t before = map.size();
  map.Merge(*extra);
  EXPECT_EQ(map.size(), before + 1);  // logged-out is extended, billing-x is new
  std::vector<ConceptMatch> m = map.Find(SearchTokens("booted from the app"));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(map.groups()[m[0].group].name, "logged-out");
  // "logout" was a term already: not added twice.
  size_t logouts = 0;
  for (const ConceptTerm& t : map.groups()[m[0].group].terms) logouts += t.words == SearchTokens("logout");
  EXPECT_EQ(logouts, 1u);
}

}  // namespace
}  // namespace engram
