#!/usr/bin/env bash
# Installs what the tests need, builds once, starts the real test servers on 127.0.0.1
# (stopped at exit, even on failure), and runs every test: the Rust workspace and the
# Python suite.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p backup-core   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/install-deps.sh

# A full disk makes the test servers fail in confusing ways (SeaweedFS answers PUTs with
# "500 InternalError"): say so up front. The build needs ~5 GiB (line tables only, see
# Cargo.toml), the Python wheel build ~1 GiB, the tests ~3 GiB.
for dir in "$ROOT" /tmp; do
  free_gib=$(df -Pk "$dir" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  if [ "$free_gib" -lt 10 ]; then
    echo "test.sh: warning: only $free_gib GiB free on the file system of $dir; the build and the" >&2
    echo "test servers need about 10 GiB (a full disk shows up as S3 '500 InternalError')." >&2
  fi
done

# Build first (all targets) so compile time is not counted against servers' lifetimes.
cargo build --workspace --all-targets --quiet

SERVICES_DIR=$(mktemp -d /tmp/dbseal-test.XXXXXX)
cleanup() {
  "$ROOT/scripts/services.sh" stop "$SERVICES_DIR" || true
  rm -rf "$SERVICES_DIR"
}
trap cleanup EXIT INT TERM
scripts/services.sh start "$SERVICES_DIR"
# shellcheck disable=SC1091
source "$SERVICES_DIR/env.sh"
export DBSEAL_BIN="$ROOT/target/debug/dbseal"
# Each passed cell of the fault matrix (cli/tests/fault_matrix.rs) writes a line here;
# docs/fault-matrix.md is generated from them.
export DBSEAL_FAULT_RESULTS="$SERVICES_DIR/fault-matrix.jsonl"
: >"$DBSEAL_FAULT_RESULTS"

status=0
cargo test --workspace --no-fail-fast "$@" -- --test-threads=2 || status=$?
if [ $# -eq 0 ]; then
  python3 scripts/fault-matrix.py "$DBSEAL_FAULT_RESULTS" docs/fault-matrix.md || status=$?
fi

if [ -x scripts/test-python.sh ] && [ $# -eq 0 ]; then
  scripts/test-python.sh || status=$?
fi
exit $status
