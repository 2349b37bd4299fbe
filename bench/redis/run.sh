#!/usr/bin/env bash
# Redis benchmark of issue 4 ("Measure"). Run once, by hand, on an otherwise idle
# machine; it prints a Markdown table to paste into bench/redis/RESULTS.md.
#
#   bench/redis/run.sh            (BENCH_KEYS=2000000 BENCH_DIR=/tmp/dbseal-bench-redis)
#
# 1. Loads BENCH_KEYS mixed keys into a throwaway redis-server with `redis-cli --pipe`
#    (repl-diskless-sync-delay 0).
# 2. Snapshot: `redis-cli --rdb` against a dbseal backup (replication snapshot, zstd -3,
#    age, SHA-256, RDB parse and counts, written to a local file store).
# 3. Restore into an empty server: the server loading the dump.rdb at start-up (the
#    physical limit), `redis-cli --pipe` of the equivalent RESTORE commands, and the dbseal
#    restore (decrypt, decompress, verify, parse, pipelined RESTORE into staging
#    databases, SWAPDB).
# Each timed step runs BENCH_ROUNDS (3) interleaved rounds; the table shows the medians.
# Wall time and peak RSS come from /usr/bin/time. The dbseal side is the release build of
# backup-redis/examples/redis_bench.rs (same library calls as the CLI).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${BENCH_DIR:-/tmp/dbseal-bench-redis}
KEYS=${BENCH_KEYS:-2000000}
PORT=${BENCH_REDIS_PORT:-56690}
PORT2=$((PORT + 1))
BIN=$ROOT/target/release/examples/redis_bench

