// TimedStorage: a StorageBackend decorator that times every call to the store it wraps,
// per operation, for the storage latency histograms of GET /metrics and get_metrics
// (DESIGN §9). `engram serve` wraps the store it opens (the LMDB cache included, so a
// cache hit is timed as the fast read it is):
//
//   ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenStore(config));
//   store = NewTimedStorage(std::move(store));
//   ...
//   if (const TimedStorage* t = AsTimedStorage(*store)) Export(t->Latency());
//
// Operations are named after the methods ("GetEpisode", "SearchText"). ListEpisodes and
// ListVectors are timed until the stream is opened, not while it is read; MergePatterns
// includes the caller's merge function (it runs inside the transaction).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/histogram.h"
#include "engram/storage.h"

namespace engram {

// Thread-safe (as the wrapped store is).
class TimedStorage final : public StorageBackend {
 public:
  explicit TimedStorage(std::unique_ptr<StorageBackend> base) : base_(std::move(base)) {}

  // The wrapped store, e.g. to find the LMDB cache behind this decorator.
  StorageBackend& base() const { return *base_; }
  // Latency of the calls made so far, by operation.
  std::map<std::string, LatencyHistogram, std::less<>> Latency() const { return latency_.Snapshot(); }

  // StorageBackend
  std::string Name() const override { return base_->Name(); }
  std::string Location() const override { return base_->Location(); }
  int SchemaVersion() const override { return base_->SchemaVersion(); }
  Status CreateEpisode(const Episode& episode) override;
  Status PutEpisodes(std::span<const Episode> episodes) override;
  Result<int> AppendStep(std::string_view episode_id, const Step& step) override;
  Status CompleteEpisode(const Episode& episode) override;
  Result<Episode> GetEpisode(std::string_view episode_id) override;
  Result<std::vector<Episode>> GetEpisodes(std::span<const std::string> episode_ids) override;
  Result<std::unique_ptr<EpisodeStream>> ListEpisodes(const EpisodeFilter& filter) override;
  Result<bool> DeleteEpisode(std::string_view episode_id) override;
  Result<StoreStats> Stats() override;
  Result<int64_t> Generation() override;
  Result<std::vector<TextHit>> SearchText(const TextSearchRequest& request) override;
  Result<TermStats> GetTermStats(std::span<const std::string> words) override;
  Result<std::optional<EmbeddingSpace>> GetEmbeddingSpace() override;
  Status SetEmbeddingSpace(const EmbeddingSpace& space) override;
  Status PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) override;
  Result<std::unique_ptr<VectorStream>> ListVectors(const EmbeddingSpace& space, int64_t after_seq) override;
  Result<std::vector<std::string>> EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) override;
  Status MergePatterns(std::span<const std::string> keys,
                       const std::function<Status(std::vector<Pattern>&)>& merge) override;
  Result<Pattern> GetPattern(std::string_view pattern_id) override;
  Result<std::vector<Pattern>> ListPatterns(const PatternFilter& filter) override;
  Status SetPatternDecay(std::span<const std::pair<std::string, double>> weights) override;
  Status ResetLearning() override;
  Status PutHeuristics(std::span<const Heuristic> heuristics) override;
  Result<std::vector<Heuristic>> ListHeuristics(size_t limit) override;
  Status RecordAttributions(std::span<const Attribution> attributions) override;
  Result<std::vector<std::string>> PendingExtraction(size_t limit) override;
  Status MarkExtracted(std::span<const std::string> episode_ids) override;
  Result<size_t> CommitExtraction(const ExtractionBatch& batch) override;
  Status CheckHealth() override;

 private:
  // Runs `call` on the base and records how long it took under `operation`.
  template <typename Call>
  auto Timed(const char* operation, Call&& call) -> decltype(call(std::declval<StorageBackend&>()));

  const std::unique_ptr<StorageBackend> base_;
  LatencyHistograms latency_;
};

// Wraps `base` (which must not be null).
std::unique_ptr<StorageBackend> NewTimedStorage(std::unique_ptr<StorageBackend> base);

// The decorator if `backend` is one, else null.
inline const TimedStorage* AsTimedStorage(const StorageBackend& backend) {
  return dynamic_cast<const TimedStorage*>(&backend);
}

}  // namespace engram
