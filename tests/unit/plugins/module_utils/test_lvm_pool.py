# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lvm.pool_facts, lvm.fullreport and lvm.slot_extents: the slot share from one lvm fullreport."""
from __future__ import annotations

import json

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    CommandError, JobrootError, NoFreeSlotError, ValidationError)

from .fullreport_shapes import EXTENT, lv, report

THIN = [lv("pool", 100, attr="twi-aotz--", segtype="thin-pool"),
        lv("[pool_tdata]", 100, attr="Twi-ao----"), lv("[pool_tmeta]", 1, attr="ewi-ao----"),
        lv("[lvol0_pmspare]", 1, attr="ewi-------"),
        lv("jobroot_1", 50, "hpc_jobroot", attr="Vwi-aotz--", pool_lv="pool", segtype="thin")]


def test_thick_without_job_volumes():
    facts = lvm.pool_facts(report(15), "", 4)
    assert facts == {"volume_group": "pooltestvg", "extent_size": EXTENT, "free_extents": 15,
                     "job_extents": 0, "thin_pool_extents": None, "available_extents": 15,
                     "slot_extents": 3, "job_lvs": []}


def test_thick_counts_our_volumes_back_and_ignores_foreign_ones():
    rep = report(1000, [lv("root", 103), lv("jobroot_1", 100, "hpc_jobroot"),
                        lv("jobroot_2", 100, "backup,hpc_jobroot"),
                        # not ours: untagged, or a tag that only contains ours
                        lv("jobroot_9", 7), lv("scratch", 5, "hpc_jobroot_old,x")])
    facts = lvm.pool_facts(rep, "", 4)
    # free 1000 - 315 = 685, plus our 200: 885 // 4 = 221 (rounded down, never oversubscribed)
    assert (facts["free_extents"], facts["job_extents"], facts["available_extents"]) == (685, 200, 885)
    assert facts["slot_extents"] == 221
    assert facts["job_lvs"] == ["jobroot_1", "jobroot_2"]


def test_a_rerun_while_jobs_run_gives_the_same_share():
    empty = lvm.pool_facts(report(1000, [lv("root", 100)]), "", 4)
    busy = lvm.pool_facts(report(1000, [lv("root", 100)] + [
        lv("jobroot_%d" % i, 225, "hpc_jobroot") for i in range(3)]), "", 4)
    assert empty["slot_extents"] == busy["slot_extents"] == 225
    assert busy["free_extents"] == 225 and busy["job_extents"] == 675


