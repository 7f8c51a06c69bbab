# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection for tests: SIGKILL the prologue or epilogue at a named step.

A node can lose its prologue or epilogue at any instant (OOM killer, a
timeout's SIGKILL, a power cut). The lifecycle is safe only if gc cleans up
after a kill at every step, so the tests kill it at each step in turn
(molecule/slurm/verify_faults.yml). The lifecycle calls
:func:`checkpoint` with a name from :data:`STEPS` between its steps;
nothing happens there unless both environment variables are set:

* ``HPC_JOBROOT_KILL_AT=STEP``: the process kills itself (SIGKILL, so no
  ``finally`` block or exit handler runs) when it reaches STEP;
* ``HPC_JOBROOT_TESTING=1``: the test variable. Without it the switch is
  refused: :func:`check` raises ValidationError, and the lifecycle calls
  it before it does anything.
"""

from __future__ import annotations

import os
import signal

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

SWITCH = "HPC_JOBROOT_KILL_AT"
TEST_VARIABLE = "HPC_JOBROOT_TESTING"

#: Every kill point, in the order a job passes them. What has happened when
#: the process dies there is in the comment; lifecycle.py unless named.
STEPS = (
    "prologue.locked",            # job lock held, nothing written
    "prologue.temp-written",      # atomic.write: the state temp file written, not renamed
    "prologue.state-saved",       # state file says phase "setup"
    "prologue.pinned",            # image version pinned, root base private
    "prologue.volume-created",    # lvm.create: LV exists, no file system
    "prologue.volume-opened",     # lvm.create, encrypted: crypt mapping open, no file system
    "prologue.volume-formatted",  # lvm.create: file system made, not mounted
    "prologue.volume-mounted",    # the LV is mounted at the job root
    "prologue.bind-mounted",      # bindtree.apply: the first mount, no manifest
    "prologue.tree-built",        # bind tree and its manifest complete
    "prologue.record-written",    # the record the batch system reads
    "prologue.ready",             # state file says phase "ready"
    # the epilogue's teardown (also run by gc and by a failed prologue)
    "epilogue.locked",
    "epilogue.records-removed",   # records and refusal gone
    "epilogue.processes-ended",   # what ran in the root was killed
    "epilogue.tree-unmounted",    # bind tree unmounted, LV still mounted
    "epilogue.volume-unmounted",  # lvm.remove, encrypted: unmounted, crypt mapping still open
    "epilogue.volume-closed",     # lvm.remove, encrypted: mapping closed (key gone), LV there
    "epilogue.volume-removed",    # LV unmounted and removed
    "epilogue.unpinned",          # pin gone, state file left
    "epilogue.state-forgotten",   # all gone: the process dies before exit
)


#: The steps only an encrypted job volume passes (node config ``encrypt``);
#: a node without encryption never reaches them.
ENCRYPTED_STEPS = ("prologue.volume-opened", "epilogue.volume-unmounted", "epilogue.volume-closed")


def check(environ=None):
    """Return the step the switch names, or None if it is not set.

    *environ*: a mapping (default ``os.environ``). Raises ValidationError if
    the switch is set without ``HPC_JOBROOT_TESTING=1``, or names no step of
    :data:`STEPS`, so a misused switch stops a hook before it changes
    anything.
    """
    env = os.environ if environ is None else environ
    step = env.get(SWITCH)
    if not step:
        return None
    if env.get(TEST_VARIABLE) != "1":
        raise ValidationError("%s is a test-only switch, refused without %s=1: nothing was done"
                              % (SWITCH, TEST_VARIABLE))
    if step not in STEPS:
        raise ValidationError("%s=%s names no step; the steps are: %s"
                              % (SWITCH, step, ", ".join(STEPS)))
    return step


def checkpoint(step):
    """Kill this process with SIGKILL if the switch names *step* (one of :data:`STEPS`)."""
    if step not in STEPS:
        raise ValueError("checkpoint %r is not listed in faults.STEPS" % (step,))
    if check() == step:
        os.kill(os.getpid(), signal.SIGKILL)
