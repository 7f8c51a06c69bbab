# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run directory's layout is named once (rundir.py) and every user derives from it."""
from __future__ import annotations

import os

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    config, files, image_select, lifecycle, lock, rundir)


def test_every_path_of_the_layout():
    run = "/run/hpc-jobroot"
    assert rundir.state_path(run, "17_3") == "/run/hpc-jobroot/jobs/17_3.json"
    assert rundir.slurm_record_path(run, "17_3") == "/run/hpc-jobroot/jobs/17_3.root"
    assert rundir.refusal_path(run, "17_3") == "/run/hpc-jobroot/jobs/17_3.refused"
    assert rundir.pin_path(run, "17_3") == "/run/hpc-jobroot/pins/17_3"
    assert rundir.failures_path(run, "17_3") == "/run/hpc-jobroot/failures/17_3"
    assert rundir.job_lock_path(run, "17_3") == "/run/hpc-jobroot/locks/17_3"
    assert rundir.node_lock_path(run) == "/run/hpc-jobroot/lock"
    assert rundir.trees_path(run) == "/run/hpc-jobroot/trees"


def test_the_users_agree_with_the_layout(tmp_path):
    run = str(tmp_path / "run")
    assert image_select.record_path("slurm", "17[3]", run, "/pbs") == rundir.slurm_record_path(run, "17_3")
    with lock.job_lock(run, "17_3"):
        assert os.path.exists(rundir.job_lock_path(run, "17_3"))
    with lock.node_lock(run):
        assert os.path.exists(rundir.node_lock_path(run))
    image_select.pin(run, "17_3", "/img/sl5-2")
    assert files.read_text(rundir.pin_path(run, "17_3")) == "/img/sl5-2\n"


def test_known_jobs_finds_a_job_by_every_per_job_file(tmp_path):
    cfg = config.NodeConfig(run_dir=str(tmp_path / "run"), root_base=str(tmp_path / "roots"))
    paths = {"101": rundir.state_path(cfg.run_dir, "101"),
             "102": rundir.slurm_record_path(cfg.run_dir, "102"),
             "103": rundir.refusal_path(cfg.run_dir, "103"),
             "104": rundir.pin_path(cfg.run_dir, "104"),
             "105": rundir.failures_path(cfg.run_dir, "105"),
             "106": rundir.job_lock_path(cfg.run_dir, "106"),
             "107": os.path.join(cfg.root_base, "107")}
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="ascii"):
            pass
    assert lifecycle.known_jobs(cfg) == set(paths)
    # one per-job folder of the layout each, besides root_base
    assert len({os.path.dirname(p) for p in paths.values()}) == len(rundir.PER_JOB) + 1


def test_file_helpers(tmp_path):
    path = str(tmp_path / "f")
    assert files.read_text(path) is None
    assert files.remove_file(path) is False
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("x\n")
    assert files.read_text(path) == "x\n"
    assert files.remove_file(path) is True
    assert not os.path.exists(path)
