# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 11 item 1: teardown never acts outside the root, whatever the job's user does.

Layout, all on one scratch tmpfs (fast, and one unmount cleans it all):

  scratch/victim-parent/sub   a host mount OUTSIDE the root (the victim, tmpfs)
  scratch/home/alice          the job user's home
  scratch/root                the job root (a bind of itself, like a job volume)
  scratch/root/home/alice     rbind of the home (as job_mounts binds it)
  scratch/root/home/alice/x/sub   a submount in the user's home (tmpfs; an
                              autofs or NFS submount at a site)

An attacker process, standing in for the job's user, loops: rename x to
x.moved, symlink x -> scratch/victim-parent, swap back. Meanwhile the
epilogue's teardown (bindtree.teardown, lazy, as lifecycle._teardown calls
it) runs. The victim must survive every one of ITERATIONS runs. No
autofs on this host (item 10 is done in the guest), so the victim is a
tmpfs mount.
"""

import multiprocessing
import os
import sys
import tempfile
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import bindtree, mountinfo, mounts
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

ITERATIONS = int(os.environ.get("RACE_ITERATIONS", "1000"))


def attacker(home, decoy, run, idle, stop):
    """Swap home/x for a symlink to *decoy* and back, as fast as possible, while *run* is set.

    Sets *idle* while paused, after finishing a swap.
    """
    x, moved = os.path.join(home, "x"), os.path.join(home, "x.moved")
    while not stop.is_set():
        if not run.is_set():
            idle.set()
            run.wait(0.01)
            continue
        idle.clear()
        try:
            os.rename(x, moved)
            os.symlink(decoy, x)
            os.unlink(x)
            os.rename(moved, x)
        except OSError:
            pass


def restore(home):
    """Put home/x back as the directory (the attacker is paused)."""
    x, moved = os.path.join(home, "x"), os.path.join(home, "x.moved")
    if os.path.islink(x):
        os.unlink(x)
    if os.path.isdir(moved) and not os.path.lexists(x):
        os.rename(moved, x)


def victim_ok(victim, victim_id):
    top = mountinfo.top_at(mountinfo.read(), victim)
    return top is not None and top.mount_id == victim_id and \
        os.path.exists(os.path.join(victim, "canary"))


def main():
    scratch = tempfile.mkdtemp(prefix="jobroot-race-")
    mounts.mount("tmpfs", scratch, "tmpfs", 0, "size=16m")
    mounts.set_propagation(scratch, "private")
    run, idle, stop = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    proc = None
    lost = ok = incomplete = 0
    try:
        victim = os.path.join(scratch, "victim-parent", "sub")
        home = os.path.join(scratch, "home", "alice")
        root = os.path.join(scratch, "root")
        state = os.path.join(scratch, "state")
        for d in (victim, os.path.join(home, "x", "sub"), root):
            os.makedirs(d)
        mounts.mount("tmpfs", victim, "tmpfs", 0, "size=1m")
        with open(os.path.join(victim, "canary"), "w", encoding="utf-8") as handle:
            handle.write("precious\n")
        victim_id = mountinfo.top_at(mountinfo.read(), victim).mount_id
        mounts.bind(root, root)
        inner = os.path.join(root, "home", "alice")
        proc = multiprocessing.Process(
            target=attacker, args=(inner, os.path.dirname(victim), run, idle, stop))
        proc.start()
        entries = [{"target": "home/alice", "type": "rbind", "source": home}]
        started = time.monotonic()
        for _run in range(ITERATIONS):
            bindtree.apply(root, entries, state_dir=state)
            mounts.mount("tmpfs", os.path.join(inner, "x", "sub"), "tmpfs", 0, "size=1m")
            idle.clear()
            run.set()
            try:
                bindtree.teardown(root, state, lazy=True)
                ok += 1
            except JobrootError:
                incomplete += 1  # the user kept moving it: left for gc, never the host's
            run.clear()
            idle.wait()  # the attacker finished its swap
            restore(home)
            if not victim_ok(victim, victim_id):
                lost += 1
                mounts.mount("tmpfs", victim, "tmpfs", 0, "size=1m")
                with open(os.path.join(victim, "canary"), "w", encoding="utf-8") as handle:
                    handle.write("precious\n")
                victim_id = mountinfo.top_at(mountinfo.read(), victim).mount_id
            bindtree.teardown(root, state, lazy=True)  # attacker paused: must finish
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        run.set()
        if proc is not None:
            proc.join(5)
        mounts.umount(scratch, lazy=True)
        os.rmdir(scratch)
    print("race: %d runs in %.1f s: victim survived %d of %d; teardown complete %d, "
          "left for gc %d" % (ITERATIONS, elapsed, ITERATIONS - lost, ITERATIONS, ok, incomplete))
    return 1 if lost or ok == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
