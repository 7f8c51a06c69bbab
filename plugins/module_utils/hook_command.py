# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook command on a node (prologue, epilogue, gc, status): its contract with the batch system.

The job lifecycle itself is module_utils/lifecycle.py; this file turns a
command line into one call of it and its outcome into an exit code. The
role job_hooks installs a thin entry script, /usr/libexec/hpc-jobroot/jobroot
(roles/job_hooks/files/jobroot.py), that imports this module from the
node's private library tree, so a prologue costs a Python start, not an
Ansible run. Usage (docs/design.md, "The hook command"):

  jobroot prologue --batch-system slurm --       # SLURM_JOB_ID, SLURM_JOB_USER, SPANK_JOBROOT_IMAGE,
                                                 # SPANK_JOBROOT_ENCRYPT
  jobroot epilogue --batch-system slurm [--drain-on-failure] --
  jobroot prologue --batch-system torque -- JOBID USER GROUP JOBNAME LIMITS QUEUE ACCOUNT
  jobroot epilogue --batch-system torque [--drain-on-failure] -- JOBID USER GROUP JOBNAME SESSION LIMITS USED QUEUE ACCOUNT
  jobroot gc [--all | --retry]
  jobroot status [--json]

Everything after "--" is the batch system's, and partly the job user's (a
job name, account or queue may be "-h" or "--config-dir=/x"): it is plain
data, never an option (module_utils/hookargs.py). The job id is validated
before anything else.

Exit codes: 0 success (a refused Slurm job is a success: the reason is recorded
for the SPANK plugin, because a failed Slurm Prolog drains the node).
1 failure; for Torque, 1 makes pbs_mom abort the job (refused request, bad
arguments, or the node failed to set this job up max_setup_failures times)
and 2 makes it requeue the job (the node could not set it up), as Torque's
prologue exit-code table says. An epilogue with --drain-on-failure (Slurm:
the Epilog wrapper's last try; Torque: the epilogue, which runs once) whose
teardown is incomplete takes the node out of service with a reason of ours
(drain.py): a Slurm epilogue then exits 0, 1 only if that drain fails; a
Torque epilogue exits 1 either way (pbs_mom only logs it, and the log should
show the teardown failed). A usage error is 1 too, never 0 or 2: it
must neither run the job without its root nor requeue it forever. Messages
go to syslog (ident hpc-jobroot, with the job id) and standard error; for
Torque a refusal's reason also goes to standard output (pbs_mom copies the
prologue's output to the job's output) and a line to pbs_mom's log. A Torque
prologue's and epilogue's progress lines ("root ... ready", "torn down")
go to syslog and pbs_mom's log only, not to standard error: pbs_mom appends
both streams to the job's own output files, and a successful job's stderr
should hold the job's lines alone.

Imports: each subcommand imports what it needs when it runs (lifecycle,
and through it the job-root machinery; torque for Torque only; json for gc
and status; subprocess for gc's Slurm query; metrics only on a node with a
metrics_dir), so a hook start pays for no
other subcommand's modules (issue 18). ``python3 -X importtime`` shows
what a start costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import syslog
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import config, hookargs
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    JobrootError, ValidationError)

#: pbs_mom aborts the job (Torque Administrator Guide, prologue exit codes)
TORQUE_ABORT = 1
#: pbs_mom requeues the job
TORQUE_REQUEUE = 2

#: what ``jobroot --help`` says the command is
DESCRIPTION = "jobroot: the per-job hook command on a node (prologue, epilogue, gc, status)."


def log(message):
    """Send *message* (str) to syslog (as openlog in :func:`main` set it) and standard error."""
    syslog.syslog(syslog.LOG_INFO, message)
    sys.stderr.write(message + "\n")


def say(text):
    """Write *text* (str) and a newline to standard output: pbs_mom copies it to the job's output."""
    sys.stdout.write(text + "\n")


def slurm_alive(job_id):
    """True while Slurm still lists the job; True as well if Slurm cannot be asked."""
    import subprocess
    try:
        out = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%T"],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return True
    if out.returncode != 0:
        return "Invalid job id" not in out.stderr
    return bool(out.stdout.strip())


def torque_alive(cfg):
    """Return a callable job id -> bool: True while pbs_mom under ``cfg.pbs_home`` holds the job."""
    from ansible_collections.hpc.jobroot.plugins.module_utils import torque

    def alive(job_id):
        return torque.alive(cfg.pbs_home, job_id)
    return alive


