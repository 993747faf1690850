#include "mcp/jsonrpc.h"

namespace engram::mcp {

MessageKind Classify(const Json& m) {
  if (!m.is_object()) return MessageKind::kInvalid;
  auto version = m.find("jsonrpc");
  if (version == m.end() || *version != "2.0") return MessageKind::kInvalid;
  auto id = m.find("id");
  auto method = m.find("method");
  bool id_ok = id != m.end() && (id->is_string() || id->is_number_integer());
  if (method != m.end()) {
    if (!method->is_string()) return MessageKind::kInvalid;
    auto params = m.find("params");
    if (params != m.end() && !params->is_object() && !params->is_array()) return MessageKind::kInvalid;
    if (id == m.end()) return MessageKind::kNotification;
    return id_ok ? MessageKind::kRequest : MessageKind::kInvalid;
  }
  if (id != m.end() && (m.contains("result") || m.contains("error"))) return MessageKind::kResponse;
  return MessageKind::kInvalid;
}

std::optional<Json> ParseJson(std::string_view text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json MakeResult(const Json& id, Json result) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json MakeError(const Json& id, int code, std::string_view message, const Json& data) {
  Json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = data;
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

Json MakeError(const Json& id, const Status& status) {
  return MakeError(id, JsonRpcErrorCode(status.code()), status.message());
}

Json MakeNotification(std::string_view method, Json params) {
  Json n = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) n["params"] = std::move(params);
  return n;
}

Json MakeRequest(const Json& id, std::string_view method, Json params) {
  Json r = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) r["params"] = std::move(params);
  return r;
}

int JsonRpcErrorCode(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return kInvalidParams;
    case StatusCode::kUnimplemented: return kMethodNotFound;
    case StatusCode::kNotFound: return kResourceNotFound;
    case StatusCode::kUnavailable: return kUnavailableError;
    case StatusCode::kCancelled: return kRequestCancelled;
    default: return kInternalError;
  }
}

}  // namespace engram::mcp
