// The native Universal Sentence Encoder lite (src/embedding/use_*.cc) against the
// reference: token ids and vectors the JS library computes (bench/eval/use_reference.mjs →
// tests/data/use/golden.json), plus determinism, batching and the failures a provider that
// cannot start must report (missing files, a truncated shard, bad JSON).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "embedding/use_model.h"
#include "embedding/use_provider.h"

namespace engram {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Golden {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> vector;
};

std::vector<Golden> LoadGolden() {
  nlohmann::json j = nlohmann::json::parse(ReadAll(fs::path(ENGRAM_USE_TEST_DATA) / "golden.json"));
  std::vector<Golden> out;
  for (const auto& s : j["sentences"]) {
    out.push_back({s["text"].get<std::string>(), s["ids"].get<std::vector<int32_t>>(),
                   s["vector"].get<std::vector<float>>()});
  }
  return out;
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return dot / std::sqrt(na * nb);
}

class UseModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = embedding::UseModel::Open(DefaultUseModelDir());
    ASSERT_TRUE(model.ok()) << model.status().ToString()
                            << " (the model is installed by scripts/install-deps into models/)";
    model_ = model->release();
    golden_ = new std::vector<Golden>(LoadGolden());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
  }
  static embedding::UseModel* model_;
  static std::vector<Golden>* golden_;
};
embedding::UseModel* UseModelTest::model_ = nullptr;
std::vector<Golden>* UseModelTest::golden_ = nullptr;

TEST_F(UseModelTest, GoldenFileCoversTheFixedSentences) {
  ASSERT_EQ(golden_->size(), 20u);
  for (const Golden& g : *golden_) EXPECT_EQ(g.vector.size(), 512u) << g.text;
}

TEST_F(UseModelTest, TokenIdsMatchTheReferenceTokenizer) {
  for (const Golden& g : *golden_) EXPECT_EQ(model_->tokenizer().Encode(g.text), g.ids) << g.text;
}

TEST_F(UseModelTest, VectorsMatchTheReference) {
  ASSERT_EQ(model_->dimension(), 512);
  for (const Golden& g : *golden_) {
    auto v = model_->Run({g.ids});
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    ASSERT_EQ((*v)[0].size(), 512u);
    EXPECT_GT(Cosine((*v)[0], g.vector), 0.999) << g.text;
  }
}

TEST_F(UseModelTest, ParaphrasesAreCloserThanUnrelatedSentences) {
  auto v = model_->Run({model_->tokenizer().Encode("The user signed out of the dashboard."),
                        model_->tokenizer().Encode("The user logged out of the dashboard."),
                        model_->tokenizer().Encode("Segmentation fault (core dumped) in libfoo.so")});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_GT(Cosine((*v)[0], (*v)[1]), Cosine((*v)[0], (*v)[2]) + 0.2);
}

TEST_F(UseModelTest, Deterministic) {
  const std::vector<int32_t> ids = (*golden_)[19].ids;
  auto a = model_->Run({ids});
  auto b = model_->Run({ids});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0], (*b)[0]);
}

TEST_F(UseModelTest, BatchEqualsOneByOne) {
  std::vector<std::vector<int32_t>> all;
  for (const Golden& g : *golden_) all.push_back(g.ids);
  auto batch = model_->Run(all);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    auto one = model_->Run({all[i]});
    ASSERT_TRUE(one.ok());
    for (size_t d = 0; d < 512; ++d) ASSERT_NEAR((*batch)[i][d], (*one)[0][d], 1e-6) << (*golden_)[i].text;
  }
}

TEST_F(UseModelTest, ConcurrentRunsAgreeWithOneThread) {
  std::vector<std::vector<float>> expected;
  for (const Golden& g : *golden_) expected.push_back((*model_->Run({g.ids}))[0]);
  std::vector<std::vector<std::vector<float>>> got(2);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (const Golden& g : *golden_) {
        auto v = model_->Run({g.ids});
        got[t].push_back(v.ok() ? (*v)[0] : std::vector<float>());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& run : got) EXPECT_EQ(run, expected);
}

TEST_F(UseModelTest, LongTextsReadTheirFirst128Tokens) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "word" + std::to_string(i) + " ";
  std::vector<int32_t> ids = model_->tokenizer().Encode(text);
  ASSERT_GT(ids.size(), 128u);
  std::vector<int32_t> head(ids.begin(), ids.begin() + 128);
  auto v = model_->Run({ids, head});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_GT(Cosine((*v)[0], (*v)[1]), 0.99999);
}

