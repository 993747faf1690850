#include "storage/timed_storage.h"

#include <chrono>
#include <utility>

#include "common/check.h"

namespace engram {

template <typename Call>
auto TimedStorage::Timed(const char* operation, Call&& call) -> decltype(call(std::declval<StorageBackend&>())) {
  const auto start = std::chrono::steady_clock::now();
  auto result = call(*base_);
  latency_.Observe(operation,
                   std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return result;
}

Status TimedStorage::CreateEpisode(const Episode& episode) {
  return Timed("CreateEpisode", [&](StorageBackend& b) { return b.CreateEpisode(episode); });
}
Status TimedStorage::PutEpisodes(std::span<const Episode> episodes) {
  return Timed("PutEpisodes", [&](StorageBackend& b) { return b.PutEpisodes(episodes); });
}
Result<int> TimedStorage::AppendStep(std::string_view episode_id, const Step& step) {
  return Timed("AppendStep", [&](StorageBackend& b) { return b.AppendStep(episode_id, step); });
}
Status TimedStorage::CompleteEpisode(const Episode& episode) {
  return Timed("CompleteEpisode", [&](StorageBackend& b) { return b.CompleteEpisode(episode); });
}
Result<Episode> TimedStorage::GetEpisode(std::string_view episode_id) {
  return Timed("GetEpisode", [&](StorageBackend& b) { return b.GetEpisode(episode_id); });
}
Result<std::vector<Episode>> TimedStorage::GetEpisodes(std::span<const std::string> episode_ids) {
  return Timed("GetEpisodes", [&](StorageBackend& b) { return b.GetEpisodes(episode_ids); });
}
Result<std::unique_ptr<EpisodeStream>> TimedStorage::ListEpisodes(const EpisodeFilter& filter) {
  return Timed("ListEpisodes", [&](StorageBackend& b) { return b.ListEpisodes(filter); });
}
Result<bool> TimedStorage::DeleteEpisode(std::string_view episode_id) {
  return Timed("DeleteEpisode", [&](StorageBackend& b) { return b.DeleteEpisode(episode_id); });
}
Result<StoreStats> TimedStorage::Stats() {
  return Timed("Stats", [&](StorageBackend& b) { return b.Stats(); });
}
Result<int64_t> TimedStorage::Generation() {
  return Timed("Generation", [&](StorageBackend& b) { return b.Generation(); });
}
Result<std::vector<TextHit>> TimedStorage::SearchText(const TextSearchRequest& request) {
  return Timed("SearchText", [&](StorageBackend& b) { return b.SearchText(request); });
}
Result<TermStats> TimedStorage::GetTermStats(std::span<const std::string> words) {
  return Timed("GetTermStats", [&](StorageBackend& b) { return b.GetTermStats(words); });
}
Result<std::optional<EmbeddingSpace>> TimedStorage::GetEmbeddingSpace() {
  return Timed("GetEmbeddingSpace", [&](StorageBackend& b) { return b.GetEmbeddingSpace(); });
}
Status TimedStorage::SetEmbeddingSpace(const EmbeddingSpace& space) {
  return Timed("SetEmbeddingSpace", [&](StorageBackend& b) { return b.SetEmbeddingSpace(space); });
}
Status TimedStorage::PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) {
  return Timed("PutVectors", [&](StorageBackend& b) { return b.PutVectors(space, vectors); });
}
Result<std::unique_ptr<VectorStream>> TimedStorage::ListVectors(const EmbeddingSpace& space, int64_t after_seq) {
  return Timed("ListVectors", [&](StorageBackend& b) { return b.ListVectors(space, after_seq); });
}
Result<std::vector<std::string>> TimedStorage::EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) {
  return Timed("EpisodesWithoutVector", [&](StorageBackend& b) { return b.EpisodesWithoutVector(space, after, limit); });
}
Status TimedStorage::MergePatterns(std::span<const std::string> keys,
                                   const std::function<Status(std::vector<Pattern>&)>& merge) {
  return Timed("MergePatterns", [&](StorageBackend& b) { return b.MergePatterns(keys, merge); });
}
Result<Pattern> TimedStorage::GetPattern(std::string_view pattern_id) {
  return Timed("GetPattern", [&](StorageBackend& b) { return b.GetPattern(pattern_id); });
}
Result<std::vector<Pattern>> TimedStorage::ListPatterns(const PatternFilter& filter) {
  return Timed("ListPatterns", [&](StorageBackend& b) { return b.ListPatterns(filter); });
}
Status TimedStorage::SetPatternDecay(std::span<const std::pair<std::string, double>> weights) {
  return Timed("SetPatternDecay", [&](StorageBackend& b) { return b.SetPatternDecay(weights); });
}
Status TimedStorage::ResetLearning() {
  return Timed("ResetLearning", [&](StorageBackend& b) { return b.ResetLearning(); });
}
Status TimedStorage::PutHeuristics(std::span<const Heuristic> heuristics) {
  return Timed("PutHeuristics", [&](StorageBackend& b) { return b.PutHeuristics(heuristics); });
}
Result<std::vector<Heuristic>> TimedStorage::ListHeuristics(size_t limit) {
  return Timed("ListHeuristics", [&](StorageBackend& b) { return b.ListHeuristics(limit); });
}
Status TimedStorage::RecordAttributions(std::span<const Attribution> attributions) {
  return Timed("RecordAttributions", [&](StorageBackend& b) { return b.RecordAttributions(attributions); });
}
Result<std::vector<std::string>> TimedStorage::PendingExtraction(size_t limit) {
  return Timed("PendingExtraction", [&](StorageBackend& b) { return b.PendingExtraction(limit); });
}
Status TimedStorage::MarkExtracted(std::span<const std::string> episode_ids) {
  return Timed("MarkExtracted", [&](StorageBackend& b) { return b.MarkExtracted(episode_ids); });
}
Result<size_t> TimedStorage::CommitExtraction(const ExtractionBatch& batch) {
  return Timed("CommitExtraction", [&](StorageBackend& b) { return b.CommitExtraction(batch); });
}
Status TimedStorage::CheckHealth() {
  return Timed("CheckHealth", [&](StorageBackend& b) { return b.CheckHealth(); });
}

std::unique_ptr<StorageBackend> NewTimedStorage(std::unique_ptr<StorageBackend> base) {
  ENGRAM_CHECK(base != nullptr);
  return std::make_unique<TimedStorage>(std::move(base));
}

}  // namespace engram
