# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_compat through its Ansible entry point, against this node and libcs compiled at test time."""
from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.jobroot.plugins.module_utils import images
from ansible_collections.hpc.jobroot.plugins.modules import image_compat

from ..module_utils.libc_fixtures import make_tree


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            image_compat.main()
    return json.loads(capsys.readouterr().out)


def test_an_image_too_new_for_this_node_fails_unless_forced(tmp_path, capsys):
    tree = str(make_tree(tmp_path, "2.99", (999, 0, 0)))
    out = run_module({"tree": tree}, capsys)
    assert out["failed"] is True and out["compatible"] is False
    assert out["msg"].startswith("%s cannot run on this node: needs kernel >= 999.0.0" % tree)
    assert out["image"]["glibc"] == "2.99" and out["node"]["kernel_release"] == os.uname().release
    out = run_module({"tree": tree, "force": True}, capsys)
    assert "failed" not in out and out["refusals"] and out["changed"] is False
    assert "forced: needs kernel >= 999.0.0" in json.dumps(out["warnings"])


def test_a_version_that_passes_gets_its_facts_recorded(tmp_path, capsys):
    base = tmp_path / "images"
    make_tree(base, "2.31", (3, 2, 0)).rename(base / "ci-v1")
    images.manage("ci", "recorded", str(base), ver="v1")
    args = {"name": "ci", "version": "v1", "image_base": str(base)}
    out = run_module(args, capsys)
    assert out["compatible"] is True and out["changed"] is True and out["refusals"] == []
    assert images.load_record(str(base), "ci")[0]["userland"]["min_kernel"] == "3.2.0"
    assert run_module(args, capsys)["changed"] is False


def test_a_tree_without_libc_fails_even_when_forced(tmp_path, capsys):
    out = run_module({"tree": str(tmp_path), "force": True}, capsys)
    assert out["failed"] is True and out["msg"].startswith("no libc.so.6 in %s" % tmp_path)
