// The hashing embedding provider (DESIGN §4): signed feature hashing, no model, no
// network.
//
// Features of a text, from its search words (model/search_text.h, so the vector sees the
// words the full-text index sees):
//   unigram   each word                         weight unigram_weight,    idf(word)
//   bigram    each pair of consecutive words    weight bigram_weight,     mean idf of the two
//   char      each n-gram (char_ngram_min..max code points) of "<word>", boundaries marked:
//             "test" → "<te" "tes" "est" "st>" "<tes" "test" "est>"
//                                               weight char_ngram_weight, idf(word)
// A feature's value is weight × (1 + ln tf) × idf, where idf is the mean over the feature's
// occurrences; it lands in bucket ((h mod 2^32) × dimension) / 2^32 with the sign of bit
// 63 of its 64-bit hash h (hash.h). The vector is then L2-normalised.
//
// IDF = ln((N + 1) / (df + 1)) + 1 from StorageBackend::GetTermStats, cached per word.
// The cache starts over when it is older than idf_refresh, or when a read of words it
// lacks shows the store has gained (or lost) idf_refresh_documents documents since it
// started; a text whose words are all cached costs no store access.
//
// Determinism: features are summed in the order they first occur, in double precision,
// so the same words and the same document frequencies give the same bits every time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "embedding/hash.h"
#include "embedding/provider_common.h"
#include "engram/embedding.h"
#include "model/search_text.h"

namespace engram {
namespace {

using embedding::Hash64;
using embedding::HashCombine;

constexpr uint64_t kUnigramSeed = 0x7531'6e69'6772'616dULL;
constexpr uint64_t kCharSeed = 0x6368'6172'6e67'726dULL;
constexpr uint64_t kBigramSalt = 0x6269'6772'616d'0002ULL;

// GetTermStats is asked about at most this many words per call (SQL parameter limits).
constexpr size_t kTermStatsChunk = 500;
// The word → df cache starts over beyond this many words (a bound on memory).
constexpr size_t kMaxCachedWords = 200'000;

// ---- per-thread scratch: the features of one text -------------------------------------

enum class FeatureKind : uint8_t { kUnigram, kBigram, kChar };

struct Feature {
  uint64_t hash;
  double idf_sum;   // Σ idf over the occurrences
  uint32_t count;   // tf
  uint32_t word;    // unigrams: the index of the word's first occurrence
  FeatureKind kind;
};

// Features in first-occurrence order (a dense array, summed in that order: the result
// does not depend on the index's size), found through an open-addressing index of
// 8-byte slots: the high half of the feature's hash as a tag, and its position + 1.
// Not thread-safe: one per thread.
class FeatureTable {
 public:
  void Reset(size_t expected) {
    features_.clear();
    size_t want = 1024;
    while (want < expected * 2) want <<= 1;
    if (index_.size() != want) {
      index_.assign(want, 0);
    } else {
      std::fill(index_.begin(), index_.end(), 0);
    }
  }

  // Adds `count` occurrences of feature `hash`; returns its position.
  uint32_t Add(uint64_t hash, FeatureKind kind, uint32_t count, double idf, uint32_t word = 0) {
    if ((features_.size() + 1) * 2 > index_.size()) Grow();
    const size_t mask = index_.size() - 1;
    const uint64_t tag = hash >> 32;
    for (size_t i = static_cast<size_t>(hash) & mask;; i = (i + 1) & mask) {
      const uint64_t slot = index_[i];
      if (slot == 0) {
        const auto at = static_cast<uint32_t>(features_.size());
        features_.push_back(Feature{hash, idf * count, count, word, kind});
        index_[i] = (tag << 32) | (at + 1);
        return at;
      }
      if ((slot >> 32) == tag) {
        Feature& f = features_[static_cast<uint32_t>(slot) - 1];
        if (f.hash == hash) {
          f.count += count;
          f.idf_sum += idf * count;
          return static_cast<uint32_t>(slot) - 1;
        }
      }
    }
  }

  const std::vector<Feature>& features() const { return features_; }

 private:
  void Grow() {
    index_.assign(index_.size() * 2, 0);
    const size_t mask = index_.size() - 1;
    for (size_t at = 0; at < features_.size(); ++at) {
      size_t i = static_cast<size_t>(features_[at].hash) & mask;
      while (index_[i] != 0) i = (i + 1) & mask;
      index_[i] = ((features_[at].hash >> 32) << 32) | (at + 1);
    }
  }

