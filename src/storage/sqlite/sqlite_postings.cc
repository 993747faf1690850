#include "storage/sqlite/sqlite_postings.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/logging.h"
#include "storage/fts_bm25.h"
#include "storage/sqlite/sqlite_backend.h"

namespace engram::sqlite {

namespace {

constexpr const char* kMarksSql = "SELECT generation, unindexed, next_doc, indexed FROM store_state";
// episode_docs drives (a rowid range in doc_id order); each document's text is one rowid
// lookup in the FTS5 table's content.
constexpr const char* kDocsFromSql =
    "SELECT d.doc_id, d.episode_id, d.domain, f.title, f.body FROM episode_docs d "
    "CROSS JOIN episode_fts f ON f.rowid = d.doc_id WHERE d.doc_id >= ?1 ORDER BY d.doc_id LIMIT ?2";
constexpr const char* kDocIdsBelowSql = "SELECT doc_id FROM episode_docs WHERE doc_id < ?1 ORDER BY doc_id";

// A search catches up with at most this many new documents itself (~20 us each); more is
// left to the background catch-up, FTS5 answering meanwhile.
constexpr int64_t kMaxCatchUpDocs = 256;

// The background catch-up loads this many documents per lock hold (~20-40 ms).
constexpr int64_t kCatchUpChunk = 2'000;

// This process's writes start a background catch-up every this many (a cheap look when
// there is nothing to load), so a bulk import is loaded while it runs, not at the next search.
constexpr uint64_t kWritesPerCheck = 16;

// After a failed build, searches start another only this much later.
constexpr std::chrono::seconds kRetryBuildAfter(30);

// Dead documents are dropped by a rebuild once they pass this share of the live ones.
constexpr int64_t kDeadPerLive = 4;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, StringEq>;

void PutVarint(std::string& out, uint32_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

inline uint32_t GetVarint(const unsigned char*& p) {
  uint32_t v = *p & 0x7f;
  int shift = 7;
  while (*p++ & 0x80) {
    v |= static_cast<uint32_t>(*p & 0x7f) << shift;
    shift += 7;
  }
  return v;
}

// Rough heap of an unordered_map node holding a std::string key: the key, the value, the
// next pointer and the cached hash, plus the key's own buffer past the small-string size.
template <typename V>
int64_t MapBytes(const StringMap<V>& map) {
  int64_t bytes = static_cast<int64_t>(map.bucket_count() * sizeof(void*));
  for (const auto& [key, value] : map) {
    bytes += static_cast<int64_t>(sizeof(std::string) + sizeof(V) + 2 * sizeof(void*));
    if (key.capacity() > 15) bytes += static_cast<int64_t>(key.capacity() + 1);
  }
  return bytes;
}

template <typename T>
int64_t VectorBytes(const std::vector<T>& v) {
  return static_cast<int64_t>(v.capacity() * sizeof(T));
}

// The term dictionary: term bytes back to back and an open-addressing table of term
// numbers. A store holds about one term per episode that occurs once (ticket numbers,
// hashes, paths), so a node-based map's ~70 bytes a term would cost more than the postings.
class TermTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  size_t size() const { return ends_.size(); }

  uint32_t Find(std::string_view term) const {
    if (slots_.empty()) return kNone;
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(term) & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) return kNone;
      if (Term(slot - 1) == term) return slot - 1;
    }
  }

