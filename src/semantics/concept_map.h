// ConceptMap: groups of terms that mean the same thing in software engineering ("out of
// memory", "OOM", "exit 137", "OOMKilled"), so that a query in one group's words finds
// episodes written in another's (issue 8). engram ships a built-in map
// (src/semantics/data/concepts.txt, compiled in); a deployment may add its own file
// (retrieval.concepts_file). docs/concepts.md documents the format:
//
//   # comment
//   out-of-memory: out of memory, oom, oomkilled, exit code 137, ~killed
//
// One group per line: a name (letters, digits, '-', '_', '.'), a colon, then at least two
// comma-separated terms. A term is a word or a phrase; it is matched on search words
// (model/search_text.h), so case, plurals, "-ing"/"-ed" and stop words do not matter
// ("ran out of memory" holds "out of memory"). A term prefixed with '~' is related rather
// than equivalent and counts at kRelatedTermWeight.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engram/result.h"

namespace engram {

inline constexpr double kRelatedTermWeight = 0.5;

struct ConceptTerm {
  std::string text;                // as written in the file, without '~'
  std::vector<std::string> words;  // its search words, in order (never empty)
  double weight = 1.0;             // 1, or kRelatedTermWeight for '~'
};

struct ConceptGroup {
  std::string name;
  std::vector<ConceptTerm> terms;  // at least two
  std::string source;              // "file:line" where it was defined
};

// One occurrence of a group's term in a sequence of search words.
struct ConceptMatch {
  size_t group = 0;  // index into ConceptMap::groups()
  size_t term = 0;   // index into the group's terms
  size_t position = 0;  // first word
  size_t length = 0;    // words
};

// Immutable once built. Thread-compatible.
class ConceptMap {
 public:
  ConceptMap() = default;

  // Parses the text of a concept file. `source` names it in errors ("concepts.txt").
  // Errors: kInvalidArgument "<source>:<line>: <what>" for a line without a colon, a bad or
  // duplicate group name, fewer than two terms, an empty term, a term with no search
  // words (only stop words or punctuation) or a term twice in one group.
  static Result<ConceptMap> Parse(std::string_view text, std::string_view source);

  // Reads and parses a file. Errors: kNotFound / kFailedPrecondition when it cannot be
  // read, and Parse's.
  static Result<ConceptMap> LoadFile(const std::string& path);

  // The map compiled into engram (src/semantics/data/concepts.txt).
  static const ConceptMap& Builtin();

  // Adds `other`'s groups. A group whose name exists already gets the new terms appended
  // (so a deployment's file can extend a built-in group); a term it has already is skipped.
  void Merge(const ConceptMap& other);

  // Every occurrence of a term in `words` (search words, model/search_text.h), leftmost
  // first; at one position longer terms come first. Overlaps are all reported.
  std::vector<ConceptMatch> Find(const std::vector<std::string>& words) const;

  const std::vector<ConceptGroup>& groups() const { return groups_; }
  size_t size() const { return groups_.size(); }

 private:
  void AddGroup(ConceptGroup group);
  void IndexTerm(size_t group, size_t term);

  std::vector<ConceptGroup> groups_;
  std::unordered_map<std::string, size_t> by_name_;
  // First word of a term → (group, term).
  std::unordered_map<std::string, std::vector<std::pair<size_t, size_t>>> by_first_word_;
};

}  // namespace engram
