# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bind_tree's check-mode diff is made from the result's lists, not from its display strings."""
from __future__ import annotations

from ansible_collections.hpc.jobroot.plugins.module_utils import bindtree
from ansible_collections.hpc.jobroot.plugins.modules import bind_tree


def test_planned_mounts_come_from_the_result_data():
    result = bindtree.Result()
    result.add("lazy unmount", "/r/old")
    result.add("unmount", "/r/gone")
    result.add("mkdir", "/r/home/Al on Smith")
    # a home whose name holds " on " (valid): splitting the display string picked the wrong part
    result.add("mount", "/r/home/Al on Smith", source="/home/Al on Smith", fstype="rbind",
               options="defaults", propagation="rslave")
    assert bind_tree._planned(["/r/old", "/r/gone", "/r/kept"], result) == \
        ["/r/kept", "/r/home/Al on Smith"]
