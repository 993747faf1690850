#include "semantics/wordnet.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <span>

namespace engram {

namespace {

constexpr const char* kPosName[4] = {"noun", "verb", "adj", "adv"};

// WordNet's detachment rules (morphy(7WN)): suffix → replacement, per part of speech.
struct Rule {
  std::string_view suffix, replacement;
};
constexpr Rule kNounRules[] = {{"s", ""},     {"ses", "s"},   {"xes", "x"},  {"zes", "z"},
                               {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}};
constexpr Rule kVerbRules[] = {{"s", ""},   {"ies", "y"}, {"es", "e"},  {"es", ""},
                               {"ed", "e"}, {"ed", ""},   {"ing", "e"}, {"ing", ""}};
constexpr Rule kAdjRules[] = {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}};

std::span<const Rule> RulesFor(WordNetPos pos) {
  switch (pos) {
    case WordNetPos::kNoun: return kNounRules;
    case WordNetPos::kVerb: return kVerbRules;
    case WordNetPos::kAdj: return kAdjRules;
    case WordNetPos::kAdv: return {};
  }
  return {};
}

// The next space-separated field of `line`, which is advanced past it.
std::string_view NextField(std::string_view& line) {
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  const size_t end = line.find(' ');
  std::string_view field = line.substr(0, end);
  line = end == std::string_view::npos ? std::string_view() : line.substr(end);
  return field;
}

bool ParseNumber(std::string_view s, int base, size_t& out) {
  if (s.empty()) return false;
  size_t v = 0;
  for (char c : s) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return false;
    v = v * static_cast<size_t>(base) + static_cast<size_t>(d);
  }
  out = v;
  return true;
}

// "Sign_out" → "sign out"; adjective markers ("(a)", "(ip)") dropped.
std::string Readable(std::string_view word) {
  if (const size_t paren = word.find('('); paren != std::string_view::npos) word = word.substr(0, paren);
  std::string out(word);
  for (char& c : out) {
    if (c == '_') c = ' ';
    else if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

// A read-only memory map of a whole file.
struct WordNet::Mapped {
  const char* data = nullptr;
  size_t size = 0;
  ~Mapped() {
    if (data != nullptr && size > 0) ::munmap(const_cast<char*>(data), size);
  }
  std::string_view view() const { return {data, size}; }
};

Result<std::unique_ptr<WordNet>> WordNet::Open(const std::string& dir) {
  std::unique_ptr<WordNet> wn(new WordNet());
  auto map = [](const std::string& path, std::unique_ptr<Mapped>& out) -> Status {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT) return NotFoundError("WordNet file " + path + " is missing (install wordnet-base)");
      return FailedPreconditionError("cannot open WordNet file " + path + ": " + std::strerror(err));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < 64) {
      ::close(fd);
      return DataLossError("WordNet file " + path + " is empty or unreadable");
    }
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return FailedPreconditionError("cannot map WordNet file " + path);
    out = std::make_unique<Mapped>();
    out->data = static_cast<const char*>(p);
    out->size = static_cast<size_t>(st.st_size);
    // Every WordNet index and data file opens with the licence, lines of "  1 This
    // software and database ...".
    if (!out->view().starts_with("  1 ")) return DataLossError("WordNet file " + path + " is not a WordNet file");
    return OkStatus();
  };
  for (int p = 0; p < 4; ++p) {
    ENGRAM_RETURN_IF_ERROR(map(dir + "/index." + kPosName[p], wn->index_[p]));
    ENGRAM_RETURN_IF_ERROR(map(dir + "/data." + kPosName[p], wn->data_[p]));
    // Exception lists: "inflected base [base...]" per line. Optional.
    std::ifstream exc(dir + "/" + kPosName[p] + ".exc");
    std::string line;
    while (std::getline(exc, line)) {
      std::string_view rest = line;
      std::string_view inflected = NextField(rest);
      if (inflected.empty()) continue;
      std::vector<std::string>& bases = wn->exceptions_[p][std::string(inflected)];
      for (std::string_view base = NextField(rest); !base.empty(); base = NextField(rest)) {
        bases.emplace_back(base);
      }
    }
  }
  return wn;
}

WordNet::~WordNet() = default;

