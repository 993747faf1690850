// PostingsMirror: an in-memory copy of the SQLite store's full-text index (episode_fts and
// episode_docs) that answers SqliteBackend::SearchText exactly as FTS5 would, 15-20 times
// faster at 100k episodes. Internal to storage/sqlite.
//
// Why: FTS5's bm25() costs ~3 us per matching row, and at 100k episodes a query of common
// words matches tens of thousands of rows (13.5 ms p50 for 50 hits). Scoring the same
// postings from memory costs a few nanoseconds each, so every query is ranked
// exhaustively and exactly: the same ids, order and scores as
//   SELECT ... WHERE episode_fts MATCH '"t1" OR "t2" ...' ORDER BY bm25(episode_fts, 2.0, 1.0)
// (ties in rowid order, as FTS5's sorter gives them). Tokens, column weights and the
// formula are FTS5's (storage/fts_bm25.h), summed in the query's term order from 0.0, so
// the scores are FTS5's bit for bit. A query the mirror cannot answer (a phrase: a word
// the tokenizer cuts in two) goes to FTS5.
//
// Memory: documents get dense numbers in doc_id order (never reused, see below); per
// document 8 bytes of doc_id, 4 of length, 4 of domain number, 4 + the episode id's bytes;
// per term a dictionary entry and a byte string of postings, each posting the gap to the
// previous document number and the document's weighted count (2 per title token, 1 per
// body token), both LEB128 varints: ~2 bytes a posting; and each document's bm25 length
// norm (8 bytes). Generated stores (bench/retrieval_scale_bench): 100k episodes, 99,677
// terms, 8.0M postings, 28.6 MiB, built in 1.4-4 s; 1M: 636,230 terms, 80.3M postings,
// 264 MiB, 25-47 s. The build logs the figures.
//
// Speed: exhaustive scoring costs ~2-5 ns a posting; SearchText of 50 hits (bench/eval's
// queries) p50 0.6-0.9 ms at 100k, ~15 ms at 1M, where the staged FTS5 path took tens to
// hundreds of milliseconds.
//
// Loading: the first search starts a background thread that reads every
// document in one read transaction (tokenizing title and body as FTS5 did), then publishes;
// until then, and whenever the mirror cannot answer, SearchText runs on FTS5 as before.
// The destructor stops the build early and joins it. SqliteOptions::full_text_in_memory
// = false (storage.full_text_in_memory) keeps no mirror: FTS5 answers every search.
//
// Exactness with other processes writing the file: schema v4 numbers documents from
// store_state.next_doc (never reused, unlike a bare INTEGER PRIMARY KEY: re-completing the
// newest episode would otherwise get the same doc_id with new text) and counts removals in
// store_state.unindexed. Each search, in its own read transaction, reads (generation,
// unindexed, next_doc, indexed): the same as the mirror's → answer; otherwise catch up in
// that transaction first: documents numbered at or above the mirror's next_doc are new;
// when unindexed moved, the store's doc_ids are listed and the mirror's missing ones are
// marked dead (their postings are skipped and no longer counted in idf or avgdl). A store
// whose counters went back (a restore over it) or whose document count then disagrees is
// rebuilt. Dead documents are dropped by a rebuild once they pass a quarter of the live ones.
// This process's own writes go through the same catch-up. More than a few hundred new
// documents (a bulk import) are left to a background catch-up that loads them in chunks,
// FTS5 answering meanwhile; this process's writes also start it every 16 commits, so an
// import is loaded as it runs. A snapshot older than the mirror is answered by FTS5.
//
// Thread-safe: searches share the mirror under a reader lock; a catch-up takes it alone.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "engram/result.h"
#include "engram/storage.h"
#include "storage/sqlite/sqlite_connection.h"

