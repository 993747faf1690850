// PostgresBackend's retrieval index (schema v2): the full-text entries of completed
// episodes, their term counts, the store's generation, and episode vectors.
#include <algorithm>
#include <bit>
#include <limits>
#include <map>
#include <set>

#include "common/utf8.h"
#include "model/search_text.h"
#include "storage/postgres/postgres_backend.h"
#include "storage/vector_blob.h"

namespace engram::postgres {

// The full-text entry of a completed episode is a row of episode_search holding its
// SearchDocument as a tsvector built from the words themselves (SearchVectorLiteral), not
// through a text search configuration: the words are already normalised by
// model/search_text.h, and a parser would split or drop some of them (symbols such as
// "✓", mixed words such as "e2e") where SQLite keeps them, so the two stores would match
// differently. The lexemes are what the 'simple' configuration would give for these
// lower-cased words; title words carry weight A, body words B, for ts_rank_cd.
//
// search_terms counts, per word, the entries holding it ('' counts the entries), kept by
// triggers in the same transaction as every change of episode_search, whatever the path
// (completion, batch put, delete and its cascade, the v2 migration). Since v4 they are
// statement-level: one net change per word per statement, in word order, so concurrent
// writers lock term rows in one order.
//
// engram_state is one row: the generation every write transaction bumps (as its last
// statement, so the row lock lasts only through the commit), the vector sequence
// (PutVectors takes the next numbers under that same row lock, so sequence order is
// commit order and a reader catching up by seq never skips a vector), and the recorded
// embedding space.
//
// episode_vectors holds one vector per episode: little-endian float32s in a bytea.
const char* const kSchemaV2 = R"sql(
ALTER TABLE episodes DROP COLUMN search_tsv;
CREATE TABLE episode_search (
  episode_id text COLLATE "C" PRIMARY KEY REFERENCES episodes (episode_id) ON DELETE CASCADE,
  document   tsvector NOT NULL
);
CREATE INDEX episode_search_document ON episode_search USING GIN (document);
CREATE TABLE search_terms (
  word text COLLATE "C" PRIMARY KEY,
  docs bigint NOT NULL
);
CREATE FUNCTION engram_sync_search_terms() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  old_words text[] := '{}';
  new_words text[] := '{}';
BEGIN
  IF TG_OP <> 'INSERT' THEN old_words := tsvector_to_array(OLD.document) || ''::text; END IF;
  IF TG_OP <> 'DELETE' THEN new_words := tsvector_to_array(NEW.document) || ''::text; END IF;
  INSERT INTO search_terms AS t (word, docs)
    SELECT w, SUM(d) FROM (SELECT unnest(new_words) AS w, 1 AS d
                           UNION ALL SELECT unnest(old_words), -1) AS changes
    GROUP BY w HAVING SUM(d) <> 0 ORDER BY w COLLATE "C"
  ON CONFLICT (word) DO UPDATE SET docs = t.docs + EXCLUDED.docs;
  IF TG_OP <> 'INSERT' THEN
    DELETE FROM search_terms WHERE word = ANY(old_words) AND docs <= 0;
  END IF;
  RETURN NULL;
END
$fn$ SET search_path FROM CURRENT;
CREATE TRIGGER episode_search_terms AFTER INSERT OR UPDATE OR DELETE ON episode_search
  FOR EACH ROW EXECUTE FUNCTION engram_sync_search_terms();
CREATE TABLE engram_state (
  id                  integer PRIMARY KEY CHECK (id = 1),
  generation          bigint NOT NULL DEFAULT 0,
  vector_seq          bigint NOT NULL DEFAULT 0,
  embedding_provider  text,
  embedding_model     text,
  embedding_dimension integer
);
INSERT INTO engram_state (id) VALUES (1);
CREATE TABLE episode_vectors (
  episode_id text COLLATE "C" PRIMARY KEY REFERENCES episodes (episode_id) ON DELETE CASCADE,
  space      text NOT NULL,
  seq        bigint NOT NULL,
  vector     bytea NOT NULL
);
CREATE INDEX episode_vectors_by_seq ON episode_vectors (space, seq);
)sql";

