# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain and resume (plugins/module_utils/drain.py) and the hook command's use of them.

scontrol and pbsnodes are the edges replaced here: ``Scontrol`` is a
stand-in for subprocess.run that records each argv and answers ``show
node`` with a line of the shape Slurm 24.11 prints (``scontrol show node
-o``); ``Pbsnodes`` plays Torque's pbsnodes the same way. The real scontrol
and slurmctld are driven by molecule/slurm/verify_drain.yml. No pbs_server
runs anywhere here, so the Torque tests also run drain.py against
pbsnodes_standin.py, a STAND-IN executable with Torque's semantics, started
as a real process through PATH.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, drain, hook_command, lifecycle
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

from . import pbsnodes_standin

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


class Pbsnodes:
    """A stand-in for subprocess.run that plays Torque's pbsnodes for one node, n1.

    Records argv; ``-o``/``-c``/``-N`` change the state as pbsnodes.c does
    (drain.py's _Torque says how); ``-x`` prints ``<Data><Node>...`` the way
    addxmlnode() and MXMLSetVal() do (no escaping, ``<`` as byte 14).
    *refuse*: pbs_server refuses the change, yet pbsnodes exits 0 (as 6.1
    does); *fail*: no connection, exit 1.
    """

    def __init__(self, state=("free",), note=None, refuse=False, fail=False):
        self.calls, self.state, self.note = [], list(state), note
        self.refuse, self.fail = refuse, fail

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, "", "pbsnodes: cannot connect to server s1, "
                                                            "error=111 (Connection refused)")
        if argv[1] == "-x":
            note = "" if self.note is None else "<note>%s</note>" % self.note.replace("<", "\x0e")
            return subprocess.CompletedProcess(argv, 0, "<Data><Node><name>n1</name><state>%s</state>"
                                               "<np>2</np>%s</Node></Data>\n" % (",".join(self.state), note), "")
        if self.refuse:
            return subprocess.CompletedProcess(argv, 0, "", "Error setting note attribute for n1 - "
                                                            "Unauthorized Request")
        if "-N" in argv:
            value = argv[argv.index("-N") + 1]
            self.note = None if value in ("", "n") else value
        if "-o" in argv and "offline" not in self.state:
            self.state = [s for s in self.state if s != "free"] + ["offline"]
        if "-c" in argv and "offline" in self.state:
            self.state = [s for s in self.state if s != "offline"] or ["free"]
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture(name="cfg")
def cfg_fixture(tmp_path):
    return config.NodeConfig(run_dir=str(tmp_path / "run"), slurm_node_name="n1", torque_node_name="n1",
                             pbs_home=str(tmp_path / "torque"))


def test_the_reason_is_one_short_line_of_ours():
    reason = drain.reason_for("4711", "remove volume: Logical volume vg/jobroot_4711 in use.\nretry")
    assert reason.startswith("jobroot: teardown of job 4711 incomplete, gc retries: remove volume")
    assert "\n" not in reason and len(drain.reason_for("1", "x" * 500)) == drain.MAX_REASON
    # Torque's pbsnodes -x prints a note unescaped: no <, >, & and only printable ASCII
    assert drain.reason_for("7", "umount /a<b>&c: Gerät\tbelegt\x0e") == \
        "jobroot: teardown of job 7 incomplete, gc retries: umount /a?b??c: Ger?t belegt?"
    assert drain.check_reason(drain.reason_for("1", "x" * 500))


@pytest.mark.parametrize("reason", ["admin: x", "jobroot: a\nb", "jobroot: <b>", "jobroot: a&b",
                                    "jobroot: " + "x" * 200, None])
def test_a_reason_not_ours_reaches_no_command(cfg, reason):
    for batch_system in ("slurm", "torque"):
        fake = Scontrol() if batch_system == "slurm" else Pbsnodes()
        with pytest.raises(JobrootError, match="not a drain reason of ours"):
            drain.drain(cfg, reason, fake, batch_system=batch_system)
        assert fake.calls == []


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


def _fake_lifecycle(monkeypatch):
    """Replace lifecycle.epilogue and lifecycle.gc; return the outcome dict that drives them.

    ``outcome["epilogue"]``: the failures the epilogue raises (the first one
    wins; empty: it succeeds); ``outcome["gc"]``: the report gc returns.
    """
    outcome = {"gc": {}, "epilogue": []}

    def epilogue(*args, **kwargs):
        for failure in outcome["epilogue"]:
            raise failure
        return []
    monkeypatch.setattr(lifecycle, "epilogue", epilogue)
    monkeypatch.setattr(lifecycle, "gc", lambda cfg_, alive=None, log=None: dict(outcome["gc"]))
    return outcome


