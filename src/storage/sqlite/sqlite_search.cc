// SqliteBackend's retrieval index (schema v2): the FTS5 index of completed episodes, the
// vectors of one embedding space, and the store generation; plus the index upkeep that the
// episode write paths call (storage/sqlite/sqlite_index.h).
#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/search_text.h"
#include "model/stored_columns.h"
#include "storage/fts_bm25.h"
#include "storage/sqlite/sqlite_backend.h"
#include "storage/sqlite/sqlite_index.h"
#include "storage/vector_blob.h"

namespace engram::sqlite {

namespace {

// next_doc, or above the largest doc_id if that is higher: an engram older than schema v4
// still running on the file after another process migrated it numbers by rowid.
constexpr const char* kInsertDocSql =
    "INSERT INTO episode_docs (doc_id, episode_id, domain) "
    "SELECT MAX(next_doc, COALESCE((SELECT MAX(doc_id) FROM episode_docs), 0) + 1), ?1, ?2 FROM store_state";
constexpr const char* kNextDocSql = "UPDATE store_state SET next_doc = ?1 + 1";
constexpr const char* kInsertRowidDocSql = "INSERT INTO episode_docs (episode_id, domain) VALUES (?1, ?2)";
constexpr const char* kInsertFtsSql = "INSERT INTO episode_fts (rowid, title, body) VALUES (?1, ?2, ?3)";
constexpr const char* kFindDocSql = "SELECT doc_id FROM episode_docs WHERE episode_id = ?1";
constexpr const char* kDeleteFtsSql = "DELETE FROM episode_fts WHERE rowid = ?1";
constexpr const char* kDeleteDocSql = "DELETE FROM episode_docs WHERE doc_id = ?1";
constexpr const char* kCountIndexedSql = "UPDATE store_state SET indexed = indexed + ?1";
constexpr const char* kCountUnindexedSql = "UPDATE store_state SET unindexed = unindexed + 1";
constexpr const char* kDeleteVectorSql = "DELETE FROM episode_vectors WHERE episode_id = ?1";
constexpr const char* kBumpGenerationSql = "UPDATE store_state SET generation = generation + 1";

constexpr const char* kGenerationSql = "SELECT generation FROM store_state";
// rank with `rank MATCH` is bm25 with the title weighted twice the body; bm25() is
// negative (more negative = better), so ascending rank is best first. FTS5 drives the
// query and delivers rows in rank order, so LIMIT stops the join early.
constexpr const char* kSearchSql =
    "SELECT d.episode_id, -episode_fts.rank FROM episode_fts JOIN episode_docs d ON d.doc_id = episode_fts.rowid "
    "WHERE episode_fts MATCH ?1 AND episode_fts.rank MATCH 'bm25(2.0, 1.0)' "
    "AND (?2 IS NULL OR d.domain = ?2) "
    "AND (?3 IS NULL OR d.domain IN (SELECT value FROM json_each(?3))) "
    "ORDER BY episode_fts.rank LIMIT ?4";
constexpr const char* kTermDocsSql = "SELECT doc FROM episode_fts_terms WHERE term = ?1";
constexpr const char* kIndexedSql = "SELECT indexed FROM store_state";
constexpr const char* kGetSpaceSql = "SELECT space_provider, space_model, space_dimension FROM store_state";
constexpr const char* kSetSpaceSql =
    "UPDATE store_state SET space_provider = ?1, space_model = ?2, space_dimension = ?3";
constexpr const char* kDeleteOtherSpacesSql = "DELETE FROM episode_vectors WHERE space <> ?1";
constexpr const char* kIsIndexedSql = "SELECT 1 FROM episode_docs WHERE episode_id = ?1";
// REPLACE drops the old row (UNIQUE episode_id) and AUTOINCREMENT gives the new one a seq
// above every seq ever used.
constexpr const char* kPutVectorSql =
    "INSERT OR REPLACE INTO episode_vectors (episode_id, space, vector) VALUES (?1, ?2, ?3)";
constexpr const char* kListVectorsSql =
    "SELECT seq, episode_id, vector FROM episode_vectors WHERE seq > ?1 AND space = ?2 ORDER BY seq";
constexpr const char* kWithoutVectorSql =
    "SELECT d.episode_id FROM episode_docs d WHERE NOT EXISTS "
    "(SELECT 1 FROM episode_vectors v WHERE v.episode_id = d.episode_id AND v.space = ?1) "
    "AND d.episode_id > ?3 ORDER BY d.episode_id LIMIT ?2";

// The word as the tokenizer would cut and fold it: runs of token bytes, lower-cased,
// joined by single spaces. "" when the word holds no token byte.
std::string TokenText(std::string_view word) {
  std::string out;
  bool gap = false;
  for (char ch : word) {
    auto c = static_cast<unsigned char>(ch);
    if (!fts::IsTokenByte(c)) {
      gap = true;
      continue;
    }
    if (gap && !out.empty()) out.push_back(' ');
    gap = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
  }
  return out;
}

// The distinct token texts of `words`, in their first order; words without token text
// are dropped.
std::vector<std::string> QueryTerms(std::span<const std::string> words) {
  std::vector<std::string> terms;
  std::set<std::string> seen;
  for (const std::string& word : words) {
    std::string text = TokenText(word);
    if (!text.empty() && seen.insert(text).second) terms.push_back(std::move(text));
  }
  return terms;
}

// An FTS5 query matching documents that hold any of `terms` (token texts). Each becomes a
// quoted string holding only token bytes, so no character of a user's word (quote, star,
// colon, caret, parenthesis, NEAR, AND, ...) can ever be read as query syntax.
std::string AnyOf(std::span<const std::string> terms) {
  std::string query;
  for (const std::string& term : terms) {
    if (!query.empty()) query += " OR ";
    query += '"';
    query += term;  // holds no '"': a quote is not a token byte
    query += '"';
  }
  return query;
}

// SearchText ranks every document that matches exhaustively only while the query's words
// have at most this many postings in all: bm25() costs a few microseconds per matching row,
// so a query of common words over a large store would take a second. Beyond it, see
// SearchText. 2,000 as on PostgreSQL: at 100k episodes most query words have thousands of
// postings, and 8,000 made the rare stage alone cost ~20 ms.
constexpr int64_t kExhaustivePostings = 2'000;

// Vectors are stored as little-endian float32, whatever this machine's byte order.
Result<std::optional<EmbeddingSpace>> ReadSpace(Connection& conn) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kGetSpaceSql));
  ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return DataLossError("the store_state row is missing");
  if (stmt.IsNull(0)) return std::optional<EmbeddingSpace>();
  EmbeddingSpace space{stmt.ColumnText(0), stmt.ColumnText(1), static_cast<int>(stmt.ColumnInt(2))};
  return std::optional<EmbeddingSpace>(std::move(space));
}

