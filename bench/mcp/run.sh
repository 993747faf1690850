#!/usr/bin/env bash
# MCP-level benchmarks of engram, driven by the official MCP TypeScript SDK (DESIGN.md §10):
#   cold_start.mjs       cold start to the initialize answer over stdio (target ≤ 30 ms)
#   tool_roundtrip.mjs   trivial tool round trip over stdio vs the SDK's own floor, the
#                        server-everything echo tool, in the same run (target ≤ 2×)
#   http_throughput.mjs  8 concurrent SDK clients over Streamable HTTP: calls/s, episodes/s
# Results are reported, never asserted: the exit status is non-zero only when a benchmark
# could not run.
#
#   bench/mcp/run.sh build/engram          (make bench runs it with $(BUILD_DIR)/engram)
# Knobs (environment): BENCH_RUNS, BENCH_CALLS, BENCH_SECONDS, BENCH_CLIENT_THREADS, NODE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
engram="${1:-${ENGRAM_BINARY:-}}"
if [[ -z "$engram" ]]; then
  echo "usage: $0 ENGRAM_BINARY" >&2
  exit 2
fi
engram="$(cd "$(dirname "$engram")" && pwd)/$(basename "$engram")"
[[ -x "$engram" ]] || { echo "$0: $engram is not an executable" >&2; exit 2; }
node="${NODE:-node}"

if [[ ! -d "$here/node_modules/@modelcontextprotocol/server-everything" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$here"
echo "== engram MCP benchmarks: $("$engram" version 2>/dev/null | head -n1 || echo "$engram")"
echo "   $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cpus, node $("$node" --version), load average$(uptime | sed 's/.*load average//')"
echo
"$node" cold_start.mjs "$engram"
echo
"$node" tool_roundtrip.mjs "$engram"
echo
"$node" http_throughput.mjs "$engram"
echo
echo "   load average after:$(uptime | sed 's/.*load average//' | sed 's/^://')"
