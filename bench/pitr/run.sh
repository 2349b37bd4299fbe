#!/usr/bin/env bash
# PITR benchmark (issue 9, "Measure"), in ONE run on a private PostgreSQL 15 cluster
# with 16 MiB WAL segments:
#
#   1. wal-push per 16 MiB segment, process start included, on real WAL (the WAL that
#      pgbench -i -s 100 writes, full-page images included): latency (mean, p50, p95,
#      max) and throughput, against the physical limit of copying the same segment
#      uncompressed into the same file system (`cp`, and `cp` + fsync of the copy, since
#      wal-push makes the archived file durable before it reports success).
#   2. Base backup of pgbench-100: `dbseal backup postgres --physical` against
#      `pg_basebackup -Ft -z` to a file (and plain `pg_basebackup -Ft` as the floor).
#   3. Keeping up: pgbench TPC-B for BENCH_SECONDS with archive_command = dbseal
#      wal-push; WAL rate, the largest archive backlog (.ready files) seen, and the time
#      to catch up after the run.
#
# Prints a Markdown block for bench/pitr/RESULTS.md.
#
#   bench/pitr/run.sh                       # full run (scale 100)
#   BENCH_SCALE=10 BENCH_SEGMENTS=10 BENCH_SECONDS=10 bench/pitr/run.sh   # smoke run
#
# Uses the release build of the CLI (built if missing; BENCH_DBSEAL=path overrides it).
# Needs pgbench, GNU time, bc.
# Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SCALE=${BENCH_SCALE:-100}
SEGMENTS=${BENCH_SEGMENTS:-40}
SECONDS_RUN=${BENCH_SECONDS:-60}
PORT=${BENCH_PG_PORT:-55498}
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
export PATH=$PG_BIN:$PATH

for tool in pgbench bc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 2; }
done
if [ -n "${BENCH_DBSEAL:-}" ]; then
  DBSEAL=$BENCH_DBSEAL # e.g. the debug build, for a smoke run of this script
else
  cargo build --release -p dbseal-cli 2>&1 | tail -n 1 >&2
  DBSEAL=$ROOT/target/release/dbseal
fi

WORK=$(mktemp -d /tmp/dbseal-bench-pitr.XXXXXX)
chmod 755 "$WORK"
AS=()
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
  chown postgres:postgres "$WORK"
