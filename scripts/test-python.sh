#!/usr/bin/env bash
# Builds the dbseal Python wheel and runs the Python test suite (py-bindings/tests)
# against the real test servers.
#
#   scripts/test-python.sh                 # all of it
#   scripts/test-python.sh -k postgres     # extra arguments go to pytest
#   DBSEAL_PY_DEBUG=1 scripts/test-python.sh   # a debug wheel: faster to build
#
# 1. `maturin build --release` into target/wheels (an abi3 wheel: CPython >= 3.9);
# 2. a venv in target/py-venv (created with `python3 -m venv`, reused when present) with
#    maturin, pytest, mypy and the drivers the tests use (psycopg2, redis, neo4j);
# 3. the wheel installed into it, exactly as users `pip install` it;
# 4. pytest over py-bindings/tests: round trips of every database, error mapping,
#    secrets, GIL/Ctrl-C, and the type checks (stubtest of the stubs, mypy --strict of
#    the suite).
#
# The servers: when DBSEAL_TEST_PG_URL is set (scripts/test.sh sourced the env.sh of
# `scripts/services.sh start`), those are used; otherwise this script starts its own in a
# temporary directory and stops them at exit. Exits non-zero on any failure, including
# pytest collecting no test (its exit code 5).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=$ROOT/target/py-venv
WHEELS=$ROOT/target/wheels

log() { echo "test-python: $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  mkdir -p "$ROOT/target"
  "$PY" -m venv "$VENV"
fi
log "installing build and test tools into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  "maturin>=1.16,<2" "pytest>=7" "mypy>=1.10" psycopg2-binary redis neo4j

# DBSEAL_PY_DEBUG=1 builds a debug wheel instead: much faster, for local iteration only.
profile=(--release)
[ "${DBSEAL_PY_DEBUG:-0}" = 1 ] && profile=()
log "building the wheel (maturin build ${profile[*]:-(debug)})"
mkdir -p "$WHEELS"
rm -f "$WHEELS"/dbseal-*.whl
(cd py-bindings && "$VENV/bin/maturin" build "${profile[@]}" --out "$WHEELS" 2>&1 | tail -n 4)
shopt -s nullglob
wheels=("$WHEELS"/dbseal-*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -ne 1 ]; then
  log "expected one wheel in $WHEELS, found ${#wheels[@]}"
  exit 1
fi
log "installing ${wheels[0]##*/}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "${wheels[0]}"
# Import from the installed wheel, not from the source tree.
(cd / && "$VENV/bin/python" -c 'import dbseal, sys; print("test-python: dbseal", dbseal.__version__, "from", dbseal.__file__, file=sys.stderr)')

SERVICES_DIR=""
cleanup() {
  if [ -n "$SERVICES_DIR" ]; then
    "$ROOT/scripts/services.sh" stop "$SERVICES_DIR" || true
    rm -rf "$SERVICES_DIR"
  fi
}
trap cleanup EXIT INT TERM
if [ -z "${DBSEAL_TEST_PG_URL:-}" ]; then
  SERVICES_DIR=$(mktemp -d /tmp/dbseal-pytest.XXXXXX)
  log "no DBSEAL_TEST_* variables: starting the test servers in $SERVICES_DIR"
  "$ROOT/scripts/services.sh" start "$SERVICES_DIR"
  # shellcheck disable=SC1091
  source "$SERVICES_DIR/env.sh"
fi

status=0
(cd py-bindings && "$VENV/bin/python" -m pytest tests -p no:cacheprovider -ra "$@") || status=$?
if [ $status -eq 5 ]; then
  log "pytest collected no test: that is a failure"
  status=1
fi
exit $status
