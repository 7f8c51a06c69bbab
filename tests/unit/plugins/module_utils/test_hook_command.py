# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook command's exit codes and argument shapes (plugins/module_utils/hook_command.py).

The library calls that would build a root are replaced by recorders here
(the real ones run in the torque_mom, named_chroot and jobroot_safety
integration targets); everything else is the real code: argument parsing,
the failure count under a real run directory, pbs_mom's log file. The
entry script the role installs (roles/job_hooks/files/jobroot.py) is run as
a process at the end.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, hook_command, lifecycle
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, NoFreeSlotError

ENTRY = pathlib.Path(__file__).resolve().parents[4] / "roles" / "job_hooks" / "files" / "jobroot.py"
TORQUE_ARGS = ["5.srv", "alice", "grp", "name", "walltime=60", "batch", "acct"]
TORQUE_EPILOGUE_ARGS = ["5.srv", "alice", "grp", "name", "4242", "walltime=60", "cput=0", "batch", "acct"]


@pytest.fixture(name="hook")
def hook_fixture(tmp_path, monkeypatch):
    pbs_home = tmp_path / "torque"
    (pbs_home / "mom_logs").mkdir(parents=True)
    cfg = config.NodeConfig(run_dir=str(tmp_path / "run"), pbs_home=str(pbs_home),
                            max_setup_failures=3, queue_image={"sl5q": "sl5"}).validate()
    calls = {"load": [], "prologue": [], "epilogue": []}
    hook = types.SimpleNamespace(main=hook_command.main, config=hook_command.config, cfg=cfg,
                                 calls=calls, outcome={"root": str(tmp_path / "roots" / "5.srv"),
                                                       "image": "host"},
                                 epilogue_outcome=[])

    def load(config_dir=config.CONFIG_DIR):
        calls["load"].append(config_dir)
        return cfg

    # they report through *log* as lifecycle.prologue()/epilogue() do
    def prologue(cfg_, job_id, user, image_name=None, batch_system="slurm", log=None, encrypt=False):
        calls["prologue"].append((job_id, user, image_name, batch_system))
        calls.setdefault("encrypt", []).append(encrypt)
        if isinstance(hook.outcome, Exception):
            raise hook.outcome
        log(hook.outcome.get("refused") or "job %s: root %s ready" % (job_id, hook.outcome["root"]))
        return dict(hook.outcome, job_id=job_id)

    def epilogue(cfg_, job_id, batch_system="slurm", log=None):
        calls["epilogue"].append((job_id, batch_system))
        if isinstance(hook.epilogue_outcome, Exception):
            raise hook.epilogue_outcome
        log("job %s: torn down: 0 unmounts" % job_id)
        return hook.epilogue_outcome

    monkeypatch.setattr(hook_command.config, "load", load)
    monkeypatch.setattr(lifecycle, "prologue", prologue)
    monkeypatch.setattr(lifecycle, "epilogue", epilogue)
    monkeypatch.setattr(hook_command.syslog, "syslog", lambda *a: None)
    for name in ("SLURM_JOB_ID", "SLURM_JOB_USER", "SPANK_JOBROOT_IMAGE", "SPANK_JOBROOT_ENCRYPT"):
        monkeypatch.delenv(name, raising=False)
    return hook


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
    hook.outcome = {"refused": "job 5.srv refused: image 'sl9' is not allowed"}
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert "hpc-jobroot: job 5.srv refused: image 'sl9' is not allowed" in capsys.readouterr().out
    assert "refused: image 'sl9'" in mom_log(hook)


def test_torque_progress_goes_to_mom_logs_not_to_the_jobs_stderr(hook, capsys):
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 0
    assert hook.main(["epilogue", "--batch-system", "torque", "--"] + TORQUE_ARGS + ["4242", "x"]) == 0
    assert capsys.readouterr() == ("", "")
    log = mom_log(hook)
    assert ";Job;5.srv;hpc-jobroot: job 5.srv: root %s ready\n" % hook.outcome["root"] in log
    assert ";Job;5.srv;hpc-jobroot: job 5.srv: torn down: 0 unmounts\n" in log


def test_torque_refusal_is_logged_once(hook, capsys):
    hook.outcome = {"refused": "job 5.srv refused: image 'sl9' is not allowed"}
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert capsys.readouterr().err == ""
    assert mom_log(hook).count("refused: image 'sl9'") == 1


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


# --- every exit code of every command, and every argument shape ---------------


