#!/usr/bin/env bash
# The floor for benchmark question 1: the per-job work of the hook command
# (plugins/module_utils/lifecycle.py, prologue and epilogue) written as a plain
# shell script, the way a site would write it by hand.  It does the same LVM
# and mount work with the same options, and nothing else: no validation, no
# locks, no allow-list, no pin, no state file, no rollback on failure, no
# check for processes left in the root.  bench/guest_bench.py runs it inside
# the test guest, alternating with the hook, and checks that both leave the
# same mounts (mount point, type, flags, propagation) in the job root.
#
#   floor.sh prologue VG LV EXTENTS ROOT HOME RECORD
#   floor.sh epilogue VG LV ROOT RECORD
#
# IMAGE_DIRS (default: the node.json default list) are bound read-only from /,
# or recreated as symlinks where / has a symlink (usr-merged systems).
# With FLOOR_TRACE=1 every command is traced to stderr with its start time
# ($EPOCHREALTIME), so the bench can say where the time goes.
set -euo pipefail
PATH=/usr/sbin:/usr/bin:/sbin:/bin
IMAGE_DIRS=${IMAGE_DIRS:-"bin etc lib lib64 opt sbin usr var/lib"}

die() { echo "floor.sh: $*" >&2; exit 2; }

if [ "${FLOOR_TRACE:-0}" = 1 ]; then
    PS4='+ $EPOCHREALTIME '
    set -x
fi

prologue() {
    [ $# -eq 6 ] || die "usage: floor.sh prologue VG LV EXTENTS ROOT HOME RECORD"
    local vg=$1 lv=$2 extents=$3 root=$4 home=$5 record=$6 d
    lvcreate --yes --autobackup n --addtag hpc_jobroot --name "$lv" --extents "$extents" -- "$vg" >/dev/null
    # the library's mkfs options (lvm.mkfs_cmd)
    mkfs.ext4 -q -F -O ^has_journal -m 0 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "/dev/$vg/$lv"
    mkdir -m 0755 "$root"
    mount -o noatime,nodev,nosuid "/dev/$vg/$lv" "$root"
    chmod 0755 "$root"
    mkdir -m 1777 "$root/tmp"
    mkdir -m 0755 "$root/var"
    mkdir -m 1777 "$root/var/tmp"
    for d in $IMAGE_DIRS; do
        if [ -L "/$d" ]; then
            ln -s "$(readlink "/$d")" "$root/$d"
        elif [ -d "/$d" ]; then
            mkdir -p "$root/$d"
            mount --bind -o ro,nodev --make-slave "/$d" "$root/$d"
        fi
    done
    mkdir "$root/proc" "$root/sys" "$root/dev"
    mount -t proc -o nosuid,nodev,noexec --make-private proc "$root/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec --make-private sysfs "$root/sys"
    mount --rbind --make-rslave /dev "$root/dev"
    mount -t tmpfs -o nosuid,nodev,mode=1777 --make-private tmpfs "$root/dev/shm"
    mkdir -p "$root$home"
    mount --rbind --make-rslave "$home" "$root$home"
    printf '%s\n' "$root" >"$record.tmp"
    mv -f "$record.tmp" "$record"
}

epilogue() {
    [ $# -eq 4 ] || die "usage: floor.sh epilogue VG LV ROOT RECORD"
    local vg=$1 lv=$2 root=$3 record=$4
    rm -f "$record"
    umount -R "$root"
    lvremove --yes --autobackup n -- "$vg/$lv" >/dev/null
    rmdir "$root"
}

[ $# -ge 1 ] || die "usage: floor.sh prologue|epilogue ARGS..."
cmd=$1
shift
case "$cmd" in
    prologue) prologue "$@" ;;
    epilogue) epilogue "$@" ;;
    *) die "unknown command $cmd" ;;
esac
