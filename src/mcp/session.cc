#include "mcp/session.h"

#include <algorithm>
#include <array>

#include "common/logging.h"
#include "mcp/json_schema.h"
#include "mcp/server.h"

namespace engram::mcp {
namespace {

constexpr std::array<std::string_view, 8> kLogLevels = {"debug", "info",     "notice", "warning",
                                                        "error", "critical", "alert",  "emergency"};

int LogLevelIndex(std::string_view level) {
  for (size_t i = 0; i < kLogLevels.size(); ++i) {
    if (kLogLevels[i] == level) return static_cast<int>(i);
  }
  return -1;
}

// Versions before 2025-06-18 know neither structuredContent nor outputSchema; batches
// exist only in 2025-03-26 (and plain JSON-RPC 2.0 as 2024-11-05 used it).
bool HasStructuredContent(const std::string& version) { return version >= "2025-06-18"; }
bool AllowsBatches(const std::string& version) { return version == "2025-03-26" || version == "2024-11-05"; }

Result<size_t> ParseCursor(const Json& params) {
  if (!params.contains("cursor") || params["cursor"].is_null()) return size_t{0};
  if (!params["cursor"].is_string()) return InvalidArgumentError("cursor: expected a string");
  const std::string& c = params["cursor"].get_ref<const std::string&>();
  if (c.empty() || c.size() > 9 || !std::all_of(c.begin(), c.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return InvalidArgumentError("cursor: not a cursor this server issued");
  }
  return static_cast<size_t>(std::stoul(c));
}

Json ErrorResult(std::string_view message) {
  return {{"content", Json::array({{{"type", "text"}, {"text", message}}})}, {"isError", true}};
}

}  // namespace

bool IsSupportedProtocolVersion(std::string_view version) {
  for (const char* v : kProtocolVersions) {
    if (version == v) return true;
  }
  return false;
}

// The CallContext of one tools/call.
class McpSession::Call final : public CallContext {
 public:
  Call(McpSession& session, ClientChannel& channel, std::shared_ptr<std::atomic<bool>> cancelled,
       std::optional<Json> progress_token)
      : session_(session), channel_(channel), cancelled_(std::move(cancelled)),
        progress_token_(std::move(progress_token)) {}

  bool cancelled() const override { return cancelled_->load(); }

  void Progress(double progress, std::optional<double> total, const std::string& message) override {
    if (!progress_token_) return;
    Json params = {{"progressToken", *progress_token_}, {"progress", progress}};
    if (total) params["total"] = *total;
    if (!message.empty()) params["message"] = message;
    channel_.Send(MakeNotification("notifications/progress", std::move(params)));
  }

  void Log(const std::string& level, const std::string& logger, const Json& data) override {
    if (!session_.ShouldLog(level)) return;
    Json params = {{"level", level}, {"data", data}};
    if (!logger.empty()) params["logger"] = logger;
    channel_.Send(MakeNotification("notifications/message", std::move(params)));
  }

  Result<Json> RequestClient(const std::string& method, const Json& params,
                             std::chrono::milliseconds timeout) override {
    return session_.RequestClient(method, params, timeout, channel_, *cancelled_);
  }

  const Principal& principal() const override { return session_.principal_; }

