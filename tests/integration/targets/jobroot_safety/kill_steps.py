# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 11, item 9 on the host: kill the hook command at every named step, then gc.

Directory mode (no LVM here; the guest runs the LVM matrix). For each step
of faults.STEPS the hook command (roles/job_hooks/files/jobroot.py, the entry
script into module_utils/hook_command.py) is run
with HPC_JOBROOT_KILL_AT=<step> and must die of SIGKILL; then ``jobroot gc
--all`` must leave no mount, root, state, pin, record or temp file, and the
canary in the job user's bound home must be intact. First, the switch
without HPC_JOBROOT_TESTING=1 must be refused before anything is done.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from ansible_collections.hpc.jobroot.plugins.module_utils import faults, mountinfo, mounts

HOOK = os.path.join(os.environ["COLLECTION"], "roles", "job_hooks", "files", "jobroot.py")
USER = "jrkill%d" % os.getpid()


def hook(cfg_dir, *args, env=None):
    full = dict(os.environ, SLURM_JOB_ID="4901", SLURM_JOB_USER=USER, **(env or {}))
    for name in (faults.SWITCH, faults.TEST_VARIABLE):
        if name not in (env or {}):
            full.pop(name, None)
    # Slurm's Prolog/Epilog wrappers end the hook's own options with "--" (hookargs)
    tail = ["--"] if args and args[0] in ("prologue", "epilogue") else []
    return subprocess.run([sys.executable, HOOK, "--config-dir", cfg_dir] + list(args) + tail,
                          env=full, capture_output=True, text=True, check=False, timeout=120)


def leftovers(base):
    """Everything gc must have removed: mounts, roots, state, pins, records, temp files."""
    left = [m.mount_point for m in mountinfo.read() if m.mount_point.startswith(base + "/roots/")]
    left += [base + "/roots/" + n for n in os.listdir(base + "/roots")]
    for folder in ("run/jobs", "run/pins", "run/trees", "pbs/mom_priv/jobs"):
        path = os.path.join(base, folder)
        if os.path.isdir(path):
            left += [os.path.join(path, n) for n in os.listdir(path)]
    return left


def main():
    base = tempfile.mkdtemp(prefix="hpc-jobroot-test-", dir="/var/lib")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home", USER)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", home, USER], check=True)
    try:
        os.makedirs(home)
        canary = os.path.join(home, "canary")
        with open(canary, "w", encoding="utf-8") as handle:
            handle.write("precious\n")
        os.makedirs(base + "/roots")
        cfg_dir = os.path.join(base, "etc")
        os.makedirs(cfg_dir)
        with open(os.path.join(cfg_dir, "node.json"), "w", encoding="utf-8") as handle:
            json.dump({"root_base": base + "/roots", "run_dir": base + "/run",
                       "allow_list": cfg_dir + "/images.conf", "home": "user"}, handle)
        proc = hook(cfg_dir, "prologue", env={faults.SWITCH: "prologue.volume-mounted"})
        if proc.returncode != 1 or "test-only switch" not in proc.stderr or \
                os.listdir(base + "/roots") or os.path.exists(base + "/run/jobs/4901.json"):
            raise AssertionError("the switch without the guard was not refused: %r" % (proc,))
        print("ok: the switch is refused without %s=1" % faults.TEST_VARIABLE)
        tried = 0
        for step in faults.STEPS:
            if step in ("prologue.volume-created", "prologue.volume-formatted") or step in faults.ENCRYPTED_STEPS:
                continue  # inside lvm.create/remove: the guest's LVM matrix and jobvol scenario reach them
            kill = {faults.SWITCH: step, faults.TEST_VARIABLE: "1"}
            if step.startswith("epilogue"):
                proc = hook(cfg_dir, "prologue")
                if proc.returncode != 0:
                    raise AssertionError("prologue before %s failed: %s" % (step, proc.stderr))
                proc = hook(cfg_dir, "epilogue", env=kill)
            else:
                proc = hook(cfg_dir, "prologue", env=kill)
            if proc.returncode != -signal.SIGKILL:
                raise AssertionError("step %s: not killed (rc %s): %s" % (
                    step, proc.returncode, proc.stderr))
            tried += 1
            gc = hook(cfg_dir, "gc", "--all")
            left = leftovers(base)
            if gc.returncode != 0 or left:
                raise AssertionError("after a kill at %s, gc left %s (rc %d): %s" % (
                    step, left, gc.returncode, gc.stderr))
            if step == "prologue.temp-written" and "temp files" not in json.loads(gc.stdout):
                raise AssertionError("no temp file was left to sweep: %s" % gc.stdout)
            with open(canary, encoding="utf-8") as handle:
                if handle.read() != "precious\n":
                    raise AssertionError("the canary changed after a kill at %s" % step)
            print("ok: killed at %s; gc left nothing" % step)
        print("kill matrix: %d kill points tried, 0 leaks" % tried)
    finally:
        for m in reversed(mountinfo.under(mountinfo.read(), base, include_self=False)):
            mounts.umount(m.mount_point, lazy=True)
        subprocess.run(["userdel", USER], check=False)
        if not mountinfo.under(mountinfo.read(), base):
            shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
