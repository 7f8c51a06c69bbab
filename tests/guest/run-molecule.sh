#!/usr/bin/env bash
# Run every molecule scenario under molecule/ against ONE QEMU test guest per
# Debian suite.
#
#   tests/guest/run-molecule.sh                 all scenarios (molecule/*/molecule.yml)
#   tests/guest/run-molecule.sh jobvol slurm    only these, in this order
#   MOLECULE_SUITES="sid" tests/guest/run-molecule.sh
#                                               only the scenarios of these suites
#
# Each scenario names the suite of its guest with the platform key `suite`
# (bookworm, trixie or sid; default trixie).  Scenarios are grouped by suite;
# per suite the guest boots once (GUEST_SUITE=<suite> tests/guest/guest.sh
# start <GUEST_NAME>-<suite>), with the most data disks any of its scenarios
# asks for (its platform's `disks`), and is shared through HPC_JOBROOT_GUEST:
# molecule/shared/create.yml and destroy.yml then reset the data disks between
# scenarios instead of booting a guest each.  That guest is stopped and its
# disks deleted before the next suite's boots, and when this script exits,
# whatever happened (trap).  All scenarios run even if one fails; the exit
# status is non-zero if any failed, and a summary with each guest's boot and
# each scenario's time is printed at the end.
#
# Adding a scenario: create molecule/NAME/molecule.yml using
# ../shared/create.yml and ../shared/destroy.yml (copy molecule/jobvol's), and
# it is picked up.  Each scenario's output, time-stamped, is in
# .build/molecule/NAME.log; the time of each molecule action (create,
# converge, idempotence, verify, destroy) is printed after it and collected
# in .build/molecule/phases.tsv.
#
# MOLECULE_BENCH_QUICK=1 (make molecule sets it): after the trixie scenarios,
# before that guest stops, run `bench/run.py --quick --guest <the trixie
# guest>` on it: question 1 at a tiny size (the floor ratio) and the
# second-run ratio of site.yml from this run's slurm converge and idempotence
# phase times (phases.tsv); about a minute.  It checks only that the results
# are well formed; its output is .build/molecule/bench-quick.log and
# .build/bench-quick/, and a failure counts like a failed scenario.
#
# Needs the venv (tests/setup/venv.sh) and the collections tree
# (tests/setup/collections.sh, refreshed here) so `hpc.jobroot.*` resolves to
# the working tree's files.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
VENV="${VENV:-$REPO_ROOT/.venv}"
GUEST_NAME=${GUEST_NAME:-molecule}
LOG_DIR="$REPO_ROOT/.build/molecule"

