// The SQLite file's schema and its migration chain: v1 episodes and steps; v2 the
// retrieval index (full-text index of completed episodes, vectors, generation); v3 the
// learning tables (patterns, heuristics, attributions, extraction marks); v4 the full-text
// index's change marks (store_state.next_doc, unindexed). Internal to
// storage/sqlite.
#pragma once

#include <cstdint>
#include <string>

#include "engram/result.h"
#include "engram/status.h"
#include "storage/sqlite/sqlite_connection.h"

namespace engram::sqlite {

// The schema this build writes. Older files are migrated on open; newer ones refused.
inline constexpr int kSchemaVersion = 4;
// PRAGMA application_id of engram files ("engr"), to tell ours from a foreign database.
inline constexpr int32_t kApplicationId = 0x656e6772;

// What a file says about itself; all zero on a new, empty file.
struct FileMarks {
  int64_t application_id = 0;
  int64_t user_version = 0;
  int64_t object_count = 0;  // rows of sqlite_schema
};
Result<FileMarks> ReadMarks(Connection& conn);

// OK for a new file or an engram file at or below kSchemaVersion. Errors:
// kFailedPrecondition for a foreign database or a newer schema, saying what to do.
Status CheckMarks(const FileMarks& m, const std::string& path);

// Brings the file to kSchemaVersion one version at a time (v1 → v2 → v3 → v4), each step in
// its own write transaction that re-reads the version first, so several processes may
// open an old or new file at once: the first migrates, the others find it done. A step
// that fails leaves the file at the previous version.
Status Migrate(Connection& conn);

}  // namespace engram::sqlite
