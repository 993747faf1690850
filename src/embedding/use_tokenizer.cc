#include "embedding/use_tokenizer.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

namespace engram::embedding {
namespace {

constexpr char32_t kSeparator = 0x2581;  // "▁"
constexpr size_t kReservedSymbols = 6;   // ids 0..5 (unknown, <s>, </s>, extras) are not in the trie

// UTF-8 → UTF-16 (invalid sequences become U+FFFD), as ICU wants it.
std::u16string ToUtf16(std::string_view text) {
  std::u16string out;
  if (text.empty()) return out;
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = 0;
  u_strFromUTF8WithSub(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), 0xFFFD, nullptr,
                       &status);
  status = U_ZERO_ERROR;
  out.resize(static_cast<size_t>(length));
  u_strFromUTF8WithSub(out.data(), length, &length, text.data(), static_cast<int32_t>(text.size()), 0xFFFD,
                       nullptr, &status);
  if (U_FAILURE(status)) out.clear();
  return out;
}

// NFKC of `text`, as JavaScript's String.prototype.normalize("NFKC") (V8 uses ICU too).
// On an ICU failure the text is used as it is.
std::u16string Nfkc(const std::u16string& text) {
  if (text.empty()) return text;
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* nfkc = unorm2_getNFKCInstance(&status);
  if (U_FAILURE(status)) return text;
  int32_t length = unorm2_normalize(nfkc, reinterpret_cast<const UChar*>(text.data()),
                                    static_cast<int32_t>(text.size()), nullptr, 0, &status);
  if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) return text;
  status = U_ZERO_ERROR;
  std::u16string out(static_cast<size_t>(length), u'\0');
  unorm2_normalize(nfkc, reinterpret_cast<const UChar*>(text.data()), static_cast<int32_t>(text.size()),
                   reinterpret_cast<UChar*>(out.data()), length, &status);
  if (U_FAILURE(status)) return text;
  return out;
}

// The code points of `s` (as `for (const symbol of s)` iterates a JS string).
std::vector<char32_t> CodePoints(const std::u16string& s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  int32_t i = 0;
  const auto n = static_cast<int32_t>(s.size());
  while (i < n) {
    UChar32 c;
    U16_NEXT(s.data(), i, n, c);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

}  // namespace

int32_t UseTokenizer::Child(int32_t node, char32_t c) const {
  const auto& children = nodes_[static_cast<size_t>(node)].children;
  auto it = std::lower_bound(children.begin(), children.end(), c,
                             [](const std::pair<char32_t, int32_t>& p, char32_t v) { return p.first < v; });
  return it != children.end() && it->first == c ? it->second : -1;
}

int32_t UseTokenizer::AddChild(int32_t node, char32_t c) {
  int32_t existing = Child(node, c);
  if (existing >= 0) return existing;
  const auto id = static_cast<int32_t>(nodes_.size());
  nodes_.emplace_back();
  auto& children = nodes_[static_cast<size_t>(node)].children;
  auto it = std::lower_bound(children.begin(), children.end(), c,
                             [](const std::pair<char32_t, int32_t>& p, char32_t v) { return p.first < v; });
  children.insert(it, {c, id});
  return id;
}

Result<std::unique_ptr<UseTokenizer>> UseTokenizer::FromJson(std::string_view vocab_json) {
  nlohmann::json vocab = nlohmann::json::parse(vocab_json, nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_array() || vocab.size() <= kReservedSymbols) {
    return DataLossError("USE vocabulary: not a JSON array of [piece, score] pairs");
  }
  std::unique_ptr<UseTokenizer> t(new UseTokenizer());
  t->nodes_.emplace_back();
  t->piece_lengths_.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const nlohmann::json& entry = vocab[i];
    if (!entry.is_array() || entry.size() < 2 || !entry[0].is_string() ||
        !(entry[1].is_number() || entry[1].is_null())) {
      return DataLossError("USE vocabulary: entry " + std::to_string(i) + " is not a [piece, score] pair");
    }
    const std::u16string piece = ToUtf16(entry[0].get_ref<const std::string&>());
    t->piece_lengths_.push_back(static_cast<int32_t>(piece.size()));
    if (i < kReservedSymbols) continue;
    const std::vector<char32_t> symbols = CodePoints(piece);
    if (symbols.empty()) continue;
    int32_t node = 0;
    for (char32_t c : symbols) node = t->AddChild(node, c);
    TrieNode& end = t->nodes_[static_cast<size_t>(node)];
    // A later duplicate piece replaces an earlier one, as in the JS trie; null counts as 0.
    end.end = true;
    end.score = entry[1].is_number() ? entry[1].get<double>() : 0.0;
    end.id = static_cast<int32_t>(i);
  }
  if (t->piece_lengths_[0] <= 0) return DataLossError("USE vocabulary: the unknown piece (id 0) is empty");
  return t;
}

std::vector<int32_t> UseTokenizer::Encode(std::string_view text) const {
  std::u16string normalized = Nfkc(ToUtf16(text));
  if (normalized.empty()) return {};
  std::vector<char32_t> symbols;
  symbols.reserve(normalized.size() + 1);
  symbols.push_back(kSeparator);
  for (char32_t c : CodePoints(normalized)) symbols.push_back(c == U' ' ? kSeparator : c);
  const size_t n = symbols.size();

  // Edges by end position, each list ordered by start (ascending): the order the JS
  // visits them in (integer object keys iterate ascending; one piece per start/end pair).
  struct Edge {
    size_t start;
    double score;
    int32_t id;
  };
  std::vector<std::vector<Edge>> ending(n + 1);
  for (size_t i = 0; i < n; ++i) {
    bool matched = false;
    int32_t node = Child(0, symbols[i]);
    for (size_t j = i; j < n && node >= 0;) {
      const TrieNode& t = nodes_[static_cast<size_t>(node)];
      if (t.end) {
        ending[j + 1].push_back(Edge{i, t.score, t.id});
        matched = true;
      }
      ++j;
      node = j < n ? Child(node, symbols[j]) : -1;
    }
    if (!matched) ending[i + 1].push_back(Edge{i, 0.0, 0});
  }
  for (auto& edges : ending) {
    std::stable_sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.start < b.start; });
  }

  std::vector<double> best(n + 1, 0.0);
  std::vector<int32_t> words(n + 1, 0);
  for (size_t end = 0; end <= n; ++end) {
    for (const Edge& e : ending[end]) {
      const double score = e.score + best[e.start];
      if (best[end] == 0 || score >= best[end]) {
        best[end] = score;
        words[end] = e.id;
      }
    }
  }

  std::vector<int32_t> reversed;
  for (int64_t at = static_cast<int64_t>(n); at > 0;) {
    const int32_t id = words[static_cast<size_t>(at)];
    reversed.push_back(id);
    at -= piece_lengths_[static_cast<size_t>(id)];
  }
  std::vector<int32_t> merged;
  merged.reserve(reversed.size());
  bool previous_unknown = false;
  for (int32_t id : reversed) {
    if (!(previous_unknown && id == 0)) merged.push_back(id);
    previous_unknown = id == 0;
  }
  std::reverse(merged.begin(), merged.end());
  return merged;
}

}  // namespace engram::embedding
