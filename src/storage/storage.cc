#include "engram/storage.h"

#include "common/strings.h"

namespace engram {

Result<Durability> ParseDurability(std::string_view name) {
  std::string n = AsciiLower(StripAsciiWhitespace(name));
  if (n == "full") return Durability::kFull;
  if (n == "normal") return Durability::kNormal;
  return InvalidArgumentError("unknown durability \"" + std::string(name.substr(0, 64)) +
                              "\" (expected full or normal)");
}

std::string_view DurabilityName(Durability d) { return d == Durability::kFull ? "full" : "normal"; }

}  // namespace engram
