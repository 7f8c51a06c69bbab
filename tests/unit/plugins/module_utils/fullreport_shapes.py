# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report shapes of ``lvm fullreport --reportformat json --units b --nosuffix VG`` (lvm2 2.03).

The ``vg`` and ``pv`` rows are what lvm2 2.03.16 printed on this host for a
60 MiB volume group made with ``vgcreate -s 4m`` on a loop device (only the
counts change from case to case). This host has no device-mapper, so it
cannot create LVs: the ``lv`` rows carry the lvm2 field names and value
shapes (sizes in bytes as digit strings, tags comma-separated, hidden
sub-LVs in brackets) but not every field lvm prints. Real LVs are read by
molecule/jobvol in the QEMU guest.
"""

from __future__ import annotations

import copy

MiB = 1024 * 1024
EXTENT = 4 * MiB

_VG = {"vg_fmt": "lvm2", "vg_uuid": "x63cwY-oeVx-7l7s-Wc5Z-kMGX-UHTL-5Hq00d", "vg_name": "pooltestvg",
       "vg_attr": "wz--n-", "vg_permissions": "writeable", "vg_extendable": "extendable",
       "vg_exported": "", "vg_autoactivation": "enabled", "vg_partial": "",
       "vg_allocation_policy": "normal", "vg_clustered": "", "vg_shared": "",
       "vg_size": "62914560", "vg_free": "62914560", "vg_sysid": "", "vg_systemid": "",
       "vg_lock_type": "", "vg_lock_args": "", "vg_extent_size": "4194304",
       "vg_extent_count": "15", "vg_free_count": "15", "max_lv": "0", "max_pv": "0",
       "pv_count": "1", "vg_missing_pv_count": "0", "lv_count": "0", "snap_count": "0",
       "vg_seqno": "1", "vg_tags": "", "vg_profile": "", "vg_mda_count": "1",
       "vg_mda_used_count": "1", "vg_mda_free": "520704", "vg_mda_size": "1044480",
       "vg_mda_copies": "unmanaged"}
_PV = {"pv_fmt": "lvm2", "pv_uuid": "kLKLsi-MJK3-pBPN-DEJ5-z2aY-Xq2N-TOEEAz", "dev_size": "67108864",
       "pv_name": "/dev/loop0", "pv_major": "7", "pv_minor": "0", "pv_mda_free": "520704",
       "pv_mda_size": "1044480", "pv_ext_vsn": "2", "pe_start": "1048576", "pv_size": "62914560",
       "pv_free": "62914560", "pv_used": "0", "pv_attr": "a--", "pv_allocatable": "allocatable",
       "pv_exported": "", "pv_missing": "", "pv_pe_count": "15", "pv_pe_alloc_count": "0",
       "pv_tags": "", "pv_mda_count": "1", "pv_mda_used_count": "1", "pv_ba_start": "0",
       "pv_ba_size": "0", "pv_in_use": "used", "pv_duplicate": "", "pv_device_id": "",
       "pv_device_id_type": ""}


def lv(name, extents, tags="", attr="-wi-a-----", pool_lv="", segtype="linear"):
    """One ``lv`` row: *extents* of EXTENT bytes, *tags* as lvm prints them (comma-separated)."""
    return {"lv_name": name, "lv_full_name": "pooltestvg/" + name.strip("[]"), "lv_attr": attr,
            "lv_size": str(extents * EXTENT), "lv_tags": tags, "pool_lv": pool_lv,
            "segtype": segtype, "lv_active": "active"}


def report(extents=15, lvs=(), name="pooltestvg"):
    """A report[0] dict of a VG of *extents* extents holding *lvs*.

    The free count leaves out what thin LVs and the thin pool LV show as
    their size: a thin pool's extents are held by its hidden ``_tdata``.
    """
    used = sum(int(x["lv_size"]) // EXTENT for x in lvs if x["segtype"] not in ("thin", "thin-pool"))
    vg = dict(copy.deepcopy(_VG), vg_name=name, vg_extent_count=str(extents),
              vg_free_count=str(extents - used), vg_size=str(extents * EXTENT),
              vg_free=str((extents - used) * EXTENT), lv_count=str(len(lvs)))
    return {"vg": [vg], "pv": [copy.deepcopy(_PV)], "lv": [dict(x) for x in lvs], "pvseg": [], "seg": []}
