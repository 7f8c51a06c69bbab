# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-job logical volumes: create, make a file system, mount; and the reverse.

One job gets one LV of one slot's size in the node's volume group, thick
(``lvcreate -l``) or thin (``lvcreate -V -T vg/pool``), a fresh file system,
and a mount with ``noatime,nodev,nosuid``. This is the seed paper's "fresh
file system" approach (000, section 2.3.2); the hardening follows what
HTCondor's per-job LVM support learnt in production (prior-art.md):

* every LV carries the tag ``hpc_jobroot`` so that leaks can be found and
  swept, and is created with ``--autobackup n`` (otherwise /etc/lvm/archive
  fills the root file system);
* every LVM command runs with a timeout (120 s);
* device-mapper doubles ``-`` in VG and LV names under /dev/mapper, so the
  device path is computed with :func:`dm_name`, never pasted together;
* sizes are whole extents, so no rounding surprises; the slot share is the
  free extents divided by the slot count, rounded down (never oversubscribed).

Units: extents are LVM physical extents (``extent_size`` bytes each, as the
VG reports); ``*_bytes`` are bytes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from ansible_collections.hpc.jobroot.plugins.module_utils import dmcrypt, faults, mountinfo, mounts, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    CommandError, JobrootError, NoFreeSlotError, ValidationError)

TAG = "hpc_jobroot"
LV_PREFIX = "jobroot_"
TIMEOUT = 120
MOUNT_FLAGS = mounts.MS_NOATIME | mounts.MS_NODEV | mounts.MS_NOSUID
_ENV = dict(os.environ, LC_ALL="C", LVM_SUPPRESS_FD_WARNINGS="1")


def run(cmd, timeout=TIMEOUT):
    """Run argument vector *cmd* (no shell); return its stdout as str.

    Raises CommandError on a non-zero exit or after *timeout* seconds; its
    ``stderr`` is lvm's message, from standard error or else from the JSON
    command log (:func:`_json_log_errors`).
    """
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=_ENV, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(cmd, None, exc.stderr if isinstance(exc.stderr, str) else "") from None
    except FileNotFoundError:
        raise CommandError(cmd, 127, "%s: command not found" % cmd[0]) from None
    if proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stderr.strip() or _json_log_errors(proc.stdout))
    return proc.stdout


def _json_log_errors(stdout):
    """Return the error messages of an lvm ``--reportformat json`` command log, one per line.

    lvm2 2.03.2x and later (Debian trixie, 2.03.31) report a failed
    command's messages in the ``log`` list of the JSON on standard output
    instead of standard error (lvmreport(7), "Command log"); older lvm2
    (Debian bookworm, 2.03.16) prints them on standard error. Returns ""
    when *stdout* is not such a report.
    """
    try:
        log = json.loads(stdout).get("log", [])
    except (ValueError, AttributeError):
        return ""
    return "\n".join(row.get("log_message", "") for row in log
                     if isinstance(row, dict) and row.get("log_type") == "error")


def lv_name_for(key):
    """Return the LV name of job key *key* (``jobroot_<key>``), validated for LVM."""
    return validate.lv_name(LV_PREFIX + key)


def dm_name(vg, lv):
    """Return the device-mapper name of *vg*/*lv*: each ``-`` doubled, joined by ``-``.

    ``dm_name("vg-jobs", "jobroot_1")`` is ``"vg--jobs-jobroot_1"``
    (lvm(8), "VALID NAMES"; HTCondor users hit this with dashed VG names).
    """
    return "%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))


def dm_path(vg, lv):
    """Return ``/dev/mapper/<dm name>`` of *vg*/*lv*: what mountinfo shows as source."""
    return "/dev/mapper/" + dm_name(vg, lv)


