#!/usr/bin/env bash
# After a failed `make test`: say in a few short lines where each guest
# scenario failed.  .ci/run prints this last, because CI keeps only the start
# and the end of a long output.
#   usage: tests/setup/where-failed.sh
# For each scenario log (.build/molecule/NAME.log) and each playbook that
# ended with an error: the playbook, the task and the last failure before it
# (ignored failures left out), cut to 600 characters; then failed pytest
# cases.  For each guest: the end of its serial console, which shows a boot
# that hung or a QEMU that is gone.
set -uo pipefail
# shellcheck source=tests/setup/lib.sh
. "$(dirname "$0")/lib.sh"

for log in "$BUILD_DIR"/molecule/*.log; do
    [ -f "$log" ] || continue
    awk -v scenario="$(basename "$log" .log)" '
        function out(s) { if (n++ < 4) print substr(s, 1, 600) }
        / TASK \[/ { task = $0; sub(/^[0-9:]+ +TASK /, "", task); sub(/ \*+$/, "", task); next }
        held != "" { if ($0 !~ /\.\.\.ignoring/) failure = held; held = "" }
        / fatal: \[/ { held = task " " substr($0, index($0, "fatal:")); next }
        /Ansible return code was/ {
            playbook = $NF; sub(/.*\//, "", playbook); sub(/[^a-z_.]+$/, "", playbook)
            # molecule repeats the line; say each playbook once
            if (!(playbook in said)) out("FAILED " scenario " " playbook ": " (failure != "" ? failure : "(no failed task in the log)"))
            said[playbook] = 1
            failure = ""
        }
        /^[0-9:]+ +FAILED .*::/ { out("FAILED " scenario " " $0) }
        END { if (held != "") out("FAILED " scenario " (last task) " held) }' "$log"
done
for state in "$BUILD_DIR"/guests/*/; do
    guest=$(basename "$state")
    [ -f "$state/console.log" ] || continue
    printf 'console of guest %s (end): %s\n' "$guest" \
        "$(GUESTS_DIR="$BUILD_DIR/guests" "$REPO_ROOT/tests/guest/guest.sh" console "$guest" 6 | cut -c1-160 | paste -sd '|' | tail -c 600)"
done
