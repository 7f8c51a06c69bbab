# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real LVM state in the test guest after the jobvol scenario's converge.

The first tests read what converge.yml built (pools from the jobvol_pool role,
one job volume per job in vars/jobvol.yml) and assert it with lvs, findmnt, blkid
and blockdev.  The later tests drive hpc.jobroot.lvm_jobvol directly (an
ad-hoc Ansible call per step) through the
edges: the N+1th slot, an oversized request, a stale volume after a
simulated reboot, and finally the removal of every job volume.

pytest runs the tests of this file in the order they are written; the later
ones depend on that order (the removal test comes last).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

import pytest
import yaml

VARS = yaml.safe_load((pathlib.Path(__file__).resolve().parent.parent / "vars" / "jobvol.yml").read_text())
TAG = "hpc_jobroot"
ROOT_BASE = VARS["jobvol_root_base"]
THICK, THIN, LOOP = VARS["jobvol_thick"], VARS["jobvol_thin"], VARS["jobvol_loop"]
POOLS = {"thick": THICK, "thin": THIN, "loop": LOOP}
JOBS = [(name, job) for name, pool in POOLS.items() for job in pool["jobs"]]


# --- helpers: read the guest's real state ------------------------------------

def run_json(host, *cmd):
    """Run *cmd* in the guest (must succeed) and parse its JSON output."""
    out = host.check_output(" ".join(_quote(c) for c in cmd))
    return json.loads(out)


def _quote(arg):
    return "'" + str(arg).replace("'", "'\\''") + "'"