// v4: the row trigger of v2 updated a word's count once per index row, so a batch of n
// episodes in one transaction updated each common word n times, each update walking the row
// versions the earlier ones left (4.9 s for 500 rows). Statement-level triggers with
// transition tables apply one net change per word per statement, still in word order.
const char* const kSchemaV4 = R"sql(
DROP TRIGGER episode_search_terms ON episode_search;
CREATE OR REPLACE FUNCTION engram_sync_search_terms() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO search_terms AS t (word, docs)
      SELECT w, count(*) FROM (SELECT unnest(tsvector_to_array(document) || ''::text) AS w FROM new_rows) AS n
      GROUP BY w ORDER BY w COLLATE "C"
    ON CONFLICT (word) DO UPDATE SET docs = t.docs + EXCLUDED.docs;
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    INSERT INTO search_terms AS t (word, docs)
      SELECT w, SUM(d) FROM (SELECT unnest(tsvector_to_array(document) || ''::text) AS w, 1 AS d FROM new_rows
                             UNION ALL
                             SELECT unnest(tsvector_to_array(document) || ''::text), -1 FROM old_rows) AS changes
      GROUP BY w HAVING SUM(d) <> 0 ORDER BY w COLLATE "C"
    ON CONFLICT (word) DO UPDATE SET docs = t.docs + EXCLUDED.docs;
  ELSE
    INSERT INTO search_terms AS t (word, docs)
      SELECT w, -count(*) FROM (SELECT unnest(tsvector_to_array(document) || ''::text) AS w FROM old_rows) AS o
      GROUP BY w ORDER BY w COLLATE "C"
    ON CONFLICT (word) DO UPDATE SET docs = t.docs + EXCLUDED.docs;
  END IF;
  DELETE FROM search_terms
    WHERE docs <= 0 AND word IN (SELECT unnest(tsvector_to_array(document) || ''::text) FROM old_rows);
  RETURN NULL;
END
$fn$ SET search_path FROM CURRENT;
CREATE TRIGGER episode_search_terms_insert AFTER INSERT ON episode_search
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION engram_sync_search_terms();
CREATE TRIGGER episode_search_terms_update AFTER UPDATE ON episode_search
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION engram_sync_search_terms();
CREATE TRIGGER episode_search_terms_delete AFTER DELETE ON episode_search
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION engram_sync_search_terms();
)sql";

