// SQLite FTS5's 'ascii' tokenizer and its bm25() ranking, for the backends that compute
// them outside FTS5: Turso (no FTS5 there: the index is plain tables, scored in SQL) and
// SqliteBackend's in-memory postings mirror (storage/sqlite/sqlite_postings.h), which must
// return exactly what FTS5 returns. Written after SQLite 3.40's fts5_tokenize.c
// (asciiTokenize), fts5_storage.c / fts5_expr.c (tokens cut at FTS5_MAX_TOKEN_SIZE) and
// fts5_aux.c (fts5Bm25Function). Header-only.
//
// For a query of phrases (here: single terms) q1..qn, FTS5's bm25 of document D is
//   sum over i of idf(qi) * f(qi, D) * (k1 + 1) / (f(qi, D) + k1 * (1 - b + b * |D| / avgdl))
//   idf(q) = ln((N - n(q) + 0.5) / (n(q) + 0.5)), or 1e-6 when that is <= 0
// with k1 = 1.2, b = 0.75, f the column-weighted count of q in D, |D| the document's tokens
// in all columns, N the table's rows, n(q) the rows holding q and avgdl = tokens / N over
// the whole table. FTS5 negates it (rank ascending is best first).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace engram::fts {

// FTS5 keeps at most this many bytes of a token, in documents and in queries alike
// (FTS5_MAX_TOKEN_SIZE): longer tokens are indexed and matched by their first 32,768 bytes.
inline constexpr size_t kMaxTokenBytes = 32'768;

inline constexpr double kK1 = 1.2;
inline constexpr double kB = 0.75;
inline constexpr double kMinIdf = 1e-6;

// A byte of a token for the 'ascii' tokenizer: ASCII letters and digits, and every byte of
// a multi-byte character (bytes >= 0x80 are kept as they are, valid UTF-8 or not).
inline bool IsTokenByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Calls emit(std::string_view token) for each token of `text` as the 'ascii' tokenizer
// cuts and folds it: maximal runs of token bytes, ASCII upper case lowered. Returns the
// number of tokens (FTS5's column size). `token` is valid during the call only. Tokens are
// not cut at kMaxTokenBytes here (the mirror cuts them; Turso stores them whole).
template <typename Emit>
int64_t ForEachToken(std::string_view text, const Emit& emit) {
  int64_t tokens = 0;
  size_t i = 0;
  std::string run;
  while (i < text.size()) {
    while (i < text.size() && !IsTokenByte(static_cast<unsigned char>(text[i]))) ++i;
    if (i == text.size()) break;
    run.clear();
    while (i < text.size() && IsTokenByte(static_cast<unsigned char>(text[i]))) {
      const auto c = static_cast<unsigned char>(text[i++]);
      run.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
    }
    ++tokens;
    emit(std::string_view(run));
  }
  return tokens;
}

// FTS5's idf of a term held by `hits` of `rows` documents (fts5Bm25Function: a value <= 0
// becomes 1e-6, so a word in most documents still counts a little).
inline double Idf(int64_t rows, int64_t hits) {
  double idf = std::log((static_cast<double>(rows - hits) + 0.5) / (static_cast<double>(hits) + 0.5));
  if (idf <= 0.0) idf = kMinIdf;
  return idf;
}

// The length part of a document's bm25 denominator, k1 * (1 - b + b * |D| / avgdl): the
// same for every term of the document, so it can be computed once per document.
inline double LengthNorm(double length, double avgdl) { return kK1 * (1 - kB + kB * length / avgdl); }

// The part of a term's share that does not depend on the query: f * (k1 + 1) / (f + norm).
// `freq`: the term's weighted count in the document; `norm`: LengthNorm of the document.
inline double FreqRatio(double freq, double norm) { return (freq * (kK1 + 1.0)) / (freq + norm); }

// One term's share of a document's bm25, in FTS5's own order of operations so that the sum
// over a query's terms (taken in the query's order, from 0.0) is FTS5's bit for bit.
inline double TermScore(double idf, double freq, double norm) { return idf * FreqRatio(freq, norm); }

}  // namespace engram::fts
