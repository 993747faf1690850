#include "semantics/concept_map.h"

#include <fstream>
#include <map>
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
  EXPECT_GE(map.size(), 500u);
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

// A term in two groups would make a query select both, and the groups would drift apart when
// one is edited: every term of the built-in map (compared on its search words, so "tests
// failed" and "test fails" are one term) belongs to exactly one group.
TEST(ConceptMapTest, BuiltinMapHasNoTermInTwoGroups) {
  const ConceptMap& map = ConceptMap::Builtin();
  std::map<std::vector<std::string>, std::string> owner;  // search words → "group: term"
  for (const ConceptGroup& g : map.groups()) {
    for (const ConceptTerm& t : g.terms) {
      const auto [it, inserted] = owner.emplace(t.words, g.name + ": " + t.text);
      EXPECT_TRUE(inserted) << "\"" << t.text << "\" is in " << g.name << " (" << g.source << ") and in "
                            << it->second;
    }
  }
}

// A few lookups that the map must answer, across the areas it covers: a query's words select
// the group whose other terms then find episodes written differently.
TEST(ConceptMapTest, BuiltinMapFindsGroupsAcrossAreas) {
  const ConceptMap& map = ConceptMap::Builtin();
  struct Case {
    const char* text;
    const char* group;
  };
  const Case cases[] = {
      {"the pod was OOMKilled again", "out-of-memory"},
      {"got HTTP 429 from the vendor API", "rate-limit"},
      {"she was signed out after an hour", "logged-out"},
      {"the test fails sometimes on CI", "flaky-test"},
      {"SQLITE_BUSY: database is locked", "sqlite-locked"},
      {"git push: updates were rejected", "push-rejected"},
      {"standard_init_linux.go: exec format error", "arch-mismatch"},
      {"ZeroDivisionError in the report job", "division-by-zero"},
      {"unable to get local issuer certificate", "ca-bundle"},
      {"useEffect sees a stale closure", "react-hooks"},
      {"endless consumer group rebalance", "kafka-rebalance"},
      {"Permission denied (publickey) when cloning", "git-auth"},
  };
  for (const Case& c : cases) {
    std::set<std::string> found;
    for (const ConceptMatch& m : map.Find(SearchTokens(c.text))) found.insert(map.groups()[m.group].name);
    EXPECT_TRUE(found.contains(c.group)) << "\"" << c.text << "\" should select " << c.group;
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