// A stream over one read transaction on a connection taken out of the pool.
class SqliteVectorStream final : public VectorStream {
 public:
  SqliteVectorStream(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> conn, EmbeddingSpace space)
      : pool_(std::move(pool)), conn_(std::move(conn)), space_(std::move(space)) {}

  ~SqliteVectorStream() override {
    stmt_.reset();
    if (!sqlite3_get_autocommit(conn_->raw())) conn_->Exec("ROLLBACK").IgnoreError();
    pool_->Release(std::move(conn_));
  }

  Status Start(int64_t after_seq) {
    ENGRAM_RETURN_IF_ERROR(conn_->Exec("BEGIN"));
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn_->Prepare(kListVectorsSql));
    stmt_.emplace(std::move(stmt));
    stmt_->BindInt(1, after_seq);
    stmt_->BindText(2, space_.Key());
    return OkStatus();
  }

  Result<std::optional<EpisodeVector>> Next() override {
    if (done_) return std::optional<EpisodeVector>();
    Result<bool> row = stmt_->Step();
    if (!row.ok() || !*row) {
      done_ = true;
      if (!row.ok()) return row.status();
      return std::optional<EpisodeVector>();
    }
    EpisodeVector v;
    v.seq = stmt_->ColumnInt(0);
    v.episode_id = stmt_->ColumnText(1);
    ENGRAM_ASSIGN_OR_RETURN(v.vector, DecodeVectorBlob(stmt_->ColumnBlob(2), space_.dimension, v.episode_id));
    return std::optional<EpisodeVector>(std::move(v));
  }

 private:
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> conn_;
  const EmbeddingSpace space_;
  std::optional<Statement> stmt_;
  bool done_ = false;
};

}  // namespace

// ---- index upkeep (sqlite_index.h) ----

