#!/usr/bin/env bash
# CPU profile of `dbseal backup postgres` (issue 21, "CPU per byte"): how much CPU dbseal
# itself spends per GB of dump, against the stages of the shell pipeline a user would
# otherwise run (`pg_dump -Fc -Z0 | zstd -3 -T1 | age -r KEY`, plus `sha256sum`-like
# digests), and where dbseal's own CPU goes (perf, dbseal's threads only).
#
#   bench/postgres/profile.sh     # writes bench/postgres/PROFILE.md
#
# Data as in the issue: pgbench scale BENCH_SCALE (40) plus a text table of
# BENCH_TEXT_ROWS (800,000) rows, in a private PostgreSQL 15 started with
# scripts/services.sh on 127.0.0.1:BENCH_PG_PORT (55498) and stopped at the end.
# BENCH_ROUNDS (3) interleaved rounds, medians. Uses target/release/dbseal (BENCH_BIN to
# use another build). Needs perf (Debian: linux-perf), pgbench, zstd, age, openssl and
# GNU time. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SCALE=${BENCH_SCALE:-40}
TEXT_ROWS=${BENCH_TEXT_ROWS:-800000}
PORT=${BENCH_PG_PORT:-55498}
ROUNDS=${BENCH_ROUNDS:-3}
DBSEAL=${BENCH_BIN:-$ROOT/target/release/dbseal}
# BENCH_BIN_BEFORE: another build (e.g. the previous commit's), run in the same rounds.
BEFORE=${BENCH_BIN_BEFORE:-}
OUT=${BENCH_OUT:-$ROOT/bench/postgres/PROFILE.md}

