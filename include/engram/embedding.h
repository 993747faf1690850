// EmbeddingProvider: turns text into vectors for the semantic part of retrieval (DESIGN §4).
//
//   hashing (default)  no model, no network: signed feature hashing of normalised word
//                      unigrams and bigrams plus character n-grams, sublinear tf, IDF from
//                      the store, L2-normalised. Deterministic.
//   http               an OpenAI-compatible POST /v1/embeddings client (libcurl) with
//                      batching, timeouts, retries with backoff, a circuit breaker and an
//                      embedding cache keyed by provider + model + text hash.
//
//   ENGRAM_ASSIGN_OR_RETURN(auto provider, MakeHashingProvider({.dimension = 256}, &store));
//   ENGRAM_ASSIGN_OR_RETURN(auto vectors, provider->Embed(texts, EmbedPurpose::kDocument));
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engram/clock.h"
#include "engram/result.h"
#include "engram/storage.h"

namespace engram {

enum class EmbedPurpose { kDocument, kQuery };

enum class BreakerState { kClosed, kOpen, kHalfOpen };
std::string_view BreakerStateName(BreakerState s);  // "closed", "open", "half_open"

struct EmbeddingHealth {
  bool available = true;          // false: Embed fails fast now (breaker open)
  BreakerState breaker = BreakerState::kClosed;
  int64_t requests = 0;           // HTTP requests sent (http) / texts embedded (hashing)
  int64_t failures = 0;           // failed requests, retries included
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  std::string last_error;         // empty when none
};

// Thread-safe.
class EmbeddingProvider {
 public:
  EmbeddingProvider(const EmbeddingProvider&) = delete;
  EmbeddingProvider& operator=(const EmbeddingProvider&) = delete;
  virtual ~EmbeddingProvider() = default;

  // The space this provider's vectors live in (recorded in the store).
  virtual EmbeddingSpace Space() const = 0;

  // One L2-normalised vector of Space().dimension floats per text, in order. An empty or
  // word-less text gets the zero vector. Errors: kUnavailable (network, server error,
  // breaker open — callers fall back to lexical-only ranking), kDataLoss (a malformed
  // answer), kInvalidArgument.
  virtual Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts,
                                                        EmbedPurpose purpose) = 0;

  virtual EmbeddingHealth Health() const = 0;

 protected:
  EmbeddingProvider() = default;
};

struct HashingOptions {
  int dimension = 256;         // 16..4096
  int char_ngram_min = 3;      // character n-grams of each word, boundaries marked
  int char_ngram_max = 4;
  double unigram_weight = 1.0;
  double bigram_weight = 0.5;
  double char_ngram_weight = 0.3;
  // Document frequencies are re-read from the store when this many new documents have
  // appeared (or when the stats are older than idf_refresh). IDF weights words only.
  int64_t idf_refresh_documents = 1'000;
  std::chrono::seconds idf_refresh{60};
};
// `idf_source` may be null (every word weighs the same); else it must outlive the provider.
// Errors: kInvalidArgument (a bad option, named).
Result<std::unique_ptr<EmbeddingProvider>> MakeHashingProvider(const HashingOptions& options,
                                                               StorageBackend* idf_source);

struct HttpEmbeddingOptions {
  std::string url;       // the endpoint, e.g. "http://127.0.0.1:8080/v1/embeddings"
  std::string model;     // sent as "model"
  std::string api_key;   // sent as "Authorization: Bearer"; never logged; may be empty
  int dimension = 0;     // expected length; answers of another length are kDataLoss
  int batch_size = 32;   // texts per request
  std::chrono::milliseconds timeout{5'000};     // per request, connect included
  int max_retries = 2;                          // retries of retryable failures (5xx, 429, network)
  std::chrono::milliseconds backoff{100};       // first retry waits this, then doubles
  int breaker_failure_threshold = 5;            // consecutive failed calls that open it
  std::chrono::milliseconds breaker_open_for{30'000};  // then one half-open probe
  size_t cache_entries = 10'000;                // 0: no cache
};
// `clock` must outlive the provider (the breaker measures time with it).
// Errors: kInvalidArgument (a bad option, named).
Result<std::unique_ptr<EmbeddingProvider>> MakeHttpProvider(const HttpEmbeddingOptions& options, Clock& clock);

}  // namespace engram
