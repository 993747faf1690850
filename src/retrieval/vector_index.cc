#include "retrieval/vector_index.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <queue>
#include <thread>
#include <unordered_map>
#include <utility>

// hnswlib defines non-inline functions in its headers: include it in this file only.
#include <hnswlib/hnswlib.h>

#include "common/logging.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"

namespace engram {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the index file format is little-endian and read with memcpy");

// ---- Annotated reader/writer lock ------------------------------------------------------

#define ENGRAM_ACQUIRE_SHARED_(...) ENGRAM_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define ENGRAM_RELEASE_SHARED_(...) ENGRAM_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define ENGRAM_REQUIRES_SHARED_(...) ENGRAM_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#define ENGRAM_RELEASE_GENERIC_(...) ENGRAM_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))

// Writer-preferring: glibc's default rwlock (and so std::shared_mutex) lets a steady stream
// of searches starve CatchUp and Add forever.
class ENGRAM_CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&mu_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~SharedMutex() { pthread_rwlock_destroy(&mu_); }
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ENGRAM_ACQUIRE() { pthread_rwlock_wrlock(&mu_); }
  void Unlock() ENGRAM_RELEASE() { pthread_rwlock_unlock(&mu_); }
  void LockShared() ENGRAM_ACQUIRE_SHARED_() { pthread_rwlock_rdlock(&mu_); }
  void UnlockShared() ENGRAM_RELEASE_SHARED_() { pthread_rwlock_unlock(&mu_); }

 private:
  pthread_rwlock_t mu_;
};

class ENGRAM_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) ENGRAM_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() ENGRAM_RELEASE() { mu_.Unlock(); }

 private:
  SharedMutex& mu_;
};

class ENGRAM_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) ENGRAM_ACQUIRE_SHARED_(mu) : mu_(mu) { mu_.LockShared(); }
  ~ReaderLock() ENGRAM_RELEASE_GENERIC_() { mu_.UnlockShared(); }

 private:
  SharedMutex& mu_;
};

// ---- XXH64 -----------------------------------------------------------------------------
// The reference algorithm (github.com/Cyan4973/xxHash, BSD-2), written out here rather than
// adding a dependency for 40 lines. Detects corruption; it is not a defence against forgery.

constexpr uint64_t kP1 = 11400714785074694791ULL;
constexpr uint64_t kP2 = 14029467366897019727ULL;
constexpr uint64_t kP3 = 1609587929392839161ULL;
constexpr uint64_t kP4 = 9650029242287828579ULL;
constexpr uint64_t kP5 = 2870177450012600261ULL;

inline uint64_t Read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t Read32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t XxRound(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = std::rotl(acc, 31);
  return acc * kP1;
}
inline uint64_t XxMerge(uint64_t acc, uint64_t val) {
  acc ^= XxRound(0, val);
  return acc * kP1 + kP4;
}

