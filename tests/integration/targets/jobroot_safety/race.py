# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 11 item 1: teardown never acts outside the root, whatever the job's user does.

The victim is a real autofs automount on this host, of the same shape as
the guest's /software (molecule/slurm/verify_faults.yml, issue 11 item 10):
an indirect map whose key ``apps`` is bind mounted from a local directory,
timeout 3600 s, served by this test's own ``automount`` daemon (Debian
package autofs) started with a private master map. /etc/auto.master is
never read or changed. Layout, all on one scratch tmpfs (fast, and one
unmount cleans it all):

  scratch/auto.master, auto.software   the private master map and the map
  scratch/served              the directory the map binds (holds the canary)
  scratch/software            the autofs trigger mount (indirect, the victim)
  scratch/software/apps       the automounted bind of scratch/served (the victim)
  scratch/home/alice          the job user's home
  scratch/root                the job root (a bind of itself, like a job volume)
  scratch/root/home/alice     rbind of the home (as job_mounts binds it)
  scratch/root/home/alice/x/apps   a submount in the user's home (tmpfs; an
                              autofs or NFS submount at a site)

An attacker process, standing in for the job's user, loops: rename x to
x.moved, symlink x -> scratch/software, swap back. Meanwhile the
epilogue's teardown (bindtree.teardown, lazy, as lifecycle._teardown calls
it) runs. A teardown that followed the symlink would unmount
scratch/software/apps, the automount, instead of the job's submount.
After every one of ITERATIONS runs both the autofs trigger and the
automounted bind must still be the same mounts (by mount ID in
mountinfo), and the canary must be readable through the automount.

The automount daemon runs in its own session (autofs lets the daemon's
process group walk past its triggers, so the test must stay outside it),
dies with this process (PR_SET_PDEATHSIG), and is stopped (SIGTERM, wait)
before the scratch is unmounted, also when the test fails. Without the
automount binary the test fails: the victim must be a real automount.
"""

import ctypes
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import bindtree, mountinfo, mounts
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

ITERATIONS = int(os.environ.get("RACE_ITERATIONS", "1000"))
KEY = "apps"
CANARY = "precious\n"
PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(sig):
    """Have the kernel send *sig* to this process when its parent dies (prctl(2))."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def attacker(home, decoy, run, idle, stop):
    """Swap home/x for a symlink to *decoy* and back, as fast as possible, while *run* is set.

    Sets *idle* while paused, after finishing a swap.
    """
    die_with_parent(signal.SIGKILL)
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


