// PatternProcessor: the bounded extraction queue and its workers (learning.h).
//
// An episode's way through: Memory::CompleteEpisode stores it and the store marks it
// pending extraction in the same transaction; the Completed event reaches OnEvent on the
// bus thread, which queues the id (waiting at most enqueue_wait for room); a worker
// extracts it and only then marks it extracted. Whatever happens in between (a full
// queue, a dropped bus event, Stop, kill -9) leaves the mark in the store, and a sweep of
// PendingExtraction (at Start, after a deferral, every sweep_interval) picks it up.
#include <algorithm>
#include <exception>
#include <map>
#include <unordered_set>

#include "common/logging.h"
#include "core/event_bus.h"
#include "learning/internal.h"
#include "learning/learning.h"

namespace engram {

using namespace learning_internal;

// The similarity keys in the store, grouped by "type|scope", so a new observation can
// find a near-duplicate without reading patterns. Kept in step with this process's
// merges; another process's new patterns are seen after the next Start. Thread-safe.
struct PatternProcessor::KeyIndex {
  struct Entry {
    std::string key;
    std::vector<std::string> signature;
  };

  void Clear() ENGRAM_LOCKS_EXCLUDED(mu) {
    MutexLock lock(mu);
    buckets.clear();
    keys.clear();
  }

  void Add(const std::string& key) ENGRAM_LOCKS_EXCLUDED(mu) {
    std::optional<ParsedKey> parsed = ParseSimilarityKey(key);
    if (!parsed.has_value()) return;
    MutexLock lock(mu);
    if (!keys.insert(key).second) return;
    buckets[BucketOf(parsed->type, parsed->scope)].push_back({key, std::move(parsed->signature)});
  }

  // The key `o` should merge into: its own when stored (or when nothing is similar
  // enough), else the most similar stored key of its bucket.
  std::string Target(const PatternObservation& o, double threshold) ENGRAM_LOCKS_EXCLUDED(mu) {
    MutexLock lock(mu);
    if (keys.count(o.similarity_key) != 0 || threshold >= 1.0) return o.similarity_key;
    auto it = buckets.find(BucketOf(o.type, o.scope));
    if (it == buckets.end()) return o.similarity_key;
    const std::string* best = nullptr;
    double best_similarity = threshold;
    const double n = static_cast<double>(o.signature.size());
    for (const Entry& e : it->second) {
      // Similarity ≥ t needs |n − m| ≤ (1 − t) · max(n, m): skip the rest cheaply.
      const double m = static_cast<double>(e.signature.size());
      if (std::abs(n - m) > (1.0 - threshold) * std::max(n, m)) continue;
      double s = SignatureSimilarity(o.signature, e.signature);
      if (s >= best_similarity && (best == nullptr || s > best_similarity)) {
        best = &e.key;
        best_similarity = s;
      }
    }
    return best != nullptr ? *best : o.similarity_key;
  }

  bool Contains(const std::string& key) ENGRAM_LOCKS_EXCLUDED(mu) {
    MutexLock lock(mu);
    return keys.count(key) != 0;
  }

  static std::string BucketOf(PatternType type, const std::string& scope) {
    return std::string(PatternTypeName(type)) + "|" + scope;
  }

  Mutex mu;
  std::map<std::string, std::vector<Entry>> buckets ENGRAM_GUARDED_BY(mu);
  std::unordered_set<std::string> keys ENGRAM_GUARDED_BY(mu);
};

// What the bus handler reaches the processor through; the destructor detaches it.
struct PatternProcessor::BusLink {
  Mutex mu;
  PatternProcessor* target ENGRAM_GUARDED_BY(mu) = nullptr;
};

PatternProcessor::PatternProcessor(StorageBackend& storage, Clock& clock, EventBus* bus, LearningOptions options)
    : storage_(storage),
      clock_(clock),
      bus_(bus),
      options_(options),
      keys_(std::make_unique<KeyIndex>()),
      link_(std::make_shared<BusLink>()) {
  MutexLock lock(link_->mu);
  link_->target = this;
}

PatternProcessor::~PatternProcessor() {
  Stop();
  MutexLock lock(link_->mu);
  link_->target = nullptr;
}

Status PatternProcessor::LoadKeyIndex() {
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Pattern> patterns, storage_.ListPatterns(PatternFilter{}));
  keys_->Clear();
  for (const Pattern& p : patterns) keys_->Add(p.similarity_key);
  return OkStatus();
}