namespace {

// PostgreSQL's limits on a lexeme (2046 bytes), its positions (1..16383) and positions
// kept per lexeme (256).
constexpr size_t kMaxLexemeBytes = 2046;
constexpr int kMaxPosition = 16383;
constexpr size_t kMaxPositionsPerLexeme = 256;

// The ranking: ts_rank_cd over weights {D, C, B, A}: title (A) words count 2.5 times body
// (B) words; normalisation 1 divides by 1 + log(document length), as BM25 favours short
// documents. A match always scores > 0 (every lexeme has a position).
#define ENGRAM_PG_RANK "ts_rank_cd('{0.1, 0.2, 0.4, 1.0}', s.document, $1::tsquery, 1)"

// $1 is the whole query (it ranks), $5 the part of it a stage matches (SearchText).
constexpr const char* kSearchSql =
    "SELECT s.episode_id, " ENGRAM_PG_RANK " AS score FROM episode_search s "
    "JOIN episodes e ON e.episode_id = s.episode_id "
    "WHERE s.document @@ $5::tsquery AND ($2::text IS NULL OR e.domain = $2::text) "
    "AND (cardinality($3::text[]) = 0 OR e.domain = ANY($3::text[])) "
    "ORDER BY score DESC, s.episode_id DESC LIMIT $4::bigint";
constexpr const char* kUpsertSearchSql =
    "INSERT INTO episode_search (episode_id, document) VALUES ($1, $2::tsvector) "
    "ON CONFLICT (episode_id) DO UPDATE SET document = EXCLUDED.document";
constexpr const char* kUpsertSearchManySql =
    "INSERT INTO episode_search (episode_id, document) "
    "SELECT i, d::tsvector FROM unnest($1::text[], $2::text[]) AS u(i, d) "
    "ON CONFLICT (episode_id) DO UPDATE SET document = EXCLUDED.document";
constexpr const char* kDeleteSearchManySql = "DELETE FROM episode_search WHERE episode_id = ANY($1::text[])";
constexpr const char* kDeleteSearchSql = "DELETE FROM episode_search WHERE episode_id = $1::text";
constexpr const char* kDeleteVectorSql = "DELETE FROM episode_vectors WHERE episode_id = $1::text";
constexpr const char* kDocumentsSql = "SELECT COALESCE((SELECT docs FROM search_terms WHERE word = ''), 0)";
constexpr const char* kTermDocsSql =
    "SELECT w.i, COALESCE(t.docs, 0) FROM unnest($1::text[]) WITH ORDINALITY AS w(word, i) "
    "LEFT JOIN search_terms t ON t.word = w.word AND w.word <> '' ORDER BY w.i";
constexpr const char* kLexemeDocsSql = "SELECT word, docs FROM search_terms WHERE word = ANY($1::text[])";
// SearchText ranks every matching entry only while the query's lexemes have at most this many
// postings in all: ts_rank_cd costs ~35 us per matching row (it reads the whole tsvector), so
// a query of common words over 20k episodes took 0.6 s. Beyond it, see SearchText.
constexpr int64_t kExhaustivePostings = 2'000;
constexpr const char* kGenerationSql = "SELECT generation FROM engram_state WHERE id = 1";
constexpr const char* kGetSpaceSql =
    "SELECT embedding_provider, embedding_model, embedding_dimension FROM engram_state WHERE id = 1";
constexpr const char* kSetSpaceSql =
    "UPDATE engram_state SET embedding_provider = $1, embedding_model = $2, embedding_dimension = $3::int "
    "WHERE id = 1";
constexpr const char* kDeleteOtherSpacesSql = "DELETE FROM episode_vectors WHERE space <> $1::text";
// Shares the episodes' keys so none is deleted or reopened before the vectors commit.
constexpr const char* kCompletedAmongSql =
    "SELECT episode_id FROM episodes WHERE episode_id = ANY($1::text[]) AND outcome_kind IS NOT NULL "
    "FOR KEY SHARE";
// Takes `n` vector sequence numbers and bumps the generation, under the state row's lock;
// returns the last number before them, the space as of this (latest committed) row and the
// new generation.
constexpr const char* kTakeSeqSql =
    "UPDATE engram_state SET vector_seq = vector_seq + $1::bigint, generation = generation + 1 WHERE id = 1 "
    "RETURNING vector_seq - $1::bigint, embedding_provider, embedding_model, embedding_dimension, generation";
constexpr const char* kUpsertVectorsSql =
    "INSERT INTO episode_vectors (episode_id, space, seq, vector) "
    "SELECT u.episode_id, $2::text, $3::bigint + u.i, decode(u.hex, 'hex') "
    "FROM unnest($1::text[], $4::text[]) WITH ORDINALITY AS u(episode_id, hex, i) "
    "ON CONFLICT (episode_id) DO UPDATE SET space = EXCLUDED.space, seq = EXCLUDED.seq, vector = EXCLUDED.vector";
constexpr const char* kListVectorsSql =
    "SELECT episode_id, seq, encode(vector, 'hex') FROM episode_vectors WHERE space = $1::text AND seq > $2::bigint "
    "ORDER BY seq LIMIT $3::bigint";
constexpr int kVectorPage = 256;
// Completed episodes are exactly those with an index entry; its key order is id order.
constexpr const char* kWithoutVectorSql =
    "SELECT s.episode_id FROM episode_search s WHERE NOT EXISTS (SELECT 1 FROM episode_vectors v "
    "WHERE v.episode_id = s.episode_id AND v.space = $1::text) AND s.episode_id > $3::text "
    "ORDER BY s.episode_id LIMIT $2::bigint";

// `word` as PostgreSQL can hold it as a lexeme, or "" when it cannot (empty, too long).
std::string Lexeme(std::string_view word) {
  std::string out;
  AppendValidUtf8(word, out);
  std::erase(out, '\0');  // PostgreSQL text holds no NUL
  if (out.size() > kMaxLexemeBytes) out.clear();
  return out;
}

// Appends `lexeme` quoted for tsvector/tsquery input: inside quotes only ' and \ are
// special, and both are escaped, so no character of a word is ever syntax.
void AppendQuoted(std::string& out, const std::string& lexeme) {
  out += '\'';
  for (char c : lexeme) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
}

std::string HexFloats(const std::vector<float>& v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(v.size() * 8);
  for (float f : v) {
    uint32_t bits = std::bit_cast<uint32_t>(f);
    for (int b = 0; b < 4; ++b) {  // little-endian, whatever this machine is
      unsigned byte = (bits >> (8 * b)) & 0xFF;
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

Result<std::vector<float>> FloatsFromHex(std::string_view hex, const std::string& episode_id) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 8 != 0) return DataLossError("the stored vector of episode " + episode_id + " is cut short");
  std::vector<float> out(hex.size() / 8);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) {
      int h = nibble(hex[i * 8 + b * 2]), l = nibble(hex[i * 8 + b * 2 + 1]);
      if (h < 0 || l < 0) return DataLossError("the stored vector of episode " + episode_id + " is damaged");
      bits |= static_cast<uint32_t>(h * 16 + l) << (8 * b);
    }
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

// The space recorded in a row of (provider, model, dimension) starting at column `col`.
std::optional<EmbeddingSpace> SpaceAt(const PgResult& r, int col) {
  if (r.IsNull(0, col) || r.IsNull(0, col + 1) || r.IsNull(0, col + 2)) return std::nullopt;
  return EmbeddingSpace{r.Text(0, col), r.Text(0, col + 1), static_cast<int>(r.Int(0, col + 2))};
}

// Pages through one space's vectors by seq, each page its own snapshot: sequence numbers
// follow commit order, so a page never misses a vector committed before a later one.
// Holds no connection between pages.
class PostgresVectorStream final : public VectorStream {
 public:
  PostgresVectorStream(std::shared_ptr<ConnectionPool> pool, std::string space_key, int64_t after_seq)
      : pool_(std::move(pool)), space_key_(std::move(space_key)), after_seq_(after_seq) {}

  Result<std::optional<EpisodeVector>> Next() override {
    if (next_ >= page_.size()) {
      if (done_) return std::optional<EpisodeVector>();
      page_.clear();
      next_ = 0;
      ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
        page_.clear();
        ENGRAM_ASSIGN_OR_RETURN(
            PgResult r, conn.Query(kListVectorsSql, Params().Text(space_key_).Int(after_seq_).Int(kVectorPage)));
        for (int i = 0; i < r.rows(); ++i) {
          EpisodeVector v;
          v.episode_id = r.Text(i, 0);
          v.seq = r.Int(i, 1);
          ENGRAM_ASSIGN_OR_RETURN(v.vector, FloatsFromHex(r.Text(i, 2), v.episode_id));
          page_.push_back(std::move(v));
        }
        return OkStatus();
      }));
      if (page_.size() < static_cast<size_t>(kVectorPage)) done_ = true;
      if (page_.empty()) return std::optional<EpisodeVector>();
      after_seq_ = page_.back().seq;
    }
    return std::optional<EpisodeVector>(std::move(page_[next_++]));
  }

 private:
  const std::shared_ptr<ConnectionPool> pool_;
  const std::string space_key_;
  int64_t after_seq_;
  std::vector<EpisodeVector> page_;
  size_t next_ = 0;
  bool done_ = false;
};

}  // namespace