  // The term's number, a new one (the next) if it is not in the table.
  uint32_t Insert(std::string_view term, bool* added) {
    *added = false;
    if (2 * (ends_.size() + 1) > slots_.size()) Grow();
    const size_t mask = slots_.size() - 1;
    size_t i = Hash(term) & mask;
    for (;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) break;
      if (Term(slot - 1) == term) return slot - 1;
    }
    chars_.append(term);
    ends_.push_back(chars_.size());
    slots_[i] = static_cast<uint32_t>(ends_.size());
    *added = true;
    return static_cast<uint32_t>(ends_.size() - 1);
  }

  void ShrinkToFit() {
    chars_.shrink_to_fit();
    ends_.shrink_to_fit();
  }

  int64_t Bytes() const { return static_cast<int64_t>(chars_.capacity()) + VectorBytes(ends_) + VectorBytes(slots_); }

 private:
  static size_t Hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

  std::string_view Term(uint32_t t) const {
    const size_t begin = t == 0 ? 0 : ends_[t - 1];
    return std::string_view(chars_).substr(begin, ends_[t] - begin);
  }

  void Grow() {
    std::vector<uint32_t> slots(std::max<size_t>(1024, slots_.size() * 2), 0);
    const size_t mask = slots.size() - 1;
    for (uint32_t t = 0; t < ends_.size(); ++t) {
      size_t i = Hash(Term(t)) & mask;
      while (slots[i] != 0) i = (i + 1) & mask;
      slots[i] = t + 1;
    }
    slots_ = std::move(slots);
  }

  std::string chars_;
  std::vector<uint64_t> ends_;  // term t is chars_[ends_[t - 1], ends_[t])
  std::vector<uint32_t> slots_;  // term number + 1; 0: empty. Size: a power of two.
};

}  // namespace

// One search's working memory, kept for the next: a score per document (8 bytes each, so
// not per thread: a server has many) and the documents touched.
struct PostingsMirror::Scratch {
  std::vector<double> scores;
  std::vector<uint32_t> touched;
  std::vector<std::pair<double, uint32_t>> best;
};

// What the store said about itself at the mirror's last catch-up.
struct PostingsMirror::Marks {
  int64_t generation = 0;
  int64_t unindexed = 0;
  int64_t next_doc = 0;
  int64_t indexed = 0;
  bool operator==(const Marks&) const = default;
};

struct PostingsMirror::Index {
  struct Postings {
    std::string bytes;  // per posting: varint gap from the previous number, varint weighted count
    uint32_t count = 0;
    uint32_t last = 0;  // number of the last posting's document
  };

  Marks marks;
  // Documents by number (dense, in doc_id order).
  std::vector<int64_t> doc_ids;
  std::vector<uint32_t> lengths;  // tokens of title + body (FTS5's column size -1)
  std::vector<uint32_t> domains;  // into domain_names
  std::vector<uint32_t> id_ends;  // episode id n is id_chars[id_ends[n-1], id_ends[n])
  std::string id_chars;
  std::vector<bool> dead;
  int64_t live = 0, live_tokens = 0, dead_count = 0, total_postings = 0;
  // fts::LengthNorm of each document at avgdl `norms_avgdl`: the one division of bm25 that
  // does not depend on the query, done once per change of the store instead of per posting.
  std::vector<double> norms;
  double norms_avgdl = -1;
  std::vector<std::string> domain_names;
  StringMap<uint32_t> domain_ids;
  TermTable terms;
  std::vector<Postings> postings;  // by term number
  // AddDoc's scratch: the current document's count per term number, and its terms.
  std::vector<uint32_t> doc_freq;
  std::vector<uint32_t> doc_terms;

  std::string_view EpisodeId(uint32_t n) const {
    const uint32_t begin = n == 0 ? 0 : id_ends[n - 1];
    return std::string_view(id_chars).substr(begin, id_ends[n] - begin);
  }

  void AddTokens(std::string_view text, uint32_t weight, int64_t& tokens) {
    tokens += fts::ForEachToken(text, [&](std::string_view token) {
      if (token.size() > fts::kMaxTokenBytes) token = token.substr(0, fts::kMaxTokenBytes);
      bool added = false;
      const uint32_t t = terms.Insert(token, &added);
      if (added) {
        postings.emplace_back();
        doc_freq.push_back(0);
      }
      if (doc_freq[t] == 0) doc_terms.push_back(t);
      doc_freq[t] += weight;
    });
  }

