#!/usr/bin/env bash
# Kill the prologue or the epilogue at each of its steps in turn, then run
# `jobroot gc`, and count what is left (issue 11, item 9).  Runs as root on
# the Slurm guest, with real LVM (molecule/slurm/verify_faults.yml).
#
#   kill-matrix.sh USER ROOT_BASE RUN_DIR HOOK LIBRARY
#
# First, the switch without the test variable must be refused with nothing
# done.
#
# The steps are the library's own list (faults.STEPS), so a new kill point is
# tried without changing this script; the steps only an encrypted volume
# passes (faults.ENCRYPTED_STEPS) are left out, since this node does not
# encrypt: the jobvol scenario kills at those (test_jobvol.py).  A prologue step: the prologue is
# killed there.  An epilogue step: a full prologue, a process of the job's
# user left running in the root (as a job would), and the epilogue killed
# there.  Every run must die by SIGKILL (exit 137: the step was reached);
# then gc (which asks Slurm, which does not know these job ids) must exit 0
# and leave zero job LVs, mounts under the root base, roots, state files,
# records, pins, bind-tree manifests, temp files and processes in roots,
# and the canary files in the user's home (bound into every root) must be
# unchanged.  Prints one line per step, then "kill points tried: N",
# "leaks: N" (items left over all steps; a changed canary counts one) and
# "failures: N" (a kill that did not happen, a gc that failed); exits 1
# unless both are 0.
set -u -o pipefail

[ $# -eq 5 ] || { echo "usage: $0 USER ROOT_BASE RUN_DIR HOOK LIBRARY" >&2; exit 2; }
user=$1 root_base=$2 run_dir=$3 hook=$4 library=$5
home=$(getent passwd "$user" | cut -d: -f6)
canary=$home/canary

mapfile -t steps < <(python3 -I -c 'import sys; sys.path.insert(0, sys.argv[1])
from ansible_collections.hpc.jobroot.plugins.module_utils import faults
print("\n".join(s for s in faults.STEPS if s not in faults.ENCRYPTED_STEPS))' "$library")
[ ${#steps[@]} -gt 0 ] || { echo "no kill points found in $library" >&2; exit 2; }

count() { # count FOLDER [find tests...]: entries directly in FOLDER
    local folder=$1; shift
    [ -d "$folder" ] || { echo 0; return; }
    find "$folder" -mindepth 1 -maxdepth 1 "$@" | wc -l
}

# what is left, as name=count pairs
leftovers() {
    local procs=0 p
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/root" 2>/dev/null)" in "$root_base"/*) procs=$((procs + 1)) ;; esac
    done
    echo "lvs=$(lvs --noheadings -o lv_name @hpc_jobroot | wc -l)" \
         "mounts=$(awk -v b="$root_base/" 'index($5, b) == 1' /proc/self/mountinfo | wc -l)" \
         "roots=$(count "$root_base")" \
         "state=$(count "$run_dir/jobs" -name '*.json')" \
         "records=$(count "$run_dir/jobs" \( -name '*.root' -o -name '*.refused' \))" \
         "pins=$(count "$run_dir/pins")" \
         "manifests=$(count "$run_dir/trees")" \
         "temp=$(find "$run_dir" "$root_base" -maxdepth 2 -name '*.tmp*' | wc -l)" \
         "procs=$procs" \
         "canary=$(cd "$canary" && sha256sum -- * | sha256sum | cut -c1-12)"
}

mkdir -p "$canary"
for i in 1 2 3; do echo "canary $i of $user" >"$canary/file$i"; done
chown -R "$user:" "$canary"
clean=$(leftovers)
case "$clean" in
    "lvs=0 mounts=0 roots=0 state=0 records=0 pins=0 manifests=0 temp=0 procs=0 canary="*) ;;
    *) echo "the node is not clean before the first kill: $clean" >&2; exit 1 ;;
esac

# Without the test variable the switch is refused, and nothing is done.
out=$(SLURM_JOB_ID=900000 SLURM_JOB_USER=$user HPC_JOBROOT_KILL_AT=${steps[-1]} \
      "$hook" prologue --batch-system slurm -- 2>&1)
rc=$?
left=$(leftovers)
if [ "$rc" -ne 1 ] || [[ $out != *"test-only switch, refused"* ]] || [ "$left" != "$clean" ]; then
    echo "the switch without HPC_JOBROOT_TESTING=1 was not refused: exit $rc, $out; $left" >&2
    exit 1
fi
echo "switch without the test variable: refused (exit 1), nothing done"

tried=0 leaks=0 failures=0 job=900000
for step in "${steps[@]}"; do
    job=$((job + 1))
    tried=$((tried + 1))
    export SLURM_JOB_ID=$job SLURM_JOB_USER=$user
    phase=${step%%.*}
    if [ "$phase" = epilogue ]; then
        if ! out=$("$hook" prologue --batch-system slurm -- 2>&1); then
            echo "$step: the prologue before it failed: $out"; failures=$((failures + 1)); continue
        fi
        setsid chroot --userspec="$user:" "$root_base/$job" sleep 600 </dev/null >/dev/null 2>&1 &
    fi
    out=$(HPC_JOBROOT_TESTING=1 HPC_JOBROOT_KILL_AT=$step "$hook" "$phase" --batch-system slurm -- 2>&1)
    rc=$?
    gc_out=$("$hook" gc 2>&1)
    gc_rc=$?
    left=$(leftovers)
    n=0
    for pair in $left; do
        case "$pair" in
            canary=*) [ "$pair" = "${clean##* }" ] || n=$((n + 1)) ;;
            *) n=$((n + ${pair#*=})) ;;
        esac
    done
    leaks=$((leaks + n))
    verdict=ok
    if [ "$rc" -ne 137 ]; then verdict="NOT KILLED (exit $rc): $out"; fi
    if [ "$gc_rc" -ne 0 ]; then verdict="GC FAILED (exit $gc_rc): $gc_out"; fi
    [ "$verdict" = ok ] || failures=$((failures + 1))
    [ "$n" -eq 0 ] || verdict="$verdict; $n LEFT BEHIND"
    echo "$step: exit $rc, gc exit $gc_rc; $left: $verdict"
done
unset SLURM_JOB_ID SLURM_JOB_USER
rm -f -- "$canary"/file1 "$canary"/file2 "$canary"/file3
rmdir -- "$canary"

echo "kill points tried: $tried"
echo "leaks: $leaks"
echo "failures: $failures"
[ "$leaks" -eq 0 ] && [ "$failures" -eq 0 ] && [ "$tried" -eq ${#steps[@]} ]
