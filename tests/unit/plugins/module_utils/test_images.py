# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import images, lock
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, ValidationError


@pytest.fixture
def base(tmp_path):
    """An image base with versions v1..v3 of image ``ci`` (root-owned, 0755), and a run dir."""
    top = tmp_path / "images"
    for ver in ("v1", "v2", "v3"):
        (top / ("ci-" + ver) / "etc").mkdir(parents=True)
        os.chmod(top / ("ci-" + ver), 0o755)
    os.chmod(top, 0o755)
    (tmp_path / "run").mkdir()
    return str(top)


def run_dir(base):
    return os.path.join(os.path.dirname(base), "run")


def deploy(base, *versions):
    for ver in versions:
        images.manage("ci", "recorded", base, ver=ver)


def test_version_rule():
    assert images.version("20261122.1+b") == "20261122.1+b"
    for bad in ("", "-1", "a-b", "a/b", "x" * 33, None):
        with pytest.raises(ValidationError):
            images.version(bad)


def test_record_round_trip_and_malformed(base):
    assert images.load_record(base, "ci") == []
    images.save_record(base, "ci", [{"version": "v1"}])
    assert images.load_record(base, "ci") == [{"version": "v1"}]
    with open(images.record_path(base, "ci"), encoding="utf-8") as handle:
        assert json.load(handle)["name"] == "ci"
    with open(images.record_path(base, "ci"), "w", encoding="utf-8") as handle:
        handle.write('{"versions": {}}')
    with pytest.raises(JobrootError, match="malformed"):
        images.load_record(base, "ci")


def test_current_refuses_what_it_does_not_manage(base):
    assert images.current(base, "ci") == ""
    os.symlink("ci-v1", os.path.join(base, "ci"))
    assert images.current(base, "ci") == "v1"
    os.unlink(os.path.join(base, "ci"))
    os.symlink("/etc", os.path.join(base, "ci"))
    with pytest.raises(JobrootError, match="not at a ci-<version>"):
        images.current(base, "ci")
    os.unlink(os.path.join(base, "ci"))
    os.mkdir(os.path.join(base, "ci"))
    with pytest.raises(JobrootError, match="not a symlink"):
        images.current(base, "ci")


def test_check_version_dir(base):
    images.check_version_dir(os.path.join(base, "ci-v1"))
    images.check_version_dir(os.path.join(base, "ci-v9"), check=True)
    with pytest.raises(JobrootError, match="deploy it first"):
        images.check_version_dir(os.path.join(base, "ci-v9"))
    os.chmod(os.path.join(base, "ci-v1"), 0o777)
    with pytest.raises(ValidationError, match="world-writable"):
        images.check_version_dir(os.path.join(base, "ci-v1"))
    open(os.path.join(base, "ci-file"), "w", encoding="utf-8").close()
    with pytest.raises(JobrootError, match="not a directory"):
        images.check_version_dir(os.path.join(base, "ci-file"))


def test_switch_replaces_the_symlink_and_leaves_no_temp(base):
    images.switch(base, "ci", "v1")
    images.switch(base, "ci", "v2")
    assert os.readlink(os.path.join(base, "ci")) == "ci-v2"
    assert not [n for n in os.listdir(base) if ".swap-" in n]


def test_record_switch_and_roll_back(base):
    deploy(base, "v1", "v2")
    again = images.manage("ci", "recorded", base, ver="v2")
    assert not again["changed"] and [v["version"] for v in again["versions"]] == ["v1", "v2"]
    res = images.manage("ci", "switched", base, ver="v2")
    assert res["changed"] and (res["previous"], res["current"]) == ("", "v2")
    assert not images.manage("ci", "switched", base, ver="v2")["changed"]
    plan = images.manage("ci", "rolled_back", base, check=True)
    assert plan["changed"] and plan["current"] == "v1" and images.current(base, "ci") == "v2"
    assert images.manage("ci", "rolled_back", base)["current"] == "v1"
    with pytest.raises(JobrootError, match="no version deployed before 'v1'"):
        images.manage("ci", "rolled_back", base)


