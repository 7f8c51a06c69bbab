# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Torque node's pbs_mom keeps under ``$PBS_HOME``, as the hook uses it.

* The job script. pbs_mom writes a batch job's script to
  ``$PBS_HOME/mom_priv/jobs/<job id>.SC`` when the job arrives (before the
  prologue) and, on a default build, starts the job's shell with that path
  as its argument, *after* the chroot to ``PBS_O_ROOTDIR``
  (``TMomFinalizeChild()`` in ``src/resmom/start_exec.c``). So the job root
  needs that one file at the same path: :func:`script_entry` is the bind
  mount (read-only, not the whole spool) that makes it so.
* The mom's log. pbs_mom writes ``$PBS_HOME/mom_logs/YYYYMMDD`` (local
  date), one event per line: ``MM/DD/YYYY HH:MM:SS;TYPE;DAEMON.PID;CLASS;ID;TEXT``
  (``log_record()`` in ``src/lib/Liblog/pbs_log.c``; TYPE ``0008`` is
  PBSEVENT_JOB). pbs_mom closes its log in the child that runs a job, so the
  patched ``site_job_setup()`` cannot write there: :func:`log_event` appends
  the hook's own "job root" line to the same file (O_APPEND, one write).
* Whether a job still runs: its ``<job id>.JB`` file in ``mom_priv/jobs``.
"""

from __future__ import annotations

import os
import stat
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import validate

PBSEVENT_JOB = 0x0008
DAEMON = "jobroot"


def jobs_dir(pbs_home):
    """Return ``<pbs_home>/mom_priv/jobs`` (str)."""
    return os.path.join(pbs_home, "mom_priv", "jobs")


def script_path(pbs_home, job_id):
    """Return the path of job *job_id*'s script file (``<id>.SC``); raises ValidationError for a bad id."""
    return os.path.join(jobs_dir(pbs_home), validate.job_id(job_id) + ".SC")


def script_entry(pbs_home, job_id):
    """Return the bind-tree entry (bindtree.spec dict) for the job's script, or None.

    None when there is no script file (an interactive job, ``qsub -I``) or
    it is not a regular file. The bind is read-only, nosuid and nodev at
    the same path inside the root, so the job sees nothing else of
    ``$PBS_HOME``. Not noexec: on a default build pbs_mom writes the
    script's path to the login shell's standard input, so the shell
    executes the file (``start_exec.c``, SHELL_INVOKE); it is the job
    user's own file, mode 0700, so noexec would protect nothing.
    """
    path = script_path(pbs_home, job_id)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return {"target": path.lstrip("/"), "type": "bind", "source": path,
            "options": ["ro", "nosuid", "nodev"]}


def alive(pbs_home, job_id):
    """True while pbs_mom holds job *job_id* (its ``.JB`` file exists)."""
    return os.path.exists(os.path.join(jobs_dir(pbs_home), job_id + ".JB"))


def log_event(pbs_home, job_id, text, now=None):
    """Append one job event to pbs_mom's log of the day; return the log's path, or None.

    *text*: one line (newlines become spaces). *now*: seconds since the
    epoch (default: the current time). Nothing is written (None) when
    ``<pbs_home>/mom_logs`` does not exist: the node has no pbs_mom. The
    file is opened with O_APPEND | O_NOFOLLOW and written in one write(2),
    so the line does not interleave with pbs_mom's own lines.
    """
    folder = os.path.join(pbs_home, "mom_logs")
    if not os.path.isdir(folder) or os.path.islink(folder):
        return None
    stamp = time.localtime(now if now is not None else time.time())
    path = os.path.join(folder, time.strftime("%Y%m%d", stamp))
    line = "%s;%04x;%10.10s.%d;Job;%s;%s\n" % (
        time.strftime("%m/%d/%Y %H:%M:%S", stamp), PBSEVENT_JOB, DAEMON, os.getpid(),
        job_id, " ".join(text.splitlines()))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode("utf-8", "replace"))
    finally:
        os.close(fd)
    return path
