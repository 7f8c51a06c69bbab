# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain a node whose job teardown failed, and resume it once gc leaves it clean.

When an epilogue cannot tear a job's root down (a volume still busy, an
unmount that fails), the node must take no new job until gc has finished
the teardown. The hook command drains the node through its batch system
with a reason of its own, starting with :data:`PREFIX`; gc, when it leaves
the node clean, resumes the node only if the reason is still one of ours.
A node someone else took out of service (an admin, with any other reason
or none; Slurm's own "Epilog error") is never resumed here, and
:func:`drain` does not overwrite their reason either.

Three functions, :func:`drain`, :func:`drain_reason` and
:func:`resume_if_ours`, each take the batch system (``slurm`` or
``torque``, the hook command's ``--batch-system``) and use its backend:

* Slurm (:class:`_Slurm`): ``scontrol update nodename=NODE state=drain
  reason=...``, ``scontrol show node -o NODE``, ``state=resume``. Slurm
  drains a node itself when its Epilog fails, but with its own reason, and
  nothing resumes it: so the Epilog wrapper's last try exits 0 once the
  node is drained with our reason.
* Torque (:class:`_Torque`): the node is marked offline with a note,
  ``pbsnodes -o -N NOTE NODE``; read with ``pbsnodes -x NODE``; resumed
  with ``pbsnodes -c -N "" NODE``. Torque never takes a node out of service
  for a failed epilogue (pbs_mom only logs it). The class docstring says
  what Torque's source establishes about these flags.

The retry file ``<run_dir>/retry.json`` paces gc's retries after a failed
teardown: the role's timer runs ``jobroot gc --retry`` every minute, which
does nothing without the file or before the file's ``next`` time, so a
node without a pending teardown costs one Python start a minute and no
call to LVM or the batch system. Each failed retry doubles the wait, from
:data:`FIRST_WAIT` up to :data:`MAX_WAIT` seconds.

Commands run as argv lists (no shell). The node name is checked
(validate.node_name) and the reason is one line of at most :data:`MAX_REASON`
printable ASCII characters without ``<``, ``>`` or ``&`` before either
reaches a command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

#: every drain reason this code sets starts with it; only such drains are resumed
PREFIX = "jobroot:"
#: below Torque's old limit of 256 characters for a note (pbs_ifl.h MAX_NOTE, Torque < 6.0.1)
MAX_REASON = 200
RETRY_FILE = "retry.json"
FIRST_WAIT = 60
MAX_WAIT = 3600
TIMEOUT = 30
BATCH_SYSTEMS = ("slurm", "torque")

#: what a reason may not hold: anything but printable ASCII, and the three
#: characters Torque's ``pbsnodes -x`` prints unescaped (``<`` becomes byte
#: 14, ``&`` and ``>`` stay as they are: MXMLSetVal() in u_MXML.c)
_UNSAFE = re.compile(r"[^\x20-\x7e]|[<>&]")


def node_name(cfg, batch_system="slurm"):
    """Return this node's name in *batch_system* (``slurm`` or ``torque``), checked.

    Slurm: the node config's ``slurm_node_name``, else the short host name
    (slurmd's default NodeName). Torque: ``torque_node_name``, else the host
    name as ``uname -n`` gives it; it must be the name in pbs_server's
    ``server_priv/nodes``, which pbs_server matches exactly
    (find_nodebyname() in src/server/node_func.c). Raises JobrootError for
    an unknown batch system, ValidationError (a JobrootError) for a name
    that is not a plain host name (validate.node_name).
    """
    if batch_system == "slurm":
        name = cfg.slurm_node_name or os.uname().nodename.split(".")[0]
    elif batch_system == "torque":
        name = cfg.torque_node_name or os.uname().nodename
    else:
        raise JobrootError("no drain and resume for batch system %r" % (batch_system,))
    return validate.node_name(name, "%s node name" % batch_system)


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
    """Return the drain reason for job *job_id* whose teardown failed with *error* (str or exception).

    One line of printable ASCII, :data:`PREFIX` first, at most
    :data:`MAX_REASON` characters: runs of white space become one space,
    any other character outside printable ASCII and ``<``, ``>``, ``&``
    become ``?`` (Torque's ``pbsnodes -x`` does not escape them). Raises
    nothing.
    """
    text = "%s teardown of job %s incomplete, gc retries: %s" % (PREFIX, job_id, error)
    return _UNSAFE.sub("?", re.sub(r"\s+", " ", text))[:MAX_REASON]


def check_reason(reason):
    """Return *reason* (str) if it is one :func:`reason_for` could make; else raise JobrootError.

    It must start with :data:`PREFIX`, be at most :data:`MAX_REASON`
    characters, and hold only printable ASCII without ``<``, ``>``, ``&``
    (so no newline: Slurm's reason and Torque's note are one line).
    """
    if not isinstance(reason, str) or not reason.startswith(PREFIX) or len(reason) > MAX_REASON \
            or _UNSAFE.search(reason):
        raise JobrootError("not a drain reason of ours: %r" % (reason,))
    return reason


def _backend(batch_system):
    try:
        return _BACKENDS[batch_system]
    except (KeyError, TypeError):
        raise JobrootError("no drain and resume for batch system %r" % (batch_system,)) from None


def drain(cfg, reason, run=None, batch_system="slurm"):
    """Take this node out of service with *reason* (from :func:`reason_for`); return True if done here.

    *cfg*: the node config (config.NodeConfig); *batch_system*: ``slurm``
    or ``torque``; *run*: a stand-in for subprocess.run (tests), None for
    the real one. Running jobs go on, no new job starts. A node already out
    of service with a reason not ours (an admin's, or none) is left as it
    is and False is returned: overwriting that reason would let gc resume a
    node an admin took out. Slurm: ``scontrol update nodename=NODE
    state=drain reason=REASON``. Torque: ``pbsnodes -o -N REASON NODE``,
    then read back (pbsnodes exits 0 even when pbs_server refuses).
    Raises JobrootError if the reason or node name is not acceptable
    (before any command runs) or the batch system's command fails.
    """
    check_reason(reason)
    backend = _backend(batch_system)
    node = node_name(cfg, batch_system)
    current = backend.reason(node, run)
    if current is not None and not current.startswith(PREFIX):
        return False
    backend.drain(node, reason, run)
    return True


def drain_reason(cfg, run=None, batch_system="slurm"):
    """Return why this node is out of service (str, ``""`` if no reason is set), or None if it is in service.

    Slurm: drained or draining (``scontrol show node -o NODE``); Torque:
    offline (``pbsnodes -x NODE``). Arguments as for :func:`drain`.
    Raises JobrootError if the command fails or its output cannot be read.
    """
    backend = _backend(batch_system)
    return backend.reason(node_name(cfg, batch_system), run)


def resume_if_ours(cfg, run=None, batch_system="slurm"):
    """Put this node back in service if it is out with a reason of ours; return True if it was resumed.

    Anything else (a reason not starting with :data:`PREFIX`, no reason, a
    node in service) is left as it is. Slurm: ``scontrol update
    nodename=NODE state=resume``. Torque: ``pbsnodes -c -N "" NODE`` clears
    the offline state and our note, then it is read back. Arguments as for
    :func:`drain`. Raises JobrootError if a command fails or the node is
    still out of service afterwards.
    """
    backend = _backend(batch_system)
    node = node_name(cfg, batch_system)
    reason = backend.reason(node, run)
    if reason is None or not reason.startswith(PREFIX):
        return False
    backend.resume(node, run)
    return True


class _Slurm:
    """scontrol, as Slurm 24.11 takes and prints it (its man page, scontrol(1))."""

    @staticmethod
    def drain(node, reason, run):
        _run(["scontrol", "update", "nodename=" + node, "state=drain", "reason=" + reason], run)

    @staticmethod
    def reason(node, run):
        """``State=`` names DRAIN (DRAINED, DRAINING, or ``+DRAIN``); ``Reason=`` is the text before ``[user@time]``."""
        line = _run(["scontrol", "show", "node", "-o", node], run)
        state = re.search(r"(?:^| )State=(\S+)", line)
        if not state or "DRAIN" not in state.group(1):
            return None
        reason = re.search(r"(?:^| )Reason=(.*?)(?: \[[^\]]*\])?\s*$", line)
        return reason.group(1) if reason else ""

    @staticmethod
    def resume(node, run):
        _run(["scontrol", "update", "nodename=" + node, "state=resume"], run)


class _Torque:
    """pbsnodes, as Torque's source (src/cmds/pbsnodes.c, 2.5 to 6.1) defines it.

    * ``-o`` adds ``offline`` to the node's state (marknode(ND_offline,
      INCR)); ``-c`` removes it (DECR) and nothing else: it does not touch
      the note.
    * ``-N NOTE`` sets the note attribute; ``-N ""`` and ``-N n`` clear it
      ("-N n is the same as -N \\"\\""). ``-N`` keeps an earlier ``-o`` or
      ``-c`` ("to allow -N to be combined with -o, -c"), so ``-o -N NOTE
      NODE`` sets both; since 6.1 in one pbs_manager request (set_all_nodeattrs(),
      "made atomicly"), before that the note first, then the state.
    * Exit status: 0 even when pbs_server refuses the change (6.1 ignores
      set_all_nodeattrs()'s result and prints "Error setting note attribute
      ..." to stderr; 4.2 always returns 0); 1 only for a usage error or no
      connection. So every change here is read back.
    * ``-x NODE`` prints ``<Data><Node><name>..</name><state>..</state>
      ...<note>..</note></Node></Data>`` (addxmlnode(); one element per
      attribute that has a value, so no ``<note>`` without a note). The
      state is a comma-separated list (``free``, ``offline``,
      ``down,offline``, ``job-exclusive,offline``: encode_state() in
      src/lib/Libattr/attr_node_func.c). Values are not escaped: ``<``
      becomes byte 14, ``&`` stays (MXMLSetVal() in u_MXML.c). An unknown
      node exits 1 (statnode()).
    * pbs_server before 6.0.1 refused a note over 256 characters or with a
      newline (set_note_str(), MAX_NOTE; TRQ-3439 dropped both limits).
    """

    @staticmethod
    def drain(node, reason, run):
        _run(["pbsnodes", "-o", "-N", reason, node], run)
        state = _Torque.read(node, run)
        # startswith: a mom's health check may append " - ERROR ..." at any time
        if "offline" not in state["state"] or not (state["note"] or "").startswith(reason):
            raise JobrootError("pbsnodes -o did not take node %s offline with our note (state %r, note %r)"
                               % (node, state["state"], state["note"]))

    @staticmethod
    def reason(node, run):
        state = _Torque.read(node, run)
        if "offline" not in state["state"]:
            return None
        return state["note"] or ""

    @staticmethod
    def resume(node, run):
        _run(["pbsnodes", "-c", "-N", "", node], run)
        state = _Torque.read(node, run)
        if "offline" in state["state"]:
            raise JobrootError("pbsnodes -c left node %s offline (note %r)" % (node, state["note"]))

    @staticmethod
    def read(node, run):
        """Return ``{"state": [str, ...], "note": str or None}`` from ``pbsnodes -x NODE``."""
        return parse_pbsnodes_x(_run(["pbsnodes", "-x", node], run), node)


def parse_pbsnodes_x(text, node):
    """Parse ``pbsnodes -x NODE``'s output (*text*, str) for *node*; return ``{"state": [...], "note": ...}``.

    ``state``: the list of states (``["job-exclusive", "offline"]``);
    ``note``: the note (str), or None if the node has none. Torque prints
    values unescaped (see :class:`_Torque`): a bare ``&`` is escaped and
    byte 14 (Torque's ``<``) read back as ``<`` before parsing, other
    control characters become ``?``. Raises JobrootError if the text is
    not such XML or holds no ``<Node>`` named *node*.
    """
    import xml.etree.ElementTree as ET
    if "<!" in text:
        raise JobrootError("pbsnodes -x %s printed a DTD or comment: not read" % node)
    text = re.sub(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)", "&amp;", text)
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0f-\x1f]", "?", text.replace("\x0e", "&lt;"))
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise JobrootError("cannot read pbsnodes -x %s: %s" % (node, exc)) from None
    for elem in root.iter("Node"):
        if (elem.findtext("name") or "").strip() != node:
            continue
        state = elem.findtext("state") or ""
        note = elem.findtext("note")
        return {"state": [s.strip() for s in state.split(",") if s.strip()],
                "note": note}
    raise JobrootError("pbsnodes -x %s printed no such node" % node)


_BACKENDS = {"slurm": _Slurm, "torque": _Torque}


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