std::string_view WordNet::IndexLine(WordNetPos pos, std::string_view lemma) const {
  const std::string_view file = index_[static_cast<int>(pos)]->view();
  // Binary search over byte positions; the line looked at is the first one starting at or
  // after the probe. The licence lines start with a space, which sorts before every lemma.
  size_t lo = 0, hi = file.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    size_t start = 0;
    if (mid > 0) {
      start = file.find('\n', mid - 1);
      start = start == std::string_view::npos ? file.size() : start + 1;
    }
    if (start >= hi) {
      hi = mid;
      continue;
    }
    size_t end = file.find('\n', start);
    if (end == std::string_view::npos) end = file.size();
    const std::string_view line = file.substr(start, end - start);
    const int cmp = line.starts_with(" ") ? -1 : line.substr(0, line.find(' ')).compare(lemma);
    if (cmp == 0) return line;
    if (cmp < 0) {
      lo = end + 1;
    } else {
      hi = mid;
    }
  }
  return {};
}

std::string_view WordNet::DataLine(WordNetPos pos, size_t offset) const {
  const std::string_view file = data_[static_cast<int>(pos)]->view();
  if (offset >= file.size()) return {};
  size_t end = file.find('\n', offset);
  if (end == std::string_view::npos) end = file.size();
  return file.substr(offset, end - offset);
}

std::vector<std::string> WordNet::BaseForms(std::string_view word, WordNetPos pos) const {
  std::vector<std::string> out;
  auto add = [&](std::string candidate) {
    if (std::find(out.begin(), out.end(), candidate) != out.end()) return;
    if (!IndexLine(pos, candidate).empty()) out.push_back(std::move(candidate));
  };
  std::string key(word);
  std::replace(key.begin(), key.end(), ' ', '_');
  add(key);
  if (auto it = exceptions_[static_cast<int>(pos)].find(key); it != exceptions_[static_cast<int>(pos)].end()) {
    for (const std::string& base : it->second) add(base);
  }
  for (const Rule& r : RulesFor(pos)) {
    if (key.size() > r.suffix.size() + 1 && std::string_view(key).ends_with(r.suffix)) {
      add(key.substr(0, key.size() - r.suffix.size()) + std::string(r.replacement));
    }
  }
  return out;
}

std::vector<WordNetSense> WordNet::Senses(std::string_view word, int max_senses) const {
  std::vector<WordNetSense> out;
  if (word.empty() || max_senses <= 0) return out;
  for (int p = 0; p < 4; ++p) {
    const auto pos = static_cast<WordNetPos>(p);
    const std::vector<std::string> bases = BaseForms(word, pos);
    if (bases.empty()) continue;
    // index line: lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offsets...
    std::string_view line = IndexLine(pos, bases.front());
    NextField(line);  // lemma
    NextField(line);  // pos
    size_t synsets = 0, pointers = 0, ignored = 0;
    if (!ParseNumber(NextField(line), 10, synsets) || !ParseNumber(NextField(line), 10, pointers)) continue;
    for (size_t i = 0; i < pointers; ++i) NextField(line);
    if (!ParseNumber(NextField(line), 10, ignored) || !ParseNumber(NextField(line), 10, ignored)) continue;
    const std::string base_readable = Readable(bases.front());
    for (size_t s = 0; s < synsets && static_cast<int>(s) < max_senses; ++s) {
      size_t offset = 0;
      if (!ParseNumber(NextField(line), 10, offset)) break;
      // data line: offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id...] ...
      std::string_view data = DataLine(pos, offset);
      size_t check = 0;
      if (!ParseNumber(NextField(data), 10, check) || check != offset) break;
      NextField(data);  // lex_filenum
      NextField(data);  // ss_type
      size_t words = 0;
      if (!ParseNumber(NextField(data), 16, words)) break;
      WordNetSense sense;
      sense.pos = pos;
      sense.rank = static_cast<int>(s);
      sense.lemma = base_readable;
      for (size_t w = 0; w < words; ++w) {
        std::string synonym = Readable(NextField(data));
        NextField(data);  // lex_id
        if (synonym.empty() || synonym == base_readable) continue;
        if (std::find(sense.synonyms.begin(), sense.synonyms.end(), synonym) == sense.synonyms.end()) {
          sense.synonyms.push_back(std::move(synonym));
        }
      }
      out.push_back(std::move(sense));
    }
  }
  return out;
}

}  // namespace engram