 private:
  McpSession& session_;
  ClientChannel& channel_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::optional<Json> progress_token_;
};

McpSession::McpSession(McpServer& server, Principal principal)
    : server_(server), principal_(std::move(principal)), log_level_(LogLevelIndex("info")) {}

bool McpSession::initialized() const {
  MutexLock lock(mu_);
  return initialized_;
}

std::string McpSession::protocol_version() const {
  MutexLock lock(mu_);
  return protocol_version_;
}

ToolTier McpSession::tier() const {
  MutexLock lock(mu_);
  return tier_;
}

bool McpSession::ShouldLog(const std::string& level) const {
  int index = LogLevelIndex(level);
  MutexLock lock(mu_);
  return index >= 0 && index >= log_level_;
}

std::optional<Json> McpSession::HandleText(std::string_view text, ClientChannel& channel) {
  std::optional<Json> message = ParseJson(text);
  if (!message) return MakeError(nullptr, kParseError, "Parse error: the message is not valid JSON");
  return HandleMessage(*message, channel);
}

std::optional<Json> McpSession::HandleMessage(const Json& message, ClientChannel& channel) {
  if (!message.is_array()) return HandleOne(message, channel);
  if (message.empty()) return MakeError(nullptr, kInvalidRequest, "Invalid Request: empty batch");
  std::string version = protocol_version();
  if (!AllowsBatches(version)) {
    return MakeError(nullptr, kInvalidRequest,
                     "Invalid Request: JSON-RPC batches are not supported in protocol version " +
                         (version.empty() ? std::string("(not initialized)") : version));
  }
  Json responses = Json::array();
  for (const Json& one : message) {
    // Any member may have any type here: only a string "initialize" is refused.
    const auto method = one.is_object() ? one.find("method") : one.end();
    if (method != one.end() && method->is_string() && *method == "initialize") {
      responses.push_back(MakeError(one.value("id", Json()), kInvalidRequest,
                                    "Invalid Request: initialize must not be part of a batch"));
      continue;
    }
    if (std::optional<Json> r = HandleOne(one, channel)) responses.push_back(std::move(*r));
  }
  if (responses.empty()) return std::nullopt;
  return responses;
}

std::optional<Json> McpSession::HandleOne(const Json& message, ClientChannel& channel) {
  switch (Classify(message)) {
    case MessageKind::kInvalid: {
      Json id = nullptr;
      if (message.is_object() && message.contains("id") &&
          (message["id"].is_string() || message["id"].is_number_integer())) {
        id = message["id"];
      }
      return MakeError(id, kInvalidRequest,
                       "Invalid Request: expected a JSON-RPC 2.0 object with \"jsonrpc\": \"2.0\", a string "
                       "\"method\", optional object \"params\" and a string or integer \"id\"");
    }
    case MessageKind::kResponse:
      HandleClientResponse(message);
      return std::nullopt;
    case MessageKind::kNotification:
      HandleNotification(message["method"], message.value("params", Json::object()));
      return std::nullopt;
    case MessageKind::kRequest:
      break;
  }
  const Json& id = message["id"];
  const std::string method = message["method"];
  server_.metrics().RecordRequest();
  if (method != "initialize" && method != "ping" && !initialized()) {
    return MakeError(id, kServerNotInitialized, "Server not initialized: send initialize first");
  }
  Json params = message.value("params", Json::object());
  if (!params.is_object()) return MakeError(id, kInvalidParams, "Invalid params: params must be an object");

  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  const std::string key = Dump(id);
  {
    MutexLock lock(mu_);
    if (in_flight_.count(key) != 0) {
      return MakeError(id, kInvalidRequest, "Invalid Request: id " + key + " is already in use by a running request");
    }
    in_flight_[key] = cancelled;
    // The transport may have handled the cancellation before this request started.
    if (early_cancels_.erase(key) != 0) cancelled->store(true);
  }
  Result<Json> result = Dispatch(method, params, channel, cancelled);
  {
    MutexLock lock(mu_);
    in_flight_.erase(key);
  }
  // A cancelled request gets no response (MCP cancellation).
  if (cancelled->load() && method != "initialize") return std::nullopt;
  if (!result.ok()) return MakeError(id, result.status());
  return MakeResult(id, *std::move(result));
}

Result<Json> McpSession::Dispatch(const std::string& method, const Json& params, ClientChannel& channel, const std::shared_ptr<std::atomic<bool>>& cancelled) {
  if (method == "initialize") return Initialize(params);
  if (method == "ping") return Json::object();
  if (method == "tools/list") return ListTools(params);
  if (method == "tools/call") return CallTool(params, channel, cancelled);
  if (method == "logging/setLevel") return SetLogLevel(params);
  if (method == "resources/list") return ListResources(params);
  if (method == "resources/templates/list") return ListResourceTemplates();
  if (method == "resources/read") return ReadResource(params);
  if (method == "resources/subscribe" || method == "resources/unsubscribe") {
    return Subscribe(params, method == "resources/subscribe");
  }
  if (method == "prompts/list") return ListPrompts(params);
  if (method == "prompts/get") return GetPrompt(params);
  if (method == "completion/complete") return Complete(params);
  return UnimplementedError("Method not found: " + method);
}

Result<Json> McpSession::Initialize(const Json& params) {
  if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
    return InvalidArgumentError("Invalid params: initialize needs a string protocolVersion");
  }
  const std::string requested = params["protocolVersion"];
  const std::string version = IsSupportedProtocolVersion(requested) ? requested : kLatestProtocolVersion;
  {
    MutexLock lock(mu_);
    if (initialized_) return InvalidArgumentError("Invalid Request: the session is already initialized");
    initialized_ = true;
    protocol_version_ = version;
    if (params.contains("capabilities") && params["capabilities"].is_object()) {
      client_capabilities_ = params["capabilities"];
    }
  }
  const ServerOptions& o = server_.options();
  Json result = {
      {"protocolVersion", version},
      {"capabilities",
       {{"tools", {{"listChanged", true}}},
        {"resources", {{"subscribe", true}, {"listChanged", true}}},
        {"prompts", {{"listChanged", true}}},
        {"logging", Json::object()},
        {"completions", Json::object()}}},
      {"serverInfo", {{"name", o.name}, {"version", o.version}}},
  };
  if (version >= "2025-06-18") result["serverInfo"]["title"] = "engram episodic memory";
  if (!o.instructions.empty()) result["instructions"] = o.instructions;
  return result;
}

Result<Json> McpSession::ListTools(const Json& params) {
  ENGRAM_ASSIGN_OR_RETURN(size_t start, ParseCursor(params));
  const ServerOptions& o = server_.options();
  const bool disclose_all = server_.disclosure().disclose_all;
  ToolTier reached = tier();
  bool structured = HasStructuredContent(protocol_version());
  std::vector<const ToolDefinition*> visible;
  for (const auto& t : server_.tools().tools()) {
    if (disclose_all || static_cast<int>(t->tier) <= static_cast<int>(reached)) visible.push_back(t.get());
  }
  if (start > visible.size()) return InvalidArgumentError("cursor: past the end of the list");
  Json tools = Json::array();
  size_t end = std::min(visible.size(), start + o.page_size);
  for (size_t i = start; i < end; ++i) {
    Json d = ToolRegistry::Describe(*visible[i]);
    if (!structured) d.erase("outputSchema");
    tools.push_back(std::move(d));
  }
  Json result = {{"tools", std::move(tools)}};
  if (end < visible.size()) result["nextCursor"] = std::to_string(end);
  return result;
}

Result<Json> McpSession::CallTool(const Json& params, ClientChannel& channel,
                                  const std::shared_ptr<std::atomic<bool>>& cancelled) {
  if (!params.contains("name") || !params["name"].is_string()) {
    return InvalidArgumentError("Invalid params: tools/call needs a string name");
  }
  const std::string name = params["name"];
  const ToolDefinition* tool = server_.tools().Find(name);
  if (tool == nullptr) return InvalidArgumentError("Unknown tool: " + name);

  const auto start = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  Json arguments = params.value("arguments", Json::object());
  if (arguments.is_null()) arguments = Json::object();
  Status valid = arguments.is_object() ? ValidateJson(arguments, tool->input_schema, "arguments")
                                       : InvalidArgumentError("arguments: expected an object");
  if (!valid.ok()) {
    server_.metrics().RecordToolCall(name, elapsed_ms(), true);
    return ErrorResult(valid.message());
  }

  std::optional<Json> progress_token;
  if (params.contains("_meta") && params["_meta"].is_object() && params["_meta"].contains("progressToken")) {
    const Json& token = params["_meta"]["progressToken"];
    if (token.is_string() || token.is_number_integer()) progress_token = token;
  }
  Call call(*this, channel, cancelled, progress_token);
  Result<ToolResult> outcome = tool->handler(arguments, call);
  server_.metrics().RecordToolCall(name, elapsed_ms(), !outcome.ok());
  if (!outcome.ok()) {
    LogDebug("tool call failed", {{"tool", name}, {"error", outcome.status().ToString()}});
    return ErrorResult(outcome.status().message().empty() ? outcome.status().ToString()
                                                          : std::string(outcome.status().message()));
  }
  if (CountToolUse() && !server_.disclosure().disclose_all) {
    channel.Send(MakeNotification("notifications/tools/list_changed", nullptr));
  }
  Json result;
  if (outcome->content) {
    result["content"] = *outcome->content;
  } else {
    result["content"] = Json::array({{{"type", "text"}, {"text", Dump(outcome->structured)}}});
  }
  // Fixture tools that send only other content blocks leave `structured` empty.
  if (HasStructuredContent(protocol_version()) && outcome->structured.is_object() &&
      !(outcome->content && outcome->structured.empty())) {
    result["structuredContent"] = outcome->structured;
  }
  result["isError"] = false;
  return result;
}

bool McpSession::CountToolUse() {
  const DisclosureOptions o = server_.disclosure();
  MutexLock lock(mu_);
  ++successful_tool_calls_;
  ToolTier next = tier_;
  if (successful_tool_calls_ >= o.expert_after_calls) {
    next = ToolTier::kExpert;
  } else if (successful_tool_calls_ >= o.advanced_after_calls) {
    next = std::max(next, ToolTier::kAdvanced);
  }
  if (next == tier_) return false;
  tier_ = next;
  return true;
}

Result<Json> McpSession::SetLogLevel(const Json& params) {
  if (!params.contains("level") || !params["level"].is_string() || LogLevelIndex(params["level"].get<std::string>()) < 0) {
    return InvalidArgumentError(
        "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency");
  }
  MutexLock lock(mu_);
  log_level_ = LogLevelIndex(params["level"].get<std::string>());
  return Json::object();
}

Result<Json> McpSession::ListResources(const Json& params) {
  // Cursor "<provider index>:<provider cursor>".
  size_t provider = 0;
  std::string inner;
  if (params.contains("cursor") && !params["cursor"].is_null()) {
    if (!params["cursor"].is_string()) return InvalidArgumentError("cursor: expected a string");
    const std::string& c = params["cursor"].get_ref<const std::string&>();
    size_t colon = c.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 4 ||
        !std::all_of(c.begin(), c.begin() + static_cast<long>(colon), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      return InvalidArgumentError("cursor: not a cursor this server issued");
    }
    provider = std::stoul(c.substr(0, colon));
    inner = c.substr(colon + 1);
  }
  const auto& providers = server_.resource_providers();
  Json resources = Json::array();
  std::string next;
  while (provider < providers.size()) {
    ENGRAM_ASSIGN_OR_RETURN(ResourcePage page, providers[provider]->List(inner, server_.options().page_size, principal_));
    for (const ResourceEntry& r : page.resources) {
      Json entry = {{"uri", r.uri}, {"name", r.name}, {"mimeType", r.mime_type}};
      if (!r.title.empty()) entry["title"] = r.title;
      if (!r.description.empty()) entry["description"] = r.description;
      resources.push_back(std::move(entry));
    }
    if (!page.next_cursor.empty()) {
      next = std::to_string(provider) + ":" + page.next_cursor;
      break;
    }
    ++provider;
    inner.clear();
    if (!resources.empty() && provider < providers.size()) {
      next = std::to_string(provider) + ":";
      break;
    }
  }
  Json result = {{"resources", std::move(resources)}};
  if (!next.empty()) result["nextCursor"] = next;
  return result;
}

Result<Json> McpSession::ListResourceTemplates() {
  Json templates = Json::array();
  for (const auto& p : server_.resource_providers()) {
    for (Json& t : p->Templates()) templates.push_back(std::move(t));
  }
  return Json{{"resourceTemplates", std::move(templates)}};
}

Result<Json> McpSession::ReadResource(const Json& params) {
  if (!params.contains("uri") || !params["uri"].is_string()) {
    return InvalidArgumentError("Invalid params: resources/read needs a string uri");
  }
  const std::string uri = params["uri"];
  for (const auto& p : server_.resource_providers()) {
    if (!p->Owns(uri)) continue;
    Result<std::vector<ResourceContents>> contents = p->Read(uri, principal_);
    if (!contents.ok()) {
      if (contents.status().code() == StatusCode::kNotFound || contents.status().code() == StatusCode::kPermissionDenied) {
        return NotFoundError("Resource not found: " + uri);
      }
      return contents.status();
    }
    Json out = Json::array();
    for (const ResourceContents& c : *contents) {
      Json item = {{"uri", c.uri}, {"mimeType", c.mime_type}};
      if (c.text) item["text"] = *c.text;
      if (c.blob_base64) item["blob"] = *c.blob_base64;
      out.push_back(std::move(item));
    }
    return Json{{"contents", std::move(out)}};
  }
  return NotFoundError("Resource not found: " + uri);
}

Result<Json> McpSession::Subscribe(const Json& params, bool subscribe) {
  if (!params.contains("uri") || !params["uri"].is_string()) {
    return InvalidArgumentError("Invalid params: needs a string uri");
  }
  MutexLock lock(mu_);
  if (subscribe) {
    subscriptions_.insert(params["uri"].get<std::string>());
  } else {
    subscriptions_.erase(params["uri"].get<std::string>());
  }
  return Json::object();
}

Result<Json> McpSession::ListPrompts(const Json& params) {
  ENGRAM_ASSIGN_OR_RETURN(size_t start, ParseCursor(params));
  const auto& prompts = server_.prompts();
  if (start > prompts.size()) return InvalidArgumentError("cursor: past the end of the list");
  size_t end = std::min(prompts.size(), start + server_.options().page_size);
  Json list = Json::array();
  for (size_t i = start; i < end; ++i) {
    const PromptDefinition& p = prompts[i];
    Json args = Json::array();
    for (const PromptArgument& a : p.arguments) {
      args.push_back({{"name", a.name}, {"description", a.description}, {"required", a.required}});
    }
    Json entry = {{"name", p.name}, {"description", p.description}, {"arguments", std::move(args)}};
    if (!p.title.empty()) entry["title"] = p.title;
    list.push_back(std::move(entry));
  }
  Json result = {{"prompts", std::move(list)}};
  if (end < prompts.size()) result["nextCursor"] = std::to_string(end);
  return result;
}

Result<Json> McpSession::GetPrompt(const Json& params) {
  if (!params.contains("name") || !params["name"].is_string()) {
    return InvalidArgumentError("Invalid params: prompts/get needs a string name");
  }
  const std::string name = params["name"];
  for (const PromptDefinition& p : server_.prompts()) {
    if (p.name != name) continue;
    Json args = params.value("arguments", Json::object());
    if (!args.is_object()) return InvalidArgumentError("Invalid params: arguments must be an object");
    for (const PromptArgument& a : p.arguments) {
      if (a.required && (!args.contains(a.name) || !args[a.name].is_string() || args[a.name].get<std::string>().empty())) {
        return InvalidArgumentError("Invalid params: prompt " + name + " needs the argument " + a.name);
      }
    }
    return p.get(args, principal_);
  }
  return InvalidArgumentError("Invalid params: unknown prompt " + name);
}

Result<Json> McpSession::Complete(const Json& params) {
  Json values = Json::array();
  const Json ref = params.value("ref", Json::object());
  const Json argument = params.value("argument", Json::object());
  if (!ref.is_object() || !argument.is_object() || !argument.contains("name") || !argument["name"].is_string()) {
    return InvalidArgumentError("Invalid params: completion/complete needs ref and argument{name, value}");
  }
  const std::string arg_name = argument["name"];
  const std::string prefix = argument.value("value", "");
  if (ref.value("type", "") == "ref/prompt") {
    for (const PromptDefinition& p : server_.prompts()) {
      if (p.name == ref.value("name", "") && p.complete) {
        for (std::string& v : p.complete(arg_name, prefix)) {
          if (values.size() == 100) break;
          values.push_back(std::move(v));
        }
      }
    }
  }
  return Json{{"completion", {{"values", values}, {"total", values.size()}, {"hasMore", false}}}};
}

void McpSession::HandleNotification(const std::string& method, const Json& params) {
  if (method == "notifications/cancelled") {
    if (!params.is_object() || !params.contains("requestId")) return;
    MutexLock lock(mu_);
    const std::string key = Dump(params["requestId"]);
    auto it = in_flight_.find(key);
    if (it != in_flight_.end()) {
      it->second->store(true);
    } else if (early_cancels_.size() < kMaxEarlyCancels) {
      // Not started yet: transports run requests on workers, so the notification can
      // overtake its request. (An id that already finished stays here harmlessly until
      // a new request reuses it.)
      early_cancels_.insert(key);
    }
  }
  // notifications/initialized, notifications/progress, roots/list_changed, ...: nothing to do.
}

void McpSession::HandleClientResponse(const Json& message) {
  std::shared_ptr<Pending> pending;
  {
    MutexLock lock(mu_);
    auto it = pending_.find(Dump(message["id"]));
    if (it == pending_.end()) return;  // late or unknown: ignore
    pending = it->second;
    pending_.erase(it);
  }
  MutexLock lock(pending->mu);
  pending->response = message;
  pending->cv.SignalAll();
}

Result<Json> McpSession::RequestClient(const std::string& method, const Json& params,
                                       std::chrono::milliseconds timeout, ClientChannel& channel,
                                       const std::atomic<bool>& cancelled) {
  std::string capability = method.substr(0, method.find('/'));  // "sampling", "elicitation", "roots"
  std::string id;
  auto pending = std::make_shared<Pending>();
  {
    MutexLock lock(mu_);
    if (!client_capabilities_.contains(capability)) {
      return FailedPreconditionError("the client did not declare the " + capability + " capability");
    }
    id = "engram-" + std::to_string(next_request_id_++);
    pending_[Dump(Json(id))] = pending;
  }
  auto forget = [&] {
    MutexLock lock(mu_);
    pending_.erase(Dump(Json(id)));
  };
  if (!channel.CanRequest() || !channel.Send(MakeRequest(id, method, params))) {
    forget();
    return UnavailableError("cannot send " + method + " to the client on this connection");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(pending->mu);
  while (!pending->response && !pending->failed) {
    if (cancelled.load()) {
      forget();
      return CancelledError(method + " cancelled");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      forget();
      return DeadlineExceededError("the client did not answer " + method + " in time");
    }
    pending->cv.WaitFor(pending->mu, std::chrono::milliseconds(50));
  }
  if (pending->failed) return UnavailableError("the client went away before answering " + method);
  const Json& r = *pending->response;
  if (r.contains("error")) {
    return InternalError("the client answered " + method + " with an error: " + Dump(r["error"]));
  }
  return r.value("result", Json::object());
}

void McpSession::CancelAll() {
  std::vector<std::shared_ptr<Pending>> pending;
  {
    MutexLock lock(mu_);
    for (auto& [id, flag] : in_flight_) flag->store(true);
    for (auto& [id, p] : pending_) pending.push_back(p);
    pending_.clear();
  }
  for (auto& p : pending) {
    MutexLock lock(p->mu);
    p->failed = true;
    p->cv.SignalAll();
  }
}

}  // namespace engram::mcp
