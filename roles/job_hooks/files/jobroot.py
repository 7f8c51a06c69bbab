# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""jobroot: the per-job hook command on a node (prologue, epilogue, gc, status).

A thin door into plugins/module_utils/jobroot.py, which holds the lifecycle.
It imports the library directly, so a prologue costs a Python start, not an
Ansible run. Usage (docs/design.md, "The hook command"):

  jobroot prologue --batch-system slurm          # SLURM_JOB_ID, SLURM_JOB_USER, SPANK_JOBROOT_OS
  jobroot epilogue --batch-system slurm
  jobroot prologue --batch-system torque JOBID USER GROUP JOBNAME LIMITS QUEUE ACCOUNT
  jobroot epilogue --batch-system torque JOBID USER GROUP JOBNAME SESSION LIMITS USED QUEUE ACCOUNT
  jobroot gc [--all]
  jobroot status

Exit codes: 0 success (a refused Slurm job is a success: the reason is recorded
for the SPANK plugin, because a failed Slurm Prolog drains the node).
1 failure; for Torque, 1 makes pbs_mom abort the job (refused request) and
2 makes it requeue the job (the node could not set it up), as Torque's
prologue exit-code table says. Messages go to syslog (ident hpc-jobroot,
with the job id) and standard error.
"""

import argparse
import json
import os
import subprocess
import sys
import syslog

LIBRARY = "/usr/lib/hpc-jobroot"
if os.path.isdir(LIBRARY):
    sys.path.insert(0, LIBRARY)

# pylint: disable=wrong-import-position
from ansible_collections.hpc.jobroot.plugins.module_utils import config, jobroot  # noqa: E402
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError  # noqa: E402

TORQUE_ABORT = 1
TORQUE_REQUEUE = 2


def log(message):
    syslog.syslog(syslog.LOG_INFO, message)
    print(message, file=sys.stderr)


def slurm_alive(job_id):
    """True while Slurm still lists the job; True as well if Slurm cannot be asked."""
    try:
        out = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%T"],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return True
    if out.returncode != 0:
        return "Invalid job id" not in out.stderr
    return bool(out.stdout.strip())


def torque_alive(cfg):
    def alive(job_id):
        return os.path.exists(os.path.join(cfg.pbs_home, "mom_priv", "jobs", job_id + ".JB"))
    return alive


def main(argv=None):
    # --config-dir is taken before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="jobroot", parents=[common],
                                     description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prologue", "epilogue"):
        cmd = sub.add_parser(name, parents=[common])
        cmd.add_argument("--batch-system", choices=["slurm", "torque"], default="slurm")
        cmd.add_argument("args", nargs="*", help="Torque's prologue/epilogue arguments")
    gc_cmd = sub.add_parser("gc", parents=[common])
    gc_cmd.add_argument("--all", action="store_true", help="every job is gone (at boot)")
    gc_cmd.add_argument("--batch-system", choices=["slurm", "torque"], default="slurm")
    sub.add_parser("status", parents=[common])
    opts = parser.parse_args(argv)
    config_dir = getattr(opts, "config_dir", config.CONFIG_DIR)
    # pbs_mom runs the prologue with umask 077: the job's user could not
    # enter the directories the prologue makes.
    os.umask(0o022)
    syslog.openlog("hpc-jobroot", syslog.LOG_PID, syslog.LOG_DAEMON)
    torque = getattr(opts, "batch_system", None) == "torque"
    try:
        cfg = config.load(config_dir)
        if opts.command == "status":
            print(json.dumps(jobroot.status(cfg), indent=2, sort_keys=True))
            return 0
        if opts.command == "gc":
            alive = None if opts.all else (torque_alive(cfg) if torque else slurm_alive)
            report = jobroot.gc(cfg, alive, log)
            print(json.dumps(report, indent=2, sort_keys=True))
            return 1 if any(isinstance(v, str) and v.startswith("error") for v in report.values()) else 0
        if torque:
            if len(opts.args) < 2:
                parser.error("Torque passes at least JOBID and USER")
            job_id, user = opts.args[0], opts.args[1]
            queue = opts.args[5] if opts.command == "prologue" and len(opts.args) > 5 else None
        else:
            job_id, user = os.environ.get("SLURM_JOB_ID", ""), os.environ.get("SLURM_JOB_USER", "")
            queue = None
        if opts.command == "epilogue":
            jobroot.epilogue(cfg, job_id, opts.batch_system, log)
            return 0
        wanted = jobroot.requested_os(cfg, opts.batch_system, os.environ, queue)
        result = jobroot.prologue(cfg, job_id, user, wanted, opts.batch_system, log)
        if "refused" in result:
            if torque:
                print(result["refused"])  # pbs_mom copies prologue output to the job's output
                return TORQUE_ABORT
        return 0
    except JobrootError as exc:
        log("%s %s failed: %s" % (opts.command, " ".join(getattr(opts, "args", [])[:1])
                                  or os.environ.get("SLURM_JOB_ID", ""), exc))
        return TORQUE_REQUEUE if torque else 1


if __name__ == "__main__":
    sys.exit(main())
