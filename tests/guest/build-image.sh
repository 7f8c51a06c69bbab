#!/usr/bin/env bash
# Build (or find in the cache) the Debian image of the QEMU test guest for one
# suite: GUEST_SUITE=trixie (the default), sid, or bookworm.
#
#   tests/guest/build-image.sh            build if needed, print the image dir
#   tests/guest/build-image.sh --dir      print the image dir only (no build)
#   tests/guest/build-image.sh --force    rebuild even if cached
#
# Why a guest: the development and CI machines have no device-mapper, so real
# LVM runs only inside a guest kernel (see docs/testing or the README).
#
# The image dir is  ${XDG_CACHE_HOME:-$HOME/.cache}/hpc-jobroot/guest/<hash>/
# and holds:
#   base.img       raw ext4 root file system (label "root"), sparse
#   vmlinuz        the guest kernel   (booted with qemu -kernel)
#   initrd.img     its initramfs
#   id_ed25519     SSH key for root in the guest (generated here, never committed)
#   packages.lst   dpkg -l of the guest: the exact package versions, for the
#                  record (sid changes daily, so two sid images may differ)
#   suite          the suite it was built from
#   build.log      the full build log
#
# <hash> covers every input: this script, packages.txt, the suite and the apt
# mirrors it is built from.  A change to any of them builds a new image in a new dir; an
# unchanged set finds the cached one and returns at once.  Old dirs are left
# for the user to delete.
#
# The mirror is the Debian mirror configured on the host (the only one that
# is reachable here), read from /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.{list,sources}; GUEST_MIRROR and
# GUEST_SECURITY_MIRROR override it.  The suite-to-mirror rule (suite_sources
# below): the host lists its own suite only (bookworm here); a Debian mirror
# serves every suite under the same URI, so a suite the host does not list
# takes the URI the host uses for any Debian suite, and its -security the URI
# the host uses for any -security suite.  Which extra suites exist:
#   bookworm, trixie   SUITE, SUITE-updates, SUITE-security
#   sid                sid only (no -updates, no -security); its Release file
#                      may have expired on a stored mirror, so apt is told not
#                      to check Valid-Until for sid.
#
# Needs root (debootstrap, chroot), debootstrap, mkfs.ext4 (e2fsprogs >= 1.43
# for -d), ssh-keygen.  Builds without loop devices: mkfs.ext4 -d copies the
# root tree straight into the image file.  The only mount is /proc inside the
# build chroot while packages are configured; it is unmounted on every exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=${GUEST_SUITE:-trixie}
case "$SUITE" in
    bookworm|trixie|sid) ;;
    *) printf '[guest-image] ERROR: GUEST_SUITE=%s: not one of bookworm trixie sid\n' "$SUITE" >&2; exit 2 ;;
esac
IMAGE_SIZE=${GUEST_IMAGE_SIZE:-4G}
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/hpc-jobroot/guest"

log() { printf '[guest-image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[guest-image] ERROR: %s\n' "$*" >&2; exit 1; }

# --- the mirror ---------------------------------------------------------------
# Print "URI SUITES..." for every deb entry on the host, one-line or deb822.
host_apt_entries() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [opts] URI SUITE COMPONENTS...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() { if (types ~ /(^| )deb( |$)/ && uris != "" && enabled != "no") {
                                  n = split(uris, u, " "); for (i = 1; i <= n; i++) print u[i], suites }
                               types = ""; uris = ""; suites = ""; enabled = "" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
              if (key == "types") types = $0; else if (key == "uris") uris = $0
              else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0) }
            END { flush() }' "$f"
    done
}

# First URI that serves SUITE exactly (e.g. bookworm, bookworm-security).
mirror_for() {
    host_apt_entries | awk -v s="$1" '{ for (i = 2; i <= NF; i++) if ($i == s) { print $1; exit } }'
}

# First URI of any suite matching the extended regex RE (e.g. a -security one).
mirror_matching() {
    host_apt_entries | awk -v re="$1" '{ for (i = 2; i <= NF; i++) if ($i ~ re) { print $1; exit } }'
}
DEBIAN_SUITES='^(buster|bullseye|bookworm|trixie|forky|sid|stable|testing|unstable)(-updates)?$'

