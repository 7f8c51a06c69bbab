#!/usr/bin/env bash
# A make test step for a guest suite that may be uninstallable on a given day
# (sid changes daily):
#
#   tests/guest/optional-suite.sh SUITE build      build (or find) its image
#   tests/guest/optional-suite.sh SUITE molecule   run its molecule scenarios
#   tests/guest/optional-suite.sh --reason LOG     print the apt reason in LOG
#
# build: GUEST_SUITE=SUITE build-image.sh.  If the build fails because apt (or
# debootstrap) cannot resolve the suite's archive -- unmet dependencies,
# held/broken packages, a package without an installation candidate -- it
# prints one line
#     SKIPPED SUITE: <apt's reason>
# records it in .build/skipped-SUITE and exits 77 (tests/setup/timed.sh shows
# the step as SKIPPED and make test goes on).  Any other failure fails.  Once
# an image of the suite exists (the cache key matches) nothing is skipped.
# molecule: the suite's scenarios (MOLECULE_SUITES=SUITE run-molecule.sh),
# unless the build step recorded a skip: then the same SKIPPED line, exit 77.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
SKIPPED=77

die() { printf '[optional-suite] ERROR: %s\n' "$*" >&2; exit 1; }

# The first apt/debootstrap resolver complaint in a build log, on one line:
# the error line, plus the first "Depends:" line after an unmet-dependencies
# header (which package could not be installed and why).
apt_reason() {
    awk '
        /^E: Unable to correct problems/ || /^E: Unable to locate package/ \
        || /has no installation candidate/ || /^E: Error, pkgProblemResolver/ \
        || /^E: Couldn.t find these debs/ || /^E: Couldn.t satisfy/ {
            if (!err) err = $0 }
        /The following packages have unmet dependencies/ { unmet = 1; next }
        unmet == 1 && /Depends:|Breaks:|Conflicts:/ { gsub(/^ +/, ""); dep = $0; unmet = 2 }
        END { if (err == "" && dep == "") exit 1
              if (dep != "") printf "%s%s%s\n", err, (err != "" ? " -- " : ""), dep
              else print err }' "$1"
}

case "${1:-}" in
    --reason) [ $# -eq 2 ] || die "usage: $0 --reason LOG"; apt_reason "$2"; exit ;;
esac
[ $# -eq 2 ] || die "usage: $0 SUITE build|molecule"
suite=$1
case "$suite" in bookworm|trixie|sid) ;; *) die "suite '$suite' is not bookworm, trixie or sid" ;; esac
mark="$REPO_ROOT/.build/skipped-$suite"
mkdir -p "$REPO_ROOT/.build"

case "$2" in
    build)
        rm -f "$mark"
        rc=0
        GUEST_SUITE=$suite "$HERE/build-image.sh" || rc=$?
        [ "$rc" -eq 0 ] && exit 0
        dir=$(GUEST_SUITE=$suite "$HERE/build-image.sh" --dir)
        log="$(dirname "$dir")/.build-$(basename "$dir").log"
        if [ -f "$log" ] && reason=$(apt_reason "$log"); then
            echo "SKIPPED $suite: $reason" | tee "$mark"
            exit $SKIPPED
        fi
        exit $rc ;;
    molecule)
        if [ -f "$mark" ]; then cat "$mark"; exit $SKIPPED; fi
        MOLECULE_SUITES=$suite exec "$HERE/run-molecule.sh" ;;
    *) die "usage: $0 SUITE build|molecule" ;;
esac
