#!/usr/bin/env bash
# The storage benchmarks of issue 6, against a throwaway PostgreSQL cluster that this script
# starts (scripts/pg-test-cluster: initdb in a temp folder, Unix socket only, fsync off) and
# stops, as `make test` does:
#   storage_bench     PostgreSQL vs SQLite at STORAGE_BENCH_EPISODES (default 100,000):
#                     load rate, query_memory p50/p95, complete_episode p50/p95
#   cache_mix_bench   the LMDB cache under an 80/15/5 read/append/create mix over 10k
#                     episodes, SQLite (and PostgreSQL as OpenStore opens it), cache on and off
#   http_pool_bench   `engram serve --http` on the PostgreSQL store storage_bench loaded, with
#                     storage.pool_size 10, 4 and 1, 32 concurrent HTTP clients
# Results are reported, never asserted; the exit status is non-zero only when a benchmark
# could not run. PostgreSQL commits here wait for the WAL write (synchronous_commit=on per
# session) but the cluster never fsyncs: compare with SQLite at durability=normal, not full.
#
#   bench/storage/run.sh build           (make bench runs it with $(BUILD_DIR))
# Knobs (environment): STORAGE_BENCH_EPISODES (100000; loading PostgreSQL runs at tens of
# episodes/s on a busy 2-core machine: 100k can take an hour), CACHE_BENCH_EPISODES (10000),
# POOL_BENCH_SECONDS (15), POOL_BENCH_WARMUP (30: engram serve builds the vector index of
# the store in the background first), POOL_BENCH_CLIENTS (32), POOL_SIZES ("10 4 1").
# The pool runs twice per size: half query_memory, half episodes; then episodes only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-}"
if [[ -z "$build" ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build="$(cd "$build" && pwd)"
for b in bench/storage_bench bench/cache_mix_bench bench/http_pool_bench engram; do
  [[ -x "$build/$b" ]] || { echo "$0: $build/$b is not built" >&2; exit 2; }
done
episodes="${STORAGE_BENCH_EPISODES:-100000}"
cache_episodes="${CACHE_BENCH_EPISODES:-10000}"
seconds="${POOL_BENCH_SECONDS:-15}"
warmup="${POOL_BENCH_WARMUP:-30}"
clients="${POOL_BENCH_CLIENTS:-32}"
pool_sizes="${POOL_SIZES:-10 4 1}"

pgdir="$(mktemp -d /tmp/engram-pgbench.XXXXXX)"
trap '"$root/scripts/pg-test-cluster" stop "$pgdir" >/dev/null 2>&1; rm -rf "$pgdir"' EXIT
trap 'exit 130' INT TERM
conninfo="$("$root/scripts/pg-test-cluster" start "$pgdir")"
user="${conninfo##*user=}"
psql_() { psql "$conninfo" -v ON_ERROR_STOP=1 -Atq "$@"; }
for db in bench_storage bench_cache; do psql_ -c "CREATE DATABASE $db"; done

cd "$root"  # the benchmarks read bench/eval
echo "== engram storage benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cpus, load average$(uptime | sed 's/.*load average//' | sed 's/^://')"
echo "   $(psql_ -c 'SELECT version()' | cut -d, -f1); fsync=$(psql_ -c 'SHOW fsync'), shared_buffers=$(psql_ -c 'SHOW shared_buffers'), Unix socket"
echo
echo "-- PostgreSQL vs SQLite, $episodes episodes"
"$build/bench/storage_bench" --pg "$conninfo dbname=bench_storage options=-csynchronous_commit=on" --episodes "$episodes"
echo
echo "-- LMDB cache under a read/write mix, $cache_episodes episodes"
"$build/bench/cache_mix_bench" --episodes "$cache_episodes" \
  --pg "postgresql://$user@/bench_cache?host=$pgdir&options=-csynchronous_commit%3Don"
echo
echo "-- connection pool: $clients HTTP clients, engram serve on the PostgreSQL store storage_bench loaded"
for share in 50 0; do
  for pool in $pool_sizes; do
    "$build/bench/http_pool_bench" --engram "$build/engram" --pool-size "$pool" --clients "$clients" \
      --seconds "$seconds" --warmup "$warmup" --query-share "$share" \
      --store "postgresql://$user@/bench_storage?host=$pgdir"
    echo
  done
done
echo "   load average after:$(uptime | sed 's/.*load average//' | sed 's/^://')"