def test_job_extents_are_summed_in_bytes_then_rounded_down():
    rep = report(100, [lv("jobroot_1", 1, "hpc_jobroot"), lv("jobroot_2", 1, "hpc_jobroot")])
    rep["lv"][0]["lv_size"] = str(EXTENT + EXTENT // 2)
    rep["lv"][1]["lv_size"] = str(EXTENT // 2)
    assert lvm.pool_facts(rep, "", 1)["job_extents"] == 2


def test_thin_pool_size_is_the_job_space():
    facts = lvm.pool_facts(report(150, THIN), "pool", 3)
    assert facts["free_extents"] == 48   # 150 - 100 data - 1 metadata - 1 spare
    assert facts["thin_pool_extents"] == 100 and facts["available_extents"] == 100
    assert facts["slot_extents"] == 33
    # the thin job volume is listed and counted, but does not change the thin share
    assert facts["job_lvs"] == ["jobroot_1"] and facts["job_extents"] == 50


def test_missing_thin_pool_is_an_error():
    with pytest.raises(JobrootError, match="thin pool pooltestvg/pool not found"):
        lvm.pool_facts(report(15), "pool", 2)


def test_too_many_slots():
    with pytest.raises(NoFreeSlotError, match="volume group pooltestvg has 15 extents for jobs: too few for 16 slots"):
        lvm.pool_facts(report(15), "", 16)
    assert lvm.pool_facts(report(15), "", 15)["slot_extents"] == 1


@pytest.mark.parametrize("slots", [0, -1, True, "4", 4.0, None])
def test_bad_slots(slots):
    with pytest.raises(ValidationError, match="slots must be a whole number >= 1"):
        lvm.pool_facts(report(15), "", slots)


@pytest.mark.parametrize("thin_pool,tag", [("pool_tdata", "hpc_jobroot"), ("-pool", "hpc_jobroot"),
                                           ("", ""), ("", "a,b"), ("", "t\u00e4g")])
def test_bad_names(thin_pool, tag):
    with pytest.raises(ValidationError):
        lvm.pool_facts(report(15), thin_pool, 2, tag)


class Lvm:
    """STUB of the lvm command: answers one fixed fullreport (this host cannot create LVs)."""

    def __init__(self, rep=None, error=None):
        self.rep, self.error, self.calls = rep, error, []

    def run(self, cmd, timeout=120):
        self.calls.append(cmd)
        if self.error:
            raise self.error
        return json.dumps({"report": [self.rep]})


def test_fullreport_runs_one_command(monkeypatch):
    fake = Lvm(report(15))
    monkeypatch.setattr(lvm, "run", fake.run)
    assert lvm.fullreport("pooltestvg") == report(15)
    assert fake.calls == [["lvm", "fullreport", "--reportformat", "json", "--units", "b",
                           "--nosuffix", "--", "pooltestvg"]]


def test_fullreport_of_a_missing_group_is_none(monkeypatch):
    # what lvm2 2.03.16 says here (exit 5) for: lvm fullreport ... -- nosuchvg
    error = CommandError(["lvm"], 5, '  Volume group "nosuchvg" not found\n  Cannot process volume group nosuchvg\n')
    monkeypatch.setattr(lvm, "run", Lvm(error=error).run)
    assert lvm.fullreport("nosuchvg") is None
    other = CommandError(["lvm"], 5, "  /dev/sdb: read failed\n")
    monkeypatch.setattr(lvm, "run", Lvm(error=other).run)
    with pytest.raises(CommandError, match="read failed"):
        lvm.fullreport("nosuchvg")


# what lvm2 2.03.31 (Debian trixie) prints on stdout, with nothing on stderr
# and exit 5, for: lvm fullreport --reportformat json ... -- nosuchvg
TRIXIE_MISSING_VG = json.dumps({"report": [], "log": [
    {"log_seq_num": "1", "log_type": "error", "log_context": "processing", "log_object_type": "vg",
     "log_object_name": "nosuchvg", "log_message": 'Volume group "nosuchvg" not found', "log_ret_code": "0"},
    {"log_seq_num": "2", "log_type": "error", "log_context": "processing", "log_object_type": "vg",
     "log_object_name": "nosuchvg", "log_message": "Cannot process volume group nosuchvg", "log_ret_code": "0"},
    {"log_seq_num": "3", "log_type": "status", "log_context": "processing", "log_object_type": "vg",
     "log_object_name": "nosuchvg", "log_message": "failure", "log_ret_code": "5"}]})


def test_run_takes_the_message_from_the_json_command_log(monkeypatch):
    """STUB of subprocess.run: lvm2 2.03.31's answer, captured in the trixie guest (this host has 2.03.16)."""
    def fake_run(cmd, **_kwargs):
        return lvm.subprocess.CompletedProcess(cmd, 5, stdout=TRIXIE_MISSING_VG, stderr="")
    monkeypatch.setattr(lvm.subprocess, "run", fake_run)
    with pytest.raises(CommandError) as caught:
        lvm.run(["lvm", "fullreport", "--reportformat", "json", "--", "nosuchvg"])
    assert caught.value.stderr == 'Volume group "nosuchvg" not found\nCannot process volume group nosuchvg'
    assert lvm.fullreport("nosuchvg") is None


def test_run_keeps_stderr_and_survives_output_that_is_not_json(monkeypatch):
    def fake_run(cmd, **_kwargs):
        return lvm.subprocess.CompletedProcess(cmd, 5, stdout="not json", stderr="  read failed\n")
    monkeypatch.setattr(lvm.subprocess, "run", fake_run)
    with pytest.raises(CommandError, match="read failed"):
        lvm.run(["lvm", "vgs"])
    monkeypatch.setattr(lvm.subprocess, "run",
                        lambda cmd, **_kw: lvm.subprocess.CompletedProcess(cmd, 5, stdout="[1]", stderr=""))
    with pytest.raises(CommandError, match="no message"):
        lvm.run(["lvm", "vgs"])


def test_fullreport_refuses_a_bad_name_before_running(monkeypatch):
    fake = Lvm(report(15))
    monkeypatch.setattr(lvm, "run", fake.run)
    with pytest.raises(ValidationError):
        lvm.fullreport("-vg")
    assert fake.calls == []


def test_slot_extents_is_pool_facts_over_one_report(monkeypatch):
    fake = Lvm(report(150, THIN))
    monkeypatch.setattr(lvm, "run", fake.run)
    assert lvm.slot_extents("pooltestvg", 3, "pool") == 33
    assert [c[:2] for c in fake.calls] == [["lvm", "fullreport"]]
    for bad in ({"slots": 0}, {"slots": 2, "thin_pool": "pool_tmeta"}, {"slots": 2, "tag": "a b"}):
        with pytest.raises(ValidationError):
            lvm.slot_extents("pooltestvg", **bad)
    assert len(fake.calls) == 1   # refused before lvm runs
    with pytest.raises(JobrootError, match="thin pool pooltestvg/other not found"):
        lvm.slot_extents("pooltestvg", 3, "other")


def test_slot_extents_of_a_missing_group(monkeypatch):
    error = CommandError(["lvm"], 5, '  Volume group "vg" not found\n')
    monkeypatch.setattr(lvm, "run", Lvm(error=error).run)
    with pytest.raises(JobrootError, match="volume group vg not found"):
        lvm.slot_extents("vg", 2)
