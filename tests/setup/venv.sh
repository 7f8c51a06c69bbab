#!/usr/bin/env bash
# Build .venv from requirements-dev.txt (+ constraints-dev.txt).
# The venv carries a stamp with the hash of both files and of the base
# interpreter; when any of them changes, the venv is rebuilt from scratch.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

req="$REPO_ROOT/requirements-dev.txt"
con="$SETUP_DIR/constraints-dev.txt"
stamp="$VENV/.requirements.sha256"
py=$(base_python)

want=$( { sha256sum "$req"; [ -f "$con" ] && sha256sum "$con"; echo "$py"; } | sha256sum | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "venv up to date ($VENV)"
    exit 0
fi

log "building $VENV from $(basename "$req") with $py"
start=$(date +%s)
rm -rf "$VENV"
"$py" -m venv "$VENV"
pip_args=(--quiet --disable-pip-version-check -r "$req")
[ -f "$con" ] && pip_args+=(-c "$con")
"$VENV/bin/python" -m pip install "${pip_args[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -m pip check
echo "$want" > "$stamp"
log "venv built in $(( $(date +%s) - start )) s"