uint64_t Xxh64(const void* data, size_t len, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* end = p + len;
  uint64_t h;
  if (len >= 32) {
    const unsigned char* limit = end - 32;
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    do {
      v1 = XxRound(v1, Read64(p));
      v2 = XxRound(v2, Read64(p + 8));
      v3 = XxRound(v3, Read64(p + 16));
      v4 = XxRound(v4, Read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = std::rotl(v1, 1) + std::rotl(v2, 7) + std::rotl(v3, 12) + std::rotl(v4, 18);
    h = XxMerge(h, v1);
    h = XxMerge(h, v2);
    h = XxMerge(h, v3);
    h = XxMerge(h, v4);
  } else {
    h = seed + kP5;
  }
  h += static_cast<uint64_t>(len);
  while (p + 8 <= end) {
    h ^= XxRound(0, Read64(p));
    h = std::rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(Read32(p)) * kP1;
    h = std::rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= (*p) * kP5;
    h = std::rotl(h, 11) * kP1;
    ++p;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// The payload checksum is XXH64 chained over 1 MiB blocks (each block's seed is the
// previous block's hash), so the writer can hash as it streams.
constexpr size_t kChecksumBlock = size_t{1} << 20;

uint64_t PayloadChecksum(const char* data, size_t len) {
  uint64_t h = 0;
  for (size_t off = 0; off < len; off += kChecksumBlock) {
    h = Xxh64(data + off, std::min(kChecksumBlock, len - off), h);
  }
  return h;
}

// ---- File format -----------------------------------------------------------------------

constexpr char kMagic[8] = {'E', 'N', 'G', 'R', 'M', 'V', 'I', 'X'};
constexpr uint32_t kFormatVersion = 1;
// kHnsw stores float32 vectors in the graph, kHnswInt8 int8 ones (VectorEncoding). A
// reader that predates kHnswInt8 calls it an unknown kind and rebuilds: no version bump.
enum class PayloadKind : uint32_t { kExact = 0, kHnsw = 1, kHnswInt8 = 2 };

// Followed by: the space key (key_bytes), the graph (graph_bytes: exact mode, slots ×
// dimension floats; hnsw mode, hnswlib's saveIndex format) and the slot table
// (table_bytes: per slot, i64 seq, u8 live, u32 id length, id bytes). The payload
// checksum covers those three, the header checksum the header before it.
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t kind;
  uint32_t dimension;
  uint32_t m;
  uint64_t slots;
  uint64_t live;
  int64_t max_seq;
  uint64_t key_bytes;
  uint64_t graph_bytes;
  uint64_t table_bytes;
  uint64_t payload_checksum;
  uint64_t header_checksum;
};
static_assert(sizeof(FileHeader) == 88);
constexpr size_t kHeaderChecksummed = offsetof(FileHeader, header_checksum);

// The fixed part of hnswlib 0.6's saveIndex output, field by field.
struct HnswHeader {
  uint64_t offset_level0;
  uint64_t max_elements;
  uint64_t cur_element_count;
  uint64_t size_data_per_element;
  uint64_t label_offset;
  uint64_t offset_data;
  int32_t maxlevel;
  uint32_t enterpoint_node;
  uint64_t max_m;
  uint64_t max_m0;
  uint64_t m;
  double mult;
  uint64_t ef_construction;
};
static_assert(sizeof(HnswHeader) == 96);

// hnswlib's level-0 link list header: u16 count, u8 flags (bit 0: deleted), u8 unused.
constexpr unsigned char kDeleteMark = 0x01;
// Levels are geometric with ratio 1/M: 40 is unreachable by a real graph.
constexpr int kMaxLevel = 40;

// Reads fields from a byte range; every read is bounds-checked.
class ByteReader {
 public:
  ByteReader(const char* data, size_t size) : p_(data), end_(data + size) {}
  template <typename T>
  bool Read(T* out) {
    if (static_cast<size_t>(end_ - p_) < sizeof(T)) return false;
    std::memcpy(out, p_, sizeof(T));
    p_ += sizeof(T);
    return true;
  }
  const char* Take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return nullptr;
    const char* at = p_;
    p_ += n;
    return at;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

 private:
  const char* p_;
  const char* end_;
};

// Writes a file through a 1 MiB buffer, hashing each full block (see PayloadChecksum).
class ChecksumWriter {
 public:
  explicit ChecksumWriter(int fd) : fd_(fd) { buffer_.reserve(kChecksumBlock); }
  void Append(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0 && ok_) {
      size_t take = std::min(n, kChecksumBlock - buffer_.size());
      buffer_.insert(buffer_.end(), p, p + take);
      p += take;
      n -= take;
      if (buffer_.size() == kChecksumBlock) Flush();
    }
  }
  template <typename T>
  void Put(const T& v) {
    Append(&v, sizeof(T));
  }
  // Flushes the last partial block; returns false if any write failed (errno is set).
  bool Finish() {
    if (!buffer_.empty()) Flush();
    return ok_;
  }
  uint64_t checksum() const { return checksum_; }
  int error() const { return error_; }

 private:
  void Flush() {
    checksum_ = Xxh64(buffer_.data(), buffer_.size(), checksum_);
    const char* p = buffer_.data();
    size_t n = buffer_.size();
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        ok_ = false;
        error_ = errno;
        break;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    buffer_.clear();
  }

  int fd_;
  std::vector<char> buffer_;
  uint64_t checksum_ = 0;
  bool ok_ = true;
  int error_ = 0;
};

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Returns "" on success, else why not ("missing" when the file does not exist).
  std::string Map(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? "missing" : std::string("cannot open: ") + std::strerror(errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      std::string why = std::string("cannot stat: ") + std::strerror(errno);
      ::close(fd);
      return why;
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ < sizeof(FileHeader)) {
      ::close(fd);
      return "truncated (" + std::to_string(size_) + " bytes, shorter than the header)";
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return std::string("cannot map: ") + std::strerror(errno);
    ::madvise(p, size_, MADV_SEQUENTIAL);
    data_ = static_cast<char*>(p);
    return "";
  }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

bool AllFinite(std::span<const float> v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

Status ErrorFromException(std::string_view what, const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr ||
      std::string_view(e.what()).find("memory") != std::string_view::npos) {
    return ResourceExhaustedError(std::string(what) + ": out of memory");
  }
  return InternalError(std::string(what) + ": " + e.what());
}

// Vectors applied per exclusive hold of the index in CatchUp: searches wait for at most
// one batch of inserts (~0.2-0.5 s at dimension 256).
constexpr size_t kApplyBatch = 1024;
constexpr size_t kAnchors = 4;        // newest entries of a loaded file checked against the store

using Hnsw = hnswlib::HierarchicalNSW<float>;

// ---- Int8 vectors ----------------------------------------------------------------------
// A vector v is stored as dim signed bytes q[i] = round(v[i] / scale) and the float scale
// = max|v[i]| / 127 after them, so each vector uses its whole byte range. The dot product
// of two stored vectors is scale_a · scale_b · Σ q_a[i]·q_b[i]: an integer sum the
// compiler vectorises. Queries are encoded the same way (hnswlib hands the distance
// function the query and a stored vector alike).

void EncodeInt8(const float* v, size_t dim, char* out) {
  float max_abs = 0;
  for (size_t i = 0; i < dim; ++i) max_abs = std::max(max_abs, std::fabs(v[i]));
  const float scale = max_abs > 0 ? max_abs / 127.0f : 0.0f;
  const float inverse = max_abs > 0 ? 127.0f / max_abs : 0.0f;
  auto* q = reinterpret_cast<int8_t*>(out);
  for (size_t i = 0; i < dim; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::lround(v[i] * inverse), -127L, 127L));
  }
  std::memcpy(out + dim, &scale, sizeof scale);
}

float Int8Distance(const void* a, const void* b, const void* param) {
  const size_t dim = *static_cast<const size_t*>(param);
  const auto* x = static_cast<const int8_t*>(a);
  const auto* y = static_cast<const int8_t*>(b);
  int32_t dot = 0;
  for (size_t i = 0; i < dim; ++i) dot += static_cast<int16_t>(x[i]) * static_cast<int16_t>(y[i]);
  float sx, sy;
  std::memcpy(&sx, x + dim, sizeof sx);
  std::memcpy(&sy, y + dim, sizeof sy);
  return 1.0f - sx * sy * static_cast<float>(dot);
}

// hnswlib's view of int8 vectors: dim bytes + the scale, compared by Int8Distance.
class Int8Space : public hnswlib::SpaceInterface<float> {
 public:
  explicit Int8Space(size_t dim) : dim_(dim) {}
  size_t get_data_size() override { return dim_ + sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &Int8Distance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  size_t dim_;
};

// Removes "<path>.tmp-<pid>-<n>" files of Saves whose process died mid-write. Files of
// live processes (any process, this one included) are left alone.
void RemoveAbandonedTempFiles(const std::string& path) {
  std::filesystem::path p(path);
  std::filesystem::path dir = p.parent_path().empty() ? std::filesystem::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    std::filesystem::remove(entry.path(), ignored);
  }
}

}  // namespace

// ---- Impl ------------------------------------------------------------------------------

class VectorIndex::Impl {
 public:
  Impl(StorageBackend& store, EmbeddingSpace space, VectorIndexOptions options)
      : store_(store),
        space_(std::move(space)),
        options_(std::move(options)),
        dim_(static_cast<size_t>(space_.dimension)),
        metric_(dim_),
        dist_(metric_.get_dist_func()),
        dist_param_(metric_.get_dist_func_param()),
        int8_space_(dim_),
        graph_space_(options_.encoding == VectorEncoding::kInt8
                         ? static_cast<hnswlib::SpaceInterface<float>*>(&int8_space_)
                         : &metric_),
        graph_dist_(graph_space_->get_dist_func()),
        graph_dist_param_(graph_space_->get_dist_func_param()),
        code_size_(graph_space_->get_data_size()) {}

  // Loads options_.path if it is valid and matches the store. Returns whether it did;
  // file problems are logged, only store errors are returned.
  Result<bool> LoadFile() ENGRAM_LOCKS_EXCLUDED(mu_);
  Status CatchUp() ENGRAM_LOCKS_EXCLUDED(mu_, catch_up_mu_);
  Status Add(const EpisodeVector& v) ENGRAM_LOCKS_EXCLUDED(mu_);
  bool Remove(std::string_view episode_id) ENGRAM_LOCKS_EXCLUDED(mu_);
  Result<std::vector<VectorHit>> Search(std::span<const float> query, size_t k,
                                        const std::function<bool(std::string_view)>& accept) const
      ENGRAM_LOCKS_EXCLUDED(mu_);
  Status Save() ENGRAM_LOCKS_EXCLUDED(mu_);
  std::optional<float> SimilarityTo(std::span<const float> query, std::string_view episode_id) const
      ENGRAM_LOCKS_EXCLUDED(mu_) {
    if (query.size() != dim_) return std::nullopt;
    ReaderLock l(mu_);
    auto it = slot_of_.find(std::string(episode_id));
    if (it == slot_of_.end()) return std::nullopt;
    if (hnsw_ == nullptr) return Similarity(query.data(), flat_.data() + size_t{it->second} * dim_);
    const char* data = NodeDataLocked(it->second);
    if (data == nullptr) return std::nullopt;
    std::vector<char> code = Encode(query.data());
    return GraphSimilarity(code.data(), data);
  }

