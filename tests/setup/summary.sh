#!/usr/bin/env bash
# Print the timings of one make run and a closing count line.
#   usage: tests/setup/summary.sh RUN_ID TARGET...
# A target with no line in .build/timings.tsv for RUN_ID did not run (make -k
# skips what depends on a failed step) and counts as failed.
set -euo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 RUN_ID TARGET..."
run=$1
shift
log_file="$BUILD_DIR/timings.tsv"

passed=0
failed=0
total=0
printf '\n%-14s %-16s %9s\n' step result seconds
for target in "$@"; do
    line=$(awk -F'\t' -v r="$run" -v t="$target" '$1 == r && $3 == t' "$log_file" 2>/dev/null | tail -n 1)
    if [ -z "$line" ]; then
        status="not run"
        secs=-
    else
        status=$(cut -f4 <<<"$line")
        secs=$(cut -f5 <<<"$line")
        total=$(awk -v a="$total" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')
    fi
    if [ "$status" = ok ] || [ "$status" = SKIPPED ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    printf '%-14s %-16s %9s\n' "$target" "$status" "$secs"
done
printf '%-14s %-16s %9s\n' total "" "$total"
printf 'make-steps: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
