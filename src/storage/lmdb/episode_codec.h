// The cache's value codec: an episode as msgpack, versioned and checksummed. Internal to
// storage/lmdb (tests use it to plant values of other versions).
//
// A value is the msgpack array [codec_version, filled_at_ms, checksum, payload], where
// payload is a bin holding the episode as positional msgpack arrays and checksum is a 64-bit
// hash of payload (episode_codec.cc: Checksum). A change to the episode layout bumps kCodecVersion: values of
// another version are then misses, so old and new engram builds can share a cache.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engram/result.h"
#include "engram/types.h"

namespace engram::lmdb {

inline constexpr uint32_t kCodecVersion = 1;

struct CachedEpisode {
  int64_t filled_at_ms = 0;  // wall-clock time the copy was stored
  Episode episode;
};

// Encodes `episode` stored at `filled_at_ms`. `version` is for tests only.
std::string EncodeCachedEpisode(const Episode& episode, int64_t filled_at_ms,
                                uint32_t version = kCodecVersion);

// Decodes a value. Never throws and never trusts sizes in `bytes`.
// Errors: kFailedPrecondition (a well-formed value of another codec version); kDataLoss
// (anything else that is not a value this codec wrote: truncated, bad checksum, wrong types).
Result<CachedEpisode> DecodeCachedEpisode(std::string_view bytes);

}  // namespace engram::lmdb