Status IndexEpisode(Connection& conn, const Episode& e, DocNumbering numbering) {
  const bool counter = numbering == DocNumbering::kStoreCounter;
  {
    ENGRAM_ASSIGN_OR_RETURN(Statement doc, conn.Prepare(counter ? kInsertDocSql : kInsertRowidDocSql));
    doc.BindText(1, e.episode_id);
    doc.BindText(2, e.context.domain);
    ENGRAM_RETURN_IF_ERROR(doc.Run());
  }
  const int64_t doc_id = conn.LastInsertRowid();
  if (counter) {
    ENGRAM_ASSIGN_OR_RETURN(Statement next, conn.Prepare(kNextDocSql));
    next.BindInt(1, doc_id);
    ENGRAM_RETURN_IF_ERROR(next.Run());
  }
  SearchDocument text = BuildSearchDocument(e);
  {
    ENGRAM_ASSIGN_OR_RETURN(Statement fts, conn.Prepare(kInsertFtsSql));
    fts.BindInt(1, doc_id);
    fts.BindText(2, text.title);
    fts.BindText(3, text.body);
    ENGRAM_RETURN_IF_ERROR(fts.Run());
  }
  ENGRAM_ASSIGN_OR_RETURN(Statement count, conn.Prepare(kCountIndexedSql));
  count.BindInt(1, 1);
  return count.Run();
}

Status UnindexEpisode(Connection& conn, std::string_view episode_id) {
  std::optional<int64_t> doc_id;
  {
    ENGRAM_ASSIGN_OR_RETURN(Statement find, conn.Prepare(kFindDocSql));
    find.BindText(1, episode_id);
    ENGRAM_ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) doc_id = find.ColumnInt(0);
  }
  if (doc_id) {
    ENGRAM_ASSIGN_OR_RETURN(Statement fts, conn.Prepare(kDeleteFtsSql));
    fts.BindInt(1, *doc_id);
    ENGRAM_RETURN_IF_ERROR(fts.Run());
    ENGRAM_ASSIGN_OR_RETURN(Statement doc, conn.Prepare(kDeleteDocSql));
    doc.BindInt(1, *doc_id);
    ENGRAM_RETURN_IF_ERROR(doc.Run());
    ENGRAM_ASSIGN_OR_RETURN(Statement count, conn.Prepare(kCountIndexedSql));
    count.BindInt(1, -1);
    ENGRAM_RETURN_IF_ERROR(count.Run());
    ENGRAM_ASSIGN_OR_RETURN(Statement unindexed, conn.Prepare(kCountUnindexedSql));
    ENGRAM_RETURN_IF_ERROR(unindexed.Run());
  }
  ENGRAM_ASSIGN_OR_RETURN(Statement vec, conn.Prepare(kDeleteVectorSql));
  vec.BindText(1, episode_id);
  return vec.Run();
}

Status BumpGeneration(Connection& conn) {
  ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kBumpGenerationSql));
  return stmt.Run();
}

// ---- SqliteBackend: retrieval index ----

Result<int64_t> SqliteBackend::Generation() {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "the store generation"));
  int64_t generation = 0;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kGenerationSql));
    ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return DataLossError("the store_state row is missing");
    generation = stmt.ColumnInt(0);
    return OkStatus();
  }));
  return generation;
}

