#!/usr/bin/env bash
# Cancellation-to-exit benchmark (issue 16): a large restore of every driver is stopped
# with SIGTERM once it is loading; the time from the signal to dbseal's exit (rollback
# included) is measured, and the target is checked to be as before.
#
#   postgres: restore --create-db of a 5M-row table (≈ 0.6 GB of dump) — the created
#             database is dropped; and --replace of an existing database with it — the
#             staging database is dropped, the target untouched;
#   timescale: the same rows in a hypertable of daily chunks, --create-db and --replace
#             (where TimescaleDB is installed: no registry ships it; skipped otherwise);
#   redis:    restore --replace of 2M keys into db 3 of a private redis-server — the
#             staging database is flushed;
#   neo4j:    restore of 300k nodes into an empty ArcadeDB database over Bolt — what was
#             created is deleted (ArcadeDB stands in for Neo4j, which is not installable
#             here).
#
# The signal goes 1 s into the load (early: little to undo) and late, once two thirds
# are loaded (3.3M rows copied, 1.3M keys staged, 200k nodes created: for Neo4j, whose
# undo deletes what the import created, the undo grows with the load).
# Rounds are interleaved (postgres, redis, neo4j, postgres, …); medians are printed as a
# Markdown block for bench/RESULTS.md. Target: under 5 s each.
#
#   bench/cancel/run.sh                 # 3 rounds, early and late signals
#   BENCH_ROUNDS=5 bench/cancel/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ROUNDS=${BENCH_ROUNDS:-3}
DBSEAL=$ROOT/target/release/dbseal
if [ -z "${BENCH_NO_BUILD:-}" ] || [ ! -x "$DBSEAL" ]; then
  cargo build --release -p dbseal-cli 2>&1 | tail -n 1 >&2