Status PatternProcessor::Start() {
  ENGRAM_RETURN_IF_ERROR(ValidateLearningOptions(options_));
  if (extractors_.empty()) return InvalidArgumentError("learning: no extractors registered");
  bool subscribe = false;
  {
    MutexLock lock(mu_);
    if (started_) return FailedPreconditionError("learning: the pattern processor is already started");
    started_ = true;
    stopping_ = false;
    // The first worker loads the keys (reading every pattern takes a while at 10k), so
    // Start stays cheap on the server's way up.
    index_state_ = IndexState::kUnloaded;
    sweep_needed_ = true;  // what a crash (or a full queue) left pending
    subscribe = bus_ != nullptr && !subscribed_;
    subscribed_ = subscribed_ || subscribe;
  }
  if (subscribe) {
    std::shared_ptr<BusLink> link = link_;
    bus_->Subscribe("learning", [link](const EpisodeEvent& event) -> Status {
      const auto* completed = std::get_if<EpisodeCompleted>(&event);
      const bool write = completed != nullptr || std::holds_alternative<EpisodeCreated>(event) ||
                         std::holds_alternative<StepAdded>(event);
      if (!write) return OkStatus();
      MutexLock lock(link->mu);
      if (link->target == nullptr) return OkStatus();
      if (completed == nullptr) {
        link->target->NoteWrite();
        return OkStatus();
      }
      return link->target->OnEvent(completed->episode_id);
    });
  }
  for (size_t i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this](std::stop_token stop) { Work(stop); });
  }
  return OkStatus();
}

void PatternProcessor::Stop() {
  {
    MutexLock lock(mu_);
    if (!started_) return;
    stopping_ = true;
  }
  cv_.SignalAll();
  for (std::jthread& t : workers_) t.join();
  workers_.clear();
  MutexLock lock(mu_);
  // Queued episodes stay marked pending in the store; the next Start sweeps them.
  queue_.clear();
  pending_.clear();
  started_ = false;
  stopping_ = false;
  sweep_needed_ = false;
  cv_.SignalAll();
}

Status PatternProcessor::OnEvent(std::string_view completed_episode_id) {
  std::string id(completed_episode_id);
  bool deferred = false;
  {
    MutexLock lock(mu_);
    last_write_ = std::chrono::steady_clock::now();
    if (!started_ || stopping_) return OkStatus();  // stays pending in the store
    if (pending_.count(id) != 0 || recent_set_.count(id) != 0) return OkStatus();
    const auto deadline = std::chrono::steady_clock::now() + options_.enqueue_wait;
    while (queue_.size() >= options_.queue_capacity && !stopping_) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      cv_.WaitFor(mu_, deadline - now);
    }
    if (stopping_) return OkStatus();
    if (queue_.size() >= options_.queue_capacity) {
      // Never dropped: the store still marks it pending, and a sweep will queue it.
      ++stats_.deferred;
      sweep_needed_ = true;
      deferred = true;
    } else {
      queue_.push_back(id);
      pending_.insert(std::move(id));
      ++stats_.enqueued;
    }
  }
  cv_.SignalAll();
  if (deferred) LogDebug("learning queue full; episode left pending for a sweep", {{"episode_id", std::string(completed_episode_id)}});
  return OkStatus();
}

void PatternProcessor::RememberExtracted(const std::string& id) {
  if (!recent_set_.insert(id).second) return;
  recent_.push_back(id);
  if (recent_.size() > kRecentlyExtracted) {
    recent_set_.erase(recent_.front());
    recent_.pop_front();
  }
}

Status PatternProcessor::Sweep() {
  size_t room = 0;
  size_t skip = 0;
  {
    MutexLock lock(mu_);
    room = options_.queue_capacity - std::min(options_.queue_capacity, queue_.size());
    skip = pending_.size() + failed_.size();
  }
  if (room == 0) return OkStatus();
  const size_t want = std::min(room, kSweepBatch);
  ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, storage_.PendingExtraction(want + skip));
  size_t added = 0;
  {
    MutexLock lock(mu_);
    for (std::string& id : ids) {
      if (added >= want) break;
      if (pending_.count(id) != 0 || failed_.count(id) != 0 || recent_set_.count(id) != 0) continue;
      queue_.push_back(id);
      pending_.insert(std::move(id));
      ++added;
    }
    // A full page may have more behind it: sweep again once the queue drains.
    sweep_needed_ = ids.size() >= want + skip && added > 0;
  }
  if (added > 0) cv_.SignalAll();
  return OkStatus();
}