  size_t size() const ENGRAM_LOCKS_EXCLUDED(mu_) {
    ReaderLock l(mu_);
    return slot_of_.size();
  }
  int64_t max_seq() const ENGRAM_LOCKS_EXCLUDED(mu_) {
    ReaderLock l(mu_);
    return max_seq_;
  }
  std::string_view mode() const ENGRAM_LOCKS_EXCLUDED(mu_) {
    ReaderLock l(mu_);
    return hnsw_ != nullptr ? "hnsw" : "exact";
  }
  const EmbeddingSpace& space() const { return space_; }
  const std::string& Path() const { return options_.path; }
  size_t MemoryBytes() const ENGRAM_LOCKS_EXCLUDED(mu_);
  // Marks the current state as saved (after a load, nothing is new).
  void MarkClean() { saved_version_.store(version_.load()); }

 private:
  struct Candidate {
    float similarity;
    uint32_t slot;
  };

  float Similarity(const float* a, const void* b) const { return 1.0f - dist_(a, b, dist_param_); }
  // Between two vectors in the graph's encoding (Encode's output or a graph node's data).
  float GraphSimilarity(const void* a, const void* b) const { return 1.0f - graph_dist_(a, b, graph_dist_param_); }
  // `v` (dim_ floats) in the graph's encoding: code_size_ bytes.
  void EncodeInto(const float* v, char* out) const {
    if (options_.encoding == VectorEncoding::kInt8) {
      EncodeInt8(v, dim_, out);
    } else {
      std::memcpy(out, v, dim_ * sizeof(float));
    }
  }
  std::vector<char> Encode(const float* v) const {
    std::vector<char> out(code_size_);
    EncodeInto(v, out.data());
    return out;
  }

  // Applies vectors in seq order (a later one of the same episode wins). `from_store`:
  // they came from ListVectors, so max_seq_ advances and bad ones are skipped, not refused.
  Status ApplyLocked(std::vector<EpisodeVector>& batch, bool from_store) ENGRAM_REQUIRES(mu_);
  // Inserts `items` (slot, vector) into hnsw_ on up to build_threads threads.
  Status InsertLocked(const std::vector<std::pair<uint32_t, const float*>>& items) ENGRAM_REQUIRES(mu_);
  // Replaces the exact array by a graph of the same vectors.
  Status BuildHnswLocked(size_t capacity) ENGRAM_REQUIRES(mu_);
  void ResetLocked() ENGRAM_REQUIRES(mu_);
  // The vector of a slot's graph node (hnsw mode), or null if it has none.
  const char* NodeDataLocked(uint32_t slot) const ENGRAM_REQUIRES_SHARED_(mu_) {
    auto it = hnsw_->label_lookup_.find(slot);
    return it == hnsw_->label_lookup_.end() ? nullptr : hnsw_->getDataByInternalId(it->second);
  }
  uint32_t NewSlotLocked(const std::string& id, int64_t seq) ENGRAM_REQUIRES(mu_);

  // Top k of an exhaustive scan; `accept` is asked only about candidates that would enter.
  // for_each(visit) calls visit(slot, similarity to the query) for every vector.
  template <typename ForEach>
  std::vector<VectorHit> ScanLocked(size_t k, const std::function<bool(std::string_view)>& accept,
                                    ForEach for_each) const ENGRAM_REQUIRES_SHARED_(mu_);
  Result<std::vector<VectorHit>> SearchHnswLocked(const float* query, size_t k,
                                                  const std::function<bool(std::string_view)>& accept) const
      ENGRAM_REQUIRES_SHARED_(mu_);

  // Parses and checks a mapped file; on success fills the index (under mu_).
  std::string LoadMapped(const MappedFile& file) ENGRAM_LOCKS_EXCLUDED(mu_);
  std::string LoadHnswGraph(const char* graph, size_t bytes, const std::vector<bool>& live)
      ENGRAM_REQUIRES(mu_);
  Status WriteFile(const std::string& tmp) const ENGRAM_REQUIRES_SHARED_(mu_);

  size_t Threads() const {
    if (options_.build_threads > 0) return static_cast<size_t>(options_.build_threads);
    return std::max<size_t>(1, std::thread::hardware_concurrency());
  }

  // Constant after construction.
  StorageBackend& store_;
  const EmbeddingSpace space_;
  const VectorIndexOptions options_;
  const size_t dim_;
  hnswlib::InnerProductSpace metric_;  // float32 vectors: exact mode, and the graph's when kFloat32
  hnswlib::DISTFUNC<float> dist_;
  void* dist_param_;
  Int8Space int8_space_;
  hnswlib::SpaceInterface<float>* graph_space_;  // hnsw_ keeps this pointer
  hnswlib::DISTFUNC<float> graph_dist_;
  void* graph_dist_param_;
  const size_t code_size_;  // bytes of one vector in the graph

  // Serialises CatchUp, whose store reads happen outside mu_.
  Mutex catch_up_mu_;
  // The store generation and max_seq() after the last complete CatchUp: when neither
  // moved there is nothing to read (a reset of the index moves max_seq back to 0).
  int64_t last_generation_ ENGRAM_GUARDED_BY(catch_up_mu_) = -1;
  int64_t last_max_seq_ ENGRAM_GUARDED_BY(catch_up_mu_) = -1;

  // Bumped by every change; Save records what it wrote, so it can skip when clean.
  std::atomic<uint64_t> version_{0};
  std::atomic<uint64_t> saved_version_{0};
  std::atomic<uint64_t> temp_counter_{0};

  // The index. Slots are hnswlib labels; in exact mode slot i is flat_[i·dim, (i+1)·dim)
  // and slots are dense (Remove moves the last one into the hole). In hnsw mode a removed
  // slot keeps its graph node, marked deleted, and slot_ids_[slot] is null.
  mutable SharedMutex mu_;
  std::unordered_map<std::string, uint32_t> slot_of_ ENGRAM_GUARDED_BY(mu_);
  std::vector<const std::string*> slot_ids_ ENGRAM_GUARDED_BY(mu_);  // keys of slot_of_
  std::vector<int64_t> slot_seq_ ENGRAM_GUARDED_BY(mu_);             // 0: added, not yet seen in the store
  std::vector<float> flat_ ENGRAM_GUARDED_BY(mu_);
  std::unique_ptr<Hnsw> hnsw_ ENGRAM_GUARDED_BY(mu_);
  int64_t max_seq_ ENGRAM_GUARDED_BY(mu_) = 0;
};

