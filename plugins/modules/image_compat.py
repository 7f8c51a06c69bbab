#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_compat
short_description: Check that this node's kernel can run an image's userland (glibc, minimum kernel, vsyscall)
version_added: 0.2.0
description:
  - Reads from the image tree its C(libc.so.6) (looked for in C(lib/x86_64-linux-gnu), C(lib64), C(lib),
    the C(usr/) ones and the other multiarch directories; symlinks are followed only inside the tree,
    as the job sees it after chroot, and a symlink that leads out of the tree is an error) and from it
    the glibc version, the minimum kernel of its ABI note and whether it needs the legacy vsyscall page.
  - Reads from the node the running kernel (C(uname -r)) and its vsyscall mode - C(vsyscall=) on
    C(/proc/cmdline), else the default of the kernel's configuration (C(/boot/config-<release>) or
    C(/proc/config.gz)).
  - Fails, naming each cause and its fix, if the node cannot run the image, unless O(force=true).
  - With O(name) and O(version) the tree is C(<image_base>/<name>-<version>) and the glibc version and
    minimum kernel are stored for that version in the deploy record C(<image_base>/.<name>.versions.json),
    where C(jobroot status) shows them.
options:
  tree:
    description: The image tree to check (an absolute path). Mutually exclusive with O(name).
    type: path
  name:
    description: The image name (C(^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)); needs O(version).
    type: str
  version:
    description: The image version (C(^[A-Za-z0-9][A-Za-z0-9._+]{0,31}$)); needs O(name).
    type: str
  image_base:
    description: The directory holding the versions (with O(name)).
    type: path
    default: /var/lib/hpc-jobroot/images
  force:
    description:
      - Do not fail when the node cannot run the image; the refusals are returned and shown as warnings.
      - A libc that cannot be found or read fails even so.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads and checks; does not write the deploy record.
  diff_mode:
    support: none
    description: Nothing to show; the deploy record's change is reported as changed.
notes:
  - The ABI note is the ELF note of owner C(GNU), type C(NT_GNU_ABI_TAG) (1), four 32-bit words - OS
    (0 = Linux) and the kernel version X.Y.Z glibc was configured for with C(--enable-kernel) (ELF gABI,
    "Note Section"; glibc C(csu/abi-note.S)). glibc's dynamic loader refuses an older kernel with
    "FATAL - kernel too old"; this module refuses such a node before the image is switched in.
  - The glibc version is the C(release version X.Y) string of C(libc.so.6), else its newest C(GLIBC_X.Y)
    version definition (C(.gnu.version_d)).
  - x86_64 glibc before 2.14 calls the legacy vsyscall page for C(time), C(gettimeofday) and C(getcpu) (Linux
    C(arch/x86/Kconfig), LEGACY_VSYSCALL - "recent enough glibc (2.14 or newer)"). The kernel's
    C(vsyscall=) modes (C(Documentation/admin-guide/kernel-parameters.txt)) - V(emulate) emulates the
    calls and the page is readable; V(xonly) emulates the calls and the page is not readable; V(none)
    makes the calls fault. Such an image is refused on V(none) (or a kernel built without
    C(CONFIG_X86_VSYSCALL_EMULATION)) and when the mode cannot be told; V(xonly) and V(emulate) run it,
    since glibc only calls the page (xonly breaks only tools that read it, such as Pin).
  - Fails (with the reason in C(msg)) for an invalid name or version, a tree without C(libc.so.6), a
    symlink leading out of the tree, a corrupt ELF file, or (without O(force)) a node that cannot run the image.
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Can this node run the tree?
  hpc.jobroot.image_compat:
    tree: /srv/images/sl5

- name: Check a deployed version before switching to it, and record its glibc and minimum kernel
  hpc.jobroot.image_compat:
    name: sl5
    version: "20261130"

- name: Switch anyway (the refusals become warnings)
  hpc.jobroot.image_compat:
    name: sl5
    version: "20261130"
    force: true
