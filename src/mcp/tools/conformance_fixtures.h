// Test-only fixtures for the official MCP conformance suite (`engram serve
// --conformance-fixtures`, never on by default): the fixed tool, resource and prompt
// names the suite's scenarios call (test_simple_text, test://static-text,
// test_simple_prompt, ...). They touch no memory.
#pragma once

#include "engram/status.h"
#include "mcp/server.h"

namespace engram::mcp {

// Errors: kAlreadyExists if a fixture name is already registered.
Status RegisterConformanceFixtures(McpServer& server);

}  // namespace engram::mcp
