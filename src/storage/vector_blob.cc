#include "storage/vector_blob.h"

#include <bit>
#include <cstdint>

namespace engram {

std::string EncodeVectorBlob(const std::vector<float>& v) {
  std::string bytes(v.size() * sizeof(float), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits = std::bit_cast<uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return bytes;
}

Result<std::vector<float>> DecodeVectorBlob(std::string_view bytes, int dimension, const std::string& episode_id) {
  if (bytes.size() != static_cast<size_t>(dimension) * sizeof(float)) {
    return DataLossError("the vector of episode " + episode_id + " has " + std::to_string(bytes.size()) +
                         " bytes; its space needs " + std::to_string(dimension * sizeof(float)));
  }
  std::vector<float> v(static_cast<size_t>(dimension));
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) bits |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i * 4 + b])) << (8 * b);
    v[i] = std::bit_cast<float>(bits);
  }
  return v;
}

Status CheckEmbeddingSpace(const EmbeddingSpace& space) {
  if (space.provider.empty() || space.model.empty() || space.dimension <= 0) {
    return InvalidArgumentError("an embedding space needs a provider, a model and a dimension above 0 (got \"" +
                                space.Key() + "\")");
  }
  return OkStatus();
}

}  // namespace engram
