// `engram serve`: wires config → store → core → MCP server → a transport, and serves
// until stdin closes (stdio) or a signal arrives (HTTP). SIGHUP or a change of the config
// file reloads the settings that can change live (server/config_reload.h).
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "engram/status.h"

namespace engram::server {

struct ServeOptions {
  // "127.0.0.1:8765" serves Streamable HTTP; unset serves stdio.
  std::optional<std::string> http;
  // Adds the conformance suite's fixture tools, resources and prompts. Tests only.
  bool conformance_fixtures = false;
  std::string version = "0.0.0";
  // What `config` was loaded from. Set: SIGHUP and changes of the config file reload it
  // (server/config_reload.h). Unset: no reload.
  std::optional<ConfigInputs> config_inputs;
};

// Errors: the store's open errors; kInvalidArgument for a bad --http address;
// the transport's errors (port taken, non-loopback without keys).
Status Serve(const Config& config, const ServeOptions& options);

}  // namespace engram::server
