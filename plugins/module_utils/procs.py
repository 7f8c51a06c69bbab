# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes a job left behind inside its root.

A job's processes are chrooted into its root, so ``/proc/PID/root`` names
the root (or a path below it). The epilogue ends them before unmounting,
otherwise the mounts stay busy (seed 000 lists "failure to clean up" as the
method's main drawback).
"""

from __future__ import annotations

import os
import signal
import time


def in_root(root):
    """Return the PIDs (sorted ints) whose root directory is *root* or below it."""
    prefix = root.rstrip("/") + "/"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            target = os.readlink("/proc/%s/root" % entry)
        except OSError:
            continue
        if target == root or target.startswith(prefix):
            pids.append(int(entry))
    return sorted(pids)


def end_in_root(root, grace=2.0):
    """End every process chrooted at/below *root*; return the PIDs that were signalled.

    SIGTERM first, then SIGKILL for what is still there after *grace*
    seconds. Processes outside the root are never signalled.
    """
    ended = in_root(root)
    left = ended
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while True:
            left = in_root(root)
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    return ended
