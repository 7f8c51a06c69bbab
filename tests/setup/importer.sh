#!/usr/bin/env bash
# make importer: galaxy-importer (Galaxy's import checks) on the built
# artifact, with tests/setup/galaxy-importer.cfg.  Fails on an import error
# and on any warning or error it logs.  Log and importer_result.json go to
# .build/importer/.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
artifact="$BUILD_DIR/hpc-jobroot-$version.tar.gz"
[ -s "$artifact" ] || die "no $artifact (run make build)"

# It writes importer_result.json into the current directory: keep it there.
work="$BUILD_DIR/importer"
rm -rf --one-file-system "$work"
mkdir -p "$work"
out="$work/importer.log"
export GALAXY_IMPORTER_CONFIG="$SETUP_DIR/galaxy-importer.cfg"
export GALAXY_IMPORTER_TMP_ROOT_DIR="$work"
rc=0
(cd "$work" && python -m galaxy_importer.main "$artifact") > "$out" 2>&1 || rc=$?
grep -v '^Loading ' "$out" >&2 || true
[ "$rc" -eq 0 ] || die "galaxy-importer failed on $artifact (rc $rc; log $out)"
if grep -E '^(WARNING|ERROR)' "$out" >&2; then
    die "galaxy-importer reported the warnings or errors above for $artifact"
fi
grep -q '^Importer processing completed successfully' "$out" \
    || die "galaxy-importer did not report success (log $out)"
log "galaxy-importer: $artifact imports cleanly ($(grep -c '^Loading ' "$out") contents loaded)"
