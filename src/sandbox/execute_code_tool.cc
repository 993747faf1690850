#include "sandbox/execute_code_tool.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/json_reader.h"

namespace engram::sandbox {
namespace {

using mcp::CallContext;
using mcp::Json;
using mcp::ToolResult;

constexpr const char* kArgs = "arguments";
constexpr size_t kMaxCodeChars = 1 << 20;

// A sandbox that could not be opened at all (no helper): every call gets the reason.
class UnavailableSandbox final : public Sandbox {
 public:
  explicit UnavailableSandbox(Status why) : why_(std::move(why)) {}
  Result<ExecutionResult> Execute(const ExecutionRequest&, const std::function<bool()>&) override { return why_; }
  std::vector<SandboxLayerStatus> Layers() const override { return {}; }
  Status Ready() const override { return why_; }
  bool SupportsLanguage(SandboxLanguage) const override { return false; }

 private:
  const Status why_;
};

Json InputSchema(int64_t max_timeout_ms, int64_t max_memory_mb) {
  return {
      {"type", "object"},
      {"properties",
       {{"code",
         {{"type", "string"},
          {"minLength", 1},
          {"maxLength", kMaxCodeChars},
          {"description",
           "The program. JavaScript (ES5.1 and parts of ES2015+; print() and console.log() write to stdout, "
           "console.error() to stderr); Python 3 source (run with python3 -I -S, where installed); or a "
           "WebAssembly module as WAT text or base64 binary."}}},
        {"language",
         {{"type", "string"},
          {"enum", {"javascript", "python", "wasm", "js", "py", "wat"}},
          {"description", "The language of `code`."}}},
        {"timeout_ms",
         {{"type", "integer"},
          {"minimum", 1},
          {"maximum", max_timeout_ms},
          {"description", "Wall-clock limit in milliseconds (default 5000); the process is killed when it is reached."}}},
        {"memory_mb",
         {{"type", "integer"},
          {"minimum", 1},
          {"maximum", max_memory_mb},
          {"description", "Memory limit in MiB (default 128)."}}},
        {"entry",
         {{"type", "string"},
          {"maxLength", 128},
          {"description",
           "A function to call after the program is loaded (a global function, or the WebAssembly export to "
           "call, required for wasm); its result is printed as JSON."}}},
        {"args",
         {{"type", "array"},
          {"maxItems", 64},
          {"description", "Arguments for `entry` (numbers only for wasm)."}}}}},
      {"required", {"code", "language"}}};
}

Json OutputSchema() {
  Json violation = {{"type", "object"},
                    {"properties",
                     {{"kind",
                       {{"type", "string"},
                        {"description",
                         "static_analysis, syscall, filesystem, timeout, cpu_time, memory, output_limit, "
                         "process_limit, file_size or killed"}}},
                      {"detail", {{"type", "string"}}}}},
                    {"required", {"kind", "detail"}}};
  return {{"type", "object"},
          {"properties",
           {{"stdout", {{"type", "string"}}},
            {"stderr", {{"type", "string"}}},
            {"exit_status",
             {{"type", "integer"},
              {"description", "The exit code; 128+N when killed by signal N; -1 when the code was rejected unrun"}}},
            {"duration_ms", {{"type", "integer"}}},
            {"violations",
             {{"type", "array"},
              {"items", std::move(violation)},
              {"description", "What the sandbox refused or stopped; empty for a clean run"}}}}},
          {"required", {"stdout", "stderr", "exit_status", "duration_ms", "violations"}}};
}

Result<ExecutionRequest> ReadRequest(const Json& args) {
  JsonReader r(args, kArgs);
  ExecutionRequest req;
  std::string language;
  r.RequiredString("code", &req.code, kMaxCodeChars);
  r.RequiredString("language", &language, 32);
  std::optional<int64_t> timeout_ms;
  r.OptionalInt("timeout_ms", &timeout_ms, 1, int64_t{24} * 3600 * 1000);
  r.OptionalInt("memory_mb", &req.memory_mb, 1, int64_t{1} << 20);
  r.OptionalString("entry", &req.entry, 128);
  ENGRAM_RETURN_IF_ERROR(r.status());
  Result<SandboxLanguage> lang = ParseSandboxLanguage(language);
  if (!lang.ok()) return lang.status().WithContext("arguments.language");
  req.language = *lang;
  if (timeout_ms.has_value()) req.timeout = std::chrono::milliseconds(*timeout_ms);
  if (const Json* a = r.Find("args")) {
    if (!a->is_array()) return InvalidArgumentError("arguments.args: expected an array");
    req.args_json = a->dump();
  }
  return req;
}

// Fills in the timeout and memory limit, or refuses ones above the caps in force.
Status ApplyLimits(const SandboxLimits& limits, ExecutionRequest& req) {
  const int64_t max_timeout_ms = limits.max_timeout_ms();
  const int64_t max_memory_mb = limits.max_memory_mb();
  if (req.timeout.has_value() && req.timeout->count() > max_timeout_ms) {
    return InvalidArgumentError(std::string(kArgs) + ".timeout_ms: must be at most " + std::to_string(max_timeout_ms) +
                                " (the server's sandbox.max_timeout_ms)");
  }
  if (req.memory_mb.has_value() && *req.memory_mb > max_memory_mb) {
    return InvalidArgumentError(std::string(kArgs) + ".memory_mb: must be at most " + std::to_string(max_memory_mb) +
                                " (the server's sandbox.max_memory_mb)");
  }
  const SandboxOptions defaults;
  if (!req.timeout.has_value()) {
    req.timeout = std::min(defaults.default_timeout, std::chrono::milliseconds(max_timeout_ms));
  }
  if (!req.memory_mb.has_value()) req.memory_mb = std::min(defaults.default_memory_mb, max_memory_mb);
  return OkStatus();
}

Result<ToolResult> ExecuteCode(Sandbox& sandbox, const SandboxLimits& limits, mcp::ServerMetrics& metrics,
                               const Json& args, CallContext& ctx) {
  ENGRAM_ASSIGN_OR_RETURN(ExecutionRequest req, ReadRequest(args));
  ENGRAM_RETURN_IF_ERROR(ApplyLimits(limits, req));
  req.caller = ctx.principal().key_id;
  std::function<bool()> cancelled = [&ctx] { return ctx.cancelled(); };
  Result<ExecutionResult> r = sandbox.Execute(req, cancelled);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kInvalidArgument) return r.status().WithContext(kArgs);
    return r.status();
  }
  Json violations = Json::array();
  std::vector<std::string> violation_kinds;
  for (const Violation& v : r->violations) {
    violations.push_back({{"kind", v.kind}, {"detail", v.detail}});
    violation_kinds.push_back(v.kind);
  }
  metrics.RecordExecution(std::string(SandboxLanguageName(req.language)), violation_kinds);
  return ToolResult{Json{{"stdout", r->stdout_text},
                         {"stderr", r->stderr_text},
                         {"exit_status", r->exit_status},
                         {"duration_ms", r->duration_ms},
                         {"violations", std::move(violations)}}};
}

}  // namespace

