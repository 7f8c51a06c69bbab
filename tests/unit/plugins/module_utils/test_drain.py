# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain and resume (plugins/module_utils/drain.py) and the hook command's use of them.

scontrol is the edge replaced here: ``Scontrol`` is a stand-in for
subprocess.run that records each argv and answers ``show node`` with a line
of the shape Slurm 24.11 prints (``scontrol show node -o``). The real
scontrol and slurmctld are driven by molecule/slurm/verify_drain.yml.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, drain, hook_command, lifecycle
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

SHOW = ("NodeName=n1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=2 CPULoad=0.01 "
        "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=n1 NodeHostName=n1 "
        "Version=24.11.5 OS=Linux 6.12.118+deb13-amd64 RealMemory=1 AllocMem=0 Sockets=2 Boards=1 "
        "State=%s ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=debug "
        "BootTime=2026-11-30T19:00:00 SlurmdStartTime=2026-11-30T19:01:00 %s")


class Scontrol:
    """A stand-in for subprocess.run that plays scontrol: records argv, answers ``show node``."""

    def __init__(self, state="IDLE", reason=None, fail=False):
        self.calls, self.state, self.reason, self.fail = [], state, reason, fail

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, "", "slurm_update error: Invalid node name")
        out = ""
        if argv[1] == "show":
            tail = "" if self.reason is None else "Reason=%s [root@2026-11-30T19:20:00]" % self.reason
            out = SHOW % (self.state, tail) + "\n"
        elif "state=drain" in argv:
            self.state, self.reason = "IDLE+DRAIN", argv[-1][len("reason="):]
        elif "state=resume" in argv:
            self.state, self.reason = "IDLE", None
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture(name="cfg")
def cfg_fixture(tmp_path):
    return config.NodeConfig(run_dir=str(tmp_path / "run"), slurm_node_name="n1")


def test_the_reason_is_one_short_line_of_ours():
    reason = drain.reason_for("4711", "remove volume: Logical volume vg/jobroot_4711 in use.\nretry")
    assert reason.startswith("jobroot: teardown of job 4711 incomplete, gc retries: remove volume")
    assert "\n" not in reason and len(drain.reason_for("1", "x" * 500)) == drain.MAX_REASON


@pytest.mark.parametrize("state,reason,want", [
    ("IDLE", None, None),
    ("IDLE+DRAIN", "jobroot: teardown of job 7 incomplete", "jobroot: teardown of job 7 incomplete"),
    ("MIXED+DRAIN", "admin: disk check [ticket 12]", "admin: disk check [ticket 12]"),
    ("DRAINED", "Epilog error", "Epilog error"),
    ("ALLOCATED+DRAIN", None, ""),
])
def test_drain_reason_reads_scontrol(cfg, state, reason, want):
    assert drain.drain_reason(cfg, Scontrol(state, reason)) == want


def test_resume_only_our_own_drain(cfg):
    ours = Scontrol("IDLE+DRAIN", "jobroot: teardown of job 7 incomplete, gc retries: busy")
    assert drain.resume_if_ours(cfg, ours) is True
    assert ours.calls[-1] == ["scontrol", "update", "nodename=n1", "state=resume"]
    for state, reason in (("IDLE+DRAIN", "admin: jobroot: looks odd"), ("DRAINED", "Epilog error"),
                          ("IDLE", None)):
        theirs = Scontrol(state, reason)
        assert drain.resume_if_ours(cfg, theirs) is False
        assert [c[1] for c in theirs.calls] == ["show"]


def test_drain_refuses_a_reason_not_ours_and_reports_scontrol_failures(cfg):
    with pytest.raises(JobrootError, match="not a drain reason of ours"):
        drain.drain(cfg, "admin: x", Scontrol())
    with pytest.raises(JobrootError, match="Invalid node name"):
        drain.drain(cfg, drain.reason_for("7", "busy"), Scontrol(fail=True))


