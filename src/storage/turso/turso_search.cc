// TursoBackend's full-text index. tursodb has no FTS5, so engram keeps the index itself in
// plain tables and computes FTS5's BM25 over them in SQL, so a Turso store ranks as a SQLite
// one does (same tokens, same formula, same title weight):
//
//   search_docs      one row per completed episode: doc_id, episode_id, domain, and the
//                    document's length in tokens (title + body, as FTS5 counts it)
//   search_postings  (term, doc_id) -> freq: the term's weighted count in the document,
//                    2 per title occurrence + 1 per body occurrence (bm25(fts, 2.0, 1.0))
//   search_terms     term -> documents holding it (FTS5's nHit, and GetTermStats)
//   search_stats     one row: documents and their total tokens (FTS5's nRow and nToken)
//
// search_terms and search_stats are kept by triggers on the two others, so every path that
// adds or drops postings (indexing, replacing, deleting) keeps the counts exact in the same
// transaction. FTS5's bm25 for a query of terms q:
//   sum over q of idf(q) * freq(q, D) * (k1 + 1) / (freq(q, D) + k1 * (1 - b + b * |D| / avgdl))
// (storage/fts_bm25.h: the tokenizer and idf are shared with SQLite's in-memory mirror)
// with |D| the document's tokens in all columns and avgdl = nToken / nRow.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/utf8.h"
#include "model/search_text.h"
#include "model/stored_columns.h"
#include "storage/fts_bm25.h"
#include "storage/turso/turso_backend.h"

