// Query expansion as `engram serve` opens it (server/open_retrieval.h): a missing WordNet
// turns WordNet off with a warning in health_check, never a crash; a broken concept file
// is a configuration error naming its line.
#include <fstream>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "engram/clock.h"
#include "engram/sqlite_backend.h"
#include "mcp/server.h"
#include "mcp/tools/builtin_tools.h"
#include "server/open_retrieval.h"
#include "testing/mcp_client.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ExpansionHealthTest : public testing::McpClientTest {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = dir_.File("memory.db");
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
    config_.db_path = dir_.File("memory.db");
    config_.embedding.provider = "none";
  }

  void Open() {
    Result<std::unique_ptr<server::RetrievalStack>> stack = server::OpenRetrieval(config_, *store_, SystemClock());
    ASSERT_TRUE(stack.ok()) << stack.status().ToString();
    stack_ = *std::move(stack);
    server_ = std::make_unique<mcp::McpServer>(mcp::ServerOptions{});
    ASSERT_TRUE(mcp::RegisterHealthTools(*server_, mcp::HealthSources{.storage = *store_,
                                                                      .embedding_provider = stack_->ProviderName(),
                                                                      .provider = stack_->provider(),
                                                                      .retriever = &stack_->retriever()})
                    .ok());
  }

  mcp::Json ExpansionCheck() {
    auto session = Connect();
    mcp::Json health = Ok(*session, "health_check");
    for (const mcp::Json& check : health["checks"]) {
      if (check["name"] == "query_expansion") return check;
    }
    ADD_FAILURE() << health.dump();
    return mcp::Json::object();
  }

  testing::TempDir dir_;
  Config config_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<server::RetrievalStack> stack_;
};

// By default the concept map is on and WordNet is off (it measured nothing on bench/eval).
TEST_F(ExpansionHealthTest, ConceptsOnAndWordNetOffByDefault) {
  Open();
  mcp::Json check = ExpansionCheck();
  EXPECT_EQ(check["healthy"], true);
  EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("concept map ("));
  EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("WordNet off"));
  EXPECT_THAT(check["detail"].get<std::string>(), Not(HasSubstr("and WordNet (")));
}

// WordNet stays available: naming its folder (install-deps installs wordnet-base) turns it on.
TEST_F(ExpansionHealthTest, WordNetWhenConfigured) {
  config_.retrieval.wordnet_dir = "/usr/share/wordnet";
  config_.retrieval.weight_wordnet = 0.05;
  Open();
  mcp::Json check = ExpansionCheck();
  EXPECT_EQ(check["healthy"], true);
  EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("and WordNet (/usr/share/wordnet)"));
}

TEST_F(ExpansionHealthTest, MissingWordNetIsAWarningNotACrash) {
  config_.retrieval.wordnet_dir = dir_.File("no-wordnet-here");
  config_.retrieval.weight_wordnet = 0.1;
  Open();
  mcp::Json check = ExpansionCheck();
  EXPECT_EQ(check["healthy"], true);  // a warning: retrieval works without it
  const std::string detail = check["detail"].get<std::string>();
  EXPECT_THAT(detail, HasSubstr("warning: WordNet unavailable, expansion uses the concept map only"));
  EXPECT_THAT(detail, HasSubstr("install wordnet-base"));
  // Retrieval still answers, with the concept map.
  RetrievalQuery q;
  q.text = "users keep getting signed out";
  q.mode = RetrievalMode::kLexical;
  EXPECT_TRUE(stack_->retriever().Retrieve(q).ok());
  EXPECT_TRUE(stack_->retriever().Expansion().configured);
}

TEST_F(ExpansionHealthTest, WordNetTurnedOffIsHealthy) {
  config_.retrieval.wordnet_dir = "";
  Open();
  mcp::Json check = ExpansionCheck();
  EXPECT_EQ(check["healthy"], true);
  EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("WordNet off"));
}

TEST_F(ExpansionHealthTest, BrokenConceptFileIsAConfigurationError) {
  {
    std::ofstream out(dir_.File("concepts.txt"));
    out << "# mine\nbilling: invoice run\n";
  }
  config_.retrieval.concepts_file = dir_.File("concepts.txt");
  Result<std::unique_ptr<server::RetrievalStack>> stack = server::OpenRetrieval(config_, *store_, SystemClock());
  ASSERT_FALSE(stack.ok());
  EXPECT_EQ(stack.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(stack.status().message(), HasSubstr("retrieval.concepts_file: " + dir_.File("concepts.txt") + ":2:"));
  EXPECT_THAT(stack.status().message(), HasSubstr("needs at least two terms"));
}

}  // namespace
}  // namespace engram
