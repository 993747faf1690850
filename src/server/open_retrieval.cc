#include "server/open_retrieval.h"

#include "common/logging.h"
#include "core/event_bus.h"
#include "server/open_store.h"

namespace engram::server {
namespace {

// Completed episodes indexed per Completed event: the one just completed and any that an
// earlier failure or another process left without a vector.
constexpr size_t kIndexPerEvent = 64;

}  // namespace

RankingOptions RankingOptionsFromConfig(const Config& config) {
  const Config::Retrieval& r = config.retrieval;
  RankingOptions o;
  o.weights = {.semantic = r.weight_semantic,
               .lexical = r.weight_lexical,
               .context = r.weight_context,
               .reward = r.weight_reward,
               .recency = r.weight_recency};
  o.recency_half_life = std::chrono::hours(24 * r.recency_half_life_days);
  o.mmr_lambda = r.mmr_lambda;
  o.cache_entries = static_cast<size_t>(r.cache_entries);
  o.lexical_candidates = static_cast<size_t>(r.lexical_candidates);
  o.vector_candidates = static_cast<size_t>(r.vector_candidates);
  return o;
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
  ENGRAM_ASSIGN_OR_RETURN(index_, VectorIndex::Open(*store_, provider_->Space(), options));
  retriever_->SetIndex(index_.get());
  ENGRAM_ASSIGN_OR_RETURN(size_t indexed, retriever_->IndexPending(0));
  if (indexed > 0) LogInfo("indexed episodes for semantic retrieval", {{"episodes", std::to_string(indexed)}});
  return OkStatus();
}

void RetrievalStack::OpenIndexInBackground() {
  if (!provider_) return;
  opener_ = std::jthread([this] {
    Status s = OpenIndex();
    if (!s.ok()) LogWarn("vector index unavailable; retrieval is lexical only", {{"error", s.ToString()}});
  });
}

void RetrievalStack::SubscribeTo(EventBus& bus) {
  if (!provider_) return;
  Retriever* retriever = retriever_.get();
  bus.Subscribe("vector-index", [retriever](const EpisodeEvent& event) -> Status {
    if (!std::holds_alternative<EpisodeCompleted>(event)) return OkStatus();
    Result<bool> stale = retriever->VectorsStale();
    if (!stale.ok()) return stale.status();
    if (*stale) return OkStatus();  // `engram reindex` first
    return retriever->IndexPending(kIndexPerEvent).status();
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
  const Config::Embedding& e = config.embedding;
  if (e.provider == "hashing") {
    HashingOptions options;
    options.dimension = static_cast<int>(e.dimension);
    ENGRAM_ASSIGN_OR_RETURN(stack->provider_, MakeHashingProvider(options, &store));
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
  RankingOptions ranking = RankingOptionsFromConfig(config);
  ENGRAM_RETURN_IF_ERROR(ValidateRankingOptions(ranking));
  stack->retriever_ = std::make_unique<Retriever>(store, clock, stack->provider_.get(), nullptr, ranking);
  return stack;
}

}  // namespace engram::server
