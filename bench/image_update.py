# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark question 5: image updates, run on the host (no LVM needed).

An image version is a directory ``<base>/<name>-<version>``; the
job_image role deploys a new version with rsync (its default options,
``--link-dest`` against the current version) and then switches the symlink
``<base>/<name>`` with a temporary symlink and rename(2)
(plugins/module_utils/images.py, ``switch``). This module
measures, on a real tree (the debootstrapped bullseye tree the job_image
tests cache, if present) or on a synthetic one:

* bytes stored and bytes transferred by an update in which 1 % of the
  regular files changed, ``--link-dest`` against a full copy, alternating
  the two runs;
* the time of the symlink switch against the size of the image.

Bytes stored: the allocated blocks (``st_blocks * 512``) of every inode in
the new version that the old version does not share (hard links count
once); bytes transferred: rsync's ``--stats`` ("Total bytes sent",
"Literal data").
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTIONS = os.path.join(REPO, ".build")  # make collections puts ansible_collections/hpc/jobroot here
MODULE = "ansible_collections.hpc.jobroot.plugins.modules.image_version"


def _role_rsync_options():
    """The role's default rsync options (roles/job_image/defaults/main.yml)."""
    import yaml  # pylint: disable=import-outside-toplevel  # the venv's PyYAML (Ansible needs it)
    path = os.path.join(REPO, "roles", "job_image", "defaults", "main.yml")
    with open(path, encoding="utf-8") as handle:
        options = yaml.safe_load(handle)["job_image_rsync_options"]
    if not isinstance(options, list) or "--stats" not in options:
        raise RuntimeError("%s: job_image_rsync_options must be a list with --stats" % path)
    return options


def _tool():
    """The library the role's image_version module runs (module_utils/images.py, built collection)."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return importlib.import_module("ansible_collections.hpc.jobroot.plugins.module_utils.images")


def find_cached_tree():
    """Return the path of the cached bullseye tarball of the job_image tests, or None."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hpc-jobroot")
    try:
        names = sorted(n for n in os.listdir(cache) if re.match(r"debian-bullseye-[0-9a-f]+\.tar$", n))
    except FileNotFoundError:
        return None
    return os.path.join(cache, names[-1]) if names else None


def synthetic_tree(path, files, seed=7):
    """Write *files* regular files (sizes like a distribution tree: mostly small) under *path*."""
    rng = random.Random(seed)
    os.makedirs(path, mode=0o755)
    for i in range(files):
        sub = os.path.join(path, "usr", "d%03d" % (i // 50))
        os.makedirs(sub, mode=0o755, exist_ok=True)
        size = int(min(4 << 20, rng.lognormvariate(8.5, 1.6)))
        with open(os.path.join(sub, "f%05d" % i), "wb") as handle:
            handle.write(rng.randbytes(size))


def regular_files(top):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(full)
    return out


def change_files(top, fraction, seed=11):
    """Rewrite *fraction* of the regular files under *top* with new bytes (same size + 1)."""
    rng = random.Random(seed)
    files = regular_files(top)
    chosen = rng.sample(files, max(1, int(len(files) * fraction)))
    changed_bytes = 0
    for path in chosen:
        size = os.path.getsize(path) + 1
        mode = os.stat(path).st_mode & 0o7777
        with open(path, "wb") as handle:
            handle.write(rng.randbytes(size))
        os.chmod(path, mode)
        changed_bytes += size
    return {"files": len(files), "changed": len(chosen), "changed_bytes": changed_bytes}


def tree_size(top):
    """(number of entries, apparent bytes of regular files, allocated bytes) under *top*."""
    entries = apparent = allocated = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            entries += 1
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if os.path.isfile(os.path.join(dirpath, name)) and not os.path.islink(os.path.join(dirpath, name)):
                apparent += st.st_size
            allocated += st.st_blocks * 512
    return entries, apparent, allocated


def stored_bytes(new, old):
    """Allocated bytes of the inodes under *new* that *old* does not share (hard links once)."""
    shared = set()
    if old:
        for dirpath, dirnames, filenames in os.walk(old):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                shared.add((st.st_dev, st.st_ino))
    total = 0
    for dirpath, dirnames, filenames in os.walk(new):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key in shared:
                continue
            shared.add(key)
            total += st.st_blocks * 512
    return total


def _stat(out, label):
    match = re.search(r"^%s: ([0-9,]+)" % re.escape(label), out, re.M)
    return int(match.group(1).replace(",", "")) if match else -1


def rsync(source, dest, link_dest=None):
    """rsync *source*/ to *dest*/ with the role's options; return (seconds, stats dict)."""
    argv = ["rsync"] + _role_rsync_options()
    if link_dest:
        argv.append("--link-dest=" + link_dest)
    argv += [source.rstrip("/") + "/", dest.rstrip("/") + "/"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv), proc.stderr[-2000:]))
    out = proc.stdout
    return elapsed, {"files_transferred": _stat(out, "Number of regular files transferred"),
                     "total_file_size": _stat(out, "Total file size"),
                     "transferred_file_size": _stat(out, "Total transferred file size"),
                     "literal_data": _stat(out, "Literal data"),
                     "bytes_sent": _stat(out, "Total bytes sent"),
                     "bytes_received": _stat(out, "Total bytes received")}