size_t VectorIndex::Impl::MemoryBytes() const {
  ReaderLock l(mu_);
  // An unordered_map node: the value, the next pointer and the cached hash.
  constexpr size_t kNodeOverhead = 2 * sizeof(void*);
  size_t bytes = flat_.capacity() * sizeof(float) + slot_ids_.capacity() * sizeof(const std::string*) +
                 slot_seq_.capacity() * sizeof(int64_t);
  bytes += slot_of_.bucket_count() * sizeof(void*) +
           slot_of_.size() * (sizeof(std::pair<const std::string, uint32_t>) + kNodeOverhead);
  for (const auto& [id, slot] : slot_of_) {
    if (id.capacity() > 15) bytes += id.capacity() + 1;  // beyond the small-string buffer
  }
  if (hnsw_ != nullptr) {
    const Hnsw& g = *hnsw_;
    const size_t used = g.cur_element_count;
    bytes += used * g.size_data_per_element_;  // level 0: links, vector, label
    for (size_t i = 0; i < used; ++i) {
      if (g.element_levels_[i] > 0) bytes += g.size_links_per_element_ * static_cast<size_t>(g.element_levels_[i]) + 1;
    }
    // Per-node locks and levels are constructed (touched) for the whole capacity up front.
    bytes += g.max_elements_ * (sizeof(std::mutex) + sizeof(int)) + used * sizeof(void*);
    bytes += g.label_lookup_.bucket_count() * sizeof(void*) +
             g.label_lookup_.size() * (sizeof(std::pair<const hnswlib::labeltype, hnswlib::tableint>) + kNodeOverhead);
  }
  return bytes;
}

void VectorIndex::Impl::ResetLocked() {
  slot_of_.clear();
  slot_ids_.clear();
  slot_seq_.clear();
  std::vector<float>().swap(flat_);
  hnsw_.reset();
  max_seq_ = 0;
  version_.fetch_add(1);
}

uint32_t VectorIndex::Impl::NewSlotLocked(const std::string& id, int64_t seq) {
  auto slot = static_cast<uint32_t>(slot_ids_.size());
  auto [it, inserted] = slot_of_.emplace(id, slot);
  slot_ids_.push_back(&it->first);
  slot_seq_.push_back(seq);
  return slot;
}

Status VectorIndex::Impl::InsertLocked(const std::vector<std::pair<uint32_t, const float*>>& items) {
  if (items.empty()) return OkStatus();
  // hnswlib's addPoint may run concurrently for distinct labels; small batches are not
  // worth a thread.
  size_t threads = std::min(Threads(), items.size() / 256 + 1);
  std::atomic<size_t> next{0};
  Mutex error_mu;
  Status error;
  Hnsw* index = hnsw_.get();
  auto work = [&] {
    try {
      std::vector<char> code(code_size_);
      for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1)) {
        EncodeInto(items[i].second, code.data());
        index->addPoint(code.data(), items[i].first);
      }
    } catch (const std::exception& e) {
      next.store(items.size());
      MutexLock l(error_mu);
      if (error.ok()) error = ErrorFromException("vector index insert", e);
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }
  MutexLock l(error_mu);
  return error;
}

Status VectorIndex::Impl::BuildHnswLocked(size_t capacity) {
  try {
    hnsw_ = std::make_unique<Hnsw>(graph_space_, std::max<size_t>(capacity, 1024),
                                   static_cast<size_t>(options_.m),
                                   static_cast<size_t>(options_.ef_construction));
  } catch (const std::exception& e) {
    hnsw_.reset();
    return ErrorFromException("vector index build", e);
  }
  hnsw_->setEf(static_cast<size_t>(options_.ef_search));
  std::vector<std::pair<uint32_t, const float*>> items;
  items.reserve(slot_ids_.size());
  for (uint32_t s = 0; s < slot_ids_.size(); ++s) items.emplace_back(s, flat_.data() + size_t{s} * dim_);
  Status st = InsertLocked(items);
  if (!st.ok()) {
    hnsw_.reset();
    return st;
  }
  std::vector<float>().swap(flat_);
  return OkStatus();
}

Status VectorIndex::Impl::ApplyLocked(std::vector<EpisodeVector>& batch, bool from_store) {
  // The last vector of each episode in the batch wins.
  std::unordered_map<std::string_view, size_t> last;
  last.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) last[batch[i].episode_id] = i;

  std::vector<size_t> fresh;  // indices into batch of episodes not in the index
  for (size_t i = 0; i < batch.size(); ++i) {
    EpisodeVector& v = batch[i];
    if (from_store) max_seq_ = std::max(max_seq_, v.seq);
    if (last[v.episode_id] != i) continue;
    if (v.vector.size() != dim_ || !AllFinite(v.vector) || v.episode_id.empty()) {
      LogWarn("vector index: skipping a stored vector that is malformed",
              {{"episode_id", v.episode_id}, {"seq", std::to_string(v.seq)},
               {"length", std::to_string(v.vector.size())}});
      continue;
    }
    auto it = slot_of_.find(v.episode_id);
    if (it == slot_of_.end()) {
      fresh.push_back(i);
      continue;
    }
    uint32_t slot = it->second;
    slot_seq_[slot] = std::max(slot_seq_[slot], v.seq);
    if (hnsw_ == nullptr) {
      float* dst = flat_.data() + size_t{slot} * dim_;
      if (std::memcmp(dst, v.vector.data(), dim_ * sizeof(float)) != 0) {
        std::memcpy(dst, v.vector.data(), dim_ * sizeof(float));
        version_.fetch_add(1);
      }
      continue;
    }
    const char* old = NodeDataLocked(slot);
    std::vector<char> code = Encode(v.vector.data());
    if (old != nullptr && std::memcmp(old, code.data(), code_size_) == 0) continue;
    try {
      // An existing label: hnswlib updates the point in place and repairs its links.
      hnsw_->addPoint(code.data(), slot);
    } catch (const std::exception& e) {
      ResetLocked();
      return ErrorFromException("vector index update", e);
    }
    version_.fetch_add(1);
  }
  if (fresh.empty()) return OkStatus();
  version_.fetch_add(1);

  if (hnsw_ == nullptr) {
    size_t first = slot_ids_.size();
    flat_.reserve((first + fresh.size()) * dim_);
    for (size_t i : fresh) {
      NewSlotLocked(batch[i].episode_id, from_store ? batch[i].seq : 0);
      flat_.insert(flat_.end(), batch[i].vector.begin(), batch[i].vector.end());
    }
    if (slot_of_.size() < options_.exact_below) return OkStatus();
    Status st = BuildHnswLocked(slot_ids_.size() * 2);
    if (!st.ok()) ResetLocked();
    return st;
  }

  size_t need = slot_ids_.size() + fresh.size();
  if (need > hnsw_->max_elements_) {
    try {
      hnsw_->resizeIndex(std::max(need, hnsw_->max_elements_ * 2));
    } catch (const std::exception& e) {
      ResetLocked();
      return ErrorFromException("vector index resize", e);
    }
  }
  std::vector<std::pair<uint32_t, const float*>> items;
  items.reserve(fresh.size());
  for (size_t i : fresh) {
    uint32_t slot = NewSlotLocked(batch[i].episode_id, from_store ? batch[i].seq : 0);
    items.emplace_back(slot, batch[i].vector.data());
  }
  Status st = InsertLocked(items);
  // A half-inserted batch leaves slots without nodes: start over from the store.
  if (!st.ok()) ResetLocked();
  return st;
}

