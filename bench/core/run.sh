#!/usr/bin/env bash
# Core benchmark of issue 2 ("Measure"): throughput and peak RSS of `dbseal backup stdin`
# (zstd -3 + age + SHA-256 into a file:// store) against the shell pipeline
# `zstd -3 -T1 | age -r KEY > file`, and peak RSS of backup and restore at two sizes.
#
#   bench/core/run.sh               # writes bench/core/RESULTS.md
#
# Variables: BENCH_DIR (default /tmp/dbseal-bench-core; holds the 2 GiB dump, reused),
# BENCH_SCALE (pgbench scale of the dump, default 214 ≈ 2 GiB plain dump), BENCH_RUNS
# (default 3), BENCH_PG_PORT (private PostgreSQL, default 55499), BENCH_OUT (results file),
# BENCH_BIN (a dbseal binary to use instead of building the release one).
#
# 1. Once: a private PostgreSQL (scripts/services.sh), `pgbench -i -s SCALE`, an
#    uncompressed plain `pg_dump` saved to BENCH_DIR/pgbench.sql (about 2 GiB); the server
#    is stopped again. The 0.5 GiB input is the first 512 MiB of it.
# 2. The release build of dbseal (`cargo build --release -p dbseal-cli`).
# 3. BENCH_RUNS alternating runs of dbseal and of the shell pipeline on the 2 GiB input
#    (read from the page cache, written to BENCH_DIR), median wall time of each, ratio.
# 4. Backup and `restore --to-stdout > /dev/null` of the 0.5 GiB and 2 GiB inputs: wall
#    time and peak RSS (`/usr/bin/time -v`, "Maximum resident set size").
# Re-run it on a quiet machine: other processes (builds, tests) skew wall times; the
# script records the load average before and after.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${BENCH_DIR:-/tmp/dbseal-bench-core}
SCALE=${BENCH_SCALE:-214}
RUNS=${BENCH_RUNS:-3}
PG_PORT=${BENCH_PG_PORT:-55499}
OUT=${BENCH_OUT:-$ROOT/bench/core/RESULTS.md}
BIN=${BENCH_BIN:-$ROOT/target/release/dbseal}
DUMP=$W/pgbench.sql
SMALL=$W/pgbench-512MiB.sql

for tool in zstd age /usr/bin/time pgbench pg_dump python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$W"

# 1. The input: a plain pg_dump of a pgbench database, made once.
if [ ! -s "$DUMP" ]; then
  echo "bench: making the input: pgbench -i -s $SCALE, plain pg_dump (once)..." >&2
  PGDIR=$W/pg
  rm -rf "$PGDIR"
  cleanup_pg() { DBSEAL_TEST_PG_PORT=$PG_PORT "$ROOT/scripts/services.sh" stop "$PGDIR" || true; }
  trap cleanup_pg EXIT
  DBSEAL_TEST_PG_PORT=$PG_PORT "$ROOT/scripts/services.sh" start "$PGDIR" postgres
  # shellcheck disable=SC1091
  source "$PGDIR/env.sh"
  export PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD
  pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >"$W/pgbench.log" 2>&1
  pg_dump -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -f "$DUMP.tmp"
  mv "$DUMP.tmp" "$DUMP"
  cleanup_pg
  rm -rf "$PGDIR"
  trap - EXIT
fi
if [ ! -s "$SMALL" ]; then
  head -c $((512 * 1024 * 1024)) "$DUMP" >"$SMALL"
fi
BIG_BYTES=$(stat -c %s "$DUMP")
SMALL_BYTES=$(stat -c %s "$SMALL")

# 2. The release build (BENCH_BIN=PATH uses another binary, e.g. to try the script).
if [ -z "${BENCH_BIN:-}" ]; then
  echo "bench: cargo build --release -p dbseal-cli" >&2
  (cd "$ROOT" && cargo build --release -q -p dbseal-cli)
fi

rm -rf "$W/run"
mkdir -p "$W/run"
R=$W/run
"$BIN" -q keygen -o "$R/key.txt" >"$R/recipient"
RCPT=$(cat "$R/recipient")
# Warm the page cache so every run reads the input from memory.
cat "$DUMP" "$SMALL" >/dev/null