def automount_binary():
    """Return the path of automount(8); fail the test, naming the package, if it is missing."""
    path = shutil.which("automount", path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if path is None:
        sys.exit("race: FAILED: automount(8) not found (Debian package autofs, listed in "
                 "tests/setup/system-packages.txt; run tests/setup/system-packages.sh as "
                 "root). The victim of this test is a real automount, so it cannot run "
                 "without it.")
    return path


def start_automount(binary, master, trigger, log):
    """Start ``automount -f -C master`` in its own session; return the Popen once *trigger* is mounted.

    -f: stay in the foreground, so the Popen is the daemon; -C: do not
    check for (or take the run flag of) a system automount daemon, which
    may run on the host with /etc/auto.master and is left alone.
    """
    daemon = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
        [binary, "-f", "-C", master], stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        top = mountinfo.top_at(mountinfo.read(), trigger)
        if top is not None and top.fstype == "autofs":
            return daemon
        if daemon.poll() is not None:
            break
        time.sleep(0.05)
    stop_automount(daemon)
    raise RuntimeError("automount did not mount %s (exit status %s)" % (trigger, daemon.returncode))


def stop_automount(daemon):
    """Stop the daemon: SIGTERM (it unmounts its unused mounts and exits), wait; SIGKILL if it hangs."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def automount(trigger):
    """Touch the key below *trigger* (autofs mounts it), then mark that mount; return :func:`victim`.

    The mark is a per-mount flag, noexec, set on the automounted bind
    (autofs mounts it without): mount IDs are reused as soon as they are
    free, so an automount that was unmounted and mounted again can come
    back with the same ID, but never with the mark.
    """
    with open(os.path.join(trigger, KEY, "canary"), encoding="utf-8"):
        pass
    mounts.remount_bind(os.path.join(trigger, KEY), mounts.MS_NOEXEC)
    return victim(trigger)


def victim(trigger):
    """Return ``(trigger_id, bind_id)``: the autofs trigger at *trigger* and the bind automounted below it.

    Reads mountinfo first (reading the canary would mount the key again),
    then the canary through the automount. An ID is None if that mount is
    not there, is not the one :func:`automount` marked, or the canary is
    not readable.
    """
    table = mountinfo.read()
    top = mountinfo.top_at(table, trigger)
    bind = mountinfo.top_at(table, os.path.join(trigger, KEY))
    trigger_id = top.mount_id if top is not None and top.fstype == "autofs" else None
    bind_id = bind.mount_id if bind is not None and bind.fstype != "autofs" and \
        "noexec" in bind.options else None
    try:
        with open(os.path.join(trigger, KEY, "canary"), encoding="utf-8") as handle:
            if handle.read() != CANARY:
                bind_id = None
    except OSError:
        bind_id = None
    return trigger_id, bind_id


def leftovers(scratch):
    """Lazily unmount whatever is still mounted below *scratch*, deepest first."""
    for m in sorted(mountinfo.under(mountinfo.read(), scratch, include_self=False),
                    key=lambda m: -m.mount_point.count("/")):
        mounts.umount(m.mount_point, lazy=True)


def race(scratch, binary, log):
    """Set up the automount, the home and the root in *scratch*, race ITERATIONS teardowns.

    Returns ``(runs, lost, ok, incomplete, elapsed)``: runs done (fewer than
    ITERATIONS only if the autofs trigger itself was lost), runs that touched
    the automount, teardowns completed and left for gc, seconds.
    """
    served = os.path.join(scratch, "served")
    trigger = os.path.join(scratch, "software")
    home = os.path.join(scratch, "home", "alice")
    root = os.path.join(scratch, "root")
    state = os.path.join(scratch, "state")
    for d in (served, trigger, os.path.join(home, "x", KEY), root):
        os.makedirs(d)
    with open(os.path.join(served, "canary"), "w", encoding="utf-8") as handle:
        handle.write(CANARY)
    master = os.path.join(scratch, "auto.master")
    software = os.path.join(scratch, "auto.software")
    with open(master, "w", encoding="utf-8") as handle:
        handle.write("%s %s --timeout=3600\n" % (trigger, software))
    with open(software, "w", encoding="utf-8") as handle:
        handle.write("%s -fstype=bind :%s\n" % (KEY, served))
    daemon = start_automount(binary, master, trigger, log)
    run, idle, stop = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    proc = None
    runs = lost = ok = incomplete = 0
    try:
        want = automount(trigger)
        if None in want:
            raise RuntimeError("the automount %s/%s did not come up: %s" % (trigger, KEY, want))
        mounts.bind(root, root)
        inner = os.path.join(root, "home", "alice")
        proc = multiprocessing.Process(target=attacker, args=(inner, trigger, run, idle, stop))
        proc.start()
        entries = [{"target": "home/alice", "type": "rbind", "source": home}]
        started = time.monotonic()
        while runs < ITERATIONS:
            runs += 1
            bindtree.apply(root, entries, state_dir=state)
            mounts.mount("tmpfs", os.path.join(inner, "x", KEY), "tmpfs", 0, "size=1m")
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
            found = victim(trigger)
            if found != want:
                lost += 1
                print("race: run %d: the automount was touched: trigger %s bind %s, "
                      "was %s %s" % ((runs,) + found + want))
                if found[0] != want[0]:
                    break  # the trigger itself is gone: nothing left to guard
                want = automount(trigger)
            bindtree.teardown(root, state, lazy=True)  # attacker paused: must finish
        return runs, lost, ok, incomplete, time.monotonic() - started
    finally:
        stop.set()
        run.set()
        if proc is not None:
            proc.join(5)
        stop_automount(daemon)


def main():
    binary = automount_binary()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("race: terminated"))
    scratch = tempfile.mkdtemp(prefix="jobroot-race-")
    mounts.mount("tmpfs", scratch, "tmpfs", 0, "size=16m")
    mounts.set_propagation(scratch, "private")
    with tempfile.TemporaryFile(prefix="jobroot-race-automount-") as log:
        try:
            runs, lost, ok, incomplete, elapsed = race(scratch, binary, log)
        except BaseException:
            log.seek(0)
            output = log.read().decode(errors="replace")
            if output:
                sys.stderr.write("automount's output:\n%s" % output)
            raise
        finally:
            leftovers(scratch)
            mounts.umount(scratch, lazy=True)
            os.rmdir(scratch)
    print("race: %d runs in %.1f s: automount (autofs trigger and bind) survived %d of %d; "
          "teardown complete %d, left for gc %d" % (
              runs, elapsed, runs - lost, runs, ok, incomplete))
    return 1 if lost or ok == 0 or runs < ITERATIONS else 0


if __name__ == "__main__":
    sys.exit(main())