void PatternProcessor::Work(std::stop_token stop) {
  bool load = false;
  {
    MutexLock lock(mu_);
    if (index_state_ == IndexState::kUnloaded) {
      index_state_ = IndexState::kLoading;
      load = true;
    }
  }
  if (load) {
    Status s = LoadKeyIndex();
    if (!s.ok()) {
      // Near-duplicates then merge only with keys merged from now on; nothing else suffers.
      LogWarn("learning: cannot load pattern keys", {{"error", s.ToString()}});
    }
    MutexLock lock(mu_);
    index_state_ = IndexState::kLoaded;
  }
  cv_.SignalAll();
  {
    MutexLock lock(mu_);
    while (index_state_ != IndexState::kLoaded && !stopping_) cv_.Wait(mu_);
  }
  auto next_maintenance = std::chrono::steady_clock::now() + options_.sweep_interval;
  for (;;) {
    std::vector<std::string> batch;
    bool sweep = false;
    bool maintain = false;
    {
      MutexLock lock(mu_);
      for (;;) {
        if (stopping_ || stop.stop_requested()) return;
        if (const auto wait = HoldBack(); wait.count() > 0) {
          cv_.WaitFor(mu_, wait);
          continue;
        }
        if (!queue_.empty()) {
          while (!queue_.empty() && batch.size() < options_.batch_size) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
          in_flight_ += batch.size();
          break;
        }
        if (sweep_needed_ && !sweeping_) {
          sweep = true;
          sweeping_ = true;
          ++in_flight_;
          break;
        }
        if (options_.sweep_interval.count() > 0) {
          const auto now = std::chrono::steady_clock::now();
          if (now >= next_maintenance) {
            maintain = true;
            failed_.clear();  // retried once per interval
            sweep_needed_ = true;
            next_maintenance = now + options_.sweep_interval;
            ++in_flight_;
            break;
          }
          cv_.WaitFor(mu_, next_maintenance - now);
        } else {
          cv_.Wait(mu_);
        }
      }
    }
    cv_.SignalAll();  // room in the queue for a waiting producer
    Status status;
    std::vector<Status> results;
    try {
      if (maintain) {
        Result<DecayReport> decay = ApplyDecay(storage_, clock_, options_.decay_half_life);
        status = decay.status();
      } else if (sweep) {
        status = Sweep();
      } else {
        results = ExtractBatch(batch);
      }
    } catch (const std::exception& e) {
      status = InternalError(std::string("learning worker: ") + e.what());
    } catch (...) {
      status = InternalError("learning worker: unknown exception");
    }
    if (!status.ok()) results.assign(batch.size(), status);
    {
      MutexLock lock(mu_);
      if (maintain || sweep) {
        --in_flight_;
      } else {
        in_flight_ -= batch.size();
      }
      if (sweep) sweeping_ = false;
      for (size_t i = 0; i < batch.size(); ++i) {
        pending_.erase(batch[i]);
        if (results[i].ok()) {
          ++stats_.extracted;
          RememberExtracted(batch[i]);
        } else {
          ++stats_.failures;
          failed_.insert(batch[i]);
          stats_.last_error = results[i].ToString();
        }
      }
      if (!status.ok()) {
        stats_.last_error = status.ToString();
        if (sweep) sweep_needed_ = false;  // retried after the next event or interval
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!results[i].ok()) {
        LogWarn("pattern extraction failed", {{"episode_id", batch[i]}, {"error", results[i].ToString()}});
      }
    }
    if (!status.ok() && batch.empty()) LogWarn("learning maintenance failed", {{"error", status.ToString()}});
    cv_.SignalAll();
  }
}

void PatternProcessor::NoteWrite() {
  MutexLock lock(mu_);
  last_write_ = std::chrono::steady_clock::now();
}

std::chrono::steady_clock::duration PatternProcessor::HoldBack() {
  const bool work = !queue_.empty() || (sweep_needed_ && !sweeping_);
  if (!work || options_.quiet_period.count() <= 0 || idle_waiters_ > 0) {
    deferring_since_.reset();
    return {};
  }
  const auto now = std::chrono::steady_clock::now();
  if (!deferring_since_) deferring_since_ = now;
  const auto quiet_left = last_write_ + options_.quiet_period - now;
  const auto defer_left = *deferring_since_ + options_.max_defer - now;
  if (quiet_left.count() <= 0 || defer_left.count() <= 0) {
    deferring_since_.reset();  // the next batch waits for its own pause
    return {};
  }
  return std::min(quiet_left, defer_left);
}

