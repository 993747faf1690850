#include "retrieval/episode_text.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "model/search_text.h"
#include "semantics/concept_map.h"

namespace engram {
namespace {

constexpr std::pair<DocumentText, std::string_view> kNames[] = {
    {DocumentText::kFull, "full"},
    {DocumentText::kTask, "task"},
    {DocumentText::kTaskOutcome, "task+outcome"},
    {DocumentText::kTaskLessons, "task+lessons"},
};
constexpr std::string_view kConceptsSuffix = "+concepts";

void AppendLine(std::string& out, std::string_view line) {
  if (line.empty()) return;
  if (!out.empty()) out += '\n';
  out += line;
}

void AppendOutcome(std::string& out, const Episode& e) {
  if (!e.outcome) return;
  const Outcome& o = *e.outcome;
  AppendLine(out, o.verdict);
  AppendLine(out, o.reason);
}

// The other terms of every concept group `text` names, one line, each group once, in the
// order the text names them. A term the text says itself is not added again.
std::string ConceptAlternatives(std::string_view text, const ConceptMap& concepts) {
  const std::vector<ConceptMatch> matches = concepts.Find(SearchTokens(text));
  std::set<std::pair<size_t, size_t>> said;
  std::vector<size_t> groups;
  for (const ConceptMatch& m : matches) {
    said.insert({m.group, m.term});
    if (std::find(groups.begin(), groups.end(), m.group) == groups.end()) groups.push_back(m.group);
  }
  std::string out;
  for (size_t g : groups) {
    const ConceptGroup& group = concepts.groups()[g];
    for (size_t t = 0; t < group.terms.size(); ++t) {
      if (said.contains({g, t})) continue;
      if (!out.empty()) out += ", ";
      out += group.terms[t].text;
    }
  }
  return out;
}

class DocumentTextProvider final : public EmbeddingProvider {
 public:
  DocumentTextProvider(std::unique_ptr<EmbeddingProvider> base, DocumentTextOptions options,
                       const ConceptMap* concepts)
      : base_(std::move(base)), options_(options), concepts_(concepts) {}

  EmbeddingSpace Space() const override {
    EmbeddingSpace space = base_->Space();
    space.model += DocumentTextSpaceSuffix(options_);
    return space;
  }
  Result<std::vector<std::vector<float>>> Embed(std::span<const std::string> texts, EmbedPurpose purpose) override {
    return base_->Embed(texts, purpose);
  }
  EmbeddingHealth Health() const override { return base_->Health(); }

  std::string Text(const Episode& episode) const { return EpisodeEmbeddingText(episode, options_, concepts_); }

 private:
  const std::unique_ptr<EmbeddingProvider> base_;
  const DocumentTextOptions options_;
  const ConceptMap* const concepts_;
};

}  // namespace

std::unique_ptr<EmbeddingProvider> WithDocumentText(std::unique_ptr<EmbeddingProvider> base,
                                                    DocumentTextOptions options, const ConceptMap* concepts) {
  if (DocumentTextSpaceSuffix(options).empty()) return base;
  return std::make_unique<DocumentTextProvider>(std::move(base), options, concepts);
}

std::string EpisodeEmbeddingText(const Episode& episode, const EmbeddingProvider& provider) {
  if (const auto* p = dynamic_cast<const DocumentTextProvider*>(&provider)) return p->Text(episode);
  return EpisodeEmbeddingText(episode, DocumentTextOptions{}, nullptr);
}

std::string_view DocumentTextName(DocumentText text) {
  for (const auto& [value, name] : kNames) {
    if (value == text) return name;
  }
  return "full";
}

Result<DocumentTextOptions> ParseDocumentTextOptions(std::string_view value) {
  DocumentTextOptions options;
  if (value.ends_with(kConceptsSuffix)) {
    options.expand_concepts = true;
    value.remove_suffix(kConceptsSuffix.size());
  }
  for (const auto& [text, name] : kNames) {
    if (name == value) {
      options.text = text;
      return options;
    }
  }
  return InvalidArgumentError("embedding.document_text: expected full, task, task+outcome or task+lessons, "
                              "optionally followed by +concepts; got \"" +
                              std::string(value) + "\"");
}

std::string DocumentTextSpaceSuffix(const DocumentTextOptions& options) {
  if (options.text == DocumentText::kFull && !options.expand_concepts) return "";
  std::string suffix = "+";
  suffix += DocumentTextName(options.text);
  if (options.expand_concepts) suffix += kConceptsSuffix;
  return suffix;
}

std::string EpisodeEmbeddingText(const Episode& episode, const DocumentTextOptions& options,
                                 const ConceptMap* concepts) {
  std::string text;
  switch (options.text) {
    case DocumentText::kFull: {
      // What the full-text index holds, the title twice: the task weighs more than any
      // one step (unchanged from before the option, so existing vectors stay valid).
      SearchDocument doc = BuildSearchDocument(episode);
      text = doc.title + "\n" + doc.title + "\n" + doc.body;
      break;
    }
    case DocumentText::kTask:
      text = episode.task_description;
      break;
    case DocumentText::kTaskOutcome:
      text = episode.task_description;
      AppendOutcome(text, episode);
      break;
    case DocumentText::kTaskLessons:
      text = episode.task_description;
      AppendOutcome(text, episode);
      if (episode.reflection) {
        for (const std::string& s : episode.reflection->insights) AppendLine(text, s);
        for (const std::string& s : episode.reflection->improvements) AppendLine(text, s);
      }
      break;
  }
  if (options.expand_concepts && concepts != nullptr) AppendLine(text, ConceptAlternatives(text, *concepts));
  return text;
}

}  // namespace engram
