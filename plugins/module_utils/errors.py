# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the per-job library.

Every error the library raises on purpose is a :class:`JobrootError`, so the
modules and the hook command can turn it into one clear message (``failed``
for Ansible, a logged reason and an exit code for a prologue).
"""

from __future__ import annotations


class JobrootError(Exception):
    """Base class: an operation was refused or failed, with a readable reason."""


class ValidationError(JobrootError, ValueError):
    """An externally supplied string (job id, user, image name, path) is not acceptable.

    Raised before the string reaches a path, an LV name or a command line,
    so nothing has been changed when it is raised.
    """


class NoFreeSlotError(JobrootError):
    """Every job slot of the node is taken (or the VG has too few free extents)."""


class CommandError(JobrootError):
    """An external command (lvcreate, mkfs, ...) failed or timed out.

    ``cmd`` is the argument vector, ``rc`` the exit status (None on timeout)
    and ``stderr`` what the command printed on standard error.
    """

    def __init__(self, cmd, rc, stderr):
        self.cmd = list(cmd)
        self.rc = rc
        self.stderr = (stderr or "").strip()
        what = "timed out" if rc is None else "exited %d" % rc
        super().__init__("%s %s: %s" % (" ".join(self.cmd), what, self.stderr or "(no message)"))


class MountError(JobrootError):
    """mount(2) or umount2(2) failed; ``errno`` is the system error number."""

    def __init__(self, message, errno=None):
        self.errno = errno
        super().__init__(message)


class BusyError(MountError):
    """A mount could not be removed because a process still uses it (EBUSY)."""


class RefusedError(JobrootError):
    """The job's request is refused (e.g. an image that is not on the allow-list).

    The prologue records this reason for the batch system to show the user,
    instead of failing in a way that takes the node out of service.
    """