def crypt_name(vg, lv):
    """Return the dm-crypt mapping name of *vg*/*lv*: ``dmcrypt.PREFIX`` + :func:`dm_name`.

    ``crypt_name("vg-jobs", "jobroot_1")`` is ``"jobroot_crypt-vg--jobs-jobroot_1"``.
    Raises ValidationError if it would be longer than device-mapper allows.
    """
    return dmcrypt.mapping_name(dm_name(vg, lv))


def _crypt_name_or_none(vg, lv):
    # An LV whose mapping name would be too long was never encrypted by us.
    try:
        return crypt_name(vg, lv)
    except ValidationError:
        return None


def fs_device(vg, lv, encrypt=False):
    """Return the device the job's file system is on: the crypt mapping if *encrypt*, else the LV."""
    return dmcrypt.device(crypt_name(vg, lv)) if encrypt else dm_path(vg, lv)


def _report(cmd, key):
    # Options go before the "--" that ends them in *cmd*.
    split = cmd.index("--")
    data = json.loads(run(cmd[:split] + ["--reportformat", "json", "--units", "b", "--nosuffix"]
                          + cmd[split:]))
    rows = []
    for report in data.get("report", []):
        rows.extend(report.get(key, []))
    return rows


def _lv_row(row):
    # One LV report row (field name -> str) as a list_lvs dict.
    return {"name": row["lv_name"], "size_bytes": int(row["lv_size"]),
            "tags": [t for t in row["lv_tags"].split(",") if t],
            "pool": row["pool_lv"], "attr": row["lv_attr"]}


def list_lvs(vg):
    """Return the LVs of *vg* as dicts: name, size_bytes (bytes), tags (list of str), pool, attr.

    One ``lvs`` call. Raises ValidationError for a bad VG name (before any
    command runs) and CommandError if the VG does not exist.
    """
    validate.volume_group(vg)
    return [_lv_row(r) for r in _report(["lvs", "-o", "lv_name,lv_size,lv_tags,pool_lv,lv_attr", "--", vg], "lv")]


def vg_report(vg):
    """Return ``(info, lvs)`` of volume group *vg* from one LVM call (:func:`fullreport`).

    *info*: ``{"extent_size": bytes, "extent_count": n, "free_count": n}``
    (counts in extents); *lvs*: ``{name: list_lvs dict}`` of the VG's
    visible LVs. The prologue needs both, and every LVM command is a whole
    LVM start (issue 18), so one ``lvm fullreport`` replaces ``vgs`` plus
    ``lvs``. fullreport also lists hidden sub-LVs (a thin pool's
    ``[pool_tdata]``, lvmreport(7)); ``lvs`` does not, and neither does this.

    Raises ValidationError for a bad VG name (before any command runs),
    JobrootError if the VG does not exist, and CommandError for any other
    failure of lvm.
    """
    report = fullreport(vg)
    if report is None:
        raise JobrootError("volume group %s not found" % vg)
    row = report["vg"][0]
    info = {"extent_size": int(row["vg_extent_size"]), "extent_count": int(row["vg_extent_count"]),
            "free_count": int(row["vg_free_count"])}
    return info, {r["lv_name"]: _lv_row(r) for r in report.get("lv", []) if not r["lv_name"].startswith("[")}


def job_lvs(vg, tag=TAG):
    """Return the LVs of *vg* that carry *tag* (ours), as :func:`list_lvs` dicts."""
    return [lv for lv in list_lvs(vg) if tag in lv["tags"]]


def fullreport(vg):
    """Return the report of volume group *vg* from one ``lvm fullreport``, or None if it does not exist.

    Runs ``lvm fullreport --reportformat json --units b --nosuffix -- VG``
    and returns ``report[0]``: a dict of lists ``vg`` (one row), ``pv``,
    ``lv``, ``pvseg`` and ``seg``, each row a dict of field name to string
    (lvm fullreport(8); sizes in bytes as digit strings, counts as digit
    strings). A VG that does not exist is None: lvm exits 5 and says
    ``Volume group "VG" not found`` (LC_ALL=C), on stderr or in the JSON
    command log (see :func:`run`).

    Raises ValidationError for a bad VG name (before any command runs) and
    CommandError for any other failure of lvm.
    """
    validate.volume_group(vg)
    try:
        out = run(["lvm", "fullreport", "--reportformat", "json", "--units", "b", "--nosuffix", "--", vg])
    except CommandError as exc:
        if 'Volume group "%s" not found' % vg in exc.stderr:
            return None
        raise
    reports = json.loads(out).get("report", [])
    return reports[0] if reports and reports[0].get("vg") else None


