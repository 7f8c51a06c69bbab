#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_tree
short_description: Harden an image's tree and place the host files it needs
version_added: 0.1.0
description:
  - Works on one image's tree (a master tree on a build host, before it is deployed).
  - O(state=hardened) strips set-uid and set-gid bits, file capabilities (the
    C(security.capability) extended attribute) and world-writable modes below O(path). Only
    regular files and directories on the tree's own file system are touched (never through a
    symlink or a mount); sticky world-writable directories such as C(/tmp) are kept.
  - O(state=host_files) makes the host files of O(host_files) ready in the tree. An entry with
    C(how=bind) gets an empty file or directory to mount on (the prologue binds the host's in per
    job); an entry with C(how=sync) is copied from the host (atomically, a new inode). Paths are
    resolved as a process chrooted into the tree would resolve them - an absolute symlink such
    as C(var/run -> /run) leads to C(<path>/run), never to the host's C(/run).
options:
  path:
    description: The image's tree (a real directory, not V(/)).
    type: path
    required: true
  state:
    description: What to do; see the description.
    type: str
    choices: [hardened, host_files]
    default: hardened
  setid:
    description: Strip set-uid and set-gid bits from regular files (O(state=hardened)).
    type: bool
    default: true
  capabilities:
    description: Remove file capabilities from regular files (O(state=hardened)).
    type: bool
    default: true
  world_writable:
    description: Remove the world-writable bit from regular files and from directories that are not sticky (O(state=hardened)).
    type: bool
    default: true
  host_files:
    description: The host files the tree needs (O(state=host_files)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path inside the tree (and, by default, on the host).
        type: str
        required: true
      type:
        description: A file or a directory.
        type: str
        choices: [file, directory]
        default: file
      how:
        description: V(bind) - make the mount point exist; V(sync) - copy the file in (files only).
        type: str
        choices: [bind, sync]
        default: bind
      src:
        description: For V(sync), the host file to copy, or a list of candidates (the first that exists). Defaults to O(host_files[].path).
        type: raw
      optional:
        description: For V(sync), skip the entry when no source exists instead of failing.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change, changes nothing.
  diff_mode:
    support: full
    description: The changes, one per line, as the after text.
notes:
  - Taking set-uid programs out of images is CHOS's rule (seed 002, "SECURITY"); file
    capabilities are its modern equivalent. The host files (passwd, group, resolv.conf, CA
    certificates, nscd's socket) are seed 003's list ("Deployment").
  - Fails for a path that is not a tree directory, a host file entry that is malformed, leads
    outside the tree, exists with the other type, or (V(sync), not optional) has no source; the
    result then holds what was changed so far.
author:
  - hpc.jobroot developers (@hpc-jobroot)
"""

EXAMPLES = r"""
- name: Take privileges out of the master tree
  hpc.jobroot.image_tree:
    path: /var/lib/hpc-jobroot/build/bullseye
    state: hardened

- name: Mount points for passwd, group and nscd's socket; copy the CA bundle in
  hpc.jobroot.image_tree:
    path: /var/lib/hpc-jobroot/build/bullseye
    state: host_files
    host_files:
      - {path: /etc/passwd}
      - {path: /etc/group}
      - {path: /var/run/nscd, type: directory}
      - {path: /etc/ssl/certs/ca-certificates.crt, how: sync, src: [/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt]}
"""

RETURN = r"""
stripped:
  description: What was (or would be) stripped, as C(<path relative to the tree> <what>); what is
    C(setid), C(capabilities), C(world-writable) or C(world-writable dir).
  returned: state is hardened
  type: list
  elements: str
  sample: ["usr/bin/su setid", "usr/bin/ping capabilities"]
created:
  description: The host file paths whose mount point was (or would be) made.
  returned: state is host_files
  type: list
  elements: str
  sample: ["/etc/passwd"]
synced:
  description: The host file paths that were (or would be) copied in.
  returned: state is host_files
  type: list
  elements: str
  sample: ["/etc/ssl/certs/ca-certificates.crt"]
skipped:
  description: Optional V(sync) entries without a source on this host.
  returned: state is host_files
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.jobroot.plugins.module_utils import imagetree
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="hardened", choices=["hardened", "host_files"]),
            setid=dict(type="bool", default=True),
            capabilities=dict(type="bool", default=True),
            world_writable=dict(type="bool", default=True),
            host_files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                type=dict(type="str", default="file", choices=["file", "directory"]),
                how=dict(type="str", default="bind", choices=["bind", "sync"]),
                src=dict(type="raw"),
                optional=dict(type="bool", default=False),
            )),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "hardened":
        try:
            stripped = imagetree.harden(p["path"], p["setid"], p["capabilities"], p["world_writable"],
                                        module.check_mode)
        except (JobrootError, OSError) as exc:
            module.fail_json(msg="hardening %s failed: %s" % (p["path"], exc))
        module.exit_json(changed=bool(stripped), stripped=stripped,
                         diff=dict(before="", after="".join(s + "\n" for s in stripped)))
    done = {}
    try:
        created, synced, skipped = imagetree.host_files(p["path"], p["host_files"], module.check_mode, done)
    except (JobrootError, OSError) as exc:
        module.fail_json(msg=str(exc), **done)
    lines = ["made %s" % x for x in created] + ["synced %s" % x for x in synced]
    module.exit_json(changed=bool(created or synced), created=created, synced=synced, skipped=skipped,
                     diff=dict(before="", after="".join(s + "\n" for s in lines)))


if __name__ == "__main__":
    main()
