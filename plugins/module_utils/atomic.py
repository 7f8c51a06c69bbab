# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes, and the sweep of the temp files an interrupted write leaves.

Every file the hook command writes (job state, pins, records, refusals,
bind-tree manifests) is written to ``<path>.tmp.<PID>`` in the same
directory, then renamed over *path* (rename(2) is atomic within a file
system). A writer killed in between leaves its temp file; the PID in the
name lets gc tell a live writer's file from an orphan (issue 11, item 5).
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.hpc.jobroot.plugins.module_utils import faults

_TEMP = re.compile(r"\A(?P<name>.+)\.tmp\.(?P<pid>[1-9][0-9]{0,9})\Z")


def write(path, text, mode=0o644):
    """Write *text* (str, or bytes written as they are) to *path* atomically (temp file + rename(2)).

    The file is root-owned (we run as root) with *mode*; a reader sees the
    old content or the new, never a partial file. The temp file is
    ``<path>.tmp.<our PID>``, removed again if the write fails.
    """
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        faults.checkpoint("prologue.temp-written")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def is_temp(name):
    """Return True if file name *name* (no directory) is one of :func:`write`'s temp files."""
    return _TEMP.match(name) is not None


def sweep(folder, owns):
    """Remove the orphaned temp files in directory *folder*; return their paths (list of str).

    A file is removed only if its name is ``<name>.tmp.<PID>`` with
    ``owns(name)`` true (a name we would write there), no process *PID*
    exists any more, and it is a regular file owned by root (lstat: never a
    symlink). A missing *folder* gives an empty list. A reused PID keeps the
    file until that process is gone too: never remove a live writer's file.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for entry in sorted(names):
        match = _TEMP.match(entry)
        if not match or not owns(match.group("name")):
            continue
        if os.path.exists("/proc/%s" % match.group("pid")):
            continue
        path = os.path.join(folder, entry)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == 0:
            os.unlink(path)
            removed.append(path)
    return removed