# timed NAME CMD... : runs CMD under /usr/bin/time -v (stdout to /dev/null unless the
# command redirects itself); writes "seconds max_rss_kib" to $R/NAME.result.
timed() {
  local name=$1; shift
  /usr/bin/time -v -o "$R/$name.time" "$@" >/dev/null 2>"$R/$name.err" || {
    echo "bench: $name failed:" >&2; cat "$R/$name.err" "$R/$name.time" >&2; exit 1; }
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i] }
    /Maximum resident set size/ { rss = $2 }
    END { printf "%.2f %d\n", s, rss }' "$R/$name.time" >"$R/$name.result"
}
field() { # FILE KEY... : a field of a JSON file
  python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# 3. Throughput on the 2 GiB input, alternating.
echo "bench: $RUNS runs of dbseal and of zstd -3 -T1 | age on $BIG_BYTES bytes..." >&2
: >"$R/dbseal.times"; : >"$R/shell.times"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$R/store"
  timed "dbseal-$i" sh -c '"$1" -q --store "file://$2" backup stdin -d bench -r "$3" <"$4"' \
    sh "$BIN" "$R/store" "$RCPT" "$DUMP"
  cat "$R/dbseal-$i.result" >>"$R/dbseal.times"
  rm -f "$R/shell.age"
  timed "shell-$i" sh -c 'zstd -3 -T1 -q -c <"$1" | age -r "$2" >"$3"' \
    sh "$DUMP" "$RCPT" "$R/shell.age"
  cat "$R/shell-$i.result" >>"$R/shell.times"
done
D_MED=$(cut -d' ' -f1 "$R/dbseal.times" | median)
S_MED=$(cut -d' ' -f1 "$R/shell.times" | median)
RATIO=$(awk -v d="$D_MED" -v s="$S_MED" 'BEGIN { printf "%.2f", s / d }')
STORED=$(find "$R/store" -name '*.age' -printf '%s\n' | head -1)
SHELL_STORED=$(stat -c %s "$R/shell.age")
rm -f "$R/shell.age"

# 4. Peak RSS of backup and restore at two sizes.
declare -A B_T B_RSS R_T R_RSS
for size in small big; do
  input=$DUMP; [ $size = small ] && input=$SMALL
  rm -rf "$R/store"
  timed "backup-$size" sh -c '"$1" -q --json --store "file://$2" backup stdin -d bench -r "$3" <"$4" >"$5"' \
    sh "$BIN" "$R/store" "$RCPT" "$input" "$R/manifest-$size.json"
  read -r s rss <"$R/backup-$size.result"
  B_T[$size]=$s; B_RSS[$size]=$rss
  id=$(field "$R/manifest-$size.json" backup_id)
  timed "restore-$size" sh -c '"$1" -q --store "file://$2" restore "$3" -i "$4" --to-stdout | sha256sum >"$5"' \
    sh "$BIN" "$R/store" "$id" "$R/key.txt" "$R/restored-$size.sha256"
  read -r s rss <"$R/restore-$size.result"
  R_T[$size]=$s; R_RSS[$size]=$rss
  want=$(field "$R/manifest-$size.json" artifact plaintext_sha256)
  got=$(cut -d' ' -f1 "$R/restored-$size.sha256")
  [ "$want" = "$got" ] || { echo "bench: restore of $size gave other bytes ($got != $want)" >&2; exit 1; }
done
rm -rf "$R/store"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Results.
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "# bench/core — results"
  echo
  echo "Produced by \`bench/core/run.sh\` (re-run it to replace this file)."
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs ($CPU), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
  echo "- Load average before / after: $LOAD_BEFORE / $LOAD_AFTER. Other processes (other"
  echo "  engineers' builds and tests) may have been running: wall times are indicative; the"
  echo "  ratio compares runs interleaved in the same minutes."
  echo "- dbseal $("$BIN" --version | cut -d' ' -f2) (\`${BENCH_BIN:-target/release/dbseal}\`, release build unless BENCH_BIN was set); zstd $(zstd -V | sed -n 's/.*v\([0-9.]*\).*/\1/p'), age $(age --version)."
  echo "- Input: uncompressed plain \`pg_dump\` of a \`pgbench -i -s $SCALE\` database: $BIG_BYTES bytes"
  echo "  ($(awk -v b="$BIG_BYTES" 'BEGIN { printf "%.2f", b / 1073741824 }') GiB); the 0.5 GiB input is its first $SMALL_BYTES bytes. Read from the page"
  echo "  cache, written to a local file system."
  echo
  echo "## Throughput: backup of the 2 GiB dump ($RUNS runs each, interleaved)"
  echo
  echo "| pipeline | runs (s) | median (s) | MB/s | stored bytes |"
  echo "|---|---|---|---|---|"
  echo "| \`dbseal backup stdin\` (zstd -3, age, SHA-256 ×2, file://) | $(cut -d' ' -f1 "$R/dbseal.times" | paste -sd' ') | $D_MED | $(mbps "$BIG_BYTES" "$D_MED") | $STORED |"
  echo "| \`zstd -3 -T1 \| age -r KEY > file\` | $(cut -d' ' -f1 "$R/shell.times" | paste -sd' ') | $S_MED | $(mbps "$BIG_BYTES" "$S_MED") | $SHELL_STORED |"
  echo
  echo "Ratio (shell median / dbseal median): **$RATIO** (target: at least 1.00, dbseal at least as fast)."
  echo
  echo "## Peak RSS of backup and restore"
  echo
  echo "| input | backup (s) | backup peak RSS | restore --to-stdout (s) | restore peak RSS |"
  echo "|---|---|---|---|---|"
  echo "| 0.5 GiB | ${B_T[small]} | $(mib "${B_RSS[small]}") MiB | ${R_T[small]} | $(mib "${R_RSS[small]}") MiB |"
  echo "| $(awk -v b="$BIG_BYTES" 'BEGIN { printf "%.2f", b / 1073741824 }') GiB | ${B_T[big]} | $(mib "${B_RSS[big]}") MiB | ${R_T[big]} | $(mib "${R_RSS[big]}") MiB |"
  echo
  echo "Target: under 64 MiB, independent of size. Peak RSS is the \"Maximum resident set size\""
  echo "of \`/usr/bin/time -v\` for the dbseal process (the restore's \`sha256sum\` check runs in"
  echo "the same shell pipeline and is tiny). The shell pipeline's peak RSS (largest of zstd"
  echo "and age) was $(cut -d' ' -f2 "$R/shell.times" | sort -n | tail -1 | awk '{ printf "%.1f", $1 / 1024 }') MiB."
} >"$OUT"
echo "bench: wrote $OUT" >&2
cat "$OUT"
