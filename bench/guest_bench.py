# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest side of the benchmark: runs as root INSIDE the QEMU test guest.

bench/run.py copies this file, bench/floor.sh, the library and the hook
command into the guest (the hook at /usr/libexec/hpc-jobroot/jobroot with a
``#!/usr/bin/python3 -I`` line, as the job_hooks role installs it) and runs
one subcommand per question; each prints one JSON object on stdout
(progress goes to stderr). Times are wall-clock seconds measured here, in
the guest, around each process (``time.perf_counter``), so SSH is not in
them. Every comparison alternates its contenders run by run (A B A B ...).

Subcommands (``python3 guest_bench.py CMD --help``):

* ``setup``: volume group on the data disks, the bench user, config dirs.
* ``q1``: hook prologue/epilogue against bench/floor.sh; peak RSS;
  where the time goes (an in-process run of the library with its LVM
  commands, mountinfo reads and mount calls timed, and a traced floor run).
* ``q2``: hook against three ad-hoc ``ansible localhost -m`` calls each way.
* ``q3``: prologue time against LV size, and against roots already present.
* ``q4``: sequential write (fio) and small-file creation (tar + syncfs) in
  the job root, a bare LV, a thin LV and a classic snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = "/opt/hpc-jobroot-bench"
LIB = "/usr/lib/hpc-jobroot"
HOOK = "/usr/libexec/hpc-jobroot/jobroot"
FLOOR = BENCH + "/floor.sh"
CONF = BENCH + "/conf"
ANSIBLE_SITE = BENCH + "/ansible"
ANSIBLE_COLLECTIONS = BENCH + "/collections"
VG = "benchvg"
USER = "benchuser"
ROOT_BASE = "/var/lib/hpc-jobroot/roots"
RUN_DIR = "/run/hpc-jobroot"
EXTENT = 4 * 1024 * 1024
GIB_EXTENTS = 256
FILES_TAR = "/dev/shm/bench-files.tar"

sys.path.insert(0, LIB)
# pylint: disable=wrong-import-position
from ansible_collections.hpc.jobroot.plugins.module_utils import (  # noqa: E402
    bindtree, config, lifecycle, lvm, mountinfo, mounts, procs)


def say(msg):
    print("[guest %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def sh(cmd, **kwargs):
    """Run *cmd* (argv list), fail loudly, return stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def timed(cmd, env=None):
    """Run *cmd*; return (seconds, maxrss KiB of it and its waited-for children, stdout, stderr).

    Raises RuntimeError on a non-zero exit. ``ru_maxrss`` comes from
    wait4(2) on the child: the largest RSS of the child and any descendant.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        status, usage = os.wait4(proc.pid, 0)[1:]
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s %s" % (
            " ".join(cmd), proc.returncode, stdout[-2000:], stderr[-2000:]))
    return elapsed, usage.ru_maxrss, stdout, stderr


def conf_dir(name, slot_extents, slots=4, thin_pool=""):
    """Write a config dir for the hook (pool.json + node.json) and return its path."""
    path = os.path.join(CONF, name)
    os.makedirs(path, exist_ok=True)
    pool = {"volume_group": VG, "thin_pool": thin_pool, "slots": slots, "slot_extents": slot_extents,
            "extent_size": EXTENT, "fstype": "ext4", "root_base": ROOT_BASE}
    node = {"image_base": "/var/lib/hpc-jobroot/images", "allow_list": CONF + "/images.conf",
            "default_image": "host", "fallback_to_default": False, "run_dir": RUN_DIR,
            "image_dirs": ["bin", "etc", "lib", "lib64", "opt", "sbin", "usr", "var/lib"],
            "host_files": ["/etc/passwd", "/etc/group", "/etc/resolv.conf"],
            "extra_binds": [], "home": "user"}
    for fname, data in (("pool.json", pool), ("node.json", node)):
        with open(os.path.join(path, fname), "w", encoding="utf-8") as handle:
            json.dump(data, handle)
    return path


