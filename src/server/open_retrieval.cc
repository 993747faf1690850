#include "server/open_retrieval.h"

#include "common/logging.h"
#include "core/event_bus.h"
#include "embedding/use_provider.h"
#include "retrieval/episode_text.h"
#include "server/open_store.h"

namespace engram::server {

RankingOptions RankingOptionsFromConfig(const Config& config) {
  const Config::Retrieval& r = config.retrieval;
  RankingOptions o;
  o.weights = {.semantic = r.weight_semantic,
               .lexical = r.weight_lexical,
               .context = r.weight_context,
               .reward = r.weight_reward,
               .recency = r.weight_recency,
               .concepts = r.weight_concepts,
               .wordnet = r.weight_wordnet};
  o.recency_half_life = std::chrono::hours(24 * r.recency_half_life_days);
  o.mmr_lambda = r.mmr_lambda;
  o.cache_entries = static_cast<size_t>(r.cache_entries);
  o.lexical_candidates = static_cast<size_t>(r.lexical_candidates);
  o.vector_candidates = static_cast<size_t>(r.vector_candidates);
  o.vector_expansion = r.vector_expansion;
  return o;
}

Status RetrievalStack::OpenExpansion(const Config::Retrieval& r) {
  // The concept map: built in, plus the deployment's file. A bad file is a configuration
  // error (its message names the line); a missing WordNet only turns WordNet off.
  // (concepts_ may exist already: OpenRetrieval hands it to embedding.document_text's +concepts.)
  if (!concepts_) concepts_ = std::make_unique<ConceptMap>();
  *concepts_ = ConceptMap::Builtin();
  if (!r.concepts_file.empty()) {
    Result<ConceptMap> extra = ConceptMap::LoadFile(r.concepts_file);
    if (!extra.ok()) {
      return Status(extra.status().code(), "retrieval.concepts_file: " + std::string(extra.status().message()));
    }
    concepts_->Merge(*extra);
  }
  ExpansionHealth health;
  health.detail = "concept map (" + std::to_string(concepts_->size()) + " groups)";
  if (!r.wordnet_dir.empty()) {
    Result<std::unique_ptr<WordNet>> wordnet = WordNet::Open(r.wordnet_dir);
    if (wordnet.ok()) {
      wordnet_ = *std::move(wordnet);
      health.detail += " and WordNet (" + r.wordnet_dir + ")";
    } else {
      LogWarn("WordNet unavailable: query expansion uses the concept map only (install wordnet-base)",
              {{"error", wordnet.status().ToString()}, {"wordnet_dir", r.wordnet_dir}});
      // A warning, not a failure: retrieval works without WordNet (as a "use" provider that
      // cannot start falls back to hashing and stays healthy).
      health.detail += "; warning: WordNet unavailable, expansion uses the concept map only (" +
                       wordnet.status().ToString() + "; install wordnet-base or set retrieval.wordnet_dir)";
    }
  } else {
    health.detail += "; WordNet off (retrieval.wordnet_dir is empty)";
  }
  ExpansionOptions options;
  options.wordnet_senses = static_cast<int>(r.wordnet_senses);
  expander_ = std::make_unique<QueryExpander>(concepts_.get(), wordnet_.get(), options);
  retriever_->SetExpander(expander_.get(), std::move(health));
  return OkStatus();
}

RetrievalStack::~RetrievalStack() {
  if (opener_.joinable()) opener_.join();
}

std::string RetrievalStack::ProviderName() const {
  return provider_ ? provider_->Space().Key() : std::string("none");
}

Status RetrievalStack::OpenIndex() {
  if (!provider_) return OkStatus();
  ENGRAM_ASSIGN_OR_RETURN(bool stale, retriever_->VectorsStale());
  if (stale) {
    LogWarn("stored vectors belong to another embedding provider; run `engram reindex`",
            {{"provider", ProviderName()}});
    return OkStatus();
  }
  VectorIndexOptions options;
  options.path = index_path_;
  options.exact_below = exact_below_;
  options.encoding = vector_encoding_;
  ENGRAM_ASSIGN_OR_RETURN(index_, VectorIndex::Open(*store_, provider_->Space(), options));
  retriever_->SetIndex(index_.get());
  ENGRAM_ASSIGN_OR_RETURN(size_t indexed, retriever_->IndexPending(0));
  if (indexed > 0) LogInfo("indexed episodes for semantic retrieval", {{"episodes", std::to_string(indexed)}});
  return OkStatus();
}

void RetrievalStack::OpenIndexInBackground() {
  opener_ = std::jthread([this] {
    // One search so a store that keeps an in-memory full-text index (SQLite's mirror,
    // built at the first search) starts building it now, not at the agent's first query.
    TextSearchRequest warm;
    warm.words = {"error"};
    warm.limit = 1;
    if (Result<std::vector<TextHit>> hits = store_->SearchText(warm); !hits.ok()) {
      LogWarn("full-text search failed at start", {{"error", hits.status().ToString()}});
    }
    if (!provider_) return;
    Status s = OpenIndex();
    if (!s.ok()) LogWarn("vector index unavailable; retrieval is lexical only", {{"error", s.ToString()}});
  });
}

void RetrievalStack::SubscribeTo(EventBus& bus) {
  if (!provider_) return;
  Retriever* retriever = retriever_.get();
  bus.Subscribe("vector-index", [retriever](const EpisodeEvent& event) -> Status {
    const auto* completed = std::get_if<EpisodeCompleted>(&event);
    if (completed == nullptr) return OkStatus();
    // Embeds the episode the event names (IndexEpisodes skips a stale space: `engram reindex`
    // first). Not IndexPending: finding what lacks a vector walks the whole store, and at
    // 1M episodes that walk per completion is the cost. An episode whose embedding failed
    // (the http provider's server down) is retried with the next completion
    // (Retriever::IndexEpisodes keeps a backlog), or at the next start beyond its bound.
    return retriever->IndexEpisodes({completed->episode_id}).status();
  });
}

void RetrievalStack::Save() {
  if (opener_.joinable()) opener_.join();
  if (!index_) return;
  Status s = index_->Save();
  if (!s.ok()) LogWarn("could not save the vector index", {{"error", s.ToString()}});
}

Result<std::unique_ptr<RetrievalStack>> OpenRetrieval(const Config& config, StorageBackend& store, Clock& clock) {
  std::unique_ptr<RetrievalStack> stack(new RetrievalStack());
  stack->store_ = &store;
  stack->index_path_ = config.db_path + ".vectors.hnsw";
  stack->exact_below_ = static_cast<size_t>(config.retrieval.exact_below);
  stack->vector_encoding_ =
      config.retrieval.vector_encoding == "float32" ? VectorEncoding::kFloat32 : VectorEncoding::kInt8;
  const Config::Embedding& e = config.embedding;
  auto make_hashing = [&]() {
    HashingOptions options;
    options.dimension = static_cast<int>(e.dimension);
    return MakeHashingProvider(options, &store);
  };
  if (e.provider == "use") {
    // The local model; if it cannot start (files missing, model corrupt) engram runs on
    // with the next provider, hashing, and says so in the log and in health_check.
    UseOptions options;
    options.model_dir = e.model_dir;
    Result<std::unique_ptr<EmbeddingProvider>> use = MakeUseProvider(options);
    if (use.ok()) {
      stack->provider_ = std::move(*use);
    } else {
      const std::string note = "embedding provider \"use\" could not start (" + use.status().ToString() +
                               "); fell back to hashing";
      LogWarn("embedding provider \"use\" could not start; falling back to hashing",
              {{"error", use.status().ToString()}, {"model_dir", e.model_dir.empty() ? DefaultUseModelDir() : e.model_dir}});
      ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddingProvider> fallback, make_hashing());
      stack->provider_ = WithFallbackNote(std::move(fallback), note);
    }
  } else if (e.provider == "hashing") {
    ENGRAM_ASSIGN_OR_RETURN(stack->provider_, make_hashing());
  } else if (e.provider == "http") {
    HttpEmbeddingOptions options;
    options.url = e.url;
    options.model = e.model;
    if (!e.api_key_file.empty()) {
      ENGRAM_ASSIGN_OR_RETURN(options.api_key, ReadSecretFile("embedding.api_key_file", e.api_key_file));
    }
    options.dimension = static_cast<int>(e.dimension);
    options.timeout = std::chrono::milliseconds(e.timeout_ms);
    options.batch_size = static_cast<int>(e.batch_size);
    options.max_retries = static_cast<int>(e.max_retries);
    options.breaker_failure_threshold = static_cast<int>(e.breaker_failures);
    options.breaker_open_for = std::chrono::seconds(e.breaker_open_seconds);
    ENGRAM_ASSIGN_OR_RETURN(stack->provider_, MakeHttpProvider(options, clock));
  }
  if (stack->provider_) {
    // What of an episode is embedded; any choice but "full" is part of the embedding space.
    // The concept map is filled by OpenExpansion below, before anything is embedded.
    Result<DocumentTextOptions> document_text = ParseDocumentTextOptions(e.document_text);
    if (!document_text.ok()) return document_text.status();
    stack->concepts_ = std::make_unique<ConceptMap>();
    stack->provider_ = WithDocumentText(std::move(stack->provider_), *document_text, stack->concepts_.get());
  }
  RankingOptions ranking = RankingOptionsFromConfig(config);
  ENGRAM_RETURN_IF_ERROR(ValidateRankingOptions(ranking));
  stack->retriever_ = std::make_unique<Retriever>(store, clock, stack->provider_.get(), nullptr, ranking);
  ENGRAM_RETURN_IF_ERROR(stack->OpenExpansion(config.retrieval));
  return stack;
}

}  // namespace engram::server
