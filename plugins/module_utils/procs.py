# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes that hold a job's root: inside it, or outside it on its devices.

A job's processes are chrooted into its root, so ``/proc/PID/root`` names
the root (or a path below it). But a process *outside* the root can hold
the job's volume too (issue 11, item 3): another job of the same user, or a
login adopted into the node, whose working directory, open files or
memory maps are on the job's device; or one that left the root through
``/proc/PID/root`` of a job process. So a holder is found by device
(``st_dev`` of cwd, root, open fds, and the device column of
``/proc/PID/maps``) and by path (those links naming a place at or below the
root), not only by ``/proc/PID/root``. The epilogue ends them before
unmounting, otherwise the volume stays busy (seed 000 lists "failure to
clean up" as the method's main drawback); but only those of the job's own
user. Root's processes and other users' are reported by PID, never
signalled: the job's user cannot make the epilogue kill them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import mountinfo


def job_devices(root, table=None):
    """Return the devices (set of ``st_dev`` ints) only the job's mounts use.

    Those of the mounts at or below *root* (the job volume, its private
    ``/dev/shm``) that no mount elsewhere shows: a bind of the host's
    ``/usr`` shares the host's device and must not make every process on the
    node a holder. *table*: a mountinfo table, read if None.
    """
    table = mountinfo.read() if table is None else table
    inside = mountinfo.under(table, root)
    outside = {m.dev for m in table if m not in inside}
    devices = set()
    for m in inside:
        if m.dev not in outside:
            major, minor = m.dev.split(":")
            devices.add(os.makedev(int(major), int(minor)))
    return devices


AT_STATX_DONT_SYNC = 0x4000
_STATX_SIZE = 256       # struct statx (linux/stat.h)
_STATX_DEV = 136        # offset of stx_dev_major, then stx_dev_minor (u32 each)
_libc = []


def device_of(path):
    """Return the ``st_dev`` of what *path* (a /proc/PID/... link) leads to, or None.

    statx(2) with AT_STATX_DONT_SYNC: the answer comes from the kernel's
    cache, so a hung NFS server or a stopped FUSE daemon (the job's user
    can stop its own) cannot make the epilogue wait. glibc 2.28 (EL8).
    """
    if not _libc:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.statx.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                               ctypes.c_void_p)
        _libc.append(libc)
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if _libc[0].statx(-100, os.fsencode(path), AT_STATX_DONT_SYNC, 0, buf) != 0:  # AT_FDCWD
        return None
    major = ctypes.c_uint32.from_buffer(buf, _STATX_DEV).value
    minor = ctypes.c_uint32.from_buffer(buf, _STATX_DEV + 4).value
    return os.makedev(major, minor)


def _below(target, root):
    return target == root or target.startswith(root.rstrip("/") + "/")


def _holds(pid, root, devices):
    """Return why *pid* holds the job (``cwd``, ``root``, ``fd N``, ``map``), or None."""
    folder = "/proc/%s" % pid
    links = ["cwd", "root"]
    try:
        links += ["fd/" + n for n in os.listdir(folder + "/fd")]
    except OSError:
        pass  # gone, or a kernel thread
    for link in links:
        path = "%s/%s" % (folder, link)
        try:
            if _below(os.readlink(path), root) or device_of(path) in devices:
                return link.replace("/", " ")
        except OSError:
            continue
    try:
        with open(folder + "/maps", encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                fields = line.split(None, 5)
                if len(fields) < 5 or fields[4] == "0":
                    continue
                major, minor = fields[3].split(":")
                path = fields[5].strip() if len(fields) > 5 else ""
                if os.makedev(int(major, 16), int(minor, 16)) in devices or \
                        (path.startswith("/") and _below(path, root)):
                    return "map"
    except OSError:
        pass
    return None


def holders(root, devices=frozenset()):
    """Return ``{PID: reason}`` of every process (but this one) holding job root *root*.

    *devices*: the job's devices (:func:`job_devices`). A process holds the
    job if its root, cwd, an open fd or a memory map is at or below *root*
    or on one of *devices*.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        reason = _holds(entry, root, devices)
        if reason:
            found[int(entry)] = reason
    return found


def roots():
    """Return ``{PID: root directory}`` (int: str) of every process whose ``/proc/PID/root`` is readable.

    The root is what readlink(2) gives for ``/proc/PID/root`` (proc(5)): a
    chrooted process shows its chroot directory. Processes that vanish or
    cannot be read are left out.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            found[int(entry)] = os.readlink("/proc/%s/root" % entry)
        except OSError:
            continue
    return found


def uids(pid):
    """Return the real, effective, saved and file-system uid of *pid* (tuple of 4 ints), or None."""
    try:
        with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return tuple(int(x) for x in line.split()[1:5])
    except (OSError, ValueError):
        pass
    return None


def end_in_root(root, uid=None, devices=frozenset(), grace=2.0):
    """End the job user's processes that hold *root*; return ``(ended, spared)``.

    *uid*: the job owner's uid, or None if unknown (then nothing is
    signalled). *devices*: :func:`job_devices`. A holder is signalled only
    if all four of its uids are *uid* (a setuid program the user started is
    not the user's): SIGTERM, then SIGKILL for what is still there after
    *grace* seconds. Each is signalled through a pidfd opened before its
    uids are read, so a PID reused in between is never hit. ``ended``: the
    PIDs signalled (sorted); ``spared``: ``{PID: (uid, reason)}`` of root's
    or other users' holders, which are never signalled: the caller reports them.
    """
    found = holders(root, devices)
    ours, spared = {}, {}
    for pid in sorted(found):
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone already
        except OSError:
            # No pidfd (Linux < 5.3): without one a reused PID could be hit,
            # so it is reported, never signalled; teardown then waits for gc.
            spared[pid] = ((uids(pid) or (None,))[0], found[pid])
            continue
        owner = uids(pid)
        if uid is not None and owner == (uid,) * 4:
            ours[pid] = handle
        else:
            os.close(handle)
            spared[pid] = ((owner or (None,))[0], found[pid])
    try:
        left = sorted(ours)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not left:
                break
            for pid in left:
                try:
                    signal.pidfd_send_signal(ours[pid], sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while True:
                left = [p for p in left if os.path.exists("/proc/%d" % p)
                        and _holds(str(p), root, devices)]
                if not left or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
    finally:
        for handle in ours.values():
            os.close(handle)
    return sorted(ours), spared