class UsageError(Exception):
    """A bad command line: exit 1, never argparse's 2 (Torque: requeue) or 0."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse(ours):
    """Parse our own options (*ours*: the list of str before "--"); return an argparse.Namespace.

    Raises UsageError (never SystemExit) for an unknown option or command.
    """
    # --config-dir is taken before or after the subcommand.
    common = Parser(add_help=False)
    common.add_argument("--config-dir", default=argparse.SUPPRESS)
    parser = Parser(prog="jobroot", parents=[common],
                    description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in ("prologue", "epilogue"):
        cmd = sub.add_parser(name, parents=[common])
        cmd.add_argument("--batch-system", choices=["slurm", "torque"], default="slurm")
        if name == "epilogue":
            cmd.add_argument("--drain-on-failure", action="store_true",
                             help="if the teardown fails, take the node out of service with a reason "
                                  "of ours (Slurm: drain, and exit 0; Torque: offline with a note; drain.py)")
    gc_cmd = sub.add_parser("gc", parents=[common])
    gc_cmd.add_argument("--all", action="store_true", help="every job is gone (at boot)")
    gc_cmd.add_argument("--batch-system", choices=["slurm", "torque"], default="slurm")
    gc_cmd.add_argument("--retry", action="store_true",
                        help="only if a failed teardown's retry is due (the retry timer; drain.py)")
    status_cmd = sub.add_parser("status", parents=[common])
    status_cmd.add_argument("--json", action="store_true", help="the status as JSON (lifecycle.status)")
    return parser.parse_args(ours)


def main(argv=None):
    """Run the hook command with *argv* (list of str, default ``sys.argv[1:]``); return the exit code.

    The exit codes are the module docstring's; nothing here raises for a
    failure of the job or the node, it becomes an exit code and a message.
    """
    ours, theirs = hookargs.split(sys.argv[1:] if argv is None else argv)
    syslog.openlog("hpc-jobroot", syslog.LOG_PID, syslog.LOG_DAEMON)
    try:
        opts = parse(ours)
    except UsageError as exc:
        log("usage error: %s" % exc)
        return 1
    is_torque = getattr(opts, "batch_system", None) == "torque"
    if opts.command in ("prologue", "epilogue"):
        try:
            job = hookargs.batch_job(opts.batch_system, opts.command, theirs, os.environ)
        except ValidationError as exc:
            # the job id comes first: nothing has been read or changed yet
            log("%s refused its arguments: %s" % (opts.command, exc))
            if is_torque:
                say("hpc-jobroot: %s" % exc)
            return 1
        return run_job_hook(opts, job)
    if theirs is not None:
        log("%s takes no arguments after '--'" % opts.command)
        return 1
    import json
    from ansible_collections.hpc.jobroot.plugins.module_utils import lifecycle
    config_dir = getattr(opts, "config_dir", config.CONFIG_DIR)
    try:
        cfg = config.load(config_dir)
        if opts.command == "status":
            shown = lifecycle.status(cfg)
            if opts.json:
                say(json.dumps(shown, indent=2, sort_keys=True))
            else:
                from ansible_collections.hpc.jobroot.plugins.module_utils import status_table
                sys.stdout.write(status_table.render(shown))
            return 0
        if opts.retry:
            from ansible_collections.hpc.jobroot.plugins.module_utils import drain
            if not drain.retry_due(cfg.run_dir):
                return 0
        alive = None if opts.all else (torque_alive(cfg) if is_torque else slurm_alive)
        report = lifecycle.gc(cfg, alive, log)
        say(json.dumps(report, indent=2, sort_keys=True))
        paced = after_gc(cfg, opts, report)
        if cfg.metrics_dir:
            from ansible_collections.hpc.jobroot.plugins.module_utils import metrics
            try:
                metrics.record_gc(cfg, report)
            except (JobrootError, OSError, ValueError) as exc:
                log("cannot write the metrics of this gc: %s" % exc)
        return 1 if paced or any(isinstance(v, str) and v.startswith("error") for v in report.values()) else 0
    except JobrootError as exc:
        log("%s failed: %s" % (opts.command, exc))
        return 1


def run_job_hook(opts, job):
    """Run the prologue or epilogue of *job* (a hookargs.BatchJob); return the exit code.

    *opts*: the parsed options (``command``, ``batch_system``, maybe
    ``config_dir``). Success and a refused Slurm job give 0; a refused
    Torque job 1 (abort); a failure 1 for Slurm and for any epilogue, and
    for a Torque prologue 2 (requeue) or 1 (:func:`torque_setup_failed`).
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import lifecycle
    # pbs_mom runs the prologue with umask 077: the job's user could not
    # enter the directories the prologue makes.
    os.umask(0o022)
    is_torque = opts.batch_system == "torque"
    config_dir = getattr(opts, "config_dir", config.CONFIG_DIR)
    progress = log
    cfg = None
    started = time.monotonic()
    outcome = "failed"
    try:
        cfg = config.load(config_dir)
        if is_torque:
            progress = torque_progress(cfg, job.job_id)
        if opts.command == "epilogue":
            try:
                lifecycle.epilogue(cfg, job.job_id, opts.batch_system, progress)
            except (JobrootError, OSError) as exc:
                if not opts.drain_on_failure:
                    raise
                return teardown_failed(cfg, job.job_id, exc, opts.batch_system, progress)
            outcome = "ok"
            return 0
        wanted = lifecycle.requested_image(cfg, opts.batch_system, os.environ, job.queue)
        result = lifecycle.prologue(cfg, job.job_id, job.user, wanted, opts.batch_system, progress,
                                    encrypt=lifecycle.requested_encryption(opts.batch_system, os.environ))
        outcome = "refused" if "refused" in result else "ok"
        if "refused" not in result:
            if is_torque:
                torque_event(cfg, job.job_id, "hpc-jobroot: job root %s (image %s)" % (
                    result["root"], result["image"]))
            return 0
        if not is_torque:
            return 0  # the SPANK plugin shows the reason and fails the job
        say("hpc-jobroot: %s" % result["refused"])  # progress() put it in pbs_mom's log
        return TORQUE_ABORT
    except (JobrootError, OSError) as exc:
        log("%s %s failed: %s" % (opts.command, job.job_id, exc))
        if not is_torque:
            return 1
        if opts.command == "epilogue":
            return 1
        if cfg is None:
            # no config, so no run_dir to count failures in: requeueing would
            # bring the job straight back here
            say("hpc-jobroot: job %s aborted: this node's configuration is unusable: %s"
                % (job.job_id, exc))
            return TORQUE_ABORT
        return torque_setup_failed(cfg, job.job_id, exc)
    finally:
        if cfg is not None:
            record_metrics(cfg, opts.command, time.monotonic() - started, outcome)