def hook_env(job_id):
    env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_JOB_USER=USER)
    env.pop("SPANK_JOBROOT_IMAGE", None)
    return env


def hook(cmd, job_id, cfg_dir):
    return timed([HOOK, "--config-dir", cfg_dir, cmd, "--batch-system", "slurm", "--"], hook_env(job_id))


def home():
    return pwd.getpwnam(USER).pw_dir


def record_path(job_id):
    return os.path.join(RUN_DIR, "jobs", "%s.root" % job_id)


def floor(cmd, job_id, extents, env=None):
    root = os.path.join(ROOT_BASE, str(job_id))
    lv = "jobroot_%s" % job_id
    if cmd == "prologue":
        argv = [FLOOR, "prologue", VG, lv, str(extents), root, home(), record_path(job_id)]
    else:
        argv = [FLOOR, "epilogue", VG, lv, root, record_path(job_id)]
    return timed(argv, env)


def mount_shape(root):
    """The mounts under *root* as comparable tuples (relative path, type, flags, propagation)."""
    shape = []
    for m in mountinfo.under(mountinfo.read(), root, include_self=True):
        flags = sorted(o for o in m.options if o in ("ro", "nosuid", "nodev", "noexec", "noatime"))
        shape.append((os.path.relpath(m.mount_point, root), m.fstype, ",".join(flags),
                      mountinfo.propagation(m)))
    return sorted(shape)


def leftovers():
    """Raise if a job LV or a mount under the root base is left (a bench bug)."""
    lvs = [lv["name"] for lv in lvm.list_lvs(VG) if lv["name"].startswith("jobroot_")]
    left = [m.mount_point for m in mountinfo.under(mountinfo.read(), ROOT_BASE, include_self=False)]
    if lvs or left:
        raise RuntimeError("left behind: LVs %s, mounts %s" % (lvs, left))


def med(values):
    return statistics.median(values) if values else None


# --- setup --------------------------------------------------------------------------------


def cmd_setup(opts):
    disks = sorted(os.path.join("/dev/disk/by-id", d) for d in os.listdir("/dev/disk/by-id")
                   if d.startswith("virtio-pv"))
    if not disks:
        raise RuntimeError("no data disks /dev/disk/by-id/virtio-pv*")
    if subprocess.run(["vgs", VG], capture_output=True, check=False).returncode != 0:
        sh(["pvcreate", "--yes", "-q"] + disks)
        sh(["vgcreate", "--yes", "-q", "--physicalextentsize", "4m", VG] + disks)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        sh(["useradd", "--create-home", "--shell", "/bin/bash", USER])
    os.makedirs(ROOT_BASE, mode=0o755, exist_ok=True)
    os.makedirs(os.path.join(RUN_DIR, "jobs"), mode=0o755, exist_ok=True)
    # what the hook's first prologue does (bindtree.make_private_base), done before the floor
    # script ever runs, so both put their roots below the same private mount
    bindtree.make_private_base(ROOT_BASE)
    os.makedirs(CONF, exist_ok=True)
    # the small-file set (q4): N files of 4 KiB of random data, as a tar on tmpfs
    src = tempfile.mkdtemp(prefix="bench-files.", dir="/dev/shm")
    try:
        for i in range(opts.files):
            with open(os.path.join(src, "f%05d" % i), "wb") as handle:
                handle.write(os.urandom(4096))
        sh(["tar", "-cf", FILES_TAR, "-C", src, "."])
    finally:
        shutil.rmtree(src)
    info = vg_report()
    out = {"disks": disks, "vg": info, "user": USER, "files": opts.files,
           "env": environment()}
    print(json.dumps(out))


def vg_report():
    rows = json.loads(sh(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                          "vg_name,vg_size,vg_free,vg_extent_size,pv_count", VG]))["report"][0]["vg"]
    return {k: (int(v) if v.isdigit() else v) for k, v in rows[0].items()}


