#!/usr/bin/env bash
# A complete dbseal round trip on local defaults, from a fresh clone:
# builds dbseal, starts a throwaway PostgreSQL 15 on 127.0.0.1, fills a database,
# generates a key, backs it up into ./backups, verifies it at all three levels,
# restores it into a new database and compares row counts. The server is stopped at the
# end; the backups and the key stay in ./backups and ./dbseal-demo-key.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

command -v cargo >/dev/null || { echo "demo: cargo (Rust) is required" >&2; exit 1; }
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
[ -x "$PG_BIN/pg_dump" ] || { echo "demo: PostgreSQL 15 binaries not found in $PG_BIN (apt-get install postgresql-15)" >&2; exit 1; }

echo "== building dbseal"
cargo build --locked -p dbseal-cli 2>&1 | tail -n 1
DBSEAL="${CARGO_TARGET_DIR:-$ROOT/target}/debug/dbseal"

DIR=$(mktemp -d /tmp/dbseal-demo.XXXXXX)
trap '"$ROOT/scripts/services.sh" stop "$DIR"; rm -rf "$DIR"' EXIT INT TERM
echo "== starting a throwaway PostgreSQL on 127.0.0.1"
scripts/services.sh start "$DIR" postgres
# shellcheck disable=SC1091
source "$DIR/env.sh"
export PGPASSWORD=$DBSEAL_TEST_PG_PASSWORD   # the password travels in the environment only
BASE=${DBSEAL_TEST_PG_URL%/*}
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)

"${PSQL[@]}" "$BASE/postgres" -c "DROP DATABASE IF EXISTS shop" -c "DROP DATABASE IF EXISTS shop_restored" -c "CREATE DATABASE shop"
"$PG_BIN/pgbench" -q -i -s 2 "$BASE/shop" >/dev/null 2>&1
"${PSQL[@]}" "$BASE/shop" -c "CREATE TABLE notes(id serial primary key, body text, tags text[], at timestamptz default now());
  INSERT INTO notes(body, tags) SELECT 'note ' || g || E'\twith tab', ARRAY['a','b'] FROM generate_series(1, 5000) g;"

KEY=$ROOT/dbseal-demo-key.txt
if [ ! -f "$KEY.minisign.key" ]; then
  echo "== generating a key pair and a signing key ($KEY, $KEY.minisign.key)"
  rm -f "$KEY" "$KEY.minisign.pub"   # a demo key from before dbseal signed its backups
  "$DBSEAL" keygen --output "$KEY" >/dev/null
fi
RECIPIENT=$(sed -n 's/^# public key: //p' "$KEY")
# The backup is signed with it; this host trusts what its own key signed.
export DBSEAL_SIGNING_KEY=$KEY.minisign.key

echo "== backup"
"$DBSEAL" backup postgres --datastore shop --recipient "$RECIPIENT" --url "$BASE/shop"
ID=$("$DBSEAL" list --datastore shop --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')

echo "== verify (stored, content, and a restore into a scratch database)"
"$DBSEAL" verify "$ID" --identity "$KEY" --restore-to "$BASE/postgres"

echo "== restore into a new database shop_restored"
"$DBSEAL" restore "$ID" --identity "$KEY" --url "$BASE/shop_restored" --create-db

q='SELECT (SELECT count(*) FROM pgbench_accounts) || '"'"' accounts, '"'"' || (SELECT count(*) FROM notes) || '"'"' notes'"'"
src=$("${PSQL[@]}" -tA "$BASE/shop" -c "$q")
dst=$("${PSQL[@]}" -tA "$BASE/shop_restored" -c "$q")
echo "source:   $src"
echo "restored: $dst"
[ "$src" = "$dst" ] || { echo "demo: restored contents differ" >&2; exit 1; }
echo "== round trip OK: backup $ID in ./backups ($("$DBSEAL" list --datastore shop | tail -n 1 | awk '{print $4, $5}'))"