def report_lv(report, name):
    """Return the ``lv`` row named *name* of a :func:`fullreport` *report*, or None."""
    return next((lv for lv in report.get("lv", []) if lv["lv_name"] == name), None)


def check_pool_args(thin_pool, slots, tag):
    """Raise ValidationError unless *slots* is an int >= 1 and *thin_pool* (if set) and *tag* are valid names."""
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise ValidationError("slots must be a whole number >= 1, got %r" % (slots,))
    if thin_pool:
        validate.lv_name(thin_pool)
    validate.lv_tag(tag)


def pool_facts(report, thin_pool="", slots=1, tag=TAG):
    """Return the job space of one volume group and one slot's share of it.

    *report*: the ``report[0]`` dict of ``lvm fullreport --reportformat
    json --units b --nosuffix VG`` (:func:`fullreport`). *thin_pool*: the
    thin pool's LV name, or ``""`` for thick job LVs. *slots*: int >= 1.
    *tag*: the tag that marks our job LVs.

    Returns a dict; counts are extents of the VG, sizes bytes:

    * ``volume_group``: str, the VG's name;
    * ``extent_size``: int, bytes per extent;
    * ``free_extents``: int, the VG's free extents (``vg_free_count``);
    * ``job_extents``: int, the extents our tagged LVs hold (their sizes
      summed, then divided by the extent size);
    * ``thin_pool_extents``: int, the thin pool's data size in extents, or
      None when *thin_pool* is ``""``;
    * ``available_extents``: int, the job space: thick, ``free_extents +
      job_extents`` (so the answer does not shrink while jobs run); thin,
      ``thin_pool_extents``;
    * ``slot_extents``: int >= 1, ``available_extents // slots``: rounded
      down, so the slots together never need more than there is (the fair
      slot share of docs/design.md, node config ``slot_extents``);
    * ``job_lvs``: sorted list of the names of the LVs that carry *tag*.

    Pure: reads nothing but its arguments. Raises ValidationError if *slots*
    is not an int >= 1 or *thin_pool* or *tag* is not a valid name,
    JobrootError if *thin_pool* is not an LV of the VG, and NoFreeSlotError
    if a slot would be smaller than one extent.
    """
    check_pool_args(thin_pool, slots, tag)
    vg = report["vg"][0]
    extent_size = int(vg["vg_extent_size"])
    ours = [lv for lv in report.get("lv", []) if tag in lv["lv_tags"].split(",")]
    facts = {"volume_group": vg["vg_name"], "extent_size": extent_size,
             "free_extents": int(vg["vg_free_count"]),
             "job_extents": sum(int(lv["lv_size"]) for lv in ours) // extent_size,
             "thin_pool_extents": None, "job_lvs": sorted(lv["lv_name"] for lv in ours)}
    if thin_pool:
        pool = report_lv(report, thin_pool)
        if pool is None:
            raise JobrootError("thin pool %s/%s not found" % (vg["vg_name"], thin_pool))
        facts["thin_pool_extents"] = int(pool["lv_size"]) // extent_size
        facts["available_extents"] = facts["thin_pool_extents"]
    else:
        facts["available_extents"] = facts["free_extents"] + facts["job_extents"]
    facts["slot_extents"] = facts["available_extents"] // slots
    if facts["slot_extents"] < 1:
        raise NoFreeSlotError("volume group %s has %d extents for jobs: too few for %d slots"
                              % (vg["vg_name"], facts["available_extents"], slots))
    return facts


