#!/usr/bin/env bash
# shellcheck disable=SC2016  # $(...) in single quotes is meant for the guest
# make demo: the whole product on real input, end to end.
#
#  1. set-up: venv, collections (make collections), the guest image
#     (tests/guest/build-image.sh, cached; Debian trixie with Slurm 24.11 by
#     default, GUEST_SUITE picks another) and two older Debian userlands
#     (bullseye and bookworm, each debootstrapped once and cached);
#  2. boot the QEMU guest (real kernel with device-mapper) with two data disks;
#  3. provision it with playbooks/site.yml: LVM pool, the bullseye and bookworm
#     images on the allow-list, the hook command, Slurm with Prolog/Epilog +
#     SPANK plugin;
#  4. submit real jobs as an ordinary user: one in the node's own system, one in
#     bullseye, one in bookworm, at the same time; each reports
#     /etc/os-release, its /tmp, its mounts and what it sees of the other
#     jobs; a job asking for an image that is not on the allow-list is refused;
#  5. wait until no job is completing (squeue empty, no Epilog running), then
#     FAIL unless no LV, mount, job root, record or pin is left;
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

# An older Debian userland SUITE (bullseye, bookworm): $JOBROOT_<SUITE>_TREE
# if set, else a minbase debootstrap cached under ~/.cache/hpc-jobroot/trees
# (about 1-2 min once each).
userland_tree() {
    local suite=$1 var dir mirror
    var="JOBROOT_${suite^^}_TREE"
    if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
    dir="${XDG_CACHE_HOME:-$HOME/.cache}/hpc-jobroot/trees/$suite"
    if [ ! -f "$dir/.complete" ]; then
        mirror=$(grep -rhoE '^(deb|URIs:) +(\[[^]]*\] +)?https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
                 | grep -oE 'https?://[^ ]+' | grep -E '/debian/?$' | head -n 1)
        [ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*"
        echo "debootstrap --variant=minbase $suite from $mirror (once) ..." >&2
        rm -rf "$dir.partial"
        mkdir -p "$(dirname "$dir")"
        debootstrap --variant=minbase "$suite" "$dir.partial" "$mirror" >"$WORK/debootstrap-$suite.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap-$suite.log" >&2; die "debootstrap $suite failed"; }
        touch "$dir.partial/.complete"
        rm -rf "$dir"
        mv "$dir.partial" "$dir"
    fi
    echo "$dir"
}
USERLANDS=(bullseye bookworm)
declare -A TREE

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

step "Set-up: the ${USERLANDS[*]} userlands (cached after the first run)"
t=$SECONDS
for u in "${USERLANDS[@]}"; do
    TREE[$u]=$(userland_tree "$u")
    [ -x "${TREE[$u]}/bin/sh" ] || die "no $u tree at ${TREE[$u]}"
    echo "$u tree: ${TREE[$u]} ($(cat "${TREE[$u]}/etc/debian_version"))"
done
TIME[userlands]=$((SECONDS - t))

step "Boot the guest (QEMU/TCG, real LVM; builds the image on first use)"
trap cleanup EXIT
trap 'exit 130' INT TERM
t=$SECONDS
"$GUESTSH" start "$GUEST" --disks 2 --disk-size 4G
TIME[boot]=$((SECONDS - t))
INV=$("$GUESTSH" inventory "$GUEST")

step "Copy the ${USERLANDS[*]} master trees to the node (the node is its own image build host here)"
t=$SECONDS
for u in "${USERLANDS[@]}"; do
    G "test -f /var/lib/hpc-jobroot/build/$u/etc/debian_version" 2>/dev/null || {
        tar -C "${TREE[$u]}" --numeric-owner --exclude=./.complete -cf - . \
            | G "mkdir -p /var/lib/hpc-jobroot/build/$u && tar -C /var/lib/hpc-jobroot/build/$u --numeric-owner -xpf -"
    }
done
TIME[copy_tree]=$((SECONDS - t))
G 'du -sh /var/lib/hpc-jobroot/build/*'

step "Provision the node with playbooks/site.yml"
cat >"$WORK/vars.json" <<JSON
{"jobroot_hosts": "all",
 "jobroot_pvs": "{{ guest_data_disks }}",
 "jobroot_slots": $SLOTS,
 "jobroot_default_image": "host",
 "jobroot_images": [$(for u in "${USERLANDS[@]}"; do
    printf '%s{"name": "%s", "version": "%s", "source": "/var/lib/hpc-jobroot/build/%s"}' "$([ "$u" = "${USERLANDS[0]}" ] || echo ', ')" \
        "$u" "$(tr -c 'A-Za-z0-9.\n' '.' <"${TREE[$u]}/etc/debian_version")" "$u"
done)]}
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
NODE_OS=$(G '. /etc/os-release; echo "$PRETTY_NAME"')
SLURM_VERSION=$(G 'slurmd -V')
echo "node OS: $NODE_OS, $SLURM_VERSION"
G 'sinfo; echo; echo "allow-list:"; grep -v "^#" /etc/hpc-jobroot/images.conf; echo; vgs jobs; \
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
sleep 6   # the other jobs write their secrets meanwhile
echo "in /tmp:     $(cd /tmp && ls secret.* | tr '\n' ' ')"
echo "job roots:   $(ls /var/lib/hpc-jobroot/roots 2>&1 | head -n 1)"
JOB
G 'chown alice: /home/alice/report.sh && chmod 755 /home/alice/report.sh'

