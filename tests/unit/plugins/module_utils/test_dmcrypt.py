# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted job volumes (issue 17) against the cryptsetup STAND-IN and the lvm2 STUB.

dmcrypt.py starts the stand-in as a real process through a real pipe; it
checks that the key came on standard input only (cryptsetup_standin.py).
The real cryptsetup and dm-crypt run in the guest (molecule/jobvol).
"""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, dmcrypt, faults, lifecycle, lvm
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import CommandError, ValidationError

from . import cryptsetup_standin
from .lvm_stub import LvmStub

VG, LV = "vg-jobs", "jobroot_7"
NAME = "jobroot_crypt-vg--jobs-jobroot_7"
MOUNTPOINT = "/nonexistent-jobroot-test/7"


class Node:
    """The stand-in, the LVM stub and the mount stub, all logging to one events file."""

    def __init__(self, tmp_path, monkeypatch):
        self.events = tmp_path / "events"
        self.sys_block = tmp_path / "sys-block"
        self.sys_block.mkdir()
        cryptsetup_standin.install(str(tmp_path / "bin"))
        monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
        monkeypatch.setenv("CRYPTSETUP_STANDIN_EVENTS", str(self.events))
        monkeypatch.setenv("CRYPTSETUP_STANDIN_SYS_BLOCK", str(self.sys_block))
        monkeypatch.setattr(dmcrypt, "SYS_BLOCK", str(self.sys_block))
        self.lvm = LvmStub(vg=VG)
        self.mounted = set()

        def run(cmd, timeout=120):
            self.log(cmd)
            return self.lvm.run(cmd, timeout)

        def mount(source, target, *rest):
            self.log(["mount(2)", source, target])
            self.mounted.add((source, target))

        def umount(target, lazy=False):
            self.log(["umount(2)", target])
            self.mounted = {m for m in self.mounted if m[1] != target}
            return True

        def mounted_at(vg, lv, mountpoint, table=None, encrypt=None):
            sources = set()
            if encrypt is not True:
                sources.add(lvm.dm_path(vg, lv))
            if encrypt is not False and len(lvm.dm_name(vg, lv)) < 100:
                sources.add(dmcrypt.device(lvm.crypt_name(vg, lv)))
            return any(m[1] == mountpoint and m[0] in sources for m in self.mounted)

        monkeypatch.setattr(lvm, "run", run)
        monkeypatch.setattr(lvm.mounts, "mount", mount)
        monkeypatch.setattr(lvm.mounts, "umount", umount)
        monkeypatch.setattr(lvm, "mounted_at", mounted_at)

    def log(self, argv):
        with open(self.events, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": list(argv)}) + "\n")

    def steps(self):
        """Every command and mount call so far, as (program, first argument) pairs."""
        if not self.events.exists():
            return []
        calls = [json.loads(line)["argv"] for line in self.events.read_text().splitlines()]
        return [(c[0], c[1] if len(c) > 1 else "") for c in calls]

    def argvs(self, program):
        return [json.loads(line)["argv"] for line in self.events.read_text().splitlines()
                if json.loads(line)["argv"][0] == program]

    def keys(self):
        path = self.events.with_name("events.keys")
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def node(tmp_path, monkeypatch):
    return Node(tmp_path, monkeypatch)


def test_mapping_names_follow_the_dm_escaping():
    assert lvm.crypt_name(VG, LV) == NAME
    assert lvm.crypt_name("a-b", "jobroot_1-2") == "jobroot_crypt-a--b-jobroot_1--2"
    assert lvm.fs_device(VG, LV, encrypt=True) == "/dev/mapper/" + NAME
    assert lvm.fs_device(VG, LV) == "/dev/mapper/vg--jobs-jobroot_7"
    with pytest.raises(ValidationError, match="at most 127"):
        lvm.crypt_name("v" * 60, "jobroot_" + "1" * 60)


def test_the_open_command_names_no_key():
    cmd = dmcrypt.open_cmd("/dev/mapper/vg-lv", NAME)
    assert cmd == ["cryptsetup", "open", "--type", "plain", "--cipher", "aes-xts-plain64",
                   "--key-size", "512", "--hash", "plain", "--key-file=-", "--batch-mode",
                   "/dev/mapper/vg-lv", NAME]


def test_open_gives_a_fresh_64_byte_key_on_stdin_only(node):
    dmcrypt.open_plain("/dev/mapper/vg-lv", NAME)
    assert dmcrypt.mappings() == {NAME}
    dmcrypt.close(NAME)
    dmcrypt.open_plain("/dev/mapper/vg-lv", NAME)
    keys = node.keys()
    # the stand-in exits 99 when it finds a key in argv or env: two opens succeeded
    assert len(keys) == 2 and all(len(k) == 128 for k in keys) and keys[0] != keys[1]
    assert node.steps() == [("cryptsetup", "open"), ("cryptsetup", "close"), ("cryptsetup", "open")]


def test_the_stand_in_catches_a_key_in_the_environment(node, monkeypatch):
    # positive control: the check in the stand-in can fail
    monkeypatch.setattr(dmcrypt.os, "urandom", lambda n: b"\x01" * n)
    monkeypatch.setenv("LEAKED", (b"\x01" * 64).hex())
    with pytest.raises(CommandError) as failed:
        dmcrypt.open_plain("/dev/mapper/vg-lv", NAME)
    assert failed.value.rc == 99 and "KEY IS IN THE ARGUMENT VECTOR OR ENVIRONMENT" in str(failed.value)


def test_names_not_ours_are_refused(node):
    for bad in ("vg-lv", "jobroot_crypt-a/b", "jobroot_crypt-" + "x" * 120, "../jobroot_crypt-x"):
        with pytest.raises(ValidationError):
            dmcrypt.open_plain("/dev/mapper/vg-lv", bad)
        with pytest.raises(ValidationError):
            dmcrypt.close(bad)
    assert node.steps() == []


def test_create_opens_formats_and_mounts_the_mapping_in_order(node):
    out = lvm.create(VG, LV, 10, MOUNTPOINT, encrypt=True)
    assert out["created"] is True and out["encrypted"] is True
    assert node.steps() == [("lvm", "fullreport"), ("lvcreate", "--yes"), ("cryptsetup", "open"),
                            ("mkfs.ext4", "-q"), ("mount(2)", "/dev/mapper/" + NAME)]
    assert node.argvs("cryptsetup")[0][-2:] == ["/dev/mapper/vg--jobs-jobroot_7", NAME]
    assert node.argvs("mkfs.ext4")[0][-1] == "/dev/mapper/" + NAME


@pytest.mark.parametrize("thin_pool", ["", "pool"])
def test_remove_unmounts_closes_then_removes(node, thin_pool):
    lvm.create(VG, LV, 10, MOUNTPOINT, thin_pool=thin_pool, encrypt=True)
    assert ("lvcreate", "--yes") in node.steps()
    node.events.unlink()
    assert lvm.remove(VG, LV, MOUNTPOINT) is True
    assert node.steps() == [("umount(2)", MOUNTPOINT), ("cryptsetup", "close"), ("lvremove", "--yes")]
    assert dmcrypt.mappings() == set() and LV not in node.lvm.lvs


def test_an_lv_too_long_for_a_mapping_name_is_still_removed(node):
    vg, lv = "v" * 60, "jobroot_" + "1" * 60
    node.lvm.vg = vg
    node.lvm.lvs = {lv: {"extents": 10, "tags": ["hpc_jobroot"]}}
    assert lvm.remove(vg, lv, MOUNTPOINT) is True and lv not in node.lvm.lvs
    with pytest.raises(ValidationError):
        lvm.create(vg, "jobroot_2" + "1" * 59, 10, MOUNTPOINT, encrypt=True)
    assert node.steps() == [("lvremove", "--yes")]


def test_an_unencrypted_volume_runs_no_cryptsetup(node):
    lvm.create(VG, LV, 10, MOUNTPOINT)
    lvm.remove(VG, LV, MOUNTPOINT)
    assert [s for s in node.steps() if s[0] == "cryptsetup"] == []


def test_a_stale_volume_gets_a_new_key_first(node):
    # left by a killed prologue: the LV and its mapping, no mount
    node.lvm.lvs = {LV: {"extents": 10, "tags": ["hpc_jobroot"]}}
    dmcrypt.open_plain(lvm.dm_path(VG, LV), NAME)
    node.events.unlink()
    lvm.create(VG, LV, 10, MOUNTPOINT, encrypt=True)
    assert node.steps() == [("lvm", "fullreport"), ("cryptsetup", "close"), ("cryptsetup", "open"),
                            ("mkfs.ext4", "-q"), ("mount(2)", "/dev/mapper/" + NAME)]
    assert len(set(node.keys())) == 2


def test_an_unencrypted_start_on_a_stale_encrypted_lv_closes_its_mapping_first(node):
    # the node config changed from encrypt to not between a killed prologue and its requeue
    node.lvm.lvs = {LV: {"extents": 10, "tags": ["hpc_jobroot"]}}
    dmcrypt.open_plain(lvm.dm_path(VG, LV), NAME)
    node.events.unlink()
    lvm.create(VG, LV, 10, MOUNTPOINT)
    assert node.steps() == [("lvm", "fullreport"), ("cryptsetup", "close"), ("mkfs.ext4", "-q"),
                            ("mount(2)", "/dev/mapper/vg--jobs-jobroot_7")]


def test_a_failed_open_removes_the_new_lv(node, monkeypatch):
    monkeypatch.setenv("CRYPTSETUP_STANDIN_OPEN_RC", "1")  # opened, then reports failure
    with pytest.raises(CommandError):
        lvm.create(VG, LV, 10, MOUNTPOINT, encrypt=True)
    assert LV not in node.lvm.lvs and dmcrypt.mappings() == set()
    assert [s[0] for s in node.steps()][-2:] == ["cryptsetup", "lvremove"]


def test_gc_closes_stale_mappings_of_ours_only(node, tmp_path):
    node.lvm.lvs = {"jobroot_8": {"extents": 10, "tags": ["hpc_jobroot"]}}
    kept = lvm.crypt_name(VG, "jobroot_8")                     # its LV exists (a running job)
    stale = lvm.crypt_name(VG, "jobroot_9")                    # its LV is gone
    other_vg = lvm.crypt_name("vg-jobs-2", "jobroot_9")        # another VG's
    lookalike = "jobroot_crypt-vg--jobs-jobroot_10"            # an LVM LV of VG "jobroot_crypt"
    for name in (kept, stale, other_vg):
        dmcrypt.open_plain("/dev/null", name)
    cryptsetup_standin.add_mapping(str(node.sys_block), lookalike, "LVM-abcdef")
    cfg = config.NodeConfig(volume_group=VG, run_dir=str(tmp_path / "run"),
                            root_base=str(tmp_path / "roots"), pbs_home=str(tmp_path / "pbs"))
    report = lifecycle.gc(cfg, alive=lambda job_id: job_id == "8")  # job 8 still runs
    assert report == {"stale mappings": ["close " + stale]}
    assert dmcrypt.mappings() == {kept, other_vg}
    assert lookalike not in dmcrypt.mappings() and len(os.listdir(node.sys_block)) == 3


def test_gc_without_mappings_asks_lvm_nothing_for_them(node, tmp_path):
    cfg = config.NodeConfig(volume_group=VG, run_dir=str(tmp_path / "run"),
                            root_base=str(tmp_path / "roots"), pbs_home=str(tmp_path / "pbs"))
    assert lifecycle.gc(cfg) == {}
    assert [s for s in node.steps() if s[0] != "lvs"] == []


@pytest.mark.parametrize(("encrypt", "on_request", "requested", "expected"), [
    (False, False, False, (False, None)),
    (False, True, False, (False, None)),
    (False, True, True, (True, None)),
    (True, False, False, (True, None)),
    (True, False, True, (True, None)),
])
def test_encryption_decision(encrypt, on_request, requested, expected):
    cfg = config.NodeConfig(volume_group=VG, encrypt=encrypt, encrypt_on_request=on_request).validate()
    assert lifecycle.encryption(cfg, requested) == expected


def test_a_request_the_node_forbids_is_refused_before_anything_is_made(node, tmp_path):
    cfg = config.NodeConfig(volume_group=VG, slot_extents=10, run_dir=str(tmp_path / "run"),
                            root_base=str(tmp_path / "roots"), allow_list=str(tmp_path / "none"),
                            pbs_home=str(tmp_path / "pbs"))
    result = lifecycle.prologue(cfg, "8", "root", encrypt=True)
    assert result["refused"] == ("job 8 refused: it asks for an encrypted job volume "
                                 "(--jobroot-encrypt), and this node does not allow that "
                                 "(node config encrypt_on_request is false)")
    assert (tmp_path / "run" / "jobs" / "8.refused").read_text() == result["refused"] + "\n"
    assert node.steps() == []                      # no LVM, no cryptsetup
    assert not (tmp_path / "roots").exists() and not (tmp_path / "run" / "pins").exists()


def test_the_slurm_request_comes_from_the_spank_variable():
    assert lifecycle.requested_encryption("slurm", {"SPANK_JOBROOT_ENCRYPT": "1"}) is True
    assert lifecycle.requested_encryption("slurm", {"SPANK_JOBROOT_ENCRYPT": "0"}) is False
    assert lifecycle.requested_encryption("slurm", {}) is False
    assert lifecycle.requested_encryption("torque", {"SPANK_JOBROOT_ENCRYPT": "1"}) is False


@pytest.mark.parametrize(("values", "message"), [
    ({"volume_group": VG, "encrypt": "yes"}, "encrypt must be true or false"),
    ({"volume_group": VG, "encrypt_on_request": 1}, "encrypt_on_request must be true or false"),
    ({"encrypt": True}, "encrypt needs a volume_group"),
    ({"encrypt_on_request": True}, "encrypt_on_request needs a volume_group"),
])
def test_bad_encryption_config_is_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        config.NodeConfig(**values).validate()


def test_the_encrypted_kill_points_are_steps_in_order():
    # kill-matrix.sh (Slurm scenario, no encryption) leaves these out; test_jobvol.py kills at them
    assert set(faults.ENCRYPTED_STEPS) <= set(faults.STEPS)
    at = [faults.STEPS.index(s) for s in faults.ENCRYPTED_STEPS]
    assert at == sorted(at)
    around = ("prologue.volume-created", "prologue.volume-opened", "prologue.volume-formatted")
    assert faults.STEPS[at[0] - 1:at[0] + 2] == around
