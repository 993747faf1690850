// The PostgreSQL connection pool under load (issue 6): starts `engram serve --http
// 127.0.0.1:0 --store URL --set storage.pool_size=N` and drives it with --clients
// concurrent MCP clients over Streamable HTTP (cpp-httplib, one keep-alive connection and
// one MCP session each; a C++ client costs far less CPU per call than the SDK's, so on a
// 2-core machine the server, not the client, sets the rate). Each client loops, one call
// at a time, for --seconds after --warmup seconds, over:
//   --query-share %   query_memory (a bench/eval query, every other one with a domain)
//   the rest          an episode: create_episode, add_episode_step, complete_episode
// and the report gives calls/s, episodes/s, latency per tool (p50/p95/p99/max) and every
// failure a caller saw (transport errors, HTTP statuses, JSON-RPC errors, tool results with
// isError), with the first message of each kind. With more concurrent calls than pooled
// connections (the server runs 16 workers by default), callers wait for a connection
// (PostgresOptions::pool_size): that shows as latency, and as errors only past
// connect_timeout + statement_timeout (40 s by default).
//
//   http_pool_bench --engram build/engram --store 'postgresql://postgres@/db?host=/tmp/pg-bench'
//                   [--pool-size 10] [--clients 32] [--seconds 15] [--warmup 3] [--query-share 50]
//                   [--eval bench/eval]
// bench/storage/run.sh runs it with pool sizes 10, 4 and 1 (the extreme), at --query-share
// 50 and 0, against the store storage_bench loaded in a throwaway cluster. With a PostgreSQL
// store the server builds its vector index in the background first: give --warmup enough
// seconds for that, or the first queries are lexical-only. The server's HOME and XDG folders are a temp folder; no ENGRAM_*
// variable of this process reaches it.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench/scale_corpus.h"
#include "common/mutex.h"

namespace engram {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using bench::Percentile;

struct Options {
  std::string engram;
  std::string store;
  int pool_size = 10;
  int clients = 32;
  double seconds = 15;
  double warmup = 3;
  int query_share = 50;
  std::string eval_dir = "bench/eval";
};

// The server process: its pid, the port it listens on, and the tail of its stderr.
class Server {
 public:
  ~Server() { Stop(); }

  bool Start(const Options& o, const std::string& home) {
    int fds[2];
    if (::pipe(fds) != 0) return false;
    std::vector<std::string> args = {o.engram, "serve", "--http", "127.0.0.1:0", "--store", o.store,
                                     "--set", "storage.pool_size=" + std::to_string(o.pool_size)};
    std::vector<std::string> env = {"HOME=" + home, "XDG_DATA_HOME=" + home + "/data",
                                    "XDG_CONFIG_HOME=" + home + "/config", "ENGRAM_LOG_LEVEL=warn",
                                    "PATH=/usr/bin:/bin"};
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      std::vector<char*> argv, envp;
      for (std::string& a : args) argv.push_back(a.data());
      for (std::string& e : env) envp.push_back(e.data());
      argv.push_back(nullptr);
      envp.push_back(nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      std::_Exit(127);
    }
    ::close(fds[1]);
    stderr_ = ::fdopen(fds[0], "r");
    // "engram is serving MCP over Streamable HTTP at http://127.0.0.1:PORT/mcp"
    const std::string marker = "Streamable HTTP at http://127.0.0.1:";
    char line[4096];
    while (std::fgets(line, sizeof line, stderr_) != nullptr) {
      Remember(line);
      const std::string l = line;
      const size_t at = l.find(marker);
      if (at != std::string::npos) {
        port_ = std::atoi(l.c_str() + at + marker.size());
        break;
      }
    }
    if (port_ <= 0) return false;
    drain_ = std::thread([this] {
      char more[4096];
      while (std::fgets(more, sizeof more, stderr_) != nullptr) Remember(more);
    });
    return true;
  }

  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (drain_.joinable()) drain_.join();
    if (stderr_ != nullptr) std::fclose(stderr_);
    stderr_ = nullptr;
  }