std::string SearchVectorLiteral(std::string_view title, std::string_view body) {
  // Positions per lexeme, in document order, each with its weight.
  std::map<std::string, std::vector<std::pair<int, char>>> lexemes;
  int position = 0;
  auto add = [&](std::string_view text, char weight) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find(' ', start);
      if (end == std::string_view::npos) end = text.size();
      if (end > start) {
        position = std::min(position + 1, kMaxPosition);
        std::string lexeme = Lexeme(text.substr(start, end - start));
        if (!lexeme.empty()) {
          auto& positions = lexemes[std::move(lexeme)];
          if (positions.size() < kMaxPositionsPerLexeme &&
              (positions.empty() || positions.back().first != position)) {
            positions.emplace_back(position, weight);
          }
        }
      }
      start = end + 1;
    }
  };
  add(title, 'A');
  add(body, 'B');
  std::string out;
  for (const auto& [lexeme, positions] : lexemes) {
    if (!out.empty()) out += ' ';
    AppendQuoted(out, lexeme);
    for (size_t i = 0; i < positions.size(); ++i) {
      out += i == 0 ? ':' : ',';
      out += std::to_string(positions[i].first);
      out += positions[i].second;
    }
  }
  return out;
}

namespace {

// The tsquery matching any of `lexemes`: 'a' | 'b' | ...
std::string AnyLexemeQuery(const std::vector<std::string>& lexemes) {
  std::string out;
  for (const std::string& lexeme : lexemes) {
    if (!out.empty()) out += " | ";
    AppendQuoted(out, lexeme);
  }
  return out;
}

// The distinct lexemes of `words`, sorted.
std::vector<std::string> QueryLexemes(std::span<const std::string> words) {
  std::set<std::string> lexemes;
  for (const std::string& w : words) {
    std::string lexeme = Lexeme(w);
    if (!lexeme.empty()) lexemes.insert(std::move(lexeme));
  }
  return {lexemes.begin(), lexemes.end()};
}

}  // namespace