  // REQUIRES: doc_id above every doc_id held.
  void AddDoc(int64_t doc_id, std::string_view episode_id, std::string_view domain, std::string_view title,
              std::string_view body) {
    const auto n = static_cast<uint32_t>(doc_ids.size());
    int64_t tokens = 0;
    doc_terms.clear();
    AddTokens(title, 2, tokens);  // bm25(episode_fts, 2.0, 1.0)
    AddTokens(body, 1, tokens);
    for (uint32_t t : doc_terms) {
      Postings& p = postings[t];
      PutVarint(p.bytes, n - p.last);
      PutVarint(p.bytes, doc_freq[t]);
      p.last = n;
      ++p.count;
      doc_freq[t] = 0;
    }
    total_postings += static_cast<int64_t>(doc_terms.size());
    auto d = domain_ids.find(domain);
    if (d == domain_ids.end()) {
      d = domain_ids.emplace(std::string(domain), static_cast<uint32_t>(domain_names.size())).first;
      domain_names.emplace_back(domain);
    }
    doc_ids.push_back(doc_id);
    lengths.push_back(static_cast<uint32_t>(tokens));
    domains.push_back(d->second);
    id_chars.append(episode_id);
    id_ends.push_back(static_cast<uint32_t>(id_chars.size()));
    dead.push_back(false);
    ++live;
    live_tokens += tokens;
  }

  void Kill(uint32_t n) {
    if (dead[n]) return;
    dead[n] = true;
    ++dead_count;
    --live;
    live_tokens -= lengths[n];
  }