  // CPU seconds (user + system) the server has used.
  double CpuSeconds() const {
    FILE* f = std::fopen(("/proc/" + std::to_string(pid_) + "/stat").c_str(), "r");
    if (f == nullptr) return 0;
    char buf[2048];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) return 0;
    unsigned long utime = 0, stime = 0;
    // After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  std::string Tail() ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    std::string out;
    for (const std::string& l : tail_) out += l;
    return out;
  }

  int port() const { return port_; }

 private:
  void Remember(const char* line) ENGRAM_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    tail_.push_back(line);
    if (tail_.size() > 20) tail_.erase(tail_.begin());
  }

  pid_t pid_ = -1;
  int port_ = 0;
  FILE* stderr_ = nullptr;
  std::thread drain_;

  Mutex mu_;
  std::vector<std::string> tail_ ENGRAM_GUARDED_BY(mu_);
};

// What one client saw: latencies per tool, failures per kind (with the first message).
struct Tally {
  std::map<std::string, std::vector<double>> ms;
  std::map<std::string, size_t> failures;
  std::map<std::string, std::string> first_failure;
  size_t episodes = 0;

  void Fail(const std::string& kind, const std::string& message) {
    ++failures[kind];
    first_failure.emplace(kind, message.substr(0, 300));
  }
  void Merge(const Tally& o) {
    for (const auto& [tool, v] : o.ms) ms[tool].insert(ms[tool].end(), v.begin(), v.end());
    for (const auto& [kind, n] : o.failures) failures[kind] += n;
    for (const auto& [kind, m] : o.first_failure) first_failure.emplace(kind, m);
    episodes += o.episodes;
  }
};

// One MCP session over one keep-alive HTTP connection. Not thread-safe: owned by one thread.
class McpClient {
 public:
  explicit McpClient(int port) : http_("127.0.0.1", port) {
    http_.set_keep_alive(true);
    // Without it, a request sent as two writes (headers, body) waits ~40 ms for the delayed
    // ACK of the first (Nagle), and that, not the server, would be the latency measured.
    http_.set_tcp_nodelay(true);
    http_.set_read_timeout(std::chrono::seconds(120));
    http_.set_write_timeout(std::chrono::seconds(30));
  }