Status VectorIndex::Impl::CatchUp() {
  MutexLock catch_up(catch_up_mu_);
  ENGRAM_ASSIGN_OR_RETURN(int64_t generation, store_.Generation());
  int64_t after = max_seq();
  if (generation == last_generation_ && after == last_max_seq_) return OkStatus();
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<VectorStream> stream, store_.ListVectors(space_, after));
  std::vector<EpisodeVector> batch;
  // The first batch of a rebuild is large so the exact array turns into a graph in one
  // parallel build rather than one vector at a time.
  size_t batch_size = after == 0 ? std::max(kApplyBatch, options_.exact_below) : kApplyBatch;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<EpisodeVector> v, stream->Next());
    if (v.has_value()) batch.push_back(*std::move(v));
    if (batch.size() >= batch_size || (!v.has_value() && !batch.empty())) {
      WriterLock l(mu_);
      ENGRAM_RETURN_IF_ERROR(ApplyLocked(batch, /*from_store=*/true));
      batch.clear();
      batch_size = kApplyBatch;
    }
    if (!v.has_value()) break;
  }
  last_generation_ = generation;
  last_max_seq_ = max_seq();
  return OkStatus();
}

Status VectorIndex::Impl::Add(const EpisodeVector& v) {
  if (v.episode_id.empty()) return InvalidArgumentError("vector index: empty episode id");
  if (v.vector.size() != dim_) {
    return InvalidArgumentError("vector index: vector of " + std::to_string(v.vector.size()) +
                                " values, the space " + space_.Key() + " has " + std::to_string(dim_));
  }
  if (!AllFinite(v.vector)) return InvalidArgumentError("vector index: vector has a NaN or infinite value");
  std::vector<EpisodeVector> batch{v};
  WriterLock l(mu_);
  return ApplyLocked(batch, /*from_store=*/false);
}

bool VectorIndex::Impl::Remove(std::string_view episode_id) {
  WriterLock l(mu_);
  auto it = slot_of_.find(std::string(episode_id));
  if (it == slot_of_.end()) return false;
  uint32_t slot = it->second;
  version_.fetch_add(1);
  if (hnsw_ != nullptr) {
    try {
      hnsw_->markDelete(slot);
    } catch (const std::exception& e) {
      // The graph lost track of the slot: start over from the store.
      LogWarn("vector index inconsistent; rebuilding it", {{"error", e.what()}});
      ResetLocked();
      return true;
    }
    slot_ids_[slot] = nullptr;
    slot_seq_[slot] = 0;
    slot_of_.erase(it);
    return true;
  }
  auto last = static_cast<uint32_t>(slot_ids_.size() - 1);
  slot_of_.erase(it);
  if (slot != last) {
    std::memcpy(flat_.data() + size_t{slot} * dim_, flat_.data() + size_t{last} * dim_, dim_ * sizeof(float));
    slot_ids_[slot] = slot_ids_[last];
    slot_seq_[slot] = slot_seq_[last];
    slot_of_[*slot_ids_[slot]] = slot;
  }
  slot_ids_.pop_back();
  slot_seq_.pop_back();
  flat_.resize(size_t{last} * dim_);
  return true;
}

template <typename ForEach>
std::vector<VectorHit> VectorIndex::Impl::ScanLocked(size_t k, const std::function<bool(std::string_view)>& accept,
                                                     ForEach for_each) const {
  auto worse = [](const Candidate& a, const Candidate& b) { return a.similarity > b.similarity; };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> top(worse);  // min at top
  const std::string* const* ids = slot_ids_.data();
  for_each([&](uint32_t slot, float sim) {
    if (top.size() >= k && !(sim > top.top().similarity)) return;
    if (accept && !accept(*ids[slot])) return;
    top.push({sim, slot});
    if (top.size() > k) top.pop();
  });
  std::vector<VectorHit> hits(top.size());
  for (size_t i = hits.size(); i-- > 0;) {
    hits[i] = {*slot_ids_[top.top().slot], top.top().similarity};
    top.pop();
  }
  return hits;
}

Result<std::vector<VectorHit>> VectorIndex::Impl::SearchHnswLocked(
    const float* query, size_t k, const std::function<bool(std::string_view)>& accept) const {
  const size_t live = slot_of_.size();
  std::unordered_map<uint32_t, bool> verdicts;  // accept's answers, asked once per slot
  size_t ask = std::min(k, live);
  const std::vector<char> code = Encode(query);
  for (;;) {
    std::priority_queue<std::pair<float, hnswlib::labeltype>> found;
    try {
      found = hnsw_->searchKnn(code.data(), ask);
    } catch (const std::exception& e) {
      return ErrorFromException("vector index search", e);
    }
    std::vector<Candidate> ranked(found.size());
    for (size_t i = ranked.size(); i-- > 0;) {  // the queue pops the farthest first
      ranked[i] = {1.0f - found.top().first, static_cast<uint32_t>(found.top().second)};
      found.pop();
    }
    std::vector<VectorHit> kept;
    for (const Candidate& c : ranked) {
      const std::string& id = *slot_ids_[c.slot];
      if (accept) {
        auto [it, ask_now] = verdicts.try_emplace(c.slot, false);
        if (ask_now) it->second = accept(id);
        if (!it->second) continue;
      }
      kept.push_back({id, c.similarity});
      if (kept.size() == k) return kept;
    }
    if (!accept) return kept;
    if (ask >= live) return kept;
    // Ask again for as many candidates as the acceptance rate so far says k accepted ones
    // need. A graph search computes about 4·M distances per candidate, scattered in memory;
    // when that outweighs one sequential pass over the index, scan it exactly instead
    // (a selective filter, e.g. a small domain): cheaper, and it cannot miss.
    double rate = static_cast<double>(std::max<size_t>(kept.size(), 1)) / static_cast<double>(std::max<size_t>(ranked.size(), 1));
    size_t want = std::max(ask * 2, static_cast<size_t>(static_cast<double>(k) / rate * 1.25) + 1);
    if (want * 4 * static_cast<size_t>(options_.m) > live) {
      const Hnsw& index = *hnsw_;
      return ScanLocked(k, accept, [&](auto&& visit) {
        for (hnswlib::tableint i = 0; i < index.cur_element_count; ++i) {
          if (index.isMarkedDeleted(i)) continue;
          visit(static_cast<uint32_t>(index.getExternalLabel(i)),
                GraphSimilarity(code.data(), index.getDataByInternalId(i)));
        }
      });
    }
    ask = std::min(want, live);
  }
}