Status IndexEpisodes(Connection& conn, std::span<const Episode> episodes) {
  std::vector<std::optional<std::string>> index_ids, index_docs, drop_ids;
  std::set<std::string_view> seen;
  for (auto it = episodes.rbegin(); it != episodes.rend(); ++it) {  // the last of an id counts
    const Episode& e = *it;
    if (!seen.insert(e.episode_id).second) continue;
    if (e.completed()) {
      SearchDocument doc = BuildSearchDocument(e);
      index_ids.emplace_back(e.episode_id);
      index_docs.emplace_back(SearchVectorLiteral(doc.title, doc.body));
    } else {
      drop_ids.emplace_back(e.episode_id);  // put back in progress: not searchable
    }
  }
  if (!drop_ids.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult d, conn.Query(kDeleteSearchManySql, Params().TextArray(drop_ids)));
  }
  if (!index_ids.empty()) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult u,
                            conn.Query(kUpsertSearchManySql, Params().TextArray(index_ids).TextArray(index_docs)));
  }
  return OkStatus();
}

Status IndexEpisode(Connection& conn, const Episode& e) {
  if (!e.completed()) {
    // An episode put back in progress (a replacing PutEpisodes) is not searchable.
    ENGRAM_ASSIGN_OR_RETURN(PgResult s, conn.Query(kDeleteSearchSql, Params().Text(e.episode_id)));
    return OkStatus();
  }
  SearchDocument doc = BuildSearchDocument(e);
  ENGRAM_ASSIGN_OR_RETURN(
      PgResult r, conn.Query(kUpsertSearchSql, Params().Text(e.episode_id).Text(SearchVectorLiteral(doc.title, doc.body))));
  return OkStatus();
}