  // Adds the store's documents numbered from `from` (at most `limit`, -1: all), in
  // `conn`'s read transaction.
  Status AddDocs(Connection& conn, int64_t from, const std::atomic<bool>* stop, int64_t limit = -1) {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kDocsFromSql));
    stmt.BindInt(1, from);
    stmt.BindInt(2, limit);
    for (int64_t rows = 0;; ++rows) {
      if (stop != nullptr && (rows & 255) == 0 && stop->load(std::memory_order_relaxed)) {
        return CancelledError("the full-text mirror's build was stopped");
      }
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      AddDoc(stmt.ColumnInt(0), stmt.ColumnBlob(1), stmt.ColumnBlob(2), stmt.ColumnBlob(3), stmt.ColumnBlob(4));
    }
    return OkStatus();
  }

  // Marks dead the documents below marks.next_doc that the store no longer holds.
  Status DropMissing(Connection& conn) {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kDocIdsBelowSql));
    stmt.BindInt(1, marks.next_doc);
    size_t n = 0;  // both lists ascend: a merge
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      const int64_t doc_id = stmt.ColumnInt(0);
      while (n < doc_ids.size() && doc_ids[n] < doc_id) Kill(static_cast<uint32_t>(n++));
      if (n < doc_ids.size() && doc_ids[n] == doc_id) ++n;
    }
    while (n < doc_ids.size()) Kill(static_cast<uint32_t>(n++));
    return OkStatus();
  }

  double AverageLength() const {
    return live > 0 ? static_cast<double>(live_tokens) / static_cast<double>(live) : 0.0;
  }

  void UpdateNorms() {
    const double avgdl = AverageLength();
    if (avgdl == norms_avgdl && norms.size() == lengths.size()) return;
    norms.resize(lengths.size());
    for (size_t n = 0; n < lengths.size(); ++n) norms[n] = fts::LengthNorm(static_cast<double>(lengths[n]), avgdl);
    norms_avgdl = avgdl;
  }

  void ShrinkToFit() {
    for (Postings& p : postings) p.bytes.shrink_to_fit();
    terms.ShrinkToFit();
    doc_ids.shrink_to_fit();
    lengths.shrink_to_fit();
    domains.shrink_to_fit();
    id_ends.shrink_to_fit();
    id_chars.shrink_to_fit();
    norms.shrink_to_fit();
    postings.shrink_to_fit();
    doc_freq.shrink_to_fit();
  }

  int64_t Bytes() const {
    int64_t bytes = VectorBytes(doc_ids) + VectorBytes(lengths) + VectorBytes(norms) + VectorBytes(domains) +
                    VectorBytes(id_ends) +
                    static_cast<int64_t>(id_chars.capacity() + dead.capacity() / 8) + VectorBytes(postings) +
                    VectorBytes(doc_freq) + VectorBytes(doc_terms) + terms.Bytes() + MapBytes(domain_ids);
    for (const Postings& p : postings) {
      if (p.bytes.capacity() > 15) bytes += static_cast<int64_t>(p.bytes.capacity() + 1);
    }
    return bytes;
  }

  // Exhaustive bm25 over every posting of the query's terms: FTS5's answer (see the header).
  // The live documents holding a term (FTS5's nHit).
  int64_t LiveDocs(const Postings& p) const {
    if (dead_count == 0) return p.count;
    int64_t live_docs = 0;
    const auto* c = reinterpret_cast<const unsigned char*>(p.bytes.data());
    uint32_t n = 0;
    for (uint32_t i = 0; i < p.count; ++i) {
      n += GetVarint(c);
      GetVarint(c);
      if (!dead[n]) ++live_docs;
    }
    return live_docs;
  }
  int64_t LiveDocs(std::string_view term) const {
    if (term.size() > fts::kMaxTokenBytes) term = term.substr(0, fts::kMaxTokenBytes);
    const uint32_t t = terms.Find(term);
    return t == TermTable::kNone ? 0 : LiveDocs(postings[t]);
  }

  std::vector<TextHit> Score(const MirrorQuery& q, Scratch& scratch) const {
    std::vector<TextHit> hits;
    if (live <= 0 || q.limit == 0) return hits;
    // The domain filters as masks over domain numbers (a domain the mirror never saw
    // matches no document).
    std::vector<uint8_t> allowed;
    const bool filtered = q.domain.has_value() || !q.allowed_domains.empty();
    if (filtered) {
      allowed.assign(domain_names.size(), q.domain ? 0 : 1);
      if (q.domain) {
        auto it = domain_ids.find(*q.domain);
        if (it == domain_ids.end()) return hits;
        allowed[it->second] = 1;
      }
      if (!q.allowed_domains.empty()) {
        std::vector<uint8_t> listed(domain_names.size(), 0);
        for (const std::string& name : q.allowed_domains) {
          auto it = domain_ids.find(name);
          if (it != domain_ids.end()) listed[it->second] = 1;
        }
        for (size_t i = 0; i < allowed.size(); ++i) allowed[i] &= listed[i];
      }
    }

    // Scores by document number, all 0.0 between calls. A term's share is > 0 (idf >= 1e-6,
    // count >= 1), so 0.0 means "not touched yet".
    std::vector<double>& acc = scratch.scores;
    std::vector<uint32_t>& touched = scratch.touched;
    if (acc.size() < doc_ids.size()) acc.resize(doc_ids.size(), 0.0);
    touched.clear();
    for (std::string_view term : q.terms) {
      if (term.size() > fts::kMaxTokenBytes) term = term.substr(0, fts::kMaxTokenBytes);
      const uint32_t t = terms.Find(term);
      if (t == TermTable::kNone) continue;
      const Postings& p = postings[t];
      const auto* begin = reinterpret_cast<const unsigned char*>(p.bytes.data());
      const int64_t hits_of_term = LiveDocs(p);
      if (hits_of_term == 0) continue;
      const double idf = fts::Idf(live, hits_of_term);
      const unsigned char* c = begin;
      uint32_t n = 0;
      for (uint32_t i = 0; i < p.count; ++i) {
        n += GetVarint(c);
        const uint32_t freq = GetVarint(c);
        if (dead_count > 0 && dead[n]) continue;
        if (filtered && !allowed[domains[n]]) continue;
        double& score = acc[n];
        if (score == 0.0) touched.push_back(n);
        score += fts::TermScore(idf, static_cast<double>(freq), norms[n]);
      }
    }

    // FTS5's order: bm25 best first, ties by rowid (numbers ascend with doc_id). The best
    // `limit` kept in a heap whose top is the worst of them.
    using Ranked = std::pair<double, uint32_t>;
    auto better = [](const Ranked& a, const Ranked& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    std::vector<Ranked>& best = scratch.best;
    best.clear();
    for (uint32_t n : touched) {
      const Ranked r(acc[n], n);
      acc[n] = 0.0;
      if (best.size() < q.limit) {
        best.push_back(r);
        std::push_heap(best.begin(), best.end(), better);
      } else if (better(r, best.front())) {
        std::pop_heap(best.begin(), best.end(), better);
        best.back() = r;
        std::push_heap(best.begin(), best.end(), better);
      }
    }
    std::sort_heap(best.begin(), best.end(), better);
    hits.reserve(best.size());
    for (const Ranked& r : best) hits.push_back(TextHit{std::string(EpisodeId(r.second)), r.first});
    return hits;
  }
};