def record_metrics(cfg, hook, seconds, outcome):
    """Count a hook run in the node's metrics (metrics.record_hook); a failure there is only logged.

    *hook*: ``prologue`` or ``epilogue``; *seconds*: float; *outcome*:
    ``ok``, ``refused`` or ``failed``. No job fails because a number could
    not be written.
    """
    if not cfg.metrics_dir:
        return
    from ansible_collections.hpc.jobroot.plugins.module_utils import metrics
    try:
        metrics.record_hook(cfg, hook, seconds, outcome)
    except (JobrootError, OSError, ValueError) as exc:
        log("cannot write the metrics of this %s: %s" % (hook, exc))


def teardown_failed(cfg, job_id, exc, batch_system, progress=log):
    """Take the node out of service with our reason and schedule gc's retry; return the exit code.

    *exc*: why the teardown of job *job_id* is incomplete; *batch_system*:
    ``slurm`` or ``torque``; *progress*: where the outcome is logged
    besides (Torque: pbs_mom's log, torque_progress). Slurm: 0 once the
    node is drained, which keeps Slurm from draining it again with its own
    reason ("Epilog error") that gc would not resume (drain.py); 1 if our
    drain fails, so that Slurm drains it and no new job lands on a node
    that still holds a dead job's root either way. Torque: pbs_mom takes no
    node offline for a failed epilogue and only logs a non-zero exit, so
    the node goes offline with our note (``pbsnodes -o -N``) and the exit
    is 1 either way, which leaves "system epilog failed" in pbs_mom's log.
    A node already out of service for a reason not ours is left as it is
    (drain.drain returns False). Raises nothing.
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import drain
    log("epilogue %s failed: %s" % (job_id, exc))
    reason = drain.reason_for(job_id, exc)
    failed = 1 if batch_system == "torque" else 0
    try:
        drain.note_failure(cfg.run_dir)
        ours = drain.drain(cfg, reason, batch_system=batch_system)
    except (JobrootError, OSError) as err:
        if batch_system == "torque":
            log("job %s: cannot take the node offline (%s); gc retries the teardown" % (job_id, err))
        else:
            log("job %s: cannot drain the node (%s): exit 1, so that Slurm drains it" % (job_id, err))
        return 1
    if not ours:
        progress("job %s: node %s already out of service for another reason: left as it is; "
                 "gc retries the teardown" % (job_id, drain.node_name(cfg, batch_system)))
        return failed
    progress("job %s: node %s %s (%s); gc retries the teardown and resumes it" % (
        job_id, drain.node_name(cfg, batch_system),
        "offline" if batch_system == "torque" else "drained", reason))
    return failed


def after_gc(cfg, opts, report):
    """After a gc run: pace the next retry, and resume the node if it is clean and drained by us.

    *report*: lifecycle.gc's report. A job gc could not tear down (an
    ``error`` entry) counts a failure in the retry file (drain.note_failure).
    When a retry was pending and the run had no error and no busy job, the
    node is resumed if it is out of service with a reason of ours
    (drain.resume_if_ours, for the batch system of ``opts.batch_system``:
    Slurm or Torque), then the retry file is removed; without a pending
    retry no batch system is asked, so a gc on demand on a healthy node
    costs no scontrol or pbsnodes call. A boot-time ``gc --all`` asks no batch
    system either (slurmctld may not answer yet): it makes a retry due at
    once, so the retry timer's first run resumes a node drained before the
    reboot. Returns 1 if the retry file cannot be written or scontrol or pbsnodes fails
    (the file stays, so the next run tries again), else 0; both are logged.
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import drain
    unfinished = [v for v in report.values() if isinstance(v, str)]
    try:
        if any(v.startswith("error") for v in unfinished):
            log("gc: teardown still incomplete; next retry at %s" % time.strftime(
                "%H:%M:%S", time.localtime(drain.note_failure(cfg.run_dir))))
            return 0
        if unfinished:
            return 0  # a prologue or epilogue is running: the next run decides
        if opts.all:
            drain.schedule(cfg.run_dir)
            return 0
        if not drain.load_retry(cfg.run_dir):
            return 0
        if drain.resume_if_ours(cfg, batch_system=opts.batch_system):
            log("gc: node %s clean, resumed (its drain reason was ours)"
                % drain.node_name(cfg, opts.batch_system))
        drain.clear(cfg.run_dir)
    except (JobrootError, OSError) as exc:
        log("gc: cannot pace retries or resume the node: %s" % exc)
        return 1
    return 0


