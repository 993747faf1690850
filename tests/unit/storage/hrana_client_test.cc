// HranaClient (storage/turso/hrana_client.h) against the real tursodb (ENGRAM_TEST_TURSO,
// started by `make test`), against a tursodb of its own that it kills and restarts, and
// against a loopback server that misbehaves on purpose.
#include "storage/turso/hrana_client.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/fake_clock.h"
#include "testing/misbehaving_http_server.h"
#include "testing/temp_dir.h"
#include "testing/turso_server.h"

namespace engram {
// For `<< status` in assertion messages.
std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }
}  // namespace engram

namespace engram::turso {
namespace {

using ::engram::testing::HttpReply;
using ::engram::testing::HttpRequest;
using ::engram::testing::MisbehavingHttpServer;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;
using namespace std::chrono_literals;

// Options for tests: short timeouts, fast retries.
HranaOptions TestOptions(const std::string& url) {
  HranaOptions o;
  o.url = url;
  o.connect_timeout = 2'000ms;
  o.request_timeout = 10'000ms;
  o.max_retries = 2;
  o.backoff = 1ms;
  o.breaker_failure_threshold = 1'000;
  return o;
}

std::unique_ptr<HranaClient> MustOpen(const HranaOptions& o, Clock& clock = SystemClock()) {
  Result<std::unique_ptr<HranaClient>> c = HranaClient::Open(o, clock);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// A valid answer to one execute request returning `rows` under `cols`.
std::string ExecuteAnswer(const json& cols, const json& rows) {
  json result = {{"cols", cols}, {"rows", rows}, {"affected_row_count", 0}, {"last_insert_rowid", nullptr}};
  json answer = {{"baton", nullptr},
                 {"base_url", nullptr},
                 {"results", json::array({{{"type", "ok"}, {"response", {{"type", "execute"}, {"result", result}}}}})}};
  return answer.dump();
}
std::string OneAnswer() {
  return ExecuteAnswer(json::array({{{"name", "1"}, {"decltype", nullptr}}}),
                       json::array({json::array({{{"type", "integer"}, {"value", "1"}}})}));
}

// ---- Against the shared tursodb -------------------------------------------------------

class HranaTursoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ENGRAM_TURSO_OR_SKIP(url);
    client_ = MustOpen(TestOptions(url));
    ASSERT_NE(client_, nullptr);
    table_ = testing::UniqueTursoName("hrana_t_");
  }
  void TearDown() override {
    if (client_ != nullptr) client_->Execute("DROP TABLE IF EXISTS " + table_).status().IgnoreError();
  }

  int64_t Count() {
    Result<HranaResult> r = client_->Execute("SELECT count(*) FROM " + table_);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    Result<int64_t> n = r->Int(0, 0);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  }

  std::unique_ptr<HranaClient> client_;
  std::string table_;
};

TEST_F(HranaTursoTest, EveryValueTypeRoundTripsThroughATable) {
  ASSERT_TRUE(client_->Execute("CREATE TABLE " + table_ + "(id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB)")
                  .ok());
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const std::string utf8 = "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x9A\x80 \xE4\xB8\xAD\xE6\x96\x87 'quoted' \"dq\" \\";
  const std::string with_nul("a\0b", 3);
  struct Row {
    int64_t i;
    double f;
    std::string t;
    std::string b;
  };
  const std::vector<Row> rows = {
      {std::numeric_limits<int64_t>::min(), 0.1, utf8, all_bytes},
      {std::numeric_limits<int64_t>::max(), -1e308, "", ""},
      {0, 5e-324, with_nul, std::string(1, '\0')},
      {-1, 3.141592653589793, std::string(100'000, 'x'), std::string(70'000, '\xff')},
  };
  HranaBatch insert;
  for (size_t k = 0; k < rows.size(); ++k) {
    insert.Add("INSERT INTO " + table_ + "(id, i, f, t, b) VALUES (?, ?, ?, ?, ?)",
               {HranaValue::Int(static_cast<int64_t>(k)), HranaValue::Int(rows[k].i), HranaValue::Float(rows[k].f),
                HranaValue::Text(rows[k].t), HranaValue::Blob(rows[k].b)});
  }
  insert.Add("INSERT INTO " + table_ + "(id, i, f, t, b) VALUES (?, ?, ?, ?, ?)",
             {HranaValue::Int(99), HranaValue::Null(), HranaValue::OptInt(std::nullopt),
              HranaValue::OptText(std::nullopt), HranaValue::Null()});
  Result<std::vector<HranaResult>> written = client_->Batch(insert);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->size(), rows.size() + 1);

  Result<HranaResult> read = client_->Execute("SELECT id, i, f, t, b FROM " + table_ + " ORDER BY id");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->rows.size(), rows.size() + 1);
  EXPECT_EQ(read->columns, (std::vector<std::string>{"id", "i", "f", "t", "b"}));
  for (size_t k = 0; k < rows.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(*read->Int(k, 1), rows[k].i);
    EXPECT_EQ(*read->Double(k, 2), rows[k].f);  // exact: floats travel as shortest round-trip decimals
    EXPECT_EQ(*read->Text(k, 3), rows[k].t);
    EXPECT_EQ(*read->Blob(k, 4), rows[k].b);
  }
  const size_t n = rows.size();
  EXPECT_EQ(*read->OptInt(n, 1), std::nullopt);
  EXPECT_EQ(*read->OptDouble(n, 2), std::nullopt);
  EXPECT_EQ(*read->OptText(n, 3), std::nullopt);
  EXPECT_TRUE(read->rows[n][4].is_null());
  EXPECT_EQ(*read->OptInt(0, 1), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*read->OptText(0, 3), utf8);

  // Values also come back as they went when bound straight into a SELECT.
  Result<HranaResult> echo = client_->Execute(
      "SELECT ?, ?, ?, ?, ?", {HranaValue::Int(std::numeric_limits<int64_t>::max()), HranaValue::Float(-0.5),
                               HranaValue::Text(utf8), HranaValue::Blob(all_bytes), HranaValue::Null()});
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo->Int(0, 0), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*echo->Double(0, 1), -0.5);
  EXPECT_EQ(*echo->Text(0, 2), utf8);
  EXPECT_EQ(*echo->Blob(0, 3), all_bytes);
  EXPECT_TRUE(echo->rows[0][4].is_null());
}

