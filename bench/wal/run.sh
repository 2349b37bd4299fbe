#!/usr/bin/env bash
# Parallel WAL benchmark (issue 21): `wal-push --concurrency` and `wal-fetch` prefetch
# against SeaweedFS's S3 API, in ONE run, on real WAL of a private PostgreSQL 15 cluster.
#
#   1. Archiving: BENCH_SEGMENTS segments (default 1,000 of 1 MiB: `initdb
#      --wal-segsize=1`, so that a thousand segments are 1 GiB of WAL that pgbench writes
#      in seconds) are archived the way PostgreSQL's archiver does it — one
#      `dbseal wal-push` process per file, oldest first, `.ready` renamed `.done` after
#      each success — with --concurrency 1 and --concurrency BENCH_CONCURRENCY (4).
#      Every round archives into a datastore of its own; wal-verify checks each.
#   2. Recovery: the base backup taken before the load is restored with `dbseal restore
#      --pgdata --latest`, and the server started on it, with DBSEAL_WAL_CONCURRENCY 1
#      and BENCH_CONCURRENCY in restore_command's env file; the time from start until the
#      server is promoted (every segment fetched and replayed), and the row count checked.
#   3. The same archiving with the default 16 MiB segments (BENCH_SEGMENTS_16, 80), where
#      the work per file is mostly CPU (zstd, age, SHA-256) rather than round trips.
#
# Rounds are interleaved (1, N, 1, N, …); medians are printed as a Markdown block.
#
#   bench/wal/run.sh
#   BENCH_ROUNDS=1 BENCH_SEGMENTS=100 BENCH_SEGMENTS_16=10 bench/wal/run.sh   # smoke run
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ROUNDS=${BENCH_ROUNDS:-3}
SEGS=${BENCH_SEGMENTS:-1000}
SEGS16=${BENCH_SEGMENTS_16:-80}
CONC=${BENCH_CONCURRENCY:-4}
PORT=${BENCH_PG_PORT:-55512}
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
export PATH=$PG_BIN:$PATH
if [ -n "${BENCH_DBSEAL:-}" ]; then
  DBSEAL=$BENCH_DBSEAL
else
  cargo build --release -p dbseal-cli 2>&1 | tail -n 1 >&2
  DBSEAL=$ROOT/target/release/dbseal
fi