MIRROR=${GUEST_MIRROR:-$(mirror_for "$SUITE")}
[ -n "$MIRROR" ] || MIRROR=$(mirror_matching "$DEBIAN_SUITES")
[ -n "$MIRROR" ] || die "no Debian apt entry on this host; set GUEST_MIRROR=http://..."
# suite_sources: the extra suites of SUITE and whether its index may be stale.
case "$SUITE" in
    sid)
        UPDATES_SUITE=""
        SECURITY_MIRROR=""
        VALID_UNTIL=false ;;
    *)
        UPDATES_SUITE="$SUITE-updates"
        SECURITY_MIRROR=${GUEST_SECURITY_MIRROR:-$(mirror_for "$SUITE-security")}
        [ -n "$SECURITY_MIRROR" ] || SECURITY_MIRROR=$(mirror_matching '-security$')
        VALID_UNTIL=true ;;
esac
case "$MIRROR" in http://*|https://*|file:/*) ;; *) die "unsupported mirror URI: $MIRROR" ;; esac

# --- packages -------------------------------------------------------------------
# A line "SUITE:package" installs the package only in that suite's image
# (a package that exists in one suite only, such as apptainer in sid).
mapfile -t LISTED < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/packages.txt")
PACKAGES=()
for p in "${LISTED[@]}"; do
    if [[ $p == *:* ]]; then
        [ "${p%%:*}" = "$SUITE" ] || continue
        p=${p#*:}
    fi
    [[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "bad package name in packages.txt: $p"
    PACKAGES+=("$p")
done
# debootstrap installs a small base set; apt-get in the chroot then installs
# the rest with apt's resolver, from SUITE, -updates and -security, so the
# kernel is installed (and its initramfs built) once, at its newest version.
BASE_PACKAGES=(systemd-sysv udev kmod ifupdown iproute2 procps ca-certificates)

# --- the cache key --------------------------------------------------------------
HASH=$( {
    sha256sum "$HERE/build-image.sh" "$HERE/packages.txt" | cut -d' ' -f1
    echo "$SUITE $MIRROR $UPDATES_SUITE $SECURITY_MIRROR $VALID_UNTIL $IMAGE_SIZE"
} | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/$HASH"

case "${1:-}" in
    --dir) echo "$OUT"; exit 0 ;;
    --force) FORCE=1 ;;
    "") FORCE=0 ;;
    *) die "usage: $0 [--dir|--force]" ;;
esac

complete() { [ -f "$OUT/.complete" ] && [ -f "$OUT/base.img" ] && [ -f "$OUT/vmlinuz" ] \
             && [ -f "$OUT/initrd.img" ] && [ -f "$OUT/id_ed25519" ]; }

mkdir -p "$CACHE_ROOT"
# One build at a time per cache (another process may be building this image).
exec 9>"$CACHE_ROOT/.lock"
flock 9
if complete && [ "$FORCE" = 0 ]; then
    log "cached image $OUT"
    echo "$OUT"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 ssh-keygen chroot; do
    command -v "$tool" >/dev/null || die "$tool not found (install debootstrap e2fsprogs openssh-client)"
done

WORK="$CACHE_ROOT/.build-$HASH"
ROOTFS="$WORK/rootfs"