TEST_F(HranaTursoTest, TypedReadsRefuseAnotherTypeAndNameTheColumn) {
  Result<HranaResult> r = client_->Execute("SELECT 7 AS n, 'seven' AS word, 2.5 AS x, NULL AS empty, x'00' AS raw");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->Int(0, 0), 7);
  EXPECT_EQ(*r->Double(0, 0), 7.0);  // a float column accepts an integer cell
  Result<std::string> text_of_int = r->Text(0, 0);
  EXPECT_EQ(text_of_int.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(text_of_int.status().message(), HasSubstr("\"n\""));
  EXPECT_EQ(r->Int(0, 1).status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(r->Int(0, 1).status().message(), HasSubstr("\"word\" of row 0 is text, expected integer"));
  EXPECT_EQ(r->Int(0, 2).status().code(), StatusCode::kDataLoss);  // no silent float → int
  EXPECT_EQ(r->Int(0, 3).status().code(), StatusCode::kDataLoss);  // null is not an integer
  EXPECT_EQ(r->Text(0, 4).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r->Blob(0, 1).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(r->Int(1, 0).status().code(), StatusCode::kDataLoss);  // no such row
  EXPECT_EQ(r->Int(0, 9).status().code(), StatusCode::kDataLoss);  // no such column
}

TEST_F(HranaTursoTest, AFailingStatementLeavesNothingOfItsBatch) {
  ASSERT_TRUE(client_->Execute("CREATE TABLE " + table_ + "(a INTEGER PRIMARY KEY, b TEXT)").ok());
  ASSERT_TRUE(client_->Execute("INSERT INTO " + table_ + " VALUES (1, 'one')").ok());

  HranaBatch failing;
  failing.Add("INSERT INTO " + table_ + " VALUES (2, 'two')");
  failing.Add("UPDATE " + table_ + " SET b = 'changed' WHERE a = 1");
  failing.Add("INSERT INTO " + table_ + " VALUES (1, 'again')");  // PRIMARY KEY clash
  failing.Add("INSERT INTO " + table_ + " VALUES (3, 'three')");
  Result<std::vector<HranaResult>> r = client_->Batch(failing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("statement 2"));
  EXPECT_THAT(r.status().message(), HasSubstr("UNIQUE constraint failed"));

  Result<HranaResult> left = client_->Execute("SELECT a, b FROM " + table_ + " ORDER BY a");
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_EQ(left->rows.size(), 1u);
  EXPECT_EQ(*left->Text(0, 1), "one");

  // The same batch without the clash commits whole, one result per statement.
  HranaBatch good;
  good.Add("INSERT INTO " + table_ + " VALUES (2, 'two') RETURNING a");
  good.Add("UPDATE " + table_ + " SET b = 'changed' WHERE a = 1");
  good.Add("SELECT count(*) FROM " + table_);
  Result<std::vector<HranaResult>> ok = client_->Batch(good);
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ(*(*ok)[0].Int(0, 0), 2);
  EXPECT_EQ(*(*ok)[2].Int(0, 0), 2);  // sees the batch's own insert
  EXPECT_EQ(Count(), 2);
  EXPECT_TRUE(client_->Batch(HranaBatch()).ok());  // nothing to do, nothing sent
}

TEST_F(HranaTursoTest, SqlErrorsMapToStatusCodes) {
  ASSERT_TRUE(client_->Execute("CREATE TABLE " + table_ + "(a INTEGER NOT NULL UNIQUE, b INTEGER CHECK (b > 0))").ok());
  ASSERT_TRUE(client_
                  ->Execute("CREATE TRIGGER " + table_ + "_guard BEFORE INSERT ON " + table_ +
                            " WHEN NEW.a = 99 BEGIN SELECT RAISE(ABORT, 'episode 99 is closed'); END")
                  .ok());
  ASSERT_TRUE(client_->Execute("INSERT INTO " + table_ + " VALUES (1, 1)").ok());

  Result<HranaResult> dup = client_->Execute("INSERT INTO " + table_ + " VALUES (1, 2)");
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists) << dup.status();
  Result<HranaResult> not_null = client_->Execute("INSERT INTO " + table_ + " VALUES (NULL, 2)");
  EXPECT_EQ(not_null.status().code(), StatusCode::kFailedPrecondition) << not_null.status();
  EXPECT_THAT(not_null.status().message(), HasSubstr("NOT NULL"));
  Result<HranaResult> check = client_->Execute("INSERT INTO " + table_ + " VALUES (2, -1)", {});
  EXPECT_EQ(check.status().code(), StatusCode::kFailedPrecondition) << check.status();
  EXPECT_THAT(check.status().message(), HasSubstr("CHECK"));

  HranaBatch raise;
  raise.Add("INSERT INTO " + table_ + " VALUES (5, 5)");
  raise.Add("INSERT INTO " + table_ + " VALUES (99, 1)");
  Result<std::vector<HranaResult>> raised = client_->Batch(raise);
  EXPECT_EQ(raised.status().code(), StatusCode::kFailedPrecondition) << raised.status();
  EXPECT_THAT(raised.status().message(), HasSubstr("statement 1"));
  EXPECT_THAT(raised.status().message(), HasSubstr("episode 99 is closed"));
  EXPECT_EQ(Count(), 1);

  EXPECT_EQ(client_->Execute("SELEC 1").status().code(), StatusCode::kInternal);
  EXPECT_EQ(client_->Execute("SELECT * FROM no_such_table_here").status().code(), StatusCode::kInternal);
  EXPECT_EQ(client_->Execute("SELECT abs(-9223372036854775807 - 1)").status().code(), StatusCode::kInternal);
}

TEST_F(HranaTursoTest, ExecuteManyRunsEachStatementAndFailsOnAnyError) {
  ASSERT_TRUE(client_->Execute("CREATE TABLE " + table_ + "(a INTEGER)").ok());
  HranaBatch reads;
  reads.Add("SELECT ?", {HranaValue::Int(1)});
  reads.Add("SELECT count(*) FROM " + table_);
  reads.Add("SELECT 'x' UNION ALL SELECT 'y'");
  const int64_t before = client_->requests_sent();
  Result<std::vector<HranaResult>> r = client_->ExecuteMany(reads);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(client_->requests_sent() - before, 1);  // one round trip for all three
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ(*(*r)[0].Int(0, 0), 1);
  EXPECT_EQ(*(*r)[1].Int(0, 0), 0);
  EXPECT_EQ((*r)[2].rows.size(), 2u);

  reads.Add("SELECT * FROM no_such_table_here");
  Result<std::vector<HranaResult>> failed = client_->ExecuteMany(reads);
  EXPECT_EQ(failed.status().code(), StatusCode::kInternal);
  EXPECT_THAT(failed.status().message(), HasSubstr("statement 3"));
}

TEST_F(HranaTursoTest, ConcurrentBatchesAllCommit) {
  ASSERT_TRUE(client_->Execute("CREATE TABLE " + table_ + "(a INTEGER PRIMARY KEY, n INTEGER)").ok());
  ASSERT_TRUE(client_->Execute("INSERT INTO " + table_ + " VALUES (0, 0)").ok());
  constexpr int kThreads = 6;
  constexpr int kEach = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kEach; ++k) {
        HranaBatch b;
        b.Add("INSERT INTO " + table_ + " VALUES (?, 0)", {HranaValue::Int(1 + t * kEach + k)});
        b.Add("UPDATE " + table_ + " SET n = n + 1 WHERE a = 0");
        Result<std::vector<HranaResult>> r = client_->Batch(b);
        if (!r.ok()) {
          ADD_FAILURE() << r.status();
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  Result<HranaResult> r = client_->Execute("SELECT n, (SELECT count(*) FROM " + table_ + ") FROM " + table_ +
                                           " WHERE a = 0");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->Int(0, 0), kThreads * kEach);
  EXPECT_EQ(*r->Int(0, 1), kThreads * kEach + 1);
}

TEST_F(HranaTursoTest, BadArgumentsAreRefusedBeforeAnythingIsSent) {
  const int64_t before = client_->requests_sent();
  Result<HranaResult> bad_utf8 = client_->Execute("SELECT ?", {HranaValue::Text("ok \xC3(")});
  EXPECT_EQ(bad_utf8.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_utf8.status().message(), HasSubstr("argument 1"));
  EXPECT_EQ(client_->Execute("SELECT ?", {HranaValue::Text("\xED\xA0\x80")}).status().code(),
            StatusCode::kInvalidArgument);  // a UTF-16 surrogate
  EXPECT_EQ(client_->Execute("SELECT ?", {HranaValue::Text("\xC0\x80")}).status().code(),
            StatusCode::kInvalidArgument);  // an overlong NUL
  EXPECT_EQ(client_->Execute("SELECT ?", {HranaValue::Float(std::nan(""))}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Execute("SELECT ?", {HranaValue::Float(INFINITY)}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Execute("").status().code(), StatusCode::kInvalidArgument);
  HranaBatch b;
  b.Add("SELECT 1");
  b.Add("SELECT ?", {HranaValue::Text("\xff")});
  Result<std::vector<HranaResult>> batch = client_->Batch(b);
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.status().message(), HasSubstr("statement 1"));
  EXPECT_EQ(client_->requests_sent(), before);
}

// ---- Options --------------------------------------------------------------------------

TEST(HranaOptionsTest, UrlsAreNormalisedAndBadOnesRefused) {
  struct Case {
    std::string url;
    std::string base;  // "" = refused
  };
  const std::vector<Case> cases = {
      {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
      {"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
      {"http://127.0.0.1:8080/v2/pipeline", "http://127.0.0.1:8080"},
      {"HTTPS://db-org.turso.io", "https://db-org.turso.io"},
      {"libsql://db-org.turso.io", "https://db-org.turso.io"},
      {"libsql://db-org.turso.io/", "https://db-org.turso.io"},
      {"", ""},
      {"ftp://host", ""},
      {"127.0.0.1:8080", ""},
      {"http://", ""},
      {"http://:80", ""},
      {"http://host/ path", ""},
      {"http://host\n", ""},
      {"libsql://db.turso.io?authToken=sekrit-token", ""},
      {"https://user:sekrit-token@db.turso.io", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    HranaOptions o;
    o.url = c.url;
    Result<std::unique_ptr<HranaClient>> client = HranaClient::Open(o, SystemClock());
    if (c.base.empty()) {
      ASSERT_FALSE(client.ok());
      EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
      EXPECT_THAT(client.status().message(), Not(HasSubstr("sekrit")));
    } else {
      ASSERT_TRUE(client.ok()) << client.status();
      EXPECT_EQ((*client)->base_url(), c.base);
    }
  }
}

TEST(HranaOptionsTest, BadOptionsAreRefused) {
  auto code = [](HranaOptions o) {
    o.url = o.url.empty() ? "http://127.0.0.1:1" : o.url;
    return HranaClient::Open(o, SystemClock()).status();
  };
  HranaOptions o;
  o.pool_size = 0;
  EXPECT_EQ(code(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.max_retries = -1;
  EXPECT_EQ(code(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.request_timeout = 0ms;
  EXPECT_EQ(code(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.breaker_failure_threshold = 0;
  EXPECT_EQ(code(o).code(), StatusCode::kInvalidArgument);
  o = {};
  o.auth_token = "sekrit-token\n";
  Status s = code(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), Not(HasSubstr("sekrit")));
  EXPECT_TRUE(code(HranaOptions{}).ok());
}

// ---- Against a misbehaving server ---------------------------------------------------------

TEST(HranaMisbehavingServerTest, SendsTheTokenAndNeverPutsItInAnError) {
  const std::string token = "tok-very-secret-1234";
  MisbehavingHttpServer server([&](const HttpRequest& req, int n) {
    if (n == 0) return HttpReply::Json(OneAnswer());
    // A server that echoes the request's headers back in its error pages.
    std::string echo = "denied for " + req.Header("authorization");
    return HttpReply::Status(n == 1 ? 401 : 500, echo);
  });
  HranaOptions o = TestOptions(server.url());
  o.auth_token = token;
  o.max_retries = 0;
  auto client = MustOpen(o);
  ASSERT_TRUE(client->Execute("SELECT 1").ok());
  std::vector<HttpRequest> seen = server.received();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].Header("authorization"), "Bearer " + token);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/v2/pipeline");
  json body = json::parse(seen[0].body);
  EXPECT_EQ(body["requests"][0]["type"], "execute");
  EXPECT_EQ(body["requests"][0]["stmt"]["sql"], "SELECT 1");
  EXPECT_THAT(seen[0].body, Not(HasSubstr(token)));

  Status denied = client->Execute("SELECT 1").status();
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), Not(HasSubstr(token)));
  EXPECT_THAT(denied.message(), HasSubstr("401"));
  Status failed = client->Execute("SELECT 1").status();
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_THAT(failed.message(), Not(HasSubstr(token)));
  EXPECT_THAT(failed.message(), HasSubstr("[token]"));

  // Without a token, no Authorization header at all.
  MisbehavingHttpServer plain([](const HttpRequest&, int) { return HttpReply::Json(OneAnswer()); });
  auto anonymous = MustOpen(TestOptions(plain.url()));
  ASSERT_TRUE(anonymous->Execute("SELECT 1").ok());
  EXPECT_EQ(plain.received()[0].Header("authorization"), "");
}

TEST(HranaMisbehavingServerTest, EachKindOfBadAnswerBecomesAClearError) {
  const std::string html_page =
      "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + std::string(20'000, 'x') + "</body></html>";
  const json int_col = json::array({{{"name", "n"}, {"decltype", nullptr}}});
  auto one_cell = [&](const json& cell) { return ExecuteAnswer(int_col, json::array({json::array({cell})})); };
  struct Case {
    std::string name;
    HttpReply reply;
    StatusCode code;
    std::string says;
  };
  std::vector<Case> cases = {
      {"html page with 200", HttpReply::Status(200, html_page, "text/html"), StatusCode::kDataLoss, "not JSON"},
      {"html page with 502", HttpReply::Status(502, html_page, "text/html"), StatusCode::kUnavailable, "HTTP 502"},
      {"empty body", HttpReply::Json(""), StatusCode::kDataLoss, "not JSON"},
      {"truncated JSON", HttpReply::Json(OneAnswer().substr(0, 60)), StatusCode::kDataLoss, "not JSON"},
      {"body cut short of its length", HttpReply::Of(HttpReply::Kind::kTruncate, OneAnswer()),
       StatusCode::kUnavailable, "turso"},
      {"connection dropped", HttpReply::Of(HttpReply::Kind::kDrop), StatusCode::kUnavailable, "turso"},
      {"a JSON array", HttpReply::Json("[1, 2]"), StatusCode::kDataLoss, "not an object"},
      {"no results", HttpReply::Json(R"({"baton": null})"), StatusCode::kDataLoss, "no \"results\" array"},
      {"results not an array", HttpReply::Json(R"({"results": "ok"})"), StatusCode::kDataLoss, "\"results\""},
      {"too many results", HttpReply::Json(R"({"results": [{"type":"ok"}, {"type":"ok"}]})"), StatusCode::kDataLoss,
       "2 results for 1 requests"},
      {"result without type", HttpReply::Json(R"({"results": [{"response": {}}]})"), StatusCode::kDataLoss,
       "no \"type\""},
      {"wrong response type", HttpReply::Json(R"({"results": [{"type":"ok","response":{"type":"batch","result":{}}}]})"),
       StatusCode::kDataLoss, "not of type \"execute\""},
      {"cols not an array", HttpReply::Json(R"({"results": [{"type":"ok","response":{"type":"execute","result":{"cols":3,"rows":[]}}}]})"),
       StatusCode::kDataLoss, "\"cols\""},
      {"row of the wrong width", HttpReply::Json(ExecuteAnswer(int_col, json::array({json::array()}))),
       StatusCode::kDataLoss, "0 values for 1 columns"},
      {"integer as a JSON number string of letters", HttpReply::Json(one_cell({{"type", "integer"}, {"value", "12a"}})),
       StatusCode::kDataLoss, "not a 64-bit decimal"},
      {"integer past int64", HttpReply::Json(one_cell({{"type", "integer"}, {"value", "9223372036854775808"}})),
       StatusCode::kDataLoss, "not a 64-bit decimal"},
      {"integer as an object", HttpReply::Json(one_cell({{"type", "integer"}, {"value", json::object()}})),
       StatusCode::kDataLoss, "integer value is a JSON object"},
      {"float as a string", HttpReply::Json(one_cell({{"type", "float"}, {"value", "1.5"}})), StatusCode::kDataLoss,
       "float value is a JSON string"},
      {"float null", HttpReply::Json(one_cell({{"type", "float"}, {"value", nullptr}})), StatusCode::kDataLoss,
       "float value is null"},
      {"text as a number", HttpReply::Json(one_cell({{"type", "text"}, {"value", 3}})), StatusCode::kDataLoss,
       "text value"},
      {"blob not base64", HttpReply::Json(one_cell({{"type", "blob"}, {"base64", "!!!"}})), StatusCode::kDataLoss,
       "not base64"},
      {"unknown value type", HttpReply::Json(one_cell({{"type", "bigint"}, {"value", "1"}})), StatusCode::kDataLoss,
       "unknown type \"bigint\""},
      {"value not an object", HttpReply::Json(one_cell(json(5))), StatusCode::kDataLoss, "not an object"},
      {"error without message", HttpReply::Json(R"({"results": [{"type":"error","error":{"code":"X"}}]})"),
       StatusCode::kDataLoss, "\"message\""},
      {"affected rows as text", HttpReply::Json(R"({"results": [{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":"many"}}}]})"),
       StatusCode::kDataLoss, "affected_row_count"},
      {"404 page", HttpReply::Status(404, "Not Found"), StatusCode::kUnavailable, "HTTP 404"},
      {"403", HttpReply::Status(403, "forbidden"), StatusCode::kPermissionDenied, "HTTP 403"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MisbehavingHttpServer server([&](const HttpRequest&, int) { return c.reply; });
    HranaOptions o = TestOptions(server.url());
    o.max_retries = 0;
    auto client = MustOpen(o);
    Result<HranaResult> r = client->Execute("SELECT 1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.says));
    EXPECT_LT(r.status().message().size(), 600u) << "the message echoes too much of the answer";
  }

  // Batches: answers that do not fit the batch that was sent.
  MisbehavingHttpServer server([](const HttpRequest&, int) {
    return HttpReply::Json(
        R"({"results": [{"type":"ok","response":{"type":"batch","result":{"step_results":[null],"step_errors":[null]}}}]})");
  });
  auto client = MustOpen(TestOptions(server.url()));
  HranaBatch b;
  b.Add("SELECT 1");
  Result<std::vector<HranaResult>> r = client->Batch(b);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("\"step_results\" is not an array of 4"));
}

TEST(HranaMisbehavingServerTest, RetryableFailuresAreRetriedWithBackoffOthersAreNot) {
  std::atomic<int> fail_first{2};
  std::atomic<int> status{500};
  MisbehavingHttpServer server([&](const HttpRequest&, int n) {
    if (n < fail_first.load()) return HttpReply::Status(status.load(), "busy");
    return HttpReply::Json(OneAnswer());
  });
  HranaOptions o = TestOptions(server.url());
  o.max_retries = 3;
  o.backoff = 1ms;
  auto client = MustOpen(o);

  // 500, 500, then OK: one call, three requests.
  ASSERT_TRUE(client->Execute("SELECT 1").ok());
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(client->requests_sent(), 3);

  // 429 is retried too.
  MisbehavingHttpServer limited([](const HttpRequest&, int n) {
    return n < 1 ? HttpReply::Status(429, "slow down") : HttpReply::Json(OneAnswer());
  });
  auto c429 = MustOpen(TestOptions(limited.url()));
  ASSERT_TRUE(c429->Execute("SELECT 1").ok());
  EXPECT_EQ(limited.requests(), 2);

  // Always 503: 1 + max_retries requests, then kUnavailable saying how many.
  MisbehavingHttpServer down([](const HttpRequest&, int) { return HttpReply::Status(503, "down"); });
  auto cdown = MustOpen(o);
  o.url = down.url();
  cdown = MustOpen(o);
  Status s = cdown->Execute("SELECT 1").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("(4 attempts)"));
  EXPECT_EQ(down.requests(), 4);

  // 400 and 404 are not retried.
  for (int code : {400, 404, 401}) {
    MisbehavingHttpServer refusing([code](const HttpRequest&, int) { return HttpReply::Status(code, "no"); });
    o.url = refusing.url();
    auto c = MustOpen(o);
    EXPECT_FALSE(c->Execute("SELECT 1").ok());
    EXPECT_EQ(refusing.requests(), 1) << code;
  }
  // Nor is tursodb's "cannot parse this request" 500.
  MisbehavingHttpServer parse_error([](const HttpRequest&, int) {
    return HttpReply::Status(500, "Internal Server Error: Failed to parse pipeline request: expected value");
  });
  o.url = parse_error.url();
  auto cparse = MustOpen(o);
  EXPECT_EQ(cparse->Execute("SELECT 1").status().code(), StatusCode::kInternal);
  EXPECT_EQ(parse_error.requests(), 1);
}

TEST(HranaMisbehavingServerTest, BatchesAreRetriedOnlyWhenTheySurelyDidNotRun) {
  HranaBatch b;
  b.Add("INSERT INTO t VALUES (1)");
  struct Case {
    std::string name;
    HttpReply reply;
    int expected_requests;
    bool says_unknown;
  };
  const std::vector<Case> cases = {
      {"500", HttpReply::Status(500, "oops"), 1, true},
      {"connection dropped", HttpReply::Of(HttpReply::Kind::kDrop), 1, true},
      {"429", HttpReply::Status(429, "slow down"), 3, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MisbehavingHttpServer server([&](const HttpRequest&, int) { return c.reply; });
    HranaOptions o = TestOptions(server.url());
    o.max_retries = 2;
    auto client = MustOpen(o);
    Status s = client->Batch(b).status();
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
    EXPECT_EQ(server.requests(), c.expected_requests);
    if (c.says_unknown) {
      EXPECT_THAT(s.message(), HasSubstr("outcome unknown"));
    } else {
      EXPECT_THAT(s.message(), Not(HasSubstr("outcome unknown")));
    }
  }
  // Nothing listens: the batch surely never arrived, so it is retried.
  int closed_port = testing::internal::FreeLoopbackPort();
  HranaOptions o = TestOptions("http://127.0.0.1:" + std::to_string(closed_port));
  o.max_retries = 2;
  auto client = MustOpen(o);
  Status s = client->Batch(b).status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_EQ(client->requests_sent(), 3);
  EXPECT_THAT(s.message(), Not(HasSubstr("outcome unknown")));
  // An Execute is retried after a drop (it is meant for reads and idempotent statements).
  MisbehavingHttpServer dropping([](const HttpRequest&, int n) {
    return n == 0 ? HttpReply::Of(HttpReply::Kind::kDrop) : HttpReply::Json(OneAnswer());
  });
  o.url = dropping.url();
  auto reader = MustOpen(o);
  EXPECT_TRUE(reader->Execute("SELECT 1").ok());
  EXPECT_EQ(dropping.requests(), 2);
}

// The answer to a batch of `n` statements whose step `failed_step` (BEGIN is step 0) failed
// with `message`, or that committed when failed_step < 0.
std::string BatchAnswer(size_t n, int failed_step, const std::string& message) {
  const json empty = {{"cols", json::array()}, {"rows", json::array()}, {"affected_row_count", 0}};
  json results = json::array();
  json errors = json::array();
  for (size_t step = 0; step < n + 3; ++step) {
    const bool is_rollback = step == n + 2;
    const bool ran = failed_step < 0 ? !is_rollback : (static_cast<int>(step) < failed_step || is_rollback);
    results.push_back(ran ? empty : json(nullptr));
    errors.push_back(static_cast<int>(step) == failed_step ? json{{"message", message}, {"code", "BATCH_STEP_ERROR"}}
                                                            : json(nullptr));
  }
  json answer = {{"results", json::array({{{"type", "ok"},
                                           {"response",
                                            {{"type", "batch"},
                                             {"result", {{"step_results", results}, {"step_errors", errors}}}}}}})}};
  return answer.dump();
}

TEST(HranaMisbehavingServerTest, ABatchThatMetABusyDatabaseIsSentAgain) {
  MisbehavingHttpServer server([](const HttpRequest&, int n) {
    return HttpReply::Json(n < 2 ? BatchAnswer(2, 1, "Runtime error: database is locked") : BatchAnswer(2, -1, ""));
  });
  auto client = MustOpen(TestOptions(server.url()));
  HranaBatch b;
  b.Add("INSERT INTO t VALUES (1)");
  b.Add("INSERT INTO t VALUES (2)");
  Result<std::vector<HranaResult>> r = client->Batch(b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 2u);
  EXPECT_EQ(server.requests(), 3);

  // What was sent: BEGIN IMMEDIATE, each statement conditioned on the step before, COMMIT,
  // and a ROLLBACK that runs when COMMIT did not succeed.
  json steps = json::parse(server.received()[0].body)["requests"][0]["batch"]["steps"];
  ASSERT_EQ(steps.size(), 5u);
  EXPECT_EQ(steps[0]["stmt"]["sql"], "BEGIN IMMEDIATE");
  EXPECT_FALSE(steps[0].contains("condition"));
  EXPECT_EQ(steps[1]["condition"], json({{"type", "ok"}, {"step", 0}}));
  EXPECT_EQ(steps[2]["condition"], json({{"type", "ok"}, {"step", 1}}));
  EXPECT_EQ(steps[3]["stmt"]["sql"], "COMMIT");
  EXPECT_EQ(steps[3]["condition"], json({{"type", "ok"}, {"step", 2}}));
  EXPECT_EQ(steps[4]["stmt"]["sql"], "ROLLBACK");
  EXPECT_EQ(steps[4]["condition"], json({{"type", "not"}, {"cond", {{"type", "ok"}, {"step", 3}}}}));

  // Still busy after every retry: kUnavailable, naming the statement.
  MisbehavingHttpServer busy([](const HttpRequest&, int) {
    return HttpReply::Json(BatchAnswer(2, 2, "Runtime error: database is locked"));
  });
  auto c = MustOpen(TestOptions(busy.url()));
  Status s = c->Batch(b).status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("batch statement 1: database is locked"));
  EXPECT_EQ(busy.requests(), 3);  // 1 + max_retries

  // A failed COMMIT is the batch's error; a COMMIT that did not run without any error is
  // not a protocol answer.
  MisbehavingHttpServer commit([](const HttpRequest&, int) {
    return HttpReply::Json(BatchAnswer(2, 3, "Runtime error: disk I/O error"));
  });
  auto cc = MustOpen(TestOptions(commit.url()));
  EXPECT_THAT(cc->Batch(b).status().message(), HasSubstr("batch COMMIT: disk I/O error"));
  MisbehavingHttpServer skipped([](const HttpRequest&, int) {
    json answer = json::parse(BatchAnswer(2, -1, ""));
    answer["results"][0]["response"]["result"]["step_results"][3] = nullptr;
    return HttpReply::Json(answer.dump());
  });
  auto cs = MustOpen(TestOptions(skipped.url()));
  EXPECT_EQ(cs->Batch(b).status().code(), StatusCode::kDataLoss);
}

// Every node of a valid answer replaced, one at a time, by a value of every other JSON
// type: each answer is either still readable or a kDataLoss error, never a crash.
TEST(HranaMisbehavingServerTest, NoWrongTypeAnywhereInAnAnswerCrashesTheClient) {
  const json valid = json::parse(ExecuteAnswer(
      json::array({{{"name", "i"}, {"decltype", "INTEGER"}}, {{"name", "f"}, {"decltype", nullptr}},
                   {{"name", "t"}, {"decltype", "TEXT"}}, {{"name", "b"}, {"decltype", "BLOB"}},
                   {{"name", "n"}, {"decltype", nullptr}}}),
      json::array({json::array({{{"type", "integer"}, {"value", "-5"}},
                                {{"type", "float"}, {"value", 2.5}},
                                {{"type", "text"}, {"value", "x"}},
                                {{"type", "blob"}, {"base64", "AAE"}},
                                {{"type", "null"}}})})));
  std::vector<json::json_pointer> paths;
  const json flat = valid.flatten();  // leaf paths; their parents are added below
  std::set<std::string> seen;
  for (const auto& item : flat.items()) {
    for (json::json_pointer p(item.key()); !p.empty(); p = p.parent_pointer()) {
      if (seen.insert(p.to_string()).second) paths.push_back(p);
    }
  }
  const std::vector<json> replacements = {json(nullptr), json(7), json(-1.5), json("s"), json::array(),
                                          json::object(), json(true)};
  std::mutex mu;
  std::string answer;
  MisbehavingHttpServer server([&](const HttpRequest&, int) {
    std::lock_guard<std::mutex> lock(mu);
    return HttpReply::Json(answer);
  });
  HranaOptions o = TestOptions(server.url());
  o.max_retries = 0;
  auto client = MustOpen(o);
  int readable = 0;
  int refused = 0;
  for (const json::json_pointer& path : paths) {
    for (const json& replacement : replacements) {
      json mutated = valid;
      if (mutated.at(path).type() == replacement.type()) continue;
      mutated.at(path) = replacement;
      {
        std::lock_guard<std::mutex> lock(mu);
        answer = mutated.dump();
      }
      Result<HranaResult> r = client->Execute("SELECT 1");
      if (r.ok()) {
        ++readable;  // e.g. a decltype or an unknown extra field changed
      } else {
        ++refused;
        EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << path.to_string() << " = " << replacement.dump()
                                                             << ": " << r.status();
      }
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(readable, 0);
}

// sqld and Turso Cloud open a stream per pipeline and answer with a baton: from then on
// every pipeline ends with a "close" request, whose result the caller never sees.
TEST(HranaMisbehavingServerTest, StreamsAreClosedOnServersThatOpenThem) {
  MisbehavingHttpServer server([](const HttpRequest& req, int) {
    json request = json::parse(req.body);
    json answer = json::parse(OneAnswer());
    const json& requests = request["requests"];
    const json one_result = answer["results"][0];
    for (size_t i = 1; i < requests.size(); ++i) {
      if (requests[i]["type"] == "execute") answer["results"].push_back(one_result);
    }
    if (!requests.empty() && requests.back()["type"] == "close") {
      answer["results"].push_back({{"type", "ok"}, {"response", {{"type", "close"}}}});
    } else {
      answer["baton"] = "stream-1";
    }
    return HttpReply::Json(answer.dump());
  });
  auto client = MustOpen(TestOptions(server.url()));
  for (int i = 0; i < 3; ++i) {
    Result<HranaResult> r = client->Execute("SELECT 1");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r->Int(0, 0), 1);
  }
  HranaBatch reads;
  reads.Add("SELECT 1");
  reads.Add("SELECT 1");
  Result<std::vector<HranaResult>> many = client->ExecuteMany(reads);
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_EQ(many->size(), 2u);
  std::vector<HttpRequest> seen = server.received();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(json::parse(seen[0].body)["requests"].size(), 1u);  // no baton seen yet
  EXPECT_EQ(json::parse(seen[1].body)["requests"].back()["type"], "close");
  EXPECT_EQ(json::parse(seen[3].body)["requests"].size(), 3u);
}

TEST(HranaMisbehavingServerTest, ASlowServerTimesOut) {
  MisbehavingHttpServer server([](const HttpRequest&, int) { return HttpReply::Of(HttpReply::Kind::kHang); });
  HranaOptions o = TestOptions(server.url());
  o.request_timeout = 300ms;
  o.max_retries = 1;
  auto client = MustOpen(o);
  Status s = client->Execute("SELECT 1").status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("timed out"));
  EXPECT_EQ(client->requests_sent(), 2);  // a timeout is retryable
  HranaBatch b;
  b.Add("INSERT INTO t VALUES (1)");
  Status batch = client->Batch(b).status();
  EXPECT_THAT(batch.message(), HasSubstr("outcome unknown"));
  EXPECT_EQ(client->requests_sent(), 3);  // the request went out: not retried

  // A slow answer within the timeout is fine.
  MisbehavingHttpServer slow([](const HttpRequest&, int) {
    HttpReply r = HttpReply::Json(OneAnswer());
    r.delay = 100ms;
    return r;
  });
  o.url = slow.url();
  o.request_timeout = 5'000ms;
  EXPECT_TRUE(MustOpen(o)->Execute("SELECT 1").ok());
}

TEST(HranaMisbehavingServerTest, TheBreakerOpensAfterConsecutiveFailuresAndProbesLater) {
  std::atomic<bool> healthy{false};
  MisbehavingHttpServer server([&](const HttpRequest&, int) {
    return healthy ? HttpReply::Json(OneAnswer()) : HttpReply::Status(503, "down");
  });
  FakeClock clock;
  HranaOptions o = TestOptions(server.url());
  o.max_retries = 0;
  o.breaker_failure_threshold = 3;
  o.breaker_open_for = 10'000ms;
  auto client = MustOpen(o, clock);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client->Execute("SELECT 1").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(client->breaker_open());
  EXPECT_EQ(server.requests(), 3);

  Status refused = client->Execute("SELECT 1").status();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("circuit open"));
  EXPECT_EQ(server.requests(), 3);  // refused without a request

  healthy = true;
  clock.Advance(10'001ms);
  EXPECT_FALSE(client->breaker_open());
  EXPECT_TRUE(client->Execute("SELECT 1").ok());  // the probe
  EXPECT_EQ(server.requests(), 4);
  EXPECT_FALSE(client->breaker_open());

  // SQL errors prove the server works: they never open the breaker.
  MisbehavingHttpServer sql_errors([](const HttpRequest&, int) {
    return HttpReply::Json(R"({"results": [{"type":"error","error":{"message":"near \"X\": syntax error","code":"PREPARE_ERROR"}}]})");
  });
  o.url = sql_errors.url();
  auto c = MustOpen(o, clock);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c->Execute("X").status().code(), StatusCode::kInternal);
  EXPECT_FALSE(c->breaker_open());
}