void PatternProcessor::WaitIdle() {
  MutexLock lock(mu_);
  ++idle_waiters_;
  cv_.SignalAll();  // a worker holding back work for a pause starts now
  while (started_ && (!queue_.empty() || in_flight_ > 0 || sweep_needed_ || sweeping_)) cv_.Wait(mu_);
  --idle_waiters_;
}

Status PatternProcessor::ExtractNow(std::string_view episode_id) {
  Status s = Extract(episode_id);
  MutexLock lock(mu_);
  if (s.ok()) {
    ++stats_.extracted;
    RememberExtracted(std::string(episode_id));
  } else {
    ++stats_.failures;
    stats_.last_error = s.ToString();
  }
  return s;
}

Status PatternProcessor::Extract(std::string_view episode_id) {
  std::vector<std::string> ids{std::string(episode_id)};
  return ExtractBatch(ids)[0];
}

std::vector<Status> PatternProcessor::ExtractBatch(const std::vector<std::string>& ids) {
  std::vector<Status> result(ids.size());
  std::vector<std::string> done;  // to mark extracted
  std::vector<size_t> learned;    // indices of completed episodes to merge
  std::vector<Episode> episodes(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    Result<Episode> loaded = storage_.GetEpisode(ids[i]);
    if (!loaded.ok()) {
      result[i] = loaded.status();
      // Deleted after completion: nothing to learn, and nothing to keep pending.
      if (loaded.status().code() == StatusCode::kNotFound) done.push_back(ids[i]);
      continue;
    }
    if (!loaded->completed()) {
      result[i] = FailedPreconditionError("episode " + ids[i] + " is not completed");
      continue;
    }
    episodes[i] = *std::move(loaded);
    learned.push_back(i);
  }

  // Observations of every episode, one per key per episode (an episode counts once per pattern).
  std::vector<PatternObservation> observations;
  std::vector<std::string> targets;
  std::vector<std::string> keys;
  std::unordered_set<std::string> key_set;
  // New keys this batch will create, so a near-duplicate later in the same batch merges
  // into them as it would have one batch later.
  std::vector<const PatternObservation*> creating;
  std::vector<std::vector<PatternObservation>> per_episode;
  for (size_t i : learned) {
    std::unordered_set<std::string> seen;
    per_episode.emplace_back();
    for (PatternObservation& o : ExtractObservations(extractors_, episodes[i])) {
      if (seen.insert(o.similarity_key).second) per_episode.back().push_back(std::move(o));
    }
  }
  for (std::vector<PatternObservation>& list : per_episode) {
    for (PatternObservation& o : list) observations.push_back(std::move(o));
  }
  for (const PatternObservation& o : observations) {
    std::string target = keys_->Target(o, options_.near_duplicate_threshold);
    if (target == o.similarity_key && !keys_->Contains(o.similarity_key)) {
      const PatternObservation* best = nullptr;
      double best_similarity = options_.near_duplicate_threshold;
      for (const PatternObservation* c : creating) {
        if (c->type != o.type || c->scope != o.scope || options_.near_duplicate_threshold >= 1.0) continue;
        double sim = c->similarity_key == o.similarity_key ? 1.0 : SignatureSimilarity(c->signature, o.signature);
        if (sim >= best_similarity && (best == nullptr || sim > best_similarity)) {
          best = c;
          best_similarity = sim;
        }
      }
      if (best != nullptr) {
        target = best->similarity_key;
      } else if ((o.success ? 1.0 : 0.0) >= SuccessThreshold(o.type, options_)) {
        creating.push_back(&o);
      }
    }
    targets.push_back(target);
    for (const std::string& k : {target, o.similarity_key}) {
      if (key_set.insert(k).second) keys.push_back(k);
    }
  }

  // One transaction commits the whole batch: the merge, the heuristics of the patterns it
  // touched, the episodes' pattern_ids, the credits of what each episode was shown or
  // applied, and the cleared marks. A failure leaves every episode pending: extracting it
  // again merges nothing twice (evidence) and credits nothing twice (credited marks).
  MergeStats merged;
  std::vector<Pattern> touched;
  std::vector<Heuristic> heuristics;
  ExtractionBatch commit;
  if (!observations.empty()) {
    commit.keys = keys;
    commit.merge = [&](std::vector<Pattern>& patterns, ExtractionOutput& out) -> Status {
      // The store may call this again after a retry; every run starts from what it loaded.
      merged = MergeObservations(patterns, observations, targets, options_, clock_);
      touched.clear();
      heuristics.clear();
      std::unordered_set<std::string> ids_touched(merged.touched_ids.begin(), merged.touched_ids.end());
      for (const Pattern& p : patterns) {
        if (ids_touched.count(p.pattern_id) == 0) continue;
        touched.push_back(p);
        if (std::optional<Heuristic> h = DeriveHeuristic(p, options_)) heuristics.push_back(std::move(*h));
      }
      out.heuristics = heuristics;
      out.episode_patterns = merged.fed;
      return OkStatus();
    };
  }
  for (size_t i : learned) {
    commit.outcomes.emplace_back(episodes[i].episode_id, EpisodeSucceeded(episodes[i]));
    done.push_back(episodes[i].episode_id);
  }
  commit.extracted = done;
  size_t credited_total = 0;
  if (!done.empty()) {
    Result<size_t> credited = storage_.CommitExtraction(commit);
    if (credited.ok()) {
      credited_total = *credited;
      for (const Pattern& p : touched) keys_->Add(p.similarity_key);
    } else {
      for (size_t i = 0; i < ids.size(); ++i) {
        if (result[i].ok()) result[i] = credited.status();
      }
      merged = {};
      touched.clear();
      heuristics.clear();
    }
  }

  {
    MutexLock lock(mu_);
    stats_.patterns_created += merged.created;
    stats_.patterns_merged += merged.merged;
    stats_.heuristics_written += heuristics.size();
    stats_.attributions_credited += credited_total;
  }
  if (bus_ != nullptr) {
    // Which episode each touched pattern came from: the newest evidence in this batch.
    for (const Pattern& p : touched) {
      for (auto it = p.evidence.rbegin(); it != p.evidence.rend(); ++it) {
        if (std::find(ids.begin(), ids.end(), *it) != ids.end()) {
          bus_->Publish(PatternExtracted{*it, p.pattern_id});
          break;
        }
      }
    }
  }
  return result;
}

