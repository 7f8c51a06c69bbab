# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bindtree's checks that run before anything is mounted or written (no root needed)."""
from __future__ import annotations

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import bindtree
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError


# Issue 11, item 8: state_dir is validated before any file is written.
@pytest.mark.parametrize("state_dir", ["relative/state", "/run", "/", "/var/../etc"])
def test_bad_state_dir_writes_nothing(tmp_path, monkeypatch, state_dir):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    for call in (lambda: bindtree.apply(str(root), [{"target": "x", "type": "tmpfs"}],
                                        [{"path": "tmp", "mode": "1777"}], state_dir),
                 lambda: bindtree.teardown(str(root), state_dir)):
        with pytest.raises(ValidationError):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert not list(root.iterdir())


# Issue 11, item 4: a root is never / or a system directory.
@pytest.mark.parametrize("root", ["/", "/etc", "/var", "/tmp", "relative"])
def test_system_roots_refused(tmp_path, root):
    with pytest.raises(ValidationError):
        bindtree.teardown(root, str(tmp_path / "state"))


# Issue 11, item 7: a home whose path holds a space is bound like any other.
def test_home_with_a_space_is_a_valid_bind(tmp_path):
    home = tmp_path / "home dir" / "Alice Smith"
    home.mkdir(parents=True)
    entry = bindtree.spec({"target": str(home).lstrip("/"), "type": "rbind", "source": str(home)})
    assert entry.source == str(home) and entry.target == str(home).lstrip("/")


@pytest.mark.parametrize("target", [" lead", "trail /x", "a/ b", "x,y", "tab\there"])
def test_odd_spacing_and_other_characters_still_refused(target):
    with pytest.raises(ValidationError):
        bindtree.spec({"target": target, "type": "tmpfs"})


# Issue 13, item 2: results are data; the display strings are made from it.
def test_each_change_reads_as_before():
    result = bindtree.Result()
    result.add("mkdir", "/r/usr")
    result.add("touch", "/r/etc/passwd")
    result.add("symlink", "/r/bin", source="usr/bin")
    result.add("chmod", "/r/tmp", mode=0o1777)
    result.add("mount", "/r/usr", source="/usr", fstype="bind", options="ro,nodev",
               propagation="private")
    result.add("mount", "/r/proc", source="proc", fstype="proc", options="defaults",
               propagation="private")
    result.add("remount", "/r/usr", options="ro,nodev")
    result.add("propagation", "/r/home", propagation="rslave")
    result.add("unmount", "/r/proc")
    result.add("lazy unmount", "/r/usr")
    result.add("remove", "/r/etc/passwd")
    result.add("rmdir", "/r/usr")
    assert result.actions == [
        "mkdir /r/usr", "touch /r/etc/passwd", "symlink /r/bin -> usr/bin", "chmod 1777 /r/tmp",
        "mount bind /usr on /r/usr (ro,nodev, private)",
        "mount proc proc on /r/proc (defaults, private)",
        "remount /r/usr with ro,nodev", "make /r/home rslave", "unmount /r/proc",
        "lazy unmount /r/usr (busy)", "remove /r/etc/passwd", "rmdir /r/usr"]
    assert result.made == ["/r/usr", "/r/etc/passwd", "/r/bin"]
    assert result.mounted == ["/r/usr", "/r/proc"]
    assert result.unmounted == ["/r/proc", "/r/usr"]
    assert result.removed == ["/r/etc/passwd", "/r/usr"]
    assert result.changed and not bindtree.Result().changed


def test_apply_and_teardown_list_what_they_made_and_removed(tmp_path):
    root, state = tmp_path / "root", str(tmp_path / "state")
    root.mkdir()
    made = bindtree.apply(str(root), [{"target": "bin", "type": "symlink", "source": "usr/bin"}],
                          [{"path": "var/tmp", "mode": "1777"}], state)
    assert made.made == [str(root / "var"), str(root / "var" / "tmp"), str(root / "bin")]
    assert made.mounted == [] and made.unmounted == [] and made.removed == []
    assert "chmod 1777 %s" % (root / "var" / "tmp") in made.actions
    again = bindtree.apply(str(root), [{"target": "bin", "type": "symlink", "source": "usr/bin"}],
                           [{"path": "var/tmp", "mode": "1777"}], state)
    assert not again.changed and again.made == []
    gone = bindtree.teardown(str(root), state)
    # files (the symlink) first, then directories deepest first
    assert gone.removed == [str(root / "bin"), str(root / "var" / "tmp"), str(root / "var")]
    assert gone.actions == ["remove %s" % (root / "bin"), "rmdir %s" % (root / "var" / "tmp"),
                            "rmdir %s" % (root / "var")]
    assert not list(root.iterdir())
    assert gone.unmounted == []


def test_check_mode_lists_what_would_be_mounted_and_made(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    plan = bindtree.apply(str(root), [{"target": "dev/shm", "type": "tmpfs", "data": "mode=1777"}],
                          (), str(tmp_path / "state"), check=True)
    shm = str(root / "dev" / "shm")
    assert plan.made == [str(root / "dev"), shm]
    assert plan.mounted == [shm]
    assert plan.actions[-1] == "mount tmpfs tmpfs on %s (defaults, private)" % shm
    assert not (root / "dev").exists()
