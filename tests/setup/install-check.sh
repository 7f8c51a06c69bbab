#!/usr/bin/env bash
# make install-check: install the built artifact as a user would, with
# `ansible-galaxy collection install`, into an empty collections path, and use
# it from there alone:
#  * ANSIBLE_COLLECTIONS_PATH names only that path and
#    ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false hides the collections inside the
#    venv's `ansible` package, so nothing but the install can answer;
#  * ansible-doc renders every module, filter and role this checkout has (a
#    plugin missing from the artifact fails here), each from the install;
#  * one ad-hoc module call, hpc.jobroot.bind_tree state=absent in check
#    mode on an empty directory: it reads mountinfo and reports no change.
# The install is --no-deps: community.general and ansible.posix come from
# Galaxy, which is unreachable here, and the modules, filter and role docs
# need neither.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
artifact="$BUILD_DIR/hpc-jobroot-$version.tar.gz"
[ -s "$artifact" ] || die "no $artifact (run make build)"

work=$(mktemp -d "$BUILD_DIR/install-check.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
inst="$work/collections"
mkdir "$inst"
export ANSIBLE_COLLECTIONS_PATH="$inst" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_LOCAL_TEMP="$work/tmp"
export ANSIBLE_NOCOLOR=1

ansible-galaxy collection install --no-deps -p "$inst" "$artifact" >&2
installed="$inst/ansible_collections/hpc/jobroot"
[ -f "$installed/MANIFEST.json" ] || die "ansible-galaxy did not install into $installed"
got=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$installed/MANIFEST.json")
[ "$got" = "$version" ] || die "installed version $got, expected $version"

# ansible-doc -t TYPE NAME...: each documented and read from the install
# (one JSON call per type for the checks, one text call as a user reads it).
check_doc='
import json, sys
kind, installed, names = sys.argv[1], sys.argv[2], sys.argv[3:]
docs = json.load(sys.stdin)
for name in names:
    entry = docs["hpc.jobroot." + name]
    if kind == "role":
        doc, where = entry["entry_points"]["main"], entry["path"] + "/"
    else:
        doc, where = entry["doc"], entry["doc"]["filename"]
    assert doc.get("short_description"), name + ": no short_description"
    assert where.startswith(installed + "/"), "%s read from %r, not from the install" % (name, where)
    print(kind, "hpc.jobroot." + name)
'
count=0
doc() {
    local type=$1
    shift
    ansible-doc -j -t "$type" "${@/#/hpc.jobroot.}" | python -c "$check_doc" "$type" "$installed" "$@" \
        || die "ansible-doc -t $type: no documentation from the install for some of: $*"
    ansible-doc -t "$type" "${@/#/hpc.jobroot.}" >/dev/null
    count=$((count + $#))
}
names() { for f in "$@"; do f=${f%/}; f=${f##*/}; echo "${f%.py}"; done; }
mapfile -t modules < <(names plugins/modules/*.py)
mapfile -t filters < <(shopt -s nullglob; names plugins/filter/*.py)
mapfile -t roles < <(names roles/*/)
doc module "${modules[@]}"
[ "${#filters[@]}" -eq 0 ] || doc filter "${filters[@]}"
doc role "${roles[@]}"

mkdir "$work/empty-root"
out=$(ANSIBLE_LOAD_CALLBACK_PLUGINS=true ANSIBLE_STDOUT_CALLBACK=ansible.builtin.minimal \
    ansible localhost -i localhost, -c local -e ansible_python_interpreter="$(command -v python)" --check -m hpc.jobroot.bind_tree -a "root=$work/empty-root root_base=$work state=absent")
python -c '
import json, sys
head, _, body = sys.argv[1].partition(" => ")
assert head == "localhost | SUCCESS", head
result = json.loads(body)
print("ad-hoc hpc.jobroot.bind_tree state=absent --check:", json.dumps({k: result.get(k) for k in ("changed", "mounts", "actions")}))
assert not result.get("failed") and result.get("changed") is False and result.get("mounts") == [], result
' "$out" || die "ad-hoc hpc.jobroot.bind_tree call did not succeed unchanged: $out"
log "install-check: $artifact installed into an empty path; ansible-doc for $count plugins and roles, one ad-hoc module call, all from the install"
