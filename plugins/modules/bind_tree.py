#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bind_tree
short_description: Assemble or tear down the mount tree inside a job root
version_added: 0.1.0
description:
  - Creates the directories and mounts that make a directory usable as a job's root
    (chroot) - bind and recursive bind mounts of image and host paths, C(proc), C(sysfs),
    C(devpts), C(mqueue), C(tmpfs) (a private C(/dev/shm)), single-file binds such as
    C(/etc/passwd), and symlinks (usr-merged trees).
  - Read-only, C(nosuid), C(nodev) and C(noexec) are applied for real with a bind remount,
    added to the flags the source already has (never clearing one).
  - Every mount gets its propagation set right after it is made, so nothing mounted inside
    the root propagates back to the host.
  - O(state=absent) unmounts everything below O(root), deepest first, and removes only the
    empty directories and empty files this module created. It never deletes recursively.
  - The state is read from C(/proc/self/mountinfo) (the source of truth, as in
    M(ansible.posix.mount)), so the module is idempotent.
options:
  root:
    description:
      - The job root. A clean absolute path (no V(.), V(..), V(//), trailing V(/); only
        ASCII letters, digits and C(._/+@:=-)) of an existing directory below O(root_base).
      - Never V(/), a system directory (V(/etc), V(/usr), V(/bin), V(/sbin), V(/lib*), V(/boot),
        V(/dev), V(/proc), V(/sys), V(/run), V(/var), V(/home), V(/root), V(/tmp)) or anything
        above one; a directory below them is fine.
    type: path
    required: true
  mounts:
    description:
      - The mounts to make, in order. A parent must come before what is mounted inside it.
      - Ignored with O(state=absent), which finds the mounts in mountinfo.
    type: list
    elements: dict
    default: []
    suboptions:
      target:
        description:
          - Mount point relative to O(root), for example V(usr) or V(etc/passwd).
          - ASCII letters, digits, C(._/+@:=-) and spaces inside a component (a home such as
            V(home/Alice Smith)); the same holds for a bind's O(mounts[].source).
          - No component below O(root) may be a symlink (a tree cannot redirect a mount
            onto the host). Missing components are created, owned by root, mode 0755.
        type: str
        required: true
      type:
        description:
          - V(bind) and V(rbind) (recursive) bind O(mounts[].source); a source that is not a
            directory gets an empty file as mount point (single-file bind).
          - V(proc), V(sysfs), V(devpts), V(tmpfs), V(mqueue) mount a kernel file system.
          - V(symlink) creates a symlink with the text O(mounts[].source).
        type: str
        choices: [bind, rbind, proc, sysfs, devpts, tmpfs, mqueue, symlink]
        default: bind
      source:
        description:
          - Absolute host path for V(bind)/V(rbind); the link text for V(symlink).
        type: str
      options:
        description:
          - Per-mount flags to apply. Others the source already has are kept.
        type: list
        elements: str
        choices: [ro, nosuid, nodev, noexec]
        default: []
      propagation:
        description:
          - Mount propagation set on the new mount.
          - Defaults to V(slave) for V(bind), V(rslave) for V(rbind) (host automounts
            propagate in, nothing propagates out) and V(private) for kernel file systems.
          - A slave of a private mount has no master, so the kernel shows it as private;
            the module knows and stays idempotent.
        type: str
        choices: [private, slave, shared, unbindable, rprivate, rslave, rshared]
      data:
        description:
          - File-system options for kernel file systems, for example V(size=64m,mode=1777).
            Keys allowed - C(size), C(mode), C(nr_inodes), C(newinstance), C(ptmxmode), C(gid).
        type: str
  dirs:
    description:
      - Directories to create below O(root) before mounting, with their mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path relative to O(root), for example V(tmp).
        type: str
        required: true
      mode:
        description: Octal mode as a string, for example V('1777') for C(tmp) and C(var/tmp).
        type: str
        default: '0755'
  state:
    description:
      - V(present) makes the tree; V(absent) tears it down.
    type: str
    choices: [present, absent]
    default: present
  lazy:
    description:
      - With O(state=absent), detach a busy mount (C(umount -l), C(MNT_DETACH)) instead of
        failing. It disappears once its last user is gone.
      - Without it, a busy mount fails the task with the PIDs that use it, after every other
        mount was unmounted; nothing is deleted.
    type: bool
    default: false
  state_dir:
    description:
      - Where the manifest of created directories and files is kept (outside the root, so a
        job cannot forge it). One JSON file per root.
      - An absolute path, not V(/) or a system directory (as for O(root)); checked before
        anything is read or written.
    type: path
    default: /run/hpc-jobroot/trees
  root_base:
    description:
      - The directory job roots live below. O(root) must be strictly below it, unless
        O(allow_outside_root_base) is set. The same system directories as for O(root) are refused.
    type: path
    default: /var/lib/hpc-jobroot/roots
  allow_outside_root_base:
    description:
      - B(Dangerous.) Allow an O(root) that is not below O(root_base). Teardown then unmounts
        everything below that directory, wherever it is; use it only for a directory that
        holds nothing but a job root (for example a test's scratch directory).
    type: bool
    default: false
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reports the actions it would take.
  diff_mode:
    support: full
    description: Shows the mounts below the root before and after.
notes:
  - The list of what a job root needs and the bind-mount approach come from the per-job
    chroot paper for Torque (seed 000, section 2.3.2) and the SL5-in-chroot slides (seed 003).
  - Unlike the seed scripts, which ran C(umount -f) and went on after failures, teardown here
    tolerates mounts that are already gone but never removes a directory that still has
    anything mounted below it.
  - Requires root. Uses mount(2) and umount2(2) directly (no mount(8)).
requirements:
  - Linux
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Give job 4711 the node's own system, read-only, a private /dev/shm and its owner's home
  hpc.jobroot.bind_tree:
    root: /var/lib/hpc-jobroot/roots/4711
    dirs:
      - {path: tmp, mode: '1777'}
      - {path: var/tmp, mode: '1777'}
    mounts:
      - {target: usr, source: /usr, options: [ro, nodev]}
      - {target: etc, source: /etc, options: [ro, nodev]}
      - {target: bin, type: symlink, source: usr/bin}
      - {target: proc, type: proc, options: [nosuid, nodev, noexec]}
      - {target: dev, type: rbind, source: /dev}
      - {target: dev/shm, type: tmpfs, options: [nosuid, nodev], data: 'size=256m,mode=1777'}
      - {target: home/alice, type: rbind, source: /home/alice}

- name: An image version's tree with the host's passwd bound over its own
  hpc.jobroot.bind_tree:
    root: /var/lib/hpc-jobroot/roots/4712
    mounts:
      - {target: etc, source: /var/lib/hpc-jobroot/images/bullseye/etc, options: [ro, nosuid]}
      - {target: etc/passwd, source: /etc/passwd, options: [ro]}

- name: Tear it down (busy mounts are detached)
  hpc.jobroot.bind_tree:
    root: /var/lib/hpc-jobroot/roots/4711
    state: absent
    lazy: true
"""

RETURN = r"""
actions:
  description: What was done (or would be done in check mode), one line per change.
  returned: always
  type: list
  elements: str
  sample: ["mkdir /var/lib/hpc-jobroot/roots/4711/usr", "mount bind /usr on /var/lib/hpc-jobroot/roots/4711/usr (nodev,ro, slave)"]
mounted:
  description: The mount points this task mounted (or would mount in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/hpc-jobroot/roots/4711/usr"]
unmounted:
  description:
    - The mount points this task unmounted (or would unmount in check mode), deepest first.
    - A busy one detached with O(lazy=true) is listed too; RV(actions) says C(lazy unmount) for it.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/hpc-jobroot/roots/4711/proc", "/var/lib/hpc-jobroot/roots/4711/usr"]
made:
  description: The directories, empty files (mount points of single-file binds) and symlinks this task created, in order.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/hpc-jobroot/roots/4711/usr", "/var/lib/hpc-jobroot/roots/4711/bin"]
removed:
  description: The directories and empty files that an earlier task created and this teardown removed.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/hpc-jobroot/roots/4711/usr"]
mounts:
  description: The mount points below O(root) after the task, from mountinfo, in table order.
  returned: always
  type: list
  elements: str
  sample: ["/var/lib/hpc-jobroot/roots/4711/usr", "/var/lib/hpc-jobroot/roots/4711/proc"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import bindtree, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            mounts=dict(type="list", elements="dict", default=[], options=dict(
                target=dict(type="str", required=True),
                type=dict(type="str", default="bind", choices=list(bindtree.TYPES)),
                source=dict(type="str"),
                options=dict(type="list", elements="str", default=[],
                             choices=list(bindtree.FLAG_OPTIONS)),
                propagation=dict(type="str", choices=["private", "slave", "shared", "unbindable",
                                                      "rprivate", "rslave", "rshared"]),
                data=dict(type="str"),
            )),
            dirs=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                mode=dict(type="str", default="0755"),
            )),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            lazy=dict(type="bool", default=False),
            state_dir=dict(type="path", default="/run/hpc-jobroot/trees"),
            root_base=dict(type="path", default="/var/lib/hpc-jobroot/roots"),
            allow_outside_root_base=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    root = p["root"]
    try:
        validate.managed_path(p["root_base"], "root_base")
        if not p["allow_outside_root_base"]:
            validate.under(validate.managed_path(root, "root"), p["root_base"], "root")
        before = bindtree.mounted_under(root) if root.startswith("/") and _isdir(root) else []
        if p["state"] == "present":
            result = bindtree.apply(root, p["mounts"], p["dirs"], p["state_dir"], module.check_mode)
        else:
            result = bindtree.teardown(root, p["state_dir"], p["lazy"], module.check_mode)
        after = bindtree.mounted_under(root) if _isdir(root) else []
    except JobrootError as exc:
        module.fail_json(msg=str(exc), root=root)
    module.exit_json(changed=result.changed, actions=result.actions, mounted=result.mounted,
                     unmounted=result.unmounted, made=result.made, removed=result.removed,
                     mounts=after,
                     diff=dict(before="\n".join(before) + "\n",
                               after="\n".join(after if not module.check_mode else
                                               _planned(before, result)) + "\n"))


def _isdir(path):
    return os.path.isdir(path) and not os.path.islink(path)


def _planned(before, result):
    """The mount points after a check-mode *result* (a bindtree.Result) would be applied."""
    gone = set(result.unmounted)
    return [m for m in before if m not in gone] + result.mounted


if __name__ == "__main__":
    main()
