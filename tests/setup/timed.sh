#!/usr/bin/env bash
# Run one make target's command with a start stamp and the elapsed seconds,
# and append "run-id<TAB>UTC-time<TAB>target<TAB>status<TAB>seconds" to
# .build/timings.tsv (the README's phase times come from there; the run id is
# JOBROOT_RUN_ID, set once per make run by the Makefile).
#   usage: tests/setup/timed.sh TARGET COMMAND [ARG...]
set -uo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: $0 TARGET COMMAND [ARG...]"
target=$1
shift

start=$(date +%s.%N)
printf '\n==> [%s] make %s: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$target" "$*"
"$@"
rc=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
# 77: the step skipped itself and said why (tests/guest/optional-suite.sh)
if [ $rc -eq 0 ]; then status=ok; elif [ $rc -eq 77 ]; then status=SKIPPED; rc=0; else status="FAILED(rc=$rc)"; fi
printf '<== [%s] make %s: %s in %s s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$target" "$status" "$secs"
mkdir -p "$BUILD_DIR"
printf '%s\t%s\t%s\t%s\t%s\n' "${JOBROOT_RUN_ID:-manual}" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$target" "$status" "$secs" >> "$BUILD_DIR/timings.tsv"
exit $rc
