#!/usr/bin/env bash
# Core benchmark of issue 2 ("Measure"): throughput and peak RSS of `dbseal backup stdin`
# (zstd -3 + age + SHA-256 into a file:// store) against the shell pipeline
# `zstd -3 -T1 | age -r KEY > file`, and peak RSS of backup and restore at two sizes.
#
#   bench/core/run.sh               # writes bench/core/RESULTS.md
#
# Variables: BENCH_DIR (default /tmp/dbseal-bench-core; holds the dumps, reused),
# BENCH_SCALE (pgbench scale of the pgbench dump, default 214 ≈ 2 GiB plain dump),
# BENCH_APP_ROWS (events rows of the application dump, default 7500000 ≈ 2 GiB),
# BENCH_RUNS (default 3), BENCH_BASE_BIN (a second dbseal binary, e.g. an older build,
# timed in the same interleaved runs for a before/after comparison), BENCH_PG_PORT (private PostgreSQL, default 55499), BENCH_OUT
# (results file), BENCH_BIN (a dbseal binary to use instead of building the release one).
#
# 1. Once: a private PostgreSQL (scripts/services.sh) holding two databases, dumped with
#    plain, uncompressed `pg_dump` into BENCH_DIR, then stopped again:
#    - app.sql: an application database made by bench/core/app-data.sql (customers,
#      orders with JSON lines, an event log with free text, UUIDs, JSON): ~2 GiB that
#      compresses about 3.4:1, like typical production dumps;
#    - pgbench.sql: `pgbench -i -s SCALE`: ~2 GiB of blank-padded filler that compresses
#      over 100:1, the worst case for dbseal (see RESULTS.md).
#    The 0.5 GiB input (RSS) is the first 512 MiB of pgbench.sql.
# 2. The release build of dbseal (`cargo build --release -p dbseal-cli`).
# 3. For each dump, BENCH_RUNS interleaved runs (read from the page cache, written to
#    BENCH_DIR): dbseal backup; the shell pipeline; the shell pipeline plus the
#    plaintext's SHA-256 (openssl); `openssl dgst -sha256` alone (the floor of any tool
#    that records the plaintext's SHA-256, as the manifest must); dbseal restore;
#    `age -d | zstd -d`. Median wall time of each and the backup ratio.
# 4. Backup and `restore --to-stdout > /dev/null` of the 0.5 GiB and 2 GiB pgbench
#    inputs and of the application dump: wall time and peak RSS (`/usr/bin/time -v`).
# Run it on a quiet machine: other processes (builds, tests) skew wall times; the
# script records the load average before and after, and waits while
# /tmp/neo4j-bench.lock exists (another bench in progress).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${BENCH_DIR:-/tmp/dbseal-bench-core}
SCALE=${BENCH_SCALE:-214}
APP_ROWS=${BENCH_APP_ROWS:-7500000}
RUNS=${BENCH_RUNS:-3}
PG_PORT=${BENCH_PG_PORT:-55499}
OUT=${BENCH_OUT:-$ROOT/bench/core/RESULTS.md}
BIN=${BENCH_BIN:-$ROOT/target/release/dbseal}
DUMP=$W/pgbench.sql
APP=$W/app.sql
SMALL=$W/pgbench-512MiB.sql

for tool in zstd age openssl /usr/bin/time pgbench pg_dump python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$W"

# 1. The inputs: plain pg_dumps, made once.
if [ ! -s "$DUMP" ] || [ ! -s "$APP" ]; then
  echo "bench: making the inputs (once): pgbench -i -s $SCALE and app-data.sql rows=$APP_ROWS, plain pg_dump..." >&2
  PGDIR=$W/pg
  rm -rf "$PGDIR"
  cleanup_pg() { DBSEAL_TEST_PG_PORT=$PG_PORT "$ROOT/scripts/services.sh" stop "$PGDIR" || true; }
  trap cleanup_pg EXIT
  DBSEAL_TEST_PG_PORT=$PG_PORT "$ROOT/scripts/services.sh" start "$PGDIR" postgres
  # shellcheck disable=SC1091
  source "$PGDIR/env.sh"
  export PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD
  PGC=(-h 127.0.0.1 -p "$PG_PORT" -U postgres)
  if [ ! -s "$DUMP" ]; then
    pgbench -i -q -s "$SCALE" "${PGC[@]}" postgres >"$W/pgbench.log" 2>&1
    pg_dump "${PGC[@]}" -d postgres -f "$DUMP.tmp"
    mv "$DUMP.tmp" "$DUMP"
    echo "$SCALE" >"$W/pgbench.scale"
  fi
  if [ ! -s "$APP" ]; then
    psql "${PGC[@]}" -q -c 'CREATE DATABASE app'
    psql "${PGC[@]}" -d app -q -v rows="$APP_ROWS" -f "$ROOT/bench/core/app-data.sql" >/dev/null
    pg_dump "${PGC[@]}" -d app -f "$APP.tmp"
    mv "$APP.tmp" "$APP"
    echo "$APP_ROWS" >"$W/app.rows"
  fi
  cleanup_pg
  rm -rf "$PGDIR"
  trap - EXIT