def test_retries_back_off_and_cap(cfg):
    os.makedirs(cfg.run_dir)
    assert drain.retry_due(cfg.run_dir, now=0) is False  # nothing pending
    waits = [drain.note_failure(cfg.run_dir, now=1000) - 1000 for attempt in range(8)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert drain.retry_due(cfg.run_dir, now=1000 + 3599) is False
    assert drain.retry_due(cfg.run_dir, now=1000 + 3600) is True
    drain.schedule(cfg.run_dir, now=50)
    assert drain.load_retry(cfg.run_dir) == {"failures": 8, "next": 50.0}
    drain.clear(cfg.run_dir)
    drain.clear(cfg.run_dir)
    assert drain.load_retry(cfg.run_dir) == {}


def test_a_damaged_retry_file_is_due_at_once(cfg):
    os.makedirs(cfg.run_dir)
    with open(os.path.join(cfg.run_dir, drain.RETRY_FILE), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    assert drain.retry_due(cfg.run_dir, now=0) is True


@pytest.fixture(name="node")
def node_fixture(cfg, monkeypatch):
    """The hook command with this cfg, a Scontrol stand-in, and gc/epilogue outcomes to set."""
    os.makedirs(cfg.run_dir)
    scontrol = Scontrol()
    monkeypatch.setattr(subprocess, "run", scontrol)
    monkeypatch.setattr(hook_command.config, "load", lambda config_dir=None: cfg)
    monkeypatch.setattr(hook_command.syslog, "syslog", lambda *a: None)
    monkeypatch.setattr(hook_command, "slurm_alive", lambda job_id: False)
    outcome = {"gc": {}, "epilogue": []}  # epilogue: the failure to raise, if any

    def epilogue(*args, **kwargs):
        for failure in outcome["epilogue"]:
            raise failure
        return []
    monkeypatch.setattr(lifecycle, "epilogue", epilogue)
    monkeypatch.setattr(lifecycle, "gc", lambda cfg_, alive=None, log=None: dict(outcome["gc"]))
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_JOB_USER", "root")
    return scontrol, outcome


def test_a_failed_slurm_teardown_drains_the_node_and_exits_0(node, cfg):
    scontrol, outcome = node
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: remove volume: in use")]
    assert hook_command.main(["epilogue", "--batch-system", "slurm", "--drain-on-failure", "--"]) == 0
    assert scontrol.calls == [["scontrol", "update", "nodename=n1", "state=drain",
                               "reason=jobroot: teardown of job 7 incomplete, gc retries: teardown of job 7 "
                               "incomplete: remove volume: in use"]]
    assert drain.load_retry(cfg.run_dir)["failures"] == 1


def test_if_the_drain_fails_the_epilogue_fails_so_slurm_drains(node):
    scontrol, outcome = node
    scontrol.fail = True
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: busy")]
    assert hook_command.main(["epilogue", "--batch-system", "slurm", "--drain-on-failure", "--"]) == 1


def test_without_the_flag_a_failed_teardown_is_1_and_drains_nothing(node, cfg):
    """The Epilog wrapper's first tries (a job container's detach pass retries once) must see the failure."""
    scontrol, outcome = node
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: busy")]
    assert hook_command.main(["epilogue", "--batch-system", "slurm", "--"]) == 1
    assert scontrol.calls == [] and drain.load_retry(cfg.run_dir) == {}


def test_gc_resumes_a_node_it_drained_once_clean_and_never_an_admins(node, cfg, capsys):
    scontrol, outcome = node
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: busy")]
    hook_command.main(["epilogue", "--batch-system", "slurm", "--drain-on-failure", "--"])
    # the volume is still busy: gc fails, the node stays drained, the wait doubles
    outcome["gc"] = {"7": "error: teardown of job 7 incomplete: busy"}
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry"]) == 1
    assert scontrol.state == "IDLE+DRAIN" and drain.load_retry(cfg.run_dir)["failures"] == 2
    # not due yet: --retry does nothing at all
    calls = len(scontrol.calls)
    capsys.readouterr()
    assert hook_command.main(["gc", "--retry"]) == 0
    assert capsys.readouterr().out == "" and len(scontrol.calls) == calls
    # released: the next gc finds the node clean and resumes it
    outcome["gc"] = {"7": ["remove volume"]}
    assert hook_command.main(["gc"]) == 0
    assert scontrol.state == "IDLE" and scontrol.calls[-1][-1] == "state=resume"
    assert drain.load_retry(cfg.run_dir) == {}
    # no retry pending: a gc on demand asks slurmctld nothing
    calls = len(scontrol.calls)
    assert hook_command.main(["gc"]) == 0
    assert len(scontrol.calls) == calls
    # an admin's drain stays put, even when a retry was pending
    scontrol.state, scontrol.reason = "IDLE+DRAIN", "admin: memory test"
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry"]) == 0
    assert scontrol.state == "IDLE+DRAIN" and scontrol.calls[-1][1] == "show"
    assert drain.load_retry(cfg.run_dir) == {}


def test_a_failed_resume_keeps_the_retry(node, cfg):
    scontrol = node[0]
    scontrol.fail = True
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry"]) == 1
    assert drain.retry_due(cfg.run_dir)


def test_boot_gc_asks_no_batch_system_and_makes_a_retry_due(node, cfg):
    scontrol = node[0]
    assert hook_command.main(["gc", "--all"]) == 0
    assert scontrol.calls == []
    assert drain.retry_due(cfg.run_dir)


def test_a_running_hook_leaves_the_retry_alone(node, cfg):
    scontrol, outcome = node
    drain.note_failure(cfg.run_dir, now=0)
    outcome["gc"] = {"8": "busy: its prologue or epilogue is running"}
    assert hook_command.main(["gc"]) == 0
    assert drain.load_retry(cfg.run_dir) == {"failures": 1, "next": 60.0} and scontrol.calls == []
