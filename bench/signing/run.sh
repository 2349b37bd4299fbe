#!/usr/bin/env bash
# What signing costs (issue 15, "Done when": < 2 % of backup time, < 10 % of wal-push
# latency per segment, the extra PUTs to an S3 store included). In ONE run, against the
# project's SeaweedFS S3 store (scripts/services.sh), interleaved:
#
#   1. `dbseal backup stdin` of BENCH_MIB MiB (pgbench-like text, compressible) to S3,
#      signed (--signing-key) vs unsigned (--allow-unsigned, no key: the manifest and
#      no signature, as before signing existed), BENCH_ROUNDS rounds each, alternating.
#   2. `dbseal wal-push` of real 16 MiB WAL segments (from a private PostgreSQL 15
#      cluster running pgbench -i) to S3, process start included: each segment pushed
#      signed (manifest + .minisig, archive.json signed) and unsigned, alternating.
#
# Prints a Markdown block for bench/RESULTS.md (medians, and the ratio signed/unsigned).
#
#   bench/signing/run.sh
#   BENCH_MIB=64 BENCH_ROUNDS=3 BENCH_SCALE=5 bench/signing/run.sh   # smoke run
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
MIB=${BENCH_MIB:-512}
ROUNDS=${BENCH_ROUNDS:-5}
SCALE=${BENCH_SCALE:-20}
PORT=${BENCH_PG_PORT:-25498}
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
export PATH=$PG_BIN:$PATH

if [ -n "${BENCH_DBSEAL:-}" ]; then
  DBSEAL=$BENCH_DBSEAL
else
  cargo build --release -p dbseal-cli 2>&1 | tail -n 1 >&2
  DBSEAL=$ROOT/target/release/dbseal
fi

WORK=$(mktemp -d /tmp/dbseal-bench-signing.XXXXXX)
chmod 755 "$WORK"
AS=()
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
  chown postgres:postgres "$WORK"
fi
DATA=$WORK/data
cleanup() {
  "${AS[@]}" pg_ctl -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
  "$ROOT/scripts/services.sh" stop "$WORK/svc" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "bench: starting SeaweedFS S3..." >&2
DBSEAL_TEST_S3_PORT=${BENCH_S3_PORT:-28633} "$ROOT/scripts/services.sh" start "$WORK/svc" s3 >/dev/null
# shellcheck disable=SC1091
source "$WORK/svc/env.sh"
export AWS_ACCESS_KEY_ID=$DBSEAL_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$DBSEAL_TEST_S3_SECRET_KEY
export AWS_ENDPOINT=$DBSEAL_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
STORE=$DBSEAL_TEST_S3_URL/bench-signing-$$

"$DBSEAL" -q keygen -o "$WORK/key.txt" >"$WORK/recipient"
RECIPIENT=$(cat "$WORK/recipient")
KEY=$WORK/key.txt.minisign.key

now_ns() { date +%s%N; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# --- 1. backup ------------------------------------------------------------------------
echo "bench: $MIB MiB of input..." >&2
python3 - "$WORK/input" "$MIB" <<'PY'
import random, sys
rnd = random.Random(7)
words = [f"{rnd.getrandbits(40):x}" for _ in range(5000)]
with open(sys.argv[1], "w") as f:
    size, target = 0, int(sys.argv[2]) << 20
    while size < target:
        line = f"{size}\t{rnd.choice(words)}\t{rnd.randint(0, 10**9)}\t{' '.join(rnd.sample(words, 6))}\n"
        f.write(line)
        size += len(line)
PY
: >"$WORK/backup-signed"; : >"$WORK/backup-unsigned"
backup() { # signed|unsigned
  local t0 t1
  t0=$(now_ns)
  if [ "$1" = signed ]; then
    "$DBSEAL" -q --store "$STORE" --signing-key "$KEY" backup stdin -d signed -r "$RECIPIENT" <"$WORK/input" >/dev/null
  else
    "$DBSEAL" -q --store "$STORE" --allow-unsigned backup stdin -d unsigned -r "$RECIPIENT" <"$WORK/input" >/dev/null 2>&1
  fi
  t1=$(now_ns)
  echo "($t1 - $t0) / 1000000" | bc -l >>"$WORK/backup-$1"
}
echo "bench: backup, $ROUNDS rounds, signed and unsigned alternating..." >&2
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then backup signed; backup unsigned; else backup unsigned; backup signed; fi
done

# --- 2. wal-push ----------------------------------------------------------------------
echo "bench: initdb and pgbench -i -s $SCALE to collect real WAL..." >&2
mkdir -p "$WORK/raw" "$WORK/sock"
[ ${#AS[@]} -eq 0 ] || chown postgres:postgres "$WORK/raw" "$WORK/sock"
"${AS[@]}" initdb -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_size = 4GB
archive_mode = on
archive_command = 'cp %p $WORK/raw/%f'
CONF
"${AS[@]}" pg_ctl -D "$DATA" -l "$WORK/server.log" -w start >/dev/null
export PGHOST=$WORK/sock PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
pgbench -i -s "$SCALE" -q >/dev/null 2>&1
seg=$(psql -Atc "SELECT pg_walfile_name(pg_switch_wal())")
while [ "$(psql -Atc "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" != t ]; do sleep 0.2; done
mapfile -t SEGS < <(find "$WORK/raw" -maxdepth 1 -type f -name '000000010*' ! -name '*.*' | sort)
: >"$WORK/push-signed"; : >"$WORK/push-unsigned"
push() { # signed|unsigned segment
  local t0 t1
  t0=$(now_ns)
  if [ "$1" = signed ]; then
    "$DBSEAL" -q --store "$STORE" --signing-key "$KEY" wal-push -d wal-signed -r "$RECIPIENT" "$2" >/dev/null
  else
    "$DBSEAL" -q --store "$STORE" --allow-unsigned wal-push -d wal-unsigned -r "$RECIPIENT" "$2" >/dev/null 2>&1
  fi
  t1=$(now_ns)
  echo "($t1 - $t0) / 1000000" | bc -l >>"$WORK/push-$1"
}
echo "bench: wal-push x ${#SEGS[@]} segments, signed and unsigned alternating..." >&2
i=0
for f in "${SEGS[@]}"; do
  i=$((i + 1))
  if [ $((i % 2)) = 1 ]; then push signed "$f"; push unsigned "$f"; else push unsigned "$f"; push signed "$f"; fi
done

bs=$(median <"$WORK/backup-signed"); bu=$(median <"$WORK/backup-unsigned")
ps=$(median <"$WORK/push-signed"); pu=$(median <"$WORK/push-unsigned")
cat <<EOF
### Signing cost ($(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))

S3 store: SeaweedFS on 127.0.0.1 (scripts/services.sh). Medians; signed / unsigned.

| what | signed | unsigned (--allow-unsigned) | ratio |
|---|---|---|---|
| backup stdin, $MIB MiB, $ROUNDS rounds each, interleaved | $(printf %.0f "$bs") ms | $(printf %.0f "$bu") ms | $(echo "$bs / $bu" | bc -l | xargs printf %.3f) |
| wal-push per 16 MiB segment, ${#SEGS[@]} segments, interleaved | $(printf %.1f "$ps") ms | $(printf %.1f "$pu") ms | $(echo "$ps / $pu" | bc -l | xargs printf %.3f) |
EOF