for tool in perf pgbench pg_dump zstd age openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "profile: $tool is missing" >&2; exit 2; }
done
[ -x "$DBSEAL" ] || { echo "profile: no $DBSEAL (cargo build --release -p dbseal-cli)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dbseal-profile-pg.XXXXXX)
chmod 755 "$WORK" # initdb runs as the postgres user and must reach its data directory
cleanup() {
  DBSEAL_TEST_PG_PORT=$PORT "$ROOT/scripts/services.sh" stop "$WORK/services" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
DBSEAL_TEST_PG_PORT=$PORT "$ROOT/scripts/services.sh" start "$WORK/services" postgres >&2
# shellcheck disable=SC1091
source "$WORK/services/env.sh"
export PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD
PGC=(-h 127.0.0.1 -p "$PORT" -U postgres)
echo "profile: making the data (pgbench -s $SCALE, $TEXT_ROWS text rows)..." >&2
psql "${PGC[@]}" -q -c 'CREATE DATABASE prof'
pgbench -i -q -s "$SCALE" "${PGC[@]}" prof >"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; exit 1; }
psql "${PGC[@]}" -d prof -q -c "CREATE TABLE docs AS SELECT g AS id, md5(g::text) AS title,
  repeat('lorem ipsum dolor sit amet ' || (g % 977)::text || ' ', 6) || md5((g * 7)::text) AS body
  FROM generate_series(1, $TEXT_ROWS) g"
URL="postgres://postgres@127.0.0.1:$PORT/prof"

"$DBSEAL" -q keygen -o "$WORK/key.txt" >"$WORK/rcpt"
export DBSEAL_SIGNING_KEY=$WORK/key.txt.minisign.key
RCPT=$(cat "$WORK/rcpt")

# cpu NAME CMD...: appends "wall user sys" (seconds) to $WORK/NAME.
cpu() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$WORK/t" "$@" >/dev/null
  cat "$WORK/t" >>"$WORK/$name"
}
echo "profile: $ROUNDS rounds..." >&2
pg_dump "${PGC[@]}" -d prof -Fc -Z0 -f "$WORK/dump"
zstd -3 -T1 -q -c "$WORK/dump" >"$WORK/dump.zst"
for _ in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/store"
  # dbseal's figures include its children: pg_dump (subtracted below).
  cpu dbseal "$DBSEAL" -q --store "file://$WORK/store" backup postgres --url "$URL" -d prof -r "$RCPT"
  if [ -n "$BEFORE" ]; then
    rm -rf "$WORK/store"
    cpu before "$BEFORE" -q --store "file://$WORK/store" backup postgres --url "$URL" -d prof -r "$RCPT"
  fi
  cpu pg_dump pg_dump "${PGC[@]}" -d prof -Fc -Z0 --no-sync -f /dev/null
  cpu zstd zstd -3 -T1 -q -c "$WORK/dump"
  cpu age age -r "$RCPT" -o /dev/null "$WORK/dump.zst"
  cpu sha256 openssl dgst -sha256 "$WORK/dump"
done
# perf: dbseal's own threads (pg_dump and the server left out).
rm -rf "$WORK/store"
perf record -q -F 1999 -g -o "$WORK/perf.data" \
  "$DBSEAL" -q --store "file://$WORK/store" backup postgres --url "$URL" -d prof -r "$RCPT" >/dev/null 2>"$WORK/perf.err"
perf report -i "$WORK/perf.data" --comm dbseal,tokio-rt-worker --percentage relative --no-children --sort symbol \
  --stdio -g none --percent-limit 0.7 2>/dev/null | grep '%' >"$WORK/symbols" || true

BYTES=$(stat -c %s "$WORK/dump")
med() { # FILE COLUMN
  awk -v c="$2" '{ print $c }' "$WORK/$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
cpu_of() { awk -v u="$(med "$1" 2)" -v s="$(med "$1" 3)" 'BEGIN { printf "%.2f", u + s }'; }
per_gb() { awk -v c="$1" -v b="$BYTES" 'BEGIN { printf "%.2f", c / (b / 1e9) }'; }
DB=$(cpu_of dbseal); PD=$(cpu_of pg_dump); ZS=$(cpu_of zstd); AG=$(cpu_of age); SH=$(cpu_of sha256)
OWN=$(awk -v a="$DB" -v b="$PD" 'BEGIN { printf "%.2f", a - b }')
SHELL=$(awk -v a="$ZS" -v b="$AG" 'BEGIN { printf "%.2f", a + b }')
SHELLSHA=$(awk -v a="$SHELL" -v b="$SH" 'BEGIN { printf "%.2f", a + 2 * b }')
{
  echo "# bench/postgres — CPU profile of \`dbseal backup postgres\`"
  echo
  echo "Produced by \`bench/postgres/profile.sh\` (re-run it to replace this file)."
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(uname -sr); load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "- Source tree: commit $(git rev-parse --short HEAD); dbseal \`$DBSEAL\`; $(pg_dump --version); zstd $(zstd -V | sed -n 's/.*v\([0-9.]*\).*/\1/p'), age $(age --version), $(openssl version | cut -d' ' -f1-2)."
  echo "- Data: pgbench scale $SCALE plus $TEXT_ROWS rows of text; \`pg_dump -Fc -Z0\`: $BYTES bytes. $ROUNDS rounds, medians (CPU = user + system seconds)."
  echo
  echo "| process | wall (s) | CPU (s) | CPU per GB of dump (s) |"
  echo "|---|---|---|---|"
  echo "| \`dbseal backup postgres\` with its \`pg_dump\` | $(med dbseal 1) | $DB | $(per_gb "$DB") |"
  echo "| \`pg_dump -Fc -Z0 > /dev/null\` alone | $(med pg_dump 1) | $PD | $(per_gb "$PD") |"
  echo "| **dbseal's own** (the difference) | — | **$OWN** | **$(per_gb "$OWN")** |"
  if [ -n "$BEFORE" ]; then
    BD=$(cpu_of before); BOWN=$(awk -v a="$BD" -v b="$PD" 'BEGIN { printf "%.2f", a - b }')
    echo "| \`$BEFORE\` (before) with its \`pg_dump\` | $(med before 1) | $BD | $(per_gb "$BD") |"
    echo "| its own (before) | — | $BOWN | $(per_gb "$BOWN") |"
  fi
  echo "| \`zstd -3 -T1\` of the dump | $(med zstd 1) | $ZS | $(per_gb "$ZS") |"
  echo "| \`age -r\` of the compressed dump | $(med age 1) | $AG | $(per_gb "$AG") |"
  echo "| \`openssl dgst -sha256\` of the dump | $(med sha256 1) | $SH | $(per_gb "$SH") |"
  echo "| shell stages: zstd + age | — | $SHELL | $(per_gb "$SHELL") |"
  echo "| shell stages + two SHA-256s of the dump (an upper bound of the digests dbseal computes) | — | $SHELLSHA | $(per_gb "$SHELLSHA") |"
  echo
  echo "Where dbseal's own CPU goes (\`perf record -g\`, dbseal's threads only, symbols above 0.7 % of those samples):"
  echo
  echo '```text'
  sed 's/ *$//' "$WORK/symbols"
  echo '```'
} >"$OUT"
echo "profile: wrote $OUT" >&2
cat "$OUT"