SandboxToolOptions SandboxToolOptionsFromConfig(const Config& config) {
  SandboxToolOptions o;
  o.enabled = config.sandbox_enabled;
  o.sandbox.max_timeout = std::chrono::milliseconds(config.sandbox_max_timeout_ms);
  o.sandbox.max_memory_mb = config.sandbox_max_memory_mb;
  o.sandbox.default_timeout = std::min(o.sandbox.default_timeout, o.sandbox.max_timeout);
  o.sandbox.default_memory_mb = std::min(o.sandbox.default_memory_mb, o.sandbox.max_memory_mb);
  o.limits = std::make_shared<SandboxLimits>(config.sandbox_max_timeout_ms, config.sandbox_max_memory_mb);
  return o;
}

namespace {

// `schema_max_*` are announced in the input schema; `limits` are enforced at each call.
Status AddExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox,
                          std::shared_ptr<const SandboxLimits> limits, int64_t schema_max_timeout_ms,
                          int64_t schema_max_memory_mb) {
  return server.tools().Add(mcp::ToolDefinition{
      .name = "execute_code",
      .title = "Run code in a sandbox",
      .description =
          "Runs a short JavaScript, Python or WebAssembly program in an isolated sandbox and returns its stdout, "
          "stderr and exit status, e.g. to check a hypothesis, transform data or compute a statistic. The sandbox "
          "has no network and no files except an empty scratch directory (the current directory), bounded time "
          "and memory; anything it refuses is listed in violations. Snippets that try known escape idioms "
          "(require, subprocess, /etc paths, ...) are rejected before running, with the reason.",
      .input_schema = InputSchema(schema_max_timeout_ms, schema_max_memory_mb),
      .output_schema = OutputSchema(),
      .annotations = {.read_only = true, .destructive = false, .idempotent = false, .open_world = false},
      .tier = mcp::ToolTier::kExpert,
      .handler = [sandbox, limits, metrics = &server.metrics()](const Json& args, CallContext& ctx) {
        return ExecuteCode(*sandbox, *limits, *metrics, args, ctx);
      },
  });
}

}  // namespace

