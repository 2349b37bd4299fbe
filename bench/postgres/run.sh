#!/usr/bin/env bash
# PostgreSQL backup/restore benchmark (issue 3, "Measure"): pgbench scale 100 plus a
# text-heavy table, in ONE run:
#
#   backup:  dbseal backup postgres (zstd-3, age, SHA-256, file store)
#            vs pg_dump -Fc                                   (default gzip, no encryption)
#            vs pg_dump -Fc | gzip | openssl enc -aes-256-cbc -pbkdf2   (the runbook)
#            vs pg_dump -Fc -Z0 | zstd -3 -T1 | age -r KEY    (same stages, shell pipeline)
#   restore: dbseal restore --create-db  vs  pg_restore --single-transaction of the
#            pg_dump -Fc file
#
# Prints wall times, sizes, dbseal's peak RSS (/usr/bin/time -v) and the ratios, as a
# Markdown block to paste into bench/postgres/RESULTS.md.
#
#   bench/postgres/run.sh            # starts its own PostgreSQL 15 with scripts/services.sh
#   BENCH_SCALE=1 BENCH_DOC_ROWS=2000 BENCH_NO_BUILD=1 bench/postgres/run.sh   # smoke run
#
# Uses the release build of the CLI (built if missing). Needs pgbench, zstd, age,
# openssl, gzip and GNU time. Run it on an otherwise idle machine; BENCH_ROUNDS (3)
# interleaved rounds of every step, medians reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SCALE=${BENCH_SCALE:-100}
DOC_ROWS=${BENCH_DOC_ROWS:-1000000}

for tool in pgbench zstd age age-keygen openssl gzip /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done
DBSEAL=$ROOT/target/release/dbseal
# BENCH_NO_BUILD=1 reuses an existing release binary (a release build takes minutes).
if [ -z "${BENCH_NO_BUILD:-}" ] || [ ! -x "$DBSEAL" ]; then
  cargo build --release -p dbseal-cli 2>&1 | tail -n 1
fi

WORK=$(mktemp -d /tmp/dbseal-bench-pg.XXXXXX)
chmod 755 "$WORK" # initdb runs as the postgres user and must reach its data directory
cleanup() {
  "$ROOT/scripts/services.sh" stop "$WORK/services" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
# Own server on its own port, so a running test server is not disturbed.
export DBSEAL_TEST_PG_PORT=${BENCH_PG_PORT:-55499}
"$ROOT/scripts/services.sh" start "$WORK/services" postgres >/dev/null
# shellcheck disable=SC1091
source "$WORK/services/env.sh"
export PGHOST=127.0.0.1 PGPORT=$DBSEAL_TEST_PG_PORT PGUSER=postgres PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD
export PATH=$DBSEAL_TEST_PG_BIN:$PATH
DB=bench
URL=postgres://postgres@127.0.0.1:$PGPORT

echo "bench: loading pgbench scale $SCALE and $DOC_ROWS text rows..." >&2
createdb "$DB"
pgbench -i -s "$SCALE" -q "$DB" >/dev/null 2>&1
psql -q -d "$DB" <<SQL
CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text);
INSERT INTO docs
SELECT g, 'Document ' || g,
       (SELECT string_agg((ARRAY['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'backup', 'database',
                                 'sealed', 'artifact', 'restore', 'verify', 'postgres', 'table',
                                 'index', 'query', 'stream', 'Zürich', 'naïve', 'ärger', 'x'])[1 + floor(random() * 20)::int]
                          || CASE WHEN random() < 0.08 THEN E'\n' ELSE ' ' END, '')
        FROM generate_series(1, 30 + g % 40))
FROM generate_series(1, $DOC_ROWS) g;
VACUUM ANALYZE;
SQL
DB_SIZE=$(psql -Atc "SELECT pg_database_size('$DB')" "$DB")

age-keygen -o "$WORK/key.txt" 2>/dev/null
# dbseal signs its manifests: a signing key of its own (the identity above stays age's).
"$DBSEAL" -q keygen -o "$WORK/dbseal-key.txt" >/dev/null
export DBSEAL_SIGNING_KEY=$WORK/dbseal-key.txt.minisign.key
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/key.txt" | head -1)
echo "bench-passphrase-not-a-secret" >"$WORK/pass"
STORE=$WORK/store

# secs CMD... : runs CMD, prints its wall time in seconds (3 decimals).
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l | xargs printf '%.2f'
}
size() { stat -c %s "$1"; }
drop_caches() { sync; }