namespace engram::turso {

namespace {

using nlohmann::json;

constexpr const char* kSchema[] = {
    "CREATE TABLE search_docs (\n"
    "  doc_id     INTEGER PRIMARY KEY,\n"
    "  episode_id TEXT NOT NULL UNIQUE,\n"
    "  domain     TEXT NOT NULL,\n"
    "  length     INTEGER NOT NULL\n"
    ")",
    "CREATE TABLE search_postings (\n"
    "  term   TEXT NOT NULL,\n"
    "  doc_id INTEGER NOT NULL,\n"
    "  freq   INTEGER NOT NULL,\n"
    "  PRIMARY KEY (term, doc_id)\n"
    ")",
    "CREATE INDEX search_postings_by_doc ON search_postings (doc_id)",
    "CREATE TABLE search_terms (\n"
    "  term TEXT PRIMARY KEY,\n"
    "  docs INTEGER NOT NULL\n"
    ")",
    "CREATE TABLE search_stats (\n"
    "  id     INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "  docs   INTEGER NOT NULL,\n"
    "  tokens INTEGER NOT NULL\n"
    ")",
    "INSERT INTO search_stats (id, docs, tokens) VALUES (1, 0, 0)",
    "CREATE TRIGGER search_postings_insert AFTER INSERT ON search_postings BEGIN\n"
    "  INSERT INTO search_terms (term, docs) VALUES (NEW.term, 1)\n"
    "    ON CONFLICT (term) DO UPDATE SET docs = docs + 1;\n"
    "END",
    "CREATE TRIGGER search_postings_delete AFTER DELETE ON search_postings BEGIN\n"
    "  UPDATE search_terms SET docs = docs - 1 WHERE term = OLD.term;\n"
    "  DELETE FROM search_terms WHERE term = OLD.term AND docs <= 0;\n"
    "END",
    "CREATE TRIGGER search_docs_insert AFTER INSERT ON search_docs BEGIN\n"
    "  UPDATE search_stats SET docs = docs + 1, tokens = tokens + NEW.length WHERE id = 1;\n"
    "END",
    "CREATE TRIGGER search_docs_delete AFTER DELETE ON search_docs BEGIN\n"
    "  UPDATE search_stats SET docs = docs - 1, tokens = tokens - OLD.length WHERE id = 1;\n"
    "END",
};

constexpr const char* kDeletePostingsSql =
    "DELETE FROM search_postings WHERE doc_id = (SELECT doc_id FROM search_docs WHERE episode_id = ?)";
constexpr const char* kDeleteDocSql = "DELETE FROM search_docs WHERE episode_id = ?";
constexpr const char* kInsertDocSql = "INSERT INTO search_docs (episode_id, domain, length) VALUES (?, ?, ?)";
// ?2: a JSON object term -> weighted count.
constexpr const char* kInsertPostingsSql =
    "INSERT INTO search_postings (term, doc_id, freq) "
    "SELECT key, (SELECT doc_id FROM search_docs WHERE episode_id = ?), value FROM json_each(?)";

constexpr const char* kStatsSql = "SELECT docs, tokens FROM search_stats WHERE id = 1";
// ?1: a JSON list of terms. Every text taken out of json_each is CAST to TEXT: tursodb 0.6
// finds no row for `indexed_text IN (SELECT value FROM json_each(?))` when the value looks
// like a number ("137", "401"), as words of error codes do.
constexpr const char* kTermDocsSql =
    "SELECT term, docs FROM search_terms WHERE term IN (SELECT CAST(value AS TEXT) FROM json_each(?))";

// The BM25 of the documents holding any term of ?1 (a JSON object term -> idf), ?5 the
// average document length (k1 = 1.2, b = 0.75, so (k1 + 1) = 2.2 and 1 - b = 0.25). ?2
// domain, ?3 allowed domains (JSON list), ?4 limit. Ties go to the older document, as
// FTS5's rank order does (rowid order).
constexpr const char* kSearchSql =
    "SELECT d.episode_id, SUM(w.value * (p.freq * 2.2) / (p.freq + 1.2 * (0.25 + 0.75 * d.length / ?5))) AS score "
    "FROM json_each(?1) w JOIN search_postings p ON p.term = CAST(w.key AS TEXT) "
    "JOIN search_docs d ON d.doc_id = p.doc_id "
    "WHERE (?2 IS NULL OR d.domain = ?2) "
    "AND (?3 IS NULL OR d.domain IN (SELECT CAST(value AS TEXT) FROM json_each(?3))) "
    "GROUP BY d.doc_id ORDER BY score DESC, d.doc_id LIMIT ?4";

// Calls emit(term) for each token of `text` as the 'ascii' tokenizer cuts and folds it
// (fts_bm25.h), then made valid UTF-8 for the JSON that carries terms (a run left empty by
// that is no term but still counts toward the length, as it does in FTS5). Returns the
// number of tokens.
template <typename Emit>
int64_t ForEachTerm(std::string_view text, const Emit& emit) {
  std::string term;
  return fts::ForEachToken(text, [&](std::string_view token) {
    term.clear();
    AppendValidUtf8(token, term);
    if (!term.empty()) emit(term);
  });
}

// The distinct terms of `words`, in their first order. A word the tokenizer would cut in
// several (only a word that was not normalised) gives each of its tokens: the index holds
// no phrases.
std::vector<std::string> QueryTerms(std::span<const std::string> words) {
  std::vector<std::string> terms;
  std::set<std::string> seen;
  for (const std::string& word : words) {
    ForEachTerm(word, [&](const std::string& term) {
      if (seen.insert(term).second) terms.push_back(term);
    });
  }
  return terms;
}

// The one term a GetTermStats word is in the index as, or "" when it is in none as one.
std::string SingleTerm(std::string_view word) {
  std::string only;
  int n = 0;
  ForEachTerm(word, [&](const std::string& term) {
    if (++n == 1) only = term;
  });
  return n == 1 ? only : std::string();
}

// The terms of every query travel as one JSON list parameter.
std::string JsonList(const std::vector<std::string>& items) { return DumpColumn(json(items)); }

// Reads search_stats' row: (documents, tokens).
Result<std::pair<int64_t, int64_t>> ReadStats(const HranaResult& r) {
  if (r.rows.size() != 1) return DataLossError("the search_stats row of the Turso store is missing");
  ENGRAM_ASSIGN_OR_RETURN(int64_t docs, r.Int(0, 0));
  ENGRAM_ASSIGN_OR_RETURN(int64_t tokens, r.Int(0, 1));
  return std::make_pair(docs, tokens);
}

}  // namespace

std::vector<std::string> SearchSchemaStatements() { return {std::begin(kSchema), std::end(kSchema)}; }

// ---- index upkeep (turso_backend.h) ----

void AppendUnindexEpisode(HranaBatch& batch, std::string_view episode_id) {
  // Postings first: their delete trigger counts terms down; then the document's row,
  // whose trigger takes it out of the store's totals.
  batch.Add(kDeletePostingsSql, {HranaValue::Text(episode_id)});
  batch.Add(kDeleteDocSql, {HranaValue::Text(episode_id)});
}

void AppendIndexEpisode(HranaBatch& batch, const Episode& e) {
  AppendUnindexEpisode(batch, e.episode_id);
  if (!e.completed()) return;
  const SearchDocument doc = BuildSearchDocument(e);
  std::map<std::string, int64_t> freq;  // bm25(fts, 2.0, 1.0): a title token counts twice
  int64_t length = ForEachTerm(doc.title, [&](const std::string& term) { freq[term] += 2; });
  length += ForEachTerm(doc.body, [&](const std::string& term) { freq[term] += 1; });
  json terms = json::object();
  for (const auto& [term, count] : freq) terms[term] = count;
  batch.Add(kInsertDocSql, {HranaValue::Text(e.episode_id), HranaValue::Text(e.context.domain),
                            HranaValue::Int(length)});
  if (!freq.empty()) {
    batch.Add(kInsertPostingsSql, {HranaValue::Text(e.episode_id), HranaValue::Text(DumpColumn(terms))});
  }
}

// ---- TursoBackend: full-text search ----

// Two round trips: the terms' document counts and the store's totals (for idf and avgdl),
// then the scoring query over every posting of the query's terms: exact bm25, whatever the
// query. (SQLite's search scores only the documents holding a rare word once a query's
// postings pass 8,000; every way of doing that in one tursodb statement measured 5-10 times
// slower than scoring all postings, ~25-50 us each on this machine, so there is no such
// stage here.) The first trip's two reads share no snapshot: a write landing between them
// shifts an idf as much as a write just before the search would.
Result<std::vector<TextHit>> TursoBackend::SearchText(const TextSearchRequest& request) {
  std::vector<TextHit> hits;
  const std::vector<std::string> terms = QueryTerms(request.words);
  if (terms.empty() || request.limit == 0) return hits;
  const auto limit = static_cast<int64_t>(std::min<size_t>(request.limit, std::numeric_limits<int64_t>::max()));

  HranaBatch lookups;
  lookups.Add(kStatsSql);
  lookups.Add(kTermDocsSql, {HranaValue::Text(JsonList(terms))});
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> looked, client().ExecuteMany(lookups));
  if (looked.size() != 2) return DataLossError("the Turso server answered a search with too few results");
  ENGRAM_ASSIGN_OR_RETURN(auto totals, ReadStats(looked[0]));
  const auto [documents, tokens] = totals;
  if (documents <= 0) return hits;
  const double avgdl = std::max(static_cast<double>(tokens) / static_cast<double>(documents), 1e-9);