Result<ReextractReport> PatternProcessor::ReextractAll(const ReextractProgress& progress) {
  const auto started = std::chrono::steady_clock::now();
  if (extractors_.empty()) return InvalidArgumentError("learning: no extractors registered");
  ENGRAM_RETURN_IF_ERROR(storage_.ResetLearning());
  keys_->Clear();
  ENGRAM_ASSIGN_OR_RETURN(StoreStats before, storage_.Stats());
  const size_t total = static_cast<size_t>(before.completed_episodes);
  ReextractReport report;
  std::unordered_set<std::string> failed;
  size_t done = 0;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(std::vector<std::string> ids, storage_.PendingExtraction(kSweepBatch + failed.size()));
    std::vector<std::string> fresh;
    for (std::string& id : ids) {
      if (failed.count(id) == 0) fresh.push_back(std::move(id));
    }
    if (fresh.empty()) break;
    for (size_t begin = 0; begin < fresh.size(); begin += options_.batch_size) {
      std::vector<std::string> batch(fresh.begin() + static_cast<std::ptrdiff_t>(begin),
                                     fresh.begin() + static_cast<std::ptrdiff_t>(
                                                         std::min(fresh.size(), begin + options_.batch_size)));
      std::vector<Status> results = ExtractBatch(batch);
      for (size_t i = 0; i < batch.size(); ++i) {
        if (results[i].ok()) {
          ++report.episodes;
        } else if (results[i].code() != StatusCode::kNotFound) {
          // Left pending (the next sweep or reextract tries again); not retried in this run.
          ++report.failures;
          failed.insert(batch[i]);
          LogWarn("re-extraction failed", {{"episode_id", batch[i]}, {"error", results[i].ToString()}});
        }
        ++done;
        if (progress) progress(done, std::max(done, total));
      }
    }
  }
  ENGRAM_ASSIGN_OR_RETURN(StoreStats after, storage_.Stats());
  report.patterns = static_cast<size_t>(after.patterns);
  report.heuristics = static_cast<size_t>(after.heuristics);
  report.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  {
    MutexLock lock(mu_);
    stats_.extracted += report.episodes;
    stats_.failures += report.failures;
  }
  return report;
}

ProcessorStats PatternProcessor::Stats() {
  MutexLock lock(mu_);
  ProcessorStats s = stats_;
  s.queue_depth = queue_.size();
  s.in_flight = in_flight_;
  return s;
}

}  // namespace engram
