// A loopback HTTP/1.1 server that misbehaves on purpose, for testing HTTP clients: the
// test's handler picks each answer — any status, any body (HTML error pages, truncated or
// wrong-typed JSON), a delay, a connection dropped before answering, a body cut short of
// its Content-Length, or no answer at all. It counts requests, connections and the most
// requests it ever had in flight at once, and keeps every request it received.
//
//   MisbehavingHttpServer server([](const HttpRequest& req, int n) {
//     if (n < 2) return HttpReply::Status(500, "<html>oops</html>", "text/html");
//     return HttpReply::Json(R"({"results": []})");
//   });
//   ... point the client at server.url() ...
//   EXPECT_EQ(server.requests(), 3);
//
// Raw sockets rather than cpp-httplib, because httplib cannot drop a connection mid-answer.
// Connections are kept alive unless the client asks to close. Thread-safe.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace engram::testing {

struct HttpRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpReply {
  enum class Kind {
    kRespond,   // status + headers + body
    kDrop,      // close the connection without a byte of answer
    kTruncate,  // headers promising the whole body, then half of it, then close
    kHang,      // never answer; the connection stays open until the client gives up
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::chrono::milliseconds delay{0};  // before answering
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpReply Json(std::string body) {
    HttpReply r;
    r.body = std::move(body);
    return r;
  }
  static HttpReply Status(int status, std::string body, std::string content_type = "text/plain") {
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
  }
  static HttpReply Of(Kind kind, std::string body = "") {
    HttpReply r;
    r.kind = kind;
    r.body = std::move(body);
    return r;
  }
};

class MisbehavingHttpServer {
 public:
  // `handler(request, n)` answers the n-th request (0-based, across all connections); it
  // may run on several threads at once.
  using Handler = std::function<HttpReply(const HttpRequest&, int)>;

  explicit MisbehavingHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::listen(listen_fd_, 64) == 0 && ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~MisbehavingHttpServer() {
    stop_ = true;
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
    ::close(listen_fd_);
  }
  MisbehavingHttpServer(const MisbehavingHttpServer&) = delete;
  MisbehavingHttpServer& operator=(const MisbehavingHttpServer&) = delete;

  // 0 if it could not listen.
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }

  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  // The most requests that were being answered at the same moment.
  int max_in_flight() const { return max_in_flight_.load(); }
  std::vector<HttpRequest> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      open_fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Waits up to `ms` for `fd` to be readable; false when stopping.
  bool WaitReadable(int fd, int ms) {
    for (int waited = 0; !stop_; waited += 20) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) return true;
      if (ms >= 0 && waited >= ms) return false;
    }
    return false;
  }

  // Reads one request from `fd` (keeping bytes past it in `buffer`); false at EOF.
  bool ReadRequest(int fd, std::string& buffer, HttpRequest& req) {
    size_t header_end;
    while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(fd, buffer)) return false;
    }
    std::string head = buffer.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.find(' ', sp1 + 1);
    req.method = request_line.substr(0, sp1);
    req.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t eol = head.find("\r\n", pos);
      if (eol == std::string::npos) eol = head.size();
      std::string line = head.substr(pos, eol - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        req.headers[name] = value;
      }
      pos = eol + 2;
    }
    size_t length = 0;
    if (std::string cl = req.Header("content-length"); !cl.empty()) length = std::stoul(cl);
    buffer.erase(0, header_end + 4);
    while (buffer.size() < length) {
      if (!ReadMore(fd, buffer)) return false;
    }
    req.body = buffer.substr(0, length);
    buffer.erase(0, length);
    return true;
  }

  bool ReadMore(int fd, std::string& buffer) {
    if (!WaitReadable(fd, -1)) return false;
    char chunk[16384];
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }

  static void SendAll(int fd, const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  void Serve(int fd) {
    std::string buffer;
    for (;;) {
      HttpRequest req;
      if (!ReadRequest(fd, buffer, req)) break;
      const int n = requests_.fetch_add(1);
      const int now = in_flight_.fetch_add(1) + 1;
      for (int seen = max_in_flight_.load(); now > seen && !max_in_flight_.compare_exchange_weak(seen, now);) {
      }
      Handler handler;
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back(req);
        handler = handler_;
      }
      HttpReply reply = handler(req, n);
      for (auto waited = std::chrono::milliseconds(0); waited < reply.delay && !stop_;
           waited += std::chrono::milliseconds(5)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      // Counted out before the answer leaves: once the client has it, it may send its next
      // request at once, and that one must not overlap this one in the count.
      in_flight_.fetch_sub(1);
      bool keep_open = req.Header("connection") != "close";
      switch (reply.kind) {
        case HttpReply::Kind::kDrop:
          keep_open = false;
          break;
        case HttpReply::Kind::kHang:
          while (WaitReadable(fd, -1)) {
            char c;
            if (::recv(fd, &c, 1, MSG_PEEK) <= 0) break;  // the client hung up
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          keep_open = false;
          break;
        case HttpReply::Kind::kRespond:
        case HttpReply::Kind::kTruncate: {
          std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + Reason(reply.status) + "\r\n";
          out += "Content-Type: " + reply.content_type + "\r\n";
          out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
          for (const auto& [name, value] : reply.headers) out += name + ": " + value + "\r\n";
          if (reply.kind == HttpReply::Kind::kTruncate || !keep_open) out += "Connection: close\r\n";
          out += "\r\n";
          out += reply.kind == HttpReply::Kind::kTruncate ? reply.body.substr(0, reply.body.size() / 2) : reply.body;
          SendAll(fd, out);
          if (reply.kind == HttpReply::Kind::kTruncate) keep_open = false;
          break;
        }
      }
      if (!keep_open) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    ::close(fd);
  }

  static std::string Reason(int status) {
    switch (status) {
      case 200:
        return "OK";
      case 401:
        return "Unauthorized";
      case 403:
        return "Forbidden";
      case 404:
        return "Not Found";
      case 429:
        return "Too Many Requests";
      case 500:
        return "Internal Server Error";
      case 502:
        return "Bad Gateway";
      case 503:
        return "Service Unavailable";
      default:
        return "Status";
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;

  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};

  mutable std::mutex mu_;
  Handler handler_;
  std::vector<HttpRequest> received_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
};

}  // namespace engram::testing