def environment():
    def first_line(cmd):
        try:
            return sh(cmd).strip().splitlines()[0]
        except (RuntimeError, IndexError, OSError):
            return "?"
    mem = 0
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"kernel": os.uname().release, "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "mem_mib": mem, "cpu_model": cpu,
            "lvm": first_line(["lvm", "version"]).strip(),
            "fio": first_line(["fio", "--version"]),
            "mkfs_ext4": first_line(["dpkg-query", "-W", "-f", "${Version}", "e2fsprogs"]),
            "util_linux": first_line(["dpkg-query", "-W", "-f", "${Version}", "util-linux"]),
            "debian": open("/etc/debian_version", encoding="utf-8").read().strip()}


# --- q1: hook against the floor ---------------------------------------------------------------


def cmd_q1(opts):
    cfg = conf_dir("q1", GIB_EXTENTS)
    res = {"reps": opts.reps, "warmup": opts.warmup, "hook": {"prologue": [], "epilogue": []},
           "floor": {"prologue": [], "epilogue": []}, "hook_rss_tree_kib": [], "floor_rss_tree_kib": []}
    job = 1000
    # warm-up, not counted: page cache for python, the library, lvm and mount
    for _warm in range(opts.warmup):
        job += 1
        hook("prologue", job, cfg)
        hook("epilogue", job, cfg)
        job += 1
        floor("prologue", job, GIB_EXTENTS)
        floor("epilogue", job, GIB_EXTENTS)
    shapes = {}
    for rep in range(opts.reps):
        for who in ("hook", "floor"):
            job += 1
            root = os.path.join(ROOT_BASE, str(job))
            if who == "hook":
                t_pro, rss_pro = hook("prologue", job, cfg)[:2]
            else:
                t_pro, rss_pro = floor("prologue", job, GIB_EXTENTS)[:2]
            if rep == 0:
                shapes[who] = mount_shape(root)
            if who == "hook":
                t_epi, rss_epi = hook("epilogue", job, cfg)[:2]
            else:
                t_epi, rss_epi = floor("epilogue", job, GIB_EXTENTS)[:2]
            res[who]["prologue"].append(t_pro)
            res[who]["epilogue"].append(t_epi)
            res[who + "_rss_tree_kib"].append(max(rss_pro, rss_epi))
            say("q1 rep %d %s: prologue %.2f s, epilogue %.2f s" % (rep + 1, who, t_pro, t_epi))
    leftovers()
    res["same_mounts"] = shapes.get("hook") == shapes.get("floor")
    res["mounts"] = {k: [list(x) for x in v] for k, v in shapes.items()}
    res["mount_count"] = len(shapes.get("hook", []))
    res["hook_self_rss_kib"] = hook_self_rss(cfg, job + 1)
    res["python_start"] = python_start(opts.reps)
    res["anatomy"] = [anatomy(cfg, job + 10 + i) for i in range(opts.anatomy)]
    res["floor_anatomy"] = [floor_anatomy(job + 20 + i) for i in range(opts.anatomy)]
    leftovers()
    print(json.dumps(res))


_RSS_WRAPPER = r"""
import os, resource, runpy, sys
hook, out = sys.argv[1], sys.argv[2]
sys.argv = [hook] + sys.argv[3:]
try:
    runpy.run_path(hook, run_name="__main__")
finally:
    with open(out, "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def hook_self_rss(cfg, job):
    """Peak RSS (KiB) of the hook's own Python process (RUSAGE_SELF at exit), prologue and epilogue."""
    out = {}
    for cmd in ("prologue", "epilogue"):
        with tempfile.NamedTemporaryFile(mode="r") as result:
            timed(["/usr/bin/python3", "-I", "-c", _RSS_WRAPPER, HOOK, result.name, "--config-dir", cfg, cmd,
                   "--batch-system", "slurm", "--"], hook_env(job))
            out[cmd] = int(result.read())
    return out