fi
DATA=$WORK/data
cleanup() {
  "${AS[@]}" pg_ctl -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mk() { mkdir -p "$@"; [ ${#AS[@]} -eq 0 ] || chown postgres:postgres "$@"; }
mk "$WORK/raw" "$WORK/store/bench" "$WORK/sock"

"$DBSEAL" keygen -o "$WORK/key.txt" >"$WORK/recipient" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/recipient" | head -1)
export DBSEAL_SIGNING_KEY=$WORK/key.txt.minisign.key
printf 'DBSEAL_STORE=%s\nDBSEAL_RECIPIENTS=%s\nDBSEAL_SIGNING_KEY=%s\n' "$WORK/store" "$RECIPIENT" "$DBSEAL_SIGNING_KEY" >"$WORK/wal.env"
[ ${#AS[@]} -eq 0 ] || chown postgres "$WORK/wal.env" "$WORK/key.txt" "$DBSEAL_SIGNING_KEY"

echo "bench: initdb and pgbench -i -s $SCALE (archive_command = cp, to collect real WAL)..." >&2
"${AS[@]}" initdb -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_size = 4GB
archive_mode = on
archive_command = 'cp %p $WORK/raw/%f'
CONF
"${AS[@]}" pg_ctl -D "$DATA" -l "$WORK/server.log" -w start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
T0=$(date +%s.%N)
pgbench -i -s "$SCALE" -q >/dev/null 2>&1
T1=$(date +%s.%N)
DB_SIZE=$(psql -Atc "SELECT pg_database_size('postgres')")

wait_archived() { # waits until the segment in use now is archived
  local seg
  seg=$(psql -Atc "SELECT pg_walfile_name(pg_switch_wal())")
  while [ "$(psql -Atc "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" != t ]; do
    sleep 0.2
  done
}
psql -qc "CREATE TABLE IF NOT EXISTS _bench(x int); INSERT INTO _bench VALUES (1)"
wait_archived
RAW_COUNT=$(find "$WORK/raw" -maxdepth 1 -type f ! -name '*.*' | wc -l)
RAW_BYTES=$(find "$WORK/raw" -maxdepth 1 -type f ! -name '*.*' -printf '%s\n' | paste -sd+ | bc)
LOAD_SECS=$(echo "$T1 - $T0" | bc -l)

# --- 1. wal-push latency and throughput ---------------------------------------------
mapfile -t ALL < <(find "$WORK/raw" -maxdepth 1 -type f -name '000000010*' ! -name '*.*' | sort)
FROM=$(( ${#ALL[@]} / 4 ))
PICK=("${ALL[@]:$FROM:$SEGMENTS}")
N=${#PICK[@]}
mk "$WORK/push-store" "$WORK/push-store-l1" "$WORK/cp-store" "$WORK/cpsync-store"
now_ns() { date +%s%N; }
# stats FILE: mean p50 p95 max of the millisecond values in FILE
stats() {
  sort -n "$1" | awk '{v[NR]=$1; s+=$1} END {
    p50=v[int((NR+1)/2)]; p95=v[int(NR*0.95+0.999)]; if (p95=="") p95=v[NR];
    printf "%.0f %.0f %.0f %.0f", s/NR, p50, p95, v[NR] }'
}
bench_cmd() { # name, then a function taking the segment path
  local out=$WORK/lat-$1 f t0 t1
  : >"$out"
  for f in "${PICK[@]}"; do
    t0=$(now_ns); "$2" "$f"; t1=$(now_ns)
    echo "($t1 - $t0) / 1000000" | bc -l >>"$out"
  done
}
push3() { "$DBSEAL" --store "$WORK/push-store" -q wal-push -d bench -r "$RECIPIENT" "$1"; }
push1() { "$DBSEAL" --store "$WORK/push-store-l1" -q wal-push -d bench -r "$RECIPIENT" --zstd-level 1 "$1"; }
copy() { cp "$1" "$WORK/cp-store/"; }
copysync() { cp "$1" "$WORK/cpsync-store/" && sync "$WORK/cpsync-store/$(basename "$1")"; }
echo "bench: wal-push x $N segments (zstd 3, zstd 1), cp, cp + fsync..." >&2
bench_cmd push3 push3
bench_cmd push1 push1
bench_cmd copy copy
bench_cmd copysync copysync
# Peak RSS of one wal-push (a segment not pushed yet).
/usr/bin/time -v -o "$WORK/push.time" "$DBSEAL" --store "$WORK/push-store" -q wal-push -d bench -r "$RECIPIENT" "${ALL[$((FROM + N))]:-${ALL[-1]}}" >/dev/null 2>&1 || true
RSS_PUSH=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/push.time")
SEG_BYTES=$(stat -c %s "${PICK[0]}")
stored_of() { # store: total stored bytes of the picked segments
  local f t=0
  for f in "${PICK[@]}"; do
    t=$((t + $(stat -c %s "$1/bench/wal/00000001/$(basename "$f").zst.age")))
  done
  echo "$t"
}
STORED3=$(stored_of "$WORK/push-store")
STORED1=$(stored_of "$WORK/push-store-l1")
row() { # label, latency file
  local s mean p50 p95 max total mibs
  read -r mean p50 p95 max <<<"$(stats "$WORK/lat-$2")"
  total=$(paste -sd+ "$WORK/lat-$2" | bc -l)
  mibs=$(echo "$N * $SEG_BYTES / 1048576 / ($total / 1000)" | bc -l | xargs printf '%.0f')
  echo "| $1 | $mean | $p50 | $p95 | $max | $mibs |"
}

# --- 2. base backups ------------------------------------------------------------------
psql -qc "ALTER SYSTEM SET archive_command = '$DBSEAL wal-push --env-file $WORK/wal.env --datastore bench %p'" -c "SELECT pg_reload_conf()" >/dev/null
wait_archived
echo "bench: dbseal backup postgres --physical..." >&2
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l | xargs printf '%.1f'; }
T_DBSEAL=$(secs /usr/bin/time -v -o "$WORK/backup.time" "$DBSEAL" --store "$WORK/store" -q backup postgres \
  --physical --fast-checkpoint --host 127.0.0.1 --port "$PORT" --user postgres --dbname postgres \
  -d bench -r "$RECIPIENT")
RSS_BACKUP=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/backup.time")
ART=$(find "$WORK/store/bench" -name 'data.tar.zst.age')
S_DBSEAL=$(stat -c %s "$ART")
echo "bench: pg_basebackup -Ft -z..." >&2
T_PGBBZ=$(secs pg_basebackup -D "$WORK/pgbb-z" -Ft -z -X none -c fast)
S_PGBBZ=$(stat -c %s "$WORK/pgbb-z/base.tar.gz")
echo "bench: pg_basebackup -Ft..." >&2
T_PGBB=$(secs pg_basebackup -D "$WORK/pgbb" -Ft -X none -c fast)
S_PGBB=$(stat -c %s "$WORK/pgbb/base.tar")
rm -rf "$WORK/pgbb" "$WORK/pgbb-z"

# --- 3. keeping up under load -----------------------------------------------------------
echo "bench: pgbench TPC-B for ${SECONDS_RUN}s with archive_command = dbseal wal-push..." >&2
L0=$(psql -Atc "SELECT pg_current_wal_lsn()")
MAXREADY=0
pgbench -c 4 -j 2 -T "$SECONDS_RUN" -n >"$WORK/pgbench.out" 2>&1 &
PGB=$!
while kill -0 "$PGB" 2>/dev/null; do
  R=$(find "$DATA/pg_wal/archive_status" -name '*.ready' 2>/dev/null | wc -l)
  [ "$R" -gt "$MAXREADY" ] && MAXREADY=$R
  sleep 0.5
done
wait "$PGB"
L1=$(psql -Atc "SELECT pg_current_wal_lsn()")
WAL_MB=$(psql -Atc "SELECT round(pg_wal_lsn_diff('$L1', '$L0') / 1048576.0, 0)")
TPS=$(awk '/^tps/ {print int($3); exit}' "$WORK/pgbench.out")
C0=$(date +%s.%N)
wait_archived
C1=$(date +%s.%N)
CATCHUP=$(echo "$C1 - $C0" | bc -l | xargs printf '%.1f')
FAILED=$(psql -Atc "SELECT failed_count FROM pg_stat_archiver")
"$DBSEAL" --store "$WORK/store" -q wal-verify -d bench --level metadata >/dev/null && VERIFY=ok || VERIFY=FAILED

mib() { echo "$1 / 1048576" | bc -l | xargs printf '%.0f'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
cat <<EOF

### $(date -u +%Y-%m-%d) — $(nproc) cores, $(lscpu | awk -F': *' '/Model name/ {print $2; exit}')

Private PostgreSQL $(postgres --version | awk '{print $3}') cluster, 16 MiB segments, pgbench scale $SCALE
(database $(mib "$DB_SIZE") MiB; the load wrote $RAW_COUNT segments, $(mib "$RAW_BYTES") MiB of WAL, in $(printf '%.0f' "$LOAD_SECS") s).

**wal-push per 16 MiB segment** ($N real segments from the middle of the load, one process per
segment as archive_command runs it; file store on the same file system; page cache warm):

| per segment | mean ms | p50 ms | p95 ms | max ms | MiB/s |
|---|---:|---:|---:|---:|---:|
$(row "dbseal wal-push (zstd 3, age, SHA-256, fsync)" push3)
$(row "dbseal wal-push --zstd-level 1" push1)
$(row "cp (uncompressed, no fsync)" copy)
$(row "cp + fsync of the copy" copysync)

Stored size: zstd 3 $(ratio "$STORED3" "$((N * SEG_BYTES))")× of the WAL, zstd 1 $(ratio "$STORED1" "$((N * SEG_BYTES))")×. Peak RSS of one wal-push: $(echo "${RSS_PUSH:-0} / 1024" | bc) MiB.

**Base backup of pgbench-$SCALE** (fast checkpoint, same run):

| base backup | wall s | stored MiB | dbseal / this |
|---|---:|---:|---:|
| dbseal backup postgres --physical (zstd 3, age, SHA-256, manifest) | $T_DBSEAL | $(mib "$S_DBSEAL") | 1.00 |
| pg_basebackup -Ft -z to a file (gzip, no encryption) | $T_PGBBZ | $(mib "$S_PGBBZ") | $(ratio "$T_DBSEAL" "$T_PGBBZ") |
| pg_basebackup -Ft to a file (no compression) | $T_PGBB | $(mib "$S_PGBB") | $(ratio "$T_DBSEAL" "$T_PGBB") |

Peak RSS of dbseal during the base backup: $(echo "${RSS_BACKUP:-0} / 1024" | bc) MiB.

**Keeping up**: pgbench TPC-B, 4 clients, ${SECONDS_RUN} s, $TPS tps, $WAL_MB MiB of WAL
($(echo "$WAL_MB / $SECONDS_RUN" | bc -l | xargs printf '%.1f') MiB/s) archived by dbseal wal-push: largest backlog
$MAXREADY segment(s) waiting (.ready), caught up ${CATCHUP} s after the run, $FAILED failed
archive attempts; wal-verify: $VERIFY.
EOF
