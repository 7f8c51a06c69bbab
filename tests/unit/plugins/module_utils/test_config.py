# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import config
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError


def write(tmp_path, name, data):
    (tmp_path / name).write_text(json.dumps(data))


def test_pool_and_node_merge(tmp_path):
    write(tmp_path, "pool.json", {"volume_group": "vg-jobs", "slots": 4, "slot_extents": 255})
    write(tmp_path, "node.json", {"default_image": "sl5", "queue_image": {"old": "sl5"}})
    cfg = config.load(str(tmp_path))
    assert (cfg.volume_group, cfg.slots, cfg.slot_extents, cfg.default_image) == ("vg-jobs", 4, 255, "sl5")
    assert cfg.root_base == "/var/lib/hpc-jobroot/roots"


def test_missing_files_mean_defaults(tmp_path):
    assert config.load(str(tmp_path)).fstype == "ext4"


@pytest.mark.parametrize("name,data,message", [
    ("pool.json", {"volume_grup": "x"}, "unknown keys: volume_grup"),
    ("pool.json", {"slots": -1}, "slots"),
    ("pool.json", {"slots": True}, "slots"),
    ("pool.json", {"fstype": "btrfs"}, "fstype"),
    ("pool.json", {"root_base": "/tmp/roots"}, "under /tmp"),
    ("node.json", {"image_dirs": ["../etc"]}, "image_dirs"),
    ("node.json", {"host_files": ["etc/passwd"]}, "absolute"),
    ("node.json", {"home": "everyone"}, "home"),
    ("node.json", {"default_image": "../x"}, "image name"),
    ("node.json", {"extra_binds": [{"src": "/x"}]}, "need a source"),
])
def test_bad_config_names_the_key(tmp_path, name, data, message):
    write(tmp_path, name, data)
    with pytest.raises(ValidationError, match=message):
        config.load(str(tmp_path))


def test_bad_json_is_reported(tmp_path):
    (tmp_path / "node.json").write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        config.load(str(tmp_path))


# Issue 11, item 4: the node config refuses system directories and relative paths.
@pytest.mark.parametrize("data", [{"root_base": "/"}, {"root_base": "/var"}, {"root_base": "/home"},
                                  {"run_dir": "/run"}, {"run_dir": "/etc"},
                                  {"root_base": "var/lib/roots"}, {"run_dir": "run/x"}])
def test_system_dirs_refused_in_config(tmp_path, data):
    write(tmp_path, "node.json", data)
    with pytest.raises(ValidationError):
        config.load(str(tmp_path))


def test_dirs_below_var_and_run_are_fine(tmp_path):
    write(tmp_path, "node.json", {"root_base": "/var/lib/x/roots", "run_dir": "/run/x"})
    assert config.load(str(tmp_path)).run_dir == "/run/x"