WORK=$(mktemp -d /tmp/dbseal-bench-wal.XXXXXX)
chmod 755 "$WORK"
AS=()
[ "$(id -u)" = 0 ] && AS=(runuser -u postgres --)
RUNNING=()
cleanup() {
  local d
  for d in "${RUNNING[@]}"; do "${AS[@]}" pg_ctl -D "$d" -m immediate -w stop >/dev/null 2>&1 || true; done
  "$ROOT/scripts/services.sh" stop "$WORK/services" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mk() { mkdir -p "$@"; [ ${#AS[@]} -eq 0 ] || chown postgres:postgres "$@"; }
mk "$WORK/services" "$WORK/sock" "$WORK/rdir" "$WORK/logs"
DBSEAL_TEST_S3_PORT=${BENCH_S3_PORT:-38533} "$ROOT/scripts/services.sh" start "$WORK/services" s3 >"$WORK/services.log" 2>&1
# shellcheck disable=SC1091
source "$WORK/services/env.sh"

"$DBSEAL" keygen -o "$WORK/key.txt" >"$WORK/recipient" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/recipient" | head -1)
export DBSEAL_SIGNING_KEY=$WORK/key.txt.minisign.key
STORE=s3://backups/bench-wal
cat >"$WORK/wal.env" <<ENV
DBSEAL_STORE=$STORE
DBSEAL_RECIPIENTS=$RECIPIENT
DBSEAL_IDENTITY=$WORK/key.txt
DBSEAL_SIGNING_KEY=$DBSEAL_SIGNING_KEY
AWS_ENDPOINT=$DBSEAL_TEST_S3_ENDPOINT
AWS_ALLOW_HTTP=true
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=$DBSEAL_TEST_S3_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$DBSEAL_TEST_S3_SECRET_KEY
ENV
chmod 600 "$WORK/wal.env"
[ ${#AS[@]} -eq 0 ] || chown postgres "$WORK/wal.env" "$WORK/key.txt" "$DBSEAL_SIGNING_KEY"
export AWS_ENDPOINT=$DBSEAL_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=$DBSEAL_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$DBSEAL_TEST_S3_SECRET_KEY
export PGHOST=$WORK/sock PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres

# make_cluster NAME SEGSIZE_MB: a cluster copying its WAL to $WORK/NAME-raw.
make_cluster() {
  local data=$WORK/$1
  mk "$WORK/$1-raw" "$data"
  "${AS[@]}" initdb -D "$data" -U postgres --auth=trust -E UTF8 --no-locale --wal-segsize="$2" >/dev/null
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_size = 4GB
archive_mode = on
archive_command = 'cp %p $WORK/$1-raw/%f'
CONF
  "${AS[@]}" pg_ctl -D "$data" -l "$WORK/logs/$1.log" -w start >/dev/null || { tail -5 "$WORK/logs/$1.log" >&2; exit 1; }
  RUNNING+=("$data")
}
wait_archived() {
  local seg
  psql -qc "CREATE TABLE IF NOT EXISTS _b(x int); INSERT INTO _b VALUES (1)"
  seg=$(psql -Atc "SELECT pg_walfile_name(pg_switch_wal())")
  while [ "$(psql -Atc "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" != t ]; do sleep 0.2; done
}
stop_cluster() { "${AS[@]}" pg_ctl -D "$1" -m fast -w stop >/dev/null; RUNNING=("${RUNNING[@]/$1/}"); }
secs() { echo "($2 - $1) / 1000000000" | bc -l | xargs printf '%.2f'; }

# --- the WAL: 1 MiB segments, a base backup, then the load --------------------------------
echo "bench: 1 MiB segments: base backup, then pgbench until $SEGS segments are written..." >&2
make_cluster c1 1
pgbench -i -s 2 -q >/dev/null 2>&1
"$DBSEAL" --store "$STORE" -q backup postgres --physical --fast-checkpoint \
  --host "$WORK/sock" --port "$PORT" --user postgres --dbname postgres -d rec -r "$RECIPIENT" >/dev/null 2>"$WORK/backup.err" ||
  { cat "$WORK/backup.err" >&2; exit 1; }
BACKUP_ID=$("$DBSEAL" --store "$STORE" --json list -d rec | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
FIRST_AFTER=$(psql -Atc "SELECT pg_walfile_name(pg_current_wal_lsn())")
SCALE=2
while [ "$(find "$WORK/c1-raw" -name '0*' ! -name '*.*' -newer "$WORK/backup.err" | wc -l)" -lt $((SEGS + 20)) ]; do
  SCALE=$((SCALE + 10))
  pgbench -i -s "$SCALE" -q >/dev/null 2>&1
done
ROWS=$(psql -Atc "SELECT count(*) FROM pgbench_accounts")
wait_archived
stop_cluster "$WORK/c1"
mapfile -t RAW < <(cd "$WORK/c1-raw" && ls | grep -E '^[0-9A-F]{24}$' | sort)
# Every segment from the base backup's on goes into `rec` (untimed), for the recovery.
mk "$WORK/rec/pg_wal/archive_status"
for f in "${RAW[@]}"; do ln "$WORK/c1-raw/$f" "$WORK/rec/pg_wal/$f"; touch "$WORK/rec/pg_wal/archive_status/$f.ready"; done
(cd "$WORK/rec" && for f in "${RAW[@]}"; do
  "$DBSEAL" -q wal-push --env-file "$WORK/wal.env" -d rec --concurrency 8 "pg_wal/$f" >/dev/null
  mv "pg_wal/archive_status/$f.ready" "pg_wal/archive_status/$f.done"
done)
PICK=()
for f in "${RAW[@]}"; do [[ "$f" > "$FIRST_AFTER" ]] && PICK+=("$f"); done
PICK=("${PICK[@]:0:$SEGS}")
SEG_BYTES=$(stat -c %s "$WORK/c1-raw/${PICK[0]}")

# archive_round RAWDIR DATASTORE CONCURRENCY FILES...: the archiver's loop, timed (s).
archive_round() {
  local raw=$1 ds=$2 c=$3 dir t0 t1 f
  shift 3
  dir=$WORK/round-$ds
  mk "$dir/pg_wal/archive_status"
  for f in "$@"; do ln "$raw/$f" "$dir/pg_wal/$f"; : >"$dir/pg_wal/archive_status/$f.ready"; done
  t0=$(date +%s%N)
  (cd "$dir" && for f in "$@"; do
    "$DBSEAL" -q wal-push --env-file "$WORK/wal.env" -d "$ds" --concurrency "$c" "pg_wal/$f" >/dev/null
    mv "pg_wal/archive_status/$f.ready" "pg_wal/archive_status/$f.done"
  done)
  t1=$(date +%s%N)
  local n
  n=$("$DBSEAL" --store "$STORE" --json wal-verify -d "$ds" --level metadata | python3 -c 'import json,sys; print(json.load(sys.stdin)["segments"])')
  [ "$n" = $# ] || { echo "bench: $ds holds $n segments, expected $#" >&2; exit 1; }
  rm -rf "$dir"
  secs "$t0" "$t1"
}

# recover_round CONCURRENCY: restore --pgdata, start, time until promoted (s).
recover_round() {
  local c=$1 data=$WORK/rdir/restored t0 t1
  "$DBSEAL" --store "$STORE" -q restore "$BACKUP_ID" -i "$WORK/key.txt" --pgdata "$data" --latest >/dev/null
  echo "DBSEAL_WAL_CONCURRENCY=$c" >>"$data.dbseal-restore.env"
  t0=$(date +%s%N)
  "${AS[@]}" pg_ctl -D "$data" -l "$WORK/logs/restored-$c.log" start >/dev/null
  RUNNING+=("$data")
  local deadline=$((SECONDS + 1800))
  until [ "$(psql -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
    if [ $SECONDS -gt $deadline ] || ! "${AS[@]}" pg_ctl -D "$data" status >/dev/null 2>&1; then
      echo "bench: the restored server did not finish recovery" >&2
      tail -20 "$WORK/logs/restored-$c.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  t1=$(date +%s%N)
  local rows
  rows=$(psql -Atc "SELECT count(*) FROM pgbench_accounts")
  [ "$rows" = "$ROWS" ] || { echo "bench: recovered $rows rows, expected $ROWS" >&2; exit 1; }
  stop_cluster "$data"
  rm -rf "$data" "$data.dbseal-restore.env"
  secs "$t0" "$t1"
}

echo "bench: 16 MiB segments: pgbench until $SEGS16 segments are written..." >&2
make_cluster c16 16
S16=2
while [ "$(find "$WORK/c16-raw" -name '0*' ! -name '*.*' | wc -l)" -lt "$SEGS16" ]; do
  S16=$((S16 + 20))
  pgbench -i -s "$S16" -q >/dev/null 2>&1
done
wait_archived
stop_cluster "$WORK/c16"
mapfile -t RAW16 < <(cd "$WORK/c16-raw" && ls | grep -E '^[0-9A-F]{24}$' | sort | head -n "$SEGS16")

declare -A T
for r in $(seq "$ROUNDS"); do
  for c in 1 "$CONC"; do
    T[push,$c]+="$(archive_round "$WORK/c1-raw" "p${c}r$r" "$c" "${PICK[@]}") "
    T[rec,$c]+="$(recover_round "$c") "
    T[p16,$c]+="$(archive_round "$WORK/c16-raw" "q${c}r$r" "$c" "${RAW16[@]}") "
    echo "bench: round $r, concurrency $c: push ${T[push,$c]}/ recovery ${T[rec,$c]}/ push 16 MiB ${T[p16,$c]}" >&2
  done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
rate() { echo "$1 * $2 / 1048576 / $3" | bc -l | xargs printf '%.0f'; }
P1=$(median ${T[push,1]}) PN=$(median ${T[push,$CONC]})
R1=$(median ${T[rec,1]}) RN=$(median ${T[rec,$CONC]})
Q1=$(median ${T[p16,1]}) QN=$(median ${T[p16,$CONC]})
N16=${#RAW16[@]}
cat <<MD
### Parallel WAL (bench/wal/run.sh, $(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | awk -F': *' '/Model name/ {print $2; exit}'), $ROUNDS interleaved rounds)

Store: SeaweedFS S3 on 127.0.0.1. WAL of pgbench -i on a private PostgreSQL $(postgres --version | awk '{print $3}') cluster.
Archiving runs PostgreSQL's archiver loop: one \`dbseal wal-push\` process per file, oldest first.

| | runs (s) | median | throughput | ratio |
|---|---|---:|---:|---:|
| archive $SEGS × 1 MiB segments, --concurrency 1 | ${T[push,1]}| $P1 s | $(rate "$SEGS" "$SEG_BYTES" "$P1") MiB/s, $(echo "$SEGS / $P1" | bc -l | xargs printf '%.0f') files/s | 1.00 |
| archive $SEGS × 1 MiB segments, --concurrency $CONC | ${T[push,$CONC]}| $PN s | $(rate "$SEGS" "$SEG_BYTES" "$PN") MiB/s, $(echo "$SEGS / $PN" | bc -l | xargs printf '%.0f') files/s | **$(ratio "$P1" "$PN")× the throughput** |
| recovery through ${#RAW[@]} × 1 MiB segments, DBSEAL_WAL_CONCURRENCY=1 | ${T[rec,1]}| $R1 s | | 1.00 |
| recovery through ${#RAW[@]} × 1 MiB segments, DBSEAL_WAL_CONCURRENCY=$CONC (prefetch) | ${T[rec,$CONC]}| $RN s | | **$(ratio "$RN" "$R1")× the time** |
| archive $N16 × 16 MiB segments, --concurrency 1 | ${T[p16,1]}| $Q1 s | $(rate "$N16" 16777216 "$Q1") MiB/s | 1.00 |
| archive $N16 × 16 MiB segments, --concurrency $CONC | ${T[p16,$CONC]}| $QN s | $(rate "$N16" 16777216 "$QN") MiB/s | $(ratio "$Q1" "$QN")× the throughput |

Recovery: from \`pg_ctl start\` on the restored base backup to the promoted server
($ROWS pgbench_accounts rows checked after each round).
MD
