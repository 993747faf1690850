#include "mcp/auth.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "common/time_format.h"

namespace engram::mcp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;

class ApiKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "engram_auth_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/config/engram/api_keys.json";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  ApiKeyStore LoadOrDie() {
    Result<ApiKeyStore> store = ApiKeyStore::Load(path_, clock_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return *std::move(store);
  }

  std::string ReadFile() {
    std::ifstream in(path_);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
  }

  void WriteFile(const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    std::ofstream(path_) << text;
    ::chmod(path_.c_str(), 0600);
  }

  std::string dir_;
  std::string path_;
  FakeClock clock_;
};

TEST_F(ApiKeyStoreTest, MissingFileIsAnEmptyStore) {
  ApiKeyStore store = LoadOrDie();
  EXPECT_THAT(store.List(), IsEmpty());
  EXPECT_FALSE(store.HasActiveKeys());
  EXPECT_FALSE(std::filesystem::exists(path_));  // nothing written until a key is made
  EXPECT_EQ(store.Verify("engram_0123456789ab_secret").status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ApiKeyStoreTest, CreateReturnsAKeyThatVerifies) {
  ApiKeyStore store = LoadOrDie();
  Result<CreatedKey> created = store.Create("ci bot", {"web-api", " infra ", "web-api"});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_THAT(created->key, MatchesRegex("engram_[0-9a-f]{12}_[A-Za-z0-9_-]{43}"));
  EXPECT_EQ(created->key.substr(7, 12), created->info.id);
  EXPECT_EQ(created->info.name, "ci bot");
  EXPECT_THAT(created->info.domains, ElementsAre("web-api", "infra"));  // trimmed, deduplicated
  EXPECT_EQ(created->info.created_at, clock_.Now());
  EXPECT_FALSE(created->info.revoked);
  EXPECT_TRUE(store.HasActiveKeys());

  Result<Principal> who = store.Verify(created->key);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->key_id, created->info.id);
  EXPECT_THAT(who->allowed_domains, ElementsAre("web-api", "infra"));
}

TEST_F(ApiKeyStoreTest, KeysAreUniqueAndRandom) {
  ApiKeyStore store = LoadOrDie();
  std::set<std::string> keys, ids;
  for (int i = 0; i < 20; ++i) {
    Result<CreatedKey> created = store.Create("", {});
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    keys.insert(created->key);
    ids.insert(created->info.id);
  }
  EXPECT_EQ(keys.size(), 20u);
  EXPECT_EQ(ids.size(), 20u);
}

TEST_F(ApiKeyStoreTest, FileHoldsOnlyASaltedHashAndIsPrivate) {
  ApiKeyStore store = LoadOrDie();
  Result<CreatedKey> a = store.Create("a", {});
  Result<CreatedKey> b = store.Create("b", {"x"});
  ASSERT_TRUE(a.ok() && b.ok());

  std::string text = ReadFile();
  std::string secret_a = a->key.substr(20);
  EXPECT_EQ(text.find(secret_a), std::string::npos);
  EXPECT_EQ(text.find(a->key), std::string::npos);

  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(json.is_discarded());
  EXPECT_EQ(json["version"], 1);
  ASSERT_EQ(json["keys"].size(), 2u);
  EXPECT_EQ(json["keys"][0]["id"], a->info.id);
  EXPECT_EQ(json["keys"][0]["name"], "a");
  EXPECT_EQ(json["keys"][0]["created_at"], FormatTimestamp(clock_.Now()));
  EXPECT_EQ(json["keys"][0]["hash"].get<std::string>().size(), 64u);
  EXPECT_NE(json["keys"][0]["salt"], json["keys"][1]["salt"]);
  EXPECT_EQ(json["keys"][1]["domains"], nlohmann::json::array({"x"}));

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/config/engram").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // No temp files left behind by the atomic replace.
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/config/engram")) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST_F(ApiKeyStoreTest, KeysSurviveReload) {
  std::string key;
  {
    ApiKeyStore store = LoadOrDie();
    Result<CreatedKey> created = store.Create("persisted", {"d"});
    ASSERT_TRUE(created.ok());
    key = created->key;
  }
  ApiKeyStore again = LoadOrDie();
  ASSERT_EQ(again.List().size(), 1u);
  EXPECT_EQ(again.List()[0].name, "persisted");
  EXPECT_EQ(again.List()[0].created_at, clock_.Now());
  EXPECT_TRUE(again.Verify(key).ok());
}

TEST_F(ApiKeyStoreTest, WrongMalformedAndUnknownKeysAreDenied) {
  ApiKeyStore store = LoadOrDie();
  Result<CreatedKey> created = store.Create("k", {});
  ASSERT_TRUE(created.ok());
  std::string key = created->key;

  std::string wrong = key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  std::string unknown_id = "engram_ffffffffffff" + key.substr(19);
  for (const std::string& presented :
       {wrong, unknown_id, std::string(), std::string("engram_"), key.substr(0, 20), key + "x",
        std::string("Bearer ") + key, std::string("ENGRAM_") + key.substr(7)}) {
    Result<Principal> who = store.Verify(presented);
    EXPECT_FALSE(who.ok()) << presented;
    EXPECT_EQ(who.status().code(), StatusCode::kPermissionDenied) << presented;
  }
  EXPECT_TRUE(store.Verify(key).ok());
}