Status DropVector(Connection& conn, std::string_view episode_id) {
  ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kDeleteVectorSql, Params().Text(episode_id)));
  return OkStatus();
}

Status IndexAllCompleted(Connection& conn) {
  const std::string declare = std::string("DECLARE engram_reindex NO SCROLL CURSOR FOR SELECT ") +
                              kEpisodeSelectColumns + " FROM episodes WHERE outcome_kind IS NOT NULL ORDER BY episode_id";
  ENGRAM_ASSIGN_OR_RETURN(PgResult declared, conn.QueryOnce(declare.c_str(), Params()));
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(PgResult batch, conn.QueryOnce("FETCH 64 FROM engram_reindex", Params()));
    for (int i = 0; i < batch.rows(); ++i) {
      ENGRAM_ASSIGN_OR_RETURN(Episode e, ReadEpisodeRow(batch, i));
      ENGRAM_RETURN_IF_ERROR(ReadSteps(conn, e));
      ENGRAM_RETURN_IF_ERROR(IndexEpisode(conn, e));
    }
    if (batch.rows() < 64) break;
  }
  return conn.Exec("CLOSE engram_reindex");
}

// ---- PostgresBackend: retrieval index ----

Result<int64_t> PostgresBackend::Generation() {
  // One statement outside a transaction block is its own snapshot, so BEGIN and COMMIT
  // would only add round trips; the cache in front of PostgreSQL asks before every hit.
  for (int attempt = 0;; ++attempt) {
    ENGRAM_ASSIGN_OR_RETURN(PooledConnection conn, pool_->Acquire());
    Result<PgResult> r = conn->Query(kGenerationSql, Params());
    if (r.ok()) {
      if (r->rows() != 1) return DataLossError("the engram_state row of the store is missing");
      return r->Int(0, 0);
    }
    // Like RunTransaction: an idle connection that died under a restart is replaced once.
    if (attempt > 0 || !conn.reused() || !conn->broken()) return r.status();
  }
}

// As SqliteBackend::SearchText: a small query (few postings) ranks every matching entry;
// a large one runs in stages, rarest lexemes first, and stops as soon as a stage fills the
// limit: A. entries holding a rare lexeme AND a common one (rare: the rarest lexemes whose
// postings add up to kExhaustivePostings, at least one); B. a rare one only; C. a common
// one only. Every stage ranks with the whole query, so the stages' hits merge by score.
// The result is exact when C runs; when A (or B) fills the limit, an entry holding only rare
// (or only common) lexemes that would have scored just above the last hit is missed: the
// price of not ranking tens of thousands of rows for one query.
Result<std::vector<TextHit>> PostgresBackend::SearchText(const TextSearchRequest& request) {
  std::vector<TextHit> hits;
  const std::vector<std::string> lexemes = QueryLexemes(request.words);
  if (lexemes.empty() || request.limit == 0) return hits;
  const std::string query = AnyLexemeQuery(lexemes);
  const auto limit = static_cast<int64_t>(std::min<size_t>(request.limit, std::numeric_limits<int64_t>::max()));
  std::vector<std::optional<std::string>> allowed(request.allowed_domains.begin(), request.allowed_domains.end());
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    hits.clear();
    std::set<std::string> seen;
    // Adds the hits of the stage matching `match` not seen yet; returns how many rows it gave.
    auto run = [&](const std::string& match) -> Result<int64_t> {
      Params p;
      p.Text(query).OptText(request.domain).TextArray(allowed).Int(limit).Text(match);
      ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kSearchSql, p));
      for (int i = 0; i < r.rows(); ++i) {
        std::string id = r.Text(i, 0);
        if (seen.insert(id).second) hits.push_back(TextHit{std::move(id), r.Double(i, 1)});
      }
      return static_cast<int64_t>(r.rows());
    };

    std::vector<std::optional<std::string>> words(lexemes.begin(), lexemes.end());
    ENGRAM_ASSIGN_OR_RETURN(PgResult df, conn.Query(kLexemeDocsSql, Params().TextArray(words)));
    std::vector<std::pair<int64_t, std::string>> by_postings;  // lexemes in no entry add nothing
    int64_t total = 0;
    for (int i = 0; i < df.rows(); ++i) {
      if (df.Int(i, 1) <= 0) continue;
      by_postings.emplace_back(df.Int(i, 1), df.Text(i, 0));
      total += df.Int(i, 1);
    }
    if (total <= kExhaustivePostings || by_postings.size() < 2) return run(query).status();
    std::sort(by_postings.begin(), by_postings.end());
    std::vector<std::string> rare, common;
    int64_t rare_postings = 0;
    for (const auto& [postings, lexeme] : by_postings) {
      if (rare.empty() || rare_postings + postings <= kExhaustivePostings) {
        rare.push_back(lexeme);
        rare_postings += postings;
      } else {
        common.push_back(lexeme);
      }
    }
    const std::string rare_any = AnyLexemeQuery(rare);
    const std::string common_any = AnyLexemeQuery(common);
    ENGRAM_ASSIGN_OR_RETURN(int64_t a, run("(" + rare_any + ") & (" + common_any + ")"));
    if (a < limit) {
      // A returned all it matched, so B's and C's new hits lack the common (B) or the rare
      // (C) lexemes.
      ENGRAM_ASSIGN_OR_RETURN(int64_t b, run(rare_any));
      if (b < limit) ENGRAM_RETURN_IF_ERROR(run(common_any).status());
      std::stable_sort(hits.begin(), hits.end(), [](const TextHit& x, const TextHit& y) { return x.score > y.score; });
      if (hits.size() > static_cast<size_t>(limit)) hits.resize(static_cast<size_t>(limit));
    }
    return OkStatus();
  }));
  return hits;
}

