#!/usr/bin/env bash
# The changelog step of `make test`:
#  1. `antsibull-changelog lint` (every fragment in changelogs/fragments/) and
#     `lint-changelog-yaml` (the release history) are clean;
#  2. CHANGELOG.md is what `antsibull-changelog generate` makes from
#     changelogs/changelog.yaml (nobody edits it by hand);
#  3. a change to plugins/ or roles/ since the last release carries a fragment.
#
# "Since the last release" is since the newest commit that changed
# changelogs/changelog.yaml (`antsibull-changelog release` rewrites that file
# and moves the fragments into it), so the rule needs no tags and works in any
# full clone, CI's fresh one included.  The comparison is against the work
# tree, so uncommitted and untracked files count too.  A fragment counts when
# it was added or changed since that commit.
#
# Rule 3 is then run once on a scratch clone with a made-up change to a module
# and no fragment, where it must fail, so a check that has gone blind shows.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

cd "$REPO_ROOT"
history=changelogs/changelog.yaml

antsibull-changelog lint
antsibull-changelog lint-changelog-yaml "$history"
log "antsibull-changelog lint: fragments and $history clean"

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
antsibull-changelog generate --output "$generated" --output-format md
if ! diff -u CHANGELOG.md "$generated" >&2; then
    die "CHANGELOG.md differs from what antsibull-changelog generates from $history (run: antsibull-changelog generate)"
fi
log "CHANGELOG.md matches $history"

# Paths under $3... changed since commit $2, work tree included, one a line;
# $1 is a git diff-filter (d: leave deletions out).
changed_since() {
    local filter=$1 base=$2
    shift 2
    git diff --name-only --diff-filter="$filter" "$base" -- "$@"
    git ls-files --others --exclude-standard -- "$@"
}

# Rule 3 on the git checkout in $1; prints why and returns 1 when it is broken.
fragment_rule() {
    local repo=$1 base code fragments
    git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
        || { echo "$repo is not a git checkout: the fragment rule needs its history"; return 1; }
    [ "$(git -C "$repo" rev-parse --is-shallow-repository)" = false ] \
        || { echo "$repo is a shallow clone: the fragment rule needs the commit that last changed $history (git fetch --unshallow)"; return 1; }
    base=$(git -C "$repo" log -1 --format=%H -- "$history")
    [ -n "$base" ] || { echo "no commit changes $history: nothing to compare against"; return 1; }
    code=$(cd "$repo" && changed_since ACDMRTUXB "$base" plugins roles | sort -u)
    fragments=$(cd "$repo" && changed_since d "$base" changelogs/fragments | { grep -E '\.ya?ml$' || true; } | sort -u)
    if [ -n "$code" ] && [ -z "$fragments" ]; then
        echo "plugins/ or roles/ changed since the last release ($(git -C "$repo" log -1 --format='%h %s' "$base")) but no changelogs/fragments/*.yml was added:"
        awk '{ print "  " $0 }' <<<"$code"
        echo "add changelogs/fragments/<branch>.yml (minor_changes/bugfixes/...; 'trivial:' for a change users cannot see)"
        return 1
    fi
    if [ -n "$code" ]; then
        echo "plugins/ or roles/ changed since $(git -C "$repo" log -1 --format=%h "$base"); fragments: $(paste -sd' ' <<<"$fragments")"
    else
        echo "no change to plugins/ or roles/ since $(git -C "$repo" log -1 --format=%h "$base")"
    fi
}

if ! why=$(fragment_rule "$REPO_ROOT"); then
    die "$why"
fi
log "$why"

# Controls on a scratch clone of HEAD (objects shared; only changelogs/ and
# plugins/ checked out): one module touched and no fragment must be refused,
# and accepted once a fragment is added.
scratch=$(mktemp -d)
trap 'rm -f "$generated"; rm -rf "$scratch"' EXIT
git clone --quiet --shared --no-checkout "$REPO_ROOT" "$scratch/repo"
git -C "$scratch/repo" checkout --quiet HEAD -- changelogs plugins
rm -f "$scratch"/repo/changelogs/fragments/*.yml
module=$(find "$scratch/repo/plugins/modules" -name '*.py' | sort | head -n 1)
echo '# touched by the changelog check' >> "$module"
if fragment_rule "$scratch/repo" >/dev/null; then
    die "the fragment rule passed a module change without a fragment (scratch clone $scratch/repo): it is broken"
fi
mkdir -p "$scratch/repo/changelogs/fragments"
printf 'trivial:\n  - Changelog check control.\n' > "$scratch/repo/changelogs/fragments/control.yml"
if ! why=$(fragment_rule "$scratch/repo"); then
    die "the fragment rule refused a module change that has a fragment: $why"
fi
log "controls: a module change without a fragment is refused, with one accepted"
