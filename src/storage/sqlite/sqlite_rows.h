// Episode and step rows of the SQLite schema: writing an episode with its steps and
// reading them back. Shared by SqliteBackend's calls and the schema migrations (which
// index the episodes already stored). Internal to storage/sqlite.
#pragma once

#include <optional>
#include <string_view>

#include "engram/result.h"
#include "engram/status.h"
#include "engram/types.h"
#include "storage/sqlite/sqlite_connection.h"

namespace engram::sqlite {

// The episode columns ReadEpisodeRow reads, in its order; a SELECT of them, by id.
inline constexpr const char* kSelectEpisodeSql =
    "SELECT episode_id, task_description, task_type, context_json, start_time, end_time, outcome_json, "
    "reward_json, reflection_json, pattern_ids_json, tags_json, metadata_json "
    "FROM episodes WHERE episode_id = ?1";

// Inserts (or with `replace`, inserts or replaces) the episode row and inserts its steps.
// Errors: kAlreadyExists (id or step number taken); storage errors.
Status InsertEpisode(Connection& conn, const Episode& e, bool replace);
Status InsertStep(Connection& conn, std::string_view episode_id, const Step& s);

// Reads an episode row selected with the columns of kSelectEpisodeSql (no steps).
// Errors: kDataLoss when a stored value is damaged.
Result<Episode> ReadEpisodeRow(const Statement& stmt);
// Appends the stored steps of `e.episode_id` to e.steps, in step order.
Status ReadSteps(Connection& conn, Episode& e);

}  // namespace engram::sqlite