namespace engram::sqlite {

class ConnectionPool;

// One search the mirror answers: `terms` are single 'ascii' tokens (no spaces), in the
// order of the FTS5 query's phrases.
struct MirrorQuery {
  std::vector<std::string> terms;
  std::optional<std::string> domain;
  std::vector<std::string> allowed_domains;
  size_t limit = 0;
};

// What the mirror holds (for logs, benches and tests).
struct MirrorStats {
  bool ready = false;
  int64_t documents = 0;       // live
  int64_t dead_documents = 0;  // removed but still in postings
  int64_t terms = 0;
  int64_t postings = 0;
  int64_t bytes = 0;           // the mirror's heap, estimated from its containers' capacities
  double build_seconds = 0;    // of the last full build
  int64_t builds = 0;          // full builds published
  int64_t answered = 0;        // searches the mirror answered (not FTS5)
  int64_t term_stats = 0;      // GetTermStats calls the mirror answered
};

class PostingsMirror {
 public:
  explicit PostingsMirror(std::shared_ptr<ConnectionPool> pool);
  ~PostingsMirror();
  PostingsMirror(const PostingsMirror&) = delete;
  PostingsMirror& operator=(const PostingsMirror&) = delete;

  // The hits of `query` as of `conn`'s snapshot, after catching the mirror up to it; or
  // nullopt when the mirror cannot answer yet (still loading, or the snapshot is older than
  // the mirror): run FTS5. The first call starts the background build.
  // REQUIRES: a read transaction open on `conn`, at schema v4.
  Result<std::optional<std::vector<TextHit>>> Search(Connection& conn, const MirrorQuery& query);

  // SqliteBackend::GetTermStats from the mirror, with the same catch-up and the same
  // nullopt: the live documents, and per term (single 'ascii' tokens; "" for a word that
  // is no single token) the live documents holding it. FTS5's vocabulary table walks a
  // term's whole doclist to count it (~100 ms for a common word at 1M episodes).
  // Unlike Search it never starts the first build. REQUIRES: as Search.
  Result<std::optional<TermStats>> TermStatsOf(Connection& conn, std::span<const std::string> terms);

  MirrorStats Stats() const;

  // Called by the backend after each of its write transactions commits.
  void NoteWrite();

  // Blocks until no build or catch-up runs (tests and benches: to measure the mirror's path).
  void WaitForBuild();

  // The store_state counters a mirror is current with (defined in the .cc).
  struct Marks;

 private:
  struct Index;
  struct Scratch;

  // `answer(index)` on the mirror caught up to `conn`'s snapshot (Search's logic), or
  // nullopt when it cannot answer.
  template <typename T, typename F>
  Result<std::optional<T>> Current(Connection& conn, const F& answer);

  void StartBuild() ENGRAM_LOCKS_EXCLUDED(build_mu_);
  void StartCatchUp() ENGRAM_LOCKS_EXCLUDED(build_mu_);
  // Runs `job` on the background thread unless a job runs already.
  void StartBackground(void (PostingsMirror::*job)()) ENGRAM_LOCKS_EXCLUDED(build_mu_);
  void RunBuild();
  void RunCatchUp();

  const std::shared_ptr<ConnectionPool> pool_;

  mutable std::shared_mutex mu_;
  std::unique_ptr<Index> index_;  // guarded by mu_; null until the first build is published

  Mutex build_mu_;
  CondVar build_done_;
  bool building_ ENGRAM_GUARDED_BY(build_mu_) = false;
  std::thread builder_ ENGRAM_GUARDED_BY(build_mu_);
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> term_stats_{0};
  std::atomic<int64_t> builds_{0};
  std::atomic<int64_t> answered_{0};
  std::atomic<uint64_t> writes_{0};
  // Searches' working memory, as many as have run at once.
  Mutex scratch_mu_;
  std::vector<std::unique_ptr<Scratch>> scratch_ ENGRAM_GUARDED_BY(scratch_mu_);
  std::atomic<std::chrono::steady_clock::time_point> failed_at_{};
  std::atomic<double> build_seconds_{0};
};

}  // namespace engram::sqlite
