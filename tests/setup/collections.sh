#!/usr/bin/env bash
# Lay out the collections tree that ansible-test and ansible-lint work in:
#
#   .build/ansible_collections/hpc/jobroot      copy of this repo's files
#   .build/ansible_collections/community/general -> .venv's copy
#   .build/ansible_collections/ansible/posix     -> .venv's copy
#
# ansible-test must run from .../ansible_collections/hpc/jobroot and resolves
# dependency collections only inside that same ansible_collections/ tree
# (it ignores ANSIBLE_COLLECTIONS_PATH for them), hence the symlinks.
#
# The copy holds exactly git's list of files (tracked, plus untracked that are
# not ignored) and is refreshed with rsync --delete on every run, so edits,
# new files and deletions all show up.  tests/output/ inside the copy (where
# ansible-test writes its results) is kept between runs.
#
# The copy gets an empty git repository of its own: ansible-test takes its
# file list from the nearest .git above the collection, and without one it
# would find this repo's, where .build/ is ignored, and test nothing ("All
# targets skipped").  In the copy's own repo every file is untracked and
# `git ls-files --others --exclude-standard` lists them all.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

[ -x "$VENV/bin/python" ] || die "no venv at $VENV (run tests/setup/venv.sh first)"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

mkdir -p "$COLLECTION_COPY"

# --- dependency collections, from the `ansible` package in the venv --------
for dep in community/general ansible/posix; do
    src="$site/ansible_collections/$dep"
    dst="$BUILD_DIR/ansible_collections/$dep"
    [ -d "$src" ] || die "$dep not in the venv ($src); is the ansible package installed?"
    if [ "$(readlink "$dst" 2>/dev/null || true)" != "$src" ]; then
        mkdir -p "$(dirname "$dst")"
        rm -rf "$dst"
        ln -s "$src" "$dst"
        log "linked $dep -> $src"
    fi
done

# --- this collection: git's file list, mirrored ------------------------------
# rsync filter: include each listed file and its parent directories, exclude
# everything else; --delete-excluded then removes whatever is no longer listed.
filter=$(mktemp)
trap 'rm -f "$filter"' EXIT
{
    echo 'P /tests/output/'
    echo 'P /.git/'
    if git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$REPO_ROOT" ls-files -z -co --exclude-standard --deduplicate
    else
        # Not a git checkout (e.g. an unpacked tarball): take every file but
        # the generated trees.
        (cd "$REPO_ROOT" && find . \( -path ./.git -o -path ./.venv -o -path ./.build \
            -o -path ./tests/output -o -path ./.ansible \) -prune -o \( -type f -o -type l \) -printf '%P\0')
    fi | (cd "$REPO_ROOT" && while IFS= read -r -d '' f; do
        # tracked but deleted in the work tree: skip
        [ -e "$f" ] || [ -L "$f" ] || continue
        printf '%s\n' "$f"
    done) | awk '
        { gsub(/[][*?\\]/, "\\\\&") }          # rsync wildcards are literal here
        {
            n = split($0, part, "/"); dir = ""
            for (i = 1; i < n; i++) {
                dir = dir "/" part[i]
                if (!(dir in seen)) { seen[dir] = 1; print "+ " dir "/" }
            }
            print "+ /" $0
        }
        END { print "- *" }'
} > "$filter"

# rsync --delete must never reach into a mount (say, one a failed test left
# behind): refuse while anything is mounted inside the copy.
if awk -v p="$COLLECTION_COPY/" 'index($5 "/", p) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo; then
    die "something is mounted under $COLLECTION_COPY; unmount it before refreshing the copy"
fi

if [ ! -d "$COLLECTION_COPY/.git" ]; then
    git -c init.defaultBranch=main init -q "$COLLECTION_COPY"
fi
rsync -a --delete --delete-excluded --filter="merge $filter" "$REPO_ROOT/" "$COLLECTION_COPY/"
log "collection copy refreshed: $COLLECTION_COPY ($(grep -c '^+ /.*[^/]$' "$filter") files)"
