// VectorIndex: nearest-neighbour search over the stored episode vectors of one embedding
// space (DESIGN §4), for the semantic side of retrieval.
//
//   VectorIndexOptions options{.path = store_path + ".vectors.hnsw"};
//   ENGRAM_ASSIGN_OR_RETURN(auto index, VectorIndex::Open(store, provider->Space(), options));
//   ENGRAM_RETURN_IF_ERROR(index->CatchUp());  // vectors other processes stored since
//   ENGRAM_ASSIGN_OR_RETURN(std::vector<VectorHit> hits, index->Search(query_vector, 50));
//
// The store is the source of truth; the index is a cache of it that can always be rebuilt.
// Below `exact_below` vectors the index is a contiguous float array scanned exactly (a
// dot product per vector, which at that size is as fast as a graph and never misses);
// from then on it is an hnswlib HNSW graph (inner product on L2-normalised vectors =
// cosine). It never goes back to exact mode.
//
// The graph stores each vector as options.encoding says: int8 by default (one signed byte
// per dimension plus a 4-byte scale: at 100k vectors of 256 dimensions 25 MiB instead of
// 100, the whole index 63 MiB instead of 135), or float32. Int8 cosines differ from exact
// ones by about 0.001, which reorders near-ties: recall@10 against an exact scan is 0.981
// instead of 0.9995 on bench/vector_index_bench.cc's clustered vectors at 100k, while the
// retrieval eval with the graph forced on (exact_below 1) keeps hybrid R@5 0.706 / 0.551
// (all / paraphrase) exactly (bench/eval/README.md "Costs").
//
// Persistence: Save() writes one file at options.path (temp file, fsync, rename): a header
// {magic, format version, payload kind, space key, dimension, M, slot count, max seq,
// sizes, XXH64 of the header and of the payload}, then the payload: the float vectors
// (exact mode) or hnswlib's saveIndex byte format (hnsw mode; the kind says float32 or
// int8 vectors), then the slot table (episode id and seq per hnswlib label). A file whose
// encoding is not options.encoding is rebuilt like a stale one. Open() verifies every size and both checksums, then every graph link, before
// any byte becomes part of the index, so a truncated, corrupt, foreign or stale file is
// never trusted: it is logged and the index is rebuilt from the store. A file is stale
// when none of its newest entries is still in the store under the same seq (the store was
// replaced, restored or re-embedded); vectors stored after the file was written are read
// with ListVectors(space, max_seq) as for any catch-up.
//
// Open saves after a rebuild, so the next process loads instead of rebuilding; otherwise
// the owner calls Save() now and then (it is a no-op when nothing changed) and at exit.
// Several processes may save the same path: each rename is atomic, the last one wins, and
// any of them is valid for all (they index the same store).
//
// Replaced vectors (same episode, new seq) are updated in place (hnswlib updatePoint), so
// an episode is never returned twice.
// Deletions: ListVectors reports what is stored, not what was deleted, so a vector of an
// episode deleted by another process stays in the index until the next rebuild; callers
// load the episodes of the hits and must skip the ones that are gone. Remove() drops one
// at once when this process deletes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/status.h"
#include "engram/storage.h"

