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
* ``q7``: job start latency end to end under Slurm on the guest that
  playbooks/site.yml provisioned (question 6): ``srun /bin/true`` and an
  ``sbatch`` of a 1-second job, submit to completion, with plain Slurm, the
  job container plugin alone, and hpc.jobroot as the slurm_node role
  configures it, alternating configuration by configuration; restores the
  role's configuration at the end.
* ``q8``: encrypted job roots (node config ``encrypt``, dm-crypt plain)
  against plain ones: the hook prologue's time and sequential write (fio)
  in the root's /tmp, alternating plain and encrypted run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
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


def conf_dir(name, slot_extents, slots=4, thin_pool="", encrypt=False):
    """Write a config dir for the hook (pool.json + node.json) and return its path."""
    path = os.path.join(CONF, name)
    os.makedirs(path, exist_ok=True)
    pool = {"volume_group": VG, "thin_pool": thin_pool, "slots": slots, "slot_extents": slot_extents,
            "extent_size": EXTENT, "fstype": "ext4", "root_base": ROOT_BASE}
    node = {"image_base": "/var/lib/hpc-jobroot/images", "allow_list": CONF + "/images.conf",
            "default_image": "host", "fallback_to_default": False, "run_dir": RUN_DIR,
            "image_dirs": ["bin", "etc", "lib", "lib64", "opt", "sbin", "usr", "var/lib"],
            "host_files": ["/etc/passwd", "/etc/group", "/etc/resolv.conf"],
            "extra_binds": [], "home": "user", "encrypt": encrypt}
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
            "debian": open("/etc/debian_version", encoding="utf-8").read().strip(),
            "suite": os_release().get("VERSION_CODENAME", "?")}


def os_release():
    """/etc/os-release as a dict (os-release(5): KEY=value, value optionally quoted)."""
    out = {}
    with open("/etc/os-release", encoding="utf-8") as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep:
                out[key] = value.strip('"\'')
    return out


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
    res["python_start"] = python_start(opts.reps, hook_imports(cfg, job + 2))
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


def hook_imports(cfg, job):
    """Modules the hook imports for its prologue and for its epilogue, in import order.

    Runs the real hook once per subcommand under ``python3 -X importtime``
    (CPython prints one line per module it imports, start-up's and lazily
    imported ones included); returns {"prologue": [name, ...], "epilogue": [...],
    "bare": [...]}, "bare" being a bare ``python3 -I -c pass``'s.
    """
    out = {}
    for cmd in ("bare", "prologue", "epilogue"):
        argv = ["-c", "pass"] if cmd == "bare" else [HOOK, "--config-dir", cfg, cmd, "--batch-system", "slurm", "--"]
        err = timed(["/usr/bin/python3", "-I", "-X", "importtime"] + argv, hook_env(job))[3]
        names = []
        for line in err.splitlines():
            if line.startswith("import time:") and "|" in line:
                name = line.rsplit("|", 1)[1].strip()
                if name != "imported package" and name not in names:
                    names.append(name)
        if not names:
            raise RuntimeError("python3 -X importtime listed no imports of the hook's %s" % cmd)
        out[cmd] = names
    return out


def python_start(reps, imports):
    """Seconds (medians) of a bare python3 -I start and of one that imports what the hook imports.

    *imports* is hook_imports()'s result; each import run does the hook's
    sys.path insertion and imports those modules, and nothing else.
    """
    runs = {"bare": [], "prologue": [], "epilogue": []}
    for _rep in range(max(3, reps)):
        runs["bare"].append(timed(["/usr/bin/python3", "-I", "-c", "pass"])[0])
        for cmd in ("prologue", "epilogue"):
            # importtime lists failed attempts too (optional modules); the hook paid for them as well
            code = ("import sys\nsys.path.insert(0, %r)\nfor _m in %r:\n    try:\n        __import__(_m)\n"
                    "    except ImportError:\n        pass\n" % (LIB, imports[cmd]))
            runs[cmd].append(timed(["/usr/bin/python3", "-I", "-c", code])[0])
    return {"bare": med(runs["bare"]), "prologue": med(runs["prologue"]), "epilogue": med(runs["epilogue"]),
            "with_library": max(med(runs["prologue"]), med(runs["epilogue"])),
            "modules": {cmd: len(set(imports[cmd]) - set(imports["bare"])) for cmd in ("prologue", "epilogue")},
            "runs": runs}


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


# --- q7: job start latency under Slurm ---------------------------------------------------------

