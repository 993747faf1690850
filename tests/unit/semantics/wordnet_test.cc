#include "semantics/wordnet.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

// Debian's wordnet-base (scripts/install-deps installs it).
constexpr const char* kWordNetDir = "/usr/share/wordnet";

TEST(WordNetTest, MissingFilesAreNotFound) {
  testing::TempDir dir;
  Result<std::unique_ptr<WordNet>> wn = WordNet::Open(dir.path());
  ASSERT_FALSE(wn.ok());
  EXPECT_EQ(wn.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(wn.status().message(), HasSubstr("index.noun"));
  EXPECT_THAT(wn.status().message(), HasSubstr("wordnet-base"));
}

TEST(WordNetTest, FilesThatAreNotWordNetAreDataLoss) {
  testing::TempDir dir;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    for (const char* kind : {"index.", "data."}) {
      std::ofstream out(dir.File(std::string(kind) + pos));
      out << "this is not a wordnet database file, just some text long enough to be read\n";
    }
  }
  Result<std::unique_ptr<WordNet>> wn = WordNet::Open(dir.path());
  ASSERT_FALSE(wn.ok());
  EXPECT_EQ(wn.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(wn.status().message(), HasSubstr("is not a WordNet file"));
}

class RealWordNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<WordNet>> wn = WordNet::Open(kWordNetDir);
    ASSERT_TRUE(wn.ok()) << wn.status().ToString() << " (install wordnet-base: scripts/install-deps)";
    wn_ = *std::move(wn);
  }
  std::unique_ptr<WordNet> wn_;
};

TEST_F(RealWordNetTest, FindsSynonymsOfTheFirstSense) {
  std::vector<WordNetSense> senses = wn_->Senses("car", 1);
  ASSERT_FALSE(senses.empty());
  EXPECT_EQ(senses[0].pos, WordNetPos::kNoun);
  EXPECT_EQ(senses[0].rank, 0);
  EXPECT_EQ(senses[0].lemma, "car");
  EXPECT_THAT(senses[0].synonyms, Contains("automobile"));
  EXPECT_THAT(senses[0].synonyms, Contains("motorcar"));
  // Collocations come back readable.
  std::vector<WordNetSense> fast = wn_->Senses("quickly", 1);
  ASSERT_FALSE(fast.empty());
  EXPECT_EQ(fast[0].pos, WordNetPos::kAdv);
  EXPECT_THAT(fast[0].synonyms, Contains("speedily"));
}

TEST_F(RealWordNetTest, MorphologyFindsBaseForms) {
  EXPECT_THAT(wn_->BaseForms("ran", WordNetPos::kVerb), Contains("run"));          // exception list
  EXPECT_THAT(wn_->BaseForms("crashes", WordNetPos::kNoun), Contains("crash"));    // rule
  EXPECT_THAT(wn_->BaseForms("deploying", WordNetPos::kVerb), Contains("deploy"));  // rule
  EXPECT_TRUE(wn_->BaseForms("xqzzyq", WordNetPos::kNoun).empty());
}

TEST_F(RealWordNetTest, SensesAreLimitedOrderedAndDeterministic) {
  std::vector<WordNetSense> one = wn_->Senses("crash", 1);
  std::vector<WordNetSense> three = wn_->Senses("crash", 3);
  // Nouns then verbs, at most the asked number per part of speech.
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].pos, WordNetPos::kNoun);
  EXPECT_EQ(one[1].pos, WordNetPos::kVerb);
  EXPECT_EQ(three.size(), 6u);
  for (size_t i = 0; i < three.size(); ++i) EXPECT_EQ(three[i].rank, static_cast<int>(i % 3));
  std::vector<WordNetSense> again = wn_->Senses("crash", 3);
  ASSERT_EQ(again.size(), three.size());
  for (size_t i = 0; i < three.size(); ++i) EXPECT_EQ(again[i].synonyms, three[i].synonyms);
  EXPECT_TRUE(wn_->Senses("", 2).empty());
  EXPECT_TRUE(wn_->Senses("crash", 0).empty());
  EXPECT_TRUE(wn_->Senses("notawordatall", 2).empty());
}

// The first and last entries of an index file are found (the binary search's edges).
TEST_F(RealWordNetTest, FindsTheEdgesOfTheIndex) {
  EXPECT_FALSE(wn_->BaseForms("'hood", WordNetPos::kNoun).empty());
  EXPECT_FALSE(wn_->BaseForms("zyrian", WordNetPos::kNoun).empty());
  EXPECT_FALSE(wn_->BaseForms("zoom in", WordNetPos::kVerb).empty());
}

}  // namespace
}  // namespace engram
