#!/usr/bin/env bash
# shellcheck disable=SC2016  # $(...) in single quotes is meant for the guest
# make demo: the whole product on real input, end to end.
#
#  1. set-up: venv, collections (make collections), the guest image
#     (tests/guest/build-image.sh, cached) and an older Debian userland
#     (bullseye, debootstrapped once and cached by the chroot_image tooling);
#  2. boot the QEMU guest (real kernel with device-mapper) with two data disks;
#  3. provision it with playbooks/site.yml: LVM pool, the bullseye image on the
#     allow-list, the hook command, Slurm with Prolog/Epilog + SPANK plugin;
#  4. submit real jobs as an ordinary user: one in the node's own OS, one in
#     bullseye, at the same time; each reports /etc/os-release, its /tmp, its
#     mounts and what it sees of the other job; a job asking for an OS that
#     is not on the allow-list is refused;
#  5. show that the volumes, mounts and records are gone afterwards;
#  6. print a short report and stop the guest (also on failure or Ctrl-C).
#
# Environment: DEMO_GUEST (guest name, default demo), DEMO_KEEP=1 (leave the
# guest running at the end), DEMO_SLOTS (default 4).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
GUEST=${DEMO_GUEST:-demo}
SLOTS=${DEMO_SLOTS:-4}
GUESTSH="$REPO/tests/guest/guest.sh"
export PATH="$REPO/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$REPO/.build"
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0} ANSIBLE_NOCOLOR=1
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_DISPLAY_SKIPPED_HOSTS=0 ANSIBLE_DISPLAY_OK_HOSTS=1
WORK="$REPO/.build/demo"
T0=$SECONDS
declare -A TIME

