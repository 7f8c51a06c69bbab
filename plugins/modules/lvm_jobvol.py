#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lvm_jobvol
short_description: Create or remove a job's own logical volume, file system and mount
version_added: 0.1.0
description:
  - Creates the per-job logical volume C(jobroot_<job key>) in O(volume_group), thick
    (C(lvcreate -l)) or thin (C(lvcreate -V -T vg/pool)), tagged O(tag) and created with
    C(--autobackup n); makes a fresh file system (O(fstype)) with fast options, and mounts it at
    C(<root_base>/<job key>) with C(noatime,nodev,nosuid).
  - O(state=absent) unmounts it, removes the LV and removes the empty mount point.
  - The size is given explicitly (O(size_mib) or O(extents)) or as one slot's share
    (O(slots)) - the job space divided by the number of slots, rounded down to whole extents,
    so the disk is never oversubscribed. With O(slots), once that many tagged LVs exist, the
    next job fails with C(no free slot).
  - An existing LV that does not carry O(tag) is never touched.
  - With O(encrypt=true) the file system is made on a dm-crypt plain mapping over the LV
    (C(/dev/mapper/jobroot_crypt-<LV's device-mapper name>)) with a fresh random key that is
    never written anywhere; O(state=absent) unmounts, closes the mapping (the key is gone),
    then removes the LV.
options:
  job_id:
    description:
      - The batch job id (Slurm V(4711), V(17_3), V(17[3]); Torque V(123.server.domain)).
        The LV name and mount point use its job key (V([) becomes V(_), V(]) is dropped).
    type: str
    required: true
  volume_group:
    description:
      - The volume group. A V(-) in the name is fine - the module computes the device-mapper
        name (C(/dev/mapper/vg--name-lv)), where device-mapper doubles it.
    type: str
    required: true
  thin_pool:
    description:
      - Name of a thin pool in O(volume_group). When set, the job LV is a thin LV of the given
        virtual size; the pool should be created with C(--errorwhenfull y) so that a full pool
        fails writes at once instead of stalling them (the P(hpc.jobroot.jobvol_pool#role) role does so).
      - A valid LVM name, checked before any LVM query.
    type: str
  size_mib:
    description:
      - Size in MiB, rounded up to whole extents. Mutually exclusive with O(extents) and O(slots).
    type: int
  extents:
    description: Size in extents of the volume group. Mutually exclusive with O(size_mib) and O(slots).
    type: int
  slots:
    description:
      - Size the LV to one slot of this many - thick, the VG's free extents plus the extents of
        existing tagged LVs, divided by O(slots) and rounded down; thin, the pool's extents
        divided by O(slots). Also the cap on the number of tagged LVs.
    type: int
  fstype:
    description:
      - File system. V(ext4) is made without a journal, with lazy inode tables, no discard and
        no reserved blocks; V(xfs) without discard. Job scratch is never recovered after a
        crash, so a journal buys nothing.
    type: str
    choices: [ext4, xfs]
    default: ext4
  root_base:
    description:
      - Job roots live below this directory; the mount point is C(<root_base>/<job key>).
      - An absolute path, not V(/) or a system directory (V(/etc), V(/usr), V(/bin), V(/sbin),
        V(/lib*), V(/boot), V(/dev), V(/proc), V(/sys), V(/run), V(/var), V(/home), V(/root),
        V(/tmp)); a directory below them is fine. Checked, like every option, before any LVM query.
    type: path
    default: /var/lib/hpc-jobroot/roots
  tag:
    description: LVM tag that marks the LV as a job volume. Sweeps find leaked volumes by it.
    type: str
    default: hpc_jobroot
  encrypt:
    description:
      - Encrypt the job's volume with dm-crypt in plain mode (C(cryptsetup open --type plain),
        cipher C(aes-xts-plain64), a 512-bit key). The key is 64 bytes from the kernel's random
        source (C(os.urandom)), handed to C(cryptsetup) through a pipe on its standard input
        (C(--key-file=-), C(--hash plain)) and dropped at once - never in an argument vector, an
        environment or a file, tmpfs included. It then lives only in kernel memory, in the
        mapping's table, until C(cryptsetup close) at O(state=absent) wipes it. Works on thick
        and thin LVs.
      - B(Protects) the job's data once the job has ended - on the LV's extents and the raw
        disk, after the extents are reused by another job, on a stolen node or a swapped disk -
        since nobody has the key any more. A fresh file system alone does not erase old blocks.
      - B(Does not protect) a running job's data from root on the node (root can read the
        mounted files, and the key with C(dmsetup table --showkeys)), nor from anyone who can
        read kernel memory while the mapping is open. Nothing can reopen the volume - by design
        its data lives only as long as its mapping; after a crash or reboot it is unreadable.
      - Costs CPU on every read and write (AES; fast with AES-NI). Requires C(cryptsetup) and
        the dm-crypt kernel module.
      - With O(state=present), an LV already mounted the other way (plain when O(encrypt=true),
        or encrypted when V(false)) is an error; remove it first. O(state=absent) closes the
        mapping whenever one is open, whatever this option says.
    type: bool
    default: false
  state:
    description:
      - V(present) creates, formats and mounts. An existing tagged LV that is mounted at the
        mount point is left as it is. One that is not mounted was left by a crashed job (a
        stale LV), so it gets a fresh file system and is mounted; a requeued job never sees an
        earlier run's data. An existing LV is never resized.
      - V(absent) unmounts, removes the LV and the empty mount point. A stale LV from a crashed
        job (tagged, not mounted) is simply removed.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports what would be created or removed; runs only read-only LVM reports.
  diff_mode:
    support: full
    description: Shows the LV and mount before and after.
notes:
  - The per-job fresh file system on its own LV is the approach of the per-job chroot paper for
    Torque (seed 000, section 2.3.2), which rejected LVM snapshots as 10-25x slower on writes.
  - The tag, C(--autobackup n) (otherwise C(/etc/lvm/archive) fills the root file system), the
    120 s timeout on every LVM command and the handling of dashed VG names follow what
    HTCondor's per-job LVM support learnt in production.
  - Requires root and lvm2; C(mkfs.xfs) for V(xfs). Needs device-mapper in the kernel.
  - O(encrypt) follows cryptsetup(8) (C(open --type plain), C(--key-file=-)) and improves on
    HTCondor's C(ENCRYPT_EXECUTE_DIRECTORY) (23.10 and later), which supports thick LVs only and
    writes its key to a file in C(/dev/shm) before unlinking it.
requirements:
  - lvm2
  - cryptsetup (for O(encrypt))
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: One slot's share (of 4) for job 4711, thick, ext4
  hpc.jobroot.lvm_jobvol:
    job_id: "4711"
    volume_group: vg-jobs
    slots: 4

- name: A 2 GiB thin volume, xfs
  hpc.jobroot.lvm_jobvol:
    job_id: 123.server.example.org
    volume_group: jobs
    thin_pool: pool
    size_mib: 2048
    fstype: xfs

- name: An encrypted volume (thin LVs work too); its key exists only in the kernel
  hpc.jobroot.lvm_jobvol:
    job_id: "4712"
    volume_group: vg-jobs
    slots: 4
    encrypt: true

- name: Remove it when the job ends
  hpc.jobroot.lvm_jobvol:
    job_id: "4711"
    volume_group: vg-jobs
    state: absent
"""

RETURN = r"""
lv_name:
  description: The logical volume's name.
  returned: always
  type: str
  sample: jobroot_4711
volume_group:
  description: The volume group.
  returned: always
  type: str
  sample: vg-jobs
lv_path:
  description: The LV's path under /dev/<vg>/.
  returned: always
  type: str
  sample: /dev/vg-jobs/jobroot_4711
dm_path:
  description: The device-mapper path, with each V(-) doubled; what mountinfo shows.
  returned: always
  type: str
  sample: /dev/mapper/vg--jobs-jobroot_4711
mountpoint:
  description: Where the file system is (or was) mounted.
  returned: always
  type: str
  sample: /var/lib/hpc-jobroot/roots/4711
extents:
  description: Size in extents (state present).
  returned: when state is present
  type: int
  sample: 255
size_bytes:
  description: Size in bytes (state present).
  returned: when state is present
  type: int
  sample: 1069547520
fstype:
  description: File system type.
  returned: always
  type: str
  sample: ext4
thin:
  description: Whether the LV is a thin LV.
  returned: always
  type: bool
  sample: false
encrypted:
  description: Whether the file system is on a dm-crypt mapping (O(encrypt)).
  returned: always
  type: bool
  sample: true
fs_device:
  description:
    - The device the file system is on - the dm-crypt mapping
      C(/dev/mapper/jobroot_crypt-<dm name>) when O(encrypt=true), else RV(dm_path).
  returned: always
  type: str
  sample: /dev/mapper/jobroot_crypt-vg--jobs-jobroot_4711
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import lvm, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, ValidationError


def _size(p, info):
    if p["extents"] is not None:
        if p["extents"] < 1:
            raise ValidationError("extents must be >= 1")
        return p["extents"]
    if p["size_mib"] is not None:
        if p["size_mib"] < 1:
            raise ValidationError("size_mib must be >= 1")
        return -(-(p["size_mib"] << 20) // info["extent_size"])
    return lvm.slot_extents(p["volume_group"], p["slots"], p["thin_pool"] or "", p["tag"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            job_id=dict(type="str", required=True),
            volume_group=dict(type="str", required=True),
            thin_pool=dict(type="str"),
            size_mib=dict(type="int"),
            extents=dict(type="int"),
            slots=dict(type="int"),
            fstype=dict(type="str", default="ext4", choices=["ext4", "xfs"]),
            root_base=dict(type="path", default="/var/lib/hpc-jobroot/roots"),
            tag=dict(type="str", default="hpc_jobroot"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            encrypt=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("size_mib", "extents", "slots")],
        required_if=[("state", "present", ("size_mib", "extents", "slots"), True)],
        supports_check_mode=True,
    )
    p = module.params
    vg = p["volume_group"]
    try:
        key = validate.job_key(p["job_id"])
        # Every option is checked before the first LVM query (issue 11, item 8).
        validate.volume_group(vg)
        if p["thin_pool"]:
            validate.lv_name(p["thin_pool"])
        validate.managed_path(p["root_base"], "root_base")
        validate.lv_tag(p["tag"])
        lv = lvm.lv_name_for(key)
        mountpoint = p["root_base"] + "/" + key
        out = dict(lv_name=lv, volume_group=vg, lv_path="/dev/%s/%s" % (vg, lv),
                   dm_path=lvm.dm_path(vg, lv), mountpoint=mountpoint, fstype=p["fstype"],
                   thin=bool(p["thin_pool"]), encrypted=p["encrypt"],
                   fs_device=lvm.fs_device(vg, lv, p["encrypt"]))
        info, existing = lvm.vg_report(vg)
        mounted = lvm.mounted_at(vg, lv, mountpoint)
        before = "%s: %s\n" % (lv, ("mounted at " + mountpoint) if mounted else
                               "present, not mounted" if lv in existing else "absent")
        if p["state"] == "absent":
            changed = lv in existing or mounted
            if changed and not module.check_mode:
                lvm.remove(vg, lv, mountpoint, p["tag"])
            module.exit_json(changed=changed, diff=dict(before=before, after="%s: absent\n" % lv), **out)
        # lvm.create's own decisions (size, tag); the slot count and free
        # space are checked when create acts, so check mode reports as before
        extents, _new = lvm.plan(vg, lv, existing, info, lambda: _size(p, info),
                                 p["thin_pool"] or "", p["tag"], check_space=False)
        if mounted and not lvm.mounted_at(vg, lv, mountpoint, encrypt=p["encrypt"]):
            raise JobrootError("%s is mounted at %s %s; remove it first (state=absent)" % (
                lv, mountpoint, "unencrypted" if p["encrypt"] else "encrypted"))
        changed = not mounted
        if changed and not module.check_mode:
            lvm.create(vg, lv, extents, mountpoint, p["fstype"], p["thin_pool"] or "", p["tag"],
                       max_lvs=p["slots"], encrypt=p["encrypt"])
        out.update(extents=extents, size_bytes=extents * info["extent_size"])
    except JobrootError as exc:
        module.fail_json(msg=str(exc), job_id=p["job_id"])
    module.exit_json(changed=changed, diff=dict(before=before, after="%s: mounted at %s\n" % (lv, mountpoint)),
                     **out)


if __name__ == "__main__":
    main()