fi
if [ ! -s "$SMALL" ]; then
  head -c $((512 * 1024 * 1024)) "$DUMP" >"$SMALL"
fi
BIG_BYTES=$(stat -c %s "$DUMP")
APP_BYTES=$(stat -c %s "$APP")
APP_ROWS=$(cat "$W/app.rows" 2>/dev/null || echo "$APP_ROWS")
SCALE=$(cat "$W/pgbench.scale" 2>/dev/null || echo "$SCALE")
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
export DBSEAL_SIGNING_KEY=$R/key.txt.minisign.key
RCPT=$(cat "$R/recipient")

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
gib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1073741824 }'; }

while [ -e /tmp/neo4j-bench.lock ]; do echo "bench: waiting for /tmp/neo4j-bench.lock" >&2; sleep 10; done
touch /tmp/core-bench.lock
trap 'rm -f /tmp/core-bench.lock' EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# 3. Throughput, alternating. throughput TAG INPUT: series files $R/TAG-*.times.
throughput() {
  local tag=$1 input=$2 i
  echo "bench: $RUNS runs on $input..." >&2
  cat "$input" >/dev/null # page cache
  for series in dbseal base shell shellsha sha restore baserestore shellrestore shellrestoresha; do : >"$R/$tag-$series.times"; done
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$R/store" "$R/shell.age"
    timed "$tag-dbseal-$i" sh -c '"$1" -q --json --store "file://$2" backup stdin -d bench -r "$3" <"$4" >"$5"' \
      sh "$BIN" "$R/store" "$RCPT" "$input" "$R/$tag-manifest.json"
    cat "$R/$tag-dbseal-$i.result" >>"$R/$tag-dbseal.times"
    if [ -n "${BENCH_BASE_BIN:-}" ]; then # the same backup with the baseline binary
      rm -rf "$R/basestore"
      timed "$tag-base-$i" sh -c '"$1" -q --json --store "file://$2" backup stdin -d bench -r "$3" <"$4" >"$5"' \
        sh "$BENCH_BASE_BIN" "$R/basestore" "$RCPT" "$input" "$R/$tag-basemanifest.json"
      cat "$R/$tag-base-$i.result" >>"$R/$tag-base.times"
    fi
    timed "$tag-shell-$i" sh -c 'zstd -3 -T1 -q -c <"$1" | age -r "$2" >"$3"' \
      sh "$input" "$RCPT" "$R/shell.age"
    cat "$R/$tag-shell-$i.result" >>"$R/$tag-shell.times"
    timed "$tag-shellsha-$i" bash -c 'tee >(openssl dgst -sha256 >"$4") <"$1" | zstd -3 -T1 -q -c | age -r "$2" >"$3"' \
      sh "$input" "$RCPT" "$R/shell.age" "$R/shell.sha256"
    cat "$R/$tag-shellsha-$i.result" >>"$R/$tag-shellsha.times"
    timed "$tag-sha-$i" sh -c 'openssl dgst -sha256 <"$1"' sh "$input"
    cat "$R/$tag-sha-$i.result" >>"$R/$tag-sha.times"
    # dbseal checks the plaintext SHA-256 against the manifest itself before the end.
    timed "$tag-restore-$i" sh -c '"$1" -q --store "file://$2" restore "$3" -i "$4" --to-stdout' \
      sh "$BIN" "$R/store" "$(field "$R/$tag-manifest.json" backup_id)" "$R/key.txt"
    cat "$R/$tag-restore-$i.result" >>"$R/$tag-restore.times"
    if [ -n "${BENCH_BASE_BIN:-}" ]; then
      timed "$tag-baserestore-$i" sh -c '"$1" -q --store "file://$2" restore "$3" -i "$4" --to-stdout' \
        sh "$BENCH_BASE_BIN" "$R/basestore" "$(field "$R/$tag-basemanifest.json" backup_id)" "$R/key.txt"
      cat "$R/$tag-baserestore-$i.result" >>"$R/$tag-baserestore.times"
    fi
    # The shell decrypts dbseal's own artifact (a standard age file of one zstd frame),
    # so both read the same bytes.
    art=$(find "$R/store" -name '*.age' | head -1)
    timed "$tag-shellrestore-$i" sh -c 'age -d -i "$1" "$2" | zstd -d -q -c' sh "$R/key.txt" "$art"
    cat "$R/$tag-shellrestore-$i.result" >>"$R/$tag-shellrestore.times"
    timed "$tag-shellrestoresha-$i" bash -c 'age -d -i "$1" "$2" | zstd -d -q -c | tee >(openssl dgst -sha256 >"$3")' \
      sh "$R/key.txt" "$art" "$R/restore.sha256"
    cat "$R/$tag-shellrestoresha-$i.result" >>"$R/$tag-shellrestoresha.times"
  done
  echo "$(field "$R/$tag-manifest.json" artifact stored_size) $(stat -c %s "$R/shell.age")" >"$R/$tag.stored"
  rm -rf "$R/store" "$R/shell.age"
}
med() { cut -d' ' -f1 "$R/$1.times" | median; }
runs() { cut -d' ' -f1 "$R/$1.times" | paste -sd' '; }
ratio() { awk -v d="$(med "$1-dbseal")" -v s="$(med "$1-shell")" 'BEGIN { printf "%.2f", s / d }'; }
table() { # TAG BYTES
  local tag=$1 bytes=$2
  echo "| pipeline | runs (s) | median (s) | MB/s |"
  echo "|---|---|---|---|"
  echo "| \`dbseal backup stdin\` (zstd -3, age, SHA-256 of plaintext and of stored bytes, file://) | $(runs "$tag-dbseal") | $(med "$tag-dbseal") | $(mbps "$bytes" "$(med "$tag-dbseal")") |"
  if [ -n "${BENCH_BASE_BIN:-}" ]; then
    echo "| same, baseline binary (\`$BENCH_BASE_BIN\`) | $(runs "$tag-base") | $(med "$tag-base") | $(mbps "$bytes" "$(med "$tag-base")") |"
  fi
  echo "| \`zstd -3 -T1 \| age -r KEY > file\` | $(runs "$tag-shell") | $(med "$tag-shell") | $(mbps "$bytes" "$(med "$tag-shell")") |"
  echo "| same, plus the plaintext's SHA-256 (\`tee >(openssl dgst -sha256)\`) | $(runs "$tag-shellsha") | $(med "$tag-shellsha") | $(mbps "$bytes" "$(med "$tag-shellsha")") |"
  echo "| \`openssl dgst -sha256\` alone (SHA extensions) | $(runs "$tag-sha") | $(med "$tag-sha") | $(mbps "$bytes" "$(med "$tag-sha")") |"
  echo "| \`dbseal restore --to-stdout > /dev/null\` (digests checked) | $(runs "$tag-restore") | $(med "$tag-restore") | $(mbps "$bytes" "$(med "$tag-restore")") |"
  if [ -n "${BENCH_BASE_BIN:-}" ]; then
    echo "| same restore, baseline binary | $(runs "$tag-baserestore") | $(med "$tag-baserestore") | $(mbps "$bytes" "$(med "$tag-baserestore")") |"
  fi
  echo "| \`age -d -i KEY artifact \| zstd -d > /dev/null\` (dbseal's artifact, no digest) | $(runs "$tag-shellrestore") | $(med "$tag-shellrestore") | $(mbps "$bytes" "$(med "$tag-shellrestore")") |"
  echo "| same, plus the plaintext's SHA-256 (\`tee >(openssl dgst -sha256)\`) | $(runs "$tag-shellrestoresha") | $(med "$tag-shellrestoresha") | $(mbps "$bytes" "$(med "$tag-shellrestoresha")") |"
  echo
  echo "Restore ratio (dbseal median / \`age -d | zstd -d\` median): **$(awk -v d="$(med "$tag-restore")" -v s="$(med "$tag-shellrestore")" 'BEGIN { printf "%.2f", d / s }')×** the shell's time (target: at most 1.10); against the shell pipeline that also computes the plaintext's SHA-256: $(awk -v d="$(med "$tag-restore")" -v s="$(med "$tag-shellrestoresha")" 'BEGIN { printf "%.2f", d / s }')×."
  read -r d s <"$R/$tag.stored"
  echo "Backup ratio (shell median / dbseal median): **$(ratio "$tag")** (target: at least 1.00)."
  echo "Stored: $d bytes by dbseal, $s by the shell pipeline (compression $(awk -v b="$bytes" -v s="$d" 'BEGIN { printf "%.1f", b / s }'):1)."
  echo "Peak RSS of the dbseal backups: $(cut -d' ' -f2 "$R/$tag-dbseal.times" | sort -n | tail -1 | awk '{ printf "%.1f", $1 / 1024 }') MiB."
}
throughput app "$APP"
throughput pgbench "$DUMP"