def slot_extents(vg, slots, thin_pool="", tag=TAG):
    """Return the size of one slot of *vg* in extents (int >= 1), from one :func:`fullreport`.

    The decision is :func:`pool_facts`, the same one the jobvol_pool role
    makes through the pool_info module. Raises ValidationError if *slots* <
    1 or a name is bad (before any command runs), JobrootError if *vg* or
    *thin_pool* does not exist, and NoFreeSlotError if a slot would be
    smaller than one extent.
    """
    check_pool_args(thin_pool, slots, tag)
    report = fullreport(vg)
    if report is None:
        raise JobrootError("volume group %s not found" % vg)
    return pool_facts(report, thin_pool, slots, tag)["slot_extents"]


def create_cmd(vg, lv, extents, extent_size, thin_pool="", tag=TAG):
    """Return the lvcreate argument vector for a job LV of *extents* extents.

    Thick: ``-l EXTENTS``. Thin: ``-V <bytes>b -T vg/pool`` (a thin LV's
    virtual size is given in bytes, a whole number of extents).
    """
    cmd = ["lvcreate", "--yes", "--autobackup", "n", "--addtag", tag, "--name", lv]
    if thin_pool:
        validate.lv_name(thin_pool)
        cmd += ["--virtualsize", "%db" % (extents * extent_size), "--thinpool", "%s/%s" % (vg, thin_pool)]
    else:
        cmd += ["--extents", str(extents), "--", vg]
    return cmd


def mkfs_cmd(fstype, device):
    """Return the mkfs argument vector for a fresh job file system on *device*.

    ext4: no journal (a job's scratch is thrown away, never recovered), lazy
    inode-table init, no discard, no reserved blocks. xfs: no discard (-K).
    Both are the fastest safe options; mkfs time stays constant with size.
    """
    if fstype == "ext4":
        return ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0",
                "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", device]
    if fstype == "xfs":
        return ["mkfs.xfs", "-q", "-f", "-K", device]
    raise ValidationError("file system type %r is not ext4 or xfs" % (fstype,))


def mounted_at(vg, lv, mountpoint, table=None, encrypt=None):
    """Return True if *vg*/*lv* is mounted at *mountpoint* (read from mountinfo).

    *encrypt*: None counts the LV itself and its crypt mapping
    (:func:`crypt_name`) alike; True only the mapping; False only the LV.
    """
    table = mountinfo.read() if table is None else table
    top = mountinfo.top_at(table, mountpoint)
    sources = set()
    if encrypt is not True:
        sources |= {dm_path(vg, lv), "/dev/%s/%s" % (vg, lv)}
    if encrypt is not False and _crypt_name_or_none(vg, lv):
        sources.add(dmcrypt.device(crypt_name(vg, lv)))
    return top is not None and top.source in sources


def plan(vg, lv, existing, info, extents, thin_pool="", tag=TAG, max_lvs=None, check_space=True):
    """Decide how job LV *vg*/*lv* is had; return ``(extents, create)``.

    The one place for these decisions: :func:`create` and the lvm_jobvol
    module (also in check mode) both call it. *existing*: ``{name:
    list_lvs dict}`` of *vg*. *info*: the VG dict of :func:`vg_report`. *extents*:
    the wanted size in extents (int), or a callable returning it, called
    only when the LV is new (a slot's share costs LVM reports).

    An existing LV keeps its size (never resized): ``(its extents,
    False)``; one without *tag* is not ours and raises JobrootError. A new
    one gives ``(extents, True)``; with *check_space*, it raises
    NoFreeSlotError first when *max_lvs* LVs with *tag* already exist (one
    per slot) or a thick LV needs more than the VG's free extents.
    """
    if lv in existing:
        if tag not in existing[lv]["tags"]:
            raise JobrootError("logical volume %s/%s exists without tag %s: not ours, "
                               "refusing to touch it" % (vg, lv, tag))
        return existing[lv]["size_bytes"] // info["extent_size"], False
    extents = extents() if callable(extents) else extents
    if check_space:
        taken = [x for x in existing.values() if tag in x["tags"]]
        if max_lvs is not None and len(taken) >= max_lvs:
            raise NoFreeSlotError("no free slot: %d of %d job volumes in %s are in use (%s)" % (
                len(taken), max_lvs, vg, ", ".join(sorted(x["name"] for x in taken))))
        if not thin_pool and extents > info["free_count"]:
            raise NoFreeSlotError("not enough space: volume group %s has %d free extents, "
                                  "the job needs %d" % (vg, info["free_count"], extents))
    return extents, True