ROUNDS=${BENCH_ROUNDS:-3}
# Every step runs ROUNDS times, interleaved (round 1 of each step, then round 2, …); the
# table shows medians, with every run's time beside it.
declare -a T_DBSEAL T_PGDUMP T_RUNBOOK T_SHELL T_RESTORE T_PGRESTORE
for r in $(seq 1 "$ROUNDS"); do
  echo "bench: round $r/$ROUNDS: dbseal backup..." >&2
  drop_caches
  T_DBSEAL[r]=$(secs /usr/bin/time -v -o "$WORK/backup.time" "$DBSEAL" --store "$STORE" -q backup postgres \
    --datastore bench -r "$RECIPIENT" --url "$URL/$DB")
  [ "$r" = 1 ] && RSS_BACKUP=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/backup.time")
  ARTIFACT=$(find "$STORE/bench" -name 'data.pgdump.zst.age' | head -1)
  S_DBSEAL=$(size "$ARTIFACT")
  ID=$(basename "$(dirname "$ARTIFACT")")

  echo "bench: round $r: pg_dump -Fc..." >&2
  T_PGDUMP[r]=$(secs pg_dump -Fc -f "$WORK/plain.dump" "$DB")
  S_PGDUMP=$(size "$WORK/plain.dump")

  echo "bench: round $r: runbook pipeline..." >&2
  T_RUNBOOK[r]=$(secs bash -o pipefail -c "pg_dump -Fc '$DB' | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass file:'$WORK/pass' -out '$WORK/runbook.enc'")
  S_RUNBOOK=$(size "$WORK/runbook.enc")

  echo "bench: round $r: shell pipeline of the same stages..." >&2
  T_SHELL[r]=$(secs bash -o pipefail -c "pg_dump -Fc -Z0 '$DB' | zstd -3 -T1 -q | age -r '$RECIPIENT' > '$WORK/shell.age'")
  S_SHELL=$(size "$WORK/shell.age")

  echo "bench: round $r: dbseal restore..." >&2
  T_RESTORE[r]=$(secs /usr/bin/time -v -o "$WORK/restore.time" "$DBSEAL" --store "$STORE" -q restore "$ID" \
    -i "$WORK/key.txt" --url "$URL/restored_dbseal" --create-db --no-safety-backup)
  [ "$r" = 1 ] && RSS_RESTORE=$(awk -F': ' '/Maximum resident/ {print $2}' "$WORK/restore.time")
  dropdb restored_dbseal

  echo "bench: round $r: pg_restore..." >&2
  createdb -T template0 restored_plain
  T_PGRESTORE[r]=$(secs pg_restore --single-transaction --exit-on-error -d restored_plain "$WORK/plain.dump")
  dropdb restored_plain
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
runs() { echo "$*" | tr ' ' '/'; }
R_DBSEAL=$(runs "${T_DBSEAL[@]}") R_PGDUMP=$(runs "${T_PGDUMP[@]}") R_RUNBOOK=$(runs "${T_RUNBOOK[@]}")
R_SHELL=$(runs "${T_SHELL[@]}") R_RESTORE=$(runs "${T_RESTORE[@]}") R_PGRESTORE=$(runs "${T_PGRESTORE[@]}")
M_DBSEAL=$(median "${T_DBSEAL[@]}") M_PGDUMP=$(median "${T_PGDUMP[@]}") M_RUNBOOK=$(median "${T_RUNBOOK[@]}")
M_SHELL=$(median "${T_SHELL[@]}") M_RESTORE=$(median "${T_RESTORE[@]}") M_PGRESTORE=$(median "${T_PGRESTORE[@]}")

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
mib() { echo "$1 / 1048576" | bc -l | xargs printf '%.1f'; }

cat <<EOF

### $(date -u +%Y-%m-%d) — $(nproc) cores, $(lscpu | awk -F': *' '/Model name/ {print $2; exit}')

Dataset: pgbench scale $SCALE + $DOC_ROWS-row text table \`docs\`; database size $(mib "$DB_SIZE") MiB.

| backup | median wall s (runs) | artifact MiB | dbseal / this |
|---|---:|---:|---:|
| dbseal backup postgres (zstd-3, age, SHA-256, file store) | $M_DBSEAL ($R_DBSEAL) | $(mib "$S_DBSEAL") | 1.00 |
| pg_dump -Fc (gzip, no encryption) | $M_PGDUMP ($R_PGDUMP) | $(mib "$S_PGDUMP") | $(ratio "$M_DBSEAL" "$M_PGDUMP") |
| pg_dump -Fc \| gzip \| openssl enc -aes-256-cbc -pbkdf2 | $M_RUNBOOK ($R_RUNBOOK) | $(mib "$S_RUNBOOK") | $(ratio "$M_DBSEAL" "$M_RUNBOOK") |
| pg_dump -Fc -Z0 \| zstd -3 -T1 \| age -r KEY | $M_SHELL ($R_SHELL) | $(mib "$S_SHELL") | $(ratio "$M_DBSEAL" "$M_SHELL") |

| restore | median wall s (runs) | dbseal / this |
|---|---:|---:|
| dbseal restore --create-db | $M_RESTORE ($R_RESTORE) | 1.00 |
| pg_restore --single-transaction (pg_dump -Fc file) | $M_PGRESTORE ($R_PGRESTORE) | $(ratio "$M_RESTORE" "$M_PGRESTORE") |

Peak RSS of dbseal: backup $(echo "$RSS_BACKUP / 1024" | bc) MiB, restore $(echo "$RSS_RESTORE / 1024" | bc) MiB.
Artifact size, dbseal / pg_dump -Fc: $(ratio "$S_DBSEAL" "$S_PGDUMP").

\`lscpu | head\`:
\`\`\`
$(lscpu | head)
\`\`\`
EOF
