# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config, dmcrypt, faults, lifecycle, lvm
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    CommandError, JobrootError, NoFreeSlotError, ValidationError)

from .lvm_stub import EXTENT, LvmStub


@pytest.fixture
def stub(monkeypatch, tmp_path):
    fake = LvmStub()
    monkeypatch.setattr(dmcrypt, "SYS_BLOCK", str(tmp_path / "sys-block"))  # no mapping open
    monkeypatch.setattr(lvm, "run", fake.run)
    # Mounting needs a real device; unit tests stop at the command line.
    monkeypatch.setattr(lvm.mounts, "mount", lambda *a: fake.calls.append(["mount(2)"] + list(a)))
    monkeypatch.setattr(lvm, "mounted_at", lambda *a, **k: False)
    return fake


def test_dm_names_double_dashes():
    assert lvm.dm_name("vg-jobs", "jobroot_1") == "vg--jobs-jobroot_1"
    assert lvm.dm_name("a-b-c", "jobroot_1-2") == "a--b--c-jobroot_1--2"
    assert lvm.dm_path("vg", "lv") == "/dev/mapper/vg-lv"


def test_lv_name_for_job_keys():
    assert lvm.lv_name_for("123_4.server") == "jobroot_123_4.server"
    with pytest.raises(ValidationError):
        lvm.lv_name_for("1_tdata")


def test_thick_create_command():
    cmd = lvm.create_cmd("vg-jobs", "jobroot_7", 255, EXTENT)
    assert cmd == ["lvcreate", "--yes", "--autobackup", "n", "--addtag", "hpc_jobroot",
                   "--name", "jobroot_7", "--extents", "255", "--", "vg-jobs"]


def test_thin_create_command_gives_whole_extents_in_bytes():
    cmd = lvm.create_cmd("vg", "jobroot_7", 10, EXTENT, thin_pool="pool")
    assert cmd[-4:] == ["--virtualsize", "%db" % (10 * EXTENT), "--thinpool", "vg/pool"]
    assert "--autobackup" in cmd and "--addtag" in cmd


def test_mkfs_commands_are_the_fast_ones():
    ext4 = lvm.mkfs_cmd("ext4", "/dev/mapper/vg-lv")
    assert "^has_journal" in ext4 and "-m" in ext4
    assert "lazy_itable_init=1,lazy_journal_init=1,nodiscard" in ext4
    assert lvm.mkfs_cmd("xfs", "/dev/x") == ["mkfs.xfs", "-q", "-f", "-K", "/dev/x"]
    with pytest.raises(ValidationError):
        lvm.mkfs_cmd("btrfs", "/dev/x")


def test_reports_are_parsed(stub):
    stub.lvs = {"jobroot_1": {"extents": 5, "tags": ["hpc_jobroot"]},
                "root": {"extents": 100, "tags": []}}
    info, lvs = lvm.vg_report("vg-jobs")
    assert info == {"extent_size": EXTENT, "extent_count": 1000, "free_count": 895}
    assert sorted(lvs) == ["jobroot_1", "root"] and lvs["jobroot_1"]["tags"] == ["hpc_jobroot"]
    assert [x["name"] for x in lvm.job_lvs("vg-jobs")] == ["jobroot_1"]
    assert lvm.list_lvs("vg-jobs")[1]["size_bytes"] == 100 * EXTENT


def test_slot_share_rounds_down_and_ignores_system_lvs(stub):
    stub.lvs = {"root": {"extents": 103, "tags": []},
                "jobroot_1": {"extents": 100, "tags": ["hpc_jobroot"]}}
    # free 797 + our 100 = 897 extents for jobs; 897 // 4 = 224 (never oversubscribed)
    assert lvm.slot_extents("vg-jobs", 4) == 224
    with pytest.raises(ValidationError):
        lvm.slot_extents("vg-jobs", 0)
    with pytest.raises(NoFreeSlotError):
        lvm.slot_extents("vg-jobs", 10000)


def test_create_formats_and_mounts(stub):
    out = lvm.create("vg-jobs", "jobroot_7", 10, "/nonexistent-jobroot-test/7", max_lvs=2)
    assert out == {"extents": 10, "size_bytes": 10 * EXTENT, "created": True, "encrypted": False}
    names = [c[0] for c in stub.calls]
    assert names.index("lvcreate") < names.index("mkfs.ext4") < names.index("mount(2)")
    mount = [c for c in stub.calls if c[0] == "mount(2)"][0]
    assert mount[1:4] == ["/dev/mapper/vg--jobs-jobroot_7", "/nonexistent-jobroot-test/7", "ext4"]


