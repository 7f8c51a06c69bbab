# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lvm_jobvol through its Ansible entry point, against the lvm2 STUB (no device-mapper here)."""
from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.jobroot.plugins.module_utils import dmcrypt, lvm
from ansible_collections.hpc.jobroot.plugins.modules import lvm_jobvol

from ..module_utils import cryptsetup_standin
from ..module_utils.lvm_stub import EXTENT, LvmStub


@pytest.fixture
def stub(monkeypatch, tmp_path):
    fake = LvmStub(extents=1000, lvs={"root": {"extents": 100, "tags": []}})
    monkeypatch.setattr(dmcrypt, "SYS_BLOCK", str(tmp_path / "sys-block"))  # no mapping open
    monkeypatch.setattr(lvm, "run", fake.run)
    monkeypatch.setattr(lvm.mounts, "mount", lambda *a: fake.calls.append(["mount(2)"] + list(a)))
    monkeypatch.setattr(lvm, "mounted_at", lambda vg, lv, mp, table=None, encrypt=None: lv in fake.lvs and ["mounted"] in fake.calls)
    return fake


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            lvm_jobvol.main()
    return json.loads(capsys.readouterr().out)


def test_check_mode_creates_nothing(stub, capsys):
    out = run_module({"job_id": "17[3]", "volume_group": "vg-jobs", "slots": 4,
                      "_ansible_check_mode": True}, capsys)
    assert out["changed"] is True
    assert out["lv_name"] == "jobroot_17_3"
    assert out["dm_path"] == "/dev/mapper/vg--jobs-jobroot_17_3"
    assert out["extents"] == 225 and out["size_bytes"] == 225 * EXTENT
    assert not [c for c in stub.calls if c[0] in ("lvcreate", "mkfs.ext4", "mount(2)")]


def test_present_creates_one_slot(stub, capsys):
    out = run_module({"job_id": "4711", "volume_group": "vg-jobs", "slots": 4,
                      "root_base": "/nonexistent-jobroot-test"}, capsys)
    assert out["changed"] is True and out["mountpoint"] == "/nonexistent-jobroot-test/4711"
    create = [c for c in stub.calls if c[0] == "lvcreate"][0]
    assert create[create.index("--extents") + 1] == "225"


def test_bad_job_id_fails_before_any_lvm_call(stub, capsys):
    out = run_module({"job_id": "../../x", "volume_group": "vg-jobs", "slots": 4}, capsys)
    assert out["failed"] is True and "job id" in out["msg"]
    assert stub.calls == []


def test_size_options_are_exclusive(stub, capsys):
    out = run_module({"job_id": "1", "volume_group": "vg", "slots": 4, "size_mib": 10}, capsys)
    assert out["failed"] is True and "mutually exclusive" in out["msg"]


def test_absent_of_a_missing_volume_is_not_a_change(stub, capsys):
    out = run_module({"job_id": "4711", "volume_group": "vg-jobs", "state": "absent"}, capsys)
    assert out["changed"] is False
    assert not [c for c in stub.calls if c[0] == "lvremove"]


# Issue 11, item 8: every option is checked before the first LVM query.
@pytest.mark.parametrize("args,message", [
    ({"thin_pool": "pool_tdata"}, "reserves"),
    ({"thin_pool": "-pool"}, "not a valid LVM name"),
    ({"root_base": "/var"}, "system directory"),
    ({"root_base": "relative/roots"}, "absolute"),
])
def test_bad_option_fails_before_any_lvm_call(stub, capsys, args, message):
    out = run_module(dict({"job_id": "4711", "volume_group": "vg", "slots": 2}, **args), capsys)
    assert out["failed"] and message in out["msg"]
    assert stub.calls == []


def test_encrypt_makes_the_file_system_on_the_mapping(stub, capsys, tmp_path, monkeypatch):
    # the cryptsetup STAND-IN (module_utils/cryptsetup_standin.py) runs as a real process
    cryptsetup_standin.install(str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
    monkeypatch.setenv("CRYPTSETUP_STANDIN_EVENTS", str(tmp_path / "events"))
    monkeypatch.setenv("CRYPTSETUP_STANDIN_SYS_BLOCK", str(tmp_path / "sys-block"))
    out = run_module({"job_id": "4711", "volume_group": "vg-jobs", "slots": 4, "encrypt": True,
                      "root_base": "/nonexistent-jobroot-test"}, capsys)
    device = "/dev/mapper/jobroot_crypt-vg--jobs-jobroot_4711"
    assert out["changed"] is True and out["encrypted"] is True and out["fs_device"] == device
    assert [c[-1] for c in stub.calls if c[0] == "mkfs.ext4"] == [device]
    assert [c[1] for c in stub.calls if c[0] == "mount(2)"] == [device]
    assert dmcrypt.mappings() == {"jobroot_crypt-vg--jobs-jobroot_4711"}


def test_without_encrypt_the_result_says_so(stub, capsys):
    out = run_module({"job_id": "4711", "volume_group": "vg-jobs", "slots": 4, "_ansible_check_mode": True}, capsys)
    assert out["encrypted"] is False and out["fs_device"] == out["dm_path"]
