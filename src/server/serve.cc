#include "server/serve.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "common/logging.h"
#include "core/event_bus.h"
#include "core/redaction.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "mcp/auth.h"
#include "mcp/server.h"
#include "server/config_reload.h"
#include "server/dashboard.h"
#include "server/open_learning.h"
#include "server/open_retrieval.h"
#include "server/open_store.h"
#include "server/register_builtins.h"
#include "storage/timed_storage.h"
#include "transport/http_transport.h"
#include "transport/stdio_transport.h"

namespace engram::server {
namespace {

constexpr size_t kEventQueueCapacity = 10'000;

Result<std::pair<std::string, int>> ParseHostPort(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return InvalidArgumentError("--http " + address + ": expected HOST:PORT, e.g. 127.0.0.1:8765");
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return InvalidArgumentError("--http " + address + ": bad port");
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return InvalidArgumentError("--http " + address + ": bad port");
  return std::make_pair(host, port);
}

void PrintConnectHelp(const std::string& url) {
  std::fprintf(stderr,
               "engram is serving MCP over Streamable HTTP at %s\n\n"
               "Connect Claude Code:\n"
               "  claude mcp add --transport http engram %s\n"
               "  # or over stdio (each session starts its own engram on the same store):\n"
               "  claude mcp add engram -- %s serve\n\n"
               "Connect OpenCode (opencode.json):\n"
               "  {\"mcp\": {\"engram\": {\"type\": \"remote\", \"url\": \"%s\"}}}\n"
               "  # or stdio: {\"mcp\": {\"engram\": {\"type\": \"local\", \"command\": [\"engram\", \"serve\"]}}}\n\n"
               "Stop with Ctrl-C.\n",
               url.c_str(), url.c_str(), "engram", url.c_str());
}

}  // namespace

Status Serve(const Config& config, const ServeOptions& options) {
  // Over HTTP, SIGINT/SIGTERM end the server cleanly: they are blocked here, before any
  // thread starts (threads inherit the mask), and taken by one waiting thread below.
  // Over stdio the default action stays: every acknowledged write is already durable.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (options.http) pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (options.config_inputs) BlockReloadSignal();  // SIGHUP reloads the config (config_reload.h)

  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<StorageBackend> store, OpenStore(config));
  LmdbCache* cache = AsLmdbCache(*store);  // cache.* may change on reload
  store = NewTimedStorage(std::move(store));  // storage latency for /metrics and get_metrics
  EventBus events(kEventQueueCapacity);
  Memory memory(*store, SystemClock(), &events, NewRedactor(config.redaction));
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<RetrievalStack> retrieval, OpenRetrieval(config, *store, SystemClock()));
  retrieval->SubscribeTo(events);
  retrieval->OpenIndexInBackground();
  // The learning pipeline: Completed events are extracted off the request path; what a
  // crash left pending is swept at start.
  const LearningOptions learning = LearningOptionsFromConfig(config);
  std::unique_ptr<PatternProcessor> processor;
  PatternCatalog catalog(*store);
  if (config.learning.enabled) {
    processor = std::make_unique<PatternProcessor>(*store, SystemClock(), &events, learning);
    ENGRAM_RETURN_IF_ERROR(RegisterBuiltinExtractors(processor->extractors()));
    ENGRAM_RETURN_IF_ERROR(processor->Start());
  }

  mcp::ServerOptions server_options;
  server_options.version = options.version;
  server_options.instructions = kInstructions;
  server_options.disclose_all = config.tools_disclosure == "all";
  server_options.advanced_after_calls = config.tools_advanced_after_calls;
  server_options.expert_after_calls = config.tools_expert_after_calls;
  mcp::McpServer server(server_options);
  const Builtins builtins{.memory = memory,
                          .storage = *store,
                          .retriever = retrieval->retriever(),
                          .events = &events,
                          .embedding_provider = retrieval->ProviderName(),
                          .learning = learning,
                          .processor = processor.get(),
                          .catalog = &catalog,
                          .event_queue_capacity = kEventQueueCapacity,
                          .conformance_fixtures = options.conformance_fixtures,
                          .sandbox = sandbox::SandboxToolOptionsFromConfig(config)};
  ENGRAM_RETURN_IF_ERROR(RegisterBuiltins(server, builtins));
  LogInfo("engram serving", {{"store", store->Location()},
                             {"transport", options.http ? "http " + *options.http : std::string("stdio")}});

  LiveTargets live{.server = &server,
                   .retriever = &retrieval->retriever(),
                   .cache = cache,
                   .sandbox = builtins.sandbox.limits.get()};

  if (!options.http) {
    transport::StdioTransport stdio(server, transport::StdioOptions{});
    ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<ConfigWatcher> watcher, WatchConfig(options.config_inputs, config, live));
    Status s = stdio.Run();
    watcher.reset();
    events.Flush();
    if (processor) processor->Stop();
    retrieval->Save();
    return s;
  }

  ENGRAM_ASSIGN_OR_RETURN(auto host_port, ParseHostPort(*options.http));
  ENGRAM_ASSIGN_OR_RETURN(mcp::ApiKeyStore keys, mcp::ApiKeyStore::Load(config.keys_file));
  transport::HttpOptions http;
  http.host = host_port.first;
  http.port = host_port.second;
  http.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  http.keys = &keys;
  http.rate_limit = {.per_second = config.rate_limit, .burst = config.rate_limit_burst};
  http.metrics = PrometheusMetricsFor(server, builtins);  // GET /metrics
  http.static_files = DashboardFiles();  // the read-only dashboard at /

  transport::HttpTransport transport(server, http);
  ENGRAM_RETURN_IF_ERROR(transport.Start());
  std::string shown_host = http.host.find(':') != std::string::npos ? "[" + http.host + "]" : http.host;
  PrintConnectHelp("http://" + shown_host + ":" + std::to_string(transport.port()) + "/mcp");
  std::fprintf(stderr, "Memory dashboard (read-only): http://%s:%d/\n", shown_host.c_str(), transport.port());
  live.http = &transport;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<ConfigWatcher> watcher, WatchConfig(options.config_inputs, config, live));
  std::atomic<bool> stopping{false};
  std::jthread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (stopping.exchange(true)) return;  // our own wake-up below
    LogInfo("signal received; stopping", {{"signal", std::to_string(sig)}});
    transport.Stop();
  });
  transport.Wait();
  if (!stopping.exchange(true)) pthread_kill(waiter.native_handle(), SIGTERM);  // wake the waiter
  waiter.join();
  if (watcher) watcher->Stop();
  events.Flush();
  if (processor) processor->Stop();
  retrieval->Save();
  return OkStatus();
}

}  // namespace engram::server
