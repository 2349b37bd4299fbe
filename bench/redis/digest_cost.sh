#!/usr/bin/env bash
# What Redis level-3 content digests cost the backup side (issue 17): loads the bench's
# mixed key set (bench/redis/gen_keys.py) into a throwaway redis-server, takes its RDB
# with `redis-cli --rdb`, and parses it with the counting reader and with the digesting
# reader, interleaved (backup-redis/examples/rdb_digest_cost.rs, release build).
#
#   bench/redis/digest_cost.sh      (BENCH_KEYS=2000000 BENCH_ROUNDS=5 BENCH_DIR=/tmp/dbseal-bench-digest)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${BENCH_DIR:-/tmp/dbseal-bench-digest}
KEYS=${BENCH_KEYS:-2000000}
PORT=${BENCH_REDIS_PORT:-56695}
(cd "$ROOT" && cargo build --release -q -p backup-redis --example rdb_digest_cost)
rm -rf "$W"; mkdir -p "$W"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" \
  --daemonize yes --pidfile "$W/redis.pid" --logfile "$W/redis.log"
for _ in $(seq 1 200); do [ -s "$W/redis.pid" ] && redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
PID=$(cat "$W/redis.pid")
trap 'kill "$PID" 2>/dev/null || true' EXIT
python3 "$ROOT/bench/redis/gen_keys.py" "$KEYS" | redis-cli -p "$PORT" --pipe >/dev/null
redis-cli -p "$PORT" --rdb "$W/dump.rdb" >/dev/null 2>&1
echo "$(date -u +%F), $(nproc) cores, $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $KEYS keys:"
"$ROOT/target/release/examples/rdb_digest_cost" "$W/dump.rdb" "${BENCH_ROUNDS:-5}"
