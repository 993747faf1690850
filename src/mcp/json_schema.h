// Validates tool arguments against the JSON Schema subset engram's tools use, so a
// model gets an error that names the field ("arguments.outcome: expected one of
// success, partial_success, failure"). Supported keywords: type (string or list),
// properties, required, additionalProperties (bool), enum, const, minimum, maximum,
// exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern is NOT supported,
// items, minItems, maxItems, anyOf, oneOf, default (ignored). Unknown keywords are ignored.
#pragma once

#include <string>

#include "engram/status.h"
#include "mcp/jsonrpc.h"

namespace engram::mcp {

// OK if `value` satisfies `schema`. Errors: kInvalidArgument naming the path.
Status ValidateJson(const Json& value, const Json& schema, const std::string& path = "arguments");

}  // namespace engram::mcp
