# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""procs.end_in_root on a kernel without pidfd_open (Linux < 5.3)."""

from __future__ import annotations

import errno
import os

from ansible_collections.hpc.jobroot.plugins.module_utils import procs


def test_holder_without_pidfd_is_reported_never_signalled(monkeypatch):
    def no_pidfd(pid):
        raise OSError(errno.ENOSYS, "pidfd_open")

    def no_signal(*args):
        raise AssertionError("signalled without a pidfd: %r" % (args,))

    monkeypatch.setattr(procs, "holders", lambda root, devices: {4242: "cwd"})
    monkeypatch.setattr(procs, "uids", lambda pid: (1000, 1000, 1000, 1000))
    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    monkeypatch.setattr(procs.signal, "pidfd_send_signal", no_signal)
    ended, spared = procs.end_in_root("/roots/1", uid=1000)
    assert ended == []
    assert spared == {4242: (1000, "cwd")}


def test_holder_gone_before_pidfd_is_skipped(monkeypatch):
    def gone(pid):
        raise ProcessLookupError(errno.ESRCH, "pidfd_open")

    monkeypatch.setattr(procs, "holders", lambda root, devices: {4242: "cwd"})
    monkeypatch.setattr(os, "pidfd_open", gone)
    assert procs.end_in_root("/roots/1", uid=1000) == ([], {})


def test_roots_names_this_process_root():
    assert procs.roots()[os.getpid()] == os.readlink("/proc/self/root")