TEST_F(UseModelTest, RejectsEmptyListsAndUnknownIds) {
  EXPECT_EQ(model_->Run({{}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->Run({{1, 999999}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->Run({{-1}}).status().code(), StatusCode::kInvalidArgument);
}

TEST(UseTokenizerTest, EmptyTextHasNoTokens) {
  auto t = embedding::UseTokenizer::FromJson(
      R"([["\ufffd",0],["<s>",0],["</s>",0],["a",0],["b",0],["c",0],["\u2581ab",-1],["\u2581",-2],["a",-3],["b",-3]])");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE((*t)->Encode("").empty());
  EXPECT_EQ((*t)->Encode("ab"), (std::vector<int32_t>{6}));
  // "x" and "y" are unknown: one unknown piece for the run.
  EXPECT_EQ((*t)->Encode("ab xy"), (std::vector<int32_t>{6, 7, 0}));
}

TEST(UseTokenizerTest, RejectsAMalformedVocabulary) {
  EXPECT_EQ(embedding::UseTokenizer::FromJson("{").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(embedding::UseTokenizer::FromJson(R"({"a":1})").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(embedding::UseTokenizer::FromJson(R"([["a",0],["b",0],["c",0],["d",0],["e",0],["f",0],[1,2]])")
                .status()
                .code(),
            StatusCode::kDataLoss);
}

// ---- the provider and its failures ----------------------------------------------------

class UseFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("engram-use-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& entry : fs::directory_iterator(DefaultUseModelDir())) {
      fs::copy_file(entry.path(), dir_ / entry.path().filename());
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  StatusCode OpenCode() { return MakeUseProvider({.model_dir = dir_.string()}).status().code(); }
  fs::path dir_;
};

TEST_F(UseFilesTest, OpensACompleteCopy) { EXPECT_EQ(OpenCode(), StatusCode::kOk); }

TEST_F(UseFilesTest, MissingFolderIsNotFound) {
  auto p = MakeUseProvider({.model_dir = (dir_ / "nope").string()});
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find("model.json"), std::string::npos) << p.status().ToString();
}

TEST_F(UseFilesTest, MissingShardIsNotFound) {
  fs::remove(dir_ / "group1-shard3of7");
  EXPECT_EQ(OpenCode(), StatusCode::kNotFound);
}

TEST_F(UseFilesTest, TruncatedShardIsDataLoss) {
  fs::resize_file(dir_ / "group1-shard7of7", 1000);
  auto p = MakeUseProvider({.model_dir = dir_.string()});
  EXPECT_EQ(p.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(p.status().message().find("truncated"), std::string::npos) << p.status().ToString();
}

TEST_F(UseFilesTest, BadModelJsonIsDataLoss) {
  std::string text = ReadAll(dir_ / "model.json");
  std::ofstream(dir_ / "model.json", std::ios::trunc) << text.substr(0, text.size() / 2);
  EXPECT_EQ(OpenCode(), StatusCode::kDataLoss);
}

TEST_F(UseFilesTest, UnknownOperationIsDataLoss) {
  std::string text = ReadAll(dir_ / "model.json");
  const size_t at = text.find("\"op\": \"Softmax\"") != std::string::npos ? text.find("\"op\": \"Softmax\"")
                                                                          : text.find("\"op\":\"Softmax\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(text.find("Softmax", at), 7, "Softplus");
  std::ofstream(dir_ / "model.json", std::ios::trunc) << text;
  auto p = MakeUseProvider({.model_dir = dir_.string()});
  EXPECT_EQ(p.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(p.status().message().find("Softplus"), std::string::npos) << p.status().ToString();
}

TEST_F(UseFilesTest, MissingVocabularyIsNotFound) {
  fs::remove(dir_ / "vocab.json");
  EXPECT_EQ(OpenCode(), StatusCode::kNotFound);
}

TEST(UseProviderTest, BadBatchSizeIsInvalidArgument) {
  EXPECT_EQ(MakeUseProvider({.batch_size = 0}).status().code(), StatusCode::kInvalidArgument);
}

TEST(UseProviderTest, EmbedsLikeTheModelAndHandlesWordlessTexts) {
  auto provider = MakeUseProvider({.batch_size = 3});
  ASSERT_TRUE(provider.ok()) << provider.status().ToString();
  EXPECT_EQ((*provider)->Space().Key(), "use/use-lite-en/512");
  const std::vector<Golden> golden = LoadGolden();
  std::vector<std::string> texts = {"", "   "};
  for (const Golden& g : golden) texts.push_back(g.text);
  auto vectors = (*provider)->Embed(texts, EmbedPurpose::kDocument);
  ASSERT_TRUE(vectors.ok()) << vectors.status().ToString();
  ASSERT_EQ(vectors->size(), texts.size());
  EXPECT_EQ((*vectors)[0], std::vector<float>(512, 0.0f));
  EXPECT_EQ((*vectors)[1], std::vector<float>(512, 0.0f));
  for (size_t i = 0; i < golden.size(); ++i) {
    const std::vector<float>& v = (*vectors)[i + 2];
    if (v == std::vector<float>(512, 0.0f)) continue;  // a text with no search words
    EXPECT_GT(Cosine(v, golden[i].vector), 0.999) << golden[i].text;
  }
  // Asked again: the cache answers, with the same vector.
  auto again = (*provider)->Embed(std::vector<std::string>{texts[2]}, EmbedPurpose::kQuery);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0], (*vectors)[2]);
  EXPECT_GE((*provider)->Health().cache_hits, 1);

  // One text per call with no cache gives what the batches (of 3, sorted by length) gave.
  auto single = MakeUseProvider({.batch_size = 1, .cache_entries = 0});
  ASSERT_TRUE(single.ok());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = (*single)->Embed(std::span<const std::string>(&texts[i], 1), EmbedPurpose::kDocument);
    ASSERT_TRUE(one.ok()) << one.status().ToString();
    for (size_t d = 0; d < 512; ++d) ASSERT_NEAR((*one)[0][d], (*vectors)[i][d], 1e-6) << texts[i];
  }
  EXPECT_EQ((*single)->Health().cache_hits, 0);
  EXPECT_EQ((*single)->Health().requests, static_cast<int64_t>(texts.size()));
}

TEST(UseProviderTest, FallbackNoteShowsInHealth) {
  auto base = MakeUseProvider({});
  ASSERT_TRUE(base.ok());
  auto noted = WithFallbackNote(std::move(*base), "use unavailable; using hashing");
  EXPECT_EQ(noted->Health().last_error, "use unavailable; using hashing");
  EXPECT_EQ(noted->Space().provider, "use");
}

}  // namespace
}  // namespace engram