fi
WORK=$(mktemp -d /tmp/dbseal-bench-cancel.XXXXXX)
chmod 755 "$WORK"
REDIS_PID=
cleanup() {
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  "$ROOT/scripts/services.sh" stop "$WORK/services" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mkdir -p "$WORK/services"
DBSEAL_TEST_PG_PORT=${BENCH_PG_PORT:-35432} DBSEAL_TEST_BOLT_PORT=${BENCH_BOLT_PORT:-37687} \
  DBSEAL_TEST_ARCADE_HTTP_PORT=${BENCH_ARCADE_HTTP_PORT:-32480} \
  "$ROOT/scripts/services.sh" start "$WORK/services" postgres bolt >"$WORK/services.log" 2>&1
# shellcheck disable=SC1091
source "$WORK/services/env.sh"
REDIS_PORT=${BENCH_REDIS_PORT:-36379}
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --enable-debug-command yes --dir "$WORK" >/dev/null 2>&1 &
REDIS_PID=$!
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

cd "$WORK"
"$DBSEAL" keygen -o id.txt >rcpt 2>/dev/null
export DBSEAL_SIGNING_KEY=$WORK/id.txt.minisign.key
export PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD NEO4J_PASSWORD=$DBSEAL_TEST_BOLT_PASSWORD NEO4J_USERNAME=$DBSEAL_TEST_BOLT_USER
PSQL="$DBSEAL_TEST_PG_BIN/psql -X -q -A -t"
PG=${DBSEAL_TEST_PG_URL%/postgres}
arcade() { # ArcadeDB's HTTP API (work-around: databases are made there, not with Cypher)
  curl -s -u "$DBSEAL_TEST_BOLT_USER:$DBSEAL_TEST_BOLT_PASSWORD" -X POST "$DBSEAL_TEST_ARCADE_HTTP/api/v1/$1" -d "$2"
}

echo "bench: building the data sets" >&2
$PSQL "$PG/postgres" -c "CREATE DATABASE big"
$PSQL "$PG/big" -c "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS a, md5((g*7)::text) AS b, repeat(md5(g::text), 2) AS c FROM generate_series(1, 5000000) g; ALTER TABLE t ADD PRIMARY KEY (id);"
$PSQL "$PG/postgres" -c "CREATE DATABASE tgtr"
$PSQL "$PG/tgtr" -c "CREATE TABLE keep AS SELECT 1 AS v"
TS=
if [ "$($PSQL "$PG/postgres" -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")" = 1 ]; then
  TS=1
  $PSQL "$PG/postgres" -c "CREATE DATABASE tsbig" -c "CREATE DATABASE tstgt"
  $PSQL "$PG/tsbig" -c "CREATE EXTENSION timescaledb" -c "CREATE TABLE m (t timestamptz NOT NULL, id bigint, a text, b text, c text)" \
    -c "SELECT create_hypertable('m', 't', chunk_time_interval => interval '1 day')" \
    -c "INSERT INTO m SELECT timestamptz '2026-01-01' + g * interval '1 second', g, md5(g::text), md5((g*7)::text), repeat(md5(g::text), 2) FROM generate_series(1, 5000000) g" >/dev/null
  $PSQL "$PG/tstgt" -c "CREATE EXTENSION timescaledb" -c "CREATE TABLE keep AS SELECT 1 AS v"
else
  echo "bench: TimescaleDB is not installed here: its rows are skipped" >&2
fi
redis-cli -p "$REDIS_PORT" DEBUG POPULATE 2000000 key 256 >/dev/null
redis-cli -p "$REDIS_PORT" -n 3 SET keep before >/dev/null
arcade server '{"command":"create database graphsrc"}' >/dev/null
arcade command/graphsrc '{"language":"cypher","command":"UNWIND range(1, 300000) AS i CREATE (:Person {id: i, name: \"person \" + toString(i), score: i / 3.0})"}' >/dev/null

S=(--store "$WORK/store" -q)
"$DBSEAL" "${S[@]}" backup postgres --url "$PG/big" -d pg -r "$(cat rcpt)" >/dev/null
[ -z "$TS" ] || "$DBSEAL" "${S[@]}" backup timescale --url "$PG/tsbig" -d ts -r "$(cat rcpt)" >/dev/null
"$DBSEAL" "${S[@]}" backup redis --url "redis://127.0.0.1:$REDIS_PORT" -d rd -r "$(cat rcpt)" >/dev/null
"$DBSEAL" "${S[@]}" backup neo4j --url "$DBSEAL_TEST_BOLT_URL" --database graphsrc -d neo -r "$(cat rcpt)" >/dev/null
id_of() { "$DBSEAL" "${S[@]}" --json list -d "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])'; }
PG_ID=$(id_of pg) RD_ID=$(id_of rd) NEO_ID=$(id_of neo)
TS_ID=
[ -z "$TS" ] || TS_ID=$(id_of ts)
# The late signal for TimescaleDB (its rows go in one COPY per chunk): half of an
# uncancelled restore's time after pg_restore started (two thirds reached the end of
# the data in one run: a signal after the artifact's clean end lets the restore finish).
TS_LATE=0
if [ -n "$TS" ]; then
  t0=$(date +%s%N)
  "$DBSEAL" "${S[@]}" restore "$TS_ID" --url "$PG/tsfull" --create-db -i id.txt >/dev/null
  TS_LATE=$(python3 -c "print(round(($(date +%s%N) - $t0) / 1e9 / 2, 1))")
  $PSQL "$PG/postgres" -c "DROP DATABASE tsfull"
fi
now() { date +%s%N; }

# run_one NAME READY_CMD CHECK_CMD DELAY -- dbseal args: starts the restore, waits for
# READY, DELAY s more, sends SIGTERM; prints the signal-to-exit ms; CHECK_CMD must
# succeed after.
run_one() {
  local name=$1 ready=$2 check=$3 delay=$4
  shift 5
  "$DBSEAL" "${S[@]}" "$@" >"$WORK/$name.out" 2>&1 &
  local pid=$! deadline=$((SECONDS + 300))
  CUR_PID=$pid
  until eval "$ready"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: $name restore ended before it loaded" >&2; cat "$WORK/$name.out" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "bench: $name never started loading" >&2; exit 1; }
    sleep 0.05
  done
  sleep "$delay"
  local t0 code
  t0=$(now)
  kill -TERM "$pid"
  code=0
  wait "$pid" || code=$?
  local ms=$((($(now) - t0) / 1000000))
  [ "$code" = 143 ] || { echo "bench: $name exited $code, expected 143" >&2; cat "$WORK/$name.out" >&2; exit 1; }
  eval "$check" || { echo "bench: $name left its target changed" >&2; exit 1; }
  echo "$ms"
}

pg_ready() { pgrep -P "$CUR_PID" pg_restore >/dev/null 2>&1; }
pg_check() { [ "$($PSQL "$PG/postgres" -c "SELECT count(*) FROM pg_database WHERE datname = 'tgt' OR datname LIKE '%dbseal%'")" = 0 ]; }
# --replace: the target still holds its own table, and no staging database is left.
kept() { [ "$($PSQL "$PG/$1" -c "SELECT count(*) FROM keep")" = 1 ] && pg_check; }
ts_check() { [ "$($PSQL "$PG/postgres" -c "SELECT count(*) FROM pg_database WHERE datname = 'tst' OR datname LIKE '%dbseal%'")" = 0 ]; }
rd_ready() { redis-cli -p "$REDIS_PORT" info keyspace | grep -qvE '^(db0|db3|#)' ; }
rd_check() { [ "$(redis-cli -p "$REDIS_PORT" info keyspace | grep -c '^db')" = 2 ] && [ "$(redis-cli -p "$REDIS_PORT" -n 3 dbsize)" = 1 ]; }
neo_ready() { arcade command/graphtgt '{"language":"cypher","command":"MATCH (n:Person) RETURN count(n) AS c"}' | grep -qv '"c":0'; }
pg_late() { [ "$($PSQL "$PG/postgres" -c "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy")" -gt 3300000 ]; }
rd_late() { [ "$(redis-cli -p "$REDIS_PORT" info keyspace | grep -vE '^(db0|db3|#)' | sed -n 's/.*keys=\([0-9]*\).*/\1/p' | head -n 1)" -gt 1300000 ] 2>/dev/null; }
neo_late() { arcade command/graphtgt '{"language":"cypher","command":"MATCH (n:Person) RETURN count(n) AS c"}' | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["result"][0]["c"] > 200000 else 1)' 2>/dev/null; }
neo_check() { arcade command/graphtgt '{"language":"cypher","command":"MATCH (n) RETURN count(n) AS c"}' | grep -q '"c":0'; }

declare -A T
for r in $(seq "$ROUNDS"); do
  for phase in early late; do
    # early: 1 s after loading began; late: at once when two thirds are loaded.
    if [ $phase = early ]; then set -- 1 pg_ready rd_ready neo_ready; else set -- 0 pg_late rd_late neo_late; fi
    T[pg,$phase]+="$(run_one pg "$2" pg_check "$1" -- restore "$PG_ID" --url "$PG/tgt" --create-db -i id.txt) "
    T[pgr,$phase]+="$(run_one pgr "$2" "kept tgtr" "$1" -- restore "$PG_ID" --url "$PG/tgtr" --replace --no-safety-backup -i id.txt) "
    if [ -n "$TS" ]; then
      tr=pg_ready; if [ $phase = early ]; then td=1; else td=$TS_LATE; fi
      T[ts,$phase]+="$(run_one ts "$tr" ts_check "$td" -- restore "$TS_ID" --url "$PG/tst" --create-db -i id.txt) "
      T[tsr,$phase]+="$(run_one tsr "$tr" "kept tstgt && ts_check" "$td" -- restore "$TS_ID" --url "$PG/tstgt" --replace --no-safety-backup -i id.txt) "
    fi
    T[rd,$phase]+="$(run_one rd "$3" rd_check "$1" -- restore "$RD_ID" --url "redis://127.0.0.1:$REDIS_PORT/3" --db 0:3 --replace --no-safety-backup -i id.txt) "
    arcade server '{"command":"create database graphtgt"}' >/dev/null
    T[neo,$phase]+="$(run_one neo "$4" neo_check "$1" -- restore "$NEO_ID" --url "$DBSEAL_TEST_BOLT_URL" --database graphtgt -i id.txt) "
    arcade server '{"command":"drop database graphtgt"}' >/dev/null
    echo "bench: round $r, $phase: postgres ${T[pg,$phase]}/ postgres --replace ${T[pgr,$phase]}/ timescale ${T[ts,$phase]:-}${T[tsr,$phase]:-}/ redis ${T[rd,$phase]}/ neo4j ${T[neo,$phase]}" >&2
  done
done
median() { printf '%s\n' $@ | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cat <<MD
### Cancellation to exit (bench/cancel/run.sh, $(date -u +%Y-%m-%d), $(nproc) cores, $ROUNDS interleaved rounds)

SIGTERM sent into the load of a large restore (early: 1 s in; late: once two thirds were
loaded, TimescaleDB at half an uncancelled restore's time); time until dbseal exited (143)
with its target rolled back (checked after each round).

| driver | restore | signal | runs (ms) | median |
|--------|---------|--------------|-----------|--------|
| PostgreSQL | --create-db, 5M rows | 1 s in | ${T[pg,early]}| $(median ${T[pg,early]}) ms |
| PostgreSQL | --create-db, 5M rows | 3.3M rows copied | ${T[pg,late]}| $(median ${T[pg,late]}) ms |
| PostgreSQL | --replace (staging + rename), 5M rows | 1 s in | ${T[pgr,early]}| $(median ${T[pgr,early]}) ms |
| PostgreSQL | --replace (staging + rename), 5M rows | 3.3M rows copied | ${T[pgr,late]}| $(median ${T[pgr,late]}) ms |
$(if [ -n "$TS" ]; then cat <<TSMD
| TimescaleDB | --create-db, 5M rows in daily chunks | 1 s in | ${T[ts,early]}| $(median ${T[ts,early]}) ms |
| TimescaleDB | --create-db, 5M rows in daily chunks | ${TS_LATE} s in (half) | ${T[ts,late]}| $(median ${T[ts,late]}) ms |
| TimescaleDB | --replace (staging + rename) | 1 s in | ${T[tsr,early]}| $(median ${T[tsr,early]}) ms |
| TimescaleDB | --replace (staging + rename) | ${TS_LATE} s in (half) | ${T[tsr,late]}| $(median ${T[tsr,late]}) ms |
TSMD
else echo "| TimescaleDB | – | – | not installed on this machine: skipped | – |"; fi)
| Redis | --replace, 2M keys | 1 s in | ${T[rd,early]}| $(median ${T[rd,early]}) ms |
| Redis | --replace, 2M keys | 1.3M keys staged | ${T[rd,late]}| $(median ${T[rd,late]}) ms |
| Neo4j (ArcadeDB) | empty database, 300k nodes | 1 s in | ${T[neo,early]}| $(median ${T[neo,early]}) ms |
| Neo4j (ArcadeDB) | empty database, 300k nodes | 200k nodes created | ${T[neo,late]}| $(median ${T[neo,late]}) ms |
MD
