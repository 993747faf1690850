#include "semantics/query_expander.h"

#include <algorithm>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace engram {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

const ExpansionFacet* FacetFor(const ExpandedQuery& q, ExpansionSource source, const std::string& label) {
  for (const ExpansionFacet& f : q.facets) {
    if (f.source == source && f.label == label) return &f;
  }
  return nullptr;
}

std::vector<std::string> Texts(const ExpansionFacet& f) {
  std::vector<std::string> out;
  for (const ExpansionTerm& t : f.terms) out.push_back(t.text);
  return out;
}

class QueryExpanderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<ConceptMap> map = ConceptMap::Parse(
        "logged-out: logged out, signed out, session expired, ~kicked\n"
        "oom: out of memory, oom, exit code 137\n",
        "test");
    ASSERT_TRUE(map.ok()) << map.status().ToString();
    concepts_ = *std::move(map);
    Result<std::unique_ptr<WordNet>> wn = WordNet::Open("/usr/share/wordnet");
    ASSERT_TRUE(wn.ok()) << wn.status().ToString() << " (install wordnet-base: scripts/install-deps)";
    wordnet_ = *std::move(wn);
  }
  ConceptMap concepts_;
  std::unique_ptr<WordNet> wordnet_;
};

TEST_F(QueryExpanderTest, ConceptFacetHoldsTheOtherTerms) {
  QueryExpander expander(&concepts_, nullptr);
  ExpandedQuery q = expander.Expand("Users keep getting signed out");
  EXPECT_EQ(q.words, SearchTokens("Users keep getting signed out"));
  const ExpansionFacet* f = FacetFor(q, ExpansionSource::kConcept, "logged-out");
  ASSERT_NE(f, nullptr);
  // What the query says itself is no alternative.
  EXPECT_EQ(Texts(*f), (std::vector<std::string>{"logged out", "session expired", "kicked"}));
  EXPECT_DOUBLE_EQ(f->terms[2].weight, kRelatedTermWeight);
  EXPECT_FALSE(q.Has(ExpansionSource::kWordNet));  // no WordNet given
  // New words only ("out" is the query's), in first-seen order, as search words.
  EXPECT_EQ(q.ExtraWords(ExpansionSource::kConcept),
            (std::vector<std::string>{"log", "session", "expir", "kick"}));
}

TEST_F(QueryExpanderTest, WordNetExpandsPlainWordsOnly) {
  QueryExpander expander(nullptr, wordnet_.get());
  ExpandedQuery q = expander.Expand("car");
  const ExpansionFacet* car = FacetFor(q, ExpansionSource::kWordNet, "car");
  ASSERT_NE(car, nullptr);
  EXPECT_THAT(Texts(*car), Contains("automobile"));
  // Identifiers, numbers, paths, flags, acronyms, stop words and generic words are left alone.
  ExpandedQuery none = expander.Expand(
      "the car_park CarPark carPark /usr/car ./car car.h --car -v 42 car2 CAR API fix issue make with");
  EXPECT_THAT(none.facets, IsEmpty());
}

TEST(IsIdentifierChunkTest, Shapes) {
  for (const char* id : {"snake_case", "CamelCase", "camelCase", "/etc/hosts", "a.b", "--flag", "-v", "137",
                         "v2", "OOM", "CI", "key=value", "user@host", "$HOME", "std::vector", "f(x)", "#123"}) {
    EXPECT_TRUE(IsIdentifierChunk(id)) << id;
  }
  for (const char* word : {"crash", "Crash", "rate-limited", "signed", "I", "A"}) {
    EXPECT_FALSE(IsIdentifierChunk(word)) << word;
  }
}

TEST_F(QueryExpanderTest, ConceptWordsAreNotExpandedByWordNet) {
  QueryExpander expander(&concepts_, wordnet_.get());
  ExpandedQuery q = expander.Expand("the car ran out of memory");
  EXPECT_NE(FacetFor(q, ExpansionSource::kConcept, "oom"), nullptr);
  EXPECT_EQ(FacetFor(q, ExpansionSource::kWordNet, "memory"), nullptr);  // the concept map knows it
  EXPECT_NE(FacetFor(q, ExpansionSource::kWordNet, "car"), nullptr);
}

