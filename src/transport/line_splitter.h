// Splits a byte stream into newline-delimited messages (the stdio framing), with a cap
// on a message's size so a client cannot make engram buffer without bound.
// Not thread-safe: owned by the reading thread.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace engram::transport {

class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Calls `on_line` for every complete line (without its '\n' or a trailing '\r'), and
  // `on_oversize` once for each line longer than the cap, whose bytes are dropped.
  void Feed(std::string_view bytes, const std::function<void(std::string)>& on_line,
            const std::function<void()>& on_oversize);

  // At end of input: the last line if it had no '\n' (and was not over the cap).
  std::optional<std::string> Finish();

 private:
  const size_t max_line_bytes_;
  std::string buffer_;
  bool skipping_ = false;  // inside an over-long line
};

}  // namespace engram::transport
