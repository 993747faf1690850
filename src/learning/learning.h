// The learning pipeline (DESIGN §5): patterns extracted from completed episodes, merged
// across episodes so their frequencies and success rates are real, heuristics derived from
// them, effectiveness credited from the outcomes of the episodes they were shown to, and
// the read side that turns them into recommendations and playbooks (no LLM anywhere).
//
//   LearningOptions options;                       // thresholds, queue, workers, decay
//   PatternProcessor processor(*store, clock, &bus, options);
//   RegisterBuiltinExtractors(processor.extractors());
//   ENGRAM_RETURN_IF_ERROR(processor.Start());     // sweeps what a crash left pending
//   ...                                            // Completed events are extracted off the request path
//   ENGRAM_ASSIGN_OR_RETURN(auto recs, RecommendPatterns(*store, clock, {.task_description = "fix flaky test"}));
//
// ---- Extraction ----------------------------------------------------------------------
// Each extractor turns one completed episode into PatternObservations. "Succeeded" below
// means the episode's outcome is success (partial_success and failure count as failures).
// Tools are lower-cased and trimmed, spaces become '_'. Action words are the search words
// (model/search_text.h) of the action with words holding a digit dropped, first
// kMaxActionKeyWords kept: similarity keys hold their SearchTokens ("raised" → "rais"), so
// wordings of one action merge; descriptions and bodies show them lower-cased as written
// ("raised"). Consecutive steps with the same tool collapse into one.
//
//   tool_sequence    the episode's tools in step order (collapsed), when 2..8 long; longer
//                    runs keep their first kMaxToolSequenceLength. Success = episode
//                    succeeded. Latency = mean step latency.
//     body {"tools":["bash","edit_file","bash"], "actions":["run test","edit src","run test"],
//           "task_types":{"debugging":20}}
//   decision_point   a step whose tool or action holds a check word (check, verify,
//                    validate, test, assert, lint, inspect, confirm, ensure, review,
//                    typecheck, probe, audit, compare and their forms: IsCheckWord) matched
//                    on whole words ("checkout" is not "check", "pytest" is not "test"),
//                    followed by the next step (the action taken). Success = the
//                    action step succeeded and the episode succeeded.
//     body {"check":{"tool":"bash","action":"run test","result":"error"},
//           "action":{"tool":"edit_file","action":"fix assertion"}, "result":"success",
//           "task_types":{...}}
//   error_recovery   a failed step (error, timeout or no result; the first of a run of
//                    failures of one tool) and the steps that made it succeed: those after
//                    it up to and including the next successful step of the same tool
//                    (error → fix → pass gives [fix, pass]) within kMaxRecoverySteps; when
//                    there is none, the next step alone if it succeeded. Success = episode
//                    succeeded.
//     body {"error_tool":"cargo", "error_action":"run test", "error":"assertion failed expected",
//           "error_message":"<first message seen, ≤ kMaxErrorMessageChars>",
//           "recovery":[{"tool":"edit_file","action":"fix assertion"},{"tool":"cargo","action":"run test"}],
//           "task_types":{...}}
//   context_pattern  the context features and the approach: distinct tools in order of
//                    first use (at most kMaxToolSequenceLength). Success = episode succeeded.
//     body {"features":{"domain":"web-api","language":"rust","framework":"tokio",
//           "complexity":"moderate","task_type":"debugging"}, "approach":["cargo","edit_file"],
//           "task_types":{...}}
//
// Similarity key: "<type>|<scope>|<signature words joined by ' '>", scope = domain (and for
// context_pattern every feature), lower-cased. Every stored body also has "summary" (the
// type-specific line), "task_types" (how many merged observations came from each task type;
// AnalyzePatterns filters on it) and "task_words" (the kMaxTaskWords most frequent search
// words of the merged episodes' task descriptions, as written, counted by SearchToken so
// "tests" and "test" are one word, with counts). The description is the summary plus
// those words ("Tool sequence: bash → edit_file → bash (tasks: fix failing tests)"), so a
// similar task description matches the pattern (its SearchTokens are the same).
//
// ---- Merging (MergeObservations) -----------------------------------------------------
// Observations of one episode are grouped by key (an episode counts once per pattern).
// A key with no stored pattern looks for a near-duplicate: a stored pattern of the same
// type and scope (or a pattern the same extraction batch is creating) whose signature
// similarity (1 − edit distance / longer length, over the signature words) is ≥
// near_duplicate_threshold; the observation merges into the best one. The processor knows
// the keys in the store at Start and those it merged since (another process's new keys
// are seen after the next Start).
// Merging into a pattern: occurrences += 1, successes += success, success_rate =
// successes / occurrences, avg_latency_ms is the running mean over observations that had
// latencies, the episode id is appended to evidence (the newest max_evidence kept),
// decay_weight returns to 1, updated_at = now; an observation with the pattern's own key
// replaces the body's type-specific fields and the summary (the newest wording is shown).
// A task word stored as a bare SearchToken takes the first written form that differs.
// An observation whose episode is already in the pattern's evidence is skipped, so
// extracting an episode twice (crash between merge and MarkExtracted, two processes
// sweeping) never double counts (evidence keeps the newest max_evidence ids, so this holds
// for any episode among a pattern's newest 100).
// A new pattern is created only by an observation that meets its type's threshold
// (success rate ≥ min_success_rate, error_recovery ≥ min_error_recovery_success_rate; a
// single observation has rate 1 or 0), so failed episodes alone store nothing. Later
// failures lower a stored pattern's real success rate; the read side (search, recommend,
// playbook) leaves out patterns below their type's threshold.
//
// ---- Heuristics ----------------------------------------------------------------------
// One per decision_point pattern with occurrences ≥ kMinHeuristicSamples that meets the
// threshold: condition "when <check tool> <check action> <passes|fails>", action
// "<tool>: <action>", confidence = success_rate × min(1, √n / √kHeuristicConfidenceSamples),
// heuristic_id = the pattern's id (so re-deriving replaces it).
//
// ---- Effectiveness and ranking -------------------------------------------------------
// RecommendPatterns (with an episode id) and query_memory record Attributions (shown);
// add_episode_step with applied_pattern_id records an applied one. When that episode is
// extracted, its CommitExtraction credits each with its outcome. Effectiveness =
// WilsonLowerBound(success_when_applied + kEffectivenessPriorSuccesses,
//                  trials + kEffectivenessPriorTrials), so an untried pattern sits at a
// small prior, each success raises it and each failure lowers it.
//
// Recommendation score = decay_weight × (kTextWeight·text + kContextWeight·context
//   + kEffectivenessWeight·effectiveness + kSuccessWeight·success_rate
//   + kFrequencyWeight·frequency), every part in [0, 1]:
//   text       share of the request's words (SearchTokens) found in the pattern's words
//              (PatternWords: description, key signature, context language/framework/tags)
//   context    kDomainShare·domain match + kLanguageShare·language + kFrameworkShare·framework,
//              over the shares the request named (1 when it named none)
//   frequency  min(1, ln(1 + occurrences) / ln(1 + kFrequencySaturation))
// Ties go to more occurrences, then by type (tool_sequence, error_recovery, decision_point,
// context_pattern: the one that says more about the whole task first), then the newer.
// Decay: weight = 0.5 ^ (idle / half_life), idle = now − max(updated_at, last_used).
//
// ---- Wiring (server and CLI) ---------------------------------------------------------
//   engram serve: one PatternProcessor per process (RegisterBuiltinExtractors, Start after
//     the EventBus and Memory exist, destroy it before the bus), one PatternCatalog passed
//     to SearchPatterns / RecommendPatterns / RecommendPlaybook. recommend_patterns with an
//     episode id and query_memory with an episode id call RecordShown; add_episode_step
//     with applied_pattern_id calls RecordApplied (kNotFound for an unknown pattern).
//   engram pattern list|show: StorageBackend::ListPatterns / GetPattern; search|recommend|
//     playbook: the functions below with no catalog; decay: ApplyDecay with the configured
//     half-life, printing DecayReport::changes; reextract: a PatternProcessor (not started)
//     and ReextractAll with a progress callback.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <deque>