TEST_F(QueryExpanderTest, ExpansionIsDeterministic) {
  QueryExpander a(&concepts_, wordnet_.get());
  QueryExpander b(&ConceptMap::Builtin(), wordnet_.get());
  QueryExpander c(&ConceptMap::Builtin(), wordnet_.get());
  for (const char* text : {"users keep getting signed out of the dashboard",
                           "nightly build crashes with exit code 137 on the runner",
                           "throttled by the payments provider during checkout"}) {
    ExpandedQuery x = b.Expand(text), y = c.Expand(text), z = b.Expand(text);
    ASSERT_EQ(x.facets.size(), y.facets.size()) << text;
    ASSERT_EQ(x.facets.size(), z.facets.size()) << text;
    for (size_t i = 0; i < x.facets.size(); ++i) {
      EXPECT_EQ(x.facets[i].label, y.facets[i].label);
      EXPECT_EQ(Texts(x.facets[i]), Texts(y.facets[i]));
      EXPECT_EQ(Texts(x.facets[i]), Texts(z.facets[i]));
    }
    EXPECT_EQ(a.Expand(text).words, x.words);
  }
}

TEST_F(QueryExpanderTest, BuiltinMapCoversTheIssueExamples) {
  QueryExpander expander(&ConceptMap::Builtin(), nullptr);
  struct Case {
    const char* query;
    const char* group;
    const char* alternative;
  };
  for (const Case& c : {Case{"pod was OOMKilled", "out-of-memory", "exit code 137"},
                        Case{"getting 429 Too Many Requests", "rate-limit", "throttling"},
                        Case{"intermittent failure in CI", "flaky-test", "flaky"},
                        Case{"users are logged out", "logged-out", "session expired"}}) {
    ExpandedQuery q = expander.Expand(c.query);
    const ExpansionFacet* f = FacetFor(q, ExpansionSource::kConcept, c.group);
    ASSERT_NE(f, nullptr) << c.query;
    EXPECT_THAT(Texts(*f), Contains(c.alternative)) << c.query;
  }
}

TEST_F(QueryExpanderTest, ScoresTitleBodyAndWeights) {
  QueryExpander expander(&concepts_, nullptr);
  ExpandedQuery q = expander.Expand("signed out again");
  auto score = [&](const char* title, const char* body) {
    // As SearchDocument holds them: search words joined by spaces.
    std::string t, b;
    for (const std::string& w : SearchTokens(title)) t += (t.empty() ? "" : " ") + w;
    for (const std::string& w : SearchTokens(body)) b += (b.empty() ? "" : " ") + w;
    return ScoreExpansion(q, DocumentTerms(q, t, b)).concepts;
  };
  EXPECT_DOUBLE_EQ(score("Fix logout: the session expired too early", ""), 1.0);
  EXPECT_DOUBLE_EQ(score("Fix the login page", "the session expired after ten minutes"), DocumentTerms::kBodyPresence);
  EXPECT_DOUBLE_EQ(score("Users were kicked", ""), kRelatedTermWeight);
  EXPECT_DOUBLE_EQ(score("The session was renewed, it expired later", ""), 0.0);  // not the phrase
  EXPECT_DOUBLE_EQ(score("Unrelated", "nothing here"), 0.0);
  EXPECT_DOUBLE_EQ(ScoreExpansion(q, DocumentTerms(q, "", "")).wordnet, 0.0);

  // One DocumentTerms refilled per document (as the retriever scores its candidates)
  // scores each as a fresh one does: nothing of the previous document stays.
  DocumentTerms reused(q);
  for (const auto& [title, body] : std::vector<std::pair<const char*, const char*>>{
           {"Fix logout: the session expired too early", ""},
           {"The session was renewed, it expired later", ""},
           {"Fix the login page", "the session expired after ten minutes"},
           {"Unrelated", "nothing here"}}) {
    reused.Clear();
    for (const std::string& w : SearchTokens(title)) reused.AddTitleWord(w);
    for (const std::string& w : SearchTokens(body)) reused.AddBodyWord(w);
    EXPECT_DOUBLE_EQ(ScoreExpansion(q, reused).concepts, score(title, body)) << title;
  }
}

}  // namespace
}  // namespace engram