Result<std::vector<VectorHit>> VectorIndex::Impl::Search(
    std::span<const float> query, size_t k, const std::function<bool(std::string_view)>& accept) const {
  if (query.size() != dim_) {
    return InvalidArgumentError("vector index: query of " + std::to_string(query.size()) +
                                " values, the space " + space_.Key() + " has " + std::to_string(dim_));
  }
  ReaderLock l(mu_);
  if (k == 0 || slot_of_.empty()) return std::vector<VectorHit>{};
  if (hnsw_ != nullptr) return SearchHnswLocked(query.data(), k, accept);
  const auto slots = static_cast<uint32_t>(slot_ids_.size());
  const float* flat = flat_.data();
  return ScanLocked(k, accept, [&](auto&& visit) {
    for (uint32_t s = 0; s < slots; ++s) visit(s, Similarity(query.data(), flat + size_t{s} * dim_));
  });
}

// ---- Persistence -----------------------------------------------------------------------

Status VectorIndex::Impl::Save() {
  if (options_.path.empty()) return OkStatus();
  uint64_t version = version_.load();
  if (version == saved_version_.load()) return OkStatus();
  std::string tmp = options_.path + ".tmp-" + std::to_string(::getpid()) + "-" +
                    std::to_string(temp_counter_.fetch_add(1));
  {
    ReaderLock l(mu_);
    version = version_.load();  // writers are excluded from here on
    Status st = WriteFile(tmp);
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), options_.path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return UnavailableError("vector index: cannot rename " + tmp + " to " + options_.path + ": " +
                            std::strerror(err));
  }
  // The rename is durable once the folder is synced.
  std::string dir = std::filesystem::path(options_.path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  saved_version_.store(version);
  return OkStatus();
}

Status VectorIndex::Impl::WriteFile(const std::string& tmp) const {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return UnavailableError("vector index: cannot create " + tmp + ": " + std::strerror(errno));
  }
  auto fail = [&](int err) {
    ::close(fd);
    return UnavailableError("vector index: cannot write " + tmp + ": " + std::strerror(err));
  };

  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.kind = static_cast<uint32_t>(hnsw_ == nullptr                                  ? PayloadKind::kExact
                                 : options_.encoding == VectorEncoding::kInt8 ? PayloadKind::kHnswInt8
                                                                              : PayloadKind::kHnsw);
  h.dimension = static_cast<uint32_t>(dim_);
  h.m = static_cast<uint32_t>(options_.m);
  h.slots = slot_ids_.size();
  h.live = slot_of_.size();
  h.max_seq = max_seq_;
  std::string key = space_.Key();
  h.key_bytes = key.size();
  if (hnsw_ == nullptr) {
    h.graph_bytes = slot_ids_.size() * dim_ * sizeof(float);
  } else {
    h.graph_bytes = sizeof(HnswHeader) + hnsw_->cur_element_count * hnsw_->size_data_per_element_;
    for (size_t i = 0; i < hnsw_->cur_element_count; ++i) {
      h.graph_bytes += sizeof(uint32_t) + hnsw_->size_links_per_element_ * hnsw_->element_levels_[i];
    }
  }
  h.table_bytes = 0;
  for (const std::string* id : slot_ids_) {
    h.table_bytes += sizeof(int64_t) + sizeof(uint8_t) + sizeof(uint32_t) + (id != nullptr ? id->size() : 0);
  }

  // The header goes in last, once the payload checksum is known.
  if (::lseek(fd, sizeof(FileHeader), SEEK_SET) < 0) return fail(errno);
  ChecksumWriter w(fd);
  w.Append(key.data(), key.size());
  if (hnsw_ == nullptr) {
    w.Append(flat_.data(), flat_.size() * sizeof(float));
  } else {
    // Exactly what hnswlib's saveIndex writes.
    HnswHeader g{};
    g.offset_level0 = hnsw_->offsetLevel0_;
    g.max_elements = hnsw_->max_elements_;
    g.cur_element_count = hnsw_->cur_element_count;
    g.size_data_per_element = hnsw_->size_data_per_element_;
    g.label_offset = hnsw_->label_offset_;
    g.offset_data = hnsw_->offsetData_;
    g.maxlevel = hnsw_->maxlevel_;
    g.enterpoint_node = hnsw_->enterpoint_node_;
    g.max_m = hnsw_->maxM_;
    g.max_m0 = hnsw_->maxM0_;
    g.m = hnsw_->M_;
    g.mult = hnsw_->mult_;
    g.ef_construction = hnsw_->ef_construction_;
    w.Put(g);
    w.Append(hnsw_->data_level0_memory_, hnsw_->cur_element_count * hnsw_->size_data_per_element_);
    for (size_t i = 0; i < hnsw_->cur_element_count; ++i) {
      auto bytes = static_cast<uint32_t>(hnsw_->size_links_per_element_ * hnsw_->element_levels_[i]);
      w.Put(bytes);
      if (bytes > 0) w.Append(hnsw_->linkLists_[i], bytes);
    }
  }
  for (size_t s = 0; s < slot_ids_.size(); ++s) {
    const std::string* id = slot_ids_[s];
    w.Put(slot_seq_[s]);
    w.Put(static_cast<uint8_t>(id != nullptr ? 1 : 0));
    w.Put(static_cast<uint32_t>(id != nullptr ? id->size() : 0));
    if (id != nullptr) w.Append(id->data(), id->size());
  }
  if (!w.Finish()) return fail(w.error());
  h.payload_checksum = w.checksum();
  h.header_checksum = Xxh64(&h, kHeaderChecksummed, 0);
  if (::pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return fail(errno);
  if (::fsync(fd) != 0) return fail(errno);
  if (::close(fd) != 0) {
    return UnavailableError("vector index: cannot write " + tmp + ": " + std::strerror(errno));
  }
  return OkStatus();
}