// Until the mirror is built (and for phrases): small queries (few postings) rank every
// matching document: exact bm25. A large one runs
// in stages, rarest words first, and stops as soon as a stage fills the limit:
//   A. documents holding a rare word AND a common one (rare: the rarest words whose
//      postings add up to kExhaustivePostings, at least one; common: the rest). FTS5
//      walks the rare doclists and seeks in the common ones, so this costs about the rare
//      postings, and bm25 still scores every word of the query.
//   B. documents holding a rare word only, then C. a common word only.
// A word a document lacks adds 0 to its bm25, so a new hit's score in B or C is its
// whole-query score, and the stages' hits merge by score. The result is exact when C runs;
// when A (or B) fills the limit, a document holding only rare (or only common) words that
// would have scored just above the last hit is missed: the price of not scoring tens of
// thousands of rows for one query.
Result<std::vector<TextHit>> SqliteBackend::SearchText(const TextSearchRequest& request) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "the full-text index"));
  std::vector<TextHit> hits;
  const std::vector<std::string> terms = QueryTerms(request.words);
  if (terms.empty() || request.limit == 0) return hits;
  std::optional<std::string> allowed;
  if (!request.allowed_domains.empty()) allowed = DumpColumn(nlohmann::json(request.allowed_domains));
  const auto limit = static_cast<int64_t>(std::min<size_t>(request.limit, std::numeric_limits<int64_t>::max()));
  // The in-memory mirror ranks every query of single terms exactly (sqlite_postings.h);
  // FTS5 answers while it loads, and queries holding a phrase.
  const bool phrase = std::any_of(terms.begin(), terms.end(),
                                  [](const std::string& t) { return t.find(' ') != std::string::npos; });
  if (mirror_ != nullptr && !phrase) {
    MirrorQuery query{terms, request.domain, request.allowed_domains, request.limit};
    std::optional<std::vector<TextHit>> mirrored;
    ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
      ENGRAM_ASSIGN_OR_RETURN(mirrored, mirror_->Search(conn, query));
      return OkStatus();
    }));
    if (mirrored) return *std::move(mirrored);
  }
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    hits.clear();
    std::set<std::string> seen;
    // Adds the hits of `query` not seen yet; returns how many rows it matched.
    auto run = [&](const std::string& query) -> Result<int64_t> {
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kSearchSql));
      stmt.BindText(1, query);
      stmt.BindOptText(2, request.domain);
      stmt.BindOptText(3, allowed);
      stmt.BindInt(4, limit);
      int64_t rows = 0;
      for (;;) {
        ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
        if (!row) break;
        ++rows;
        std::string id = stmt.ColumnText(0);
        if (seen.insert(id).second) hits.push_back(TextHit{std::move(id), stmt.ColumnDouble(1)});
      }
      return rows;
    };

    // Postings per term. A term of several tokens (only from a word that was not
    // normalised) has no single doclist: such a query is ranked exhaustively.
    std::vector<std::pair<int64_t, std::string>> by_postings;
    int64_t total = 0;
    bool phrases = false;
    for (const std::string& term : terms) {
      if (term.find(' ') != std::string::npos) {
        phrases = true;
        break;
      }
      ENGRAM_ASSIGN_OR_RETURN(Statement df, conn.Prepare(kTermDocsSql));
      df.BindText(1, term);
      ENGRAM_ASSIGN_OR_RETURN(bool row, df.Step());
      const int64_t postings = row ? df.ColumnInt(0) : 0;
      if (postings == 0) continue;  // in no document: adds nothing
      by_postings.emplace_back(postings, term);
      total += postings;
    }
    // One word found (even a common one) has no rare/common split: rank it exhaustively.
    if (phrases || total <= kExhaustivePostings || by_postings.size() < 2) return run(AnyOf(terms)).status();
    std::sort(by_postings.begin(), by_postings.end());
    std::vector<std::string> rare, common;
    int64_t rare_postings = 0;
    for (const auto& [postings, term] : by_postings) {
      if (rare.empty() || rare_postings + postings <= kExhaustivePostings) {
        rare.push_back(term);
        rare_postings += postings;
      } else {
        common.push_back(term);
      }
    }
    const std::string rare_any = AnyOf(rare);
    ENGRAM_ASSIGN_OR_RETURN(int64_t a, run("(" + rare_any + ") AND (" + AnyOf(common) + ")"));
    if (a < limit) {
      // A returned all it matched, so B's and C's new hits lack the common (B) or the
      // rare (C) words and their scores there are their whole-query scores.
      ENGRAM_ASSIGN_OR_RETURN(int64_t b, run(rare_any));
      if (b < limit) ENGRAM_RETURN_IF_ERROR(run(AnyOf(common)).status());
      std::stable_sort(hits.begin(), hits.end(),
                       [](const TextHit& x, const TextHit& y) { return x.score > y.score; });
      if (hits.size() > static_cast<size_t>(limit)) hits.resize(static_cast<size_t>(limit));
    }
    return OkStatus();
  }));
  return hits;
}

