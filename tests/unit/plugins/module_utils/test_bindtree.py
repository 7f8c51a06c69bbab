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