namespace {

Result<PostingsMirror::Marks> ReadStoreMarks(Connection& conn);

}  // namespace

PostingsMirror::PostingsMirror(std::shared_ptr<ConnectionPool> pool) : pool_(std::move(pool)) {}

PostingsMirror::~PostingsMirror() {
  stop_.store(true);
  std::thread builder;
  {
    MutexLock lock(build_mu_);
    builder = std::move(builder_);
  }
  if (builder.joinable()) builder.join();
}

void PostingsMirror::StartBuild() { StartBackground(&PostingsMirror::RunBuild); }

void PostingsMirror::StartCatchUp() { StartBackground(&PostingsMirror::RunCatchUp); }

void PostingsMirror::NoteWrite() {
  if (writes_.fetch_add(1, std::memory_order_relaxed) % kWritesPerCheck == kWritesPerCheck - 1) StartCatchUp();
}

void PostingsMirror::StartBackground(void (PostingsMirror::*job)()) {
  MutexLock lock(build_mu_);
  if (building_ || stop_.load()) return;
  if (builder_.joinable()) builder_.join();  // a finished job: it cleared building_
  building_ = true;
  builder_ = std::thread([this, job] {
    (this->*job)();
    MutexLock done(build_mu_);
    building_ = false;
    build_done_.SignalAll();
  });
}

// Loads what the store added in chunks, each in a read transaction of its own under the
// writer lock, so searches run between them.
// A chunk moves the marks' next_doc and generation (to its snapshot's) but not unindexed or
// indexed: no store state equals such marks (the documents grew), so the next search still
// catches up, removals included.
void PostingsMirror::RunCatchUp() {
  while (!stop_.load()) {
    Result<std::unique_ptr<Connection>> conn = pool_->Acquire();
    if (!conn.ok()) return;
    bool more = false;
    Status s = (*conn)->Transaction(/*write=*/false, [&]() -> Status {
      more = false;
      ENGRAM_ASSIGN_OR_RETURN(Marks marks, ReadStoreMarks(**conn));
      std::unique_lock lock(mu_);
      if (index_ == nullptr || marks.generation < index_->marks.generation ||
          marks.next_doc <= index_->marks.next_doc) {
        return OkStatus();
      }
      Index& index = *index_;
      const size_t before = index.doc_ids.size();
      Status added = index.AddDocs(**conn, index.marks.next_doc, &stop_, kCatchUpChunk);
      if (!added.ok()) {
        index_.reset();  // half a chunk in: start over
        return added;
      }
      if (index.doc_ids.size() == before) return OkStatus();
      index.marks.next_doc = index.doc_ids.back() + 1;
      index.marks.generation = marks.generation;
      more = true;
      return OkStatus();
    });
    pool_->Release(*std::move(conn));
    if (!s.ok()) {
      if (!stop_.load()) LogWarn("full-text mirror could not catch up", {{"error", s.ToString()}});
      return;
    }
    if (!more) return;
  }
}