Result<TermStats> SqliteBackend::GetTermStats(std::span<const std::string> words) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "the full-text index"));
  TermStats stats;
  stats.doc_frequency.assign(words.size(), 0);
  // The index holds single tokens: a word the tokenizer would cut in two ("" here) is in
  // no document as one term.
  std::vector<std::string> terms;
  terms.reserve(words.size());
  for (const std::string& word : words) {
    std::string term = TokenText(word);
    terms.push_back(term.find(' ') == std::string::npos ? std::move(term) : std::string());
  }
  if (mirror_ != nullptr) {
    // From memory when the mirror is built (the FTS5 vocabulary walks each doclist).
    std::optional<TermStats> mirrored;
    ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
      ENGRAM_ASSIGN_OR_RETURN(mirrored, mirror_->TermStatsOf(conn, terms));
      return OkStatus();
    }));
    if (mirrored) return *std::move(mirrored);
  }
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    {
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kIndexedSql));
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return DataLossError("the store_state row is missing");
      stats.documents = stmt.ColumnInt(0);
    }
    for (size_t i = 0; i < terms.size(); ++i) {
      if (terms[i].empty()) continue;
      ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kTermDocsSql));
      stmt.BindText(1, terms[i]);
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (row) stats.doc_frequency[i] = stmt.ColumnInt(0);
    }
    return OkStatus();
  }));
  return stats;
}

Result<std::optional<EmbeddingSpace>> SqliteBackend::GetEmbeddingSpace() {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "embeddings"));
  std::optional<EmbeddingSpace> space;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(space, ReadSpace(conn));
    return OkStatus();
  }));
  return space;
}

Status SqliteBackend::SetEmbeddingSpace(const EmbeddingSpace& space) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  return Write([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement set, conn.Prepare(kSetSpaceSql));
    set.BindText(1, space.provider);
    set.BindText(2, space.model);
    set.BindInt(3, space.dimension);
    ENGRAM_RETURN_IF_ERROR(set.Run());
    ENGRAM_ASSIGN_OR_RETURN(Statement stale, conn.Prepare(kDeleteOtherSpacesSql));
    stale.BindText(1, space.Key());
    return stale.Run();
  });
}

Status SqliteBackend::PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  for (const EpisodeVector& v : vectors) {
    if (v.vector.size() != static_cast<size_t>(space.dimension)) {
      return InvalidArgumentError("the vector of episode " + v.episode_id + " has " + std::to_string(v.vector.size()) +
                                  " values; the space " + space.Key() + " has " + std::to_string(space.dimension));
    }
  }
  if (vectors.empty()) return OkStatus();
  const std::string key = space.Key();
  return Write([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<EmbeddingSpace> recorded, ReadSpace(conn));
    if (!recorded || !(*recorded == space)) {
      return FailedPreconditionError("vectors of " + key + " cannot be stored: the store's embedding space is " +
                                     (recorded ? recorded->Key() : std::string("not set")) +
                                     " (SetEmbeddingSpace first)");
    }
    for (const EpisodeVector& v : vectors) {
      {
        ENGRAM_ASSIGN_OR_RETURN(Statement check, conn.Prepare(kIsIndexedSql));
        check.BindText(1, v.episode_id);
        ENGRAM_ASSIGN_OR_RETURN(bool completed, check.Step());
        if (!completed) return NotFoundError("no completed episode " + v.episode_id + " to store a vector for");
      }
      ENGRAM_ASSIGN_OR_RETURN(Statement put, conn.Prepare(kPutVectorSql));
      put.BindText(1, v.episode_id);
      put.BindText(2, key);
      put.BindBlob(3, EncodeVectorBlob(v.vector));
      ENGRAM_RETURN_IF_ERROR(put.Run());
    }
    return OkStatus();
  });
}

Result<std::unique_ptr<VectorStream>> SqliteBackend::ListVectors(const EmbeddingSpace& space, int64_t after_seq) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "embeddings"));
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, pool_->Acquire());
  auto stream = std::make_unique<SqliteVectorStream>(pool_, std::move(conn), space);
  ENGRAM_RETURN_IF_ERROR(stream->Start(after_seq));
  return std::unique_ptr<VectorStream>(std::move(stream));
}

Result<std::vector<std::string>> SqliteBackend::EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) {
  ENGRAM_RETURN_IF_ERROR(RequireSchema(2, "embeddings"));
  std::vector<std::string> ids;
  if (limit == 0) return ids;
  ENGRAM_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(Statement stmt, conn.Prepare(kWithoutVectorSql));
    stmt.BindText(1, space.Key());
    stmt.BindInt(2, static_cast<int64_t>(limit));
    stmt.BindText(3, after);
    for (;;) {
      ENGRAM_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      ids.push_back(stmt.ColumnText(0));
    }
    return OkStatus();
  }));
  return ids;
}

}  // namespace engram::sqlite
