# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_exporter textfiles (plugins/module_utils/metrics.py), written to real directories.

LVM is the only edge replaced (the host has no device-mapper): node_facts
reads the report shapes of fullreport_shapes.py. The files' syntax is also
checked by ``promtool check metrics`` in tests/promtool (make promtool).
"""
from __future__ import annotations

import json
import os
import re
import types

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    config, hook_command, lifecycle, lvm, metrics, mountinfo)
from ansible_collections.hpc.jobroot.tests.unit.plugins.module_utils import fullreport_shapes as shapes


def cfg_for(tmp_path, **extra):
    (tmp_path / "prom").mkdir(exist_ok=True)
    values = dict(run_dir=str(tmp_path / "run"), root_base=str(tmp_path / "roots"),
                  allow_list=str(tmp_path / "images.conf"), metrics_dir=str(tmp_path / "prom"), slots=4)
    values.update(extra)
    return config.NodeConfig(**values)  # not validate(): root_base under /tmp is refused there


def samples(text):
    """Parse exposition text into {(name, frozenset(labels)): value}; comment lines must be HELP/TYPE."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) jobroot_[a-z_]+ ", line), line
            continue
        match = re.match(r'([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        assert match, line
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out[(match.group(1), labels)] = float(match.group(3))
    return out


def save_state(cfg, key, phase):
    os.makedirs(os.path.join(cfg.run_dir, "jobs"), exist_ok=True)
    with open(os.path.join(cfg.run_dir, "jobs", key + ".json"), "w", encoding="utf-8") as handle:
        json.dump({"job_id": key, "phase": phase}, handle)


def test_histogram_buckets_are_cumulative_and_counts_add_up():
    counters = metrics.load_counters("/nonexistent")
    metrics.count_hook(counters, "prologue", 0.3, "ok")
    metrics.count_hook(counters, "prologue", 7.0, "refused")
    fams = dict((f[0], f[3]) for f in metrics.hook_families(counters, {}, 2))
    got = {(s[0], dict(s[1]).get("le")): s[2] for s in fams["jobroot_hook_duration_seconds"]
           if dict(s[1])["hook"] == "prologue"}
    assert got[("_bucket", "0.25")] == 0
    assert got[("_bucket", "0.5")] == 1
    assert got[("_bucket", "5.0")] == 1
    assert got[("_bucket", "10.0")] == 2
    assert got[("_bucket", "+Inf")] == 2
    assert got[("_count", None)] == 2
    assert got[("_sum", None)] == 7.3


def test_record_hook_writes_the_file_and_keeps_counting(tmp_path):
    cfg = cfg_for(tmp_path)
    save_state(cfg, "7", "ready")
    save_state(cfg, "8", "refused")
    metrics.record_hook(cfg, "prologue", 1.5, "ok")
    metrics.record_hook(cfg, "prologue", 0.1, "refused")
    metrics.record_hook(cfg, "epilogue", 0.2, "failed")
    text = (tmp_path / "prom" / metrics.HOOKS_FILE).read_text(encoding="utf-8")
    got = samples(text)
    assert got[("jobroot_hook_runs_total", frozenset({("hook", "prologue"), ("outcome", "ok")}))] == 1
    assert got[("jobroot_hook_runs_total", frozenset({("hook", "prologue"), ("outcome", "refused")}))] == 1
    assert got[("jobroot_hook_duration_seconds_count", frozenset({("hook", "prologue")}))] == 2
    assert got[("jobroot_teardown_failures_total", frozenset())] == 1
    assert got[("jobroot_roots", frozenset({("phase", "ready")}))] == 1
    assert got[("jobroot_roots", frozenset({("phase", "refused")}))] == 1
    assert got[("jobroot_slots_free", frozenset())] == 3  # a refused job holds no slot
    # nothing but the file itself: the temp file was renamed over it
    assert sorted(os.listdir(tmp_path / "prom")) == [metrics.HOOKS_FILE]
    assert oct(os.stat(os.path.join(cfg.run_dir, metrics.COUNTERS_FILE)).st_mode & 0o777) == "0o600"


def test_no_metrics_dir_writes_nothing(tmp_path):
    cfg = cfg_for(tmp_path, metrics_dir="")
    metrics.record_hook(cfg, "prologue", 1.0, "ok")
    assert not os.path.exists(os.path.join(cfg.run_dir, metrics.COUNTERS_FILE))
    assert os.listdir(tmp_path / "prom") == []


def test_unreadable_counters_start_again_at_zero(tmp_path):
    (tmp_path / metrics.COUNTERS_FILE).write_text('{"hooks": {"prologue": "x"}}', encoding="utf-8")
    assert metrics.load_counters(str(tmp_path)) == metrics.load_counters("/nonexistent")


def test_pool_use_thin_and_thick():
    pool = shapes.lv("pool", 10, segtype="thin-pool", attr="twi-aotz--")
    pool.update(data_percent="25.00", metadata_percent="10.50")
    thin = metrics.pool_use(shapes.report(15, [pool]), "pool", lvm.TAG)
    assert thin == {"size_bytes": 10 * shapes.EXTENT, "used_ratio": 0.25, "metadata_ratio": 0.105}
    report = shapes.report(15, [shapes.lv("jobroot_1", 5, tags="hpc_jobroot"), shapes.lv("home", 5)])
    thick = metrics.pool_use(report, "", lvm.TAG)
    # job space: 5 free + 5 of the job LV; the untagged LV is not job space
    assert thick == {"size_bytes": 10 * shapes.EXTENT, "used_ratio": 0.5, "metadata_ratio": None}
    assert metrics.pool_use(report, "missing", lvm.TAG) is None


def test_leaks_are_items_no_saved_state_names(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path, volume_group="pooltestvg")
    save_state(cfg, "7", "ready")
    report = shapes.report(15, [shapes.lv("jobroot_7", 2, tags="hpc_jobroot"),
                                shapes.lv("jobroot_9", 2, tags="hpc_jobroot"),
                                shapes.lv("home", 2)])
    monkeypatch.setattr(lvm, "fullreport", lambda vg: report)
    monkeypatch.setattr(lvm, "list_lvs", lambda vg: [{"name": r["lv_name"], "tags": r["lv_tags"].split(",")}
                                                     for r in report["lv"]])
    os.makedirs(cfg.root_base)
    root = cfg.root_base
    monkeypatch.setattr(mountinfo, "read", lambda path=None: [
        types.SimpleNamespace(mount_point=p) for p in
        (os.path.join(root, "7"), os.path.join(root, "7", "usr"), os.path.join(root, "9"),
         os.path.join(root, "9", "usr"))])
    monkeypatch.setattr(os, "statvfs", lambda p: types.SimpleNamespace(f_blocks=100, f_bfree=75, f_frsize=4096))
    status = lifecycle.status(cfg)
    assert status["leaked"] == {"volume": ["jobroot_9"],
                                "mount": [os.path.join(root, "9"), os.path.join(root, "9", "usr")]}
    facts = metrics.node_facts(status, {"9": "error: busy", "8": ["removed"]})
    assert facts["leaked"] == {"volume": 1, "mount": 2}
    assert facts["gc_errors"] == 1
    assert facts["pool"]["used_ratio"] == 4 / 13  # 9 free + 4 job extents
    assert facts["images"] == {}


def test_record_gc_keeps_the_last_success(tmp_path, monkeypatch):
    cfg = cfg_for(tmp_path)
    metrics.record_gc(cfg, {})
    first = samples((tmp_path / "prom" / metrics.NODE_FILE).read_text(encoding="utf-8"))
    stamp = first[("jobroot_gc_last_success_timestamp_seconds", frozenset())]
    assert first[("jobroot_leaked_items", frozenset({("kind", "mount")}))] == 0
    metrics.record_gc(cfg, {"5": "error: umount failed"})
    second = samples((tmp_path / "prom" / metrics.NODE_FILE).read_text(encoding="utf-8"))
    assert second[("jobroot_gc_last_success_timestamp_seconds", frozenset())] == stamp
    assert second[("jobroot_gc_stale_jobs", frozenset())] == 1
    hooks = samples((tmp_path / "prom" / metrics.HOOKS_FILE).read_text(encoding="utf-8"))
    assert hooks[("jobroot_teardown_failures_total", frozenset())] == 1
    assert ("jobroot_pool_size_bytes", frozenset()) not in second  # directory mode: no pool


def test_label_values_are_escaped():
    text = metrics.render([("jobroot_image_info", "gauge", "x",
                            [("", [("image", 'a"b\\c\nd')], 1)])])
    assert 'jobroot_image_info{image="a\\"b\\\\c\\nd"} 1' in text


def test_the_hook_counts_its_run_and_a_metrics_failure_does_not_fail_it(tmp_path, monkeypatch, capsys):
    cfg = cfg_for(tmp_path)
    monkeypatch.setattr(hook_command.config, "load", lambda config_dir=None: cfg)
    monkeypatch.setattr(hook_command.syslog, "syslog", lambda *a: None)
    monkeypatch.setattr(lifecycle, "epilogue", lambda *a, **k: [])
    args = ["epilogue", "--batch-system", "torque", "--", "5.srv", "alice", "grp", "name", "4242",
            "walltime=60", "cput=0", "batch", "acct"]
    monkeypatch.setattr(hook_command, "torque_progress", lambda c, j: lambda m: None)
    assert hook_command.main(args) == 0
    got = samples((tmp_path / "prom" / metrics.HOOKS_FILE).read_text(encoding="utf-8"))
    assert got[("jobroot_hook_runs_total", frozenset({("hook", "epilogue"), ("outcome", "ok")}))] == 1
    os.rename(tmp_path / "prom", tmp_path / "gone")  # the textfile directory is gone
    capsys.readouterr()
    assert hook_command.main(args) == 0
    assert "cannot write the metrics of this epilogue" in capsys.readouterr().err


def test_gc_sweeps_the_temp_files_a_killed_metrics_or_retry_writer_left(tmp_path):
    cfg = cfg_for(tmp_path)
    os.makedirs(cfg.run_dir)
    dead = 999999999  # above any pid_max: no such process
    left = [os.path.join(cfg.run_dir, "%s.tmp.%d" % (metrics.COUNTERS_FILE, dead)),
            os.path.join(cfg.run_dir, "retry.json.tmp.%d" % dead),
            os.path.join(cfg.metrics_dir, "%s.tmp.%d" % (metrics.HOOKS_FILE, dead))]
    other = os.path.join(cfg.metrics_dir, "site.prom.tmp.%d" % dead)  # not ours: stays
    for path in left + [other]:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("x")
    assert sorted(lifecycle.sweep_temps(cfg)) == sorted(left)
    assert os.path.exists(other)