# Unmount what we mounted, then remove the work dir -- but never remove
# through a mount: if anything is still mounted below it, leave it and say so.
cleanup() {
    local rc=$?
    if mountpoint -q "$ROOTFS/proc" 2>/dev/null; then umount "$ROOTFS/proc" || true; fi
    if [ -d "$WORK" ]; then
        if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
            log "something is still mounted below $WORK; not removing it"
        else
            rm -rf "$WORK"
        fi
    fi
    [ $rc = 0 ] || log "build FAILED (log: $WORK.log)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a previous interrupted build
if [ -d "$WORK" ]; then
    findmnt -rn -o TARGET | grep -q "^$WORK/" && die "$WORK has mounts below it; unmount them first"
    rm -rf "$WORK"
fi
mkdir -p "$WORK/out"
LOG="$WORK.log"
: >"$LOG"

t0=$(date +%s)
step_start=$t0
step() {
    local now; now=$(date +%s)
    log "[$(( now - t0 ))s] $*"
    step_start=$now
}
# Run a long command with its output in the log, printing a progress line
# every 15 s (the last log line) so a slow mirror is visible.
run_logged() {
    local what=$1; shift
    "$@" >>"$LOG" 2>&1 &
    local pid=$!
    # interrupted: stop the child too (it is ours, by its PID)
    trap 'kill "$pid" 2>/dev/null; exit 130' INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        sleep 15 &
        wait $! || true
        if kill -0 "$pid" 2>/dev/null; then
            log "  $what: $(( $(date +%s) - step_start ))s, $(tail -n1 "$LOG" | cut -c1-100)"
        fi
    done
    wait "$pid" || { tail -n 30 "$LOG" >&2; die "$what failed (full log: $LOG)"; }
    trap 'exit 130' INT TERM
}

step "debootstrap $SUITE from $MIRROR (about 100 s)"
run_logged debootstrap debootstrap --variant=minbase \
    --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" "$SUITE" "$ROOTFS" "$MIRROR"

step "apt sources and the no-start policy"
{
    echo "deb $MIRROR $SUITE main"
    if [ -n "$UPDATES_SUITE" ]; then echo "deb $MIRROR $UPDATES_SUITE main"; fi
    if [ -n "$SECURITY_MIRROR" ]; then echo "deb $SECURITY_MIRROR $SUITE-security main"; fi
} >"$ROOTFS/etc/apt/sources.list"
if [ "$VALID_UNTIL" != true ]; then
    echo 'Acquire::Check-Valid-Until "false";' >"$ROOTFS/etc/apt/apt.conf.d/99hpc-jobroot-valid-until"
fi
# Nothing starts inside the build chroot (munge, slurmd, sshd ...).
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mount -t proc proc "$ROOTFS/proc"

step "apt-get install ${#PACKAGES[@]} packages (about 120 s)"
run_logged "apt-get update" chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get -q update
run_logged "apt-get upgrade" chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get -q -y upgrade
run_logged "apt-get install" chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -y --no-install-recommends install "${PACKAGES[@]}"
chroot "$ROOTFS" dpkg -l >"$WORK/out/packages.lst"
echo "$SUITE" >"$WORK/out/suite"
for p in "${PACKAGES[@]}"; do
    # shellcheck disable=SC2016  # ${Status} is dpkg-query's field, not ours
    chroot "$ROOTFS" dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || die "package $p is not installed in the guest"
done
chroot "$ROOTFS" apt-get clean
umount "$ROOTFS/proc"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"

step "configure: network, fstab, ssh, timers"
echo "jobroot-guest" >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<'EOF'
127.0.0.1 localhost
10.0.2.15 jobroot-guest
EOF
echo "nameserver 10.0.2.3" >"$ROOTFS/etc/resolv.conf"
cat >"$ROOTFS/etc/fstab" <<'EOF'
LABEL=root / ext4 rw,errors=remount-ro 0 1
EOF
# QEMU user networking: the guest is 10.0.2.15, the host 10.0.2.2.
# net.ifnames=0 on the kernel command line keeps the name eth0.
cat >"$ROOTFS/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 10.0.2.15/24
    gateway 10.0.2.2
EOF
cat >"$ROOTFS/etc/ssh/sshd_config.d/hpc-jobroot-guest.conf" <<'EOF'
# test guest: key login for root only, no reverse DNS (no DNS here)
UseDNS no
PermitRootLogin prohibit-password
PasswordAuthentication no
EOF
mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
cat >"$ROOTFS/etc/systemd/journald.conf.d/volatile.conf" <<'EOF'
[Journal]
Storage=volatile
EOF
# Timers that would run apt, e2scrub or fstrim in the middle of a test.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer man-db.timer; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done
# The Slurm and HTCondor daemons start only when a role configures and
# enables them.
for unit in slurmctld.service slurmd.service condor.service; do
    chroot "$ROOTFS" systemctl disable "$unit" >>"$LOG" 2>&1 || true
done

ssh-keygen -q -t ed25519 -N "" -C "hpc-jobroot test guest" -f "$WORK/out/id_ed25519"
install -d -m 0700 "$ROOTFS/root/.ssh"
install -m 0600 "$WORK/out/id_ed25519.pub" "$ROOTFS/root/.ssh/authorized_keys"

step "kernel and initrd"
kernel=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
initrd=$(find "$ROOTFS/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n1)
if [ -z "$kernel" ] || [ -z "$initrd" ]; then die "no kernel/initrd in the rootfs /boot"; fi
cp "$kernel" "$WORK/out/vmlinuz"
cp "$initrd" "$WORK/out/initrd.img"

step "mkfs.ext4 -d: $IMAGE_SIZE image from the tree ($(du -sh "$ROOTFS" | cut -f1))"
truncate -s "$IMAGE_SIZE" "$WORK/out/base.img"
run_logged mkfs.ext4 mkfs.ext4 -q -L root -d "$ROOTFS" "$WORK/out/base.img"
cp "$LOG" "$WORK/out/build.log"
touch "$WORK/out/.complete"

# publish atomically: the image dir appears complete or not at all
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
step "image ready: $OUT ($(du -sh "$OUT/base.img" | cut -f1) on disk)"
echo "$OUT"