def _rmtree(path):
    """Remove a tree this benchmark made; refuse if anything is mounted below it."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split(" ")[4]
            if point == path or point.startswith(path.rstrip("/") + "/"):
                raise RuntimeError("%s has a mount below it (%s); not removing" % (path, point))
    shutil.rmtree(path, ignore_errors=False)


def run(workdir, quick, log=print):
    """Run question 5 in *workdir* (created, removed at the end); return a JSON-ready dict."""
    if os.path.lexists(workdir):
        _rmtree(workdir)
    os.makedirs(workdir, mode=0o755)
    os.chmod(workdir, 0o755)
    tool = _tool()
    reps = 2 if quick else 3
    res = {"reps": reps, "rsync_options": _role_rsync_options()}
    try:
        master = os.path.join(workdir, "master")
        tarball = None if quick else find_cached_tree()
        if tarball:
            os.makedirs(master, mode=0o755)
            subprocess.run(["tar", "-xf", tarball, "-C", master, "--numeric-owner"], check=True)
            res["tree"] = "debootstrapped Debian bullseye tree (%s)" % os.path.basename(tarball)
        else:
            count = 300 if quick else 20000
            synthetic_tree(master, count)
            res["tree"] = "synthetic: %d files, log-normal sizes (median about 5 KiB)" % count
        base = os.path.join(workdir, "images")
        os.makedirs(base, mode=0o755)
        entries, apparent, allocated = tree_size(master)
        res["image"] = {"entries": entries, "apparent_bytes": apparent, "allocated_bytes": allocated}
        log("q5: image of %d entries, %.1f MiB; first version (full copy)" % (entries, apparent / 1048576.0))
        v1 = os.path.join(base, "img-1")
        rsync(master, v1)
        res["change"] = change_files(master, 0.01)
        times = {"full": [], "link_dest": []}
        for rep in range(reps):
            for kind in ("full", "link_dest"):
                dest = os.path.join(base, ".img-2.partial")
                os.sync()  # the previous run's write-back must not land in this one's time
                elapsed, stats = rsync(master, dest, v1 if kind == "link_dest" else None)
                times[kind].append(elapsed)
                if rep == 0:
                    res[kind] = dict(stats, stored_bytes=stored_bytes(dest, v1 if kind == "link_dest" else None))
                _rmtree(dest)
                log("q5 rep %d %s: %.2f s" % (rep + 1, kind, elapsed))
        for kind, values in times.items():
            res[kind]["seconds"] = values
        res["swap"] = swap_times(workdir, master, tool, quick, log)
    finally:
        _rmtree(workdir)
    return res


def swap_times(workdir, master, tool, quick, log):
    """Median time of the symlink switch for images of several sizes (two versions each)."""
    copies = [0, 1] if quick else [0, 1, 8]
    rounds = 50 if quick else 400
    calls = 3 if quick else 10
    out = []
    for n in copies:
        base = os.path.join(workdir, "swap-%d" % n)
        os.makedirs(base, mode=0o755)
        for version in ("a", "b"):
            vdir = os.path.join(base, "img-" + version)
            os.makedirs(vdir, mode=0o755)
            # n hard-linked copies of the master (0: an empty image)
            for i in range(n):
                subprocess.run(["cp", "-al", master, os.path.join(vdir, "copy%d" % i)], check=True)
        entries = tree_size(os.path.join(base, "img-a"))[0]
        apparent = n * tree_size(master)[1]  # every path counted, hard links included
        tool.switch(base, "img", "a")
        os.sync()  # flush making the trees, so the switches' fsync(dir) does not pay for it
        inproc = []
        for i in range(rounds):
            target = "b" if i % 2 == 0 else "a"
            start = time.perf_counter()
            tool.switch(base, "img", target)
            inproc.append(time.perf_counter() - start)
        role = []
        for i in range(calls):
            target = "b" if os.readlink(os.path.join(base, "img")) == "img-a" else "a"
            opts = {"name": "img", "image_base": base, "state": "switched", "version": target}
            args = os.path.join(workdir, "args.json")
            with open(args, "w", encoding="utf-8") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": opts}, handle)
            argv = [sys.executable, "-m", MODULE, args]
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  env=dict(os.environ, PYTHONPATH=COLLECTIONS))
            role.append(time.perf_counter() - start)
            if proc.returncode != 0 or not json.loads(proc.stdout).get("changed"):
                raise RuntimeError("switch by the image_version module failed: %s %s" % (proc.stdout, proc.stderr))
        if os.readlink(os.path.join(base, "img")) not in ("img-a", "img-b"):
            raise RuntimeError("symlink does not point at a version after the switches")
        out.append({"copies": n, "entries": entries, "apparent_bytes": apparent,
                    "switch_median_s": statistics.median(inproc), "switch_n": rounds,
                    "tool_median_s": statistics.median(role), "tool_n": calls})
        log("q5 swap, image of %d entries: switch %.1f us, role tool %.0f ms" % (
            entries, out[-1]["switch_median_s"] * 1e6, out[-1]["tool_median_s"] * 1e3))
        _rmtree(base)
    return out