def python_start(reps):
    """Seconds for a bare python3 -I start, and for one that imports the hook's modules."""
    bare, lib = [], []
    imp = ("import sys; sys.path.insert(0, %r); from ansible_collections.hpc.jobroot.plugins."
           "module_utils import config, lifecycle" % LIB)
    for _rep in range(max(3, reps)):
        bare.append(timed(["/usr/bin/python3", "-I", "-c", "pass"])[0])
        lib.append(timed(["/usr/bin/python3", "-I", "-c", imp])[0])
    return {"bare": med(bare), "with_library": med(lib)}


class _Clock:
    """Wraps module functions to add up their time per label."""

    def __init__(self):
        self.spent = {}
        self.count = {}
        self.saved = []

    def wrap(self, module, name, label=None):
        orig = getattr(module, name)

        def wrapper(*args, **kwargs):
            key = label(args) if callable(label) else (label or name)
            start = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                self.spent[key] = self.spent.get(key, 0.0) + time.perf_counter() - start
                self.count[key] = self.count.get(key, 0) + 1
        setattr(module, name, wrapper)
        self.saved.append((module, name, orig))

    def restore(self):
        for module, name, orig in reversed(self.saved):
            setattr(module, name, orig)
        self.saved = []


def anatomy(cfg_dir, job):
    """Run prologue and epilogue in this process with the library's building blocks timed."""
    cfg = config.load(cfg_dir)
    out = {}
    for phase in ("prologue", "epilogue"):
        clock = _Clock()
        clock.wrap(lvm, "run", lambda a: "lvm.run " + os.path.basename(a[0][0]))
        clock.wrap(mountinfo, "read", "mountinfo.read")
        clock.wrap(mounts, "mount", "mount(2)")
        clock.wrap(mounts, "umount", "umount2(2)")
        clock.wrap(procs, "end_in_root", "procs.end_in_root")
        start = time.perf_counter()
        try:
            if phase == "prologue":
                result = lifecycle.prologue(cfg, str(job), USER, None, "slurm")
                if "refused" in result:
                    raise RuntimeError(result["refused"])
            else:
                lifecycle.epilogue(cfg, str(job), "slurm")
        finally:
            total = time.perf_counter() - start
            clock.restore()
        out[phase] = {"total": total, "spent": clock.spent, "count": clock.count}
    return out


def floor_anatomy(job):
    """One traced floor run: seconds per command (from the PS4 timestamps)."""
    env = dict(os.environ, FLOOR_TRACE="1")
    out = {}
    for phase in ("prologue", "epilogue"):
        run = floor(phase, job, GIB_EXTENTS, env)
        total, err = run[0], run[3]
        marks = []
        for line in err.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0].startswith("+") and parts[1].replace(".", "").isdigit():
                marks.append((float(parts[1]), parts[2].split(" ")[0]))
        spent = {}
        ends = [m[0] for m in marks[1:]] + [marks[0][0] + total]
        for (t0, name), t1 in zip(marks, ends):
            if "=" in name or name in ("local", "[", "case", "shift"):
                continue
            spent[name] = spent.get(name, 0.0) + max(0.0, t1 - t0)
        out[phase] = {"total": total, "spent": spent}
    return out


# --- q2: hook against ad-hoc ansible --------------------------------------------------------


def ansible_env():
    return dict(os.environ, PYTHONPATH=ANSIBLE_SITE, ANSIBLE_COLLECTIONS_PATH=ANSIBLE_COLLECTIONS,
                LC_ALL="C.UTF-8", LANG="C.UTF-8", ANSIBLE_LOCALHOST_WARNING="False",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1",
                ANSIBLE_RETRY_FILES_ENABLED="False")


