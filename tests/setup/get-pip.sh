#!/usr/bin/env bash
# Put the offline get-pip stand-in where ansible-test looks for its cached
# copy: ~/.ansible/test/cache/get_pip_<pip version, dots as underscores>.py.
# The pip version is the one the installed ansible-test asks for
# (ansible_test/_internal/python_requirements.py, get_venv_packages).
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

[ -x "$VENV/bin/python" ] || die "no venv at $VENV (run tests/setup/venv.sh first)"

version=$("$VENV/bin/python" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version='3.11'))['pip'])
PY
)
[[ "$version" =~ ^[0-9]+(\.[0-9]+)+$ ]] || die "unexpected pip version from ansible-test: $version"

cache="$HOME/.ansible/test/cache"
target="$cache/get_pip_${version//./_}.py"
mkdir -p "$cache"
if ! cmp -s "$SETUP_DIR/get_pip_offline.py" "$target"; then
    install -m 0644 "$SETUP_DIR/get_pip_offline.py" "$target"
    log "offline get-pip for pip $version -> $target"
else
    log "offline get-pip for pip $version present"
fi
