#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_version
short_description: Query, record, switch, roll back and prune the versions of an image on a node
version_added: 0.1.0
description:
  - Manages the versions of one image below O(image_base) - directories
    C(<image_base>/<name>-<version>), the symlink C(<image_base>/<name>) that points at one of them
    (a relative target), and the deploy order in C(<image_base>/.<name>.versions.json).
  - O(state=query) reads the versions, the current one and which versions are in use.
  - O(state=recorded) appends O(version) to the deploy order (the directory must exist, be owned by
    root and not be group- or world-writable). Deploying the tree itself (rsync, RPM) is the
    P(hpc.jobroot.job_image#role) role's.
  - O(state=switched) points the symlink at O(version) - a temporary symlink renamed over it, so a
    reader never sees it missing; the directory is fsynced.
  - O(state=rolled_back) points the symlink at O(version), or without it at the version deployed
    before the current one that still exists.
  - O(state=pruned) removes the versions nothing uses, keeping at least the last O(keep) in deploy
    order. A version is in use if a job's pin or the allow-list names it (or a path below it), a
    process has its root in it, a mount point lies inside it, a mount shows a directory of it,
    or the symlink points at it. The decision is made under the node lock C(<run_dir>/lock), the
    lock a prologue holds while it resolves and pins a tree; a victim is renamed out of every name a
    job could resolve before the lock is released, then removed without crossing a mount. A version
    deployed by RPM is removed with C(rpm -e).
options:
  name:
    description: The image name (C(^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$), no C(..)), as on the allow-list.
    type: str
    required: true
  state:
    description: What to do; see the description.
    type: str
    choices: [query, recorded, switched, rolled_back, pruned]
    default: query
  version:
    description:
      - The version (C(^[A-Za-z0-9][A-Za-z0-9._+]{0,31}$)). Required for O(state=recorded) and
        O(state=switched); optional for O(state=rolled_back).
    type: str
  image_base:
    description: The directory holding the versions and the symlink.
    type: path
    default: /var/lib/hpc-jobroot/images
  run_dir:
    description: The run-state directory holding the node lock and the jobs' pins (O(state=query), O(state=pruned)).
    type: path
    default: /run/hpc-jobroot
  allow_list:
    description: The allow-list whose paths count as in use (O(state=query), O(state=pruned)). A missing file names nothing.
    type: path
    default: /etc/hpc-jobroot/images.conf
  method:
    description: How the version was deployed (O(state=recorded)); prune removes an V(rpm) version with C(rpm -e).
    type: str
    choices: [rsync, rpm]
    default: rsync
  package:
    description: The RPM package name of the version; required with O(method=rpm).
    type: str
  rpm_dbpath:
    description: The RPM database C(rpm -e) uses (C(--dbpath)); empty for the system's.
    type: path
    default: ""
  keep:
    description: How many of the newest versions (deploy order) O(state=pruned) always keeps; at least 1.
    type: int
    default: 3
  lock_timeout:
    description: Seconds O(state=pruned) waits for the node lock before it fails.
    type: float
    default: 300.0
attributes:
  check_mode:
    support: full
    description: Decides and reports (O(state=rolled_back) reports the version it would switch to), changes nothing.
  diff_mode:
    support: full
    description: Shows the current version and the deployed versions before and after.
notes:
  - The versioned trees behind an atomically switched symlink come from the SL5-in-chroot slides
    (seed 003, "Deployment"); pins and the node lock are the collection's (docs/design.md, "Image versions").
  - Fails (with the reason in C(msg)) for an invalid name, version or option, a symlink that is not
    one this module manages, a version directory that is missing or unsafe, a missing image base
    (except for O(state=query) and check mode), an empty pin, a lock timeout or a failing C(rpm -e).
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Which versions of bullseye are there, and which are in use?
  hpc.jobroot.image_version:
    name: bullseye
  register: versions

- name: Record a version rsync just deployed
  hpc.jobroot.image_version:
    name: bullseye
    version: "20261122"
    state: recorded

- name: Switch new jobs to it
  hpc.jobroot.image_version:
    name: bullseye
    version: "20261122"
    state: switched

- name: Roll back to the version deployed before
  hpc.jobroot.image_version:
    name: bullseye
    state: rolled_back

- name: Remove what no job, mount, process or allow-list uses, keeping the last two
  hpc.jobroot.image_version:
    name: bullseye
    state: pruned
    keep: 2
"""

RETURN = r"""
current:
  description: The version the symlink points at afterwards ('' for none).
  returned: success
  type: str
  sample: "20261122"
previous:
  description: The version the symlink pointed at before ('' for none).
  returned: success
  type: str
  sample: "20261101"
versions:
  description: The deploy record, oldest first.
  returned: success
  type: list
  elements: dict
  contains:
    version:
      description: The version.
      type: str
    method:
      description: V(rsync) or V(rpm).
      type: str
    package:
      description: The RPM package name, or null.
      type: str
    deployed:
      description: When it was recorded (UTC, ISO 8601).
      type: str
  sample: [{"version": "20261122", "method": "rsync", "package": null, "deployed": "2026-11-22T10:00:00Z"}]
present:
  description: The recorded versions whose directory exists, in deploy order.
  returned: success
  type: list
  elements: str
  sample: ["20261101", "20261122"]
in_use:
  description: Per version in use, why (C(pinned by job 4711), C(root of process 123), C(current version) ...).
  returned: state is query or pruned
  type: dict
  sample: {"20261122": ["current version"]}
removed:
  description: The versions removed (in check mode, that would be removed).
  returned: state is pruned
  type: list
  elements: str
  sample: ["20261001"]
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import images
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="query", choices=list(images.STATES)),
            version=dict(type="str"),
            image_base=dict(type="path", default="/var/lib/hpc-jobroot/images"),
            run_dir=dict(type="path", default="/run/hpc-jobroot"),
            allow_list=dict(type="path", default="/etc/hpc-jobroot/images.conf"),
            method=dict(type="str", default="rsync", choices=list(images.METHODS)),
            package=dict(type="str"),
            rpm_dbpath=dict(type="path", default=""),
            keep=dict(type="int", default=3),
            lock_timeout=dict(type="float", default=300.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        before = images.snapshot(p["image_base"], p["name"]) if module._diff else None
        result = images.manage(
            p["name"], p["state"], p["image_base"], p["run_dir"], p["allow_list"], p["version"] or None,
            p["method"], p["package"] or None, p["rpm_dbpath"] or "", p["keep"], p["lock_timeout"],
            module.check_mode, module.run_command)
    except (JobrootError, OSError, subprocess.CalledProcessError) as exc:
        module.fail_json(msg=str(exc), name=p["name"])
    if before is not None:
        after = {"current": result["current"], "versions": [v.get("version") for v in result["versions"]]}
        result["diff"] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