SLURM_CONF = "/etc/slurm/slurm.conf"
SPANK_CONF = "/etc/slurm/plugstack.conf.d/hpc-jobroot.conf"
SPANK_OFF = SPANK_CONF + ".q7-off"  # plugstack.conf includes plugstack.conf.d/*.conf only
# the role's slurm.conf while q7 runs; outside BENCH, which bench/run.py makes anew
Q7_SAVED = "/etc/slurm/slurm.conf.hpc-jobroot-bench"
POOL_JSON = "/etc/hpc-jobroot/pool.json"  # the jobvol_pool role's
USER_PATH = "/usr/bin:/bin"  # PATH of the bench user's srun and sbatch
# where the timed Prolog/Epilog write: slurmd writes its own log in this directory
Q7_HOOK_TIMES = "/var/log/slurm/hpc-jobroot-bench-q7.tsv"
# A plain Slurm, B the job container plugin alone, C hpc.jobroot: the slurm.conf
# keys each one drops from the role's slurm.conf (B keeps PrologFlags=Contain,
# which job_container/tmpfs needs).
Q7_CONFIGS = ("plain", "container", "jobroot")
Q7_DROP = {"plain": ("Prolog", "Epilog", "PrologFlags", "JobContainerType", "NamespaceType"),
           "container": ("Prolog", "Epilog"), "jobroot": ()}
Q7_TIMED_HOOK = """#!/bin/sh
# bench q7: the role's %(name)s, timed (start, end, exit status) into %(out)s
s=$(/bin/date +%%s.%%N)
%(orig)s
rc=$?
echo "$SLURM_JOB_ID %(name)s $s $(/bin/date +%%s.%%N) $rc" >> %(out)s
exit $rc
"""


def conf_key(line):
    """The key of a slurm.conf line ("" for comments and blank lines)."""
    line = line.strip()
    return "" if not line or line.startswith("#") else line.split("=", 1)[0].strip()


def q7_slurm_conf(text, config, timed_hooks=False):
    """The role's slurm.conf *text* turned into *config*; with *timed_hooks* Prolog/Epilog point
    to timing wrappers of the role's (written by q7_wrappers)."""
    out = []
    for line in text.splitlines(True):
        key = conf_key(line)
        if key in Q7_DROP[config]:
            continue
        if timed_hooks and key in ("Prolog", "Epilog"):
            line = "%s=%s/q7-%s\n" % (key, BENCH, key.lower())
        out.append(line)
    return "".join(out)


def q7_wrappers(text):
    """Write the timing wrappers of the role's Prolog and Epilog named in slurm.conf *text*."""
    for line in text.splitlines():
        key = conf_key(line)
        if key in ("Prolog", "Epilog"):
            path = "%s/q7-%s" % (BENCH, key.lower())
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(Q7_TIMED_HOOK % {"name": key.lower(), "out": Q7_HOOK_TIMES,
                                              "orig": line.split("=", 1)[1].strip()})
            os.chmod(path, 0o755)


def slurm_state():
    """The set of node states sinfo reports (empty while slurmctld does not answer)."""
    proc = subprocess.run(["sinfo", "--noheader", "--format", "%t"], capture_output=True, text=True, check=False)
    return set(proc.stdout.split()) if proc.returncode == 0 else set()


def wait_idle(timeout=180.0):
    """Wait until every node is idle; return the seconds waited. Raises RuntimeError on timeout."""
    start = time.perf_counter()
    while slurm_state() != {"idle"}:
        if time.perf_counter() - start > timeout:
            raise RuntimeError("the node is not idle after %.0f s: %s" % (timeout, sorted(slurm_state())))
        time.sleep(0.2)
    return time.perf_counter() - start


def q7_switch(saved, config, timed_hooks=False):
    """Configure Slurm as *config*, restart slurmctld then slurmd, wait for idle; return seconds."""
    start = time.perf_counter()
    tmp = SLURM_CONF + ".q7-new"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(q7_slurm_conf(saved, config, timed_hooks))
    os.chmod(tmp, 0o644)
    os.rename(tmp, SLURM_CONF)
    if config == "jobroot" and os.path.exists(SPANK_OFF):
        os.rename(SPANK_OFF, SPANK_CONF)
    elif config != "jobroot" and os.path.exists(SPANK_CONF):
        os.rename(SPANK_CONF, SPANK_OFF)
    sh(["systemctl", "restart", "slurmctld"])
    sh(["systemctl", "restart", "slurmd"])
    wait_idle()
    return time.perf_counter() - start


def q7_restore():
    """Put back the role's slurm.conf and SPANK registration (from a run that stopped midway too)."""
    if not os.path.exists(Q7_SAVED):
        return
    with open(Q7_SAVED, encoding="utf-8") as handle:
        q7_switch(handle.read(), "jobroot")
    os.unlink(Q7_SAVED)