  json idf = json::object();  // terms in no document add nothing
  const HranaResult& df = looked[1];
  for (size_t i = 0; i < df.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string term, df.Text(i, 0));
    ENGRAM_ASSIGN_OR_RETURN(int64_t docs, df.Int(i, 1));
    if (docs <= 0) continue;
    idf[term] = fts::Idf(documents, docs);
  }
  if (idf.empty()) return hits;

  ENGRAM_ASSIGN_OR_RETURN(
      HranaResult r,
      client().Execute(kSearchSql, {HranaValue::Text(DumpColumn(idf)), HranaValue::OptText(request.domain),
                                    request.allowed_domains.empty()
                                        ? HranaValue::Null()
                                        : HranaValue::Text(JsonList(request.allowed_domains)),
                                    HranaValue::Int(limit), HranaValue::Float(avgdl)}));
  hits.reserve(r.rows.size());
  for (size_t i = 0; i < r.rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string id, r.Text(i, 0));
    ENGRAM_ASSIGN_OR_RETURN(double score, r.Double(i, 1));
    hits.push_back(TextHit{std::move(id), score});
  }
  return hits;
}

// One round trip: the totals and the asked terms' rows.
Result<TermStats> TursoBackend::GetTermStats(std::span<const std::string> words) {
  TermStats stats;
  stats.doc_frequency.assign(words.size(), 0);
  std::vector<std::string> terms(words.size());
  std::vector<std::string> asked;
  for (size_t i = 0; i < words.size(); ++i) {
    terms[i] = SingleTerm(words[i]);
    if (!terms[i].empty()) asked.push_back(terms[i]);
  }
  HranaBatch lookups;
  lookups.Add(kStatsSql);
  lookups.Add(kTermDocsSql, {HranaValue::Text(JsonList(asked))});
  ENGRAM_ASSIGN_OR_RETURN(std::vector<HranaResult> looked, client().ExecuteMany(lookups));
  if (looked.size() != 2) return DataLossError("the Turso server answered term statistics with too few results");
  ENGRAM_ASSIGN_OR_RETURN(auto totals, ReadStats(looked[0]));
  stats.documents = totals.first;
  std::map<std::string, int64_t> docs;
  for (size_t i = 0; i < looked[1].rows.size(); ++i) {
    ENGRAM_ASSIGN_OR_RETURN(std::string term, looked[1].Text(i, 0));
    ENGRAM_ASSIGN_OR_RETURN(docs[term], looked[1].Int(i, 1));
  }
  for (size_t i = 0; i < words.size(); ++i) {
    if (terms[i].empty()) continue;
    auto it = docs.find(terms[i]);
    if (it != docs.end()) stats.doc_frequency[i] = std::max<int64_t>(it->second, 0);
  }
  return stats;
}

}  // namespace engram::turso
