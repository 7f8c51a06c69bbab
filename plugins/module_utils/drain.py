# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain a Slurm node whose job teardown failed, and resume it once gc leaves it clean.

When an epilogue cannot tear a job's root down (a volume still busy, an
unmount that fails), the node must take no new job until gc has finished
the teardown. Slurm drains a node itself when its Epilog fails, but with
its own reason ("Epilog error"), and nothing resumes it: someone has to.
So the hook command drains the node with a reason of its own, starting
with :data:`PREFIX`, and exits 0; and gc, when it leaves the node clean,
resumes the node only if the drain reason is still one of ours. A node an
admin drained (any other reason) is never resumed here.

The retry file ``<run_dir>/retry.json`` paces gc's retries after a failed
teardown: the role's timer runs ``jobroot gc --retry`` every minute, which
does nothing without the file or before the file's ``next`` time, so a
node without a pending teardown costs one Python start a minute and no
call to LVM or slurmctld. Each failed retry doubles the wait, from
:data:`FIRST_WAIT` up to :data:`MAX_WAIT` seconds.

Commands run as argv lists (no shell); the reason is one line of at most
:data:`MAX_REASON` characters. Slurm only: a Torque node keeps today's
behaviour (the epilogue fails, pbs_mom logs it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

#: every drain reason this code sets starts with it; only such drains are resumed
PREFIX = "jobroot:"
MAX_REASON = 200
RETRY_FILE = "retry.json"
FIRST_WAIT = 60
MAX_WAIT = 3600
TIMEOUT = 30


def node_name(cfg):
    """Return the Slurm node name: the node config's ``slurm_node_name``, else the short host name."""
    return cfg.slurm_node_name or os.uname().nodename.split(".")[0]


def _run(argv, run):
    try:
        out = (run or subprocess.run)(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JobrootError("%s failed: %s" % (" ".join(argv[:2]), exc)) from None
    if out.returncode != 0:
        raise JobrootError("%s failed (exit %d): %s" % (" ".join(argv[:2]), out.returncode,
                                                        (out.stderr or out.stdout).strip()))
    return out.stdout


def reason_for(job_id, error):
    """Return the drain reason for job *job_id* whose teardown failed with *error* (str): one line, PREFIX first."""
    text = "%s teardown of job %s incomplete, gc retries: %s" % (PREFIX, job_id, error)
    return re.sub(r"\s+", " ", text)[:MAX_REASON]


def drain(cfg, reason, run=None):
    """Drain this Slurm node with *reason* (from :func:`reason_for`).

    Runs ``scontrol update nodename=NODE state=drain reason=REASON``; running
    jobs go on, no new job starts. *run*: a stand-in for subprocess.run
    (tests), None for the real one.
    Raises JobrootError if scontrol fails or *reason* does not start with
    :data:`PREFIX`.
    """
    if not reason.startswith(PREFIX) or "\n" in reason:
        raise JobrootError("not a drain reason of ours: %r" % reason)
    _run(["scontrol", "update", "nodename=" + node_name(cfg), "state=drain", "reason=" + reason], run)


def drain_reason(cfg, run=None):
    """Return the reason this node is drained for, or None if it is not drained (or draining).

    Reads ``scontrol show node -o NODE``: ``State=`` names DRAIN (DRAINED,
    DRAINING, or a state with ``+DRAIN``) and ``Reason=`` is the text before
    the trailing ``[user@time]``. Raises JobrootError if scontrol fails.
    """
    line = _run(["scontrol", "show", "node", "-o", node_name(cfg)], run)
    state = re.search(r"(?:^| )State=(\S+)", line)
    if not state or "DRAIN" not in state.group(1):
        return None
    reason = re.search(r"(?:^| )Reason=(.*?)(?: \[[^\]]*\])?\s*$", line)
    return reason.group(1) if reason else ""


def resume_if_ours(cfg, run=None):
    """Resume this node if it is drained with a reason of ours; return True if it was resumed.

    A drain with any other reason (an admin's, Slurm's own "Epilog error")
    is left as it is. Raises JobrootError if scontrol fails.
    """
    reason = drain_reason(cfg, run)
    if reason is None or not reason.startswith(PREFIX):
        return False
    _run(["scontrol", "update", "nodename=" + node_name(cfg), "state=resume"], run)
    return True


def note_failure(run_dir, now=None):
    """Record one failed teardown attempt in the retry file; return the Unix time of the next retry (float).

    The wait doubles with each failure: FIRST_WAIT, 2 x FIRST_WAIT, ... up
    to MAX_WAIT seconds. Raises OSError.
    """
    now = time.time() if now is None else now
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    failures = load_retry(run_dir).get("failures", 0) + 1
    wait = min(FIRST_WAIT * 2 ** (failures - 1), MAX_WAIT)
    atomic.write(os.path.join(run_dir, RETRY_FILE),
                 json.dumps({"failures": failures, "next": now + wait}) + "\n", 0o600)
    return now + wait


def load_retry(run_dir):
    """Return the retry file's dict (``failures``: int, ``next``: Unix time), ``{}`` if there is none.

    A file that cannot be read or parsed counts as a retry due now with no
    failures: a pending teardown must not be forgotten over a bad file.
    """
    try:
        fd = os.open(os.path.join(run_dir, RETRY_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as handle:
            data = json.load(handle)
        return {"failures": int(data["failures"]), "next": float(data["next"])}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError):
        return {"failures": 0, "next": 0.0}


def schedule(run_dir, now=None):
    """Make a retry due at once without counting a failure (after the boot-time gc, see hook_command).

    Raises OSError.
    """
    now = time.time() if now is None else now
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    retry = load_retry(run_dir)
    atomic.write(os.path.join(run_dir, RETRY_FILE),
                 json.dumps({"failures": retry.get("failures", 0), "next": now}) + "\n", 0o600)


def retry_due(run_dir, now=None):
    """True if a teardown is pending and its retry time has come (``jobroot gc --retry`` runs then)."""
    retry = load_retry(run_dir)
    return bool(retry) and (time.time() if now is None else now) >= retry["next"]


def clear(run_dir):
    """Remove the retry file (no teardown pending); a missing file is fine."""
    try:
        os.unlink(os.path.join(run_dir, RETRY_FILE))
    except FileNotFoundError:
        pass