def as_user(argv):
    """Run *argv* as the bench user in its home (set-uid directly: no PAM session, no login); return
    (seconds, stdout). Raises RuntimeError on a non-zero exit."""
    ent = pwd.getpwnam(USER)
    env = {"PATH": USER_PATH, "HOME": ent.pw_dir, "USER": USER, "LOGNAME": USER}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=ent.pw_dir,
                          user=ent.pw_uid, group=ent.pw_gid, extra_groups=[])
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s %s" % (
            " ".join(argv), proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:]))
    return elapsed, proc.stdout


def job_state(job_id):
    out = sh(["scontrol", "--oneliner", "show", "job", job_id])
    found = re.search(r"\bJobState=(\S+)", out)
    if not found:
        raise RuntimeError("scontrol show job %s: no JobState in %r" % (job_id, out[:300]))
    return found.group(1)


def q7_srun():
    """srun /bin/true: (seconds srun took, seconds from its start until the node is idle again)."""
    start = time.perf_counter()
    took = as_user(["srun", "-D", home(), "/bin/true"])[0]
    wait_idle()
    return took, time.perf_counter() - start


def q7_sbatch():
    """sbatch of a 1-second job: (seconds from submit to COMPLETED, i.e. its Epilog done;
    seconds from submit until it was first seen RUNNING), polling every 0.1 s."""
    start = time.perf_counter()
    job_id = as_user(["sbatch", "--parsable", "-D", home(), "-o", "/dev/null", "--wrap", "sleep 1"])[1]
    job_id = job_id.strip().split(";")[0]
    if not job_id.isdigit():
        raise RuntimeError("sbatch printed %r, not a job id" % job_id)
    running = None
    while True:
        state = job_state(job_id)
        now = time.perf_counter() - start
        if state == "RUNNING" and running is None:
            running = now
        if state == "COMPLETED":
            break
        if state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            raise RuntimeError("job %s ended %s" % (job_id, state))
        if now > 300:
            raise RuntimeError("job %s still %s after 300 s" % (job_id, state))
        time.sleep(0.1)
    done = time.perf_counter() - start
    wait_idle()
    return done, running if running is not None else done


def q7_root_source():
    """What an srun task sees mounted as / (its job volume under hpc.jobroot)."""
    return as_user(["srun", "-D", home(), "df", "--output=source", "/"])[1].split()[-1]


def q7_anatomy(saved, reps):
    """C with the role's Prolog and Epilog timed by wrappers: *reps* srun and *reps* sbatch jobs;
    return {"jobs": {"srun": [s], "sbatch": [s]}, "prolog": [s], "epilog": [s]}."""
    q7_wrappers(saved)
    if os.path.exists(Q7_HOOK_TIMES):
        os.unlink(Q7_HOOK_TIMES)
    q7_switch(saved, "jobroot", timed_hooks=True)
    jobs = {"srun": [], "sbatch": []}
    for _rep in range(reps):
        jobs["srun"].append(q7_srun()[0])
        jobs["sbatch"].append(q7_sbatch()[0])
    hooks = {"prolog": [], "epilog": []}
    with open(Q7_HOOK_TIMES, encoding="utf-8") as handle:
        for line in handle:
            _job, name, begin, end, status = line.split()
            if status != "0":
                raise RuntimeError("the role's %s exited %s in the timed run" % (name, status))
            hooks[name].append(float(end) - float(begin))
    os.unlink(Q7_HOOK_TIMES)
    if len(hooks["prolog"]) != 2 * reps or len(hooks["epilog"]) != 2 * reps:
        raise RuntimeError("timed Prolog/Epilog runs: %d/%d, expected %d each" % (
            len(hooks["prolog"]), len(hooks["epilog"]), 2 * reps))
    return {"jobs": jobs, "prolog": hooks["prolog"], "epilog": hooks["epilog"]}


