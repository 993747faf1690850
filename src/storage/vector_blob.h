// What every backend shares about stored vectors: the blob form of a float32 vector
// (little-endian, 4 bytes per value, as SQLite's BLOB and Turso's vector32 hold it) and the
// check of an EmbeddingSpace before it is recorded. Internal to storage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engram/result.h"
#include "engram/status.h"
#include "engram/storage.h"

namespace engram {

// `v` as little-endian float32 bytes.
std::string EncodeVectorBlob(const std::vector<float>& v);
// The `dimension` floats of `bytes`. Errors: kDataLoss naming `episode_id` when the length
// is not dimension × 4 bytes.
Result<std::vector<float>> DecodeVectorBlob(std::string_view bytes, int dimension, const std::string& episode_id);
// Errors: kInvalidArgument when the space has no provider, no model or no positive dimension.
Status CheckEmbeddingSpace(const EmbeddingSpace& space);

}  // namespace engram