#include "common/mutex.h"
#include "engram/clock.h"
#include "engram/patterns.h"
#include "engram/result.h"
#include "engram/status.h"
#include "engram/storage.h"
#include "engram/types.h"

namespace engram {

class EventBus;
class PatternCatalog;

// ---- Named constants ----------------------------------------------------------------

// Extraction.
inline constexpr size_t kMinToolSequenceLength = 2;
inline constexpr size_t kMaxToolSequenceLength = 8;
inline constexpr size_t kMaxRecoverySteps = 5;       // steps kept in an error_recovery
inline constexpr size_t kMaxActionKeyWords = 3;      // action words in keys and bodies
inline constexpr size_t kMaxErrorSignatureWords = 6; // words of an error message in its key
inline constexpr size_t kMaxErrorMessageChars = 200; // error_message kept in the body
inline constexpr size_t kMaxTaskWords = 12;          // task words kept per pattern
// Heuristics.
inline constexpr int64_t kMinHeuristicSamples = 2;
inline constexpr double kHeuristicConfidenceSamples = 25;  // √n saturates here
// Effectiveness prior: one success in two trials, so WilsonLowerBound(1, 2) ≈ 0.09 untried.
inline constexpr double kEffectivenessPriorSuccesses = 1;
inline constexpr double kEffectivenessPriorTrials = 2;
inline constexpr double kWilsonZ = 1.96;  // 95%
// Recommendation score weights (sum to 1).
inline constexpr double kTextWeight = 0.35;
inline constexpr double kContextWeight = 0.20;
inline constexpr double kEffectivenessWeight = 0.20;
inline constexpr double kSuccessWeight = 0.15;
inline constexpr double kFrequencyWeight = 0.10;
// Context score shares.
inline constexpr double kDomainShare = 0.5;
inline constexpr double kLanguageShare = 0.3;
inline constexpr double kFrameworkShare = 0.2;
inline constexpr double kFrequencySaturation = 50;  // occurrences at which frequency = 1
// Decay: changes smaller than this are not written or reported.
inline constexpr double kDecayEpsilon = 1e-4;
// Defaults.
inline constexpr double kDefaultMinSuccessRate = 0.7;
inline constexpr double kDefaultMinErrorRecoverySuccessRate = 0.3;
inline constexpr double kDefaultNearDuplicateThreshold = 0.8;
inline constexpr size_t kDefaultQueueCapacity = 1'000;
inline constexpr std::chrono::milliseconds kDefaultEnqueueWait{50};
inline constexpr size_t kDefaultWorkers = 1;
inline constexpr size_t kDefaultExtractBatch = 32;
inline constexpr std::chrono::hours kDefaultDecayHalfLife{24 * 30};  // 30 days
inline constexpr std::chrono::milliseconds kDefaultSweepInterval{60'000};
inline constexpr std::chrono::milliseconds kDefaultQuietPeriod{10};
inline constexpr std::chrono::milliseconds kDefaultMaxDefer{500};
inline constexpr size_t kSweepBatch = 256;  // PendingExtraction page size
// Episode ids a processor remembers as extracted, so a late event does not queue them again.
inline constexpr size_t kRecentlyExtracted = 4'096;
inline constexpr size_t kDefaultRecommendLimit = 5;
inline constexpr size_t kDefaultPlaybookSteps = 8;
inline constexpr size_t kMaxPlaybookSteps = 20;
inline constexpr size_t kMaxPlaybookPitfalls = 5;
inline constexpr size_t kDefaultAnalyzeTop = 5;

// ---- Options --------------------------------------------------------------------------

struct LearningOptions {
  // A pattern is created / shown only at or above these success rates (DESIGN §5).
  double min_success_rate = kDefaultMinSuccessRate;
  double min_error_recovery_success_rate = kDefaultMinErrorRecoverySuccessRate;
  // Signature similarity at or above which a new observation merges into an existing
  // pattern of the same type and scope. 1 disables near-duplicate merging; lower values
  // merge more aggressively (fewer, broader patterns).
  double near_duplicate_threshold = kDefaultNearDuplicateThreshold;
  // Completed events waiting for extraction. Larger absorbs longer bursts at the cost of
  // memory (one episode id each).
  size_t queue_capacity = kDefaultQueueCapacity;
  // How long the event handler waits for room in a full queue before leaving the episode
  // pending in the store (it is swept later, never dropped). Blocks the event bus thread,
  // never a request.
  std::chrono::milliseconds enqueue_wait = kDefaultEnqueueWait;
  // Worker threads draining the queue (≥ 1). More help only on a store with concurrent writers.
  size_t workers = kDefaultWorkers;
  // Queued episodes a worker extracts together, in one merge transaction (≥ 1). Larger
  // batches make far fewer commits (each holds the store's write lock, so fewer of them
  // means less waiting for complete_episode) at the cost of a longer single transaction.
  size_t batch_size = kDefaultExtractBatch;
  // Unused patterns lose half their weight per half-life (ApplyDecay).
  std::chrono::milliseconds decay_half_life = kDefaultDecayHalfLife;
  // How often the workers sweep PendingExtraction (episodes another process left pending)
  // and apply decay. 0 disables the periodic sweep (Start still sweeps once).
  std::chrono::milliseconds sweep_interval = kDefaultSweepInterval;
  // Extraction waits for a pause in the agent's writes: a worker starts a batch once no
  // episode was created, stepped or completed (bus events) for `quiet_period`, or once it has
  // waited `max_defer` for such a pause. A burst of writes then rarely waits behind an
  // extraction transaction (which holds the store's write lock) or competes with it for a
  // core. 0 (quiet_period): no waiting.
  std::chrono::milliseconds quiet_period = kDefaultQuietPeriod;
  std::chrono::milliseconds max_defer = kDefaultMaxDefer;
  // Evidence episode ids kept per pattern (the newest). At most kMaxPatternEvidence.
  size_t max_evidence = kMaxPatternEvidence;
};

// Errors: kInvalidArgument naming the bad field.
Status ValidateLearningOptions(const LearningOptions& options);

// The threshold of `type` under `options`.
double SuccessThreshold(PatternType type, const LearningOptions& options);

// ---- Extractors -----------------------------------------------------------------------

// One pattern seen in one episode.
struct PatternObservation {
  PatternType type = PatternType::kToolSequence;
  std::string similarity_key;          // "<type>|<scope>|<signature>" (see the file comment)
  std::string scope;                   // the middle part of the key
  std::vector<std::string> signature;  // normalised words the key ends with
  std::string description;             // one line
  std::string body_json = "{}";        // type-specific body (see the file comment), no task_types
  TaskContext context;                 // the episode's context
  TaskType task_type = TaskType::kOther;
  std::string episode_id;
  // The task description's search words as written (lower-cased), one per SearchToken.
  std::vector<std::string> task_words;
  bool success = false;
  std::optional<double> latency_ms;    // mean latency of the steps it covers
};

// Turns one completed episode into observations. Pure: no storage, no clock.
// Thread-safe (implementations hold no mutable state).
class PatternExtractor {
 public:
  PatternExtractor(const PatternExtractor&) = delete;
  PatternExtractor& operator=(const PatternExtractor&) = delete;
  virtual ~PatternExtractor() = default;

  virtual std::string_view Name() const = 0;  // "tool_sequence", ...
  // REQUIRES: episode.completed().
  virtual std::vector<PatternObservation> Extract(const Episode& episode) const = 0;

 protected:
  PatternExtractor() = default;
};

// Extractors by name, filled explicitly (STYLE §2). Thread-compatible: fill it before
// PatternProcessor::Start, then only read.
class ExtractorRegistry {
 public:
  // Errors: kAlreadyExists (name taken); kInvalidArgument (null or unnamed).
  Status Register(std::unique_ptr<PatternExtractor> extractor);
  const PatternExtractor* Find(std::string_view name) const;  // null when absent
  std::vector<const PatternExtractor*> All() const;           // in registration order
  bool empty() const { return extractors_.empty(); }

 private:
  std::vector<std::unique_ptr<PatternExtractor>> extractors_;
};

// The four built-in extractors (the file comment says what each extracts).
std::unique_ptr<PatternExtractor> NewToolSequenceExtractor();
std::unique_ptr<PatternExtractor> NewDecisionPointExtractor();
std::unique_ptr<PatternExtractor> NewErrorRecoveryExtractor();
std::unique_ptr<PatternExtractor> NewContextPatternExtractor();
// Registers all four. Errors: kAlreadyExists when one is already registered.
Status RegisterBuiltinExtractors(ExtractorRegistry& registry);

// True when `word` (one lower-case word) is a check word of decision_point.
bool IsCheckWord(std::string_view word);
// Runs every extractor of `registry` over `episode`. REQUIRES: episode.completed().
std::vector<PatternObservation> ExtractObservations(const ExtractorRegistry& registry, const Episode& episode);

// ---- Merging (pure; MergePatterns runs it inside the store's transaction) --------------

// 1 − Levenshtein(a, b) / max(|a|, |b|) over words; 1 for two empty signatures.
double SignatureSimilarity(const std::vector<std::string>& a, const std::vector<std::string>& b);
// The scope and signature of a key built by the extractors; nullopt for other keys.
struct ParsedKey {
  PatternType type;
  std::string scope;
  std::vector<std::string> signature;
};
std::optional<ParsedKey> ParseSimilarityKey(std::string_view key);

struct MergeStats {
  size_t merged = 0;   // observations merged into existing patterns
  size_t created = 0;  // new patterns
  size_t skipped = 0;  // below threshold (no pattern) or episode already in evidence
  std::vector<std::string> touched_ids;  // ids of patterns merged into or created
  // (episode_id, pattern_id) for every observation merged into a pattern, creating one, or
  // found already in its evidence: the patterns each episode fed.
  std::vector<std::pair<std::string, std::string>> fed;
};

// Merges `observations` into `patterns` as the file comment says. `targets[i]` is the key
// observation i should merge into (its own key, or a near-duplicate's); when no pattern
// with that key is in `patterns`, its own key is tried, else a new pattern is appended
// (new ids from NewUuidV7(clock)) if it meets its threshold.
MergeStats MergeObservations(std::vector<Pattern>& patterns, const std::vector<PatternObservation>& observations,
                             const std::vector<std::string>& targets, const LearningOptions& options, Clock& clock);

// The heuristic derived from a decision_point pattern, or nullopt when it does not
// qualify (other type, below threshold, fewer than kMinHeuristicSamples occurrences).
std::optional<Heuristic> DeriveHeuristic(const Pattern& pattern, const LearningOptions& options);

// ---- The pipeline --------------------------------------------------------------------

struct ProcessorStats {
  size_t queue_depth = 0;     // waiting in the queue
  size_t in_flight = 0;       // being extracted now
  uint64_t enqueued = 0;      // Completed events queued
  uint64_t deferred = 0;      // Completed events left pending because the queue stayed full
  uint64_t extracted = 0;     // episodes extracted (and marked)
  uint64_t failures = 0;      // extractions that failed (the episode stays pending)
  uint64_t patterns_created = 0;
  uint64_t patterns_merged = 0;
  uint64_t heuristics_written = 0;
  uint64_t attributions_credited = 0;
  std::string last_error;     // empty when none
};

struct ReextractReport {
  size_t episodes = 0;  // episodes extracted
  size_t failures = 0;  // episodes whose extraction failed (left pending)
  size_t patterns = 0;  // patterns in the store afterwards
  size_t heuristics = 0;
  std::chrono::milliseconds elapsed{0};
};

// Called after each episode during ReextractAll with (done, total). May be empty.
using ReextractProgress = std::function<void(size_t done, size_t total)>;

// The learning pipeline: Completed events go into a bounded queue drained by worker
// threads, so extraction never runs on the request path. Thread-safe.
class PatternProcessor {
 public:
  // `storage`, `clock` and `bus` must outlive *this; `bus` may be null (then only
  // ExtractNow, sweeps and ReextractAll extract). Fill extractors() before Start.
  PatternProcessor(StorageBackend& storage, Clock& clock, EventBus* bus, LearningOptions options = {});
  // Stops (see Stop).
  ~PatternProcessor();
  PatternProcessor(const PatternProcessor&) = delete;
  PatternProcessor& operator=(const PatternProcessor&) = delete;

  ExtractorRegistry& extractors() { return extractors_; }
  const LearningOptions& options() const { return options_; }

  // Start and Stop must not run concurrently with each other (other methods may).
  //
  // Subscribes to the bus's Completed events and starts the workers, and returns; the
  // first worker then loads the pattern keys (for near-duplicate merging) and the workers
  // queue every episode PendingExtraction lists (completed before a crash, or deferred).
  // Errors: kInvalidArgument (bad options, no extractors); kFailedPrecondition (already
  // started).
  Status Start() ENGRAM_LOCKS_EXCLUDED(mu_);
  // Finishes the episode being extracted, leaves the queued ones pending in the store
  // (the next Start extracts them) and joins the workers. Idempotent. The bus
  // subscription stays but enqueues nothing after Stop.
  void Stop() ENGRAM_LOCKS_EXCLUDED(mu_);

  // Blocks until the queue is empty, nothing is in flight and nothing deferred is left
  // to sweep. For tests and `engram pattern reextract`. Call bus.Flush() first.
  void WaitIdle() ENGRAM_LOCKS_EXCLUDED(mu_);

  // Extracts one completed episode now, on the caller's thread: merge its observations,
  // update heuristics, credit its attributions, mark it extracted.
  // Errors: kNotFound; kFailedPrecondition (not completed); storage errors.
  Status ExtractNow(std::string_view episode_id) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Deletes every pattern, heuristic and attribution and extracts every completed
  // episode again, calling `progress` after each. Works started or not.
  Result<ReextractReport> ReextractAll(const ReextractProgress& progress = {}) ENGRAM_LOCKS_EXCLUDED(mu_);

  ProcessorStats Stats() ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  struct KeyIndex;
  struct BusLink;
  Status OnEvent(std::string_view completed_episode_id) ENGRAM_LOCKS_EXCLUDED(mu_);
  void NoteWrite() ENGRAM_LOCKS_EXCLUDED(mu_);  // an episode was created or stepped
  void Work(std::stop_token stop);
  Status Sweep() ENGRAM_LOCKS_EXCLUDED(mu_);
  void RememberExtracted(const std::string& id) ENGRAM_REQUIRES(mu_);
  // How long a worker should still hold back the work it has, waiting for a pause in
  // episode writes (LearningOptions::quiet_period, at most max_defer); zero: start now.
  std::chrono::steady_clock::duration HoldBack() ENGRAM_REQUIRES(mu_);
  Status LoadKeyIndex();
  Status Extract(std::string_view episode_id);
  // Extracts `ids` with one CommitExtraction (merge, heuristics, the episodes' pattern_ids,
  // credits and extraction marks in one transaction); result[i] belongs to ids[i].
  std::vector<Status> ExtractBatch(const std::vector<std::string>& ids);

  StorageBackend& storage_;
  Clock& clock_;
  EventBus* const bus_;  // may be null
  const LearningOptions options_;
  ExtractorRegistry extractors_;  // filled before Start, read-only after
  std::unique_ptr<KeyIndex> keys_;  // internally synchronised

  Mutex mu_;
  CondVar cv_;  // queue changes, in-flight changes, stop
  std::deque<std::string> queue_ ENGRAM_GUARDED_BY(mu_);
  std::unordered_set<std::string> pending_ ENGRAM_GUARDED_BY(mu_);  // queued or in flight
  size_t in_flight_ ENGRAM_GUARDED_BY(mu_) = 0;
  enum class IndexState { kUnloaded, kLoading, kLoaded };
  IndexState index_state_ ENGRAM_GUARDED_BY(mu_) = IndexState::kUnloaded;
  bool started_ ENGRAM_GUARDED_BY(mu_) = false;
  bool stopping_ ENGRAM_GUARDED_BY(mu_) = false;
  bool sweep_needed_ ENGRAM_GUARDED_BY(mu_) = false;  // PendingExtraction may hold more
  bool sweeping_ ENGRAM_GUARDED_BY(mu_) = false;
  // The last episode write the bus reported (created, step, completed), and since when a
  // worker has held back work waiting for a pause after it (LearningOptions::quiet_period);
  // WaitIdle callers skip the wait.
  std::chrono::steady_clock::time_point last_write_ ENGRAM_GUARDED_BY(mu_);
  std::optional<std::chrono::steady_clock::time_point> deferring_since_ ENGRAM_GUARDED_BY(mu_);
  size_t idle_waiters_ ENGRAM_GUARDED_BY(mu_) = 0;
  // Episodes whose extraction failed: sweeps skip them until the next maintenance round.
  std::unordered_set<std::string> failed_ ENGRAM_GUARDED_BY(mu_);
  // The last kRecentlyExtracted episodes extracted here, oldest first: a Completed event or
  // a sweep that arrives after the extraction does not queue them again.
  std::deque<std::string> recent_ ENGRAM_GUARDED_BY(mu_);
  std::unordered_set<std::string> recent_set_ ENGRAM_GUARDED_BY(mu_);
  bool subscribed_ ENGRAM_GUARDED_BY(mu_) = false;
  ProcessorStats stats_ ENGRAM_GUARDED_BY(mu_);
  // Shared with the bus handler, which outlives *this (the bus has no unsubscribe); the
  // destructor detaches it.
  std::shared_ptr<BusLink> link_;

  std::vector<std::jthread> workers_;  // last: started after every field above exists
};

// ---- Effectiveness --------------------------------------------------------------------

// The Wilson score interval's lower bound for `successes` of `trials` at z (0 when
// trials ≤ 0). Pure.
double WilsonLowerBound(double successes, double trials, double z = kWilsonZ);
// The effectiveness of a pattern (see the file comment), in [0, 1).
double Effectiveness(const PatternEffectiveness& effectiveness);

// Records that `pattern_ids` were shown to the episode (query_memory, recommend_*).
// Unknown pattern ids are ignored. Errors: kInvalidArgument (bad episode id); storage errors.
Status RecordShown(StorageBackend& storage, Clock& clock, std::string_view episode_id,
                   const std::vector<std::string>& pattern_ids);
// Records that the episode applied `pattern_id` (add_episode_step applied_pattern_id).
// Errors: kInvalidArgument (bad id); kNotFound (no such pattern); storage errors.
Status RecordApplied(StorageBackend& storage, Clock& clock, std::string_view episode_id,
                     std::string_view pattern_id);

struct DecayChange {
  std::string pattern_id;
  std::string description;
  double old_weight = 0;
  double new_weight = 0;
};
struct DecayReport {
  size_t examined = 0;
  std::vector<DecayChange> changes;  // only weights that moved by more than kDecayEpsilon
};
// Sets every pattern's decay_weight to 0.5 ^ (idle / half_life) (see the file comment),
// writes the changed ones in one transaction and reports them. Running it twice at the
// same time changes nothing the second time. Errors: kInvalidArgument (half_life ≤ 0);
// storage errors.
Result<DecayReport> ApplyDecay(StorageBackend& storage, Clock& clock, std::chrono::milliseconds half_life);

// ---- Read side ------------------------------------------------------------------------
//
// SearchPatterns, RecommendPatterns and RecommendPlaybook read every pattern. With
// `catalog` null they read the store on each call (exact, fine for the CLI and small
// stores); a long-running server passes its PatternCatalog, which keeps the patterns and
// their words in memory (at 10k patterns, reading them all from SQLite takes ~100+ ms;
// ranking the in-memory copy takes a few ms). Counts a catalog serves may be up to
// refresh_interval (plus one reload) old; attribution writes always go to the store.

inline constexpr std::chrono::milliseconds kDefaultCatalogRefreshInterval{1'000};
// Candidates the playbook looks at (the best-ranked patterns of every type).
inline constexpr size_t kPlaybookCandidates = 200;

struct PatternCatalogOptions {
  // How old a snapshot may get before a changed store (Generation) triggers a background
  // reload. Shorter: fresher counts, more reloads under write load.
  std::chrono::milliseconds refresh_interval = kDefaultCatalogRefreshInterval;
};

// Every stored pattern with its PatternWords (sorted, unique), as loaded at one moment.
struct PatternSnapshot {
  std::vector<Pattern> patterns;
  std::vector<std::vector<std::string>> words;  // words[i] belongs to patterns[i]
  int64_t generation = 0;                      // the store's Generation() before the load
};

// An in-memory copy of the store's patterns for the read side. Thread-safe.
class PatternCatalog {
 public:
  // `storage` must outlive *this.
  explicit PatternCatalog(StorageBackend& storage, PatternCatalogOptions options = {});
  // Waits for a background reload in progress.
  ~PatternCatalog();
  PatternCatalog(const PatternCatalog&) = delete;
  PatternCatalog& operator=(const PatternCatalog&) = delete;

  // The current snapshot. The first call loads on the caller's thread; later calls return
  // at once and, when the snapshot is older than refresh_interval and the store's
  // Generation moved, start one background reload (its result serves later calls).
  // Errors: storage errors of a synchronous load.
  Result<std::shared_ptr<const PatternSnapshot>> Get() ENGRAM_LOCKS_EXCLUDED(mu_);
  // Reloads now, on the caller's thread (after ReextractAll; in tests).
  Status Refresh() ENGRAM_LOCKS_EXCLUDED(mu_);

 private:
  Result<std::shared_ptr<const PatternSnapshot>> Load();
  void Install(std::shared_ptr<const PatternSnapshot> snapshot) ENGRAM_LOCKS_EXCLUDED(mu_);

  StorageBackend& storage_;
  const PatternCatalogOptions options_;

  Mutex mu_;
  std::shared_ptr<const PatternSnapshot> snapshot_ ENGRAM_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point loaded_at_ ENGRAM_GUARDED_BY(mu_);
  bool reloading_ ENGRAM_GUARDED_BY(mu_) = false;
  Mutex reload_mu_;  // taken without mu_ held
  // The last background reload; joined before the next one starts and at destruction.
  std::jthread reloader_ ENGRAM_GUARDED_BY(reload_mu_);
};

// How a pattern's score was made; every part in [0, 1].
struct ScoreParts {
  double text = 0;
  double context = 0;
  double effectiveness = 0;
  double success_rate = 0;
  double frequency = 0;
  double decay = 1;
};

struct ScoredPattern {
  Pattern pattern;
  double score = 0;
  ScoreParts parts;
};

struct SearchRequest {
  std::string query;                  // required: at least one search word
  std::optional<std::string> domain;  // a signal (context part), not a filter
  std::optional<PatternType> type;    // a filter
  size_t limit = 10;                  // 1..kMaxQueryLimit
  bool include_below_threshold = false;
};
// Patterns whose words share at least one word with `query`, by score (the
// recommendation score), best first. Errors: kInvalidArgument (no search words in the
// query, limit out of range); storage errors.
Result<std::vector<ScoredPattern>> SearchPatterns(StorageBackend& storage, Clock& clock, const SearchRequest& request,
                                                  const LearningOptions& options = {},
                                                  PatternCatalog* catalog = nullptr);

struct RecommendRequest {
  std::string task_description;  // required
  std::optional<std::string> domain;
  std::optional<std::string> language;
  std::optional<std::string> framework;
  size_t limit = kDefaultRecommendLimit;  // 1..kMaxQueryLimit
  // When set, the recommended patterns are recorded as shown to this episode.
  std::optional<std::string> episode_id;
};
struct Recommendation {
  Pattern pattern;
  double score = 0;
  ScoreParts parts;
  // Names each component and its value, e.g. "text match 0.67, context match 1.00
  // (domain web-api), effectiveness 0.21 (Wilson lower bound of 2/2 when applied),
  // success rate 0.95 over 20 occurrences, decay 1.00".
  std::string why;
};
// Patterns ranked for a task (the file comment gives the score), best first; patterns
// below their type's threshold are left out; patterns sharing no word with the task
// and no context with it are left out. An empty store gives an empty list.
// Errors: kInvalidArgument (empty description, limit out of range, bad episode id);
// storage errors.
Result<std::vector<Recommendation>> RecommendPatterns(StorageBackend& storage, Clock& clock,
                                                      const RecommendRequest& request,
                                                      const LearningOptions& options = {},
                                                      PatternCatalog* catalog = nullptr);

struct PlaybookRequest {
  std::string task_description;  // required
  std::optional<std::string> domain;
  std::optional<std::string> language;
  std::optional<std::string> framework;
  size_t max_steps = kDefaultPlaybookSteps;  // 1..kMaxPlaybookSteps
};
struct PlaybookStep {
  int order = 0;  // 1-based
  std::string tool;
  std::string action;
  std::string why;
};
struct Playbook {
  std::vector<PlaybookStep> steps;     // the best-ranked tool_sequence, in its order
  std::vector<std::string> pitfalls;   // from error_recovery patterns (error → recovery)
  std::vector<std::string> when_to_apply;
  std::vector<std::string> when_not_to_apply;
  // success_rate × min(1, √occurrences / √kHeuristicConfidenceSamples) × decay_weight of
  // the pattern the steps come from; 0 with no steps.
  double confidence = 0;
  std::vector<std::string> pattern_ids;  // supporting patterns
  std::vector<std::string> episode_ids;  // their evidence
};
// A playbook built from the patterns that rank best for the task (ranked as
// RecommendPatterns ranks): the steps of the best tool_sequence (actions from its body;
// when there is none, the best context_pattern's approach; a decision_point on a step's
// tool adds what to do next to `why`), pitfalls from the best error_recovery patterns
// (those on a playbook tool first, at most kMaxPlaybookPitfalls), when to apply from the
// contexts and task types of the evidence, when not to apply from its failures. No matching
// patterns: an empty playbook with confidence 0 (not an error).
// Errors: kInvalidArgument (empty description, max_steps out of range); storage errors.
Result<Playbook> RecommendPlaybook(StorageBackend& storage, Clock& clock, const PlaybookRequest& request,
                                   const LearningOptions& options = {}, PatternCatalog* catalog = nullptr);

struct AnalyzeRequest {
  std::optional<TaskType> task_type;  // only patterns with observations of this task type
  std::optional<std::string> domain;  // exact
  double min_success_rate = 0;        // [0, 1]
  size_t top = kDefaultAnalyzeTop;    // top patterns per type, 0..kMaxQueryLimit
};
struct PatternTypeSummary {
  PatternType type = PatternType::kToolSequence;
  size_t count = 0;
  int64_t occurrences = 0;    // summed
  double mean_success_rate = 0;
  std::vector<Pattern> top;   // by success_rate × decay_weight, then occurrences
};
struct PatternAnalysis {
  std::vector<PatternTypeSummary> types;  // always the four types, in enum order
  size_t heuristics = 0;
  std::vector<Heuristic> top_heuristics;  // by confidence, at most `top`
};
// Errors: kInvalidArgument (min_success_rate out of [0, 1], top too big); storage errors.
Result<PatternAnalysis> AnalyzePatterns(StorageBackend& storage, const AnalyzeRequest& request);

// The words of a pattern the read side matches on (description, similarity key signature,
// context language/framework/tags), as SearchTokens, deduplicated. The body is not parsed:
// its words are in the description and the key, and ranking 10k patterns stays cheap.
std::vector<std::string> PatternWords(const Pattern& pattern);

}  // namespace engram