(cd "$ROOT" && cargo build --release -q -p backup-redis --example redis_bench)
rm -rf "$W"
mkdir -p "$W/src" "$W/dst" "$W/load"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # dir port [args...] -> pid
  local d=$1 p=$2; shift 2
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    --repl-diskless-sync-delay 0 "$@"
  for _ in $(seq 1 600); do
    if [ -s "$d/redis.pid" ] && [ "$(redis-cli -p "$p" info persistence 2>/dev/null | tr -d '\r' | grep -c '^loading:0')" = 1 ]; then
      break
    fi
    sleep 0.01
  done
  PIDS+=("$(cat "$d/redis.pid")")
}
stop() { # port
  local pid
  pid=$(redis-cli -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p')
  kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}
timed() { # label command... -> "seconds max_rss_kb" on fd 3
  /usr/bin/time -f "%e %M" -o "$W/time.$1" "${@:2}" >/dev/null 2>"$W/err.$1" || { cat "$W/err.$1"; exit 1; }
  cat "$W/time.$1"
}

echo "loading $KEYS mixed keys..." >&2
start "$W/src" "$PORT"
python3 "$ROOT/bench/redis/gen_keys.py" "$KEYS" | redis-cli -p "$PORT" --pipe >/dev/null
DBSIZE=$(redis-cli -p "$PORT" dbsize)
echo "loaded $DBSIZE keys" >&2

"$BIN" keygen "$W/identity"
export DBSEAL_SIGNING_KEY=$W/identity.minisign.key
ROUNDS=${BENCH_ROUNDS:-3}
# Snapshot: ROUNDS interleaved rounds; the median of each counts.
for run in $(seq 1 "$ROUNDS"); do
  read -r RDB_T[$run] RDB_M[$run] < <(timed "rdb$run" redis-cli -p "$PORT" --rdb "$W/ref.rdb")
  read -r BK_T[$run] BK_M[$run] < <(timed "backup$run" "$BIN" backup "redis://127.0.0.1:$PORT" "$W/store$run" "$W/identity")
  read -r B0_T[$run] B0_M[$run] < <(DBSEAL_BENCH_ZSTD_WORKERS=0 timed "backup0-$run" "$BIN" backup "redis://127.0.0.1:$PORT" "$W/store0-$run" "$W/identity")
done
RDB_SIZE=$(stat -c %s "$W/ref.rdb")
ID=$("$BIN" backup "redis://127.0.0.1:$PORT" "$W/store" "$W/identity" 2>/dev/null)
STORED=$(du -sb "$W/store" | cut -f1)
stop "$PORT"

# Restore 1: the server loads dump.rdb at start-up.
cp "$W/ref.rdb" "$W/load/dump.rdb"
T0=$(date +%s.%N)
start "$W/load" "$PORT2" --dbfilename dump.rdb
T1=$(date +%s.%N)
LOAD_T=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
LOAD_LOG=$(grep -o 'DB loaded from disk: [0-9.]* seconds' "$W/load/redis.log" | grep -o '[0-9.]*' | head -1)
[ "$(redis-cli -p "$PORT2" dbsize)" = "$DBSIZE" ] || { echo "start-up load: wrong key count" >&2; exit 1; }
stop "$PORT2"

# Restore 2 and 3, interleaved for ROUNDS rounds into the same (flushed) server:
# redis-cli --pipe of the equivalent RESTORE commands (generated beforehand), and dbseal.
"$BIN" restore-commands "$W/ref.rdb" >"$W/restore.resp"
start "$W/dst" "$PORT2"
for run in $(seq 1 "$ROUNDS"); do
  redis-cli -p "$PORT2" flushall sync >/dev/null
  read -r PIPE_TS[$run] PIPE_M[$run] < <(timed "pipe$run" sh -c "redis-cli -p $PORT2 --pipe < $W/restore.resp")
  [ "$(redis-cli -p "$PORT2" dbsize)" = "$DBSIZE" ] || { echo "--pipe: wrong key count" >&2; exit 1; }
  redis-cli -p "$PORT2" flushall sync >/dev/null
  read -r RS_TS[$run] RS_M[$run] < <(timed "restore$run" "$BIN" restore "redis://127.0.0.1:$PORT2" "$W/store" "$W/identity" "$ID")
  [ "$(redis-cli -p "$PORT2" dbsize)" = "$DBSIZE" ] || { echo "dbseal restore: wrong key count" >&2; exit 1; }
done
stop "$PORT2"

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
RDB_BEST=$(median "${RDB_T[@]}")
BK_BEST=$(median "${BK_T[@]}")
B0_BEST=$(median "${B0_T[@]}")
PIPE_T_RUNS="${PIPE_TS[*]}"
RS_T_RUNS="${RS_TS[*]}"
PIPE_T=$(median "${PIPE_TS[@]}")
RS_T=$(median "${RS_TS[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<MD
## $(date -u +%Y-%m-%d) — $(nproc) cores ($CPU), $(free -g | awk '/Mem:/ {print $2}') GiB, $(redis-server --version | grep -o 'v=[0-9.]*')

$DBSIZE keys (50% strings, 10% strings with TTL, 10% hashes, 10% lists, 10% sets, 10% sorted sets); RDB $RDB_SIZE bytes; dbseal artifact $STORED bytes (zstd -3 + age). Load average at the end: $LOAD.

| step | time (s) | peak RSS (KiB) | ratio |
|---|---|---|---|
| snapshot: \`redis-cli --rdb\` (runs ${RDB_T[*]}) | $RDB_BEST | ${RDB_M[1]} | 1.00 |
| snapshot: dbseal backup, zstd workers = cores (default) (runs ${BK_T[*]}) | $BK_BEST | ${BK_M[1]} | $(ratio "$BK_BEST" "$RDB_BEST") × redis-cli --rdb |
| snapshot: dbseal backup, single-threaded zstd (runs ${B0_T[*]}) | $B0_BEST | ${B0_M[1]} | $(ratio "$B0_BEST" "$RDB_BEST") × redis-cli --rdb |
| restore: server loads dump.rdb at start-up (log: ${LOAD_LOG}s) | $LOAD_T | — | $(ratio "$LOAD_T" "$PIPE_T") × --pipe |
| restore: \`redis-cli --pipe\` of RESTORE commands (runs ${PIPE_T_RUNS}) | $PIPE_T | ${PIPE_M[1]} | 1.00 |
| restore: dbseal restore (runs ${RS_T_RUNS}) | $RS_T | ${RS_M[1]} | $(ratio "$RS_T" "$PIPE_T") × --pipe |
MD