Result<TermStats> PostgresBackend::GetTermStats(std::span<const std::string> words) {
  TermStats stats;
  // Looked up as the index holds them; a word no lexeme can be has no documents ("").
  std::vector<std::optional<std::string>> lexemes;
  for (const std::string& w : words) lexemes.push_back(Lexeme(w));
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult documents, conn.Query(kDocumentsSql, Params()));
    stats.documents = documents.Int(0, 0);
    stats.doc_frequency.assign(words.size(), 0);
    if (words.empty()) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kTermDocsSql, Params().TextArray(lexemes)));
    for (int i = 0; i < r.rows(); ++i) {
      const int64_t index = r.Int(i, 0) - 1;
      if (index >= 0 && index < static_cast<int64_t>(words.size())) stats.doc_frequency[index] = r.Int(i, 1);
    }
    return OkStatus();
  }));
  return stats;
}

Result<std::optional<EmbeddingSpace>> PostgresBackend::GetEmbeddingSpace() {
  std::optional<EmbeddingSpace> space;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult r, conn.Query(kGetSpaceSql, Params()));
    if (r.rows() != 1) return DataLossError("the engram_state row of the store is missing");
    space = SpaceAt(r, 0);
    return OkStatus();
  }));
  return space;
}

Status PostgresBackend::SetEmbeddingSpace(const EmbeddingSpace& space) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  return RunWrite([&](Connection& conn) -> Status {
    ENGRAM_ASSIGN_OR_RETURN(PgResult set,
                            conn.Query(kSetSpaceSql, Params().Text(space.provider).Text(space.model).Int(space.dimension)));
    if (set.affected() != 1) return DataLossError("the engram_state row of the store is missing");
    ENGRAM_ASSIGN_OR_RETURN(PgResult stale, conn.Query(kDeleteOtherSpacesSql, Params().Text(space.Key())));
    return OkStatus();
  });
}

