# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolution below a root by descriptor (issue 11, item 1), with openat2 and with the walk."""
from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import beneath
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError


@pytest.fixture(params=["openat2", "walk"])
def way(request, monkeypatch):
    monkeypatch.setitem(beneath._state, "openat2",  # pylint: disable=protected-access
                        request.param == "openat2")
    return request.param


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "root" / "home" / "alice" / "x").mkdir(parents=True)
    (tmp_path / "outside" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "home" / "alice" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "root" / "home" / "alice" / "up").symlink_to("../../..")
    return tmp_path


def test_plain_paths_resolve(tree, way):
    fd = os.open(str(tree / "root"), os.O_PATH | os.O_DIRECTORY)
    try:
        sub = beneath.open_beneath(fd, "home/alice/x", os.O_PATH | os.O_DIRECTORY)
        assert os.readlink("/proc/self/fd/%d" % sub) == str(tree / "root/home/alice/x")
        assert beneath.mount_id(sub) == beneath.mount_id(fd)
        os.close(sub)
    finally:
        os.close(fd)


@pytest.mark.parametrize("rel", ["home/alice/link/sub", "home/alice/link", "home/alice/up/outside",
                                 "../outside", "home/../../outside"])
def test_symlinks_and_ways_out_are_refused(tree, way, rel):
    fd = os.open(str(tree / "root"), os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as info:
            os.close(beneath.open_beneath(fd, rel))
        assert info.value.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR)
    finally:
        os.close(fd)


def test_root_handle_acts_only_through_the_pinned_parent(tree, way):
    root = str(tree / "root")
    (tree / "root" / "home" / "alice" / "x" / "empty").mkdir()
    (tree / "outside" / "sub" / "empty").mkdir()
    with beneath.Root(root) as handle:
        with pytest.raises(beneath.MovedError):
            handle.rmdir(root + "/home/alice/link/sub/empty")
        with pytest.raises(JobrootError):
            handle.rmdir(str(tree / "outside" / "sub" / "empty"))
        handle.rmdir(root + "/home/alice/x/empty")
    assert (tree / "outside" / "sub" / "empty").is_dir()
    assert not (tree / "root" / "home" / "alice" / "x" / "empty").exists()


def test_purge_removes_deep_trees_without_following_symlinks(tree, way):
    root = tree / "root"
    deep = root / "tmp"
    for level in range(200):
        deep = deep / ("d%d" % level)
    deep.mkdir(parents=True)
    (deep / "file").write_text("x")
    (tree / "outside" / "keep").write_text("precious")
    with beneath.Root(str(root)) as handle:
        assert handle.purge() > 200
    assert list(root.iterdir()) == []
    assert (tree / "outside" / "keep").read_text() == "precious"
