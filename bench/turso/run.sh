#!/usr/bin/env bash
# The Turso benchmarks of issue 10, against a tursodb that this script starts on a free
# loopback port with a fresh database in a temp folder (the `tursodb` of the npm package
# `turso`, which scripts/install-deps installs under tests/e2e/node), and stops:
#   turso_bench      Turso vs SQLite at TURSO_BENCH_EPISODES (default 10,000): query_memory
#                    and complete_episode p50/p95, without and with the LMDB cache, and HTTP
#                    requests per tool call
#   retrieval_eval   with `eval` as second argument: bench/eval on Turso (--store) and on
#                    SQLite, for the Recall@5 comparison (a second fresh database)
# Results are reported, never asserted; the exit status is non-zero only when a benchmark
# could not run.
#
#   bench/turso/run.sh BUILD_DIR [bench|eval|all]   (make bench runs it with $(BUILD_DIR))
# Knobs (environment): TURSO_BENCH_EPISODES (10000), TURSO_BENCH_QUERIES (200),
# TURSO_BENCH_COMPLETES (200), ENGRAM_TURSODB (the tursodb binary to use).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-}"
what="${2:-bench}"
if [[ -z "$build" || ! "$what" =~ ^(bench|eval|all)$ ]]; then
  echo "usage: $0 BUILD_DIR [bench|eval|all]" >&2
  exit 2
fi
build="$(cd "$build" && pwd)"
tursodb="${ENGRAM_TURSODB:-$root/tests/e2e/node/node_modules/@tursodatabase/cli-linux-x64-gnu/tursodb}"
[[ -x "$tursodb" ]] || { echo "$0: no tursodb at $tursodb: run scripts/install-deps (or set ENGRAM_TURSODB)" >&2; exit 2; }
for b in bench/turso_bench bench/retrieval_eval; do
  [[ -x "$build/$b" ]] || { echo "$0: $build/$b is not built" >&2; exit 2; }
done

dir="$(mktemp -d /tmp/engram-tursobench.XXXXXX)"
pid=""
stop_server() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi
}
trap 'stop_server; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# Starts tursodb on a fresh database file $1 on a free loopback port; sets $url.
start_server() {
  local db="$1" port
  for _ in 1 2 3 4 5; do
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    "$tursodb" "$db" --sync-server "127.0.0.1:$port" >"$db.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then url="http://127.0.0.1:$port"; return 0; fi
      sleep 0.1
    done
    stop_server
  done
  echo "$0: tursodb did not start; see $db.log" >&2
  exit 1
}

cd "$root"  # the benchmarks read bench/eval
echo "== engram Turso benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cpus, load average$(uptime | sed 's/.*load average//' | sed 's/^://')"
echo "   $("$tursodb" --version 2>/dev/null | head -1 || echo tursodb), loopback HTTP"
if [[ "$what" != eval ]]; then
  start_server "$dir/bench.db"
  echo
  echo "-- Turso vs SQLite, ${TURSO_BENCH_EPISODES:-10000} episodes"
  "$build/bench/turso_bench" --turso "$url" --episodes "${TURSO_BENCH_EPISODES:-10000}" \
    --queries "${TURSO_BENCH_QUERIES:-200}" --completes "${TURSO_BENCH_COMPLETES:-200}" --dir "$dir/turso_bench"
  stop_server
fi
if [[ "$what" != bench ]]; then
  start_server "$dir/eval.db"
  echo
  echo "-- retrieval eval on SQLite"
  "$build/bench/retrieval_eval" --dir bench/eval
  echo
  echo "-- retrieval eval on Turso"
  "$build/bench/retrieval_eval" --dir bench/eval --store "$url"
  stop_server
fi
echo "   load average after:$(uptime | sed 's/.*load average//' | sed 's/^://')"