def test_roll_back_needs_the_current_version_in_the_record(base):
    images.switch(base, "ci", "v3")
    with pytest.raises(JobrootError, match="not in the deploy record"):
        images.manage("ci", "rolled_back", base)


def test_options_are_validated_before_anything_is_read(base):
    for kwargs in (dict(name="../x"), dict(state="gone"), dict(state="switched"),
                   dict(state="recorded", ver="v1", method="rpm"), dict(ver="a-b"), dict(keep=0)):
        args = dict(dict(name="ci"), **kwargs)
        with pytest.raises(ValidationError):
            images.manage(args.pop("name"), image_base=base, **args)


def test_missing_base_in_query_or_check_mode(tmp_path):
    missing = str(tmp_path / "none")
    assert images.manage("ci", "query", missing)["versions"] == []
    assert images.manage("ci", "switched", missing, ver="v1", check=True)["changed"]
    with pytest.raises(JobrootError, match="does not exist"):
        images.manage("ci", "switched", missing, ver="v1")


def test_prune_keeps_the_newest_and_the_current(base):
    deploy(base, "v1", "v2", "v3")
    images.switch(base, "ci", "v1")
    dry = images.manage("ci", "pruned", base, run_dir(base), "/nonexistent", keep=1, check=True)
    assert dry["removed"] == ["v2"] and os.path.isdir(os.path.join(base, "ci-v2"))
    res = images.manage("ci", "pruned", base, run_dir(base), "/nonexistent", keep=1)
    assert res["removed"] == ["v2"] and res["in_use"] == {"v1": ["current version"]}
    assert sorted(os.listdir(base)) == [".ci.versions.json", "ci", "ci-v1", "ci-v3"]
    assert [v["version"] for v in images.load_record(base, "ci")] == ["v1", "v3"]


def test_prune_keeps_pinned_and_allow_listed_versions(base):
    deploy(base, "v1", "v2", "v3")
    pins = os.path.join(run_dir(base), "pins")
    os.mkdir(pins)
    with open(os.path.join(pins, "4711"), "w", encoding="utf-8") as handle:
        handle.write(os.path.join(base, "ci-v1") + "\n")
    allow = os.path.join(run_dir(base), "images.conf")
    with open(allow, "w", encoding="utf-8") as handle:
        handle.write("old:%s/ci-v2/etc\n" % base)
    os.chmod(allow, 0o644)
    removed, in_use = images.prune(base, "ci", run_dir(base), allow, 1)
    assert removed == []
    assert in_use == {"v1": ["pinned by job 4711"], "v2": ["named by the allow-list %s" % allow]}


def test_prune_refuses_an_empty_pin(base):
    deploy(base, "v1", "v2")
    os.mkdir(os.path.join(run_dir(base), "pins"))
    open(os.path.join(run_dir(base), "pins", "4711"), "w", encoding="utf-8").close()
    with pytest.raises(JobrootError, match="empty or unreadable"):
        images.prune(base, "ci", run_dir(base), "/nonexistent", 1)
    assert os.path.isdir(os.path.join(base, "ci-v1"))


def test_prune_waits_for_the_node_lock(base):
    deploy(base, "v1", "v2")
    with lock.node_lock(run_dir(base)):
        with pytest.raises(JobrootError, match="timed out"):
            images.prune(base, "ci", run_dir(base), "/nonexistent", 1, timeout=0.2)
    assert os.path.isdir(os.path.join(base, "ci-v1"))


def test_prune_removes_an_rpm_version_with_rpm_e(base):
    images.manage("ci", "recorded", base, ver="v1", method="rpm", package="img-ci-v1")
    deploy(base, "v2")
    calls = []

    def rpm(cmd):  # stands in for rpm(8), which this host may lack; the guest test runs the real one
        calls.append(cmd)
        return 1, "", "no such package"

    with pytest.raises(JobrootError, match="rpm -e --dbpath /db img-ci-v1 failed: no such package"):
        images.prune(base, "ci", run_dir(base), "/nonexistent", 1, "/db", run_command=rpm)
    assert calls == [["rpm", "-e", "--dbpath", "/db", "img-ci-v1"]]


