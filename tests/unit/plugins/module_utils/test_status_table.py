# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The readable ``jobroot status`` (plugins/module_utils/status_table.py), from lifecycle.status dicts."""
from __future__ import annotations

from ansible_collections.hpc.jobroot.plugins.module_utils import status_table

GiB = 1 << 30


def node(**extra):
    status = {"jobs": {}, "volumes": [], "mounts": [], "pins": {}, "images": {}, "usage": {},
              "slots": {"total": 2, "free": 2}, "pool": None, "leaked": {"volume": [], "mount": []},
              "stale": []}
    status.update(extra)
    return status


def test_sizes_and_ages():
    assert [status_table.size(n) for n in (None, 512, 1536, 3 * GiB // 2)] == ["-", "512 B", "1.5 KiB", "1.5 GiB"]
    assert [status_table.age(s) for s in (45, 723, 18120, 273600)] == ["45s", "12m03s", "5h02m", "3d04h"]


def test_a_busy_node_with_a_leak_and_a_dead_prologue():
    status = node(
        jobs={"4711": {"job_id": "4711", "user": "molly", "image": "sl7", "phase": "ready", "size_bytes": GiB},
              "4712": {"job_id": "4712", "user": "bob", "image": "host", "phase": "setup"},
              "99": None},
        usage={"4711": {"age_seconds": 723, "used_bytes": GiB // 4, "mounts": 14},
               "4712": {"age_seconds": 1200, "used_bytes": None, "mounts": 0}},
        slots={"total": 2, "free": 0},
        pool={"size_bytes": 2 * GiB, "used_ratio": 0.125, "metadata_ratio": 0.03},
        pins={"4711": "/var/lib/hpc-jobroot/images/sl7.v/20261130-1"},
        images={"sl7": {"path": "/var/lib/hpc-jobroot/images/sl7", "version": "20261130-1", "glibc": "2.17",
                        "min_kernel": "2.6.32"}},
        leaked={"volume": ["jobroot_99"], "mount": []},
        stale=["4712"])
    lines = status_table.render(status).splitlines()
    assert lines[0].split() == ["JOB", "USER", "IMAGE", "PHASE", "AGE", "SIZE", "USED", "MOUNTS"]
    assert lines[1].split() == ["4711", "molly", "sl7", "ready", "12m03s", "1.0", "GiB", "256.0", "MiB",
                                "(25%)", "14"]
    assert lines[2].split() == ["4712", "bob", "host", "setup", "20m00s", "-", "-", "0"]
    # the columns line up: each header starts where its cells start
    assert lines[1].index("ready") == lines[0].index("PHASE") == lines[2].index("setup")
    assert "slots: 0 of 2 free" in lines
    assert "pool: thin, 2.0 GiB, data 12% used, metadata 3% used" in lines
    assert "pinned: job 4711 -> /var/lib/hpc-jobroot/images/sl7.v/20261130-1" in lines
    assert ("image: sl7 (/var/lib/hpc-jobroot/images/sl7): version 20261130-1, glibc 2.17, "
            "min kernel 2.6.32") in lines
    marked = [line for line in lines if line.startswith("!")]
    assert [line.split(":")[0] for line in marked] == ["! leaked volume", "! stale", "! no state"]
    assert "jobroot_99" in marked[0] and "4712" in marked[1] and "20m00s" in marked[1] and "99" in marked[2]


def test_thick_pool_and_an_unreadable_allow_list():
    text = status_table.render(node(pool={"size_bytes": GiB, "used_ratio": 0.5, "metadata_ratio": None},
                                    images={"error": "line 3: bad name"}))
    assert "pool: thick, 1.0 GiB of job space, 50% held by job volumes\n" in text
    assert "! images: the allow-list cannot be read: line 3: bad name\n" in text
