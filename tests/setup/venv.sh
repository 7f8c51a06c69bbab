#!/usr/bin/env bash
# Build or update .venv from requirements-dev.txt, constrained to
# constraints-dev.txt (the full tested set).
#
# A stamp in the venv holds the hash of both files and the base interpreter.
# Same stamp: nothing to do.  Different base interpreter or a broken venv:
# rebuilt from scratch.  Only the files changed: updated in place (packages
# not in the constraints removed), so a venv someone else is using in this
# checkout keeps working meanwhile.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

req="$REPO_ROOT/requirements-dev.txt"
con="$SETUP_DIR/constraints-dev.txt"
[ -n "${SKIP_CONSTRAINTS:-}" ] && con=/dev/null
stamp="$VENV/.requirements.stamp"
py=$(base_python)

want=$(printf '%s\n%s\n' "$py" "$(cat "$req" "$con" | sha256sum | cut -d' ' -f1)")
have=$(cat "$stamp" 2>/dev/null || true)

if [ "$have" = "$want" ] && "$VENV/bin/python" -c pass 2>/dev/null; then
    log "venv up to date ($VENV)"
    exit 0
fi

start=$(date +%s)
if [ "$(head -n 1 <<<"$have")" != "$py" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "building $VENV with $py"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
else
    log "updating $VENV (requirements changed)"
fi

# The machine's pip configuration names local index directories that may not
# exist; pip warns once per package about them.  Drop just those lines.
quiet_pip() {
    "$VENV/bin/python" -m pip --disable-pip-version-check "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

quiet_pip install --quiet -r "$req" -c "$con"

if [ "$con" != /dev/null ]; then
    # Remove what the constraints do not list (left over from older pins).
    extra=$("$VENV/bin/python" - "$con" <<'PY'
import re, subprocess, sys
def norm(name):
    return re.sub(r'[-_.]+', '-', name).lower()
with open(sys.argv[1]) as f:
    wanted = {norm(l.split('==')[0]) for l in f if '==' in l and not l.startswith('#')}
frozen = subprocess.run([sys.executable, '-m', 'pip', 'freeze'], capture_output=True, text=True, check=True).stdout
print(' '.join(n for n in (l.split('==')[0] for l in frozen.splitlines() if '==' in l) if norm(n) not in wanted))
PY
)
    if [ -n "$extra" ]; then
        log "removing packages not in constraints: $extra"
        # shellcheck disable=SC2086  # package names are single words
        quiet_pip uninstall --quiet -y $extra
    fi
fi

"$VENV/bin/python" -m pip check
echo "$want" > "$stamp"
log "venv ready in $(( $(date +%s) - start )) s"