Result<bool> VectorIndex::Impl::LoadFile() {
  MappedFile file;
  std::string why = file.Map(options_.path);
  if (why.empty()) why = LoadMapped(file);
  if (!why.empty()) {
    if (why == "missing") {
      LogInfo("vector index file missing; building it from the store", {{"path", options_.path}});
    } else {
      LogWarn("vector index file unusable; rebuilding it from the store",
              {{"path", options_.path}, {"reason", why}});
    }
    return false;
  }

  // The file must describe this store: at least one of its newest entries must still be
  // stored under the same seq. A store that was replaced, restored from a backup or
  // re-embedded has other seqs (or none) there.
  std::vector<std::pair<int64_t, std::string>> anchors;
  {
    ReaderLock l(mu_);
    for (uint32_t s = 0; s < slot_ids_.size(); ++s) {
      if (slot_ids_[s] != nullptr && slot_seq_[s] > 0) anchors.emplace_back(slot_seq_[s], *slot_ids_[s]);
    }
  }
  if (!anchors.empty()) {
    size_t n = std::min(kAnchors, anchors.size());
    std::partial_sort(anchors.begin(), anchors.begin() + static_cast<std::ptrdiff_t>(n), anchors.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    bool confirmed = false;
    for (size_t i = 0; i < n && !confirmed; ++i) {
      ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<VectorStream> stream,
                              store_.ListVectors(space_, anchors[i].first - 1));
      ENGRAM_ASSIGN_OR_RETURN(std::optional<EpisodeVector> v, stream->Next());
      confirmed = v.has_value() && v->seq == anchors[i].first && v->episode_id == anchors[i].second;
    }
    if (!confirmed) {
      LogWarn("vector index file does not match the store (stale); rebuilding it",
              {{"path", options_.path}});
      WriterLock l(mu_);
      ResetLocked();
      return false;
    }
  }
  MarkClean();
  return true;
}

std::string VectorIndex::Impl::LoadMapped(const MappedFile& file) {
  FileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return "not an engram vector index (bad magic)";
  if (Xxh64(&h, kHeaderChecksummed, 0) != h.header_checksum) return "header checksum mismatch";
  if (h.version != kFormatVersion) return "format version " + std::to_string(h.version) + " (this build reads 1)";
  // Sizes must add up exactly, without overflow.
  const uint64_t body = file.size() - sizeof h;
  if (h.key_bytes > body || h.graph_bytes > body - h.key_bytes ||
      h.table_bytes != body - h.key_bytes - h.graph_bytes) {
    return "sizes do not add up to the file size (" + std::to_string(file.size()) + " bytes)";
  }
  const char* key = file.data() + sizeof h;
  if (std::string_view(key, h.key_bytes) != space_.Key()) {
    return "another embedding space (" + std::string(key, std::min<uint64_t>(h.key_bytes, 200)) + ")";
  }
  if (h.dimension != dim_) return "another dimension";
  if (h.m != static_cast<uint32_t>(options_.m)) return "built with M=" + std::to_string(h.m);
  if (h.kind > static_cast<uint32_t>(PayloadKind::kHnswInt8)) return "unknown payload kind";
  const bool int8 = options_.encoding == VectorEncoding::kInt8;
  if (h.kind == static_cast<uint32_t>(PayloadKind::kHnsw) && int8) return "float32 graph, int8 wanted";
  if (h.kind == static_cast<uint32_t>(PayloadKind::kHnswInt8) && !int8) return "int8 graph, float32 wanted";
  if (h.slots > std::numeric_limits<uint32_t>::max() || h.live > h.slots || h.max_seq < 0) {
    return "bad counts";
  }
  if (PayloadChecksum(key, body) != h.payload_checksum) return "payload checksum mismatch";

  // The slot table.
  std::vector<std::string> ids(h.slots);
  std::vector<int64_t> seqs(h.slots);
  std::vector<bool> live(h.slots);
  {
    ByteReader r(key + h.key_bytes + h.graph_bytes, h.table_bytes);
    size_t live_count = 0;
    for (size_t s = 0; s < h.slots; ++s) {
      uint8_t flag;
      uint32_t len;
      if (!r.Read(&seqs[s]) || !r.Read(&flag) || !r.Read(&len)) return "slot table truncated";
      const char* id = r.Take(len);
      if (id == nullptr || flag > 1 || (flag == 1) != (len > 0)) return "slot table malformed";
      if (seqs[s] < 0 || seqs[s] > h.max_seq) return "slot seq out of range";
      ids[s].assign(id, len);
      live[s] = flag == 1;
      live_count += flag;
    }
    if (r.remaining() != 0 || live_count != h.live) return "slot table malformed";
  }

  WriterLock l(mu_);
  ResetLocked();
  for (size_t s = 0; s < h.slots; ++s) {
    if (!live[s]) {
      slot_ids_.push_back(nullptr);
      slot_seq_.push_back(0);
      continue;
    }
    auto [it, inserted] = slot_of_.emplace(std::move(ids[s]), static_cast<uint32_t>(s));
    if (!inserted) {
      ResetLocked();
      return "an episode id appears twice";
    }
    slot_ids_.push_back(&it->first);
    slot_seq_.push_back(seqs[s]);
  }
  max_seq_ = h.max_seq;
  const char* graph = key + h.key_bytes;
  if (static_cast<PayloadKind>(h.kind) == PayloadKind::kExact) {
    if (h.live != h.slots || h.graph_bytes != h.slots * dim_ * sizeof(float)) {
      ResetLocked();
      return "exact payload of the wrong size";
    }
    flat_.resize(h.slots * dim_);
    std::memcpy(flat_.data(), graph, h.graph_bytes);
    for (float x : flat_) {
      if (!std::isfinite(x)) {
        ResetLocked();
        return "a stored vector is not finite";
      }
    }
    // A file written below the threshold by a process with another setting.
    if (slot_of_.size() >= options_.exact_below) {
      Status st = BuildHnswLocked(slot_ids_.size() * 2);
      if (!st.ok()) {
        ResetLocked();
        return st.ToString();
      }
    }
    return "";
  }
  std::string err = LoadHnswGraph(graph, h.graph_bytes, live);
  if (!err.empty()) ResetLocked();
  return err;
}

