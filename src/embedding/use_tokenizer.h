// The SentencePiece-style tokenizer of the Universal Sentence Encoder lite model, ported
// from @energetic-ai/embeddings 0.2.0 (dist/index.js: Tokenizer, Trie), which is how the
// model's reference implementation turns text into the token ids the graph embeds.
//
// Encode(text):
//   1. NFKC-normalise the text (ICU), then prefix it with "▁" (U+2581) and replace every
//      space with "▁" (an empty text stays empty and has no tokens).
//   2. Viterbi over the code points: at each position, every vocabulary piece that
//      starts there (found with a trie) is a candidate edge of score = its log probability;
//      a position no piece starts at gets the unknown piece (id 0, score 0, one code
//      point). best[end] is replaced by an edge's score + best[start] when best[end] is
//      still 0 or the new score is >= it, visiting ends in order, then starts in order.
//   3. Walk back from the end, then merge runs of unknown pieces into one.
// The JS quirks are kept on purpose (a null score counts as 0; ">=" lets the later
// edge win ties; best == 0 counts as unset), since the model was run with them.
//
// Thread-safe after construction (Encode is const).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"

namespace engram::embedding {

class UseTokenizer {
 public:
  // `vocab_json` is the text of the model's vocab.json: an array of [piece, score] pairs
  // (score a number or null). Errors: kDataLoss (not such an array).
  static Result<std::unique_ptr<UseTokenizer>> FromJson(std::string_view vocab_json);

  UseTokenizer(const UseTokenizer&) = delete;
  UseTokenizer& operator=(const UseTokenizer&) = delete;

  // The token ids of `text` (UTF-8; invalid sequences read as U+FFFD). Empty for "".
  std::vector<int32_t> Encode(std::string_view text) const;

  size_t vocabulary_size() const { return piece_lengths_.size(); }

 private:
  UseTokenizer() = default;

  struct TrieNode {
    // Children sorted by code point (binary search); a few per node on average.
    std::vector<std::pair<char32_t, int32_t>> children;
    bool end = false;
    double score = 0;
    int32_t id = 0;
  };
  int32_t Child(int32_t node, char32_t c) const;
  int32_t AddChild(int32_t node, char32_t c);

  std::vector<TrieNode> nodes_;        // nodes_[0] is the root
  std::vector<int32_t> piece_lengths_;  // UTF-16 length of each vocabulary piece
};

}  // namespace engram::embedding
