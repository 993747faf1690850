// The text an episode's embedding is made from (issue 8). The retriever embeds one text per
// completed episode (Retriever::IndexBatch); which parts of the episode go into it decides
// what the vector can match:
//
//   full          the full-text document twice-weighted title: "title\ntitle\nbody"
//                 (search words: task, outcome, reflection, steps, outputs, context).
//                 The default, and what every store embedded before this option existed.
//   task          the task description as written. A sentence encoder (the "use"
//                 provider) is trained on sentences like it, and a query is usually
//                 another way of saying a task; steps and outputs (commands, paths, error
//                 text) are outside its vocabulary and crowd the task out of its 128 tokens.
//   task+outcome  the task, then the outcome's verdict or reason.
//   task+lessons  the task, the outcome, then the reflection's insights and improvements.
//
// With a concept map, `expand_concepts` appends, for every concept group whose terms the
// chosen text holds, that group's other terms ("OOM" → "out of memory, exit code 137, ..."):
// the document-side twin of the query-side vector expansion (RankingOptions::
// vector_expansion), so an episode written in one group's words lands near a query in
// another's.
//
// The text depends only on the episode, the options and the map: deterministic. A store's
// vectors made with one choice are not comparable with another's, so the choice is part of
// the embedding space (DocumentTextSpaceSuffix).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engram/embedding.h"
#include "engram/result.h"
#include "engram/types.h"

namespace engram {

class ConceptMap;

enum class DocumentText { kFull = 0, kTask, kTaskOutcome, kTaskLessons };

struct DocumentTextOptions {
  DocumentText text = DocumentText::kFull;
  bool expand_concepts = false;  // needs a concept map; without one it does nothing
};

// "full", "task", "task+outcome", "task+lessons".
std::string_view DocumentTextName(DocumentText text);
// The inverse, also accepting a "+concepts" suffix (sets expand_concepts): the value of
// the embedding.document_text config key. Errors: kInvalidArgument naming the choices.
Result<DocumentTextOptions> ParseDocumentTextOptions(std::string_view value);
// "" for the default (full, no expansion), so existing stores keep their space; otherwise
// "+" and the option's name ("+task", "+full+concepts"), appended to the embedding space's
// model so that vectors made with another choice count as stale (Retriever::VectorsStale).
std::string DocumentTextSpaceSuffix(const DocumentTextOptions& options);

// The text to embed for `episode`. `concepts` may be null (no expansion).
std::string EpisodeEmbeddingText(const Episode& episode, const DocumentTextOptions& options,
                                 const ConceptMap* concepts);

// `base` with a document-text choice attached: everything is forwarded, except that
// Space().model gains DocumentTextSpaceSuffix(options), so the store records the choice
// with the vectors and a store embedded another way reads as stale until `engram reindex`.
// Returns `base` itself for the default choice. `concepts` (may be null) must outlive the
// result. Wrap outermost (after WithFallbackNote): the retriever finds the choice by
// looking at the provider it was given.
std::unique_ptr<EmbeddingProvider> WithDocumentText(std::unique_ptr<EmbeddingProvider> base,
                                                    DocumentTextOptions options, const ConceptMap* concepts);

// The text Retriever::IndexBatch embeds for `episode` with `provider`: as WithDocumentText
// set it up, or the default (full) for any other provider.
std::string EpisodeEmbeddingText(const Episode& episode, const EmbeddingProvider& provider);

}  // namespace engram