def cmd_q7(opts):
    if not os.path.exists(SLURM_CONF):
        raise RuntimeError("%s missing: question 7 needs the guest playbooks/site.yml provisioned "
                           "(question 6)" % SLURM_CONF)
    q7_restore()  # an earlier run that stopped midway
    if not os.path.exists(SPANK_CONF):
        raise RuntimeError("%s missing: not the slurm_node role's configuration" % SPANK_CONF)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        sh(["useradd", "--create-home", "--shell", "/bin/bash", USER])
    with open(SLURM_CONF, encoding="utf-8") as handle:
        saved = handle.read()
    with open(Q7_SAVED, "w", encoding="utf-8") as handle:
        handle.write(saved)
    lines = {conf_key(line): line.strip() for line in saved.splitlines() if conf_key(line)}
    with open(SPANK_CONF, encoding="utf-8") as handle:
        spank = handle.read().strip().splitlines()[-1]
    res = {"reps": opts.reps, "warmup": opts.warmup, "slurm": sh(["sinfo", "--version"]).strip(),
           "conf_lines": {k: lines.get(k, "") for k in Q7_DROP["plain"]}, "spank": spank}
    with open(POOL_JSON, encoding="utf-8") as handle:
        pool = json.load(handle)
    res["slot_bytes"] = pool.get("slot_extents", 0) * pool.get("extent_size", 0)
    res["fstype"] = pool.get("fstype")
    for cfg in Q7_CONFIGS:
        res[cfg] = {"srun": [], "srun_idle": [], "sbatch": [], "sbatch_running": [], "switch": [],
                    "root": ""}
    started = time.perf_counter()
    try:
        for rnd in range(opts.warmup + opts.reps):
            for cfg in Q7_CONFIGS:
                switch = q7_switch(saved, cfg)
                # one untimed job after the restart: slurmd has registered and the
                # configuration works; its / says whether the job ran in a job volume
                res[cfg]["root"] = q7_root_source()
                wait_idle()
                srun, srun_idle = q7_srun()
                sbatch, sbatch_running = q7_sbatch()
                say("q7 round %d %s: srun %.2f s (idle after %.2f s), sbatch %.2f s (running after %.2f s)"
                    % (rnd + 1, cfg, srun, srun_idle, sbatch, sbatch_running))
                if rnd >= opts.warmup:
                    for key, val in (("srun", srun), ("srun_idle", srun_idle), ("sbatch", sbatch),
                                     ("sbatch_running", sbatch_running), ("switch", switch)):
                        res[cfg][key].append(val)
        # where hpc.jobroot's time goes: the role's Prolog and Epilog timed by wrappers
        # (an extra configuration, not one of the timed rounds); a failure here is
        # reported, the rounds above stand
        try:
            res["anatomy"] = q7_anatomy(saved, opts.anatomy)
        except (RuntimeError, OSError, ValueError) as exc:
            say("q7: timing the Prolog and Epilog failed: %s" % exc)
            res["anatomy_error"] = str(exc)[-600:]
    finally:
        q7_restore()
    res["restored_root"] = q7_root_source()
    wait_idle()
    res["seconds"] = time.perf_counter() - started
    for cfg, want in (("plain", False), ("container", False), ("jobroot", True)):
        if ("jobroot_" in res[cfg]["root"]) != want:
            raise RuntimeError("q7 %s: a job's / was %s" % (cfg, res[cfg]["root"]))
    if "jobroot_" not in res["restored_root"]:
        raise RuntimeError("q7: after restoring the role's configuration a job's / was %s" % res["restored_root"])
    print(json.dumps(res))


# --- q8: encrypted job roots ------------------------------------------------------------------


def cmd_q8(opts):
    extents = opts.lv_gib * GIB_EXTENTS
    cfgs = {"plain": conf_dir("q8-plain", extents), "encrypted": conf_dir("q8-encrypted", extents, encrypt=True)}
    res = {"reps": opts.reps, "seq_mib": opts.seq_mib, "lv_gib": opts.lv_gib, "method": {
        "seq": "fio --rw=write --bs=1M --size=%dM --direct=1 --ioengine=psync --end_fsync=1, chrooted "
               "into the job root, in /tmp; MiB/s = io_bytes / job_runtime" % opts.seq_mib,
        "prologue": "the hook command's prologue, wall time (node.json encrypt false or true)"},
        "seq_mib_s": {k: [] for k in cfgs}, "prologue_s": {k: [] for k in cfgs}, "epilogue_s": {k: [] for k in cfgs}}
    job = 8000
    for rep in range(opts.reps):
        for kind in (("plain", "encrypted") if rep % 2 == 0 else ("encrypted", "plain")):
            job += 1
            root = os.path.join(ROOT_BASE, str(job))
            res["prologue_s"][kind].append(hook("prologue", job, cfgs[kind])[0])
            try:
                source = mountinfo.top_at(mountinfo.read(), root).source
                if source.startswith("/dev/mapper/jobroot_crypt-") != (kind == "encrypted"):
                    raise RuntimeError("q8 %s: the job root is on %s" % (kind, source))
                seq = fio_seq("/tmp", opts.seq_mib, chroot=root)
            finally:
                res["epilogue_s"][kind].append(hook("epilogue", job, cfgs[kind])[0])
            res["seq_mib_s"][kind].append(seq)
            say("q8 rep %d %s: prologue %.2f s, seq write %.1f MiB/s"
                % (rep + 1, kind, res["prologue_s"][kind][-1], seq))
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
    p = sub.add_parser("q7")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--anatomy", type=int, default=2, help="jobs of each kind with the Prolog/Epilog timed")
    p = sub.add_parser("q8")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seq-mib", type=int, default=256)
    p.add_argument("--lv-gib", type=int, default=2)
    opts = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    globals()["cmd_" + opts.cmd](opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