step() { printf '\n=== [%s, +%ds] %s\n' "$(date -u +%H:%M:%S)" $((SECONDS - T0)) "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }
G() { "$GUESTSH" ssh "$GUEST" "$@"; }
# run a command in the guest as the demo user, in her home
U() { G "cd /home/alice && runuser -u alice -- $*"; }

# The bullseye tree: $JOBROOT_BULLSEYE_TREE if set, else a minbase
# debootstrap cached under ~/.cache/hpc-jobroot/trees (about 1-2 min once).
bullseye_tree() {
    if [ -n "${JOBROOT_BULLSEYE_TREE:-}" ]; then echo "$JOBROOT_BULLSEYE_TREE"; return; fi
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/hpc-jobroot/trees/bullseye" mirror
    if [ ! -f "$dir/.complete" ]; then
        mirror=$(grep -rhoE '^(deb|URIs:) +(\[[^]]*\] +)?https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
                 | grep -oE 'https?://[^ ]+' | grep -E '/debian/?$' | head -n 1)
        [ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*"
        echo "debootstrap --variant=minbase bullseye from $mirror (once) ..." >&2
        rm -rf "$dir.partial"
        mkdir -p "$(dirname "$dir")"
        debootstrap --variant=minbase bullseye "$dir.partial" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap bullseye failed"; }
        touch "$dir.partial/.complete"
        rm -rf "$dir"
        mv "$dir.partial" "$dir"
    fi
    echo "$dir"
}

cleanup() {
    local rc=$?
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        echo "demo: leaving guest $GUEST running (tests/guest/guest.sh stop $GUEST)"
    else
        "$GUESTSH" stop "$GUEST" || true
    fi
    [ $rc -eq 0 ] || echo "demo: FAILED (exit $rc) after $((SECONDS - T0)) s" >&2
    exit $rc
}

step "Set-up: venv and collections"
if [ ! -x "$REPO/.venv/bin/ansible-playbook" ] || [ ! -d "$REPO/.build/ansible_collections/hpc/jobroot" ]; then
    make -C "$REPO" --no-print-directory collections
else
    "$REPO/tests/setup/collections.sh"
fi
mkdir -p "$WORK"

step "Set-up: the bullseye userland (cached after the first run)"
t=$SECONDS
BULLSEYE=$(bullseye_tree)
[ -x "$BULLSEYE/bin/sh" ] || die "no bullseye tree at $BULLSEYE"
TIME[bullseye]=$((SECONDS - t))
echo "bullseye tree: $BULLSEYE ($(cat "$BULLSEYE/etc/debian_version"))"

step "Boot the guest (QEMU/TCG, real LVM; builds the image on first use)"
trap cleanup EXIT
trap 'exit 130' INT TERM
t=$SECONDS
"$GUESTSH" start "$GUEST" --disks 2 --disk-size 4G
TIME[boot]=$((SECONDS - t))
INV=$("$GUESTSH" inventory "$GUEST")

step "Copy the bullseye master tree to the node (the node is its own image build host here)"
t=$SECONDS
G 'test -f /var/lib/hpc-jobroot/build/bullseye/etc/debian_version' 2>/dev/null || {
    tar -C "$BULLSEYE" --numeric-owner --exclude=./.complete -cf - . \
        | G 'mkdir -p /var/lib/hpc-jobroot/build/bullseye && tar -C /var/lib/hpc-jobroot/build/bullseye --numeric-owner -xpf -'
}
TIME[copy_tree]=$((SECONDS - t))
G 'du -sh /var/lib/hpc-jobroot/build/bullseye'

step "Provision the node with playbooks/site.yml"
cat >"$WORK/vars.json" <<JSON
{"jobroot_hosts": "all",
 "jobroot_pvs": "{{ guest_data_disks }}",
 "jobroot_slots": $SLOTS,
 "jobroot_default_os": "host",
 "jobroot_images": [{"name": "bullseye", "version": "$(tr -c 'A-Za-z0-9.\n' '.' <"$BULLSEYE/etc/debian_version")", "source": "/var/lib/hpc-jobroot/build/bullseye"}]}
JSON
t=$SECONDS
ansible-playbook -i "$INV" "$REPO/playbooks/site.yml" -e "@$WORK/vars.json" | tee "$WORK/site.log" \
    | grep --line-buffered -E '^(TASK|PLAY RECAP|fatal|changed|failed|ok: .*=>)|^[a-z].*: ok=' || true
grep -q 'failed=0' "$WORK/site.log" || { tail -40 "$WORK/site.log"; die "site.yml failed"; }
TIME[provision]=$((SECONDS - t))
t=$SECONDS
ansible-playbook -i "$INV" "$REPO/playbooks/site.yml" -e "@$WORK/vars.json" >"$WORK/site2.log" 2>&1 \
    || { tail -40 "$WORK/site2.log"; die "second site.yml run failed"; }
TIME[provision_again]=$((SECONDS - t))
echo "second run: $(grep -o 'changed=[0-9]*' "$WORK/site2.log" | head -1) in ${TIME[provision_again]} s"

step "The node"
G 'sinfo; echo; echo "allow-list:"; grep -v "^#" /etc/hpc-jobroot/chroots.conf; echo; vgs jobs; \
   python3 -c "import json; p=json.load(open(\"/etc/hpc-jobroot/pool.json\")); print(\"slots:\", p[\"slots\"], \" slot size:\", p[\"slot_extents\"]*p[\"extent_size\"]>>20, \"MiB\")"'
G 'id alice >/dev/null 2>&1 || useradd --create-home --shell /bin/bash alice'
G "cat > /home/alice/report.sh" <<'JOB'
#!/bin/bash
# What a job sees.  $1: a label.
echo "== job $SLURM_JOB_ID ($1), user $(id -un), cwd $(pwd)"
. /etc/os-release
echo "os-release:  $PRETTY_NAME (debian_version $(cat /etc/debian_version))"
echo "/tmp:        $(df -h --output=size,fstype /tmp | tail -n 1 | tr -s ' ') on $(df --output=source /tmp | tail -n 1)"
echo "mounts:      $(awk '{printf "%s ", $5}' /proc/self/mountinfo)"
echo "secret of job $SLURM_JOB_ID" > /tmp/secret.$SLURM_JOB_ID
sleep 6   # the other job writes its secret meanwhile
echo "in /tmp:     $(cd /tmp && ls secret.* | tr '\n' ' ')"
echo "job roots:   $(ls /var/lib/hpc-jobroot/roots 2>&1 | head -n 1)"
JOB
G 'chown alice: /home/alice/report.sh && chmod 755 /home/alice/report.sh'

step "Submit two jobs at once as user alice: the node's OS, and bullseye"
t=$SECONDS
J1=$(U sbatch --parsable -o demo-%j.out ./report.sh host)
J2=$(U sbatch --parsable --jobroot-os=bullseye -o demo-%j.out ./report.sh bullseye)
echo "submitted $J1 (host OS) and $J2 (--jobroot-os=bullseye)"
sleep 3
echo "while they run:"
G "squeue; echo; lvs --noheadings -o lv_name,lv_size,lv_tags jobs; findmnt -rn -o TARGET | grep -c '^/var/lib/hpc-jobroot/roots/' | sed 's/^/mounts under the job roots: /'"
until [ -z "$(G squeue --noheader --jobs "$J1,$J2" 2>/dev/null)" ]; do sleep 1; done
TIME[jobs]=$((SECONDS - t))
echo
G "cat /home/alice/demo-$J1.out; echo; cat /home/alice/demo-$J2.out"
G "sacct --noheader -j $J1,$J2 -X -o jobid,state,exitcode 2>/dev/null || true"

step "A job that asks for an OS not on the allow-list"
U "srun --jobroot-os=sl5 cat /etc/os-release" 2>&1 | sed 's/^/  /' || true
U "env JOBROOT_OS=../etc sbatch --wrap true" 2>&1 | sed 's/^/  /' || true

step "Job latency (srun /bin/true as alice: Prolog with LV + mkfs + mounts, chroot, Epilog)"
G 'cd /home/alice; TIMEFORMAT="%R s"; for i in 1 2 3; do time runuser -u alice -- srun /bin/true; done' 2>&1 | tee "$WORK/latency.txt"

step "Afterwards: volumes, mounts and records are gone"
sleep 1
G 'echo "LVs tagged hpc_jobroot: $(lvs --noheadings -o lv_name @hpc_jobroot | wc -l)"; \
   echo "mounts under /var/lib/hpc-jobroot/roots: $(findmnt -rn -o TARGET | grep -c "^/var/lib/hpc-jobroot/roots/" || true)"; \
   echo "job roots: $(ls /var/lib/hpc-jobroot/roots | wc -l)  records: $(ls /run/hpc-jobroot/jobs | wc -l)"; \
   echo "node: $(sinfo --noheader -o %t)"'

step "Report"
cat <<REPORT
  bullseye tree ready      ${TIME[bullseye]} s
  guest boot               ${TIME[boot]} s
  bullseye tree to node    ${TIME[copy_tree]} s
  provisioning (site.yml)  ${TIME[provision]} s, second run ${TIME[provision_again]} s
  two jobs, submit to end  ${TIME[jobs]} s (each job sleeps 6 s)
  srun /bin/true           $(grep -E '^[0-9.]+ s$' "$WORK/latency.txt" | tr '\n' ' ')
  demo total               $((SECONDS - T0)) s
REPORT