namespace engram {

// How the HNSW graph stores vectors (exact mode always keeps float32).
enum class VectorEncoding {
  kFloat32,  // 4 bytes per dimension: exact cosines
  kInt8,     // 1 byte per dimension + a float scale per vector: cosines within ~0.001
};

struct VectorIndexOptions {
  // The persisted index, e.g. "<store>.vectors.hnsw". Empty: memory only (Save does
  // nothing and every Open rebuilds from the store).
  std::string path;
  // Exact scan while fewer vectors than this are indexed; HNSW from then on. The exact
  // scan is exact and its cost grows linearly (about 0.1 ms per 1,000 vectors of 256
  // floats); the graph costs memory for links and ~1-5 % recall.
  size_t exact_below = 5'000;
  // HNSW graph degree (links per node; 2·m on the bottom layer). Larger: better recall,
  // more memory (8·m bytes per vector) and slower inserts. 2..100.
  int m = 16;
  // Candidate list size while inserting. Larger: a better graph, slower builds. >= 1.
  int ef_construction = 100;
  // Candidate list size while searching (at least k). Larger: better recall, slower
  // queries. >= 1. 128 rather than 64: on text embeddings both reach recall@10 ≈ 0.999,
  // but on hard (near-uniform) vectors 64 falls to ~0.93 while 128 keeps ~0.99, for
  // ~0.25 ms more per query at 100k vectors (bench/vector_index_bench.cc).
  int ef_search = 128;
  // Threads that insert in parallel when many vectors arrive at once (a rebuild, a large
  // catch-up). 0: one per hardware thread.
  int build_threads = 0;
  // The graph's vector storage. kInt8 (symmetric scalar quantisation, each vector scaled
  // by its largest component) makes the index 2.2x smaller and searches faster, for
  // recall@10 0.981 instead of 0.9995 against an exact scan (near-ties reorder) and no
  // change in the retrieval eval (see the file comment).
  VectorEncoding encoding = VectorEncoding::kInt8;
};

struct VectorHit {
  std::string episode_id;
  float similarity = 0;  // cosine (dot product of L2-normalised vectors), in [-1, 1]
};

// Thread-safe: Search, size, max_seq and mode run concurrently with each other; Add,
// Remove and the apply phase of CatchUp take the index exclusively for a short time.
class VectorIndex {
 public:
  // Loads options.path if it holds a valid index of `space` that matches `store`, else
  // rebuilds from store.ListVectors(space, 0) (a missing, truncated, corrupt, foreign or
  // stale file is logged as a warning, never an error); then catches up with the store.
  // `store` must outlive the index.
  // Errors: kInvalidArgument (a bad option or space dimension); storage errors from the
  // store; kResourceExhausted (out of memory).
  static Result<std::unique_ptr<VectorIndex>> Open(StorageBackend& store, EmbeddingSpace space,
                                                   VectorIndexOptions options);

  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  // Adds the vectors the store holds with seq > max_seq() (other processes store vectors
  // too). Cheap when nothing is new: one Generation() read. A stored vector that is not
  // finite or of the wrong length is skipped with a warning.
  // Errors: storage errors (the index keeps what it had); kResourceExhausted.
  Status CatchUp();

  // Adds or replaces the vector of v.episode_id, after this process stored it (PutVectors
  // does not report seqs, so v.seq may be 0; CatchUp later sees the stored copy and finds
  // it already there). Errors: kInvalidArgument (empty id, wrong length, not finite);
  // kResourceExhausted.
  Status Add(const EpisodeVector& v);

  // Drops the vector of `episode_id` (the episode was deleted). Returns false if there
  // was none.
  bool Remove(std::string_view episode_id);

  // The k nearest vectors to `query` by cosine, best first, among those `accept` returns
  // true for (empty: all). Exact below exact_below vectors; above, HNSW asks for ever more
  // candidates until k are accepted, and falls back to an exact scan when the filter
  // rejects most of the index. `accept` may be called from the calling thread only, and
  // only for candidates that could make the top k. k == 0 or an empty index: no hits.
  // Errors: kInvalidArgument (query length differs from the space's dimension);
  // kResourceExhausted.
  Result<std::vector<VectorHit>> Search(
      std::span<const float> query, size_t k,
      const std::function<bool(std::string_view episode_id)>& accept = {}) const;

  // The cosine of `query` with the indexed vector of `episode_id`, or nullopt when the
  // episode has none in the index or the query's length is not the space's dimension.
  // For scoring candidates that came from elsewhere (lexical hits).
  std::optional<float> Similarity(std::span<const float> query, std::string_view episode_id) const;

  // Persists the index at options.path atomically (temp file + fsync + rename + fsync of
  // the folder): readers of the path see the old file or the new one, never a mix. Does
  // nothing when the path is empty or nothing changed since the last Open or Save.
  // Searches may run meanwhile; writers wait.
  // Errors: kUnavailable (cannot write the file; the index itself is unaffected).
  Status Save();

  // Vectors indexed (replaced ones counted once, removed ones not).
  size_t size() const;
  // The largest store seq read so far: CatchUp lists vectors after it.
  int64_t max_seq() const;
  // "exact" or "hnsw".
  std::string_view mode() const;
  // About how many bytes of memory the index holds: vectors, graph links and per-node
  // locks, and the slot table (episode ids and seqs). The part of a graph's preallocated
  // capacity that no vector has used yet is left out: it is reserved, never touched, so
  // it is not resident. For memory reports (bench/retrieval_scale_bench).
  size_t MemoryBytes() const;
  const EmbeddingSpace& space() const;

  class Impl;

 private:
  explicit VectorIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace internal {
// XXH64 (github.com/Cyan4973/xxHash): the file's checksums. Exposed for tests that craft
// index files.
uint64_t Xxh64(const void* data, size_t len, uint64_t seed);
}  // namespace internal

}  // namespace engram