void PostingsMirror::WaitForBuild() {
  MutexLock lock(build_mu_);
  while (building_) build_done_.Wait(build_mu_);
}

void PostingsMirror::RunBuild() {
  const auto start = std::chrono::steady_clock::now();
  auto index = std::make_unique<Index>();
  Status s = [&]() -> Status {
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, pool_->Acquire());
    Status built = conn->Transaction(/*write=*/false, [&]() -> Status {
      index = std::make_unique<Index>();  // a busy retry starts over
      ENGRAM_ASSIGN_OR_RETURN(index->marks, ReadStoreMarks(*conn));
      return index->AddDocs(*conn, 0, &stop_);
    });
    pool_->Release(std::move(conn));
    return built;
  }();
  if (s.ok() && index->live != index->marks.indexed) {
    s = DataLossError("the full-text index holds " + std::to_string(index->live) + " documents; store_state counts " +
                      std::to_string(index->marks.indexed));
  }
  if (s.ok()) {
    index->UpdateNorms();
    index->ShrinkToFit();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t documents = index->live, terms = static_cast<int64_t>(index->terms.size());
    const int64_t postings = index->total_postings, bytes = index->Bytes();
    {
      std::unique_lock lock(mu_);
      index_ = std::move(index);
    }
#if defined(__GLIBC__)
    // The build's growing buffers leave free holes in the heap; give their pages back.
    malloc_trim(0);
#endif
    build_seconds_.store(seconds);
    builds_.fetch_add(1);
    // Small stores (every test's, every CLI command's) build in milliseconds: not news.
    Log(documents >= 10'000 ? LogLevel::kInfo : LogLevel::kDebug, "full-text mirror built",
        {{"documents", std::to_string(documents)},
         {"terms", std::to_string(terms)},
         {"postings", std::to_string(postings)},
         {"mib", std::to_string(static_cast<double>(bytes) / (1 << 20))},
         {"seconds", std::to_string(seconds)}});
  } else if (!stop_.load()) {
    failed_at_.store(std::chrono::steady_clock::now());
    LogWarn("full-text mirror not built; searches stay on FTS5", {{"error", s.ToString()}});
  }
}

template <typename T, typename F>
Result<std::optional<T>> PostingsMirror::Current(Connection& conn, const F& answer) {
  using Answer = std::optional<T>;
  auto from = [&](const Index& index) { return Answer(answer(index)); };
  ENGRAM_ASSIGN_OR_RETURN(Marks marks, ReadStoreMarks(conn));
  bool missing = false;
  {
    std::shared_lock lock(mu_);
    if (index_ == nullptr) {
      missing = true;
    } else if (index_->marks == marks) {
      return from(*index_);
    } else if (marks.generation < index_->marks.generation) {
      return Answer();  // this snapshot is older than the mirror: FTS5 answers as of it
    }
  }
  if (missing) {
    // Not built yet, or dropped: (re)build, but not in a loop when building fails.
    if (std::chrono::steady_clock::now() - failed_at_.load() > kRetryBuildAfter) StartBuild();
    return Answer();
  }

  std::unique_lock lock(mu_);
  if (index_ == nullptr) return Answer();
  Index& index = *index_;
  if (index.marks == marks) return from(index);
  if (marks.generation < index.marks.generation) return Answer();
  // Counters never go back in one store's history: a restore over the file, or a changed
  // generation with the same counters and another document count. Start over.
  auto rebuild = [&]() -> Result<Answer> {
    index_.reset();
    lock.unlock();
    StartBuild();
    return Answer();
  };
  if (marks.unindexed < index.marks.unindexed || marks.next_doc < index.marks.next_doc) return rebuild();
  if (marks.next_doc - index.marks.next_doc > kMaxCatchUpDocs) {
    // A bulk import: loading it here would hold this search (and every other) for long.
    lock.unlock();
    StartCatchUp();
    return Answer();
  }
  Status caught = OkStatus();
  if (marks.unindexed != index.marks.unindexed) caught = index.DropMissing(conn);
  if (caught.ok()) caught = index.AddDocs(conn, index.marks.next_doc, nullptr);
  if (!caught.ok()) {
    LogWarn("full-text mirror could not catch up; rebuilding", {{"error", caught.ToString()}});
    return rebuild();
  }
  index.marks = marks;
  index.UpdateNorms();
  if (index.live != marks.indexed) {
    LogWarn("full-text mirror disagrees with the store's document count; rebuilding",
            {{"mirror", std::to_string(index.live)}, {"store", std::to_string(marks.indexed)}});
    return rebuild();
  }
  Answer result = from(index);
  if (index.dead_count > 64 && index.dead_count * kDeadPerLive > index.live) {
    lock.unlock();
    StartBuild();  // drops the dead documents; this mirror answers until it is published
  }
  return result;
}