  std::vector<Feature> features_;
  std::vector<uint64_t> index_;  // 0: empty
};

// 1 + ln(tf), from a table for the small counts nearly every feature has (a log per
// feature would be a large part of the cost of a vector).
double SublinearTf(uint32_t tf) {
  static const std::vector<double> table = [] {
    std::vector<double> t(256);
    for (size_t i = 1; i < t.size(); ++i) t[i] = 1.0 + std::log(static_cast<double>(i));
    return t;
  }();
  return tf < table.size() ? table[tf] : 1.0 + std::log(static_cast<double>(tf));
}

// Byte offsets of the code points of `s` (and s.size() at the end).
void CodePointOffsets(std::string_view s, std::vector<uint32_t>& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(static_cast<uint32_t>(i));
  }
  out.push_back(static_cast<uint32_t>(s.size()));
}

Status ValidateOptions(const HashingOptions& o) {
  auto bad = [](const std::string& what) { return InvalidArgumentError("hashing embedding options: " + what); };
  if (o.dimension < 16 || o.dimension > 4096) {
    return bad("dimension must be in 16..4096, got " + std::to_string(o.dimension));
  }
  if (o.char_ngram_min < 1 || o.char_ngram_min > 16) {
    return bad("char_ngram_min must be in 1..16, got " + std::to_string(o.char_ngram_min));
  }
  if (o.char_ngram_max < o.char_ngram_min || o.char_ngram_max > 16) {
    return bad("char_ngram_max must be in char_ngram_min.." + std::string("16, got ") +
               std::to_string(o.char_ngram_max));
  }
  for (auto [name, w] : {std::pair<const char*, double>{"unigram_weight", o.unigram_weight},
                         {"bigram_weight", o.bigram_weight},
                         {"char_ngram_weight", o.char_ngram_weight}}) {
    if (!std::isfinite(w) || w < 0) return bad(std::string(name) + " must be finite and >= 0");
  }
  if (o.unigram_weight + o.bigram_weight + o.char_ngram_weight <= 0) {
    return bad("at least one of unigram_weight, bigram_weight, char_ngram_weight must be > 0");
  }
  if (o.idf_refresh_documents < 1) {
    return bad("idf_refresh_documents must be >= 1, got " + std::to_string(o.idf_refresh_documents));
  }
  if (o.idf_refresh.count() < 1) {
    return bad("idf_refresh must be >= 1s, got " + std::to_string(o.idf_refresh.count()) + "s");
  }
  return OkStatus();
}

// The search words of one text, their unigram hashes and their idf.
struct TextWords {
  std::vector<std::string> words;
  std::vector<uint64_t> hashes;  // Hash64(words[i], kUnigramSeed)
  std::vector<double> idf;
};

// Hashes the words of one text into `out` (dimension floats, overwritten).
void EmbedWords(const HashingOptions& o, const TextWords& text, std::span<float> out) {
  const std::vector<std::string>& words = text.words;
  const std::vector<double>& idf = text.idf;
  std::fill(out.begin(), out.end(), 0.0f);
  if (words.empty()) return;

  thread_local FeatureTable table;
  thread_local std::vector<double> sums;
  thread_local std::vector<uint32_t> offsets;
  thread_local std::vector<uint32_t> distinct;  // positions of the unigram features
  thread_local std::string marked;

  const bool char_grams = o.char_ngram_weight > 0;
  table.Reset(words.size() * (char_grams ? 8 : 2) + 64);
  distinct.clear();

  // Unigrams (also the distinct words, for their n-grams) and bigrams.
  uint64_t prev = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    const uint64_t h = text.hashes[i];
    const size_t before = table.features().size();
    const uint32_t at = table.Add(h, FeatureKind::kUnigram, 1, idf[i], static_cast<uint32_t>(i));
    if (table.features().size() != before) distinct.push_back(at);
    if (i > 0 && o.bigram_weight > 0) {
      table.Add(HashCombine(prev, h ^ kBigramSalt), FeatureKind::kBigram, 1, (idf[i - 1] + idf[i]) / 2);
    }
    prev = h;
  }

  // Character n-grams, once per distinct word, counted as often as the word occurs.
  if (char_grams) {
    for (uint32_t at : distinct) {
      const uint32_t index = table.features()[at].word;
      const uint32_t tf = table.features()[at].count;
      marked.clear();
      marked.push_back('<');
      marked += words[index];
      marked.push_back('>');
      CodePointOffsets(marked, offsets);
      const size_t points = offsets.size() - 1;
      for (int n = o.char_ngram_min; n <= o.char_ngram_max; ++n) {
        for (size_t start = 0; start + static_cast<size_t>(n) <= points; ++start) {
          std::string_view gram(marked.data() + offsets[start], offsets[start + n] - offsets[start]);
          table.Add(Hash64(gram, kCharSeed), FeatureKind::kChar, tf, idf[index]);
        }
      }
    }
  }

