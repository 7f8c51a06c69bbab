#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pool_info
short_description: Read a node's job volume pool and one job slot's size in extents
version_added: 0.1.0
description:
  - Reads O(volume_group) with one C(lvm fullreport) and returns its extent size, its free
    extents, the extents the job volumes (LVs tagged O(tag)) hold, the thin pool's size, and the
    size of one job slot in extents - the job space divided by O(slots), rounded down.
  - The job space is, for thick job volumes (O(thin_pool) empty), the group's free extents plus
    the extents of the job volumes that exist now, so a re-run while jobs run gives the same
    answer; for thin job volumes, the size of the thin pool O(thin_pool).
  - The P(hpc.jobroot.jobvol_pool#role) role writes RV(slot_extents) and RV(extent_size) to the
    node config C(pool.json), which the hook command reads at every prologue;
    M(hpc.jobroot.lvm_jobvol) with O(hpc.jobroot.lvm_jobvol#module:slots) makes the same decision
    with the same library function.
  - A volume group that does not exist is no error - RV(exists) is V(false), C(msg) says so, and
    nothing else is returned, so that a play in check mode on a new node can go on. A thin pool that does not
    exist is no error either - RV(thin_pool_exists) is V(false) and the slot facts are not
    returned, so that the caller can create the pool and ask again.
  - Changes nothing; C(changed) is always V(false).
options:
  volume_group:
    description:
      - The volume group. Letters, digits and C(+_.-), not starting with C(-), not V(.) or V(..).
    type: str
    required: true
  thin_pool:
    description:
      - Name of the thin pool in O(volume_group) that holds the thin job volumes, or V('') for
        thick job volumes.
      - A valid LVM logical volume name, none of the names LVM reserves (V(_tdata), V(_tmeta) ...).
    type: str
    default: ''
  slots:
    description:
      - Number of job slots, the jobs that may hold a volume on the node at the same time. At
        least 1.
    type: int
    required: true
  tag:
    description:
      - LVM tag that marks the job volumes (letters, digits and C(_+.-)). Their extents count as
        job space for thick job volumes.
    type: str
    default: hpc_jobroot
attributes:
  check_mode:
    support: full
    description: Runs the same read-only report in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
notes:
  - Runs C(lvm fullreport --reportformat json --units b --nosuffix -- <volume_group>) once, with a
    120 s timeout; see lvm fullreport(8) and, for the fields (C(vg_extent_size),
    C(vg_free_count), C(lv_size), C(lv_tags)), lvs(8) and vgs(8). A missing group is what lvm
    reports as C(Volume group "..." not found).
  - The fair slot share (the job space divided by the slot count, rounded down, so that the slots
    together never need more than there is) is the rule of docs/design.md, node config
    C(slot_extents). Fails with C(too few for N slots) if a slot would be smaller than one extent.
  - Fails before running anything if an option is not valid; fails with the LVM message if
    C(lvm) fails for another reason.
  - Requires lvm2 on the node and root (LVM reads the devices).
requirements:
  - lvm2
seealso:
  - module: hpc.jobroot.lvm_jobvol
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Slot size of a thick pool of 4 slots
  hpc.jobroot.pool_info:
    volume_group: jobs
    slots: 4
  register: pool

- name: Show one slot's size in bytes
  ansible.builtin.debug:
    msg: "{{ pool.slot_extents * pool.extent_size }}"
  when: pool.slot_extents is defined

- name: A thin pool, before and after it is created
  hpc.jobroot.pool_info:
    volume_group: vg-jobs
    thin_pool: pool
    slots: 16
  register: thin
  # thin.exists and not thin.thin_pool_exists: create it, then read again
"""

RETURN = r"""
volume_group:
  description: The volume group asked for.
  returned: always
  type: str
  sample: jobs
exists:
  description: Whether the volume group exists. When V(false) nothing else below is returned.
  returned: always
  type: bool
  sample: true
thin_pool_exists:
  description: Whether O(thin_pool) exists in the group; V(false) when O(thin_pool) is empty.
  returned: when exists is true
  type: bool
  sample: false
extent_size:
  description: Size of one extent of the group, in bytes.
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 4194304
free_extents:
  description: The group's free extents (not held by any LV), a count of extents.
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 1023
job_extents:
  description:
    - Extents held by the job volumes (LVs tagged O(tag)) - their sizes summed in bytes, divided by
      RV(extent_size), rounded down. For thin job volumes, their virtual sizes.
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 255
thin_pool_extents:
  description: Size of the thin pool's data, in extents; V(null) when O(thin_pool) is empty.
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 2559
available_extents:
  description:
    - The job space in extents. Thick, RV(free_extents) + RV(job_extents); thin,
      RV(thin_pool_extents).
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 1278
slot_extents:
  description: One job slot's size in extents, RV(available_extents) // O(slots), at least 1.
  returned: when the group exists, and the thin pool too if one is named
  type: int
  sample: 319
job_lvs:
  description: Names of the job volumes (LVs tagged O(tag)), sorted.
  returned: when the group exists, and the thin pool too if one is named
  type: list
  elements: str
  sample: [jobroot_4711]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            volume_group=dict(type="str", required=True),
            thin_pool=dict(type="str", default=""),
            slots=dict(type="int", required=True),
            tag=dict(type="str", default=lvm.TAG),
        ),
        supports_check_mode=True,
    )
    p = module.params
    vg, thin_pool = p["volume_group"], p["thin_pool"] or ""
    out = dict(volume_group=vg)
    try:
        # Every option is checked before LVM runs.
        lvm.check_pool_args(thin_pool, p["slots"], p["tag"])
        report = lvm.fullreport(vg)
        out["exists"] = report is not None
        if report is None:
            out["msg"] = "volume group %s does not exist" % vg
        else:
            out["thin_pool_exists"] = bool(thin_pool) and lvm.report_lv(report, thin_pool) is not None
            if not thin_pool or out["thin_pool_exists"]:
                out.update(lvm.pool_facts(report, thin_pool, p["slots"], p["tag"]))
    except JobrootError as exc:
        module.fail_json(msg=str(exc), **out)
    module.exit_json(changed=False, **out)


if __name__ == "__main__":
    main()
