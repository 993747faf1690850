#include "retrieval/episode_text.h"

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "engram/embedding.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "model/search_text.h"
#include "retrieval/retriever.h"
#include "semantics/concept_map.h"
#include "testing/sqlite_store.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Episode SampleEpisode() {
  Episode e;
  e.episode_id = "0190a0b2-0000-7000-8000-000000000001";
  e.task_description = "Pod killed with OOM while building the search index";
  e.context.domain = "infrastructure";
  Step step;
  step.tool = "bash";
  step.action = "kubectl describe pod indexer-0";
  e.steps.push_back(step);
  Outcome o;
  o.kind = OutcomeKind::kSuccess;
  o.verdict = "raised the memory limit to 2Gi";
  e.outcome = o;
  Reflection r;
  r.insights = {"index builds need twice the heap of queries"};
  r.improvements = {"set limits from a load test"};
  r.successes = {"found it from the pod events"};
  e.reflection = r;
  return e;
}

ConceptMap TestMap() {
  Result<ConceptMap> map = ConceptMap::Parse(
      "out-of-memory: out of memory, oom, exit code 137, ~killed\n"
      "rate-limit: rate limit, throttling, 429\n",
      "test");
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  return *std::move(map);
}

TEST(EpisodeTextTest, FullIsTheSearchDocumentWithTheTitleTwice) {
  const Episode e = SampleEpisode();
  const SearchDocument doc = BuildSearchDocument(e);
  EXPECT_EQ(EpisodeEmbeddingText(e, DocumentTextOptions{}, nullptr), doc.title + "\n" + doc.title + "\n" + doc.body);
  EXPECT_THAT(EpisodeEmbeddingText(e, DocumentTextOptions{}, nullptr), HasSubstr("kubectl"));
}

TEST(EpisodeTextTest, TaskVariantsTakeTheNaturalLanguageParts) {
  const Episode e = SampleEpisode();
  EXPECT_EQ(EpisodeEmbeddingText(e, {.text = DocumentText::kTask}, nullptr), e.task_description);
  EXPECT_EQ(EpisodeEmbeddingText(e, {.text = DocumentText::kTaskOutcome}, nullptr),
            e.task_description + "\nraised the memory limit to 2Gi");
  EXPECT_EQ(EpisodeEmbeddingText(e, {.text = DocumentText::kTaskLessons}, nullptr),
            e.task_description +
                "\nraised the memory limit to 2Gi\nindex builds need twice the heap of queries\nset limits from a "
                "load test");
  // A failure's reason stands where a verdict would.
  Episode failed = e;
  failed.outcome = Outcome{.kind = OutcomeKind::kFailure, .reason = "node pool is full"};
  EXPECT_EQ(EpisodeEmbeddingText(failed, {.text = DocumentText::kTaskOutcome}, nullptr),
            e.task_description + "\nnode pool is full");
  // An episode without outcome or reflection is its task.
  Episode open = e;
  open.outcome.reset();
  open.reflection.reset();
  EXPECT_EQ(EpisodeEmbeddingText(open, {.text = DocumentText::kTaskLessons}, nullptr), e.task_description);
}

TEST(EpisodeTextTest, ConceptExpansionAppendsTheOtherTermsOfNamedGroups) {
  const ConceptMap map = TestMap();
  const Episode e = SampleEpisode();
  const std::string text = EpisodeEmbeddingText(e, {.text = DocumentText::kTask, .expand_concepts = true}, &map);
  // "OOM" and "killed" are said; the group's other terms follow, each once, once.
  EXPECT_EQ(text, e.task_description + "\nout of memory, exit code 137");
  EXPECT_THAT(text, Not(HasSubstr("throttling")));  // a group the text does not name
  // No map, or expansion off: nothing is added.
  EXPECT_EQ(EpisodeEmbeddingText(e, {.text = DocumentText::kTask, .expand_concepts = true}, nullptr),
            e.task_description);
  EXPECT_EQ(EpisodeEmbeddingText(e, {.text = DocumentText::kTask}, &map), e.task_description);
  // Deterministic.
  EXPECT_EQ(text, EpisodeEmbeddingText(e, {.text = DocumentText::kTask, .expand_concepts = true}, &map));
}