def create(vg, lv, extents, mountpoint, fstype="ext4", thin_pool="", tag=TAG,
           max_lvs=None, lock=None, encrypt=False):
    """Create, format and mount a job LV; return ``{"extents", "size_bytes", "created", "encrypted"}``.

    *vg*, *lv*, *thin_pool*: LVM names. *extents*: size in extents.
    *mountpoint*: clean absolute path; created (mode 0755) if missing.
    *max_lvs*: if set, refuse with NoFreeSlotError when that many LVs with
    *tag* already exist (one per slot). *lock*: a context manager held
    while slots are counted and the LV is created (the node lock).
    *encrypt*: put the file system on a dm-crypt plain mapping over the LV,
    with a fresh random key that is never on disk (module dmcrypt.py). A
    mapping left open over the LV by an earlier run is closed first, either
    way, so its key and data are gone before the new file system is made.

    Idempotent: an existing LV with *tag* that is mounted at *mountpoint* is
    left as it is. One that is not mounted was left by a crashed prologue or
    a failed epilogue: it gets a fresh file system before it is mounted, so a
    requeued job never sees an earlier run's data. An existing LV is never
    resized. An existing LV without *tag* is refused (not ours). Thick LVs are checked
    against the VG's free extents first, so an oversized request fails
    before anything is created. If mkfs or mount fails, the LV this call
    created is removed again.

    LVM calls: one report (:func:`vg_report`, VG free extents and LVs
    together), then ``lvcreate`` for a new LV. Raises ValidationError for a
    bad name or path (before any command runs), NoFreeSlotError (see
    :func:`plan`), JobrootError for an LV that is not ours or a missing VG,
    CommandError if an LVM command, cryptsetup or mkfs fails, and OSError if
    the mount fails.
    """
    validate.volume_group(vg)
    validate.lv_name(lv)
    if thin_pool:
        validate.lv_name(thin_pool)
    validate.managed_path(mountpoint, "mount point")
    device = fs_device(vg, lv, encrypt)
    mkfs = mkfs_cmd(fstype, device)
    created = False
    with lock if lock is not None else _nolock():
        info, existing = vg_report(vg)
        extents, new = plan(vg, lv, existing, info, extents, thin_pool, tag, max_lvs)
        if new:
            run(create_cmd(vg, lv, extents, info["extent_size"], thin_pool, tag))
            created = True
    try:
        if not mounted_at(vg, lv, mountpoint, encrypt=encrypt):
            faults.checkpoint("prologue.volume-created")
            stale = _crypt_name_or_none(vg, lv)
            if stale:
                dmcrypt.close(stale)  # an earlier run's mapping: its key and data go first
            if encrypt:
                dmcrypt.open_plain(dm_path(vg, lv), crypt_name(vg, lv))
                faults.checkpoint("prologue.volume-opened")
            run(mkfs)
            faults.checkpoint("prologue.volume-formatted")
            if not os.path.isdir(mountpoint):
                os.makedirs(mountpoint, mode=0o755, exist_ok=True)
            mounts.mount(device, mountpoint, fstype, MOUNT_FLAGS)
    except Exception:
        if created:
            remove(vg, lv, mountpoint)
        elif encrypt and not mounted_at(vg, lv, mountpoint):
            try:
                dmcrypt.close(crypt_name(vg, lv))  # never leave a key behind for a failed start
            except JobrootError:
                pass  # the error to report is the one raised; gc closes it later
        raise
    return {"extents": extents, "size_bytes": extents * info["extent_size"], "created": created,
            "encrypted": bool(encrypt)}