Status PostgresBackend::PutVectors(const EmbeddingSpace& space, std::span<const EpisodeVector> vectors) {
  ENGRAM_RETURN_IF_ERROR(CheckEmbeddingSpace(space));
  // The last vector of an episode named twice wins, as if they were put one after another.
  std::map<std::string, const EpisodeVector*> latest;
  for (const EpisodeVector& v : vectors) {
    if (v.vector.size() != static_cast<size_t>(space.dimension)) {
      return InvalidArgumentError("the vector of episode " + v.episode_id + " has " + std::to_string(v.vector.size()) +
                                  " values; the space " + space.Key() + " has " + std::to_string(space.dimension));
    }
    latest[v.episode_id] = &v;
  }
  std::vector<std::optional<std::string>> ids, hex;
  for (const auto& [id, v] : latest) {
    ids.push_back(id);
    hex.push_back(HexFloats(v->vector));
  }
  auto not_recorded = [&](const std::optional<EmbeddingSpace>& recorded) {
    return FailedPreconditionError("vectors of " + space.Key() + " cannot be stored: the store's embedding space is " +
                                   (recorded ? recorded->Key() : std::string("not set")) +
                                   " (SetEmbeddingSpace records it)");
  };
  // Generation and seq are taken together in kTakeSeqSql, so no RunWrite here.
  return RunTransaction(*pool_, TxMode::kWrite, [&](Connection& conn) -> Status {
    // Checked early for the error's sake, and again under the lock below.
    ENGRAM_ASSIGN_OR_RETURN(PgResult recorded, conn.Query(kGetSpaceSql, Params()));
    if (recorded.rows() != 1) return DataLossError("the engram_state row of the store is missing");
    if (SpaceAt(recorded, 0) != space) return not_recorded(SpaceAt(recorded, 0));
    if (ids.empty()) return OkStatus();
    ENGRAM_ASSIGN_OR_RETURN(PgResult present, conn.Query(kCompletedAmongSql, Params().TextArray(ids)));
    if (present.rows() != static_cast<int>(ids.size())) {
      std::set<std::string> found;
      for (int i = 0; i < present.rows(); ++i) found.insert(present.Text(i, 0));
      for (const auto& id : ids) {
        if (!found.contains(*id)) {
          return NotFoundError("no completed episode " + *id + " to store a vector for");
        }
      }
    }
    ENGRAM_ASSIGN_OR_RETURN(PgResult seq, conn.Query(kTakeSeqSql, Params().Int(static_cast<int64_t>(ids.size()))));
    if (seq.rows() != 1) return DataLossError("the engram_state row of the store is missing");
    if (SpaceAt(seq, 1) != space) return not_recorded(SpaceAt(seq, 1));
    ENGRAM_ASSIGN_OR_RETURN(
        PgResult put, conn.Query(kUpsertVectorsSql, Params().TextArray(ids).Text(space.Key()).Int(seq.Int(0, 0)).TextArray(hex)));
    // Vectors are no part of a cached episode: the notice only moves listeners' generation.
    return NotifyChange(conn, channel_, seq.Int(0, 4), {}, writer_);
  });
}

Result<std::unique_ptr<VectorStream>> PostgresBackend::ListVectors(const EmbeddingSpace& space, int64_t after_seq) {
  return std::unique_ptr<VectorStream>(std::make_unique<PostgresVectorStream>(pool_, space.Key(), after_seq));
}

Result<std::vector<std::string>> PostgresBackend::EpisodesWithoutVector(const EmbeddingSpace& space, std::string_view after, size_t limit) {
  std::vector<std::string> ids;
  if (limit == 0) return ids;
  ENGRAM_RETURN_IF_ERROR(RunTransaction(*pool_, TxMode::kSnapshot, [&](Connection& conn) -> Status {
    ids.clear();
    ENGRAM_ASSIGN_OR_RETURN(PgResult r,
                            conn.Query(kWithoutVectorSql, Params().Text(space.Key()).Int(static_cast<int64_t>(limit)).Text(after)));
    for (int i = 0; i < r.rows(); ++i) ids.push_back(r.Text(i, 0));
    return OkStatus();
  }));
  return ids;
}

}  // namespace engram::postgres
