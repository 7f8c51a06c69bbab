#!/usr/bin/env bash
# make build: the artifact users install, .build/hpc-jobroot-<version>.tar.gz,
# built by `ansible-galaxy collection build` from this checkout as it stands
# (galaxy.yml's build_ignore decides what stays out).
#
# Then the artifact's file list is checked: every file in it must be one git
# knows (tracked, or untracked and not ignored), so no cache, venv, build or
# bench output slipped past build_ignore; and the files users need (modules,
# filter, role argument specs, runtime.yml, the changelog, the docs site
# config) must be there.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
artifact="$BUILD_DIR/hpc-jobroot-$version.tar.gz"
mkdir -p "$BUILD_DIR"
rm -f "$artifact"
ansible-galaxy collection build --force --output-path "$BUILD_DIR" "$REPO_ROOT" >&2
[ -s "$artifact" ] || die "ansible-galaxy did not write $artifact"

python - "$artifact" <<'PY'
import fnmatch, subprocess, sys, tarfile
artifact = sys.argv[1]
with tarfile.open(artifact) as tar:
    members = {m.name for m in tar.getmembers() if m.isfile()}
known = set(subprocess.run(
    ['git', 'ls-files', '-co', '--exclude-standard'],
    capture_output=True, text=True, check=True).stdout.splitlines())
stray = sorted(members - known - {'MANIFEST.json', 'FILES.json'})
if stray:
    sys.exit(f'{artifact}: files git does not know (add them to build_ignore): {stray}')
required = ['meta/runtime.yml', 'CHANGELOG.md', 'changelogs/changelog.yaml',
            'docs/docsite/extra-docs.yml', 'plugins/filter/slot_extents.py',
            'plugins/modules/*.py', 'roles/*/meta/argument_specs.yml']
missing = [p for p in required if not fnmatch.filter(members, p)]
if missing:
    sys.exit(f'{artifact}: missing {missing}')
PY
log "built $artifact: $(stat -c %s "$artifact") bytes, $(tar -tzf "$artifact" | grep -vc '/$') files"
