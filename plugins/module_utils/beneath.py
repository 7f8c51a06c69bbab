# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Act on a path inside a job root by file descriptor, never through a symlink.

The job's user owns directories inside its root (its home, /tmp) and races
the epilogue: it can rename a directory that holds a mount and put a symlink
in its place, so that a path read from mountinfo a moment ago now leads to
the host. umount2(2)'s UMOUNT_NOFOLLOW covers only the last component.

So every unmount, rmdir and unlink below a root is done like this:

1. open the *parent* directory from a descriptor of the root with
   openat2(2) ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS``
   (Linux 5.6; older kernels: a walk of ``O_PATH | O_NOFOLLOW`` opens, one
   component at a time, which refuses the same things). ``RESOLVE_NO_XDEV``
   does not apply: the way to a nested mount crosses the mounts we made.
   Instead the parent's mount ID (``mnt_id`` in /proc/self/fdinfo, Linux
   3.15) must be the root's own mount or one of the mounts below the root;
2. for an unmount, the last component is opened the same way and its mount
   ID must be the one mountinfo listed;
3. the call then goes through the pinned parent: ``umount2`` on
   ``/proc/self/fd/<parent>/<name>`` with UMOUNT_NOFOLLOW, ``unlinkat`` and
   ``rmdir`` with ``dir_fd``. A rename after step 1 moves the parent, not
   our descriptor, and a name swapped in the pinned parent can only hold a
   mount of the parent's mount, which is inside the root.

A path that no longer resolves this way (the user moved or swapped it)
raises :class:`MovedError`; the caller reads mountinfo again.
"""

from __future__ import annotations

import ctypes
import errno as errnos
import os
import stat

from ansible_collections.hpc.jobroot.plugins.module_utils import mounts
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

#: openat2(2) number: 437 on every architecture (added after the syscall table unification).
SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
#: errno values that mean "the path changed under us" (a symlink, a rename, a swap).
_MOVED = (errnos.ELOOP, errnos.ENOENT, errnos.ENOTDIR, errnos.EXDEV, errnos.EAGAIN)


class MovedError(JobrootError):
    """A path below the root no longer resolves without a symlink, or is another mount now."""


class _OpenHow(ctypes.Structure):  # pylint: disable=too-few-public-methods
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


# os.uname, not platform.system: importing platform costs every hook start (issue 18)
_state = {"libc": None, "openat2": os.uname().sysname == "Linux"}


def _libc():
    if _state["libc"] is None:
        _state["libc"] = ctypes.CDLL("libc.so.6", use_errno=True)
        _state["libc"].syscall.restype = ctypes.c_long
    return _state["libc"]


def _openat2(dirfd, rel, flags):
    """openat2(2) with :data:`_RESOLVE`; return an fd, or None if the kernel lacks it."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE)
    fd = _libc().syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd),
                         ctypes.c_char_p(os.fsencode(rel)), ctypes.byref(how),
                         ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (errnos.ENOSYS, errnos.EPERM) and _state["openat2"]:
        _state["openat2"] = False  # ENOSYS: before 5.6; EPERM: a seccomp filter
        return None
    raise OSError(err, os.strerror(err), rel)


def _walk(dirfd, rel, flags):
    """The fallback of :func:`_openat2`: one ``O_PATH | O_NOFOLLOW`` open per component."""
    fd = os.dup(dirfd)
    parts = rel.split("/")
    try:
        for i, part in enumerate(parts):
            if part in ("", ".", ".."):
                raise OSError(errnos.EXDEV, "component %r leaves the root" % part, rel)
            last = i == len(parts) - 1
            # O_DIRECTORY | O_NOFOLLOW fails with ENOTDIR on a symlink.
            nxt = os.open(part, (flags if last else os.O_PATH | os.O_DIRECTORY)
                          | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errnos.ELOOP, "a symlink", rel)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_beneath(dirfd, rel, flags=os.O_PATH):
    """Open *rel* below directory descriptor *dirfd* without leaving it or following a symlink.

    *rel*: a relative path (``.`` for *dirfd* itself). *flags*: ``os.O_*``
    flags, ``O_PATH`` by default. Returns a new descriptor (close it).
    Raises OSError: ELOOP for a symlink on the way, EXDEV for a way out,
    ENOENT/ENOTDIR when something was moved.
    """
    if rel == ".":
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=dirfd)
    if _state["openat2"]:
        fd = _openat2(dirfd, rel, flags)
        if fd is not None:
            return fd
    return _walk(dirfd, rel, flags)