log() { printf '[run-molecule %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[run-molecule] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/molecule" ] || die "no molecule in $VENV (run tests/setup/venv.sh)"
export PATH="$VENV/bin:$PATH"

cd "$REPO_ROOT"
if [ $# -gt 0 ]; then
    scenarios=("$@")
else
    mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' \
                             | xargs -r -n1 basename | grep -vx shared | sort)
fi
[ ${#scenarios[@]} -gt 0 ] || die "no scenarios under molecule/"
for s in "${scenarios[@]}"; do
    [ -f "molecule/$s/molecule.yml" ] || die "no scenario molecule/$s"
done

# Each scenario's suite (platform key `suite`, default trixie) and the most
# `disks:` its platform asks for.
declare -A suite_of disks_of
suites=()
for s in "${scenarios[@]}"; do
    read -r su n < <(python3 -c 'import sys, yaml
p = (yaml.safe_load(open(sys.argv[1])) or {}).get("platforms") or [{}]
print(p[0].get("suite", "trixie"), max(int(x.get("disks", 0)) for x in p))' "molecule/$s/molecule.yml") \
        || die "cannot read molecule/$s/molecule.yml"
    case "$su" in bookworm|trixie|sid) ;; *) die "molecule/$s: suite '$su' is not bookworm, trixie or sid" ;; esac
    if [ -n "${MOLECULE_SUITES:-}" ] && [[ " $MOLECULE_SUITES " != *" $su "* ]]; then continue; fi
    suite_of[$s]=$su
    disks_of[$s]=$n
    [[ " ${suites[*]} " == *" $su "* ]] || suites+=("$su")
done
[ ${#suites[@]} -gt 0 ] || die "no scenario of the suites '${MOLECULE_SUITES:-}'"

bash tests/setup/collections.sh
export ANSIBLE_COLLECTIONS_PATH="$REPO_ROOT/.build${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
export MOLECULE_NO_LOG=false ANSIBLE_FORCE_COLOR=false PY_COLORS=0

mkdir -p "$LOG_DIR"
export MOLECULE_PHASES_TSV="$LOG_DIR/phases.tsv"
: >"$MOLECULE_PHASES_TSV"
running=""
# shellcheck disable=SC2317  # called by the trap
stop_guest() {
    local rc=$?
    if [ -n "$running" ]; then "$HERE/guest.sh" stop "$running" || true; fi
    exit "$rc"
}
trap stop_guest EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
declare -A result seconds boot
failed=0
for su in "${suites[@]}"; do
    disks=3
    for s in "${scenarios[@]}"; do
        if [ "${suite_of[$s]:-}" = "$su" ] && [ "${disks_of[$s]}" -gt "$disks" ]; then disks=${disks_of[$s]}; fi
    done
    log "suite $su: booting guest $GUEST_NAME-$su with $disks data disks"
    start=$(date +%s)
    running="$GUEST_NAME-$su"
    GUEST_SUITE=$su "$HERE/guest.sh" start "$running" --disks "$disks" --disk-size "${GUEST_DISK_SIZE:-4G}"
    boot[$su]=$(( $(date +%s) - start ))
    export HPC_JOBROOT_GUEST="$running"
    for s in "${scenarios[@]}"; do
        [ "${suite_of[$s]:-}" = "$su" ] || continue
        log "scenario $s on $su (log: $LOG_DIR/$s.log)"
        start=$(date +%s)
        if molecule test -s "$s" 2>&1 | "$HERE/molecule-phases.py" "$s" | tee "$LOG_DIR/$s.log"; then
            result[$s]=passed
        else
            result[$s]=FAILED
            failed=1
        fi
        seconds[$s]=$(( $(date +%s) - start ))
    done
    if [ "$su" = trixie ] && [ "${MOLECULE_BENCH_QUICK:-0}" = 1 ]; then
        log "bench-quick on $running (log: $LOG_DIR/bench-quick.log)"
        start=$(date +%s)
        if "$VENV/bin/python" "$REPO_ROOT/bench/run.py" --quick --guest "$running" 2>&1 \
                | tee "$LOG_DIR/bench-quick.log"; then
            result[bench-quick]=passed
        else
            result[bench-quick]=FAILED
            failed=1
        fi
        seconds[bench-quick]=$(( $(date +%s) - start ))
    fi
    "$HERE/guest.sh" stop "$running"
    running=""
done

log "summary (total $(( $(date +%s) - t0 )) s):"
for su in "${suites[@]}"; do
    printf '  guest %-14s boot %4d s\n' "$su" "${boot[$su]}" >&2
    for s in "${scenarios[@]}"; do
        [ "${suite_of[$s]:-}" = "$su" ] || continue
        printf '  %-20s %-7s %4d s   %s\n' "$s" "${result[$s]}" "${seconds[$s]}" \
            "$(awk -F'\t' -v s="$s" '$1 == s { printf "%s %ss  ", $2, $3 }' "$MOLECULE_PHASES_TSV")" >&2
    done
    if [ -n "${result[bench-quick]:-}" ] && [ "$su" = trixie ]; then
        printf '  %-20s %-7s %4d s   %s\n' bench-quick "${result[bench-quick]}" "${seconds[bench-quick]}" \
            "$(sed -nE 's/^bench: (floor|second-run) ratio[^:]*: ([0-9.]+x).*/\1 \2 /p' "$LOG_DIR/bench-quick.log" \
               | tr -d '\n')" >&2
    fi
done
exit $failed
