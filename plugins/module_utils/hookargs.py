# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batch system's arguments to the hook command, as plain data.

The prologue/epilogue wrappers run the hook as::

    jobroot prologue [OUR OPTIONS] --batch-system torque -- JOBID USER GROUP JOBNAME ...
    jobroot prologue [OUR OPTIONS] --batch-system slurm --

Everything after the first ``--`` comes from the batch system, and some of
it from the job's user (Torque's job name, account and queue): it is never
parsed as an option, so a job named ``-h`` or ``--config-dir=/x`` is just a
job name. The job id is validated before anything else is looked at.

Positions (Torque 2.5 to 6.1, ``src/resmom/prolog.c``, ``run_pelog()``; the
Torque Administrator Guide, "Prologue and epilogue scripts"):
prologue ``JOBID USER GROUP JOBNAME LIMITS QUEUE ACCOUNT``; epilogue
``JOBID USER GROUP JOBNAME SESSION LIMITS USED QUEUE ACCOUNT``. Later
Torque versions append more; they are ignored. Slurm passes none: the job
comes from ``SLURM_JOB_ID`` and ``SLURM_JOB_USER`` (slurm.conf(5), "Prolog").
"""

from __future__ import annotations

from collections import namedtuple

from ansible_collections.hpc.jobroot.plugins.module_utils import validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

SEPARATOR = "--"

#: index of the queue in Torque's argument list, per hook command
TORQUE_QUEUE_INDEX = {"prologue": 5, "epilogue": 7}


# A named tuple, not a dataclass: importing dataclasses pulls inspect, ast
# and dis into every hook start (issue 18).
class BatchJob(namedtuple("BatchJob", ("job_id", "user", "queue"), defaults=("",))):
    """What the batch system said about a job (a named tuple): all str, ``queue`` may be ``""``."""

    __slots__ = ()


def split(argv):
    """Split *argv* (list of str) at the first ``--``.

    Returns ``(ours, theirs)``: the arguments before it (for our option
    parser) and after it (the batch system's, plain data), or
    ``(argv, None)`` when there is no ``--``.
    """
    if SEPARATOR not in argv:
        return list(argv), None
    at = argv.index(SEPARATOR)
    return list(argv[:at]), list(argv[at + 1:])


def batch_job(batch_system, command, theirs, env):
    """Return the :class:`BatchJob` of one prologue or epilogue call.

    *batch_system*: ``torque`` or ``slurm``. *command*: ``prologue`` or
    ``epilogue``. *theirs*: the arguments after ``--`` (list of str), or
    None if the wrapper passed no ``--``. *env*: the environment (mapping).

    The job id is checked first (validate.job_id), then, for a prologue,
    the user name (validate.user_name: syntax only; an epilogue does not
    need it and gets ``user=""``). Raises ValidationError when the
    separator is missing, a Torque call has fewer than two arguments, Slurm
    got arguments, or the id or user is malformed.
    """
    if theirs is None:
        raise ValidationError("the batch system's arguments must follow '--' (the wrapper "
                              "is out of date: re-run the role that installs it)")
    if batch_system == "torque":
        if len(theirs) < 2:
            raise ValidationError("Torque passes at least JOBID and USER after '--', got %d "
                                  "argument(s)" % len(theirs))
        job_id = validate.job_id(theirs[0])
        user = validate.user_name(theirs[1]) if command == "prologue" else ""
        index = TORQUE_QUEUE_INDEX[command]
        queue = theirs[index] if len(theirs) > index else ""
        return BatchJob(job_id, user, queue)
    if batch_system == "slurm":
        if theirs:
            raise ValidationError("Slurm passes no arguments to Prolog/Epilog, got %d"
                                  % len(theirs))
        job_id = validate.job_id(env.get("SLURM_JOB_ID", ""))
        user = validate.user_name(env.get("SLURM_JOB_USER", "")) if command == "prologue" else ""
        return BatchJob(job_id, user)
    raise ValidationError("batch system %r is not torque or slurm" % (batch_system,))