TEST_F(ApiKeyStoreTest, RevokedKeysAreDeniedAndListed) {
  ApiKeyStore store = LoadOrDie();
  Result<CreatedKey> a = store.Create("a", {});
  Result<CreatedKey> b = store.Create("b", {});
  ASSERT_TRUE(a.ok() && b.ok());

  ASSERT_TRUE(store.Revoke(a->info.id).ok());
  Result<Principal> who = store.Verify(a->key);
  ASSERT_FALSE(who.ok());
  EXPECT_EQ(who.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(who.status().message(), HasSubstr("revoked"));
  EXPECT_TRUE(store.Verify(b->key).ok());
  EXPECT_TRUE(store.HasActiveKeys());

  std::vector<KeyInfo> keys = store.List();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_TRUE(keys[0].revoked);
  EXPECT_FALSE(keys[1].revoked);

  EXPECT_TRUE(store.Revoke(a->info.id).ok());  // again: still fine
  ASSERT_TRUE(store.Revoke(b->info.id).ok());
  EXPECT_FALSE(store.HasActiveKeys());

  Status unknown = store.Revoke("000000000000");
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound);

  ApiKeyStore reloaded = LoadOrDie();
  EXPECT_FALSE(reloaded.HasActiveKeys());
  EXPECT_FALSE(reloaded.Verify(b->key).ok());
}

TEST_F(ApiKeyStoreTest, ChangesByAnotherProcessAreSeen) {
  ApiKeyStore server = LoadOrDie();  // e.g. `engram serve`, loaded before any key existed
  ApiKeyStore cli = LoadOrDie();     // e.g. `engram keys create`
  Result<CreatedKey> created = cli.Create("later", {});
  ASSERT_TRUE(created.ok());
  // Verify looks at the file at most once a second.
  bool seen = false;
  for (int i = 0; i < 40 && !seen; ++i) {
    seen = server.Verify(created->key).ok();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(seen);

  ASSERT_TRUE(cli.Revoke(created->info.id).ok());
  bool revoked = false;
  for (int i = 0; i < 40 && !revoked; ++i) {
    revoked = !server.Verify(created->key).ok();
    if (!revoked) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(revoked);
}

TEST_F(ApiKeyStoreTest, TwoWritersDoNotLoseKeys) {
  ApiKeyStore one = LoadOrDie();
  ApiKeyStore two = LoadOrDie();  // both read the empty file before either wrote
  ASSERT_TRUE(one.Create("one", {}).ok());
  ASSERT_TRUE(two.Create("two", {}).ok());
  ApiKeyStore reloaded = LoadOrDie();
  ASSERT_EQ(reloaded.List().size(), 2u);
  EXPECT_EQ(reloaded.List()[0].name, "one");
  EXPECT_EQ(reloaded.List()[1].name, "two");
}

TEST_F(ApiKeyStoreTest, CorruptFileIsDataLoss) {
  WriteFile("{not json");
  Result<ApiKeyStore> store = ApiKeyStore::Load(path_, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));

  WriteFile(R"({"version": 1, "keys": [{"id": "abc", "name": "", "created_at": "2026-01-01T00:00:00Z",
               "domains": [], "revoked": false, "salt": "00", "hash": "00"}]})");
  store = ApiKeyStore::Load(path_, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr("key 1"));

  WriteFile(R"({"version": 2, "keys": []})");
  EXPECT_EQ(ApiKeyStore::Load(path_, clock_).status().code(), StatusCode::kDataLoss);
}

TEST_F(ApiKeyStoreTest, FileWritableByOthersIsRefused) {
  WriteFile(R"({"version": 1, "keys": []})");
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);
  Result<ApiKeyStore> store = ApiKeyStore::Load(path_, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("chmod 600"));
}

TEST_F(ApiKeyStoreTest, EmptyPathIsAReadOnlyEmptyStore) {
  Result<ApiKeyStore> store = ApiKeyStore::Load("", clock_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_FALSE(store->HasActiveKeys());
  EXPECT_EQ(store->Create("x", {}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Revoke("000000000000").code(), StatusCode::kFailedPrecondition);
}

TEST_F(ApiKeyStoreTest, InvalidDomainsAndNamesAreRejected) {
  ApiKeyStore store = LoadOrDie();
  EXPECT_EQ(store.Create("x", {"ok", " "}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create(std::string(300, 'n'), {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(store.List(), IsEmpty());
}

TEST_F(ApiKeyStoreTest, VerifyIsSafeFromManyThreads) {
  ApiKeyStore store = LoadOrDie();
  Result<CreatedKey> created = store.Create("k", {});
  ASSERT_TRUE(created.ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (store.Verify(created->key).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 800);
}

TEST(RandomHexTest, LengthAndUniqueness) {
  std::string a = RandomHex(16), b = RandomHex(16);
  EXPECT_THAT(a, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace engram::mcp
