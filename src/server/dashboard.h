// The memory dashboard (web/dashboard), built into the binary by cmake/embed_files.cmake:
// a read-only page that `engram serve --http` serves at / (its script and style under
// /assets/). The page holds no data: it is an MCP client of the same server's /mcp, so it
// sees exactly what its API key may see.
//
//   transport::HttpOptions http;
//   http.static_files = DashboardFiles();
#pragma once

#include <vector>

#include "transport/http_transport.h"

namespace engram::server {

// index.html at "/", app.js and style.css at "/assets/<name>", with content types and
// ETags. The views point at static data. Thread-safe.
std::vector<transport::StaticFile> DashboardFiles();

}  // namespace engram::server