def test_slurm_prologue_success_is_0_with_the_spank_image(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    monkeypatch.setenv("SPANK_JOBROOT_IMAGE", "sl5")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 0
    assert hook.calls["prologue"] == [("4711", "alice", "sl5", "slurm")]


def test_slurm_prologue_passes_the_spank_encryption_request(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 0
    monkeypatch.setenv("SPANK_JOBROOT_ENCRYPT", "1")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 0
    assert hook.main(["prologue", "--batch-system", "torque", "--", "5.srv", "alice", "users", "job",
                      "walltime=1", "batch", "acct"]) == 0
    assert hook.calls["encrypt"] == [False, True, False]  # Torque jobs cannot ask


def test_the_batch_system_defaults_to_slurm(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    assert hook.main(["prologue", "--"]) == 0
    assert hook.main(["epilogue", "--"]) == 0
    assert hook.calls["prologue"] == [("4711", "alice", None, "slurm")]
    assert hook.calls["epilogue"] == [("4711", "slurm")]


def test_torque_queue_at_its_position_picks_the_queue_image(hook):
    args = ["5.srv", "alice", "grp", "name", "walltime=60", "sl5q", "acct"]
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + args) == 0
    # fewer arguments than the queue's position: no queue, the node default
    assert hook.main(["prologue", "--batch-system", "torque", "--", "6.srv", "alice"]) == 0
    assert hook.calls["prologue"] == [("5.srv", "alice", "sl5", "torque"),
                                      ("6.srv", "alice", None, "torque")]


@pytest.mark.parametrize("config_first", [True, False])
def test_config_dir_is_taken_before_or_after_the_command(hook, config_first, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    argv = ["prologue", "--batch-system", "slurm", "--"]
    argv = (["--config-dir", "/etc/elsewhere"] + argv if config_first
            else argv[:1] + ["--config-dir", "/etc/elsewhere"] + argv[1:])
    assert hook.main(argv) == 0
    assert hook.calls["load"] == ["/etc/elsewhere"]


@pytest.mark.parametrize("batch_system,args", [
    ("torque", TORQUE_EPILOGUE_ARGS), ("torque", ["5.srv", "alice"]), ("slurm", [])])
def test_epilogue_success_is_0(hook, batch_system, args, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "5.srv")
    hook.epilogue_outcome = ["unpin"]
    assert hook.main(["epilogue", "--batch-system", batch_system, "--"] + args) == 0
    assert hook.calls["epilogue"] == [("5.srv", batch_system)]


@pytest.mark.parametrize("batch_system,args", [("torque", TORQUE_EPILOGUE_ARGS), ("slurm", [])])
def test_epilogue_failure_is_1_never_a_requeue(hook, batch_system, args, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "5.srv")
    hook.epilogue_outcome = JobrootError("teardown of job 5.srv incomplete: busy")
    assert hook.main(["epilogue", "--batch-system", batch_system, "--"] + args) == 1
    assert not os.path.exists(os.path.join(hook.cfg.run_dir, "failures", "5.srv"))


@pytest.mark.parametrize("args", [["5.srv"], []])
def test_torque_epilogue_without_job_id_and_user_is_1(hook, args):
    assert hook.main(["epilogue", "--batch-system", "torque", "--"] + args) == 1
    assert hook.calls["load"] == []


def test_slurm_prologue_os_error_is_1(hook, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_USER", "alice")
    hook.outcome = OSError(28, "No space left on device")
    assert hook.main(["prologue", "--batch-system", "slurm", "--"]) == 1
    assert not os.path.exists(os.path.join(hook.cfg.run_dir, "failures"))


def test_torque_prologue_os_error_is_a_requeue(hook):
    hook.outcome = OSError(28, "No space left on device")
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 2


def test_torque_aborts_when_its_failures_cannot_be_counted(hook, monkeypatch, capsys):
    def cannot_count(cfg, job_id):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(lifecycle, "note_failure", cannot_count)
    hook.outcome = NoFreeSlotError("no free slot")
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1
    assert "aborted: its prologue failed 3 times" in capsys.readouterr().out


def test_an_unwritable_mom_log_changes_no_exit_code(hook):
    os.rmdir(os.path.join(hook.cfg.pbs_home, "mom_logs"))
    with open(os.path.join(hook.cfg.pbs_home, "mom_logs"), "w", encoding="utf-8"):
        pass  # a file where the directory should be: log_event writes nothing
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 0
    hook.outcome = {"refused": "job 5.srv refused: no"}
    assert hook.main(["prologue", "--batch-system", "torque", "--"] + TORQUE_ARGS) == 1


EMPTY_STATUS = {"jobs": {}, "volumes": [], "mounts": [], "pins": {}, "images": {}, "usage": {},
                "slots": {"total": 2, "free": 2}, "pool": None, "leaked": {"volume": [], "mount": []},
                "stale": []}


def test_status_json_prints_the_dict_and_is_0(hook, monkeypatch, capsys):
    monkeypatch.setattr(lifecycle, "status", lambda cfg: EMPTY_STATUS)
    assert hook.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == EMPTY_STATUS


def test_status_prints_the_table_and_is_0(hook, monkeypatch, capsys):
    monkeypatch.setattr(lifecycle, "status", lambda cfg: EMPTY_STATUS)
    assert hook.main(["status"]) == 0
    assert capsys.readouterr().out == "no jobs\nslots: 2 of 2 free\n"


@pytest.mark.parametrize("argv,alive", [
    (["gc", "--all"], None),
    (["gc"], hook_command.slurm_alive),
    (["gc", "--batch-system", "slurm"], hook_command.slurm_alive),
    (["gc", "--batch-system", "torque"], "torque"),
])
def test_gc_asks_the_batch_system_which_jobs_run(hook, monkeypatch, argv, alive, capsys):
    seen = []

    def gc(cfg, alive_, log):
        seen.append(alive_)
        return {"4711": ["unpin"]}
    monkeypatch.setattr(lifecycle, "gc", gc)
    assert hook.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"4711": ["unpin"]}
    if alive == "torque":
        assert not seen[0]("5.srv")
        jobs = os.path.join(hook.cfg.pbs_home, "mom_priv", "jobs")
        os.makedirs(jobs)
        with open(os.path.join(jobs, "5.srv.JB"), "w", encoding="ascii"):
            pass  # pbs_mom's job file: the job runs
        assert seen[0]("5.srv")
    else:
        assert seen == [alive]


def test_gc_with_an_error_in_its_report_is_1(hook, monkeypatch):
    monkeypatch.setattr(lifecycle, "gc",
                        lambda cfg, alive, log: {"4711": "error: busy", "4712": ["unpin"]})
    assert hook.main(["gc", "--all"]) == 1


@pytest.mark.parametrize("argv", [["status"], ["gc", "--all"]])
def test_gc_and_status_with_an_unusable_config_are_1(hook, monkeypatch, argv):
    def broken(config_dir=config.CONFIG_DIR):
        raise JobrootError("node.json is not valid JSON")
    monkeypatch.setattr(hook_command.config, "load", broken)
    assert hook.main(argv) == 1


@pytest.mark.parametrize("argv", [[], ["--all"], ["sweep"], ["status", "--all"]])
def test_usage_errors_are_1(hook, argv):
    assert hook.main(argv) == 1
    assert hook.calls["load"] == []


def test_slurm_alive_asks_squeue(tmp_path, monkeypatch):
    # squeue is the edge: a named stand-in answers as Slurm's squeue(1) does
    squeue = tmp_path / "squeue"
    squeue.write_text("#!/bin/sh\ncase \"$3\" in\n 1) echo RUNNING ;;\n 2) exit 0 ;;\n"
                      " 3) echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1 ;;\n"
                      " *) echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2;"
                      " exit 1 ;;\nesac\n", encoding="ascii")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert [hook_command.slurm_alive(j) for j in ("1", "2", "3", "4")] == [True, False, False, True]
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert hook_command.slurm_alive("1") is True  # no squeue: never sweep a job that may run


def test_a_hook_start_imports_only_what_every_job_needs():
    # Issue 18: every module imported at start is paid by every prologue and
    # epilogue. lvm (with subprocess), torque and procs come with the job that
    # needs them; dataclasses (inspect, ast, dis) and platform never.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = ("import sys\nfrom ansible_collections.hpc.jobroot.plugins.module_utils import hook_command, lifecycle\n"
            "print(' '.join(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-S", "-c", code], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    modules = set(run.stdout.split())
    ours = "ansible_collections.hpc.jobroot.plugins.module_utils."
    assert {ours + "hook_command", ours + "lifecycle", ours + "bindtree"} <= modules
    later = {"dataclasses", "inspect", "ast", "dis", "platform", "subprocess",
             ours + "lvm", ours + "torque", ours + "procs"}
    assert not modules & later


def test_the_entry_script_runs_the_library(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, str(ENTRY), "gc", "--", "--all"], env=env,
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 1
    assert "gc takes no arguments after '--'" in run.stderr
    run = subprocess.run([sys.executable, str(ENTRY), "--help"], env=env,
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0
    assert hook_command.DESCRIPTION in run.stdout
    with open(ENTRY, encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) < 30  # the logic is the library's
