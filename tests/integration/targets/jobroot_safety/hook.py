# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directory mode and refusal versus failure, through the hook command itself.

Issue 11, item 6: a node config without a volume group; roles/job_hooks/
files/jobroot.py runs the Slurm prologue, the job is chrooted into its root
as its user (chroot(8) --userspec, as the SPANK plugin does it), the
epilogue and gc run; nothing is left.
Item 7: a broken image and an unsafe allow-list refuse only the jobs that
need them (exit 0 for Slurm, reason recorded, "BROKEN" logged) while the
host image and the good image are still served; the job's user has a home
whose path holds a space.

Everything lives in one scratch directory below /var/lib (root-owned path
components, as the image checks require; root_base may not be under /tmp).
A throw-away user is made with useradd and removed again.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from ansible_collections.hpc.jobroot.plugins.module_utils import mountinfo, mounts

HOOK = os.path.join(os.environ["COLLECTION"], "roles", "job_hooks", "files", "jobroot.py")
USER = "jrtest%d" % os.getpid()


def hook(cfg_dir, *args, job=None, image_name=None):
    env = dict(os.environ, SLURM_JOB_ID=job or "", SLURM_JOB_USER=USER)
    env.pop("SPANK_JOBROOT_IMAGE", None)
    if image_name:
        env["SPANK_JOBROOT_IMAGE"] = image_name
    # Slurm's Prolog/Epilog wrappers end the hook's own options with "--" (hookargs)
    tail = ["--"] if args and args[0] in ("prologue", "epilogue") else []
    return subprocess.run([sys.executable, HOOK, "--config-dir", cfg_dir] + list(args) + tail,
                          env=env, capture_output=True, text=True, check=False, timeout=120)


def check(cond, what, proc=None):
    if not cond:
        raise AssertionError("%s%s" % (what, "" if proc is None else
                                       "\nstdout: %s\nstderr: %s" % (proc.stdout, proc.stderr)))
    print("ok: %s" % what)


def config(base, name, allow_mode=0o644):
    cfg_dir = os.path.join(base, name)
    os.makedirs(cfg_dir)
    allow = os.path.join(cfg_dir, "images.conf")
    with open(allow, "w", encoding="utf-8") as handle:
        handle.write("good:%s/images/good\nbroken:%s/images/broken\n" % (base, base))
    os.chmod(allow, allow_mode)
    with open(os.path.join(cfg_dir, "node.json"), "w", encoding="utf-8") as handle:
        json.dump({"root_base": base + "/roots", "run_dir": base + "/run",
                   "image_base": base + "/images", "allow_list": allow,
                   "pbs_home": base + "/pbs", "home": "user", "host_files": []}, handle)
    return cfg_dir


def mounted_below(path):
    return [m.mount_point for m in mountinfo.read() if m.mount_point.startswith(path + "/")]


