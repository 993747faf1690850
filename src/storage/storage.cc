#include "engram/storage.h"

#include <set>

#include "common/strings.h"

namespace engram {

Result<Durability> ParseDurability(std::string_view name) {
  std::string n = AsciiLower(StripAsciiWhitespace(name));
  if (n == "full") return Durability::kFull;
  if (n == "normal") return Durability::kNormal;
  return InvalidArgumentError("unknown durability \"" + std::string(name.substr(0, 64)) +
                              "\" (expected full or normal)");
}

Result<std::vector<Episode>> StorageBackend::GetEpisodes(std::span<const std::string> episode_ids) {
  std::vector<Episode> out;
  std::set<std::string_view> seen;
  for (const std::string& id : episode_ids) {
    if (!seen.insert(id).second) continue;
    Result<Episode> e = GetEpisode(id);
    if (!e.ok()) {
      if (e.status().code() == StatusCode::kNotFound) continue;
      return e.status();
    }
    out.push_back(*std::move(e));
  }
  return out;
}

std::string_view DurabilityName(Durability d) { return d == Durability::kFull ? "full" : "normal"; }

}  // namespace engram
