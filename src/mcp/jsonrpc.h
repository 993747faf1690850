// JSON-RPC 2.0 as MCP uses it: message classification, response building, and the one
// mapping from StatusCode to JSON-RPC error codes (STYLE §3). Transports know bytes;
// this file knows messages; session.h knows MCP.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engram/status.h"

namespace engram::mcp {

using Json = nlohmann::json;

inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
// Server-defined codes (-32000..-32099).
inline constexpr int kServerNotInitialized = -32002;  // also MCP's "resource not found"
inline constexpr int kResourceNotFound = -32002;
inline constexpr int kRequestCancelled = -32800;       // LSP's code; MCP sends no response instead
inline constexpr int kUnavailableError = -32001;

enum class MessageKind { kRequest, kNotification, kResponse, kInvalid };

// What an incoming JSON value is. A request has a string or integer id and a method; a
// notification has a method and no id; a response has an id and a result or an error.
MessageKind Classify(const Json& message);

// Parses text; nullopt if it is not JSON. Never throws.
std::optional<Json> ParseJson(std::string_view text);
// Serialises compactly, replacing invalid UTF-8 instead of throwing.
std::string Dump(const Json& j);

Json MakeResult(const Json& id, Json result);
Json MakeError(const Json& id, int code, std::string_view message, const Json& data = nullptr);
// The error response for a failed Status, with the code from JsonRpcErrorCode().
Json MakeError(const Json& id, const Status& status);
Json MakeNotification(std::string_view method, Json params);
Json MakeRequest(const Json& id, std::string_view method, Json params);

// The one mapping from engram's status codes to JSON-RPC error codes.
int JsonRpcErrorCode(StatusCode code);

}  // namespace engram::mcp