def ansible_calls(job, phase, extents):
    """The argv lists of the ad-hoc calls for one job's *phase* (three per phase)."""
    key = str(job)
    root = os.path.join(ROOT_BASE, key)
    cfg = config.load(os.path.join(CONF, "q1"))
    base = ["/usr/bin/python3", ANSIBLE_SITE + "/bin/ansible", "localhost", "-m"]
    if phase == "prologue":
        entries = lifecycle.job_mounts(cfg, "/", pwd.getpwnam(USER))
        calls = [
            ("hpc.jobroot.lvm_jobvol", {"job_id": key, "volume_group": VG, "extents": extents,
                                        "root_base": ROOT_BASE, "fstype": "ext4"}),
            ("hpc.jobroot.bind_tree", {"root": root, "mounts": entries, "dirs": list(lifecycle.JOB_DIRS),
                                       "state_dir": RUN_DIR + "/trees"}),
            ("hpc.jobroot.named_chroot", {"job_id": key, "default": "host", "batch_system": "slurm",
                                          "root": root, "run_dir": RUN_DIR,
                                          "allow_list": CONF + "/images.conf"}),
        ]
    else:
        calls = [
            ("hpc.jobroot.named_chroot", {"job_id": key, "batch_system": "slurm", "run_dir": RUN_DIR,
                                          "state": "absent"}),
            ("hpc.jobroot.bind_tree", {"root": root, "state": "absent", "lazy": True,
                                       "state_dir": RUN_DIR + "/trees"}),
            ("hpc.jobroot.lvm_jobvol", {"job_id": key, "volume_group": VG, "root_base": ROOT_BASE,
                                        "state": "absent"}),
        ]
    return [(mod, base + [mod, "-a", json.dumps(args)]) for mod, args in calls]


def run_ansible(job, phase, extents):
    env = ansible_env()
    total = 0.0
    per = {}
    for mod, argv in ansible_calls(job, phase, extents):
        run = timed(argv, env)
        elapsed, out = run[0], run[2]
        if "SUCCESS" not in out and "CHANGED" not in out:
            raise RuntimeError("%s: unexpected output %s" % (mod, out[-1000:]))
        total += elapsed
        per[mod] = elapsed
    return total, per


def ansible_version():
    out = sh(["/usr/bin/python3", ANSIBLE_SITE + "/bin/ansible", "--version"], env=ansible_env())
    return out.splitlines()[0].strip()


def cmd_q2(opts):
    cfg = conf_dir("q1", GIB_EXTENTS)
    res = {"reps": opts.reps, "warmup": opts.warmup, "ansible_version": ansible_version(),
           "calls_per_phase": 3,
           "hook": {"prologue": [], "epilogue": []}, "ansible": {"prologue": [], "epilogue": []},
           "ansible_per_module": []}
    job = 3000
    for _warm in range(opts.warmup):
        job += 1
        run_ansible(job, "prologue", GIB_EXTENTS)
        run_ansible(job, "epilogue", GIB_EXTENTS)
    shapes = {}
    for rep in range(opts.reps):
        for who in ("hook", "ansible"):
            job += 1
            root = os.path.join(ROOT_BASE, str(job))
            if who == "hook":
                t_pro = hook("prologue", job, cfg)[0]
            else:
                t_pro, per_pro = run_ansible(job, "prologue", GIB_EXTENTS)
            if rep == 0:
                shapes[who] = mount_shape(root)
            if who == "hook":
                t_epi = hook("epilogue", job, cfg)[0]
            else:
                t_epi, per_epi = run_ansible(job, "epilogue", GIB_EXTENTS)
                res["ansible_per_module"].append({"prologue": per_pro, "epilogue": per_epi})
            res[who]["prologue"].append(t_pro)
            res[who]["epilogue"].append(t_epi)
            say("q2 rep %d %s: prologue %.2f s, epilogue %.2f s" % (rep + 1, who, t_pro, t_epi))
    leftovers()
    res["same_mounts"] = shapes.get("hook") == shapes.get("ansible")
    if not res["same_mounts"]:
        res["mounts"] = {k: [list(x) for x in v] for k, v in shapes.items()}
    print(json.dumps(res))


# --- q3: scaling ------------------------------------------------------------------------------


