// What the write transactions of episodes keep in step with the episode rows: the
// full-text index of completed episodes (schema v2), their vectors, their extraction
// marks (schema v3), and the store generation. Internal to storage/sqlite.
//
// Every function here REQUIRES: a write transaction open on `conn`.
#pragma once

#include <string_view>

#include "engram/status.h"
#include "engram/types.h"
#include "storage/sqlite/sqlite_connection.h"

namespace engram::sqlite {

// How a new full-text document gets its doc_id: from store_state.next_doc (schema v4 on:
// never reused), or the next rowid (only while migrating a file below v4).
enum class DocNumbering { kStoreCounter, kRowid };

// Adds the completed episode `e` to the full-text index (its SearchDocument and its
// domain). REQUIRES: `e` is not indexed (UnindexEpisode first when replacing it).
Status IndexEpisode(Connection& conn, const Episode& e, DocNumbering numbering = DocNumbering::kStoreCounter);

// Removes the episode's full-text entry and its vector, if it has them; counts a removed
// entry in store_state.unindexed.
Status UnindexEpisode(Connection& conn, std::string_view episode_id);

// Marks a completed episode as pending extraction / clears the mark (no mark: no-op).
Status MarkPendingExtraction(Connection& conn, std::string_view episode_id);
Status ClearPendingExtraction(Connection& conn, std::string_view episode_id);

// Adds one to the store generation.
Status BumpGeneration(Connection& conn);

}  // namespace engram::sqlite