@pytest.fixture(name="node")
def node_fixture(cfg, monkeypatch):
    """The hook command with this cfg, a Scontrol stand-in, and gc/epilogue outcomes to set."""
    os.makedirs(cfg.run_dir)
    scontrol = Scontrol()
    monkeypatch.setattr(subprocess, "run", scontrol)
    monkeypatch.setattr(hook_command.config, "load", lambda config_dir=None: cfg)
    monkeypatch.setattr(hook_command.syslog, "syslog", lambda *a: None)
    monkeypatch.setattr(hook_command, "slurm_alive", lambda job_id: False)
    outcome = _fake_lifecycle(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_JOB_USER", "root")
    return scontrol, outcome


def test_a_failed_slurm_teardown_drains_the_node_and_exits_0(node, cfg):
    scontrol, outcome = node
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: remove volume: in use")]
    assert hook_command.main(["epilogue", "--batch-system", "slurm", "--drain-on-failure", "--"]) == 0
    assert scontrol.calls == [["scontrol", "show", "node", "-o", "n1"],
                              ["scontrol", "update", "nodename=n1", "state=drain",
                               "reason=jobroot: teardown of job 7 incomplete, gc retries: teardown of job 7 "
                               "incomplete: remove volume: in use"]]
    assert drain.load_retry(cfg.run_dir)["failures"] == 1


def test_a_failed_teardown_keeps_an_admins_drain_reason(node, cfg):
    """Overwriting it with ours would let gc resume a node the admin drained."""
    scontrol, outcome = node
    scontrol.state, scontrol.reason = "MIXED+DRAIN", "admin: memory test"
    outcome["epilogue"] = [JobrootError("teardown of job 7 incomplete: busy")]
    assert hook_command.main(["epilogue", "--batch-system", "slurm", "--drain-on-failure", "--"]) == 0
    assert [c[1] for c in scontrol.calls] == ["show"] and scontrol.reason == "admin: memory test"
    assert drain.load_retry(cfg.run_dir)["failures"] == 1
    outcome["gc"] = {"7": ["remove volume"]}
    assert hook_command.main(["gc"]) == 0
    assert scontrol.state == "MIXED+DRAIN" and scontrol.reason == "admin: memory test"


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


# --- Torque ------------------------------------------------------------------

def test_pbsnodes_x_is_read_as_torque_prints_it():
    out = ("<Data><Node><name>n1</name><state>job-exclusive,offline</state><power_state>Running</power_state>"
           "<np>2</np><note>admin: R&D \x0e disk 3 > 2</note><status>opsys=linux,uname=Linux n1 6.1 "
           "#1 SMP x86_64,varattr=a&b</status></Node></Data>\n")
    assert drain.parse_pbsnodes_x(out, "n1") == {"state": ["job-exclusive", "offline"],
                                                 "note": "admin: R&D < disk 3 > 2"}
    free = "<Data><Node><name>n1</name><state>free</state><np>2</np></Node></Data>\n"
    assert drain.parse_pbsnodes_x(free, "n1") == {"state": ["free"], "note": None}
    for bad, why in ((free, "no such node"), ("pbsnodes: Server has no node list", "cannot read"),
                     ('<!DOCTYPE x [<!ENTITY a "b">]><Data/>', "DTD")):
        with pytest.raises(JobrootError, match=why):
            drain.parse_pbsnodes_x(bad, "n2" if why == "no such node" else "n1")


def test_torque_drain_sets_offline_and_our_note_in_one_call(cfg):
    pbsnodes = Pbsnodes(state=["job-exclusive"])
    reason = drain.reason_for("7.s1", "remove volume: in use")
    assert drain.drain(cfg, reason, pbsnodes, batch_system="torque") is True
    assert pbsnodes.calls == [["pbsnodes", "-x", "n1"], ["pbsnodes", "-o", "-N", reason, "n1"],
                              ["pbsnodes", "-x", "n1"]]
    assert pbsnodes.state == ["job-exclusive", "offline"] and pbsnodes.note == reason
    assert drain.drain_reason(cfg, pbsnodes, batch_system="torque") == reason


@pytest.mark.parametrize("note", ["admin: disk check", None, "jobroot", " jobroot: leading space"])
def test_torque_leaves_a_node_an_admin_offlined(cfg, note):
    """Neither drain (which would overwrite the note) nor resume touches it."""
    pbsnodes = Pbsnodes(state=["offline"], note=note)
    assert drain.drain(cfg, drain.reason_for("7", "busy"), pbsnodes, batch_system="torque") is False
    assert drain.resume_if_ours(cfg, pbsnodes, batch_system="torque") is False
    assert [c[1] for c in pbsnodes.calls] == ["-x", "-x"]
    assert pbsnodes.state == ["offline"] and pbsnodes.note == note


def test_torque_resume_clears_offline_and_only_our_note(cfg):
    ours = Pbsnodes(state=["offline"], note="jobroot: teardown of job 7 incomplete, gc retries: busy")
    assert drain.resume_if_ours(cfg, ours, batch_system="torque") is True
    assert ours.calls[1] == ["pbsnodes", "-c", "-N", "", "n1"]
    assert ours.state == ["free"] and ours.note is None
    assert drain.drain_reason(cfg, ours, batch_system="torque") is None
    # in service, with a note an admin left: nothing to resume, the note stays
    online = Pbsnodes(state=["free"], note="jobroot: stale")
    assert drain.resume_if_ours(cfg, online, batch_system="torque") is False
    assert online.note == "jobroot: stale" and [c[1] for c in online.calls] == ["-x"]


def test_torque_failures_raise(cfg):
    reason = drain.reason_for("7", "busy")
    with pytest.raises(JobrootError, match=r"pbsnodes -x failed \(exit 1\): .*cannot connect"):
        drain.drain(cfg, reason, Pbsnodes(fail=True), batch_system="torque")
    # pbs_server refuses (root is no operator): pbsnodes exits 0, the read-back tells
    with pytest.raises(JobrootError, match="did not take node n1 offline"):
        drain.drain(cfg, reason, Pbsnodes(refuse=True), batch_system="torque")
    with pytest.raises(JobrootError, match="left node n1 offline"):
        drain.resume_if_ours(cfg, Pbsnodes(state=["offline"], note=reason, refuse=True), batch_system="torque")


@pytest.mark.parametrize("name", ["-o", "n1 n2", "n1\n", "", "n/1", "x" * 254])
def test_a_bad_node_name_reaches_no_command(tmp_path, name):
    cfg = config.NodeConfig(run_dir=str(tmp_path), torque_node_name=name, slurm_node_name=name or "-x")
    for batch_system, fake in (("torque", Pbsnodes()), ("slurm", Scontrol())):
        if batch_system == "torque" and name == "":
            continue  # "" is the host name
        with pytest.raises(JobrootError, match="node name"):
            drain.drain(cfg, drain.reason_for("7", "busy"), fake, batch_system=batch_system)
        assert fake.calls == []
    if name:
        with pytest.raises(JobrootError, match="torque_node_name"):
            cfg.validate()


def test_an_unknown_batch_system_is_refused(cfg):
    with pytest.raises(JobrootError, match="no drain and resume for batch system 'pbspro'"):
        drain.resume_if_ours(cfg, Pbsnodes(), batch_system="pbspro")


# --- Torque, through the pbsnodes STAND-IN (pbsnodes_standin.py) -------------

@pytest.fixture(name="standin")
def standin_fixture(tmp_path, monkeypatch):
    """The pbsnodes stand-in first on PATH, knowing n1 (free) and n2 (offline by an admin)."""
    state = str(tmp_path / "pbsnodes.json")
    pbsnodes_standin.install(str(tmp_path / "bin"), state, {
        "n1": {"state": ["free"], "note": None},
        "n2": {"state": ["offline"], "note": "admin: RAM test & burn-in <ticket 9>"}})
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
    monkeypatch.setenv("PBSNODES_STANDIN_STATE", state)
    return state


def test_standin_drain_and_resume_a_torque_node(cfg, standin):
    reason = drain.reason_for("42.s1", "remove volume vg/jobroot_42: in use")
    assert drain.drain(cfg, reason, batch_system="torque") is True
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == {"state": ["free", "offline"], "note": reason}
    assert drain.drain_reason(cfg, batch_system="torque") == reason
    assert drain.resume_if_ours(cfg, batch_system="torque") is True
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == {"state": ["free"], "note": None}
    assert drain.resume_if_ours(cfg, batch_system="torque") is False
    assert pbsnodes_standin.calls(standin)[:2] == [["pbsnodes", "-x", "n1"],
                                                   ["pbsnodes", "-o", "-N", reason, "n1"]]
    assert ["pbsnodes", "-c", "-N", "", "n1"] in pbsnodes_standin.calls(standin)


def test_standin_an_admins_offline_node_stays_offline(tmp_path, standin):
    cfg = config.NodeConfig(run_dir=str(tmp_path / "run"), torque_node_name="n2")
    admin = pbsnodes_standin.load(standin)["nodes"]["n2"]
    assert drain.drain_reason(cfg, batch_system="torque") == "admin: RAM test & burn-in <ticket 9>"
    assert drain.drain(cfg, drain.reason_for("7", "busy"), batch_system="torque") is False
    assert drain.resume_if_ours(cfg, batch_system="torque") is False
    assert pbsnodes_standin.load(standin)["nodes"]["n2"] == admin
    assert all(c[1] == "-x" for c in pbsnodes_standin.calls(standin))
    # offline with no note at all: an admin's too
    data = pbsnodes_standin.load(standin)
    data["nodes"]["n2"]["note"] = None
    pbsnodes_standin.save(standin, data)
    assert drain.resume_if_ours(cfg, batch_system="torque") is False
    assert pbsnodes_standin.load(standin)["nodes"]["n2"]["state"] == ["offline"]


def test_standin_failing_pbsnodes_raises(tmp_path, cfg, standin):
    reason = drain.reason_for("7", "busy")
    data = pbsnodes_standin.load(standin)
    data["refuse"] = True
    pbsnodes_standin.save(standin, data)
    with pytest.raises(JobrootError, match="did not take node n1 offline"):
        drain.drain(cfg, reason, batch_system="torque")
    data["refuse"], data["down"] = False, True
    pbsnodes_standin.save(standin, data)
    with pytest.raises(JobrootError, match="cannot connect"):
        drain.resume_if_ours(cfg, batch_system="torque")
    unknown = config.NodeConfig(run_dir=str(tmp_path / "run"), torque_node_name="n9")
    data["down"] = False
    pbsnodes_standin.save(standin, data)
    with pytest.raises(JobrootError, match="Unknown node"):
        drain.drain(unknown, reason, batch_system="torque")


@pytest.fixture(name="mom")
def mom_fixture(cfg, standin, monkeypatch):
    """The hook command on a Torque node: the pbsnodes stand-in, gc/epilogue outcomes to set."""
    os.makedirs(cfg.run_dir)
    monkeypatch.setattr(hook_command.config, "load", lambda config_dir=None: cfg)
    monkeypatch.setattr(hook_command.syslog, "syslog", lambda *a: None)
    monkeypatch.setattr(hook_command, "torque_alive", lambda cfg_: lambda job_id: False)
    return _fake_lifecycle(monkeypatch)


EPILOGUE = ["epilogue", "--batch-system", "torque", "--drain-on-failure", "--",
            "7.s1", "alice", "users", "job", "1234", "walltime=10", "cput=1", "batch", "acct"]


def test_a_failed_torque_teardown_takes_the_node_offline_and_gc_brings_it_back(mom, cfg, standin):
    mom["epilogue"] = [JobrootError("teardown of job 7.s1 incomplete: remove volume: in use")]
    assert hook_command.main(EPILOGUE) == 1  # pbs_mom logs "system epilog failed"; it acts on nothing
    node = pbsnodes_standin.load(standin)["nodes"]["n1"]
    assert node["state"] == ["free", "offline"]
    assert node["note"].startswith("jobroot: teardown of job 7.s1 incomplete, gc retries: ")
    assert drain.load_retry(cfg.run_dir)["failures"] == 1
    # still busy: gc fails, the node stays offline
    mom["gc"] = {"7.s1": "error: teardown of job 7.s1 incomplete: busy"}
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry", "--batch-system", "torque"]) == 1
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == node
    # released: gc leaves the node clean and brings it back, note cleared
    mom["gc"] = {"7.s1": ["remove volume"]}
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry", "--batch-system", "torque"]) == 0
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == {"state": ["free"], "note": None}
    assert drain.load_retry(cfg.run_dir) == {}


def test_a_torque_node_an_admin_offlined_stays_offline_through_failure_and_gc(mom, cfg, standin):
    data = pbsnodes_standin.load(standin)
    data["nodes"]["n1"] = {"state": ["offline"], "note": "admin: memory test"}
    pbsnodes_standin.save(standin, data)
    mom["epilogue"] = [JobrootError("teardown of job 7.s1 incomplete: busy")]
    assert hook_command.main(EPILOGUE) == 1
    mom["gc"] = {"7.s1": ["remove volume"]}
    drain.schedule(cfg.run_dir)
    assert hook_command.main(["gc", "--retry", "--batch-system", "torque"]) == 0
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == {"state": ["offline"], "note": "admin: memory test"}
    assert drain.load_retry(cfg.run_dir) == {}


def test_a_torque_epilogue_without_the_flag_asks_no_pbsnodes(mom, cfg, standin):
    mom["epilogue"] = [JobrootError("teardown of job 7.s1 incomplete: busy")]
    args = [a for a in EPILOGUE if a != "--drain-on-failure"]
    assert hook_command.main(args) == 1
    assert pbsnodes_standin.calls(standin) == [] and drain.load_retry(cfg.run_dir) == {}


def test_if_pbsnodes_fails_the_torque_epilogue_still_fails_and_gc_retries(mom, cfg, standin):
    data = pbsnodes_standin.load(standin)
    data["refuse"] = True
    pbsnodes_standin.save(standin, data)
    mom["epilogue"] = [JobrootError("teardown of job 7.s1 incomplete: busy")]
    assert hook_command.main(EPILOGUE) == 1
    assert pbsnodes_standin.load(standin)["nodes"]["n1"] == {"state": ["free"], "note": None}
    assert drain.load_retry(cfg.run_dir)["failures"] == 1
