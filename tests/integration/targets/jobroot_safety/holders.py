# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 11, item 3: processes that hold or escape a job's root, at the epilogue.

A directory-mode job root (no LVM on this host; its private /dev/shm tmpfs
is the job's own device) and, around it, real processes:

  same user, outside the root: cwd on the job's device, an open fd on it,
  a memory map of a file on it (fd closed), and one that escaped through
  /proc/PID/root of a job process; and the job process itself, chrooted;
  root, chrooted into the root; another user (nobody), chrooted into it.

The epilogue must end the job user's five and leave root's and nobody's
alive, reporting their PIDs; the teardown completes (a spared process does
not keep a directory root busy) and gc has nothing left.

A directory root has no device of its own, so finding a holder by device
alone is shown on a tmpfs standing in for the job volume: a process of the
job's user in a mount namespace of its own, whose cwd is a bind of that
volume (its path names no place below the root), is ended too.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    config, lifecycle, mountinfo, mounts, procs as holders)

USER = "jrhold%d" % os.getpid()

HOLD = {
    "cwd": "import os,time; os.chdir(ROOT + '/dev/shm'); print('ready', flush=True); time.sleep(60)",
    "fd": "import time; f = open(ROOT + '/dev/shm/held', 'w'); print('ready', flush=True); "
          "time.sleep(60)",
    "map": "import mmap,os,time; f = open(ROOT + '/dev/shm/mapped', 'w+b'); f.write(b'x' * 4096); "
           "f.flush(); m = mmap.mmap(f.fileno(), 4096); f.close(); print('ready', flush=True); "
           "time.sleep(60)",
    "escaped": "import os,time; os.chdir('/proc/%d/root/tmp' % INSIDE); "
               "print('ready', flush=True); time.sleep(60)",
}


def start(argv, **kwargs):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **kwargs)
    return proc


def wait_ready(proc):
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise AssertionError("holder %d did not start: %r" % (proc.pid, line))


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok: %s" % what)


def main():
    base = tempfile.mkdtemp(prefix="hpc-jobroot-test-", dir="/var/lib")
    os.chmod(base, 0o755)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", USER], check=True)
    procs = {}
    try:
        cfg_dir = os.path.join(base, "etc")
        os.makedirs(cfg_dir)
        with open(os.path.join(cfg_dir, "node.json"), "w", encoding="utf-8") as handle:
            json.dump({"root_base": base + "/roots", "run_dir": base + "/run",
                       "allow_list": cfg_dir + "/images.conf", "home": "none"}, handle)
        cfg = config.load(cfg_dir)

        volume, elsewhere = os.path.join(base, "volume"), os.path.join(base, "elsewhere")
        os.makedirs(volume)
        os.makedirs(elsewhere)
        mounts.mount("tmpfs", volume, "tmpfs", 0, "size=1m,mode=1777")
        procs["namespace"] = start([
            "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            'mount --bind "$0" "$1" && cd "$1" && exec chroot --userspec="$2:$2" --skip-chdir '
            '/ /bin/sh -c "echo ready; exec sleep 60"', volume, elsewhere, USER])
        wait_ready(procs["namespace"])
        uid = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True,
                                 check=True).stdout)
        ended, spared = holders.end_in_root(volume, uid, holders.job_devices(volume))
        procs["namespace"].wait(5)
        check(ended == [procs["namespace"].pid] and not spared,
              "a holder found only by device (own mount namespace) is ended")
        mounts.umount(volume)

        result = lifecycle.prologue(cfg, "4801", USER)
        root = result["root"]
        inside = start(["chroot", "--userspec=%s:%s" % (USER, USER), root, "/bin/sh", "-c",
                        "echo ready; exec sleep 60"])
        wait_ready(inside)
        procs["inside"] = inside
        for name, code in HOLD.items():
            code = "ROOT = %r; INSIDE = %d; %s" % (root, inside.pid, code)
            procs[name] = start(["/usr/bin/python3", "-c", code], user=USER, group=USER, cwd="/")
            wait_ready(procs[name])
        for name, spec in (("root", "0:0"), ("nobody", "nobody:nogroup")):
            procs[name] = start(["chroot", "--userspec=" + spec, root, "/bin/sh", "-c",
                                 "cd /dev/shm; echo ready; exec sleep 60"])
            wait_ready(procs[name])
        logged = []
        actions = lifecycle.epilogue(cfg, "4801", log=logged.append)
        time.sleep(0.2)
        for proc in procs.values():
            proc.poll()
        ours = ("inside", "cwd", "fd", "map", "escaped")
        check(all(procs[n].returncode is not None for n in ours),
              "the job user's holders are ended: %s" % ", ".join(
                  "%s=%s" % (n, procs[n].returncode) for n in ours))
        check(procs["root"].returncode is None and procs["nobody"].returncode is None,
              "root's and another user's processes are never signalled")
        report = " ".join(actions + logged)
        check(str(procs["root"].pid) in report and str(procs["nobody"].pid) in report,
              "their PIDs are reported: %s" % [a for a in actions if "left alone" in a])
        check(not os.path.lexists(root), "the teardown completed")
        for name in ("root", "nobody"):
            procs[name].kill()
            procs[name].wait()
        check(lifecycle.gc(cfg) == {}, "gc has nothing left")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        for m in reversed(mountinfo.under(mountinfo.read(), base, include_self=False)):
            mounts.umount(m.mount_point, lazy=True)
        subprocess.run(["userdel", USER], check=False)
        if not mountinfo.under(mountinfo.read(), base):
            shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
