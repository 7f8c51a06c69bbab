# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gc and the temp files of interrupted atomic writes (issue 11, item 5); no LVM, no mounts."""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic, config, faults, lifecycle
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.geteuid() != 0, reason="gc removes only root-owned temp files")
def test_gc_removes_orphaned_temp_files_it_owns(tmp_path):
    cfg = config.NodeConfig(run_dir=str(tmp_path / "run"), pbs_home=str(tmp_path / "pbs"),
                            root_base=str(tmp_path / "roots"))
    gone, alive = dead_pid(), os.getpid()
    ours = ["run/jobs/4711.json.tmp.%d" % gone, "run/jobs/4711.root.tmp.%d" % gone,
            "run/jobs/17_3.refused.tmp.%d" % gone, "run/pins/4711.tmp.%d" % gone,
            "run/trees/0123456789abcdef01234567.json.tmp.%d" % gone,
            "pbs/mom_priv/jobs/123[4].srv.example.org.root.tmp.%d" % gone]
    kept = ["run/jobs/4711.json.tmp.%d" % alive,        # its writer still runs
            "run/jobs/notes.txt.tmp.%d" % gone,         # not a name we write
            "run/pins/-rf.tmp.%d" % gone,
            "pbs/mom_priv/jobs/123.srv.JB.tmp.%d" % gone,  # pbs_mom's, not ours
            "precious"]
    for rel in ours + kept:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial")
    link = tmp_path / "run" / "pins" / ("4712.tmp.%d" % gone)
    link.symlink_to(tmp_path / "precious")
    report = lifecycle.gc(cfg)
    assert sorted(report["temp files"]) == sorted("remove %s" % (tmp_path / r) for r in ours)
    assert not [r for r in ours if (tmp_path / r).exists()]
    assert all((tmp_path / r).exists() for r in kept)
    assert link.is_symlink()  # never follows or removes a symlink


def test_write_names_the_temp_file_with_the_pid(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(a), real_replace(a, b)))
    atomic.write(str(tmp_path / "state.json"), "{}\n")
    assert seen == [str(tmp_path / "state.json") + ".tmp.%d" % os.getpid()]
    assert atomic.is_temp(os.path.basename(seen[0]))


# Issue 11, item 9: the fault-injection switch is refused outside tests.
@pytest.mark.parametrize("env", [{"HPC_JOBROOT_KILL_AT": "prologue.volume-mounted"},
                                 {"HPC_JOBROOT_KILL_AT": "prologue.volume-mounted", "HPC_JOBROOT_TESTING": "yes"},
                                 {"HPC_JOBROOT_KILL_AT": "no-such-step", "HPC_JOBROOT_TESTING": "1"}])
def test_kill_switch_refused_outside_tests(env):
    with pytest.raises(ValidationError):
        faults.check(env)


def test_kill_switch_accepted_in_tests():
    faults.check({"HPC_JOBROOT_KILL_AT": "epilogue.tree-unmounted", "HPC_JOBROOT_TESTING": "1"})
    faults.check({})