Status RegisterExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox, int64_t max_timeout_ms,
                               int64_t max_memory_mb) {
  return AddExecuteCodeTool(server, std::move(sandbox), std::make_shared<SandboxLimits>(max_timeout_ms, max_memory_mb),
                            max_timeout_ms, max_memory_mb);
}

Status RegisterExecuteCodeTool(mcp::McpServer& server, std::shared_ptr<Sandbox> sandbox,
                               std::shared_ptr<const SandboxLimits> limits) {
  return AddExecuteCodeTool(server, std::move(sandbox), std::move(limits), kMaxTimeoutCeilingMs, kMaxMemoryCeilingMb);
}

// Opens the real sandbox on first use: probing the layers forks the helper, which would
// add 10-20 ms to every engram start (DESIGN §10: cold start to initialize <= 30 ms), and
// most sessions never run code. Thread-safe.
class LazySandbox final : public Sandbox {
 public:
  explicit LazySandbox(SandboxOptions options) : options_(std::move(options)) {}

  Result<ExecutionResult> Execute(const ExecutionRequest& request, const std::function<bool()>& cancelled) override {
    return Get().Execute(request, cancelled);
  }
  std::vector<SandboxLayerStatus> Layers() const override { return Get().Layers(); }
  Status Ready() const override { return Get().Ready(); }
  bool SupportsLanguage(SandboxLanguage language) const override { return Get().SupportsLanguage(language); }

 private:
  Sandbox& Get() const {
    std::call_once(once_, [this] {
      Result<std::unique_ptr<Sandbox>> opened = OpenLinuxSandbox(options_);
      if (opened.ok()) {
        sandbox_ = std::move(*opened);
      } else {
        sandbox_ = std::make_unique<UnavailableSandbox>(opened.status());
      }
      if (!sandbox_->Ready().ok()) {
        LogWarn("execute_code unavailable", {{"reason", std::string(sandbox_->Ready().message())}});
      }
    });
    return *sandbox_;
  }

  const SandboxOptions options_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<Sandbox> sandbox_;  // set once, under once_
};

Status RegisterSandboxTools(mcp::McpServer& server, const SandboxToolOptions& options) {
  if (!options.enabled) return OkStatus();
  if (options.limits != nullptr) {
    // The tool enforces the caps in force; the sandbox's own are the ceilings a reload
    // may raise them to.
    SandboxOptions sandbox = options.sandbox;
    sandbox.max_timeout = std::chrono::milliseconds(kMaxTimeoutCeilingMs);
    sandbox.max_memory_mb = kMaxMemoryCeilingMb;
    return RegisterExecuteCodeTool(server, std::make_shared<LazySandbox>(std::move(sandbox)), options.limits);
  }
  return RegisterExecuteCodeTool(server, std::make_shared<LazySandbox>(options.sandbox),
                                 options.sandbox.max_timeout.count(), options.sandbox.max_memory_mb);
}

}  // namespace engram::sandbox
