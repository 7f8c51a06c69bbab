# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pool_info through its Ansible entry point, against a STUB of the lvm command (no device-mapper here)."""
from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import CommandError
from ansible_collections.hpc.jobroot.plugins.modules import pool_info

from ..module_utils.fullreport_shapes import EXTENT, lv, report


class Lvm:
    """STUB of lvm fullreport: one fixed report, or the missing-group failure of lvm2 2.03."""

    def __init__(self, rep):
        self.rep, self.calls = rep, []

    def run(self, cmd, timeout=120):
        self.calls.append(cmd)
        if self.rep is None:
            raise CommandError(cmd, 5, '  Volume group "%s" not found\n' % cmd[-1])
        return json.dumps({"report": [self.rep]})


def run_module(args, capsys, rep, monkeypatch):
    fake = Lvm(rep)
    monkeypatch.setattr(lvm, "run", fake.run)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            pool_info.main()
    return json.loads(capsys.readouterr().out), fake.calls


def test_thick_pool_facts(capsys, monkeypatch):
    rep = report(1000, [lv("root", 100), lv("jobroot_1", 225, "hpc_jobroot")])
    out, calls = run_module({"volume_group": "jobs", "slots": "4"}, capsys, rep, monkeypatch)
    assert out["changed"] is False and out["exists"] is True and out["thin_pool_exists"] is False
    assert (out["extent_size"], out["free_extents"], out["job_extents"]) == (EXTENT, 675, 225)
    assert out["available_extents"] == 900 and out["slot_extents"] == 225
    assert out["thin_pool_extents"] is None and out["job_lvs"] == ["jobroot_1"]
    assert calls == [["lvm", "fullreport", "--reportformat", "json", "--units", "b", "--nosuffix", "--", "jobs"]]


def test_missing_group_is_not_an_error_in_check_mode(capsys, monkeypatch):
    out, calls = run_module({"volume_group": "jobs", "slots": 4, "_ansible_check_mode": True},
                            capsys, None, monkeypatch)
    assert out == {"changed": False, "exists": False, "volume_group": "jobs",
                   "msg": "volume group jobs does not exist", "invocation": out["invocation"]}
    assert len(calls) == 1


def test_missing_thin_pool_gives_no_slot_facts(capsys, monkeypatch):
    out = run_module({"volume_group": "jobs", "slots": 4, "thin_pool": "pool"},
                     capsys, report(100), monkeypatch)[0]
    assert out["exists"] is True and out["thin_pool_exists"] is False
    assert "slot_extents" not in out and "failed" not in out


def test_thin_pool_facts(capsys, monkeypatch):
    rep = report(100, [lv("pool", 90, attr="twi-aotz--", segtype="thin-pool")])
    out = run_module({"volume_group": "jobs", "slots": 4, "thin_pool": "pool", "tag": "site_jobs"},
                     capsys, rep, monkeypatch)[0]
    assert out["thin_pool_exists"] is True
    assert out["thin_pool_extents"] == out["available_extents"] == 90 and out["slot_extents"] == 22


def test_too_few_extents_fails(capsys, monkeypatch):
    out = run_module({"volume_group": "jobs", "slots": 20}, capsys, report(15), monkeypatch)[0]
    assert out["failed"] is True and "too few for 20 slots" in out["msg"]
    assert out["exists"] is True


@pytest.mark.parametrize("args,message", [
    ({"slots": 0}, "slots must be a whole number >= 1"),
    ({"slots": 2, "thin_pool": "pool_tdata"}, "reserves"),
    ({"slots": 2, "tag": "a,b"}, "tag"),
    ({"slots": 2, "volume_group": "../x"}, "not a valid LVM name"),
    ({"slots": "many"}, "int"),
    ({}, "slots"),
])
def test_bad_options_fail_before_lvm_runs(capsys, monkeypatch, args, message):
    out, calls = run_module(dict({"volume_group": "jobs"}, **args), capsys, report(15), monkeypatch)
    assert out["failed"] is True and message in out["msg"]
    assert calls == []