def mount_id(fd):
    """Return the mount ID (int) of open descriptor *fd*, as mountinfo numbers mounts.

    Read from ``/proc/self/fdinfo/<fd>`` (``mnt_id``, Linux 3.15), which
    works on every kernel we support, unlike statx's STATX_MNT_ID (5.8).
    """
    with open("/proc/self/fdinfo/%d" % fd, encoding="ascii") as handle:
        for line in handle:
            if line.startswith("mnt_id:"):
                return int(line.split(":", 1)[1])
    raise JobrootError("no mnt_id in /proc/self/fdinfo/%d" % fd)


class Root:
    """A job root held open by descriptor; paths below it are acted on through it.

    Use as a context manager. *root*: the clean absolute path of the root
    (its own components are the admin's: root_base is root-owned). Call
    :meth:`refresh` with the mountinfo table (list of mountinfo.Mount)
    before acting, and again after reading it anew.
    """

    def __init__(self, root):
        self.root = root
        self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.ids = {mount_id(self.fd)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False

    def refresh(self, table):
        """Allow the mounts of *table* at or below the root as places a parent may be on."""
        prefix = self.root + "/"
        self.ids = {mount_id(self.fd)} | {
            m.mount_id for m in table if m.mount_point.startswith(prefix)}

    def _rel(self, path):
        if not path.startswith(self.root + "/"):
            raise JobrootError("%s is not below the root %s" % (path, self.root))
        return path[len(self.root) + 1:]

    def _parent(self, path):
        """Return ``(fd, name)``: the pinned parent directory of *path*, and the last component."""
        rel = self._rel(path)
        folder, name = rel.rpartition("/")[::2]
        try:
            fd = open_beneath(self.fd, folder or ".", os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            if exc.errno in _MOVED:
                raise MovedError("%s moved or became a symlink: %s" % (path, exc)) from None
            raise
        if mount_id(fd) not in self.ids:
            os.close(fd)
            raise MovedError("the parent of %s is on a mount outside the root" % path)
        return fd, name

    def umount(self, mount, lazy=False):
        """Unmount mountinfo entry *mount* (below the root); return True if it was unmounted.

        Raises MovedError if its path now leads elsewhere or shows another
        mount, BusyError/MountError as :func:`mounts.umount`.
        """
        fd, name = self._parent(mount.mount_point)
        try:
            try:
                child = open_beneath(fd, name)
            except OSError as exc:
                if exc.errno in _MOVED:
                    raise MovedError("%s moved: %s" % (mount.mount_point, exc)) from None
                raise
            try:
                found = mount_id(child)
            finally:
                os.close(child)
            if found != mount.mount_id:
                raise MovedError("%s is mount %d now, not %d" % (
                    mount.mount_point, found, mount.mount_id))
            return mounts.umount("/proc/self/fd/%d/%s" % (fd, name), lazy=lazy)
        finally:
            os.close(fd)

    def lstat(self, path):
        """os.lstat of *path* below the root, through its pinned parent."""
        fd, name = self._parent(path)
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def rmdir(self, path):
        """rmdir(2) of *path* below the root, through its pinned parent."""
        fd, name = self._parent(path)
        try:
            os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)

    def unlink(self, path):
        """unlink(2) of *path* below the root (never a directory), through its pinned parent."""
        fd, name = self._parent(path)
        try:
            os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def purge(self):
        """Remove everything inside the root (not the root itself), on the root's own mount only.

        For a root that is a plain directory (directory mode), once every
        mount below it is gone: what the job left in ``tmp`` and ``var/tmp``
        and the mount points that were made. Every directory is opened by
        descriptor with O_NOFOLLOW from its parent and must be on the root's
        own mount (mount ID), so nothing is deleted through a mount or a
        symlink; iterative, so a deep tree cannot exhaust the stack. Returns
        the number of entries removed. Raises JobrootError if a mount is
        still there.
        """
        own = mount_id(self.fd)
        top = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
        stack = [(top, None, os.scandir(top))]  # (dir fd, name in parent, its listing)
        removed = 0
        try:
            while stack:
                fd, name, listing = stack[-1]
                entry = next(listing, None)
                if entry is None:  # done with this directory: remove it from its parent
                    stack.pop()
                    listing.close()
                    os.close(fd)
                    if name is not None:
                        os.rmdir(name, dir_fd=stack[-1][0])
                        removed += 1
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=fd)
                    if mount_id(sub) != own:
                        os.close(sub)
                        raise JobrootError("%s/%s is a mount: refusing to remove through it"
                                           % (self.root, entry.name))
                    stack.append((sub, entry.name, os.scandir(sub)))
                else:
                    os.unlink(entry.name, dir_fd=fd)
                    removed += 1
        finally:
            for level in stack:
                level[2].close()
                os.close(level[0])
        return removed
