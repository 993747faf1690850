// Baseline retrieval of past episodes for query_memory and the recall prompt (DESIGN §4):
// an honest, simple ranking that needs no index and no embeddings. It scans the most
// recent completed episodes (newest first, at most RetrievalQuery::max_scan of them),
// scores each one and returns the best.
//
//   RetrievalQuery q;
//   q.text = "flaky async test in the web api";
//   q.domain = "web-api";
//   ENGRAM_ASSIGN_OR_RETURN(std::vector<ScoredEpisode> hits, RetrieveEpisodes(store, q, clock));
//
// score = kLexicalWeight · lexical + kRewardWeight · reward + kRecencyWeight · recency
//       + kContextWeight · context, every part in [0, 1], so score is in [0, 1]:
//   lexical  BM25 (k1 = kBm25K1, b = kBm25B) of the query's words against each episode's
//            text, with document frequencies taken over the scanned episodes, divided by
//            the score a document would reach if it matched every query word to
//            saturation (Σ idf · (k1 + 1)); so 1 means "every query word, many times".
//            The text is the task description (counted kTaskDescriptionBoost times), the
//            outcome's verdict, reason and error details, the reflection, the steps'
//            tools, actions and messages, and the context's language, framework and tags.
//   reward   reward.total / kMaxRewardTotal, clamped to [0, 1] (3.2 is the largest total
//            the reward formula can give; see core/reward.h).
//   recency  0.5 ^ (age / kRecencyHalfLife), age measured from the episode's end time
//            (its start time if it has none) to clock.Now(), never negative.
//   context  kDomainMatchShare when the query names a domain and the episode's domain is
//            the same, plus kTaskTypeMatchShare when it names a task type that matches,
//            divided by the shares the query could have earned (0 when it names neither).
// Words are maximal runs of ASCII letters and digits (bytes ≥ 0x80 join words, so other
// scripts stay whole), lower-cased; one-letter words and common English stop words are
// dropped, and a plural "s" is stripped ("tests" → "test").
//
// Candidates: when the query has at least one word, only episodes sharing a word with it
// (lexical > 0) are returned; a query with no words ranks every scanned episode by the
// other parts. Ties go to the more recent episode. The domain is a signal, not a filter,
// unless domain_filter is set.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/storage.h"
#include "engram/types.h"

namespace engram {

// Weights of the blended score; they sum to 1.
inline constexpr double kLexicalWeight = 0.50;
inline constexpr double kContextWeight = 0.20;
inline constexpr double kRewardWeight = 0.15;
inline constexpr double kRecencyWeight = 0.15;

// Parts of the context score: the domain is the strong signal.
inline constexpr double kDomainMatchShare = 0.75;
inline constexpr double kTaskTypeMatchShare = 0.25;

inline constexpr double kBm25K1 = 1.2;
inline constexpr double kBm25B = 0.75;
inline constexpr int kTaskDescriptionBoost = 2;
inline constexpr double kMaxRewardTotal = 3.2;
inline constexpr std::chrono::hours kRecencyHalfLife{24 * 30};  // 30 days

inline constexpr size_t kDefaultRetrievalLimit = 10;
inline constexpr size_t kDefaultRetrievalScan = 5'000;
// max_tokens counts about this many characters of returned text per token.
inline constexpr size_t kCharsPerToken = 4;

struct RetrievalQuery {
  std::string text{};                     // what the caller is about to do or wants to know
  std::optional<std::string> domain{};    // boosts episodes of this domain
  std::optional<TaskType> task_type{};    // boosts episodes of this task type
  bool domain_filter = false;             // true: only episodes of `domain` (needs domain)
  size_t limit = kDefaultRetrievalLimit;  // 1..kMaxQueryLimit
  // Token budget for the returned text (see EstimateTokens): episodes are taken in rank
  // order until the next one would not fit; that one and every later one are left out.
  std::optional<size_t> max_tokens{};
  // How many of the most recent completed episodes are scanned. A larger scan finds
  // older episodes at a cost linear in the scan. Must be ≥ 1.
  size_t max_scan = kDefaultRetrievalScan;
  // Domains the caller may see; empty means every domain. Others are skipped unseen.
  std::vector<std::string> allowed_domains{};
  // Polled between episodes; returning true ends the scan with kCancelled. May be empty.
  std::function<bool()> cancelled{};
};

struct ScoredEpisode {
  // The episode as stored, except that its steps carry no output and no parameters
  // (dropped during the scan to bound memory); GetEpisode has the full episode.
  Episode episode;
  double score = 0;  // the blend, in [0, 1]
  double lexical = 0;
  double reward = 0;
  double recency = 0;
  double context = 0;
  size_t tokens = 0;  // EstimateTokens(episode)
};

// Returns at most `query.limit` completed episodes ranked by `score`, best first, as
// described at the top of this file. An empty store, or one with nothing matching,
// yields an empty vector, not an error.
// Errors: kInvalidArgument (limit outside 1..kMaxQueryLimit, max_scan or max_tokens of
// 0, domain_filter without a domain); kCancelled when `query.cancelled` says so;
// storage errors unchanged.
// Thread-safe (as `storage` and `clock` are).
Result<std::vector<ScoredEpisode>> RetrieveEpisodes(StorageBackend& storage, const RetrievalQuery& query,
                                                    Clock& clock);

// The words of `text` as retrieval sees them (see the top of this file).
std::vector<std::string> RetrievalTokens(std::string_view text);

// Approximate tokens of the text query_memory returns for `episode`: its task
// description, outcome verdict or reason, and reflection, plus a fixed allowance for ids
// and numbers, at kCharsPerToken characters per token.
size_t EstimateTokens(const Episode& episode);

}  // namespace engram