"""

RETURN = r"""
image:
  description: The facts read from the image's C(libc.so.6).
  returned: success
  type: dict
  contains:
    libc:
      description: Its path in the tree, symlinks resolved inside the tree.
      type: str
      sample: lib/x86_64-linux-gnu/libc-2.31.so
    machine:
      description: Its ELF machine (C(x86_64), C(aarch64) ..., or C(EM_<number>)).
      type: str
    glibc:
      description: The glibc version (release string, else newest symbol version); null if neither.
      type: str
      sample: "2.31"
    glibc_release:
      description: The C(release version) string's version, or null.
      type: str
    glibc_newest_symbol_version:
      description: The newest C(GLIBC_X.Y) version definition, or null.
      type: str
    abi_os:
      description: The OS of the ABI note (C(Linux) ...), null without one.
      type: str
    min_kernel:
      description: The minimum kernel version of the ABI note (X.Y.Z), null without one.
      type: str
      sample: "3.2.0"
    needs_vsyscall:
      description: Whether this glibc calls the legacy vsyscall page (x86_64, before 2.14).
      type: bool
  sample: {"libc": "lib/x86_64-linux-gnu/libc.so.6", "machine": "x86_64", "glibc": "2.31",
           "glibc_release": "2.31", "glibc_newest_symbol_version": "2.30", "abi_os": "Linux",
           "min_kernel": "3.2.0", "needs_vsyscall": false}
node:
  description: The facts of this node.
  returned: success
  type: dict
  contains:
    kernel_release:
      description: C(uname -r).
      type: str
    kernel:
      description: Its X.Y.Z, or null.
      type: str
    machine:
      description: C(uname -m).
      type: str
    vsyscall:
      description: The vsyscall mode (V(emulate), V(xonly), V(none)); null if unknown or not x86_64.
      type: str
    vsyscall_source:
      description: Where the mode was read, or why it is unknown.
      type: str
  sample: {"kernel_release": "6.1.0-18-amd64", "kernel": "6.1.0", "machine": "x86_64",
           "vsyscall": "xonly", "vsyscall_source": "/boot/config-6.1.0-18-amd64 (the kernel's default)"}
refusals:
  description: Why this node cannot run the image (empty if it can), each naming the cause and the fix.
  returned: always
  type: list
  elements: str
  sample: ["needs kernel >= 6.20.0 (the ABI note of lib64/libc.so.6, glibc 2.99), node runs 6.1.0-18-amd64: ..."]
compatible:
  description: Whether there are no refusals.
  returned: success
  type: bool
tree:
  description: The tree checked.
  returned: success
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import images, userland, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tree=dict(type="path"),
            name=dict(type="str"),
            version=dict(type="str"),
            image_base=dict(type="path", default="/var/lib/hpc-jobroot/images"),
            force=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("tree", "name")],
        required_one_of=[("tree", "name")],
        required_together=[("name", "version")],
        supports_check_mode=True,
    )
    p = module.params
    changed = False
    try:
        if p["name"]:
            validate.image_name(p["name"])
            images.version(p["version"])
            tree = images.version_dir(p["image_base"], p["name"], p["version"])
        else:
            tree = validate.abs_path(os.path.normpath(p["tree"]), "tree")
        image = userland.image_facts(tree)
        node = userland.node_facts()
        refusals = userland.refusals(image, node)
        if p["name"]:
            changed = images.record_userland(p["image_base"], p["name"], p["version"], image,
                                             module.check_mode)
    except (JobrootError, OSError) as exc:
        module.fail_json(msg=str(exc), refusals=[])
    result = dict(changed=changed, tree=tree, image=image, node=node, refusals=refusals,
                  compatible=not refusals)
    if refusals and not p["force"]:
        module.fail_json(msg="%s cannot run on this node: %s" % (tree, "; ".join(refusals)), **result)
    for reason in refusals:
        module.warn("forced: %s" % reason)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