  const double weights[] = {o.unigram_weight, o.bigram_weight, o.char_ngram_weight};
  const uint64_t dim = static_cast<uint64_t>(o.dimension);
  sums.assign(static_cast<size_t>(o.dimension), 0.0);
  for (const Feature& f : table.features()) {
    const double weight = weights[static_cast<int>(f.kind)];
    if (weight <= 0) continue;  // e.g. a word kept only for its n-grams
    const double value = weight * SublinearTf(f.count) * (f.idf_sum / f.count);
    const size_t bucket = static_cast<size_t>(((f.hash & 0xffffffffULL) * dim) >> 32);
    sums[bucket] += (f.hash >> 63) != 0 ? -value : value;
  }
  double norm = 0;
  for (double v : sums) norm += v * v;
  if (norm <= 0) return;
  const double inv = 1.0 / std::sqrt(norm);
  for (size_t i = 0; i < sums.size(); ++i) out[i] = static_cast<float>(sums[i] * inv);
}

// Thread-safe.
class HashingProvider final : public EmbeddingProvider {
 public:
  HashingProvider(const HashingOptions& options, StorageBackend* idf_source)
      : options_(options), idf_source_(idf_source) {}

  // EmbeddingProvider
  EmbeddingSpace Space() const override { return EmbeddingSpace{"hashing", "hash-v1", options_.dimension}; }

  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose) override {
    std::vector<TextWords> words(texts.size());
    for (size_t t = 0; t < texts.size(); ++t) {
      ForEachSearchToken(texts[t], [&](const std::string& w) {
        words[t].words.push_back(w);
        words[t].hashes.push_back(Hash64(w, kUnigramSeed));
      });
    }
    Status s = FillIdf(words);
    if (!s.ok()) {
      MutexLock lock(mu_);
      ++failures_;
      last_error_ = std::string(s.message());
      return s;
    }
    std::vector<std::vector<float>> out(texts.size());
    for (size_t t = 0; t < texts.size(); ++t) {
      out[t].resize(static_cast<size_t>(options_.dimension));
      EmbedWords(options_, words[t], out[t]);
    }
    MutexLock lock(mu_);
    requests_ += static_cast<int64_t>(texts.size());
    return out;
  }

  // requests: texts embedded; failures: term statistics that could not be read;
  // cache_hits / cache_misses: words whose document frequency was / was not cached.
  EmbeddingHealth Health() const override {
    MutexLock lock(mu_);
    EmbeddingHealth h;
    h.requests = requests_;
    h.failures = failures_;
    h.cache_hits = cache_hits_;
    h.cache_misses = cache_misses_;
    h.last_error = last_error_;
    return h;
  }

 private:
  // Sets the idf of every word from the store's document frequencies.
  Status FillIdf(std::vector<TextWords>& texts) {
    for (TextWords& t : texts) t.idf.assign(t.words.size(), 1.0);
    if (idf_source_ == nullptr) return OkStatus();

    // The distinct words of the call, by unigram hash: (text, word) of the first
    // occurrence, and each word's distinct id. An open-addressing table, not a node-based
    // map: this runs for every text embedded.
    size_t total = 0;
    for (const TextWords& t : texts) total += t.words.size();
    size_t capacity = 16;
    while (capacity < total * 2) capacity <<= 1;
    std::vector<std::pair<uint64_t, uint32_t>> slots(capacity, {0, 0});  // (hash, id + 1)
    std::vector<std::pair<uint32_t, uint32_t>> distinct;
    std::vector<std::vector<uint32_t>> ids(texts.size());
    for (size_t t = 0; t < texts.size(); ++t) {
      ids[t].resize(texts[t].words.size());
      for (size_t i = 0; i < texts[t].words.size(); ++i) {
        const uint64_t h = texts[t].hashes[i];
        size_t k = static_cast<size_t>(h) & (capacity - 1);
        while (slots[k].second != 0 && slots[k].first != h) k = (k + 1) & (capacity - 1);
        if (slots[k].second == 0) {
          slots[k] = {h, static_cast<uint32_t>(distinct.size() + 1)};
          distinct.emplace_back(static_cast<uint32_t>(t), static_cast<uint32_t>(i));
        }
        ids[t][i] = slots[k].second - 1;
      }
    }
    if (distinct.empty()) return OkStatus();
    auto hash_of = [&](size_t d) { return texts[distinct[d].first].hashes[distinct[d].second]; };
    auto word_of = [&](size_t d) -> const std::string& { return texts[distinct[d].first].words[distinct[d].second]; };
    std::vector<int64_t> df(distinct.size(), 0);
    std::vector<double> idf(distinct.size(), 1.0);

    // Two passes at most: when the store has grown by idf_refresh_documents since the
    // cached frequencies were read, they are dropped and every word is read again.
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<size_t> missing;  // indexes into distinct
      {
        MutexLock lock(mu_);
        const auto now = std::chrono::steady_clock::now();
        if (df_.size() > kMaxCachedWords || (have_documents_ && now - loaded_at_ >= options_.idf_refresh)) {
          df_.clear();
          have_documents_ = false;
        }
        for (size_t d = 0; d < distinct.size(); ++d) {
          auto it = df_.find(hash_of(d));
          if (it == df_.end()) {
            missing.push_back(d);
          } else {
            df[d] = it->second;
          }
        }
        if (pass == 0) {
          cache_misses_ += static_cast<int64_t>(missing.size());
          cache_hits_ += static_cast<int64_t>(distinct.size() - missing.size());
        }
        if (missing.empty()) {
          for (size_t d = 0; d < distinct.size(); ++d) idf[d] = IdfLocked(df[d]);
          break;
        }
      }

      TermStats stats;
      std::vector<std::string> chunk;
      for (size_t begin = 0; begin < missing.size(); begin += kTermStatsChunk) {
        const size_t end = std::min(missing.size(), begin + kTermStatsChunk);
        chunk.clear();
        for (size_t k = begin; k < end; ++k) chunk.push_back(word_of(missing[k]));
        Result<TermStats> part = idf_source_->GetTermStats(chunk);
        if (!part.ok()) return part.status().WithContext("hashing embedding: reading term statistics");
        if (part->doc_frequency.size() != chunk.size()) {
          return InternalError("hashing embedding: GetTermStats answered " +
                               std::to_string(part->doc_frequency.size()) + " frequencies for " +
                               std::to_string(chunk.size()) + " words");
        }
        stats.documents = part->documents;
        stats.doc_frequency.insert(stats.doc_frequency.end(), part->doc_frequency.begin(), part->doc_frequency.end());
      }

      MutexLock lock(mu_);
      const bool stale =
          have_documents_ && std::llabs(stats.documents - documents_) >= options_.idf_refresh_documents;
      if (stale && pass == 0) {
        df_.clear();
        have_documents_ = false;
      }
      if (!have_documents_) {
        documents_ = stats.documents;
        loaded_at_ = std::chrono::steady_clock::now();
        have_documents_ = true;
      }
      if (stale && pass == 0) continue;
      for (size_t k = 0; k < missing.size(); ++k) {
        df[missing[k]] = stats.doc_frequency[k];
        df_[hash_of(missing[k])] = stats.doc_frequency[k];
      }
      for (size_t d = 0; d < distinct.size(); ++d) idf[d] = IdfLocked(df[d]);
      break;
    }

    for (size_t t = 0; t < texts.size(); ++t) {
      for (size_t i = 0; i < texts[t].words.size(); ++i) texts[t].idf[i] = idf[ids[t][i]];
    }
    return OkStatus();
  }

  double IdfLocked(int64_t df) const ENGRAM_REQUIRES(mu_) {
    const double n = static_cast<double>(std::max<int64_t>(documents_, 0));
    const double d = std::clamp(static_cast<double>(df), 0.0, n);
    return std::log((n + 1) / (d + 1)) + 1;
  }

  // Constant after construction.
  const HashingOptions options_;
  StorageBackend* const idf_source_;  // may be null; not owned

  mutable Mutex mu_;
  // Document frequencies read from the store, by the word's 64-bit unigram hash, all
  // relative to documents_ (the count of documents when the cache was started), so every
  // vector of one cache generation uses one N.
  std::unordered_map<uint64_t, int64_t> df_ ENGRAM_GUARDED_BY(mu_);
  bool have_documents_ ENGRAM_GUARDED_BY(mu_) = false;
  int64_t documents_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point loaded_at_ ENGRAM_GUARDED_BY(mu_);
  int64_t requests_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t failures_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t cache_hits_ ENGRAM_GUARDED_BY(mu_) = 0;
  int64_t cache_misses_ ENGRAM_GUARDED_BY(mu_) = 0;
  std::string last_error_ ENGRAM_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<EmbeddingProvider>> MakeHashingProvider(const HashingOptions& options,
                                                               StorageBackend* idf_source) {
  ENGRAM_RETURN_IF_ERROR(ValidateOptions(options));
  return std::unique_ptr<EmbeddingProvider>(new HashingProvider(options, idf_source));
}

}  // namespace engram
