#include "model/search_text.h"

#include <string>

#include <gtest/gtest.h>

namespace engram {
namespace {

std::string Joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

TEST(SearchTextTest, WordsAreLowerCasedStoppedAndStemmed) {
  EXPECT_EQ(Joined(SearchTokens("The Tests of these QUERIES: deploying, failed; a x9 class")),
            "test query deploy fail x9 class");
  EXPECT_EQ(Joined(SearchTokens("there which where these them")), "them");  // 5-letter stop words
  EXPECT_EQ(Joined(SearchTokens("Ünïcode café")), "Ünïcode café");         // other scripts stay whole
}

// BuildSearchDocument and the word-by-word walk scoring uses must agree word for word,
// caps included.
TEST(SearchTextTest, TheWordWalkIsTheSearchDocument) {
  Episode e;
  e.task_description = "Fix the flaky websocket reconnections";
  e.context.language = "TypeScript";
  e.tags = {"e2e", "ci"};
  Step small;
  small.tool = "bash";
  small.action = "npm test -- --runInBand";
  small.result = StepResult{};
  small.result->message = "3 failed";
  small.result->output = std::string(kIndexedOutputBytes, 'a') + " beyond the output cap";
  e.steps.push_back(small);
  // Enough words to pass the body cap: the walk must stop where the document does.
  for (int i = 0; i < 2'000; ++i) {
    Step s;
    s.tool = "tool" + std::to_string(i);
    s.action = "ran step number " + std::to_string(i) + " of the long migration";
    e.steps.push_back(s);
  }
  Outcome o;
  o.verdict = "Reconnect with a heartbeat";
  o.reason = "proxies drop idle sockets";
  e.outcome = o;

  const SearchDocument doc = BuildSearchDocument(e);
  std::string title, body;
  ForEachSearchDocumentWord(
      e, [&](const std::string& w) { title += (title.empty() ? "" : " ") + w; },
      [&](const std::string& w) { body += (body.empty() ? "" : " ") + w; });
  EXPECT_EQ(title, doc.title);
  EXPECT_EQ(title, "fix flaky websocket reconnection");
  EXPECT_EQ(body, doc.body);
  EXPECT_LE(body.size(), kIndexedBodyBytes);
  EXPECT_GT(body.size(), kIndexedBodyBytes - 64);
  EXPECT_EQ(body.find("beyond"), std::string::npos) << "output past kIndexedOutputBytes is not indexed";
  EXPECT_EQ(body.rfind("reconnect heartbeat proxy drop idle socket", 0), 0u) << "the outcome comes first";
}

}  // namespace
}  // namespace engram
