#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: named_chroot
short_description: Select the image a job chroots into from the allow-list, pin its version and record the job's root
version_added: 0.1.0
description:
  - A job runs chrooted into a root that holds an image, an alternate userland such as a Debian 11
    or EL7 tree. This module resolves the image name a job asks for against a root-owned
    allow-list of C(name:path) lines, falling back to a default only when told to. The reserved
    image V(host) is the node's own system (V(/)).
  - Checks the resolved image version's tree - every component of its real path must be owned by root and not
    group- or world-writable, and no symlink on the way may lead outside O(image_base).
  - Pins the real path for the job (C(<run_dir>/pins/<job key>)), so a later atomic symlink
    swap of the image does not change a running job's image version, and the image role never
    prunes a pinned version.
  - Records the job's root where the batch system reads it - Torque
    C(<pbs_home>/mom_priv/jobs/<job id>.root) (read by the patched C(site_job_setup()),
    which sets C(PBS_O_ROOTDIR)), Slurm C(<run_dir>/jobs/<job key>.root) (read by the
    hpc.jobroot SPANK plugin). Records are written atomically (temp file and rename).
  - O(state=absent) removes the record and the pin.
options:
  job_id:
    description:
      - The batch job id. Slurm V(4711), V(17_3), V(17[3]); Torque V(123.server.domain),
        V(123[4].server). At most 128 characters; anything else is refused.
    type: str
    required: true
  name:
    description:
      - The image name the job asks for (C(^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)). Omit it for the default.
    type: str
  default:
    description:
      - The node's default image name, used when O(name) is omitted (and, with O(fallback), when it
        is unknown). V(host) is the node's own system.
    type: str
  fallback:
    description:
      - Use O(default) for a name that is not on the allow-list instead of refusing it.
    type: bool
    default: false
  allow_list:
    description:
      - The allow-list file. Must be a regular file owned by root and not group- or
        world-writable. Lines are C(name:path); C(#) starts a comment.
      - A missing file means that only V(host) is allowed.
    type: path
    default: /etc/hpc-jobroot/images.conf
  image_base:
    description: Every image on the allow-list must lie below this directory.
    type: path
    default: /var/lib/hpc-jobroot/images
  root:
    description:
      - The job's root to record for the batch system, usually the per-job root
        C(<root_base>/<job key>) built by M(hpc.jobroot.lvm_jobvol) and M(hpc.jobroot.bind_tree).
      - Defaults to the pinned tree itself (the job is chrooted straight into the image, as
        CHOS and HTCondor's NAMED_CHROOT do).
      - When given, an absolute path that is not V(/) or a system directory (V(/etc), V(/usr),
        V(/bin), V(/sbin), V(/lib*), V(/boot), V(/dev), V(/proc), V(/sys), V(/run), V(/var),
        V(/home), V(/root), V(/tmp)).
    type: path
  batch_system:
    description: Which batch system's record to write. V(none) writes no record, only the pin.
    type: str
    choices: [slurm, torque, none]
    default: none
  run_dir:
    description:
      - Run-state directory holding pins and Slurm records. Not V(/) or a system directory
        (as for O(root)); a directory below them, like the default, is fine.
    type: path
    default: /run/hpc-jobroot
  pbs_home:
    description: Torque's C(PBS_HOME); the record goes to C(mom_priv/jobs/) below it, which must exist.
    type: path
    default: /var/spool/torque
  state:
    description: V(present) resolves, pins and records; V(absent) removes the record and the pin.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Resolves and checks, writes nothing.
  diff_mode:
    support: full
    description: Shows the pin and record contents before and after.
notes:
  - The allow-list of images and per-job image selection come from CHOS (seed 002, "SECURITY"
    and "Other Components"); the named-chroot idea is HTCondor's NAMED_CHROOT (seed 001); the
    versioned trees behind a symlink are from the SL5-in-chroot slides (seed 003); the Torque
    record file is the seed paper's (seed 000, section 2.2.1).
  - Unlike CHOS and the seeds, the whole path is checked for ownership and writability, and the
    version in use is pinned.
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Resolve the image job 4711 asked for and record its root for the SPANK plugin
  hpc.jobroot.named_chroot:
    job_id: "4711"
    name: bullseye
    default: host
    batch_system: slurm
    root: /var/lib/hpc-jobroot/roots/4711

- name: Torque - chroot job 123.server straight into the pinned image (PBS_O_ROOTDIR)
  hpc.jobroot.named_chroot:
    job_id: 123.server.example.org
    name: sl5
    batch_system: torque
    pbs_home: /var/spool/pbs

- name: Drop the record and the pin when the job ends
  hpc.jobroot.named_chroot:
    job_id: "4711"
    batch_system: slurm
    state: absent
"""

RETURN = r"""
name:
  description: The image name used (the request, or the default).
  returned: state is present
  type: str
  sample: bullseye
path:
  description: The image's path as listed (often the image's symlink).
  returned: state is present
  type: str
  sample: /var/lib/hpc-jobroot/images/bullseye
tree:
  description: The pinned real path of the image version's tree (the version in use).
  returned: state is present
  type: str
  sample: /var/lib/hpc-jobroot/images/bullseye-20261122
root:
  description: The root recorded for the batch system.
  returned: state is present
  type: str
  sample: /var/lib/hpc-jobroot/roots/4711
record:
  description: The record file written or removed, or null for O(batch_system=none).
  returned: always
  type: str
  sample: /run/hpc-jobroot/jobs/4711.root
pin:
  description: The pin file.
  returned: always
  type: str
  sample: /run/hpc-jobroot/pins/4711
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import files, image_select, rundir, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (FileNotFoundError, TypeError):
        return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            job_id=dict(type="str", required=True),
            name=dict(type="str"),
            default=dict(type="str"),
            fallback=dict(type="bool", default=False),
            allow_list=dict(type="path", default="/etc/hpc-jobroot/images.conf"),
            image_base=dict(type="path", default="/var/lib/hpc-jobroot/images"),
            root=dict(type="path"),
            batch_system=dict(type="str", default="none", choices=["slurm", "torque", "none"]),
            run_dir=dict(type="path", default="/run/hpc-jobroot"),
            pbs_home=dict(type="path", default="/var/spool/torque"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        key = validate.job_key(p["job_id"])
        for field in ("allow_list", "image_base", "run_dir", "pbs_home"):
            validate.abs_path(p[field], field)
        validate.managed_path(p["run_dir"], "run_dir")
        if p["root"]:
            validate.managed_path(p["root"], "root")
        if p["default"]:
            validate.image_name(p["default"])
        pin = rundir.pin_path(p["run_dir"], key)
        record = image_select.record_path(p["batch_system"], p["job_id"], p["run_dir"], p["pbs_home"])
        before = {"pin": _read(pin), "record": _read(record)}
        if p["state"] == "absent":
            changed = bool(before["pin"] or before["record"])
            if changed and not module.check_mode:
                files.remove_file(pin)
                if record:
                    files.remove_file(record)
            module.exit_json(changed=changed, pin=pin, record=record,
                             diff=dict(before=before, after={"pin": "", "record": ""}))
        entries = image_select.read_allow_list(p["allow_list"]) if os.path.exists(p["allow_list"]) else {}
        name, path = image_select.select(p["name"], entries, p["default"], p["fallback"])
        tree = image_select.check_tree(path, p["image_base"])
        root = validate.abs_path(p["root"] or tree, "root")
        after = {"pin": tree + "\n", "record": root + "\n" if record else ""}
        changed = after != before
        if changed and not module.check_mode:
            image_select.pin(p["run_dir"], key, tree)
            if record:
                image_select.write_record(record, root)
    except JobrootError as exc:
        module.fail_json(msg=str(exc), job_id=p["job_id"])
    module.exit_json(changed=changed, name=name, path=path, tree=tree, root=root, pin=pin,
                     record=record, diff=dict(before=before, after=after))


if __name__ == "__main__":
    main()