def main():
    base = tempfile.mkdtemp(prefix="hpc-jobroot-test-", dir="/var/lib")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home dir", USER)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
                    USER], check=True)
    try:
        os.makedirs(home)
        shutil.chown(home, USER, USER)
        with open(os.path.join(home, "canary"), "w", encoding="utf-8") as handle:
            handle.write("precious\n")
        for image, mode in (("good", 0o755), ("broken", 0o777)):
            os.makedirs(os.path.join(base, "images", image, "usr"))
            os.chmod(os.path.join(base, "images", image), mode)
        good_cfg = config(base, "etc")
        bad_cfg = config(base, "etc-unsafe", allow_mode=0o666)
        root = os.path.join(base, "roots", "4711")

        # Item 6: prologue, chroot as the job's user, epilogue, in directory mode.
        proc = hook(good_cfg, "prologue", job="4711")
        check(proc.returncode == 0 and os.path.isdir(root), "directory-mode prologue", proc)
        check(not os.path.ismount(root), "the root is a plain directory, not a mount")
        check("directory mode" in proc.stderr, "the log says directory mode", proc)
        job = subprocess.run(
            ["chroot", "--userspec=%s:%s" % (USER, USER), root, "/bin/sh", "-c",
             'cd "$0" && cat canary && echo out > /tmp/job-file && mkdir -p /var/tmp/d/e && '
             'echo x > /var/tmp/d/e/f && id -un', home],
            capture_output=True, text=True, check=False)
        check(job.returncode == 0 and job.stdout.split() == ["precious", USER],
              "the job runs chrooted as its user and sees its home (path with a space)", job)
        proc = hook(good_cfg, "epilogue", job="4711")
        check(proc.returncode == 0 and not os.path.lexists(root), "epilogue removes the root", proc)
        check(mounted_below(base + "/roots") == [], "nothing mounted below root_base")
        check(os.path.exists(os.path.join(home, "canary")), "the home's canary survives")

        # gc: a job whose epilogue never ran (boot-time sweep).
        proc = hook(good_cfg, "prologue", job="4712")
        check(proc.returncode == 0 and os.path.isdir(base + "/roots/4712"), "prologue 4712", proc)
        subprocess.run(["chroot", "--userspec=%s:%s" % (USER, USER), base + "/roots/4712",
                        "/bin/sh", "-c", "echo left > /tmp/left"], check=True)
        table = hook(good_cfg, "status")
        check(table.returncode == 0 and re.search(r"^4712 +%s +\S+ +ready +\S+ +- +- +[1-9]" % USER,
                                                  table.stdout, re.M) and "\n!" not in table.stdout,
              "status shows job 4712 ready with its mounts, and nothing leaked", table)
        proc = hook(good_cfg, "gc", "--all")
        status = json.loads(hook(good_cfg, "status", "--json").stdout)
        table = hook(good_cfg, "status")
        check(table.returncode == 0 and table.stdout.startswith("no jobs\n") and "\n!" not in table.stdout,
              "status after gc: no jobs, nothing leaked", table)
        check(proc.returncode == 0 and status["jobs"] == {} and status["mounts"] == [] and
              status["pins"] == {} and os.listdir(base + "/roots") == [],
              "gc --all leaves no state, pin, mount or root", proc)

        # Item 7: a broken image is refused with the reason; others are served.
        proc = hook(good_cfg, "prologue", job="4713", image_name="broken")
        refusal = os.path.join(base, "run", "jobs", "4713.refused")
        check(proc.returncode == 0 and os.path.exists(refusal) and
              "broken" in open(refusal, encoding="utf-8").read() and
              "BROKEN IMAGE" in proc.stderr, "a broken image refuses the job, loudly", proc)
        proc = hook(good_cfg, "prologue", job="4714", image_name="good")
        check(proc.returncode == 0 and os.path.isdir(base + "/roots/4714/usr"),
              "the good image is still served", proc)
        proc = hook(good_cfg, "prologue", job="4715")
        check(proc.returncode == 0 and os.path.isdir(base + "/roots/4715/usr/bin"),
              "the host image is still served", proc)

        # Item 7: an unsafe allow-list refuses named images, still serves the host image.
        proc = hook(bad_cfg, "prologue", job="4716", image_name="good")
        check(proc.returncode == 0 and "unusable" in open(
            os.path.join(base, "run", "jobs", "4716.refused"), encoding="utf-8").read() and
            "BROKEN ALLOW-LIST" in proc.stderr, "an unsafe allow-list refuses a named image", proc)
        proc = hook(bad_cfg, "prologue", job="4717")
        check(proc.returncode == 0 and os.path.isdir(base + "/roots/4717/usr/bin"),
              "an unsafe allow-list still serves the host image", proc)
        for job in ("4713", "4714", "4715", "4716", "4717"):
            proc = hook(good_cfg, "epilogue", job=job)
            check(proc.returncode == 0, "epilogue %s" % job, proc)
        check(os.listdir(base + "/roots") == [] and mounted_below(base + "/roots") == [],
              "every root and mount is gone")
    finally:
        for path in reversed(mounted_below(base)):
            mounts.umount(path, lazy=True)
        if os.path.ismount(base + "/roots"):
            mounts.umount(base + "/roots", lazy=True)
        subprocess.run(["userdel", USER], check=False)
        if not mounted_below(base):
            shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
