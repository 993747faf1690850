// embedding.provider = "use" through OpenRetrieval, as `engram serve` opens it: the model
// when it can start; otherwise hashing, with the reason in health_check (never a crash).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "config/config.h"
#include "embedding/use_provider.h"
#include "engram/clock.h"
#include "engram/sqlite_backend.h"
#include "mcp/server.h"
#include "mcp/tools/builtin_tools.h"
#include "server/open_retrieval.h"
#include "testing/mcp_client.h"
#include "testing/temp_dir.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class UseFallbackTest : public testing::McpClientTest {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = dir_.File("memory.db");
    Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = *std::move(store);
  }

  // Opens retrieval with provider "use" and `model_dir`, and a server with health_check.
  void Open(const std::string& model_dir) {
    Config config;
    config.db_path = dir_.File("memory.db");
    config.embedding.provider = "use";
    config.embedding.model_dir = model_dir;
    Result<std::unique_ptr<server::RetrievalStack>> stack = server::OpenRetrieval(config, *store_, SystemClock());
    ASSERT_TRUE(stack.ok()) << stack.status().ToString();
    stack_ = *std::move(stack);
    server_ = std::make_unique<mcp::McpServer>(mcp::ServerOptions{});
    ASSERT_TRUE(mcp::RegisterHealthTools(*server_, mcp::HealthSources{.storage = *store_,
                                                                      .embedding_provider = stack_->ProviderName(),
                                                                      .provider = stack_->provider()})
                    .ok());
  }

  // health_check's "embeddings" entry.
  mcp::Json EmbeddingsCheck() {
    auto session = Connect();
    mcp::Json health = Ok(*session, "health_check");
    for (const mcp::Json& check : health["checks"]) {
      if (check["name"] == "embeddings") return check;
    }
    ADD_FAILURE() << health.dump();
    return mcp::Json::object();
  }

  testing::TempDir dir_;
  std::unique_ptr<StorageBackend> store_;
  std::unique_ptr<server::RetrievalStack> stack_;
};

TEST_F(UseFallbackTest, InstalledModelIsUsed) {
  Open("");
  EXPECT_EQ(stack_->ProviderName(), "use/use-lite-en/512");
  mcp::Json check = EmbeddingsCheck();
  EXPECT_TRUE(check["healthy"].get<bool>());
  EXPECT_THAT(check["detail"].get<std::string>(), HasSubstr("use/use-lite-en/512"));
  auto v = stack_->provider()->Embed(std::vector<std::string>{"the user signed out"}, EmbedPurpose::kQuery);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)[0].size(), 512u);
}

TEST_F(UseFallbackTest, MissingModelFallsBackToHashing) {
  Open(dir_.File("no-such-model"));
  EXPECT_EQ(stack_->ProviderName(), "hashing/hash-v1/256");
  mcp::Json check = EmbeddingsCheck();
  const std::string detail = check["detail"].get<std::string>();
  EXPECT_THAT(detail, HasSubstr("could not start"));
  EXPECT_THAT(detail, HasSubstr("fell back to hashing"));
  EXPECT_THAT(detail, HasSubstr("no-such-model"));
  auto v = stack_->provider()->Embed(std::vector<std::string>{"the user signed out"}, EmbedPurpose::kQuery);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)[0].size(), 256u);
}

TEST_F(UseFallbackTest, TruncatedShardFallsBackToHashing) {
  const fs::path copy = dir_.File("model");
  fs::create_directories(copy);
  for (const auto& entry : fs::directory_iterator(DefaultUseModelDir())) {
    fs::copy_file(entry.path(), copy / entry.path().filename());
  }
  fs::resize_file(copy / "group1-shard5of7", 4096);
  Open(copy.string());
  EXPECT_EQ(stack_->ProviderName(), "hashing/hash-v1/256");
  EXPECT_THAT(EmbeddingsCheck()["detail"].get<std::string>(), HasSubstr("truncated"));
}

}  // namespace
}  // namespace engram
