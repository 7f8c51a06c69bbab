#!/usr/bin/env bash
# Run every molecule scenario under molecule/ against ONE QEMU test guest.
#
#   tests/guest/run-molecule.sh                 all scenarios (molecule/*/molecule.yml)
#   tests/guest/run-molecule.sh jobvol slurm    only these, in this order
#
# The guest boots once (tests/guest/guest.sh start), with the most data disks
# any scenario asks for (its platform's `disks`), and is shared through
# HPC_JOBROOT_GUEST: molecule/shared/create.yml and destroy.yml then reset the
# data disks between scenarios instead of booting a guest each.  The guest is
# stopped and its disks deleted when this script exits, whatever happened
# (trap).  All scenarios run even if one fails; the exit status is non-zero if
# any failed, and a summary with each scenario's time is printed at the end.
#
# Adding a scenario: create molecule/NAME/molecule.yml using
# ../shared/create.yml and ../shared/destroy.yml (copy molecule/jobvol's), and
# it is picked up.  Each scenario's output, time-stamped, is in
# .build/molecule/NAME.log; the time of each molecule action (create,
# converge, idempotence, verify, destroy) is printed after it and collected
# in .build/molecule/phases.tsv.
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

# The largest `disks:` any scenario's platform asks for (default 3).
disks=3
for s in "${scenarios[@]}"; do
    n=$(python3 -c 'import sys, yaml; p = (yaml.safe_load(open(sys.argv[1])) or {}).get("platforms") or [{}]; print(max(int(x.get("disks", 0)) for x in p))' \
        "molecule/$s/molecule.yml" 2>/dev/null || echo 0)
    [ "$n" -gt "$disks" ] && disks=$n
done

bash tests/setup/collections.sh
export ANSIBLE_COLLECTIONS_PATH="$REPO_ROOT/.build${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
export MOLECULE_NO_LOG=false ANSIBLE_FORCE_COLOR=false PY_COLORS=0

mkdir -p "$LOG_DIR"
export MOLECULE_PHASES_TSV="$LOG_DIR/phases.tsv"
: >"$MOLECULE_PHASES_TSV"
# shellcheck disable=SC2317  # called by the trap
stop_guest() {
    local rc=$?
    "$HERE/guest.sh" stop "$GUEST_NAME" || true
    exit "$rc"
}
trap stop_guest EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
"$HERE/guest.sh" start "$GUEST_NAME" --disks "$disks" --disk-size "${GUEST_DISK_SIZE:-4G}"
boot=$(( $(date +%s) - t0 ))
export HPC_JOBROOT_GUEST="$GUEST_NAME"

declare -A result seconds
failed=0
for s in "${scenarios[@]}"; do
    log "scenario $s (log: $LOG_DIR/$s.log)"
    start=$(date +%s)
    if molecule test -s "$s" 2>&1 | "$HERE/molecule-phases.py" "$s" | tee "$LOG_DIR/$s.log"; then
        result[$s]=passed
    else
        result[$s]=FAILED
        failed=1
    fi
    seconds[$s]=$(( $(date +%s) - start ))
done

log "summary (guest boot ${boot} s, total $(( $(date +%s) - t0 )) s):"
for s in "${scenarios[@]}"; do
    printf '  %-20s %-7s %4d s   %s\n' "$s" "${result[$s]}" "${seconds[$s]}" \
        "$(awk -F'\t' -v s="$s" '$1 == s { printf "%s %ss  ", $2, $3 }' "$MOLECULE_PHASES_TSV")" >&2
done
exit $failed