TEST(HranaMisbehavingServerTest, ThePoolBoundsRequestsInFlightAndReusesConnections) {
  MisbehavingHttpServer server([](const HttpRequest&, int) {
    HttpReply r = HttpReply::Json(OneAnswer());
    r.delay = 20ms;
    return r;
  });
  HranaOptions o = TestOptions(server.url());
  o.pool_size = 2;
  auto client = MustOpen(o);
  constexpr int kThreads = 8;
  constexpr int kEach = 5;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < kEach; ++k) ok += client->Execute("SELECT 1").ok() ? 1 : 0;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  EXPECT_EQ(server.requests(), kThreads * kEach);
  EXPECT_LE(server.max_in_flight(), 2);
  // Kept-alive handles: never more connections than handles.
  EXPECT_LE(server.connections(), 2);

  MisbehavingHttpServer sequential([](const HttpRequest&, int) { return HttpReply::Json(OneAnswer()); });
  o.url = sequential.url();
  auto one = MustOpen(o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(one->Execute("SELECT 1").ok());
  EXPECT_EQ(sequential.connections(), 1);
}

// ---- A tursodb of its own, killed and restarted -----------------------------------------

TEST(HranaRestartTest, CallsFailWhileTheServerIsDownAndNothingAcknowledgedIsLost) {
  testing::TempDir dir;
  Result<std::unique_ptr<testing::TursoServer>> started = testing::TursoServer::Start(dir.File("restart.db"));
  ASSERT_TRUE(started.ok()) << started.status();
  testing::TursoServer& server = **started;
  HranaOptions o = TestOptions(server.url());
  o.max_retries = 1;
  o.backoff = 5ms;
  o.connect_timeout = 500ms;
  o.request_timeout = 5'000ms;
  auto client = MustOpen(o);
  ASSERT_TRUE(client->Execute("CREATE TABLE acked(id INTEGER PRIMARY KEY, payload TEXT)").ok());

  // A writer keeps writing through a kill -9 and a restart; it remembers what was acknowledged.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::set<int64_t> acknowledged;
  std::set<StatusCode> failure_codes;
  std::thread writer([&] {
    for (int64_t id = 1; !stop; ++id) {
      HranaBatch b;
      b.Add("INSERT INTO acked(id, payload) VALUES (?, ?)", {HranaValue::Int(id), HranaValue::Text("p")});
      Result<std::vector<HranaResult>> r = client->Batch(b);
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok()) {
        acknowledged.insert(id);
      } else {
        ++failures;
        failure_codes.insert(r.status().code());
      }
    }
  });
  auto acked = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  };
  // Waits (at most a minute, so a broken server fails the test instead of hanging it).
  auto wait_for = [](const std::function<bool()>& done) {
    for (auto deadline = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < deadline;) {
      if (done()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  };
  auto finish = [&] {
    stop = true;
    writer.join();
  };
  if (!wait_for([&] { return acked() >= 20; }) || !server.Kill().ok()) {
    finish();
    FAIL() << "no writes acknowledged before the kill";
  }

  // While it is down: a clear, retryable error.
  Status down = client->Execute("SELECT count(*) FROM acked").status();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down;
  EXPECT_THAT(down.message(), HasSubstr(server.url()));
  const bool writer_failed = wait_for([&] { return failures.load() >= 3; });

  Status restarted = server.Restart();
  const size_t before_restart = acked();
  const bool writes_resumed = restarted.ok() && wait_for([&] { return acked() >= before_restart + 20; });
  finish();
  EXPECT_TRUE(writer_failed) << "the writer saw no failures while the server was down";
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(writes_resumed) << "writes did not succeed again after the restart";

  {
    std::lock_guard<std::mutex> lock(mu);
    for (StatusCode code : failure_codes) EXPECT_EQ(code, StatusCode::kUnavailable);
  }
  Result<HranaResult> rows = client->Execute("SELECT id FROM acked ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::set<int64_t> stored;
  for (size_t i = 0; i < rows->rows.size(); ++i) stored.insert(*rows->Int(i, 0));
  for (int64_t id : acknowledged) EXPECT_TRUE(stored.count(id)) << "acknowledged row " << id << " was lost";
}

}  // namespace
}  // namespace engram::turso
