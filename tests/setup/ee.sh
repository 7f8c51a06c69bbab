#!/usr/bin/env bash
# make ee: the collection's execution-environment metadata, checked with
# ansible-builder, without a container engine:
#  1. bindep parses meta/ee-bindep.txt and finds every package it names for
#     this (Debian) host installed;
#  2. `ansible-builder introspect` on the built artifact, installed into an
#     empty path, reads meta/execution-environment.yml and reports our system
#     packages, as it does inside an image build;
#  3. `ansible-builder create` writes the build context (Containerfile and
#     _build/) for an EE definition that installs the artifact, into
#     .build/ee/context.  Building the image would need podman or docker.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
core=$(python -c 'import ansible.release; print(ansible.release.__version__)')
artifact="$BUILD_DIR/hpc-jobroot-$version.tar.gz"
[ -s "$artifact" ] || die "no $artifact (run make build)"

bindep -b -f meta/ee-bindep.txt || die "bindep: meta/ee-bindep.txt names packages missing here, or does not parse"

ee="$BUILD_DIR/ee"
rm -rf --one-file-system "$ee"
mkdir -p "$ee/collections"
ANSIBLE_COLLECTIONS_PATH="$ee/collections" ansible-galaxy collection install --no-deps -p "$ee/collections" "$artifact" >/dev/null
ansible-builder introspect "$ee/collections" 2>/dev/null | tee "$ee/introspect.yml"
python - "$ee/introspect.yml" meta/ee-bindep.txt <<'PY'
import sys, yaml
found = yaml.safe_load(open(sys.argv[1]))
want = [l.strip() for l in open(sys.argv[2]) if l.strip() and not l.startswith('#')]
got = [entry.split('  # from collection hpc.jobroot')[0] for entry in found['system']
       if entry.endswith('# from collection hpc.jobroot')]
if got != want:
    sys.exit(f'ansible-builder introspect: system needs {got}, expected {want} from meta/ee-bindep.txt')
PY

cp "$artifact" "$ee/"
cat > "$ee/execution-environment.yml" <<YAML
---
version: 3
images:
  base_image:
    name: quay.io/fedora/fedora:latest
dependencies:
  python_interpreter:
    package_system: python3
    python_path: /usr/bin/python3
  ansible_core:
    package_pip: ansible-core==$core
  ansible_runner:
    package_pip: ansible-runner==2.4.3
  galaxy:
    collections:
      - name: /build/collections/$(basename "$artifact")
        type: file
      - name: community.general
      - name: ansible.posix
additional_build_files:
  - src: $(basename "$artifact")
    dest: collections
YAML
ansible-builder create --file "$ee/execution-environment.yml" --context "$ee/context" --output-filename Containerfile -v 1
for f in Containerfile _build/requirements.yml "_build/collections/$(basename "$artifact")" _build/scripts/introspect.py; do
    [ -s "$ee/context/$f" ] || die "ansible-builder create wrote no $ee/context/$f"
done
log "ee: meta/execution-environment.yml introspected from the artifact; build context in $ee/context"