def torque_setup_failed(cfg, job_id, exc):
    """Requeue the job (2), or abort it (1) once it failed max_setup_failures times here.

    The count is lifecycle.note_failure's; if it cannot be counted the job is
    aborted, since a requeue could bring it straight back to this node.
    *exc*: the failure, shown in the messages.
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import lifecycle
    try:
        count = lifecycle.note_failure(cfg, job_id)
    except (JobrootError, OSError) as err:
        log("job %s: cannot count its failed prologues (%s): aborting it" % (job_id, err))
        count = cfg.max_setup_failures
    if count < cfg.max_setup_failures:
        torque_event(cfg, job_id, "hpc-jobroot: prologue failed (%d of %d), requeued: %s" % (
            count, cfg.max_setup_failures, exc))
        return TORQUE_REQUEUE
    reason = ("hpc-jobroot: job %s aborted: its prologue failed %d times on this node "
              "(max_setup_failures), last: %s" % (job_id, count, exc))
    log(reason)
    say(reason)
    torque_event(cfg, job_id, reason)
    return TORQUE_ABORT


def torque_progress(cfg, job_id):
    """Return a log function for *job_id*'s Torque hook: syslog and pbs_mom's log, no stderr.

    *cfg*: the node config (config.load). The function takes one str.
    pbs_mom appends a prologue's and epilogue's stderr to the job's own
    output (Torque src/resmom/prolog.c, setup_pelog_outputs()), so progress
    lines there would reach every job's stderr. Failures are still reported
    by run_job_hook() on the standard streams, and refusals on standard
    output. Raises nothing: a pbs_mom log that cannot be written is logged.
    """
    def progress(message):
        syslog.syslog(syslog.LOG_INFO, message)
        torque_event(cfg, job_id, "hpc-jobroot: %s" % message)
    return progress


def torque_event(cfg, job_id, text):
    """Write *text* as a job event to pbs_mom's log; a failure to do so is only logged."""
    from ansible_collections.hpc.jobroot.plugins.module_utils import torque
    try:
        torque.log_event(cfg.pbs_home, job_id, text)
    except OSError as exc:
        log("job %s: cannot write to pbs_mom's log: %s" % (job_id, exc))