def test_stale_volume_gets_a_fresh_file_system(stub):
    # Left by a crashed prologue: tagged, not mounted. A requeued job must not see its data.
    stub.lvs = {"jobroot_7": {"extents": 10, "tags": ["hpc_jobroot"]}}
    out = lvm.create("vg-jobs", "jobroot_7", 99, "/nonexistent-jobroot-test/7")
    assert out["created"] is False and out["extents"] == 10
    assert [c[0] for c in stub.calls if c[0] in ("lvcreate", "mkfs.ext4", "mount(2)")] == ["mkfs.ext4", "mount(2)"]


def test_no_free_slot_creates_nothing(stub):
    stub.lvs = {"jobroot_1": {"extents": 10, "tags": ["hpc_jobroot"]},
                "jobroot_2": {"extents": 10, "tags": ["hpc_jobroot"]}}
    with pytest.raises(NoFreeSlotError, match="no free slot: 2 of 2"):
        lvm.create("vg-jobs", "jobroot_3", 10, "/x/3", max_lvs=2)
    assert not [c for c in stub.calls if c[0] in ("lvcreate", "mkfs.ext4")]


def test_oversized_thick_request_creates_nothing(stub):
    with pytest.raises(NoFreeSlotError, match="not enough space: volume group vg-jobs has 1000 free extents"):
        lvm.create("vg-jobs", "jobroot_3", 1001, "/x/3")
    assert not [c for c in stub.calls if c[0] == "lvcreate"]


def test_foreign_lv_is_never_touched(stub):
    stub.lvs = {"jobroot_9": {"extents": 10, "tags": []}}
    with pytest.raises(JobrootError, match="not ours"):
        lvm.create("vg-jobs", "jobroot_9", 10, "/x/9")
    with pytest.raises(JobrootError, match="not ours"):
        lvm.remove("vg-jobs", "jobroot_9")
    assert "jobroot_9" in stub.lvs


LVM_COMMANDS = ("lvm", "lvs", "vgs", "lvcreate", "lvremove")


def lvm_calls(stub):
    return [c for c in stub.calls if c[0] in LVM_COMMANDS]


def test_prologue_volume_is_one_report_then_lvcreate(stub):
    # Issue 18: the VG's free extents and its LVs come from one LVM start.
    lvm.create("vg-jobs", "jobroot_7", 10, "/nonexistent-jobroot-test/7", max_lvs=2)
    assert [c[:2] for c in lvm_calls(stub)] == [["lvm", "fullreport"], ["lvcreate", "--yes"]]
    assert "jobroot_7" in stub.lvs


def test_fullreport_hides_sub_lvs_as_lvs_does(stub):
    stub.lvs = {"pool": {"extents": 100, "tags": []}, "[pool_tdata]": {"extents": 100, "tags": []}}
    assert sorted(lvm.vg_report("vg-jobs")[1]) == ["pool"]


@pytest.mark.parametrize("removed_as", ["lv", "vg/lv"])
def test_epilogue_removal_is_one_lvm_call(stub, removed_as):
    # Issue 18: when nothing is wrong, removing the job LV is one lvremove
    # that selects it by name and tag in our VG; both spellings of lvm's
    # "successfully removed" line count.
    stub.removed_as = removed_as
    stub.lvs = {"jobroot_5": {"extents": 10, "tags": ["hpc_jobroot"]},
                "jobroot_6": {"extents": 10, "tags": ["hpc_jobroot"]}}
    assert lvm.remove("vg-jobs", "jobroot_5") is True
    assert lvm_calls(stub) == [
        ["lvremove", "--yes", "--autobackup", "n", "--select",
         'lv_name="jobroot_5" && lv_tags={"hpc_jobroot"}', "--", "vg-jobs"]]
    assert sorted(stub.lvs) == ["jobroot_6"]


def test_epilogue_leaves_an_untagged_lv_of_the_same_name(stub):
    # Not ours: lvm's selection does not match it, and the second call says why.
    stub.lvs = {"jobroot_5": {"extents": 10, "tags": ["someone_else"]}}
    with pytest.raises(JobrootError, match="has no tag hpc_jobroot: not ours"):
        lvm.remove("vg-jobs", "jobroot_5")
    assert "jobroot_5" in stub.lvs
    assert [c[0] for c in lvm_calls(stub)] == ["lvremove", "lvs"]


