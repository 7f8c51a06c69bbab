# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection for tests: SIGKILL this process at a named step of the lifecycle.

A node must come back clean after the hook command is killed at any point
(a node crash, the OOM killer, slurmd's Prolog timeout): gc must leave no
volume, mount, root, state, pin, record or temp file (issue 11, item 9).
To test that, ``HPC_JOBROOT_KILL_AT=<step>`` makes the process kill itself
with SIGKILL when it reaches that step. It is a test-only switch: it is
refused (ValidationError, before anything is done) unless
``HPC_JOBROOT_TEST=1`` is set too, and a step name not in :data:`STEPS`
is refused as well, so a typo cannot make a test pass by never killing.
"""

from __future__ import annotations

import os
import signal

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

SWITCH = "HPC_JOBROOT_KILL_AT"
GUARD = "HPC_JOBROOT_TEST"

#: The named steps, in the order a prologue and an epilogue reach them.
#: ``atomic-temp`` is between writing a temp file and renaming it (the
#: first atomic write the process makes).
STEPS = ("prologue-state", "atomic-temp", "prologue-pin", "prologue-volume", "prologue-bind-tree",
         "prologue-record", "prologue-ready", "epilogue-record", "epilogue-processes",
         "epilogue-unmount", "epilogue-volume", "epilogue-unpin")


def check(env=None):
    """Raise ValidationError if the switch is set without the test guard, or names no step.

    *env*: a mapping, ``os.environ`` by default. Called before the
    prologue, epilogue or gc does anything.
    """
    env = os.environ if env is None else env
    step = env.get(SWITCH)
    if step is None:
        return
    if env.get(GUARD) != "1":
        raise ValidationError("%s is a test-only switch: refused without %s=1" % (SWITCH, GUARD))
    if step not in STEPS:
        raise ValidationError("%s=%r is not one of %s" % (SWITCH, step, ", ".join(STEPS)))


def point(step):
    """SIGKILL this process if the (checked) switch names *step* (a str of :data:`STEPS`)."""
    if os.environ.get(SWITCH) == step and os.environ.get(GUARD) == "1":
        os.kill(os.getpid(), signal.SIGKILL)
