# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.hpc.jobroot.plugins.module_utils import mountinfo

# A real-shaped table: / shared, a data disk, a bind of /data/home, a
# stacked tmpfs, and a mount point with a space (kernel escape \040).
TABLE = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 8:2 / /data rw,noatime shared:2 - xfs /dev/sdb rw
40 22 8:2 /home /roots/7/home rw,nosuid,nodev master:2 - xfs /dev/sdb rw
41 22 0:50 / /roots/7/dev/shm rw - tmpfs tmpfs rw,size=65536k
42 41 0:51 / /roots/7/dev/shm rw,nosuid - tmpfs tmpfs rw
43 22 8:1 /srv/my\\040dir /roots/7/my\\040dir ro,relatime - ext4 /dev/sda1 rw
44 22 0:60 / /roots/70 rw - tmpfs tmpfs rw
"""


def table():
    return mountinfo.parse(TABLE)


def test_parse_fields_and_escapes():
    rows = table()
    assert len(rows) == 7
    home = rows[2]
    assert home.mount_id == 40 and home.parent_id == 22 and home.dev == "8:2"
    assert home.root == "/home" and home.mount_point == "/roots/7/home"
    assert home.options == frozenset({"rw", "nosuid", "nodev"})
    assert home.optional == ("master:2",) and home.fstype == "xfs" and home.source == "/dev/sdb"
    assert rows[5].mount_point == "/roots/7/my dir" and rows[5].root == "/srv/my dir"
    assert rows[3].optional == ()


def test_propagation():
    rows = table()
    assert mountinfo.propagation(rows[0]) == "shared"
    assert mountinfo.propagation(rows[2]) == "slave"
    assert mountinfo.propagation(rows[3]) == "private"


def test_under_matches_components_not_prefixes():
    points = [m.mount_point for m in mountinfo.under(table(), "/roots/7")]
    assert "/roots/70" not in points
    assert points == ["/roots/7/home", "/roots/7/dev/shm", "/roots/7/dev/shm", "/roots/7/my dir"]
    assert mountinfo.under(table(), "/roots/70", include_self=False) == []


def test_top_at_takes_the_stacked_mount():
    assert mountinfo.top_at(table(), "/roots/7/dev/shm").mount_id == 42
    assert mountinfo.top_at(table(), "/nowhere") is None


def test_containing_and_bind_origin(monkeypatch):
    monkeypatch.setattr(mountinfo.os.path, "realpath", lambda p: p)
    rows = table()
    assert mountinfo.containing(rows, "/data/home/alice").mount_id == 30
    assert mountinfo.containing(rows, "/etc/passwd").mount_id == 22
    # A bind of /data/home shows dev 8:2 and root /home, exactly as mount 40 does.
    assert mountinfo.bind_origin(rows, "/data/home") == ("8:2", "/home")
    assert mountinfo.bind_origin(rows, "/data") == ("8:2", "/")
    assert mountinfo.bind_origin(rows, "/etc/passwd") == ("8:1", "/etc/passwd")


def test_read_parses_this_hosts_table():
    rows = mountinfo.read()
    assert any(m.mount_point == "/" for m in rows)
