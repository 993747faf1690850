#include "transport/line_splitter.h"

namespace engram::transport {
namespace {
std::string StripCr(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}
}  // namespace

void LineSplitter::Feed(std::string_view bytes, const std::function<void(std::string)>& on_line,
                        const std::function<void()>& on_oversize) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    if (!skipping_) {
      if (buffer_.size() + piece.size() > max_line_bytes_) {
        buffer_.clear();
        skipping_ = true;
        on_oversize();
      } else {
        buffer_.append(piece);
      }
    }
    if (nl == std::string_view::npos) return;
    if (!skipping_) on_line(StripCr(std::move(buffer_)));
    buffer_.clear();
    skipping_ = false;
    bytes.remove_prefix(nl + 1);
  }
}

std::optional<std::string> LineSplitter::Finish() {
  if (skipping_ || buffer_.empty()) return std::nullopt;
  std::string last = StripCr(std::move(buffer_));
  buffer_.clear();
  return last;
}

}  // namespace engram::transport
