# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount(2) and umount2(2), called directly.

A prologue makes a dozen mounts; calling the system calls through ctypes
instead of starting mount(8) for each saves a process start per mount and
keeps the error reporting exact (errno, not a parsed message). The flag
values are those of <sys/mount.h> (Linux UAPI, stable ABI).
"""

from __future__ import annotations

import ctypes
import errno as errnos
import os

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import BusyError, MountError

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

#: Per-mount options as mountinfo spells them, and their MS_* flag.
OPTION_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV,
                "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}

#: Propagation types and their flags; the ``r`` forms apply to a whole subtree.
PROPAGATION_FLAGS = {"private": MS_PRIVATE, "slave": MS_SLAVE, "shared": MS_SHARED,
                     "unbindable": MS_UNBINDABLE,
                     "rprivate": MS_PRIVATE | MS_REC, "rslave": MS_SLAVE | MS_REC,
                     "rshared": MS_SHARED | MS_REC}

_libc = None


def _lib():
    global _libc  # pylint: disable=global-statement
    if _libc is None:
        # glibc's soname, loaded directly: ctypes.util.find_library would
        # start ldconfig, a process per prologue for nothing.
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p)
        _libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return _libc


def _b(value):
    return None if value is None else os.fsencode(value)


def flags_of(options):
    """Return the MS_* flag word for an iterable of option names (``ro``, ``nosuid`` ...).

    Names that are not per-mount flags (``rw``, ``relatime`` defaults ...)
    contribute nothing except those listed in :data:`OPTION_FLAGS`.
    """
    word = 0
    for name in options:
        word |= OPTION_FLAGS.get(name, 0)
    return word


def mount(source, target, fstype, flags=0, data=None):
    """Call mount(2). *source*, *target*, *fstype*, *data* are str or None; *flags* an int.

    Raises MountError naming the call and the system error on failure.
    """
    if _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise MountError("mount %s on %s (type %s, flags %#x) failed: %s"
                         % (source, target, fstype, flags, os.strerror(err)), err)


def bind(source, target, recursive=False):
    """Bind mount *source* on *target* (``--rbind`` when *recursive*)."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))


def remount_bind(target, flags):
    """Set the per-mount flags of the bind mount at *target* to exactly *flags*.

    This is the second step of a read-only or nosuid bind mount: the first
    mount(2) with MS_BIND ignores those flags (mount(8), "bind mount
    operation"). Only the per-mount flags change; the file system is not
    remounted.
    """
    mount(None, target, None, MS_BIND | MS_REMOUNT | flags)


def set_propagation(target, propagation):
    """Set the propagation of the mount at *target* (a key of :data:`PROPAGATION_FLAGS`)."""
    mount(None, target, None, PROPAGATION_FLAGS[propagation])


def umount(target, lazy=False):
    """Unmount *target* without following a symlink at its last component.

    Returns True if something was unmounted, False if *target* was not a
    mount point any more (EINVAL or ENOENT: a mount that is already gone must
    not abort a teardown). Raises BusyError on EBUSY unless *lazy*, in which
    case the mount is detached (MNT_DETACH) and disappears once unused.
    Raises MountError on any other failure.
    """
    flags = UMOUNT_NOFOLLOW | (MNT_DETACH if lazy else 0)
    if _lib().umount2(_b(target), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errnos.EINVAL, errnos.ENOENT):
        return False
    if err == errnos.EBUSY:
        raise BusyError("%s is busy (a process has its working directory or a file "
                        "open in it)" % target, err)
    raise MountError("umount %s failed: %s" % (target, os.strerror(err)), err)