TEST(EpisodeTextTest, ParseNamesAndSpaceSuffix) {
  for (const char* name : {"full", "task", "task+outcome", "task+lessons", "task+concepts", "full+concepts",
                           "task+lessons+concepts"}) {
    Result<DocumentTextOptions> o = ParseDocumentTextOptions(name);
    ASSERT_TRUE(o.ok()) << name << ": " << o.status().ToString();
    const std::string round = std::string(DocumentTextName(o->text)) + (o->expand_concepts ? "+concepts" : "");
    EXPECT_EQ(round, name);
  }
  EXPECT_EQ(ParseDocumentTextOptions("title").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDocumentTextOptions("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDocumentTextOptions("+concepts").status().code(), StatusCode::kInvalidArgument);
  // The default adds nothing to the space, so stores embedded before the option stay valid.
  EXPECT_EQ(DocumentTextSpaceSuffix({}), "");
  EXPECT_EQ(DocumentTextSpaceSuffix({.text = DocumentText::kTask}), "+task");
  EXPECT_EQ(DocumentTextSpaceSuffix({.text = DocumentText::kFull, .expand_concepts = true}), "+full+concepts");
}

class DocumentTextProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::OpenTestSqlite(dir_.File("memory.db"));
    ASSERT_NE(store_, nullptr);
    Memory memory(*store_, clock_, nullptr);
    Result<std::string> id = memory.CreateEpisode({.task_description = "Pod killed with OOM"});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    Outcome o;
    o.verdict = "raised the limit";
    ASSERT_TRUE(memory.CompleteEpisode(*id, o).ok());
  }

  std::unique_ptr<EmbeddingProvider> Hashing() {
    Result<std::unique_ptr<EmbeddingProvider>> p = MakeHashingProvider(HashingOptions{}, store_.get());
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return *std::move(p);
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
};

TEST_F(DocumentTextProviderTest, DefaultChoiceLeavesTheProviderAlone) {
  std::unique_ptr<EmbeddingProvider> base = Hashing();
  EmbeddingProvider* raw = base.get();
  std::unique_ptr<EmbeddingProvider> p = WithDocumentText(std::move(base), DocumentTextOptions{}, nullptr);
  EXPECT_EQ(p.get(), raw);
  const Episode e = SampleEpisode();
  EXPECT_EQ(EpisodeEmbeddingText(e, *p), EpisodeEmbeddingText(e, DocumentTextOptions{}, nullptr));
}

TEST_F(DocumentTextProviderTest, ChoiceIsPartOfTheSpaceAndOfTheText) {
  const ConceptMap map = TestMap();
  std::unique_ptr<EmbeddingProvider> plain = Hashing();
  std::unique_ptr<EmbeddingProvider> task =
      WithDocumentText(Hashing(), {.text = DocumentText::kTask, .expand_concepts = true}, &map);
  EXPECT_EQ(task->Space().model, plain->Space().model + "+task+concepts");
  EXPECT_EQ(task->Space().provider, plain->Space().provider);
  EXPECT_EQ(task->Space().dimension, plain->Space().dimension);
  const Episode e = SampleEpisode();
  EXPECT_EQ(EpisodeEmbeddingText(e, *task), e.task_description + "\nout of memory, exit code 137");
  // The wrapper embeds as its base does.
  Result<std::vector<std::vector<float>>> a = task->Embed(std::vector<std::string>{"oom"}, EmbedPurpose::kQuery);
  Result<std::vector<std::vector<float>>> b = plain->Embed(std::vector<std::string>{"oom"}, EmbedPurpose::kQuery);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);

  // A store embedded one way reads as stale to a retriever that embeds another way.
  Retriever with_task(*store_, clock_, task.get(), nullptr, RankingOptions{});
  Result<size_t> n = with_task.IndexPending(0);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(*with_task.VectorsStale());
  Retriever with_full(*store_, clock_, plain.get(), nullptr, RankingOptions{});
  EXPECT_TRUE(*with_full.VectorsStale());
  EXPECT_EQ(with_full.IndexPending(0).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace engram