def test_a_whole_epilogue_makes_one_lvm_call(stub, tmp_path, monkeypatch):
    # The lifecycle's epilogue of a job whose root is no longer mounted: its
    # LV goes with one lvremove, and nothing else starts LVM.
    monkeypatch.delenv(faults.SWITCH, raising=False)
    cfg = config.NodeConfig(volume_group="vg-jobs", slot_extents=10, run_dir=str(tmp_path / "run"),
                            root_base=str(tmp_path / "roots"), pbs_home=str(tmp_path / "pbs"))
    stub.lvs = {"jobroot_7": {"extents": 10, "tags": ["hpc_jobroot"]}}
    actions = lifecycle.epilogue(cfg, "7")
    assert "remove volume" in actions and stub.lvs == {}
    assert [c[0] for c in lvm_calls(stub)] == ["lvremove"]


def test_removal_of_a_gone_lv_is_no_change(stub):
    assert lvm.remove("vg-jobs", "jobroot_5") is False
    assert [c[0] for c in lvm_calls(stub)] == ["lvremove", "lvs"]


def test_removal_reports_an_lv_that_lvremove_left(stub, monkeypatch):
    # lvremove exits 0 and says nothing, yet our tagged LV is still there.
    stub.lvs = {"jobroot_5": {"extents": 10, "tags": ["hpc_jobroot"]}}
    real_run = stub.run
    monkeypatch.setattr(lvm, "run", lambda cmd, timeout=120: "" if cmd[0] == "lvremove" else real_run(cmd))
    with pytest.raises(JobrootError, match="still there after lvremove"):
        lvm.remove("vg-jobs", "jobroot_5")


def test_removal_in_a_missing_vg_fails(stub):
    with pytest.raises(CommandError, match="not found"):
        lvm.remove("vg-other", "jobroot_5")


def test_removal_refuses_a_tag_that_could_change_the_selection(stub):
    with pytest.raises(ValidationError):
        lvm.remove("vg-jobs", "jobroot_5", tag='x"} || lv_name=root')
    assert stub.calls == []


def test_failed_mkfs_removes_the_new_lv(stub, monkeypatch):
    real_run = stub.run

    def failing(cmd, timeout=120):
        if cmd[0] == "mkfs.ext4":
            raise CommandError(cmd, 1, "mkfs broke")
        return real_run(cmd, timeout)
    monkeypatch.setattr(lvm, "run", failing)
    with pytest.raises(CommandError, match="mkfs broke"):
        lvm.create("vg-jobs", "jobroot_5", 10, "/nonexistent-jobroot-test/5")
    assert "jobroot_5" not in stub.lvs


def test_run_reports_failures_and_timeouts():
    with pytest.raises(CommandError, match="exited 3"):
        lvm.run(["sh", "-c", "echo oops >&2; exit 3"])
    with pytest.raises(CommandError, match="timed out"):
        lvm.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(CommandError, match="not found"):
        lvm.run(["no-such-command-jobroot"])


# Issue 13, item 3: one plan for the decisions of lvm.create and lvm_jobvol.
INFO = {"extent_size": EXTENT, "extent_count": 1000, "free_count": 100}


def lv_rows(**lvs):
    """list_lvs dicts by name: each value is (extents, tags)."""
    return {name: {"name": name, "size_bytes": extents * EXTENT, "tags": list(tags), "pool": "",
                   "attr": "-wi-a-----"} for name, (extents, tags) in lvs.items()}


OURS = ("hpc_jobroot",)


def test_plan_keeps_an_existing_volume_without_asking_its_size():
    def never():
        raise AssertionError("the wanted size of an existing LV must not be computed")
    existing = lv_rows(jobroot_1=(40, OURS))
    assert lvm.plan("vg", "jobroot_1", existing, INFO, never, max_lvs=1) == (40, False)


def test_plan_refuses_a_volume_without_our_tag():
    with pytest.raises(JobrootError, match="exists without tag hpc_jobroot: not ours"):
        lvm.plan("vg", "jobroot_1", lv_rows(jobroot_1=(40, ())), INFO, 10, check_space=False)


def test_plan_checks_slots_and_free_space_only_when_asked():
    full = lv_rows(jobroot_1=(10, OURS), jobroot_2=(10, OURS), root=(10, ()))
    with pytest.raises(NoFreeSlotError, match="no free slot: 2 of 2"):
        lvm.plan("vg", "jobroot_3", full, INFO, 10, max_lvs=2)
    assert lvm.plan("vg", "jobroot_3", full, INFO, 10, max_lvs=3) == (10, True)
    with pytest.raises(NoFreeSlotError, match="has 100 free extents, the job needs 101"):
        lvm.plan("vg", "jobroot_3", {}, INFO, 101)
    assert lvm.plan("vg", "jobroot_3", {}, INFO, 101, thin_pool="pool") == (101, True)
    assert lvm.plan("vg", "jobroot_3", full, INFO, lambda: 101, max_lvs=2,
                    check_space=False) == (101, True)
