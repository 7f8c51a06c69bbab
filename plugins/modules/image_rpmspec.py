#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_rpmspec
short_description: Write the RPM spec that packages an image's tree as one image version
version_added: 0.1.0
description:
  - Writes (atomically, mode 0644) the spec file that makes C(rpmbuild -bb) package the tree
    O(tree) as C(<prefix>/<name>-<version>), a relocatable package (C(rpm -i --prefix)).
  - Every path is listed explicitly, with C(%attr) from the tree's own C(etc/passwd) and
    C(etc/group) (rpmbuild 4.18 records root:root for anything without an C(%attr)); device
    nodes are left out (rpm opens each file it installs, which fails for C(dev/tty) outside a
    real C(/dev)); the payload is stored uncompressed (C(w.ufdio)); no dependency generation,
    debuginfo, build-id links or C(__os_install_post).
  - The file is only written when its content changes, so C(changed) tells whether the package
    must be built again.
options:
  tree:
    description: The image's tree to package.
    type: path
    required: true
  dest:
    description: The spec file to write.
    type: path
    required: true
  name:
    description: The image name (C(^[A-Za-z0-9][A-Za-z0-9._+-]*$)).
    type: str
    required: true
  version:
    description: The image version (as O(name), without C(-)).
    type: str
    required: true
  release:
    description: The RPM release (as O(name)).
    type: str
    default: "1"
  package:
    description: The RPM package name (as O(name)).
    type: str
    required: true
  prefix:
    description: The image base the package installs below (C(Prefix:)); no quotes, backslashes or glob characters.
    type: path
    default: /var/lib/hpc-jobroot/images
attributes:
  check_mode:
    support: full
    description: Builds the spec in memory and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    description: The old and new spec text.
notes:
  - Shipping a tree as "a giant RPM" beside rsync is from the SL5-in-chroot slides (seed 003,
    "Deployment"); each choice in the spec was measured with rpm 4.18 (module_utils/imagetree.py).
  - Fails for a name, version, release or package RPM cannot use, quotes or backslashes in the
    paths, a path in the tree that rpm cannot list literally (double quote, backslash, newline),
    or a file whose owner the tree's passwd/group do not name.
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Write the spec of bullseye 20261122
  hpc.jobroot.image_rpmspec:
    tree: /var/lib/hpc-jobroot/build/bullseye
    name: bullseye
    version: "20261122"
    package: hpc-jobroot-image-bullseye-20261122
    dest: /var/lib/hpc-jobroot/build/rpms/.build-bullseye-20261122/image.spec
  register: spec
"""

RETURN = r"""
files:
  description: How many paths the spec lists.
  returned: success
  type: int
  sample: 9120
excluded:
  description: The device nodes left out, relative to the tree.
  returned: success
  type: list
  elements: str
  sample: ["dev/null", "dev/tty"]
checksum:
  description: SHA-256 (hex) of the spec text.
  returned: success
  type: str
  sample: 3f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import imagetree
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tree=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            name=dict(type="str", required=True),
            version=dict(type="str", required=True),
            release=dict(type="str", default="1"),
            package=dict(type="str", required=True),
            prefix=dict(type="path", default="/var/lib/hpc-jobroot/images"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        text, count, excluded = imagetree.rpm_spec(p["tree"], p["name"], p["version"], p["package"],
                                                   p["release"], p["prefix"])
        old, checksum = imagetree.compare(p["dest"], text)
        changed = old != text
        if changed and not module.check_mode:
            imagetree.write_text(p["dest"], text)
    except (JobrootError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=changed, files=count, excluded=excluded, checksum=checksum)
    if module._diff:
        result["diff"] = dict(before=old or "", after=text)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
