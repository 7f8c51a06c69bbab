# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount table, read from ``/proc/self/mountinfo``.

mountinfo is the source of truth for what is mounted where: unlike
``/proc/mounts`` or mount(8) it shows, for a bind mount, which directory of
which file system it shows (the ``root`` field), and each mount's
propagation (``shared:N``, ``master:N``). The format is proc(5),
"/proc/pid/mountinfo"; ansible.posix.mount reads it for the same reason.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple

Mount = namedtuple("Mount", "mount_id parent_id dev root mount_point options "
                            "optional fstype source super_options")
Mount.__doc__ = """One line of mountinfo.

``mount_id``/``parent_id`` are ints, ``dev`` is ``"major:minor"``, ``root``
the path inside the file system that is shown, ``mount_point`` the absolute
path, ``options`` a frozenset of per-mount options (``ro``, ``nosuid`` ...),
``optional`` a tuple of optional fields (``shared:1``, ``master:2``,
``unbindable``), then ``fstype``, ``source`` and super-block options.
"""

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field):
    # The kernel escapes space, tab, newline and backslash as \ooo.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse(text):
    """Parse mountinfo *text* (str) into a list of :data:`Mount`, in table order."""
    mounts = []
    for line in text.splitlines():
        if not line:
            continue
        head, tail = line.partition(" - ")[::2]
        f = head.split(" ")
        t = tail.split(" ")
        mounts.append(Mount(
            mount_id=int(f[0]), parent_id=int(f[1]), dev=f[2], root=_unescape(f[3]),
            mount_point=_unescape(f[4]), options=frozenset(f[5].split(",")),
            optional=tuple(f[6:]), fstype=t[0], source=_unescape(t[1]) if len(t) > 1 else "",
            super_options=t[2] if len(t) > 2 else ""))
    return mounts


def read(path="/proc/self/mountinfo"):
    """Return the current mount table as a list of :data:`Mount` (see :func:`parse`)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return parse(handle.read())


def under(mounts, path, include_self=True):
    """Return the mounts of *mounts* at or below absolute *path*.

    With ``include_self=False`` a mount exactly at *path* is left out.
    """
    prefix = path.rstrip("/") + "/"
    return [m for m in mounts
            if (include_self and m.mount_point == path) or m.mount_point.startswith(prefix)]


def top_at(mounts, path):
    """Return the topmost mount whose mount point is exactly *path*, or None.

    When several mounts are stacked on one point, the one mounted last (its
    parent is the one below it) is what a path lookup sees.
    """
    stack = [m for m in mounts if m.mount_point == path]
    parents = {m.parent_id for m in stack}
    tops = [m for m in stack if m.mount_id not in parents]
    return tops[-1] if tops else None


def containing(mounts, path):
    """Return the mount that holds absolute *path* (the longest mount point prefix)."""
    best = None
    for m in mounts:
        mp = m.mount_point
        if path == mp or mp == "/" or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(best.mount_point):
                best = m
    return best


def propagation(mount):
    """Return the propagation of *mount*: ``shared``, ``slave``, ``private`` or ``unbindable``.

    A mount that is both ``shared`` and ``master`` (a shared slave) reports
    ``shared``.
    """
    tags = {o.split(":")[0] for o in mount.optional}
    if "shared" in tags:
        return "shared"
    if "master" in tags:
        return "slave"
    if "unbindable" in tags:
        return "unbindable"
    return "private"


def bind_origin(mounts, source):
    """Return ``(dev, root)`` that a bind mount of *source* shows in mountinfo.

    *source* is resolved with ``os.path.realpath``; ``dev`` is the
    ``major:minor`` of the file system holding it and ``root`` the path of
    *source* inside that file system. Comparing these with a mount's
    ``dev``/``root`` tells whether that mount is a bind of *source*.
    """
    real = os.path.realpath(source)
    host = containing(mounts, real)
    rel = real[len(host.mount_point):] if host.mount_point != "/" else real
    root = os.path.normpath(host.root.rstrip("/") + "/" + rel.lstrip("/")) if rel.strip("/") else host.root
    return host.dev, root
