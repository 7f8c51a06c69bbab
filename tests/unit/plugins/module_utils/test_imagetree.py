# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import imagetree
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, ValidationError


@pytest.fixture
def tree(tmp_path):
    """A small image tree: etc/passwd and group, a set-uid su, a world-writable file, /tmp and a shared dir."""
    top = tmp_path / "tree"
    for d in ("etc", "usr/bin", "tmp", "srv/shared", "run"):
        (top / d).mkdir(parents=True)
    (top / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home:/bin/sh\n")
    (top / "etc/group").write_text("root:x:0:\nalice:x:1000:\n")
    (top / "usr/bin/su").write_text("#!/bin/sh\n")
    os.chmod(top / "usr/bin/su", 0o4755)
    (top / "srv/open").write_text("")
    os.chmod(top / "srv/open", 0o666)
    os.chmod(top / "tmp", 0o1777)
    os.chmod(top / "srv/shared", 0o777)
    os.symlink("/run", top / "var-run")
    return str(top)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_harden_check_mode_reports_and_changes_nothing(tree):
    stripped = imagetree.harden(tree, check=True)
    assert sorted(stripped) == ["srv/open world-writable", "srv/shared world-writable dir", "usr/bin/su setid"]
    assert mode(os.path.join(tree, "usr/bin/su")) == 0o4755


def test_harden_strips_and_is_idempotent(tree):
    imagetree.harden(tree)
    assert mode(os.path.join(tree, "usr/bin/su")) == 0o755
    assert mode(os.path.join(tree, "srv/open")) == 0o664
    assert mode(os.path.join(tree, "srv/shared")) == 0o775
    assert mode(os.path.join(tree, "tmp")) == 0o1777
    assert imagetree.harden(tree) == []


def test_harden_only_what_is_asked_and_never_the_host_root(tree):
    assert imagetree.harden(tree, setid=False, world=False, check=True) == []
    with pytest.raises(ValidationError):
        imagetree.harden("/")


def test_resolve_follows_symlinks_as_a_chrooted_process(tree):
    assert imagetree.resolve(tree, "/var-run/nscd") == os.path.join(tree, "run/nscd")
    assert imagetree.resolve(tree, "/../../etc/passwd") == os.path.join(tree, "etc/passwd")
    os.symlink("../../..", os.path.join(tree, "etc/up"))
    assert imagetree.resolve(tree, "/etc/up/etc") == os.path.join(tree, "etc")
    os.symlink("loop", os.path.join(tree, "loop"))
    with pytest.raises(JobrootError, match="too many symlinks"):
        imagetree.resolve(tree, "/loop")


def test_resolve_keeps_an_absolute_symlink_to_a_host_path_inside(tree, tmp_path):
    os.symlink(str(tmp_path), os.path.join(tree, "srv/out-dir"))
    assert imagetree.resolve(tree, "/srv/out-dir/x") == tree + str(tmp_path) + "/x"


def test_host_files_bind_and_sync(tree, tmp_path):
    src = tmp_path / "ca.crt"
    src.write_text("CA\n")
    entries = [{"path": "/etc/hosts"}, {"path": "/var-run/nscd", "type": "directory"},
               {"path": "/etc/ca.crt", "how": "sync", "src": ["/nonexistent", str(src)]},
               {"path": "/etc/none.crt", "how": "sync", "src": "/nonexistent", "optional": True}]
    assert imagetree.host_files(tree, entries, check=True) == (
        ["/etc/hosts", "/var-run/nscd"], ["/etc/ca.crt"], ["/etc/none.crt"])
    assert not os.path.lexists(os.path.join(tree, "etc/hosts"))
    imagetree.host_files(tree, entries)
    assert os.path.isfile(os.path.join(tree, "etc/hosts"))
    assert os.path.isdir(os.path.join(tree, "run/nscd"))
    with open(os.path.join(tree, "etc/ca.crt"), encoding="utf-8") as handle:
        assert handle.read() == "CA\n"
    assert imagetree.host_files(tree, entries) == ([], [], ["/etc/none.crt"])


def test_host_files_errors_keep_what_was_done(tree):
    done = {}
    with pytest.raises(JobrootError, match="is not a directory"):
        imagetree.host_files(tree, [{"path": "/etc/motd"}, {"path": "/etc/passwd", "type": "directory"}],
                             done=done)
    assert done["created"] == ["/etc/motd"]
    for bad in ({"path": "etc/x"}, {"path": "/x", "how": "copy"}, {"path": "/x", "how": "sync", "type": "directory"}):
        with pytest.raises(ValidationError):
            imagetree.host_files(tree, [bad])
    with pytest.raises(JobrootError, match="none of /nonexistent exists"):
        imagetree.host_files(tree, [{"path": "/etc/x.crt", "how": "sync", "src": "/nonexistent"}])


def test_rpm_spec_lists_every_path_with_the_trees_owners(tree):
    os.chown(os.path.join(tree, "srv/open"), 1000, 1000)
    open(os.path.join(tree, "srv/a*b"), "w", encoding="utf-8").close()
    text, count, excluded = imagetree.rpm_spec(tree, "ci", "v1", "img-ci-v1", prefix="/img/")
    assert "Name: img-ci-v1\nVersion: v1\nRelease: 1\n" in text and "Prefix: /img\n" in text
    lines = text.split("%defattr(-,root,root,-)\n")[1].splitlines()
    assert lines[0] == "%dir /img/ci-v1"
    assert "%attr(-,alice,alice) /img/ci-v1/srv/open" in lines
    assert "/img/ci-v1/srv/a[*]b" in lines
    assert "/img/ci-v1/usr/bin/su" in lines and count == len(lines) and excluded == []


def test_rpm_spec_refusals(tree):
    with pytest.raises(ValidationError, match="version 'v-1'"):
        imagetree.rpm_spec(tree, "ci", "v-1", "img")
    with pytest.raises(ValidationError, match="quotes"):
        imagetree.rpm_spec(tree, "ci", "v1", "img", prefix="/img/*")
    os.chown(os.path.join(tree, "srv/open"), 4242, 0)
    with pytest.raises(JobrootError, match="owned by 4242:0"):
        imagetree.rpm_spec(tree, "ci", "v1", "img")
    os.chown(os.path.join(tree, "srv/open"), 0, 0)
    open(os.path.join(tree, 'srv/say "hi"'), "w", encoding="utf-8").close()
    with pytest.raises(JobrootError, match="cannot list literally"):
        imagetree.rpm_spec(tree, "ci", "v1", "img")


def test_compare_and_write(tmp_path):
    dest = str(tmp_path / "image.spec")
    old, digest = imagetree.compare(dest, "spec\n")
    assert old is None and len(digest) == 64
    imagetree.write_text(dest, "spec\n")
    assert imagetree.compare(dest, "spec\n")[0] == "spec\n"
    assert mode(dest) == 0o644
