#!/usr/bin/env bash
# Runs INSIDE the test guest as root (tests/guest/guest.sh reset pipes it in):
# back to empty data disks without a reboot.  Everything here is the guest's
# own test state; the guest's root file system is not on LVM.
set -u
rc=0

# 1. Unmount every mount whose source is a device-mapper device, together
#    with what is mounted below it (bind trees of job roots), deepest first.
while read -r target; do
    target=$(printf '%b' "$target")     # findmnt -r escapes blanks as \x20
    if umount -R "$target" 2>/dev/null || umount -R -l "$target"; then
        echo "unmounted $target"
    else
        rc=1
    fi
done < <(findmnt -rn -o TARGET,SOURCE | awk '$2 ~ /^\/dev\/(mapper\/|dm-)/ { print $1 }' | sort -r)

# 2. Every VG (and with it every LV), then every PV.
for vg in $(vgs --noheadings -o vg_name 2>/dev/null); do
    vgchange -an "$vg" >/dev/null 2>&1
    if vgremove -ff -y "$vg" >/dev/null; then echo "removed VG $vg"; else rc=1; fi
done
for pv in $(pvs --noheadings -o pv_name 2>/dev/null); do
    if pvremove -ff -y "$pv" >/dev/null; then echo "removed PV $pv"; else rc=1; fi
done
# device-mapper devices LVM no longer knows about
if dmsetup ls 2>/dev/null | grep -vq '^No devices'; then
    dmsetup remove_all --force && echo "removed stale device-mapper devices"
fi

# 3. Loop devices (file-backed PVs), then the data disks' signatures.
losetup -D
for disk in /dev/disk/by-id/virtio-pv*; do
    [ -e "$disk" ] || continue
    wipefs -a -q "$disk" || rc=1
done
udevadm settle
exit $rc
