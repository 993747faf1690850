// Builds retrieval from the configuration: the embedding provider (embedding.*), the vector
// index persisted next to the store, and the Retriever (retrieval.*). Used by `engram
// serve`, `engram query`, `engram reindex` and the eval.
//
//   ENGRAM_ASSIGN_OR_RETURN(auto retrieval, OpenRetrieval(config, *store, SystemClock()));
//   ENGRAM_RETURN_IF_ERROR(retrieval->OpenIndex());        // or OpenIndexInBackground()
//   ENGRAM_ASSIGN_OR_RETURN(auto result, retrieval->retriever().Retrieve(query));
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "engram/embedding.h"
#include "engram/result.h"
#include "engram/storage.h"
#include "retrieval/retriever.h"
#include "retrieval/vector_index.h"
#include "semantics/concept_map.h"
#include "semantics/query_expander.h"
#include "semantics/wordnet.h"

namespace engram {
class EventBus;
}

namespace engram::server {

RankingOptions RankingOptionsFromConfig(const Config& config);

// Owns the provider, the index and the retriever. Thread-safe as Retriever is.
class RetrievalStack {
 public:
  ~RetrievalStack();

  Retriever& retriever() { return *retriever_; }
  EmbeddingProvider* provider() { return provider_.get(); }  // null: embedding.provider = none
  VectorIndex* index() { return index_.get(); }              // null until opened
  // "hashing/hash-v1/256", "none", or "http/<model>/<dim>".
  std::string ProviderName() const;

  // Opens (or rebuilds) the vector index, indexes completed episodes that have no vector
  // yet, and hands the index to the retriever. Nothing to do without a provider. A store
  // whose vectors belong to another provider is left alone (queries say to run `engram
  // reindex`). Errors: storage errors.
  Status OpenIndex();
  // On a thread of its own: one full-text search (so a store with an in-memory index starts
  // building it), then OpenIndex. Failures are logged. Start-up does not wait.
  void OpenIndexInBackground();
  // Indexes newly completed episodes when `bus` publishes Completed (off the request path).
  void SubscribeTo(EventBus& bus);
  // Persists the vector index (at shutdown). Errors are logged.
  void Save();

 private:
  friend Result<std::unique_ptr<RetrievalStack>> OpenRetrieval(const Config&, StorageBackend&, Clock&);
  RetrievalStack() = default;
  // Builds the query expander (retrieval.concepts_file, wordnet_dir, wordnet_senses) and
  // hands it to the retriever. Errors: a concept file that cannot be read or parsed.
  Status OpenExpansion(const Config::Retrieval& r);

  StorageBackend* store_ = nullptr;
  std::string index_path_;
  size_t exact_below_ = 0;
  VectorEncoding vector_encoding_ = VectorEncoding::kInt8;
  std::unique_ptr<EmbeddingProvider> provider_;
  std::unique_ptr<VectorIndex> index_;
  std::unique_ptr<Retriever> retriever_;
  // Query expansion; the retriever borrows them.
  std::unique_ptr<ConceptMap> concepts_;
  std::unique_ptr<WordNet> wordnet_;
  std::unique_ptr<QueryExpander> expander_;
  std::jthread opener_;
};

// Errors: kInvalidArgument (bad retrieval.* / embedding.* settings); kNotFound /
// kUnavailable (embedding.api_key_file cannot be read).
Result<std::unique_ptr<RetrievalStack>> OpenRetrieval(const Config& config, StorageBackend& store, Clock& clock);

}  // namespace engram::server
