#include "transport/stdio_transport.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/logging.h"
#include "common/mutex.h"
#include "common/thread_pool.h"
#include "transport/line_splitter.h"

namespace engram::transport {
namespace {

using mcp::Json;

// Writes whole lines to the output, one writer at a time. Thread-safe.
class LineWriter final : public mcp::ClientChannel {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}

  bool Send(const Json& message) override {
    std::string line = mcp::Dump(message);
    line.push_back('\n');
    MutexLock lock(mu_);
    if (broken_) return false;
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        broken_ = true;  // the client closed stdout: nothing more can reach it
        return false;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return true;
  }

 private:
  const int fd_;
  Mutex mu_;
  bool broken_ ENGRAM_GUARDED_BY(mu_) = false;
};

}  // namespace

Status StdioTransport::Run() {
  LineWriter out(options_.out_fd);
  std::shared_ptr<mcp::McpSession> session = server_.NewSession(mcp::Principal{});
  ThreadPool pool(options_.workers);

  auto handle_line = [&](std::string line) {
    if (line.find_first_not_of(" \t") == std::string::npos) return;  // blank lines are not messages
    std::optional<Json> message = mcp::ParseJson(line);
    if (!message) {
      out.Send(mcp::MakeError(nullptr, mcp::kParseError, "Parse error: the line is not valid JSON"));
      return;
    }
    // Notifications and responses are handled at once, in order, so cancellation is never
    // stuck behind busy workers; initialize too, so requests pipelined behind it find the
    // session initialized. Everything else runs on the pool.
    bool inline_handling = !message->is_object() || !message->contains("id") || !message->contains("method") ||
                           (*message)["method"] == "initialize";
    if (inline_handling && !message->is_array()) {
      if (std::optional<Json> reply = session->HandleMessage(*message, out)) out.Send(*reply);
      return;
    }
    pool.Submit([&, m = std::move(*message)] {
      if (std::optional<Json> reply = session->HandleMessage(m, out)) out.Send(*reply);
    });
  };

  LineSplitter splitter(options_.max_message_bytes);
  auto on_oversize = [&] {
    LogWarn("stdio message over the size limit; skipped", {{"limit_bytes", std::to_string(options_.max_message_bytes)}});
    out.Send(mcp::MakeError(nullptr, mcp::kInvalidRequest,
                            "Invalid Request: message larger than " + std::to_string(options_.max_message_bytes) +
                                " bytes"));
  };
  char chunk[65536];
  Status status;
  for (;;) {
    ssize_t n = read(options_.in_fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = UnavailableError(std::string("reading stdin failed: ") + strerror(errno));
      break;
    }
    if (n == 0) break;  // EOF: the client is done
    splitter.Feed(std::string_view(chunk, static_cast<size_t>(n)), handle_line, on_oversize);
  }
  if (std::optional<std::string> last = splitter.Finish()) handle_line(std::move(*last));
  pool.WaitIdle();
  return status;
}

}  // namespace engram::transport
