# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import multiprocessing
import os
import re
import signal

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, faults, lifecycle
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

ARMED = {faults.SWITCH: "prologue.pinned", faults.TEST_VARIABLE: "1"}


def test_no_switch_does_nothing(monkeypatch):
    monkeypatch.delenv(faults.SWITCH, raising=False)
    assert faults.check({}) is None
    assert faults.check({faults.TEST_VARIABLE: "1"}) is None
    for step in faults.STEPS:
        faults.checkpoint(step)  # still alive


@pytest.mark.parametrize("test_variable", [None, "", "0", "yes"])
def test_switch_is_refused_without_the_test_variable(test_variable):
    env = {faults.SWITCH: "prologue.pinned"}
    if test_variable is not None:
        env[faults.TEST_VARIABLE] = test_variable
    with pytest.raises(ValidationError, match="HPC_JOBROOT_KILL_AT is a test-only switch, refused "
                                              "without HPC_JOBROOT_TESTING=1: nothing was done"):
        faults.check(env)


def test_unknown_step_is_refused_with_the_list():
    with pytest.raises(ValidationError, match="names no step; the steps are: prologue.locked, "):
        faults.check(dict(ARMED, **{faults.SWITCH: "prologue.pined"}))


def test_armed_switch_names_its_step():
    assert faults.check(ARMED) == "prologue.pinned"


def test_a_checkpoint_not_in_the_list_is_a_programming_error():
    with pytest.raises(ValueError, match="not listed"):
        faults.checkpoint("prologue.nowhere")


def _walk_steps(env, log_path):
    os.environ.update(env)
    with open(log_path, "a", encoding="utf-8") as log:
        for step in faults.STEPS:
            log.write("reached %s\n" % step)
            log.flush()
            faults.checkpoint(step)
            log.write("passed %s\n" % step)
            log.flush()


def _run_in_child(env, log_path):
    child = multiprocessing.get_context("fork").Process(target=_walk_steps, args=(env, log_path))
    child.start()
    child.join(30)
    with open(log_path, encoding="utf-8") as log:
        return child.exitcode, log.read().splitlines()


@pytest.mark.parametrize("target", [faults.STEPS[0], "prologue.volume-mounted", faults.STEPS[-1]])
def test_the_process_dies_by_sigkill_at_the_named_step(tmp_path, target):
    exitcode, lines = _run_in_child(dict(ARMED, **{faults.SWITCH: target}), tmp_path / "log")
    assert exitcode == -signal.SIGKILL
    before = faults.STEPS[:faults.STEPS.index(target)]
    assert lines == [w % s for s in before for w in ("reached %s", "passed %s")] + ["reached " + target]


def test_without_the_test_variable_the_child_is_not_killed(tmp_path):
    exitcode, lines = _run_in_child({faults.SWITCH: "prologue.locked", faults.TEST_VARIABLE: ""},
                                    tmp_path / "log")
    assert exitcode == 1  # the refusal raised; no step was passed
    assert lines == ["reached prologue.locked"]


def test_every_step_has_exactly_one_checkpoint_in_the_library():
    folder = os.path.dirname(faults.__file__)
    calls = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as source:
                calls += re.findall(r'faults\.checkpoint\("([^"]+)"\)', source.read())
    assert sorted(calls) == sorted(faults.STEPS)


@pytest.fixture
def node(tmp_path, monkeypatch):
    monkeypatch.setenv(faults.SWITCH, "prologue.locked")
    monkeypatch.delenv(faults.TEST_VARIABLE, raising=False)
    run_dir = tmp_path / "run"
    (run_dir / "jobs").mkdir(parents=True)
    state = run_dir / "jobs" / "7.json"
    state.write_text('{"job_id": "7", "phase": "ready"}\n')
    cfg = config.NodeConfig(volume_group="vg-jobs", slot_extents=10, run_dir=str(run_dir),
                            root_base=str(tmp_path / "roots"), allow_list=str(tmp_path / "none"))
    return cfg, run_dir


def test_the_lifecycle_refuses_a_misused_switch_before_it_starts(node):
    cfg, run_dir = node
    before = sorted(p.name for p in run_dir.rglob("*"))
    for call in (lambda: lifecycle.prologue(cfg, "8", "root"), lambda: lifecycle.epilogue(cfg, "7"),
                 lambda: lifecycle.gc(cfg)):
        with pytest.raises(ValidationError, match="test-only switch"):
            call()
    assert sorted(p.name for p in run_dir.rglob("*")) == before == ["7.json", "jobs"]
    assert not os.path.exists(cfg.root_base)
