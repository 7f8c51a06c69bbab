# shellcheck shell=bash
# Shared helpers for the tests/setup scripts.  Source it; do not run it.
# Every setup script is idempotent and cheap when its work is already done.

SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SETUP_DIR/../.." && pwd)
VENV="${VENV:-$REPO_ROOT/.venv}"
BUILD_DIR="${BUILD_DIR:-$REPO_ROOT/.build}"
# shellcheck disable=SC2034  # used by the scripts that source this file
COLLECTION_COPY="$BUILD_DIR/ansible_collections/hpc/jobroot"

log() {
    printf '[setup %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

die() {
    printf '[setup] ERROR: %s\n' "$*" >&2
    exit 1
}

# The Python used to build the venv: PYTHON if set, else python3.11 from PATH
# without .venv/bin (the Makefile puts .venv/bin first).  Printed as the base
# interpreter's real path, so neither a pyenv shim nor a venv is baked in.
base_python() {
    local py="${PYTHON:-python3.11}" path_without_venv
    path_without_venv=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$VENV/bin" | paste -sd: -)
    py=$(PATH="$path_without_venv" command -v "$py") || die "no ${PYTHON:-python3.11} on PATH (set PYTHON=...)"
    "$py" -c '
import os, sys
assert sys.version_info[:2] == (3, 11), sys.version
print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' \
        || die "$py is not Python 3.11"
}