step "Submit three jobs at once as user alice: the host image, ${USERLANDS[*]}"
t=$SECONDS
JOBS=("$(U sbatch --parsable -o demo-%j.out ./report.sh host)")
for u in "${USERLANDS[@]}"; do
    JOBS+=("$(U sbatch --parsable --jobroot-image="$u" -o demo-%j.out ./report.sh "$u")")
done
echo "submitted ${JOBS[0]} (host image), ${JOBS[1]} (--jobroot-image=${USERLANDS[0]}), ${JOBS[2]} (--jobroot-image=${USERLANDS[1]})"
sleep 3
echo "while they run (the node has 2 CPUs: the third job waits for one):"
G "squeue; echo; lvs --noheadings -o lv_name,lv_size,lv_tags jobs; findmnt -rn -o TARGET | grep -c '^/var/lib/hpc-jobroot/roots/' | sed 's/^/mounts under the job roots: /'"
JOBLIST=$(IFS=,; echo "${JOBS[*]}")
until [ -z "$(G squeue --noheader --jobs "$JOBLIST" 2>/dev/null)" ]; do sleep 1; done
TIME[jobs]=$((SECONDS - t))
for j in "${JOBS[@]}"; do echo; G "cat /home/alice/demo-$j.out"; done

step "A job that asks for an image not on the allow-list"
U "srun --jobroot-image=sl5 cat /etc/os-release" 2>&1 | sed 's/^/  /' || true
U "env JOBROOT_IMAGE=../etc sbatch --wrap true" 2>&1 | sed 's/^/  /' || true

step "Job latency (srun /bin/true as alice: Prolog with LV + mkfs + mounts, chroot, Epilog)"
G 'cd /home/alice; TIMEFORMAT="%R s"; for i in 1 2 3; do time runuser -u alice -- srun /bin/true; done' 2>&1 | tee "$WORK/latency.txt"

step "Afterwards: volumes, mounts, roots, records and pins are gone"
# A job's Epilog runs after its last step ends, while squeue shows the job
# completing (CG): wait until squeue lists no job at all and no Epilog runs.
# The bracket keeps pgrep -f from matching the shell that runs this test.
t=$SECONDS
until G '[ -z "$(squeue --noheader)" ] && ! pgrep -f "/usr/libexec/hpc-jobroot/[s]lurm-epilog" >/dev/null'; do
    [ $((SECONDS - t)) -lt 120 ] || die "jobs still completing after 120 s: $(G 'squeue --noheader')"
    sleep 1
done
echo "no job queued, running or completing after $((SECONDS - t)) s"
LEFT=$(G 'echo "lvs=$(lvs --noheadings -o lv_name @hpc_jobroot | wc -l)"; \
   echo "mounts=$(grep -c " /var/lib/hpc-jobroot/roots/" /proc/self/mountinfo)"; \
   echo "roots=$(ls -A /var/lib/hpc-jobroot/roots | wc -l)"; \
   echo "records=$(ls -A /run/hpc-jobroot/jobs | wc -l)"; \
   echo "pins=$(ls -A /run/hpc-jobroot/pins 2>/dev/null | wc -l)"')
STATE=$(G 'sinfo --noheader -o %t')
echo "left on the node: $(echo "$LEFT" | tr '\n' ' ')(node: $STATE)"
[ "$(echo "$LEFT" | cut -d= -f2 | sort -u)" = 0 ] || die "the jobs left something behind: $(echo "$LEFT" | tr '\n' ' ')"
[ "$STATE" = idle ] || die "the node is $STATE after the jobs, not idle (a failed Epilog drains it)"

step "Report"
cat <<REPORT
  node                     $NODE_OS, $SLURM_VERSION
  userlands (images)       $(for u in "${USERLANDS[@]}"; do printf '%s %s  ' "$u" "$(cat "${TREE[$u]}/etc/debian_version")"; done)
  jobs                     ${#JOBS[@]} at once (host image and each userland), all cleaned up
  userland trees ready     ${TIME[userlands]} s
  guest boot               ${TIME[boot]} s
  trees to node            ${TIME[copy_tree]} s
  provisioning (site.yml)  ${TIME[provision]} s, second run ${TIME[provision_again]} s
  three jobs, submit to end ${TIME[jobs]} s (each job sleeps 6 s)
  srun /bin/true           $(grep -E '^[0-9.]+ s$' "$WORK/latency.txt" | tr '\n' ' ')
  demo total               $((SECONDS - T0)) s
REPORT