# 4. Peak RSS of backup and restore at two sizes.
declare -A B_T B_RSS R_T R_RSS
for size in small big app; do
  input=$DUMP; [ $size = small ] && input=$SMALL; [ $size = app ] && input=$APP
  rm -rf "$R/store"
  timed "backup-$size" sh -c '"$1" -q --json --store "file://$2" backup stdin -d bench -r "$3" <"$4" >"$5"' \
    sh "$BIN" "$R/store" "$RCPT" "$input" "$R/manifest-$size.json"
  read -r s rss <"$R/backup-$size.result"
  B_T[$size]=$s; B_RSS[$size]=$rss
  id=$(field "$R/manifest-$size.json" backup_id)
  timed "restore-$size" sh -c '"$1" -q --store "file://$2" restore "$3" -i "$4" --to-stdout' \
    sh "$BIN" "$R/store" "$id" "$R/key.txt"
  read -r s rss <"$R/restore-$size.result"
  R_T[$size]=$s; R_RSS[$size]=$rss
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
  echo "- Load average before / after: $LOAD_BEFORE / $LOAD_AFTER (other processes skew wall"
  echo "  times; the ratios compare runs interleaved in the same minutes)."
  echo "- Source tree: commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- backup-core cli || echo ' plus uncommitted changes in backup-core/ or cli/')."
  echo "- dbseal $("$BIN" --version | cut -d' ' -f2) (\`${BENCH_BIN:-target/release/dbseal}\`, release build unless BENCH_BIN was set), default settings (zstd -3, $(nproc) cores → $( [ "$(nproc)" -gt 1 ] && echo 2 || echo 0) zstd workers); zstd $(zstd -V | sed -n 's/.*v\([0-9.]*\).*/\1/p'), age $(age --version), $(openssl version | cut -d' ' -f1-2)."
  echo "- Inputs, read from the page cache, written to a local file system:"
  echo "  - **application dump**: plain \`pg_dump\` of the database \`bench/core/app-data.sql\` makes"
  echo "    (rows=$APP_ROWS: customers, orders with JSON lines, events with free text, UUIDs"
  echo "    and JSON): $APP_BYTES bytes ($(gib "$APP_BYTES") GiB);"
  echo "  - **pgbench dump**: plain \`pg_dump\` of \`pgbench -i -s $SCALE\`: $BIG_BYTES bytes ($(gib "$BIG_BYTES") GiB),"
  echo "    mostly blank-padded filler; the 0.5 GiB input is its first $SMALL_BYTES bytes."
  echo
  echo "## Throughput: application dump ($RUNS runs each, interleaved)"
  echo
  table app "$APP_BYTES"
  echo
  echo "## Throughput: pgbench dump ($RUNS runs each, interleaved)"
  echo
  table pgbench "$BIG_BYTES"
  echo
  echo "## Peak RSS of backup and restore"
  echo
  echo "| input | backup (s) | backup peak RSS | restore --to-stdout (s) | restore peak RSS |"
  echo "|---|---|---|---|---|"
  echo "| pgbench, 0.5 GiB | ${B_T[small]} | $(mib "${B_RSS[small]}") MiB | ${R_T[small]} | $(mib "${R_RSS[small]}") MiB |"
  echo "| pgbench, $(gib "$BIG_BYTES") GiB | ${B_T[big]} | $(mib "${B_RSS[big]}") MiB | ${R_T[big]} | $(mib "${R_RSS[big]}") MiB |"
  echo "| application, $(gib "$APP_BYTES") GiB | ${B_T[app]} | $(mib "${B_RSS[app]}") MiB | ${R_T[app]} | $(mib "${R_RSS[app]}") MiB |"
  echo
  echo "Target: under 64 MiB, independent of size. Peak RSS is the \"Maximum resident set size\""
  echo "of \`/usr/bin/time -v\` (the largest process of the command). For comparison, the shell"
  echo "pipeline's peak RSS (largest of zstd and age) was $(cut -d' ' -f2 "$R"/*-shell.times | sort -n | tail -1 | awk '{ printf "%.1f", $1 / 1024 }') MiB."
} >"$OUT"
echo "bench: wrote $OUT" >&2
cat "$OUT"