// hnswlib trusts what it loads (a bad link is an out-of-bounds read), so every field,
// count and link is checked here before the graph is assembled.
std::string VectorIndex::Impl::LoadHnswGraph(const char* graph, size_t bytes, const std::vector<bool>& live) {
  ByteReader r(graph, bytes);
  HnswHeader g;
  if (!r.Read(&g)) return "graph header truncated";
  const size_t m = static_cast<size_t>(options_.m);
  const size_t links0 = 2 * m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  const size_t links = m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  const size_t per_element = links0 + code_size_ + sizeof(hnswlib::labeltype);
  const size_t n = live.size();
  if (g.offset_level0 != 0 || g.cur_element_count != n || g.size_data_per_element != per_element ||
      g.label_offset != links0 + code_size_ || g.offset_data != links0 || g.max_m != m ||
      g.max_m0 != 2 * m || g.m != m) {
    return "graph layout does not match M=" + std::to_string(m) + ", dimension " + std::to_string(dim_);
  }
  if (n > 0 && (g.enterpoint_node >= n || g.maxlevel < 0 || g.maxlevel > kMaxLevel)) return "bad entry point";
  if (n == 0 && g.maxlevel != -1) return "bad entry point";
  const char* level0 = r.Take(n * per_element);
  if (level0 == nullptr) return "graph truncated";

  auto check_list = [&](const char* list, size_t max_links) {
    uint16_t count;
    std::memcpy(&count, list, sizeof count);
    if (count > max_links) return false;
    for (size_t j = 0; j < count; ++j) {
      hnswlib::tableint to;
      std::memcpy(&to, list + sizeof(hnswlib::linklistsizeint) + j * sizeof to, sizeof to);
      if (to >= n) return false;
    }
    return true;
  };
  std::vector<bool> seen(n);
  std::vector<int> levels(n);
  std::vector<const char*> upper(n);
  size_t deleted = 0;
  for (size_t i = 0; i < n; ++i) {
    const char* element = level0 + i * per_element;
    hnswlib::labeltype label;
    std::memcpy(&label, element + g.label_offset, sizeof label);
    if (label >= n || seen[label]) return "bad label";
    seen[label] = true;
    bool is_deleted = (static_cast<unsigned char>(element[2]) & kDeleteMark) != 0;
    if (is_deleted == live[label]) return "deleted marks disagree with the slot table";
    deleted += is_deleted;
    if (!check_list(element, 2 * m)) return "bad level-0 links";
    const char* v = element + g.offset_data;
    if (options_.encoding == VectorEncoding::kInt8) {
      // Any byte is a valid component; the scale must be a finite non-negative number.
      float scale;
      std::memcpy(&scale, v + dim_, sizeof scale);
      if (!std::isfinite(scale) || scale < 0) return "a stored vector has a bad scale";
    } else {
      for (size_t d = 0; d < dim_; ++d) {
        float x;
        std::memcpy(&x, v + d * sizeof(float), sizeof x);
        if (!std::isfinite(x)) return "a stored vector is not finite";
      }
    }
    uint32_t list_bytes;
    if (!r.Read(&list_bytes) || list_bytes % links != 0) return "bad link list size";
    levels[i] = static_cast<int>(list_bytes / links);
    if (levels[i] > g.maxlevel) return "a node above the top level";
    upper[i] = r.Take(list_bytes);
    if (upper[i] == nullptr) return "graph truncated";
    for (int l = 0; l < levels[i]; ++l) {
      if (!check_list(upper[i] + l * links, m)) return "bad upper links";
    }
  }
  if (r.remaining() != 0) return "graph has trailing bytes";
  if (n > 0 && levels[g.enterpoint_node] != g.maxlevel) return "bad entry point";

  try {
    auto index = std::make_unique<Hnsw>(graph_space_, std::max<size_t>(n * 2, 1024), m,
                                        static_cast<size_t>(options_.ef_construction));
    std::memcpy(index->data_level0_memory_, level0, n * per_element);
    index->cur_element_count = n;
    index->maxlevel_ = g.maxlevel;
    index->enterpoint_node_ = n > 0 ? g.enterpoint_node : static_cast<hnswlib::tableint>(-1);
    index->num_deleted_ = deleted;
    index->label_lookup_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      hnswlib::labeltype label;
      std::memcpy(&label, level0 + i * per_element + g.label_offset, sizeof label);
      index->label_lookup_[label] = static_cast<hnswlib::tableint>(i);
      if (levels[i] > 0) {
        size_t list_bytes = links * static_cast<size_t>(levels[i]);
        // Spare room for hnswlib's prefetch of the id after a full list (it allocates one
        // spare byte itself); the destructor frees lists of levels > 0 with free().
        auto* list = static_cast<char*>(std::malloc(list_bytes + sizeof(hnswlib::tableint)));
        if (list == nullptr) throw std::bad_alloc();
        std::memcpy(list, upper[i], list_bytes);
        index->linkLists_[i] = list;
        index->element_levels_[i] = levels[i];
      } else {
        index->linkLists_[i] = nullptr;
      }
    }
    index->setEf(static_cast<size_t>(options_.ef_search));
    hnsw_ = std::move(index);
  } catch (const std::exception& e) {
    return ErrorFromException("vector index load", e).ToString();
  }
  return "";
}

namespace internal {
uint64_t Xxh64(const void* data, size_t len, uint64_t seed) { return engram::Xxh64(data, len, seed); }
}  // namespace internal

// ---- VectorIndex -----------------------------------------------------------------------

VectorIndex::VectorIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VectorIndex::~VectorIndex() = default;

Result<std::unique_ptr<VectorIndex>> VectorIndex::Open(StorageBackend& store, EmbeddingSpace space,
                                                       VectorIndexOptions options) {
  if (space.dimension < 1 || space.dimension > 65'536) {
    return InvalidArgumentError("vector index: dimension must be 1..65536, got " +
                                std::to_string(space.dimension));
  }
  if (options.m < 2 || options.m > 100) {
    return InvalidArgumentError("vector index: m must be 2..100, got " + std::to_string(options.m));
  }
  if (options.ef_construction < 1 || options.ef_search < 1 || options.build_threads < 0) {
    return InvalidArgumentError("vector index: ef_construction and ef_search must be >= 1, build_threads >= 0");
  }
  auto impl = std::make_unique<Impl>(store, std::move(space), std::move(options));
  bool loaded = false;
  const std::string path = impl->Path();
  if (!path.empty()) {
    RemoveAbandonedTempFiles(path);
    ENGRAM_ASSIGN_OR_RETURN(loaded, impl->LoadFile());
  }
  auto started = std::chrono::steady_clock::now();
  ENGRAM_RETURN_IF_ERROR(impl->CatchUp());
  if (!loaded) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    LogInfo("vector index built from the store",
            {{"vectors", std::to_string(impl->size())}, {"mode", std::string(impl->mode())},
             {"ms", std::to_string(ms.count())}});
    // The next process loads what this one built instead of building it again.
    if (!path.empty()) {
      Status st = impl->Save();
      if (!st.ok()) LogWarn("vector index not saved", {{"path", path}, {"error", st.ToString()}});
    }
  }
  return std::unique_ptr<VectorIndex>(new VectorIndex(std::move(impl)));
}

Status VectorIndex::CatchUp() { return impl_->CatchUp(); }
Status VectorIndex::Add(const EpisodeVector& v) { return impl_->Add(v); }
bool VectorIndex::Remove(std::string_view episode_id) { return impl_->Remove(episode_id); }
Result<std::vector<VectorHit>> VectorIndex::Search(std::span<const float> query, size_t k,
                                                   const std::function<bool(std::string_view)>& accept) const {
  return impl_->Search(query, k, accept);
}
std::optional<float> VectorIndex::Similarity(std::span<const float> query, std::string_view episode_id) const {
  return impl_->SimilarityTo(query, episode_id);
}
Status VectorIndex::Save() { return impl_->Save(); }
size_t VectorIndex::size() const { return impl_->size(); }
int64_t VectorIndex::max_seq() const { return impl_->max_seq(); }
std::string_view VectorIndex::mode() const { return impl_->mode(); }
size_t VectorIndex::MemoryBytes() const { return impl_->MemoryBytes(); }
const EmbeddingSpace& VectorIndex::space() const { return impl_->space(); }

}  // namespace engram