def test_prune_removes_what_rpm_e_leaves_of_an_rpm_version(base):
    images.manage("ci", "recorded", base, ver="v1", method="rpm", package="img-ci-v1")
    deploy(base, "v2")
    v1 = os.path.join(base, "ci-v1")
    os.makedirs(os.path.join(v1, ".singularity.d", "env"))  # added at deploy, not in the package
    with open(os.path.join(v1, ".singularity.d", "runscript"), "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\n")
    erased = []

    def rpm(cmd):  # stands in for rpm(8): erases only what the package owns (etc/)
        erased.append(cmd[-1])
        os.rmdir(os.path.join(v1, "etc"))
        return 0, "", ""

    assert images.prune(base, "ci", run_dir(base), "/nonexistent", 1, run_command=rpm)[0] == ["v1"]
    assert erased == ["img-ci-v1"]
    assert not os.path.lexists(v1)
    assert [v["version"] for v in images.load_record(base, "ci")] == ["v2"]


def test_snapshot(base):
    assert images.snapshot(base, "ci") == {"current": "", "versions": []}
    deploy(base, "v1")
    images.switch(base, "ci", "v1")
    assert images.snapshot(base, "ci") == {"current": "v1", "versions": ["v1"]}
    with pytest.raises(ValidationError):
        images.snapshot(base, "../ci")


def test_the_userland_facts_are_recorded_per_version_and_shown_per_allow_list_name(base):
    deploy(base, "v1", "v2")
    images.manage("ci", "switched", base, ver="v2")
    facts = {"glibc": "2.12", "min_kernel": "2.6.18", "needs_vsyscall": True}
    assert images.record_userland(base, "ci", "v2", facts, check=True) is True
    assert "userland" not in images.load_record(base, "ci")[1]
    assert images.record_userland(base, "ci", "v2", facts) is True
    assert images.record_userland(base, "ci", "v2", facts) is False
    assert images.record_userland(base, "ci", "v9", facts) is False  # not recorded: nothing to attach to
    assert images.load_record(base, "ci")[1]["userland"] == facts
    assert "userland" not in images.load_record(base, "ci")[0]  # older entries read as before
    allow = os.path.join(run_dir(base), "images.conf")
    with open(allow, "w", encoding="utf-8") as handle:  # the comment is what the role appends
        handle.write("ci:%s/ci  # glibc 2.12, kernel >= 2.6.18\nother:/srv/other\n" % base)
    os.chmod(allow, 0o644)
    assert images.allow_listed_userland(allow, base) == {
        "ci": {"path": base + "/ci", "version": "v2", "glibc": "2.12", "min_kernel": "2.6.18"},
        "other": {"path": "/srv/other", "version": None, "glibc": None, "min_kernel": None}}
    assert images.allow_listed_userland(allow + ".missing", base) == {}


def test_jobroot_status_shows_the_images_and_survives_a_broken_allow_list(base):
    from ansible_collections.hpc.jobroot.plugins.module_utils import config, lifecycle
    deploy(base, "v1")
    images.manage("ci", "switched", base, ver="v1")
    images.record_userland(base, "ci", "v1", {"glibc": "2.31", "min_kernel": "3.2.0"})
    allow = os.path.join(run_dir(base), "images.conf")
    with open(allow, "w", encoding="utf-8") as handle:
        handle.write("ci:%s/ci\n" % base)
    os.chmod(allow, 0o644)
    top = os.path.dirname(base)
    cfg = config.NodeConfig(run_dir=run_dir(base), root_base=os.path.join(top, "roots"), image_base=base,
                            allow_list=allow, pbs_home=os.path.join(top, "pbs"))
    assert lifecycle.status(cfg)["images"] == {
        "ci": {"path": base + "/ci", "version": "v1", "glibc": "2.31", "min_kernel": "3.2.0"}}
    os.chmod(allow, 0o666)
    assert "group- or world-writable" in lifecycle.status(cfg)["images"]["error"]