def cmd_q3(opts):
    sizes = [int(s) for s in opts.sizes.split(",")]
    by_size = {str(s): {"prologue": [], "epilogue": []} for s in sizes}
    res = {"reps": opts.reps, "sizes_gib": sizes, "by_size": by_size, "roots": opts.roots, "by_count": []}
    job = 5000
    for rep in range(opts.reps):
        order = sizes[rep % len(sizes):] + sizes[:rep % len(sizes)]
        for size in order:
            cfg = conf_dir("q3-%dg" % size, size * GIB_EXTENTS)
            job += 1
            t_pro = hook("prologue", job, cfg)[0]
            t_epi = hook("epilogue", job, cfg)[0]
            res["by_size"][str(size)]["prologue"].append(t_pro)
            res["by_size"][str(size)]["epilogue"].append(t_epi)
            say("q3 rep %d %d GiB: prologue %.2f s, epilogue %.2f s" % (rep + 1, size, t_pro, t_epi))
    leftovers()
    cfg = conf_dir("q3-count", GIB_EXTENTS, slots=opts.roots + 4)
    # Repeated sweeps (issue 18): single runs scatter too much to judge the
    # last root against the first; each count is reported as the median.
    pro = {k: [] for k in range(1, opts.roots + 1)}
    epi = {k: [] for k in range(1, opts.roots + 1)}
    for sweep in range(opts.count_reps):
        jobs = []
        try:
            for k in range(1, opts.roots + 1):
                job += 1
                pro[k].append(hook("prologue", job, cfg)[0])
                jobs.append(job)
                say("q3 sweep %d root %d: prologue %.2f s (%d roots present before)"
                    % (sweep + 1, k, pro[k][-1], k - 1))
            mounts_at_max = len(mountinfo.read())
        finally:
            for k, j in reversed(list(enumerate(jobs, start=1))):
                epi[k].append(hook("epilogue", j, cfg)[0])
    res["count_reps"] = opts.count_reps
    res["by_count"] = [{"n": k, "prologue": statistics.median(pro[k]), "epilogue": statistics.median(epi[k]),
                        "prologue_runs": pro[k], "epilogue_runs": epi[k]} for k in range(1, opts.roots + 1)]
    res["mountinfo_lines_at_max"] = mounts_at_max
    leftovers()
    print(json.dumps(res))


# --- q4: I/O ----------------------------------------------------------------------------------


def fio_seq(directory, size_mib, chroot=None):
    argv = ["fio", "--name=seqwrite", "--directory=" + directory, "--rw=write", "--bs=1M",
            "--size=%dM" % size_mib, "--direct=1", "--ioengine=psync", "--end_fsync=1",
            "--output-format=json"]
    if chroot:
        argv = ["chroot", chroot] + argv
    out = timed(argv)[2]
    job = json.loads(out[out.index("{"):])["jobs"][0]
    write = job["write"]
    mib_s = write["io_bytes"] / 1048576.0 / (job["job_runtime"] / 1000.0)
    return mib_s


def small_files(directory, tarball, chroot=None):
    script = "mkdir %s && tar -xf %s -C %s && sync -f %s" % ((directory, tarball, directory, directory))
    argv = ["sh", "-c", script]
    if chroot:
        argv = ["chroot", chroot] + argv
    return timed(argv)[0]


def lv_dev(name):
    return lvm.dm_path(VG, name)


def make_fs_and_mount(name, mountpoint):
    sh(lvm.mkfs_cmd("ext4", lv_dev(name)))
    os.makedirs(mountpoint, exist_ok=True)
    mounts.mount(lv_dev(name), mountpoint, "ext4", lvm.MOUNT_FLAGS)


def drop(mountpoint, name):
    mounts.umount(mountpoint)
    os.rmdir(mountpoint)
    sh(["lvremove", "--yes", "--autobackup", "n", "%s/%s" % (VG, name)])


