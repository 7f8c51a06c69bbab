#!/usr/bin/env bash
# `ansible-test sanity --python 3.11 --local` in the collections-tree copy.
# Extra arguments go to ansible-test (e.g. --test pylint plugins/).
#
# ansible-test only warns and skips a sanity test when its tool is missing
# (shellcheck, a test venv); such a hole would pass unnoticed, so this wrapper
# fails when ansible-test reports one.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

[ -d "$COLLECTION_COPY" ] || die "no $COLLECTION_COPY (run make collections)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

cd "$COLLECTION_COPY"
ansible-test sanity --python 3.11 --local "$@" 2>&1 | tee "$out"

if grep -E 'Required program "[^"]+" not found|Skipping sanity test .*(due to missing|unsupported)' "$out" >&2; then
    die "a sanity test was skipped because something is missing on this host (see above); install it in tests/setup/system-packages.txt"
fi
