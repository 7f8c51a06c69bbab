# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError


@pytest.mark.parametrize("job_id,key", [
    ("4711", "4711"),
    ("17_3", "17_3"),
    ("17[3]", "17_3"),
    ("123.server.domain", "123.server.domain"),
    ("123[4].server", "123_4.server"),
    ("9.a-b.c", "9.a-b.c"),
])
def test_job_ids_accepted_and_keyed(job_id, key):
    assert validate.job_id(job_id) == job_id
    assert validate.job_key(job_id) == key


@pytest.mark.parametrize("job_id", [
    "", "../../etc", "4711/..", "4711\n", "47,11", "-rf", "--help", "4711 ", " 4711",
    "1" * 129, "４７１１", "4711;x", "$(x)", "17[3", "17]3[", "17[]", "..", ".", "123.-srv",
    "4711.", "*", "17_", "17__3", "a123", "123.srv-", "123..srv", None, 4711,
])
def test_job_ids_refused(job_id):
    with pytest.raises(ValidationError):
        validate.job_id(job_id)


@pytest.mark.parametrize("name", ["alice", "_svc", "a.b", "Bob-1", "x" * 32])
def test_user_names_accepted(name):
    assert validate.user_name(name) == name


@pytest.mark.parametrize("name", ["", "-rf", "1abc", "a b", "a/b", "x" * 33, "ü", "root$", "a\n"])
def test_user_names_refused(name):
    with pytest.raises(ValidationError):
        validate.user_name(name)


def test_real_user_needs_an_existing_user():
    assert validate.real_user("root").pw_uid == 0
    with pytest.raises(ValidationError, match="does not exist"):
        validate.real_user("no_such_user_jobroot")


@pytest.mark.parametrize("name", ["sl5", "el7", "bullseye", "deb-11.2", "A_1", "x" * 64])
def test_image_names_accepted(name):
    assert validate.image_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "a..b", "x" * 65, "a b", "a,b", "é"])
def test_image_names_refused(name):
    with pytest.raises(ValidationError):
        validate.image_name(name)


@pytest.mark.parametrize("path", ["/", "/var/lib/x", "/a-b/c_d.e+f@g:h=i"])
def test_abs_paths_accepted(path):
    assert validate.abs_path(path) == path


@pytest.mark.parametrize("path", [
    "", "rel", "/a/../b", "/a/./b", "/a//b", "/a/", "//a", "/a b", "/a,b", "/a\nb", "/é",
    "/" + "a" * 1024,
])
def test_abs_paths_refused(path):
    with pytest.raises(ValidationError):
        validate.abs_path(path)


@pytest.mark.parametrize("path", ["../x", "/x", "a/../../b", ".", "a/./b", ""])
def test_rel_paths_refused(path):
    with pytest.raises(ValidationError):
        validate.rel_path(path)


def test_under_compares_components():
    assert validate.under("/a/b/c", "/a/b") == "/a/b/c"
    for bad in ("/a/bc", "/a/b", "/a"):
        with pytest.raises(ValidationError):
            validate.under(bad, "/a/b")


@pytest.mark.parametrize("lv", ["x_tdata", "a_rimage_0", "snapshot1", "pvmove0", "-x", "a b"])
def test_lv_names_lvm_reserves_are_refused(lv):
    with pytest.raises(ValidationError):
        validate.lv_name(lv)


def test_vg_with_dash_is_fine():
    assert validate.volume_group("vg-jobs") == "vg-jobs"


# Issue 11, item 4: managed prefixes.
@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64",
                                  "/libx32", "/boot", "/dev", "/proc", "/sys", "/run", "/var",
                                  "/home", "/root", "/tmp"])
def test_system_dirs_are_not_managed(path):
    with pytest.raises(ValidationError, match="system directory"):
        validate.managed_path(path, "root_base")


@pytest.mark.parametrize("path", ["relative", "var/lib/x", "./x", ""])
def test_relative_managed_paths_refused(path):
    with pytest.raises(ValidationError):
        validate.managed_path(path, "root")


@pytest.mark.parametrize("path", ["/var/lib/hpc-jobroot/roots", "/run/hpc-jobroot",
                                  "/tmp/scratch/root", "/srv/jobs", "/opt/lib", "/usr/local/x"])
def test_paths_below_system_dirs_are_managed(path):
    assert validate.managed_path(path) == path


@pytest.mark.parametrize("tag", ["hpc_jobroot", "site.jobs-2", "a+b", "x" * 1024])
def test_lv_tags_accepted(tag):
    assert validate.lv_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "a,b", "a b", "t\u00e4g", "x" * 1025, None, 5])
def test_lv_tags_refused(tag):
    with pytest.raises(ValidationError, match="tag .* may only hold letters, digits and _"):
        validate.lv_tag(tag)