def cmd_q4(opts):
    extents = opts.lv_gib * GIB_EXTENTS
    cfg = conf_dir("q4", extents)
    files = int(sh(["sh", "-c", "tar -tf %s | grep -c '^./f'" % FILES_TAR]).strip())
    targets = ["jobroot", "bare", "thin", "snapshot"]
    res = {"reps": opts.reps, "seq_mib": opts.seq_mib, "files": files, "lv_gib": opts.lv_gib,
           "snapshot_cow_gib": opts.cow_gib, "method": {
               "seq": "fio --rw=write --bs=1M --size=%dM --direct=1 --ioengine=psync --end_fsync=1; "
                      "MiB/s = io_bytes / job_runtime" % opts.seq_mib,
               "small": "tar -xf (%d files of 4 KiB, tarball on tmpfs) into a new directory, then "
                        "sync -f (syncfs); files/s = files / wall time" % files},
           "seq_mib_s": {t: [] for t in targets}, "files_s": {t: [] for t in targets}}
    # the thin pool (as jobvol_pool makes it) and the snapshot origin (made once, fully initialised)
    sh(["lvcreate", "--yes", "-q", "--autobackup", "n", "-L", "%dG" % (opts.lv_gib * 2 + 1),
        "--errorwhenfull", "y", "-T", "%s/benchpool" % VG])
    sh(["lvcreate", "--yes", "-q", "--autobackup", "n", "-l", str(extents), "-n", "origin", VG])
    sh(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "lazy_itable_init=0,nodiscard",
        lv_dev("origin")])
    job = 7000
    try:
        for rep in range(opts.reps):
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            for target in order:
                job += 1
                mnt = "/mnt/bench-%s" % target
                name = "%s_%d" % (target[:4], job)  # lvm reserves names starting "snapshot"
                if target == "jobroot":
                    hook("prologue", job, cfg)
                    root = os.path.join(ROOT_BASE, str(job))
                    shutil.copy(FILES_TAR, root + "/dev/shm/files.tar")
                    try:
                        seq = fio_seq("/tmp", opts.seq_mib, chroot=root)
                        small = small_files("/tmp/small", "/dev/shm/files.tar", chroot=root)
                    finally:
                        hook("epilogue", job, cfg)
                else:
                    if target == "bare":
                        sh(["lvcreate", "--yes", "-q", "--autobackup", "n", "-l", str(extents), "-n", name, VG])
                        make_fs_and_mount(name, mnt)
                    elif target == "thin":
                        sh(["lvcreate", "--yes", "-q", "--autobackup", "n", "-V", "%dG" % opts.lv_gib,
                            "-T", "%s/benchpool" % VG, "-n", name])
                        make_fs_and_mount(name, mnt)
                    else:
                        sh(["lvcreate", "--yes", "-q", "--autobackup", "n", "-s", "-L", "%dG" % opts.cow_gib,
                            "-n", name, "%s/origin" % VG])
                        os.makedirs(mnt, exist_ok=True)
                        mounts.mount(lv_dev(name), mnt, "ext4", lvm.MOUNT_FLAGS)
                    try:
                        seq = fio_seq(mnt, opts.seq_mib)
                        small = small_files(mnt + "/small", FILES_TAR)
                    finally:
                        drop(mnt, name)
                res["seq_mib_s"][target].append(seq)
                res["files_s"][target].append(files / small)
                say("q4 rep %d %s: seq write %.1f MiB/s, small files %.0f files/s"
                    % (rep + 1, target, seq, files / small))
    finally:
        for name in ("origin", "benchpool"):
            subprocess.run(["lvremove", "--yes", "-q", "--autobackup", "n", "%s/%s" % (VG, name)],
                           capture_output=True, check=False)
    leftovers()
    print(json.dumps(res))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--files", type=int, default=2000)
    p = sub.add_parser("q1")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--anatomy", type=int, default=3)
    p = sub.add_parser("q2")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p = sub.add_parser("q3")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sizes", default="1,4,16,64,256")
    p.add_argument("--roots", type=int, default=32)
    p.add_argument("--count-reps", type=int, default=1, help="sweeps of 1..roots; each count reported as the median")
    p = sub.add_parser("q4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seq-mib", type=int, default=256)
    p.add_argument("--lv-gib", type=int, default=2)
    p.add_argument("--cow-gib", type=int, default=1)
    opts = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    globals()["cmd_" + opts.cmd](opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
