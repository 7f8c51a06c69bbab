# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run directory's layout: every path under ``run_dir``, named once.

``run_dir`` (node config, default ``/run/hpc-jobroot``, a tmpfs: it is
empty after a reboot, and the boot-time gc sweeps what that leaves):

======================================  ================================================
``lock``                                the node lock (lock.node_lock)
``locks/<job key>``                     one job's lock (lock.job_lock)
``jobs/<job key>.json``                 the job's saved state (lifecycle)
``jobs/<job key>.root``                 Slurm's record: the root the SPANK plugin chroots to
``jobs/<job key>.refused``              why the job was refused, for the SPANK plugin
``pins/<job key>``                      the real path of the image version the job uses (image_select.pin)
``failures/<job key>``                  how often the job's prologue failed here (Torque)
``trees/<24 hex>.json``                 bind-tree manifests, one per root (bindtree)
======================================  ================================================

Every argument is a str: *run_dir* an absolute path, *key* a job key
(validate.job_key, checked by the callers before a path is made). Nothing
here touches the file system. The SPANK plugin
(roles/slurm_node/files/jobroot_spank.c: ``jobs/<key>.root`` and
``.refused``) and the boot-time tmpfiles entry (roles/job_hooks) spell
some of the same names; change them together.
"""

from __future__ import annotations

import os

JOBS = "jobs"
PINS = "pins"
LOCKS = "locks"
FAILURES = "failures"
TREES = "trees"
NODE_LOCK = "lock"

STATE_SUFFIX = ".json"
RECORD_SUFFIX = ".root"
REFUSAL_SUFFIX = ".refused"

#: the folders that hold files named after a job key, and the suffixes after the key
PER_JOB = {JOBS: (STATE_SUFFIX, RECORD_SUFFIX, REFUSAL_SUFFIX), PINS: ("",),
           FAILURES: ("",), LOCKS: ("",)}
#: the per-job folders written by atomic.write (a crash may leave its temp files); locks are not
WRITTEN_ATOMICALLY = (JOBS, PINS, FAILURES)


def folder(run_dir, name):
    """Return ``<run_dir>/<name>``, *name* one of JOBS, PINS, LOCKS, FAILURES, TREES."""
    return os.path.join(run_dir, name)


def state_path(run_dir, key):
    """``<run_dir>/jobs/<key>.json``: the job's saved state."""
    return os.path.join(run_dir, JOBS, key + STATE_SUFFIX)


def slurm_record_path(run_dir, key):
    """``<run_dir>/jobs/<key>.root``: the record the SPANK plugin reads."""
    return os.path.join(run_dir, JOBS, key + RECORD_SUFFIX)


def refusal_path(run_dir, key):
    """``<run_dir>/jobs/<key>.refused``: the reason a job was refused."""
    return os.path.join(run_dir, JOBS, key + REFUSAL_SUFFIX)


def pin_path(run_dir, key):
    """``<run_dir>/pins/<key>``: the real path of the image version the job uses."""
    return os.path.join(run_dir, PINS, key)


def failures_path(run_dir, key):
    """``<run_dir>/failures/<key>``: the count of the job's failed prologues."""
    return os.path.join(run_dir, FAILURES, key)


def job_lock_path(run_dir, key):
    """``<run_dir>/locks/<key>``: the job's lock file."""
    return os.path.join(run_dir, LOCKS, key)


def node_lock_path(run_dir):
    """``<run_dir>/lock``: the node lock file."""
    return os.path.join(run_dir, NODE_LOCK)


def trees_path(run_dir):
    """``<run_dir>/trees``: the bind-tree manifests (bindtree's *state_dir*)."""
    return os.path.join(run_dir, TREES)
