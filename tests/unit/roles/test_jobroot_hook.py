# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook command's exit codes and argument handling (roles/job_hooks/files/jobroot.py).

The library calls that would build a root are replaced by recorders here
(the real ones run in the torque_mom and named_chroot integration targets);
everything else is the real code: argument parsing, the failure count under
a real run directory, pbs_mom's log file.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

# the library first, so the hook cannot pick up another copy
from ansible_collections.hpc.jobroot.plugins.module_utils import config, hookargs, jobroot, torque
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, NoFreeSlotError

HOOK = pathlib.Path(__file__).resolve().parents[3] / "roles" / "job_hooks" / "files" / "jobroot.py"
TORQUE_ARGS = ["5.srv", "alice", "grp", "name", "walltime=60", "batch", "acct"]


@pytest.fixture(name="hook")
def hook_fixture(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("jobroot_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (module.jobroot, module.hookargs, module.torque) == (jobroot, hookargs, torque)
    pbs_home = tmp_path / "torque"
    (pbs_home / "mom_logs").mkdir(parents=True)
    cfg = config.NodeConfig(run_dir=str(tmp_path / "run"), pbs_home=str(pbs_home),
                            max_setup_failures=3).validate()
    calls = {"load": [], "prologue": [], "epilogue": []}
    module.outcome = {"root": str(tmp_path / "roots" / "5.srv"), "os": "host"}

    def load(config_dir=config.CONFIG_DIR):
        calls["load"].append(config_dir)
        return cfg

    # they report through *log* as jobroot.prologue()/epilogue() do
    def prologue(cfg_, job_id, user, os_name=None, batch_system="slurm", log=None):
        calls["prologue"].append((job_id, user, os_name, batch_system))
        if isinstance(module.outcome, Exception):
            raise module.outcome
        log(module.outcome.get("refused") or "job %s: root %s ready" % (job_id, module.outcome["root"]))
        return dict(module.outcome, job_id=job_id)

    def epilogue(cfg_, job_id, batch_system="slurm", log=None):
        calls["epilogue"].append((job_id, batch_system))
        log("job %s: torn down: 0 unmounts" % job_id)
        return []

    monkeypatch.setattr(module.config, "load", load)
    monkeypatch.setattr(module.jobroot, "prologue", prologue)
    monkeypatch.setattr(module.jobroot, "epilogue", epilogue)
    monkeypatch.setattr(module.syslog, "syslog", lambda *a: None)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOB_USER", raising=False)
    module.calls = calls
    module.cfg = cfg
    return module


def mom_log(hook):
    folder = os.path.join(hook.cfg.pbs_home, "mom_logs")
    return "".join(open(os.path.join(folder, n), encoding="utf-8").read() for n in os.listdir(folder))


def test_torque_prologue_success_is_0_and_logs_the_job_root_to_mom_logs(hook):
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 0
    assert hook.calls["prologue"] == [("5.srv", "alice", None, "torque")]
    assert hook.calls["load"] == [config.CONFIG_DIR]
    line = mom_log(hook)
    assert ";0008;   jobroot.%d;Job;5.srv;hpc-jobroot: job root " % os.getpid() in line


def test_torque_refusal_aborts_with_the_reason_on_stdout(hook, capsys):
    hook.outcome = {"refused": "job 5.srv refused: OS 'sl9' is not allowed"}
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert "hpc-jobroot: job 5.srv refused: OS 'sl9' is not allowed" in capsys.readouterr().out
    assert "refused: OS 'sl9'" in mom_log(hook)


def test_torque_progress_goes_to_mom_logs_not_to_the_jobs_stderr(hook, capsys):
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 0
    assert hook.main(["epilogue", "--batch-system", "torque", "--"] + TORQUE_ARGS + ["4242", "x"]) == 0
    assert capsys.readouterr() == ("", "")
    log = mom_log(hook)
    assert ";Job;5.srv;hpc-jobroot: job 5.srv: root %s ready\n" % hook.outcome["root"] in log
    assert ";Job;5.srv;hpc-jobroot: job 5.srv: torn down: 0 unmounts\n" in log


def test_torque_refusal_is_logged_once(hook, capsys):
    hook.outcome = {"refused": "job 5.srv refused: OS 'sl9' is not allowed"}
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert capsys.readouterr().err == ""
    assert mom_log(hook).count("refused: OS 'sl9'") == 1


def test_slurm_progress_stays_on_stderr(hook, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 0
    assert "job 4711: root " in capsys.readouterr().err
    assert mom_log(hook) == ""


def test_slurm_refusal_is_success(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    hook.outcome = {"refused": "job 4711 refused: no"}
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 0
    hook.outcome = NoFreeSlotError("no free slot")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 1


def test_torque_failure_requeues_then_aborts_after_max_setup_failures(hook, capsys):
    hook.outcome = NoFreeSlotError("volume group must not be empty")
    argv = ["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS
    assert [hook.main(argv) for attempt in (1, 2, 3)] == [2, 2, 1]
    out = capsys.readouterr().out
    assert "job 5.srv aborted: its prologue failed 3 times on this node" in out
    assert "volume group must not be empty" in out
    failures = os.path.join(hook.cfg.run_dir, "failures", "5.srv")
    assert open(failures, encoding="ascii").read() == "3\n"
    assert oct(os.stat(failures).st_mode & 0o777) == "0o600"
    assert "requeued" in mom_log(hook) and "aborted" in mom_log(hook)
    assert hook.main(argv) == 1  # past the limit: aborted again, never requeued


def test_an_unusable_config_aborts_a_torque_job_instead_of_requeueing_it(hook, monkeypatch, capsys):
    def broken(config_dir=config.CONFIG_DIR):
        raise JobrootError("node.json is not valid JSON")
    monkeypatch.setattr(hook.config, "load", broken)
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert "configuration is unusable" in capsys.readouterr().out


@pytest.mark.parametrize("hostile", ["-h", "--help", "--config-dir=/tmp/evil", "--version", "--"])
def test_hostile_job_name_queue_and_account_are_data(hook, hostile):
    args = ["5.srv", "alice", "grp", hostile, hostile, hostile, hostile]
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + args) == 0
    assert hook.calls["load"] == [config.CONFIG_DIR]          # the configuration never changes
    assert hook.calls["prologue"] == [("5.srv", "alice", None, "torque")]  # a root was made
    args = ["5.srv", "alice", "grp", hostile, "0", "l", "u", hostile, hostile]
    assert hook.main(["epilogue", "--batch-system", "torque", "--"] + args) == 0
    assert hook.calls["epilogue"] == [("5.srv", "torque")]


@pytest.mark.parametrize("argv", [
    ["prologue", "--batch-system", "torque", "--", "-h", "alice"],
    ["prologue", "--batch-system", "torque", "--", "--config-dir=/tmp/evil", "alice"],
    ["prologue", "--batch-system", "torque", "--", "--help"],
    ["prologue", "--batch-system", "torque"] + TORQUE_ARGS,   # no separator: an old wrapper
    ["prologue", "--batch-system", "torque", "--"],
    ["prologue", "--batch-system", "slurm", "--", "-h"],
    ["prologue", "--batch-system", "slurm"],
    ["prologue", "--batch-system", "pbs", "--"] + TORQUE_ARGS,  # usage error: 1, not argparse's 2
    ["prologue", "--batch-system", "torque", "--bogus", "--"] + TORQUE_ARGS,
])
def test_bad_arguments_exit_1_before_reading_the_config(hook, argv, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    assert hook.main(argv) == 1
    assert hook.calls == {"load": [], "prologue": [], "epilogue": []}


def test_slurm_job_id_is_validated_before_the_config(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "--config-dir=/tmp/evil")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 1
    assert hook.calls["load"] == []


def test_gc_and_status_take_nothing_after_the_separator(hook):
    assert hook.main(["gc", "--", "--all"]) == 1
    assert hook.calls["load"] == []