def vg_report(host, vg):
    """vgs for *vg*: extent_size (bytes), extent_count, free_count as ints."""
    row = run_json(host, "vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                   "-o", "vg_name,vg_extent_size,vg_extent_count,vg_free_count", vg)["report"][0]["vg"][0]
    return {"extent_size": int(row["vg_extent_size"]), "extent_count": int(row["vg_extent_count"]),
            "free_count": int(row["vg_free_count"])}


def lv_report(host, vg):
    """lvs for *vg*: {lv_name: {size (bytes), tags (list), segtype, pool, active, when_full}}."""
    rows = run_json(host, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                    "-o", "lv_name,lv_size,lv_tags,segtype,pool_lv,lv_active,lv_when_full", vg)["report"][0]["lv"]
    return {r["lv_name"]: {"size": int(r["lv_size"]), "tags": [t for t in r["lv_tags"].split(",") if t],
                           "segtype": r["segtype"], "pool": r["pool_lv"], "active": r["lv_active"],
                           "when_full": r["lv_when_full"]} for r in rows}


def pool_config(host, pool):
    f = host.file(pool["config_dir"] + "/pool.json")
    assert f.exists, f"{f.path} missing"
    return json.loads(f.content_string)


def mounts_under(host, base):
    """Every mount point at or below *base*, from findmnt (the kernel's table)."""
    out = host.check_output("findmnt -rn -o TARGET")
    targets = [t.replace("\\x20", " ") for t in out.splitlines()]
    return [t for t in targets if t == base or t.startswith(base + "/")]


def dm_path(vg, lv):
    """/dev/mapper name: dashes inside VG and LV names are doubled."""
    return "/dev/mapper/%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))


def call_module(host, module, args, check=False):
    """Run Ansible *module* with *args* (a dict) on the guest, ad hoc; return (rc, result).

    Not testinfra's host.ansible: on ansible-core 2.19 a failed module's
    result (as ``ansible --tree`` writes it) has no ``failed`` key, so
    host.ansible never raises.  The exit status of ``ansible`` is what tells:
    0 ok, 2 the module failed.
    """
    runner = host.backend.ansible_runner
    with tempfile.TemporaryDirectory() as tree:
        cmd = ["ansible", "-i", runner.inventory_file, host.backend.host, "-m", module,
               "-a", json.dumps(args), "--tree", tree]
        if check:
            cmd.append("--check")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        files = os.listdir(tree)
        assert files, f"no result from {cmd}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        with open(os.path.join(tree, files[0]), encoding="utf-8") as f:
            return proc.returncode, json.load(f)


def jobvol(host, check=False, **args):
    """Call hpc.jobroot.lvm_jobvol in the guest; it must succeed; return its result."""
    rc, result = call_module(host, "hpc.jobroot.lvm_jobvol", args, check=check)
    assert rc == 0, f"lvm_jobvol {args} failed: {result}"
    return result


def jobvol_fails(host, **args):
    """Call lvm_jobvol expecting it to fail; return the failure's message."""
    rc, result = call_module(host, "hpc.jobroot.lvm_jobvol", args)
    assert rc == 2, f"lvm_jobvol {args} did not fail: rc {rc}, {result}"
    return result.get("msg", "")


def assert_nothing_left(host, vg, key):
    assert f"jobroot_{key}" not in lv_report(host, vg)
    assert mounts_under(host, f"{ROOT_BASE}/{key}") == []
    assert not host.file(f"{ROOT_BASE}/{key}").exists


def expected_slot_extents(host, pool):
    """What the role should have computed, from the guest's LVM state now."""
    vg = vg_report(host, pool["volume_group"])
    lvs = lv_report(host, pool["volume_group"])
    if pool.get("thin_pool"):
        space = lvs[pool["thin_pool"]]["size"] // vg["extent_size"]
    else:
        space = vg["free_count"] + sum(lv["size"] for lv in lvs.values() if TAG in lv["tags"]) // vg["extent_size"]
    return space // pool["slots"]


# --- what converge built --------------------------------------------------------

@pytest.mark.parametrize("name", list(POOLS))
def test_pool_json(host, name):
    pool = POOLS[name]
    f = host.file(pool["config_dir"] + "/pool.json")
    assert f.user == "root" and f.group == "root"
    assert f.mode == 0o644
    cfg = pool_config(host, pool)
    vg = vg_report(host, pool["volume_group"])
    assert cfg == {
        "volume_group": pool["volume_group"],
        "thin_pool": pool.get("thin_pool", ""),
        "slots": pool["slots"],
        "slot_extents": expected_slot_extents(host, pool),
        "extent_size": vg["extent_size"],
        "fstype": "ext4",
        "root_base": ROOT_BASE,
    }
    # never oversubscribed
    assert cfg["slot_extents"] * cfg["slots"] <= vg["extent_count"]


def test_root_base(host):
    d = host.file(ROOT_BASE)
    assert d.is_directory and d.user == "root" and d.mode == 0o755


def test_thin_pool_errors_when_full(host):
    lvs = lv_report(host, THIN["volume_group"])
    assert lvs[THIN["thin_pool"]]["segtype"] == "thin-pool"
    assert lvs[THIN["thin_pool"]]["when_full"] == "error"


def test_system_untouched(host):
    # the guest's root is a plain ext4 on the virtio root disk, not LVM
    root = run_json(host, "findmnt", "-J", "-o", "SOURCE,FSTYPE", "/")["filesystems"][0]
    assert root["fstype"] == "ext4" and not root["source"].startswith("/dev/mapper/")


@pytest.mark.parametrize(("name", "job"), JOBS, ids=[f"{n}-{j['key']}" for n, j in JOBS])
def test_job_volume(host, name, job):
    pool = POOLS[name]
    vg = pool["volume_group"]
    cfg = pool_config(host, pool)
    lv_name = f"jobroot_{job['key']}"
    lv = lv_report(host, vg)[lv_name]
    slot_bytes = cfg["slot_extents"] * cfg["extent_size"]
    # lvs: our tag, one slot exactly, thick or thin as configured
    assert TAG in lv["tags"]
    assert lv["size"] == slot_bytes
    if pool.get("thin_pool"):
        assert lv["segtype"] == "thin" and lv["pool"] == pool["thin_pool"]
    else:
        assert lv["segtype"] == "linear" and lv["pool"] == ""
    device = dm_path(vg, lv_name)
    assert int(host.check_output("blockdev --getsize64 %s", device)) == slot_bytes
    # the file system and its mount
    assert host.check_output("blkid -p -o value -s TYPE %s", device) == job["fstype"]
    target = f"{ROOT_BASE}/{job['key']}"
    mnt = run_json(host, "findmnt", "-J", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "--mountpoint", target)
    (entry,) = mnt["filesystems"]
    assert entry["source"] == device
    assert entry["fstype"] == job["fstype"]
    options = entry["options"].split(",")
    for flag in ("noatime", "nodev", "nosuid", "rw"):
        assert flag in options, f"{flag} not in {options}"
    # the whole slot is usable: the file system spans the volume (minus its own metadata)
    size = int(host.check_output("df -B1 --output=size %s | tail -n1", target))
    assert 0.9 * slot_bytes < size <= slot_bytes


def test_thick_free_space_is_one_slot(host):
    # 2 of 3 slots are taken: what is left is the third slot, plus the
    # remainder of the division (fewer extents than there are slots)
    cfg = pool_config(host, THICK)
    vg = vg_report(host, THICK["volume_group"])
    used = len(THICK["jobs"])
    assert used == cfg["slots"] - 1
    space = vg["free_count"] + used * cfg["slot_extents"]
    assert vg["free_count"] - cfg["slot_extents"] == space % cfg["slots"]
    assert 0 <= vg["free_count"] - cfg["slot_extents"] < cfg["slots"]


@pytest.mark.parametrize("name", list(POOLS))
def test_pool_info_reads_what_lvs_shows(host, name):
    """hpc.jobroot.pool_info against real job volumes and a real thin pool (the host has no device-mapper)."""
    pool = POOLS[name]
    vg_name = pool["volume_group"]
    args = {"volume_group": vg_name, "thin_pool": pool.get("thin_pool", ""), "slots": pool["slots"]}
    rc, result = call_module(host, "hpc.jobroot.pool_info", args, check=True)
    assert rc == 0 and result["changed"] is False, result
    vg = vg_report(host, vg_name)
    lvs = lv_report(host, vg_name)
    ours = {n: lv for n, lv in lvs.items() if TAG in lv["tags"]}
    assert result["exists"] is True and result["thin_pool_exists"] is bool(pool.get("thin_pool"))
    assert result["extent_size"] == vg["extent_size"]
    assert result["free_extents"] == vg["free_count"]
    assert result["job_lvs"] == sorted(ours) and len(ours) == len(pool["jobs"])
    assert result["job_extents"] == sum(lv["size"] for lv in ours.values()) // vg["extent_size"]
    if pool.get("thin_pool"):
        assert result["thin_pool_extents"] == lvs[pool["thin_pool"]]["size"] // vg["extent_size"]
    else:
        assert result["thin_pool_extents"] is None
    # the role wrote pool.json from the same facts before any job ran
    assert result["slot_extents"] == pool_config(host, pool)["slot_extents"] == expected_slot_extents(host, pool)
    rc, missing = call_module(host, "hpc.jobroot.pool_info", dict(args, volume_group="jobroot-no-such-vg"))
    assert rc == 0 and missing["exists"] is False and "slot_extents" not in missing, missing


def test_loop_backing_file(host):
    f = host.file(LOOP["backing_file"])
    assert f.is_file and f.mode == 0o600 and f.user == "root"
    # sparse: far fewer blocks than its size
    st_blocks = int(host.check_output("stat -c %%b %s", LOOP["backing_file"]))
    assert st_blocks * 512 < f.size // 4
    devs = host.check_output("losetup -n -O NAME,DIO -j %s", LOOP["backing_file"]).split()
    assert len(devs) == 2 and devs[0].startswith("/dev/loop") and devs[1] == "1"
    pvs = run_json(host, "pvs", "--reportformat", "json", "-o", "pv_name,vg_name")["report"][0]["pv"]
    assert {"pv_name": devs[0], "vg_name": LOOP["volume_group"]} in pvs
    unit = host.service("hpc-jobroot-lvm-backing")
    assert unit.is_enabled


# --- lvm_jobvol at its edges ---------------------------------------------------------

def test_rerun_changes_nothing(host):
    job = THICK["jobs"][0]
    result = jobvol(host, job_id=job["job_id"], volume_group=THICK["volume_group"],
                    slots=THICK["slots"], fstype=job["fstype"], root_base=ROOT_BASE)
    assert result["changed"] is False
    assert result["lv_name"] == f"jobroot_{job['key']}"
    assert result["mountpoint"] == f"{ROOT_BASE}/{job['key']}"


def test_check_mode_creates_nothing(host):
    result = jobvol(host, check=True, job_id="106", volume_group=THICK["volume_group"],
                    slots=THICK["slots"], root_base=ROOT_BASE)
    assert result["changed"] is True
    assert_nothing_left(host, THICK["volume_group"], "106")


def test_oversized_request_fails_cleanly(host):
    vg = THICK["volume_group"]
    before = vg_report(host, vg)
    lvs_before = set(lv_report(host, vg))
    msg = jobvol_fails(host, job_id="105", volume_group=vg, size_mib=1024 * 1024, root_base=ROOT_BASE)
    assert "free" in msg or "slot" in msg, msg
    assert_nothing_left(host, vg, "105")
    assert vg_report(host, vg) == before
    assert set(lv_report(host, vg)) == lvs_before


@pytest.mark.parametrize("name", ["thick", "thin"])
def test_slot_n_plus_one(host, name):
    pool = POOLS[name]
    vg = pool["volume_group"]
    cfg = pool_config(host, pool)
    extra = []
    # fill the remaining slots, each one slot in size
    for i in range(pool["slots"] - len(pool["jobs"])):
        key = str((1000 if name == "thick" else 2000) + i)
        result = jobvol(host, job_id=key, volume_group=vg, thin_pool=pool.get("thin_pool", ""),
                        slots=pool["slots"], root_base=ROOT_BASE)
        assert result["changed"] is True and result["extents"] == cfg["slot_extents"]
        extra.append(key)
    try:
        msg = jobvol_fails(host, job_id="999", volume_group=vg, thin_pool=pool.get("thin_pool", ""),
                           slots=pool["slots"], root_base=ROOT_BASE)
        assert "no free slot" in msg
        assert_nothing_left(host, vg, "999")
    finally:
        for key in extra:
            jobvol(host, job_id=key, volume_group=vg, state="absent", root_base=ROOT_BASE)
    for key in extra:
        assert_nothing_left(host, vg, key)


def test_stale_volume_after_reboot(host):
    """A job volume left by a crashed job: tagged, active, not mounted.

    Made the way a node crash makes it: the loop-backed VG is unmounted,
    deactivated and its loop device detached (what a power cut leaves), then
    the boot unit attaches the backing file again and LVM autoactivates the
    VG from the udev event.  Documented behaviour of lvm_jobvol on such a
    volume: state=absent removes it (and the empty mount point), reporting a
    change; a second state=absent changes nothing.
    """
    vg = LOOP["volume_group"]
    job = LOOP["jobs"][0]
    target = f"{ROOT_BASE}/{job['key']}"
    lv_name = f"jobroot_{job['key']}"
    host.check_output("umount %s && vgchange -an %s", target, vg)
    dev = host.check_output("losetup -n -O NAME -j %s", LOOP["backing_file"])
    host.check_output("losetup -d %s && udevadm settle", dev)
    assert host.run("vgs %s", vg).rc != 0          # gone with its PV
    # "boot": the unit attaches the file, udev + LVM activate the VG
    host.check_output("systemctl restart hpc-jobroot-lvm-backing && udevadm settle")
    lvs = {}
    for dummy in range(20):
        lvs = lv_report(host, vg) if host.run("vgs %s", vg).rc == 0 else {}
        if lvs.get(lv_name, {}).get("active") == "active":
            break
        host.run("sleep 0.5")
    assert lvs[lv_name]["active"] == "active", "VG not autoactivated after the loop device came back"
    assert TAG in lvs[lv_name]["tags"]
    assert mounts_under(host, target) == []

    result = jobvol(host, job_id=job["job_id"], volume_group=vg, state="absent", root_base=ROOT_BASE)
    assert result["changed"] is True
    assert_nothing_left(host, vg, job["key"])
    again = jobvol(host, job_id=job["job_id"], volume_group=vg, state="absent", root_base=ROOT_BASE)
    assert again["changed"] is False


# --- encrypted job volumes (issue 17) ------------------------------------------------

CRYPT = VARS["jobvol_crypt"]
#: (kind, encrypted) -> job id; the unencrypted ones are the positive controls
CRYPT_JOBS = {("thick", True): "701", ("thick", False): "702", ("thin", True): "703", ("thin", False): "704"}
WATCHES = {"/root/crypt-watch-tree": ["-r", "/run", "/dev/shm", "/tmp"], "/root/crypt-watch-top": ["/"]}

# Run in the guest: read the keys of the named mappings from the kernel
# (dmsetup table --showkeys, so no key is on any command line), then look for
# them - raw, hex and HEX - in every process's cmdline and environ and in every
# file the inotify watches saw written.  Then the positive control: a process
# with the key in its argv and a file with it in /dev/shm must be found.
SCAN = r"""
import json, os, subprocess, sys, time
keys = [subprocess.run(["dmsetup", "table", "--showkeys", n], capture_output=True, text=True,
                       check=True).stdout.split()[4] for n in sys.argv[2:]]
spellings = [s for k in keys for s in (bytes.fromhex(k), k.encode(), k.upper().encode())]
def written():
    return sorted({line.strip() for log in sys.argv[1].split(",") for line in open(log) if line.strip()})
def scan(skip=()):
    hits = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in skip:
            for what in ("cmdline", "environ"):
                try:
                    with open("/proc/%s/%s" % (pid, what), "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if any(s in data for s in spellings):
                    hits.append("/proc/%s/%s" % (pid, what))
    for path in written():
        try:
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    if any(s in f.read() for s in spellings):
                        hits.append(path)
        except OSError:
            pass
    return sorted(hits)
clean, files = scan({os.getpid()}), written()
control = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", keys[0]])
with open("/dev/shm/jobroot-crypt-control", "wb") as f:
    f.write(bytes.fromhex(keys[0]))
time.sleep(1)
found = scan({os.getpid()})
control.kill()
os.unlink("/dev/shm/jobroot-crypt-control")
print(json.dumps({"key_hex_lengths": [len(k) for k in keys], "clean": clean, "written": files,
                  "control": found, "control_pid": control.pid}))
"""


def crypt_name(vg, lv):
    """The mapping name lvm_jobvol gives an encrypted LV: the prefix and the LV's dm name."""
    return "jobroot_crypt-" + dm_path(vg, lv)[len("/dev/mapper/"):]


def run_play(host, tasks):
    """Run *tasks* (a list of task dicts) as one play on the guest; return (rc, output).

    One ansible-playbook run instead of one ad-hoc call per step: each
    Ansible start costs seconds in the TCG guest.
    """
    runner = host.backend.ansible_runner
    play = [{"name": "encrypted job volumes", "hosts": host.backend.host, "gather_facts": False,
             "tasks": tasks}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as handle:
        yaml.safe_dump(play, handle)
        handle.flush()
        proc = subprocess.run(["ansible-playbook", "-i", runner.inventory_file, handle.name],
                              capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def crypt_task(job_id, kind, encrypt, state="present", **extra):
    args = {"job_id": job_id, "volume_group": CRYPT["volume_group"], "root_base": ROOT_BASE,
            "state": state, "encrypt": encrypt}
    if state == "present":
        args["size_mib"] = CRYPT["size_mib"]
        if kind == "thin":
            args["thin_pool"] = CRYPT["thin_pool"]
    return dict({"name": "%s %s %s%s" % (state, kind, job_id, " encrypted" if encrypt else ""),
                 "hpc.jobroot.lvm_jobvol": args}, **extra)


# Run in the guest while the volumes exist (one call: each guest command costs
# seconds under TCG): write each job's marker 2000 times to a file on its
# volume and sync; report each volume's mount source, dm table target and
# cipher, whether blkid finds a file system on the LV itself, and the PV
# byte ranges of the extents that hold its data (the LV's own for thick, the
# pool's _tdata for thin; lvs --segments seg_pe_ranges, pvs pe_start).
# Arguments: VG POOL ROOT_BASE then KEY:KIND:ENCRYPTED:MARKER per job.
INSPECT = r"""
import json, os, subprocess, sys
vg, pool, base = sys.argv[1:4]
def out(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
extent = int(out("vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size", vg))
res = {}
for arg in sys.argv[4:]:
    key, kind, enc, marker = arg.split(":")
    with open(os.path.join(base, key, "marker"), "w") as f:
        f.write((marker + "\n") * 2000)
    lv = "jobroot_" + key
    name = "jobroot_crypt-%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))
    ranges = []
    for part in out("lvs", "-a", "--noheadings", "--segments", "-o", "seg_pe_ranges",
                    "%s/%s" % (vg, lv if kind == "thick" else pool + "_tdata")).split():
        pv, span = part.rsplit(":", 1)
        first, last = (int(x) for x in span.split("-"))
        pe_start = int(out("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", pv))
        ranges.append([pv, pe_start + first * extent, (last - first + 1) * extent])
    res[key] = {"source": out("findmnt", "-n", "-o", "SOURCE", "--mountpoint", os.path.join(base, key)),
                "table": out("dmsetup", "table", name).split()[2:4] if enc == "1" else None,
                "blkid_rc": subprocess.run(["blkid", "-p", "/dev/%s/%s" % (vg, lv)],
                                           capture_output=True, check=False).returncode,
                "ranges": ranges}
os.sync()
print(json.dumps(res))
"""

# Run in the guest after the volumes are gone: count the lines holding each
# marker in its byte ranges of the PVs, read with O_DIRECT (not the page
# cache).  Arguments: one JSON list of [marker, [[pv, offset, length], ...]].
COUNT = r"""
import json, mmap, os, sys
counts = []
for marker, ranges in json.loads(sys.argv[1]):
    n = 0
    for pv, offset, length in ranges:
        fd = os.open(pv, os.O_RDONLY | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, length)
            os.preadv(fd, [buf], offset)
            n += buf.read().count(marker.encode() + b"\n")
        finally:
            os.close(fd)
    counts.append(n)
print(json.dumps(counts))
"""


@pytest.fixture(scope="module")
def crypt_vg(host):
    """A small VG on the spare disk with a small thin pool; removed again whatever happens."""
    vg = CRYPT["volume_group"]
    host.check_output("pvcreate -q %s && vgcreate -q %s %s && lvcreate -q --type thin-pool -L %sM -n %s %s",
                      VARS["jobvol_spare_pv"], vg, VARS["jobvol_spare_pv"], str(CRYPT["thin_pool_mib"]),
                      CRYPT["thin_pool"], vg)
    yield vg
    host.run("for m in $(findmnt -rn -o TARGET | grep '^%s/7'); do umount $m; done; "
             "for d in $(dmsetup ls --target crypt | awk '/^jobroot_crypt-jobcrypt-/ {print $1}'); do "
             "cryptsetup close $d; done; vgremove -q -ff %s; pvremove -q %s; rmdir %s/7* 2>/dev/null; true",
             ROOT_BASE, vg, VARS["jobvol_spare_pv"], ROOT_BASE)


def test_encrypted_volumes_keep_no_plain_text_and_no_key_anywhere(host, crypt_vg):
    """Thick and thin: the marker a job wrote is not in plain text on the extents it held, and
    no file and no process held the key while the volume was open.

    Positive controls: the unencrypted volumes' markers are found on their extents by the same
    check, and a planted process and /dev/shm file holding the key are found by the same scan.
    """
    vg = crypt_vg
    markers = {job: os.urandom(24).hex() for job in CRYPT_JOBS.values()}
    # names of our own, no quoting needed; inotifywait says "Watches established." on stderr
    start = " ".join("rm -f %s %s.err; setsid inotifywait -m -e close_write,moved_to --format '%%w%%f' -o %s %s "
                     "</dev/null >/dev/null 2>%s.err & echo $!;" % (log, log, log, " ".join(paths), log)
                     for log, paths in WATCHES.items())
    pids = host.check_output(start + " for i in $(seq 100); do [ $(cat %s 2>/dev/null | grep -c 'Watches "
                             "established') -eq %d ] && exit 0; sleep 0.2; done; exit 1" % (
                                 " ".join(log + ".err" for log in WATCHES), len(WATCHES))).split()
    assert len(pids) == len(WATCHES) and all(p.isdigit() for p in pids), pids
    try:
        rc, out = run_play(host, [crypt_task(job, kind, enc) for (kind, enc), job in CRYPT_JOBS.items()])
        assert rc == 0, out
        seen = json.loads(host.check_output("python3 -c %s " + " ".join(
            [vg, CRYPT["thin_pool"], ROOT_BASE] + ["%s:%s:%d:%s" % (job, kind, int(enc), markers[job])
                                                   for (kind, enc), job in CRYPT_JOBS.items()]), INSPECT))
        scan = json.loads(host.check_output(
            "python3 -c %s " + ",".join(WATCHES) + " " +
            " ".join(crypt_name(vg, f"jobroot_{job}") for (kind, enc), job in CRYPT_JOBS.items() if enc), SCAN))
    finally:
        host.run("kill " + " ".join(pids))
    for (kind, enc), job in CRYPT_JOBS.items():
        lv = f"jobroot_{job}"
        got = seen[job]
        assert got["source"] == ("/dev/mapper/" + crypt_name(vg, lv) if enc else dm_path(vg, lv)), got
        if enc:
            assert got["table"] == ["crypt", "aes-xts-plain64"], got
            assert got["blkid_rc"] == 2, got  # the LV itself shows no file system, only ciphertext
        else:
            assert got["blkid_rc"] == 0, got
    assert scan["key_hex_lengths"] == [128, 128]  # 512-bit keys
    assert scan["clean"] == [], scan
    assert not [f for f in scan["written"] if f.startswith("/dev/shm/")], scan["written"]
    pid = scan["control_pid"]
    assert f"/proc/{pid}/cmdline" in scan["control"] and "/dev/shm/jobroot-crypt-control" in scan["control"]
    rc, out = run_play(host, [crypt_task(job, kind, enc, state="absent") for (kind, enc), job in CRYPT_JOBS.items()]
                       + [{"name": "no mapping of ours is left", "ansible.builtin.command": "dmsetup ls --target crypt",
                           "register": "left", "changed_when": False,
                           "failed_when": "'jobroot_crypt-' in left.stdout"}])
    assert rc == 0, out
    jobs = list(CRYPT_JOBS.items())
    counts = json.loads(host.check_output("python3 -c %s %s", COUNT, json.dumps(
        [[markers[job], seen[job]["ranges"]] for (kind, enc), job in jobs])))
    for ((kind, enc), job), found in zip(jobs, counts):
        where = seen[job]["ranges"]
        if enc:
            assert found == 0, f"{kind} encrypted job {job}: its marker is in plain text on {where}"
        else:
            # most of the 2000 lines: a thin pool's chunks need not lie in order
            assert found >= 1000, f"{kind} control job {job}: marker found {found} times on {where}: the check is blind"


#: lvm_jobvol's encrypted kill points (faults.ENCRYPTED_STEPS), thick, and the open on thin;
#: the kill points around them are the Slurm scenario's (kill-matrix.sh)
KILLS = [("thick", "prologue.volume-opened"), ("thick", "epilogue.volume-unmounted"),
         ("thick", "epilogue.volume-closed"), ("thin", "prologue.volume-opened")]


def test_a_kill_at_each_step_then_removal_leaves_no_mapping(host, crypt_vg):
    """SIGKILL lvm_jobvol at each encrypted step (faults.py), then remove as gc does.

    Removal is lvm.remove, the call gc's teardown makes: it must close the
    mapping left open and remove the LV, with nothing left in dmsetup or lvs.
    """
    tasks = []
    for i, (kind, step) in enumerate(KILLS):
        job = str(720 + i)
        phase = step.split(".")[0]
        if phase == "epilogue":
            tasks.append(crypt_task(job, kind, True))
        tasks.append(crypt_task(job, kind, True, state="present" if phase == "prologue" else "absent",
                                environment={"HPC_JOBROOT_TESTING": "1", "HPC_JOBROOT_KILL_AT": step},
                                register="killed", failed_when="(killed.rc | default(0)) not in [137, -9]"))
        tasks.append(crypt_task(job, kind, True, state="absent"))
        tasks.append({"name": "nothing left after a kill at %s (%s)" % (step, kind),
                      "ansible.builtin.shell": "dmsetup ls --target crypt; lvs --noheadings -o lv_name %s; "
                                               "findmnt -rn -o TARGET" % crypt_vg,
                      "register": "left", "changed_when": False,
                      "failed_when": "'jobroot_crypt-' in left.stdout or 'jobroot_7' in left.stdout"})
    rc, out = run_play(host, tasks)
    assert rc == 0, out
    # each check task's header once (profile_tasks, when enabled, repeats the names in its recap)
    assert out.count("TASK [nothing left after a kill at") == len(KILLS), out


def test_remove_every_job_volume(host):
    """Last: remove what converge made; no tagged LV, no mount, no mount point is left."""
    for name, job in JOBS:
        pool = POOLS[name]
        result = jobvol(host, job_id=job["job_id"], volume_group=pool["volume_group"],
                        state="absent", root_base=ROOT_BASE)
        assert result["changed"] is (name != "loop")  # the loop job went in the stale test
    for pool in POOLS.values():
        lvs = lv_report(host, pool["volume_group"])
        assert [n for n, lv in lvs.items() if TAG in lv["tags"]] == []
        if pool.get("thin_pool"):
            assert pool["thin_pool"] in lvs  # the pool itself stays
    assert mounts_under(host, ROOT_BASE) == []
    assert host.check_output("ls -A %s", ROOT_BASE) == ""
    # the thick VG has all its space back
    vg = vg_report(host, THICK["volume_group"])
    assert vg["free_count"] == vg["extent_count"]