class _nolock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _removed(out, vg, lv):
    # lvremove prints 'Logical volume "LV" successfully removed.' (lvm2
    # 2.03.16, Debian bookworm) or with "VG/LV" (display_lvname, newer lvm2)
    # on standard output; LC_ALL=C keeps it in English.
    return re.search(r'Logical volume "(%s/)?%s" successfully removed' % (re.escape(vg), re.escape(lv)),
                     out) is not None


def remove(vg, lv, mountpoint=None, tag=TAG, lazy=False):
    """Unmount and remove job LV *vg*/*lv*; return True if anything changed.

    If *mountpoint* is given: unmount the LV there (lazily if *lazy* and it is
    busy) and remove the mount point with ``rmdir`` once empty (it is empty
    once the LV is unmounted, since it was made only to hold the mount).
    Then, if the LV's crypt mapping (:func:`crypt_name`) is open, it is
    closed (``cryptsetup close``: the key is gone) before the LV is removed;
    whether it is open is read from sysfs, so this works whatever the node
    config says now. An
    LV that does not exist is fine (already gone); one without *tag* is
    refused. Never deletes files: the data goes with the LV.

    One LVM call when the LV is there and ours (issue 18): ``lvremove
    --select 'lv_name="LV" && lv_tags={"TAG"}' -- VG``, so lvm itself
    removes only an LV of this name that carries *tag* (``{}`` is subset
    matching, lvmreport(7), "Selection"), and only in *vg* (the positional
    VG limits the selection). A selection that matches nothing exits 0 and
    prints nothing (lvm2 2.03.16, tried on a loop-device VG), so success is
    read from lvremove's "successfully removed" line; without it a second
    call (``lvs``) tells "already gone" (no change) from "there but not
    ours".

    Raises ValidationError for a bad VG, LV or tag name or mount point
    (before any command runs), JobrootError if the LV is still mounted after
    the unmount, exists without *tag* (not ours, left in place), or is
    still there after lvremove, and CommandError if an LVM command or
    cryptsetup fails (the VG does not exist, the LV or mapping is open).
    """
    validate.volume_group(vg)
    validate.lv_name(lv)
    validate.lv_tag(tag)
    name = _crypt_name_or_none(vg, lv)
    changed = False
    if mountpoint:
        validate.managed_path(mountpoint, "mount point")
        if mounted_at(vg, lv, mountpoint):
            changed |= mounts.umount(mountpoint, lazy=lazy)
            if mounted_at(vg, lv, mountpoint):
                raise JobrootError("%s is still mounted on %s" % (lv, mountpoint))
    if name and name in dmcrypt.mappings():
        faults.checkpoint("epilogue.volume-unmounted")
        changed |= dmcrypt.close(name)
        faults.checkpoint("epilogue.volume-closed")
    out = run(["lvremove", "--yes", "--autobackup", "n",
               "--select", 'lv_name="%s" && lv_tags={"%s"}' % (lv, tag), "--", vg])
    if _removed(out, vg, lv):
        changed = True
    else:
        left = {x["name"]: x for x in list_lvs(vg)}.get(lv)
        if left is not None and tag not in left["tags"]:
            raise JobrootError("logical volume %s/%s has no tag %s: not ours, refusing to remove it"
                               % (vg, lv, tag))
        if left is not None:
            raise JobrootError("logical volume %s/%s is still there after lvremove: %s"
                               % (vg, lv, out.strip() or "lvm said nothing"))
    if mountpoint and os.path.isdir(mountpoint) and not os.path.ismount(mountpoint):
        try:
            os.rmdir(mountpoint)
            changed = True
        except OSError:
            pass  # not empty: something else lives there; leave it
    return changed
