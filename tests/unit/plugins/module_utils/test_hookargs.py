# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import hookargs
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

HOSTILE = ["-h", "--help", "--config-dir=/tmp/evil", "--batch-system=slurm", "--", "--all"]


def test_split_at_the_first_separator_only():
    assert hookargs.split(["prologue", "--batch-system", "torque", "--", "1.s", "u", "--", "-h"]) == \
        (["prologue", "--batch-system", "torque"], ["1.s", "u", "--", "-h"])
    assert hookargs.split(["gc", "--all"]) == (["gc", "--all"], None)
    assert hookargs.split(["epilogue", "--"]) == (["epilogue"], [])


def test_torque_prologue_positions():
    # JOBID USER GROUP JOBNAME LIMITS QUEUE ACCOUNT
    job = hookargs.batch_job("torque", "prologue",
                             ["12.srv", "alice", "grp", "name", "walltime=1", "sl5", "acct"], {})
    assert job == hookargs.BatchJob("12.srv", "alice", "sl5")


def test_torque_epilogue_positions():
    # JOBID USER GROUP JOBNAME SESSION LIMITS USED QUEUE ACCOUNT EXIT(6.x)
    job = hookargs.batch_job("torque", "epilogue", ["12[3].srv", "alice", "grp", "name", "4242",
                                                    "walltime=1", "cput=0", "sl5", "acct", "0"], {})
    assert job == hookargs.BatchJob("12[3].srv", "", "sl5")


def test_torque_short_argument_lists():
    assert hookargs.batch_job("torque", "prologue", ["1.s", "bob"], {}).queue == ""
    with pytest.raises(ValidationError, match="at least JOBID and USER"):
        hookargs.batch_job("torque", "prologue", ["1.s"], {})


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_job_name_queue_and_account_are_plain_data(hostile):
    args = ["7.srv", "alice", "grp", hostile, "walltime=1", hostile, hostile]
    job = hookargs.batch_job("torque", "prologue", args, {})
    assert (job.job_id, job.user, job.queue) == ("7.srv", "alice", hostile)


@pytest.mark.parametrize("hostile", HOSTILE + ["", "../1", "1 2", "7.srv/x"])
def test_a_bad_job_id_is_refused_first(hostile):
    # the user is bad too: the job id must be what is reported
    with pytest.raises(ValidationError, match="job id"):
        hookargs.batch_job("torque", "prologue", [hostile, "-u"], {})
    with pytest.raises(ValidationError, match="job id"):
        hookargs.batch_job("slurm", "prologue", [], {"SLURM_JOB_ID": hostile, "SLURM_JOB_USER": "-u"})


@pytest.mark.parametrize("user", ["-h", "--help", "a b", ""])
def test_a_bad_user_is_refused_in_the_prologue(user):
    with pytest.raises(ValidationError, match="user name"):
        hookargs.batch_job("torque", "prologue", ["1.s", user], {})


def test_missing_separator_is_refused():
    for system in ("torque", "slurm"):
        with pytest.raises(ValidationError, match="must follow '--'"):
            hookargs.batch_job(system, "prologue", None, {"SLURM_JOB_ID": "1", "SLURM_JOB_USER": "a"})


def test_slurm_takes_the_job_from_the_environment_and_no_arguments():
    env = {"SLURM_JOB_ID": "4711", "SLURM_JOB_USER": "alice"}
    assert hookargs.batch_job("slurm", "prologue", [], env) == hookargs.BatchJob("4711", "alice")
    assert hookargs.batch_job("slurm", "epilogue", [], {"SLURM_JOB_ID": "4711"}).job_id == "4711"
    with pytest.raises(ValidationError, match="no arguments"):
        hookargs.batch_job("slurm", "prologue", ["-h"], env)
