# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Locks, so concurrent prologues, epilogues and sweeps on one node cannot race.

``flock(2)`` locks vanish with the process that holds them, so a prologue
killed halfway never leaves a stale lock behind. A job's lock file is
removed at the end of its epilogue (:meth:`Lock.remove`, while holding it);
a waiter that then gets the lock on the removed file notices (the path no
longer names its descriptor's inode) and locks the path anew, so two
holders can never exist.
"""

from __future__ import annotations

import fcntl
import os
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import rundir
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


class Lock:
    """An exclusive ``flock`` on file *path*, as a context manager.

    *timeout* (seconds, float): how long to wait; ``0`` means try once.
    Raises JobrootError (entering) if the lock is not had in time.
    """

    def __init__(self, path, timeout=300.0):
        self.path = path
        self.timeout = timeout
        self.fd = None

    def acquire(self):
        """Take the lock; return True, or False if *timeout* is 0 and it is held elsewhere."""
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self._names(fd):
                    self.fd = fd
                    return True
                # removed (or replaced) by its last holder: lock the path anew
                os.close(fd)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    if self.timeout == 0:
                        return False
                    raise JobrootError("timed out after %g s waiting for lock %s"
                                       % (self.timeout, self.path)) from None
                time.sleep(0.05)

    def _names(self, fd):
        """True if ``self.path`` still names the file open on *fd*."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def remove(self):
        """Unlink the lock file while holding the lock (then :meth:`release`).

        Raises JobrootError if the lock is not held. A process waiting for
        the lock then sees it was removed and takes a fresh one
        (:meth:`acquire`), so removing never lets two holders in.
        """
        if self.fd is None:
            raise JobrootError("lock %s is not held: not removing it" % self.path)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def release(self):
        """Release the lock (closing the descriptor drops the flock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def node_lock(run_dir, timeout=300.0):
    """The node lock ``<run_dir>/lock``: held while slots are counted and volumes made or removed."""
    return Lock(rundir.node_lock_path(run_dir), timeout)


def job_lock(run_dir, key, timeout=300.0):
    """The lock of one job ``<run_dir>/locks/<key>``: held by its prologue, epilogue or sweep."""
    return Lock(rundir.job_lock_path(run_dir, key), timeout)
