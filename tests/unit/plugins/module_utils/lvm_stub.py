# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""STUB of the lvm2 command-line edge, for unit tests only.

This host has no device-mapper, so lvcreate cannot run here; real LVM is
proven in the QEMU guest (molecule/jobvol). This stub answers ``lvs`` and
``lvm fullreport`` with the JSON report format of lvm2 2.03 (the fields the
library reads), keeps an LV table that ``lvcreate`` adds to and ``lvremove``
takes from, and records every command in ``calls`` (so tests can count LVM
starts). ``lvremove --select`` is answered as lvm2 2.03.16 does for the one
selection the library makes, ``lv_name="N" && lv_tags={"T"}`` and a VG:
the LV is removed only if it carries tag T, with ``Logical volume "N"
successfully removed.`` on standard output (``removed_as`` = "vg/lv" gives
the newer ``"VG/N"`` spelling); no match is exit 0 and no output (tried on
a loop-device VG). Any other selection is an error, so a test cannot pass
on a selection lvm would read differently.
"""

from __future__ import annotations

import json
import re

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import CommandError

EXTENT = 4 * 1024 * 1024


class LvmStub:
    def __init__(self, vg="vg-jobs", extents=1000, lvs=None):
        self.vg = vg
        self.extents = extents
        self.lvs = dict(lvs or {})   # name -> {"extents", "tags", "pool"}
        self.calls = []
        self.removed_as = "lv"       # or "vg/lv": how lvremove names what it removed

    def free(self):
        return self.extents - sum(lv["extents"] for lv in self.lvs.values() if not lv.get("thin"))

    def lv_rows(self):
        return [{"lv_name": name, "lv_size": str(lv["extents"] * EXTENT),
                 "lv_tags": ",".join(lv.get("tags", [])), "pool_lv": lv.get("pool", ""),
                 "lv_attr": "-wi-a-----"} for name, lv in self.lvs.items()]

    def run(self, cmd, timeout=120):
        self.calls.append(list(cmd))
        if cmd[:2] == ["lvm", "fullreport"]:
            return json.dumps({"report": [{"vg": [{
                "vg_name": self.vg, "vg_extent_size": str(EXTENT),
                "vg_extent_count": str(self.extents), "vg_free_count": str(self.free())}],
                "pv": [], "lv": self.lv_rows(), "pvseg": [], "seg": []}]})
        if cmd[0] == "lvs":
            return json.dumps({"report": [{"lv": self.lv_rows()}]})
        if cmd[0] == "lvcreate":
            name = cmd[cmd.index("--name") + 1]
            ext = int(cmd[cmd.index("--extents") + 1]) if "--extents" in cmd else \
                int(cmd[cmd.index("--virtualsize") + 1].rstrip("b")) // EXTENT
            self.lvs[name] = {"extents": ext, "tags": [cmd[cmd.index("--addtag") + 1]],
                              "thin": "--thinpool" in cmd}
            return ""
        if cmd[0] == "lvremove":
            name, tag = re.fullmatch(r'lv_name="([^"]+)" && lv_tags=\{"([^"]+)"\}',
                                     cmd[cmd.index("--select") + 1]).groups()
            if cmd[-2:] != ["--", self.vg]:
                raise CommandError(cmd, 5, '  Volume group "%s" not found' % cmd[-1])
            if tag not in self.lvs.get(name, {}).get("tags", []):
                return ""
            del self.lvs[name]
            shown = name if self.removed_as == "lv" else "%s/%s" % (self.vg, name)
            return '  Logical volume "%s" successfully removed.\n' % shown
        return ""