Result<std::optional<std::vector<TextHit>>> PostingsMirror::Search(Connection& conn, const MirrorQuery& query) {
  return Current<std::vector<TextHit>>(conn, [&](const Index& index) {
    answered_.fetch_add(1, std::memory_order_relaxed);
    std::unique_ptr<Scratch> scratch;
    {
      MutexLock lock(scratch_mu_);
      if (!scratch_.empty()) {
        scratch = std::move(scratch_.back());
        scratch_.pop_back();
      }
    }
    if (scratch == nullptr) scratch = std::make_unique<Scratch>();
    std::vector<TextHit> hits = index.Score(query, *scratch);
    MutexLock lock(scratch_mu_);
    scratch_.push_back(std::move(scratch));
    return hits;
  });
}

Result<std::optional<TermStats>> PostingsMirror::TermStatsOf(Connection& conn, std::span<const std::string> terms) {
  {
    // Only searches start a build: embedding (which asks for term statistics) happens in
    // CLI commands such as `engram import` too.
    std::shared_lock lock(mu_);
    if (index_ == nullptr) return std::optional<TermStats>();
  }
  return Current<TermStats>(conn, [&](const Index& index) {
    term_stats_.fetch_add(1, std::memory_order_relaxed);
    TermStats stats;
    stats.documents = index.live;
    stats.doc_frequency.reserve(terms.size());
    for (const std::string& term : terms) stats.doc_frequency.push_back(term.empty() ? 0 : index.LiveDocs(term));
    return stats;
  });
}

MirrorStats PostingsMirror::Stats() const {
  MirrorStats stats;
  stats.build_seconds = build_seconds_.load();
  stats.builds = builds_.load();
  stats.answered = answered_.load();
  stats.term_stats = term_stats_.load();
  std::shared_lock lock(mu_);
  if (index_ == nullptr) return stats;
  stats.ready = true;
  stats.documents = index_->live;
  stats.dead_documents = index_->dead_count;
  stats.terms = static_cast<int64_t>(index_->terms.size());
  stats.postings = index_->total_postings;
  stats.bytes = index_->Bytes();
  return stats;
}

namespace {

Result<PostingsMirror::Marks> ReadStoreMarks(Connection& conn) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kMarksSql));
  ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return DataLossError("the store_state row is missing");
  PostingsMirror::Marks m;
  m.generation = stmt.ColumnInt(0);
  m.unindexed = stmt.ColumnInt(1);
  m.next_doc = stmt.ColumnInt(2);
  m.indexed = stmt.ColumnInt(3);
  return m;
}

}  // namespace

}  // namespace engram::sqlite