  // initialize + notifications/initialized. Returns an error message, empty when connected.
  std::string Connect(int n) {
    Json init = {{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", "initialize"},
                 {"params",
                  {{"protocolVersion", "2025-06-18"},
                   {"capabilities", Json::object()},
                   {"clientInfo", {{"name", "http_pool_bench-" + std::to_string(n)}, {"version", "1"}}}}}};
    httplib::Result r = http_.Post("/mcp", Headers(), init.dump(), "application/json");
    if (!r) return "initialize: " + httplib::to_string(r.error());
    if (r->status != 200) return "initialize: HTTP " + std::to_string(r->status) + " " + r->body;
    session_ = r->get_header_value("Mcp-Session-Id");
    Json note = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
    r = http_.Post("/mcp", Headers(), note.dump(), "application/json");
    if (!r) return "initialized: " + httplib::to_string(r.error());
    return "";
  }

  // tools/call; records the latency under `tool` when `count` and the call succeeded.
  // Returns the structuredContent of a successful call, or null.
  Json Call(const std::string& tool, Json arguments, bool count, Tally& tally) {
    Json req = {{"jsonrpc", "2.0"},
                {"id", next_id_++},
                {"method", "tools/call"},
                {"params", {{"name", tool}, {"arguments", std::move(arguments)}}}};
    const SteadyClock::time_point t0 = SteadyClock::now();
    httplib::Result r = http_.Post("/mcp", Headers(), req.dump(), "application/json");
    const double ms = bench::SecondsSince(t0) * 1000;
    if (!r) {
      tally.Fail("transport", tool + ": " + httplib::to_string(r.error()));
      return nullptr;
    }
    if (r->status != 200) {
      tally.Fail("HTTP " + std::to_string(r->status), tool + ": " + r->body);
      return nullptr;
    }
    Json reply = ReplyTo(req["id"], *r);
    if (reply.is_discarded()) {
      tally.Fail("bad reply", tool + ": " + r->body);
      return nullptr;
    }
    if (reply.contains("error")) {
      tally.Fail("JSON-RPC error", tool + ": " + reply["error"].dump());
      return nullptr;
    }
    const Json& result = reply["result"];
    if (result.value("isError", false)) {
      tally.Fail("isError", tool + ": " + result.value("content", Json::array()).dump());
      return nullptr;
    }
    if (count) tally.ms[tool].push_back(ms);
    return result.value("structuredContent", Json::object());
  }

 private:
  // The JSON-RPC answer to `id`: the body, or the matching "data:" event of an SSE stream
  // (the server streams when it sends a notification first, e.g. tools/list_changed).
  static Json ReplyTo(const Json& id, const httplib::Response& r) {
    if (r.get_header_value("Content-Type").rfind("text/event-stream", 0) != 0) {
      return Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    }
    size_t at = 0;
    while (at < r.body.size()) {
      size_t end = r.body.find('\n', at);
      if (end == std::string::npos) end = r.body.size();
      const std::string_view line = std::string_view(r.body).substr(at, end - at);
      at = end + 1;
      if (!line.starts_with("data:")) continue;
      Json event = Json::parse(line.substr(5), nullptr, /*allow_exceptions=*/false);
      if (!event.is_discarded() && event.contains("id") && event["id"] == id) return event;
    }
    return Json(Json::value_t::discarded);
  }

  httplib::Headers Headers() const {
    httplib::Headers h = {{"Accept", "application/json, text/event-stream"}, {"MCP-Protocol-Version", "2025-06-18"}};
    if (!session_.empty()) h.emplace("Mcp-Session-Id", session_);
    return h;
  }

  httplib::Client http_;
  std::string session_;
  int next_id_ = 1;
};

void RunClient(McpClient& client, const Options& o, const bench::ScaleCorpus& corpus, int n,
               SteadyClock::time_point count_from, SteadyClock::time_point stop_at, Tally& tally) {
  std::mt19937_64 rng(1000 + static_cast<uint64_t>(n));
  FakeClock clock;
  while (SteadyClock::now() < stop_at) {
    const bool count = SteadyClock::now() >= count_from;
    if (static_cast<int>(rng() % 100) < o.query_share) {
      Json args = {{"query", corpus.Query(rng)}};
      if (rng() % 2 == 0) args["domain"] = corpus.Domain(rng);
      client.Call("query_memory", std::move(args), count, tally);
      continue;
    }
    const Episode e = corpus.Generate(rng, clock);
    Json created = client.Call("create_episode",
                               {{"task_description", e.task_description},
                                {"domain", e.context.domain},
                                {"task_type", std::string(TaskTypeName(e.task_type))}},
                               count, tally);
    if (!created.is_object() || !created.contains("episode_id")) continue;
    const std::string id = created["episode_id"];
    const Step& step = e.steps.front();
    Json step_json = client.Call("add_episode_step",
                                 {{"episode_id", id},
                                  {"tool", step.tool},
                                  {"action", step.action},
                                  {"result", {{"status", "success"}, {"output", step.result->output.value_or("ok")}}}},
                                 count, tally);
    if (step_json.is_null()) continue;
    Json done = client.Call("complete_episode", {{"episode_id", id}, {"outcome", "success"}, {"verdict", "fixed"}},
                            count, tally);
    if (!done.is_null() && count) ++tally.episodes;
  }
}

bool ParseArgs(int argc, char** argv, Options& o) {
  const char* usage =
      "http_pool_bench --engram BINARY --store URL [--pool-size N] [--clients N] [--seconds S]\n"
      "                       [--warmup S] [--query-share PERCENT] [--eval DIR]";
  return bench::ParseFlags(
      argc, argv, usage,
      [&](const std::string& a, const std::string& v) {
        if (a == "--engram") {
          o.engram = v;
        } else if (a == "--store") {
          o.store = v;
        } else if (a == "--pool-size") {
          o.pool_size = std::stoi(v);
        } else if (a == "--clients") {
          o.clients = std::stoi(v);
        } else if (a == "--seconds") {
          o.seconds = std::stod(v);
        } else if (a == "--warmup") {
          o.warmup = std::stod(v);
        } else if (a == "--query-share") {
          o.query_share = std::stoi(v);
        } else if (a == "--eval") {
          o.eval_dir = v;
        } else {
          return false;
        }
        return true;
      },
      [&] { return !o.engram.empty() && !o.store.empty() && o.clients > 0 && o.seconds > 0; });
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  const bench::ScaleCorpus corpus = bench::ScaleCorpus::OpenOrExit("corpus", o.eval_dir);
  const fs::path home = fs::temp_directory_path() / ("engram-pool-bench-" + std::to_string(::getpid()));
  fs::create_directories(home);
  Server server;
  if (!server.Start(o, home.string())) {
    std::fprintf(stderr, "engram serve did not start:\n%s\n", server.Tail().c_str());
    fs::remove_all(home);
    return 1;
  }
  std::vector<std::unique_ptr<McpClient>> clients;
  for (int i = 0; i < o.clients; ++i) {
    clients.push_back(std::make_unique<McpClient>(server.port()));
    const std::string error = clients.back()->Connect(i);
    if (!error.empty()) {
      std::fprintf(stderr, "client %d: %s\n%s\n", i, error.c_str(), server.Tail().c_str());
      return 1;
    }
  }
  const SteadyClock::time_point count_from =
      SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.warmup));
  const SteadyClock::time_point stop_at =
      count_from + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<Tally> tallies(static_cast<size_t>(o.clients));
  double cpu_at_count = 0;
  std::thread cpu_sampler([&] {
    std::this_thread::sleep_until(count_from);
    cpu_at_count = server.CpuSeconds();
  });
  double cpu_at_stop = 0;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < o.clients; ++i) {
      threads.emplace_back([&, i] {
        RunClient(*clients[static_cast<size_t>(i)], o, corpus, i, count_from, stop_at, tallies[static_cast<size_t>(i)]);
      });
    }
    std::this_thread::sleep_until(stop_at);
    cpu_at_stop = server.CpuSeconds();
  }
  cpu_sampler.join();
  Tally all;
  for (const Tally& t : tallies) all.Merge(t);
  size_t calls = 0;
  for (const auto& [tool, v] : all.ms) calls += v.size();
  size_t failures = 0;
  for (const auto& [kind, n] : all.failures) failures += n;

  std::printf("pool_size %d, %d clients, %d%% query_memory, %.0f s counted: %.0f calls/s, %.1f episodes/s, "
              "%zu failures; engram CPU %.2f cores; load average %.2f\n",
              o.pool_size, o.clients, o.query_share, o.seconds, static_cast<double>(calls) / o.seconds,
              static_cast<double>(all.episodes) / o.seconds, failures, (cpu_at_stop - cpu_at_count) / o.seconds,
              bench::LoadAverage());
  std::printf("| tool | calls | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n");
  for (const auto& [tool, v] : all.ms) {
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %.1f |\n", tool.c_str(), v.size(), Percentile(v, 0.5),
                Percentile(v, 0.95), Percentile(v, 0.99), Percentile(v, 1.0));
  }
  for (const auto& [kind, n] : all.failures) {
    std::printf("failures %s: %zu, first: %s\n", kind.c_str(), n, all.first_failure[kind].c_str());
  }
  std::fflush(stdout);
  clients.clear();
  server.Stop();
  fs::remove_all(home);
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) { return engram::Main(argc, argv); }
