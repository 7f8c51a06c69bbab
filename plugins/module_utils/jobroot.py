# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job lifecycle: prologue, epilogue, sweep and status, top to bottom.

This is the one place that says what happens to a node when a job starts and
ends. Everything else in module_utils is a building block; the Ansible
modules expose the blocks one by one, and the hook command on the nodes
calls the functions here directly (no Ansible start-up in the prologue).

Prologue, as the seed paper (000, section 2.3.2) runs it, hardened:
validate -> resolve and pin the OS tree -> one slot's LV with a fresh file
system mounted at the job root -> the bind tree -> the record the batch
system chroots by. Any failure undoes what was done, so nothing is
half-made. A job whose *request* is bad (an OS name not on the allow-list)
is refused with a reason instead of failing the prologue, because a failed
Slurm Prolog drains the node (slurm.conf(5), "Prolog").

Epilogue: remove the record, end what the job left running in its root,
unmount deepest first, remove the LV and the mount point, drop the pin. Each
step accepts "already gone", so the epilogue can be re-run, and the sweep
(gc) is the epilogue applied to every job that no longer runs (Slurm's
job_container/tmpfs does the same at slurmd start; HTCondor removes its
tagged LVs at startd start: prior-art.md).

The ``faults.checkpoint`` calls between the steps are kill points for tests
(faults.py): they do nothing unless a test sets its switch, and a switch
set outside a test makes prologue, epilogue and gc refuse before they start.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    bindtree, chroot, faults, lock, lvm, procs, validate)
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    JobrootError, RefusedError, ValidationError)

#: Directories every job root gets on its own volume (seed 000: mode 1777 for tmp dirs).
JOB_DIRS = ({"path": "tmp", "mode": "1777"}, {"path": "var", "mode": "0755"},
            {"path": "var/tmp", "mode": "1777"})


def _silent(message):
    del message


def _state_path(cfg, key):
    return os.path.join(cfg.run_dir, "jobs", key + ".json")


def _refusal_path(cfg, key):
    return os.path.join(cfg.run_dir, "jobs", key + ".refused")


def _trees(cfg):
    return os.path.join(cfg.run_dir, "trees")


def _save_state(cfg, key, state):
    os.makedirs(os.path.join(cfg.run_dir, "jobs"), mode=0o755, exist_ok=True)
    chroot.write_atomic(_state_path(cfg, key), json.dumps(state, sort_keys=True) + "\n", 0o600)


def load_state(cfg, key):
    """Return the saved state dict of job key *key*, or None if there is none."""
    try:
        with open(_state_path(cfg, key), encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def job_mounts(cfg, tree, user):
    """Return the bind-tree entries (bindtree.spec dicts) for a job using OS *tree*.

    *tree*: the pinned real path of the OS tree (``/`` for the node's own
    OS). *user*: the job owner's ``pwd.struct_passwd``. Order matters: the
    OS directories come first, so host files can be bound over files inside
    them. Alternate trees are mounted ``nosuid`` too: their setuid binaries
    are not the node's to trust (CHOS disables them for the same reason).
    """
    own = tree == "/"
    flags = ["ro", "nodev"] if own else ["ro", "nodev", "nosuid"]
    entries = []
    for rel in cfg.os_dirs:
        src = os.path.join(tree, rel)
        if os.path.islink(src):
            # usr-merged trees: bin -> usr/bin. Recreate the link, never follow it.
            entries.append({"target": rel, "type": "symlink", "source": os.readlink(src)})
        elif os.path.isdir(src):
            entries.append({"target": rel, "type": "bind", "source": src, "options": flags})
    entries += [
        {"target": "proc", "type": "proc", "options": ["nosuid", "nodev", "noexec"]},
        {"target": "sys", "type": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]},
        {"target": "dev", "type": "rbind", "source": "/dev"},
        {"target": "dev/shm", "type": "tmpfs", "options": ["nosuid", "nodev"], "data": "mode=1777"},
    ]
    if cfg.home == "all" and os.path.isdir("/home"):
        entries.append({"target": "home", "type": "rbind", "source": "/home"})
    elif cfg.home == "user" and user.pw_dir.startswith("/") and os.path.isdir(user.pw_dir) \
            and user.pw_dir != "/":
        entries.append({"target": user.pw_dir.lstrip("/"), "type": "rbind", "source": user.pw_dir})
    if not own:
        # Files (passwd, group, resolv.conf) and socket directories (/run/munge,
        # /run/nscd: the directory, so a daemon restart does not strand the job)
        # that the tree has a mount point for. Sockets work on a read-only bind.
        for host_file in cfg.host_files:
            inside = os.path.join(tree, host_file.lstrip("/"))
            same_kind = (os.path.isfile(host_file) and os.path.isfile(inside)) or \
                (os.path.isdir(host_file) and os.path.isdir(inside))
            if same_kind and not os.path.islink(inside):
                entries.append({"target": host_file.lstrip("/"), "type": "bind",
                                "source": host_file, "options": ["ro"]})
    for extra in cfg.extra_binds:
        if os.path.exists(extra["source"]):
            entries.append({"target": extra["source"].lstrip("/"), "type": "rbind",
                            "source": extra["source"], "options": extra.get("options", []),
                            "propagation": extra.get("propagation", "rslave")})
    return entries


def requested_os(cfg, batch_system, env=None, queue=None):
    """Return the OS name a job asked for, or None.

    Slurm: ``SPANK_JOBROOT_OS`` in *env* (the SPANK plugin passes the job's
    ``--jobroot-os`` or ``JOBROOT_OS`` there). Torque: the node's
    ``queue_os`` entry for the job's *queue* (a Torque prologue sees no job
    variables).
    """
    if batch_system == "slurm":
        return (env or {}).get("SPANK_JOBROOT_OS") or None
    if batch_system == "torque" and queue:
        return cfg.queue_os.get(queue)
    return None


def prologue(cfg, job_id, user, os_name=None, batch_system="slurm", log=_silent):
    """Prepare the root of job *job_id* for *user*; return a result dict.

    *cfg*: a validated config.NodeConfig. *os_name*: the requested OS name or
    None for the node default. *batch_system*: ``slurm``, ``torque`` or
    ``none`` (where to write the record). *log*: a callable taking one str.

    Returns ``{"job_id", "root", "os", "tree", "lv", "size_bytes", "record"}``,
    or ``{"job_id", "refused": reason}`` if the job's request is refused (the
    reason is recorded for the batch system to show the job's owner).
    Raises ValidationError for a bad job id or user (from the batch system,
    not the user: the node is misconfigured), JobrootError when the node
    cannot set the job up (no free slot, LVM or mount failure); in that case
    everything this call made is undone first.
    """
    faults.check()
    key = validate.job_key(job_id)
    owner = validate.real_user(user)
    root = os.path.join(cfg.root_base, key)
    with lock.job_lock(cfg.run_dir, key):
        faults.checkpoint("prologue.locked")
        _save_state(cfg, key, {"job_id": job_id, "user": user, "phase": "setup",
                               "batch_system": batch_system, "started": int(time.time())})
        faults.checkpoint("prologue.state-saved")
        entries = chroot.read_allow_list(cfg.allow_list) if os.path.exists(cfg.allow_list) else {}
        try:
            name, tree = chroot.select(os_name, entries, cfg.default_os, cfg.fallback_to_default)
        except (RefusedError, ValidationError) as exc:
            reason = "job %s refused: %s" % (job_id, exc)
            chroot.write_atomic(_refusal_path(cfg, key), reason + "\n")
            _save_state(cfg, key, {"job_id": job_id, "user": user, "phase": "refused",
                                   "batch_system": batch_system, "reason": reason})
            log(reason)
            return {"job_id": job_id, "refused": reason}
        try:
            # Resolve and pin under the node lock: chroot_image's prune takes
            # it too, so it never removes a version between our check and pin.
            with lock.node_lock(cfg.run_dir):
                real_tree = chroot.check_tree(tree, cfg.image_base)
                chroot.pin(cfg.run_dir, key, real_tree)
                os.makedirs(cfg.root_base, mode=0o755, exist_ok=True)
                bindtree.make_private_base(cfg.root_base)
            faults.checkpoint("prologue.pinned")
            lv = lvm.lv_name_for(key)
            volume = lvm.create(cfg.volume_group, lv, cfg.slot_extents, root, cfg.fstype,
                                cfg.thin_pool, max_lvs=cfg.slots,
                                lock=lock.node_lock(cfg.run_dir))
            faults.checkpoint("prologue.volume-mounted")
            os.chmod(root, 0o755)
            bindtree.apply(root, job_mounts(cfg, real_tree, owner), JOB_DIRS, _trees(cfg))
            faults.checkpoint("prologue.tree-built")
            record = chroot.record_path(batch_system, job_id, cfg.run_dir, cfg.pbs_home)
            if record:
                chroot.write_record(record, root)
            faults.checkpoint("prologue.record-written")
        except BaseException as exc:
            log("job %s: setup failed (%s), undoing it" % (job_id, exc))
            try:
                _teardown(cfg, key, job_id, batch_system, log)
            except JobrootError:
                pass  # logged by _teardown; the cause to report is the setup failure
            raise
        result = {"job_id": job_id, "root": root, "os": name, "tree": real_tree, "lv": lv,
                  "size_bytes": volume["size_bytes"], "record": record}
        _save_state(cfg, key, dict(result, user=user, phase="ready", batch_system=batch_system))
        faults.checkpoint("prologue.ready")
        log("job %s: root %s ready (os %s, %d MiB on %s/%s)" % (
            job_id, root, name, volume["size_bytes"] >> 20, cfg.volume_group, lv))
        return result


def epilogue(cfg, job_id, batch_system="slurm", log=_silent):
    """Tear down the root of job *job_id*; return the list of actions taken (str).

    Idempotent: a job that was never set up, or is already gone, gives an
    empty list. Raises JobrootError if something could not be removed
    (e.g. the LV is still in use); what could be removed was removed, and a
    later epilogue or gc retries the rest.
    """
    faults.check()
    key = validate.job_key(job_id)
    with lock.job_lock(cfg.run_dir, key):
        faults.checkpoint("epilogue.locked")
        return _teardown(cfg, key, job_id, batch_system, log)


def _teardown(cfg, key, job_id, batch_system, log):
    root = os.path.join(cfg.root_base, key)
    actions = []
    errors = []

    def step(what, func, *args, **kwargs):
        try:
            out = func(*args, **kwargs)
        except (JobrootError, OSError) as exc:
            errors.append("%s: %s" % (what, exc))
            return None
        if out:
            actions.append(what)
        return out

    for system in ("slurm", "torque"):
        if batch_system in (system, None):
            step("remove %s record" % system, chroot.remove_file,
                 chroot.record_path(system, job_id, cfg.run_dir, cfg.pbs_home))
    step("remove refusal", chroot.remove_file, _refusal_path(cfg, key))
    faults.checkpoint("epilogue.records-removed")
    ended = procs.end_in_root(root) if os.path.isdir(root) else []
    if ended:
        actions.append("ended PIDs %s" % ", ".join(map(str, ended)))
    faults.checkpoint("epilogue.processes-ended")
    if os.path.isdir(root) and not os.path.islink(root):
        try:
            actions += bindtree.teardown(root, _trees(cfg), lazy=True,
                                         keep_made=bool(cfg.volume_group)).actions
        except (JobrootError, OSError) as exc:
            errors.append("unmount the bind tree: %s" % exc)
    faults.checkpoint("epilogue.tree-unmounted")
    if cfg.volume_group:
        step("remove volume", lvm.remove, cfg.volume_group, lvm.lv_name_for(key), root, lazy=True)
    elif os.path.isdir(root) and not os.path.ismount(root):
        step("rmdir %s" % root, os.rmdir, root)
    faults.checkpoint("epilogue.volume-removed")
    if not errors:
        step("unpin", chroot.remove_file, chroot.pin_path(cfg.run_dir, key))
        faults.checkpoint("epilogue.unpinned")
        step("forget state", chroot.remove_file, _state_path(cfg, key))
        faults.checkpoint("epilogue.state-forgotten")
    if actions:
        unmounts = [a for a in actions if a.startswith(("unmount /", "lazy unmount"))]
        log("job %s: torn down: %d unmounts; %s" % (job_id, len(unmounts), ", ".join(
            a for a in actions if a not in unmounts and not a.startswith(("rmdir", "remove /")))))
    if errors:
        log("job %s: teardown incomplete: %s" % (job_id, "; ".join(errors)))
        raise JobrootError("teardown of job %s incomplete: %s" % (job_id, "; ".join(errors)))
    return actions


def known_jobs(cfg):
    """Return the job keys this node holds anything for (set of str).

    Sources: tagged LVs, directories under root_base, state files, pins,
    records and refusals.
    """
    keys = set()
    if cfg.volume_group:
        keys |= {lv["name"][len(lvm.LV_PREFIX):] for lv in lvm.job_lvs(cfg.volume_group)
                 if lv["name"].startswith(lvm.LV_PREFIX)}
    for folder, suffixes in ((cfg.root_base, ("",)), (os.path.join(cfg.run_dir, "jobs"),
                                                      (".json", ".root", ".refused")),
                             (os.path.join(cfg.run_dir, "pins"), ("",))):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            for suffix in suffixes:
                if suffix and name.endswith(suffix):
                    keys.add(name[:-len(suffix)])
                elif not suffix and ".tmp." not in name:
                    keys.add(name)
    valid = set()
    for key in keys:
        try:
            validate.job_key(key)
            valid.add(key)
        except ValidationError:
            pass  # not a name we would have made: never touch it
    return valid


def gc(cfg, alive=None, log=_silent):
    """Sweep jobs that no longer run; return ``{job key: actions or error}``.

    *alive*: a callable taking a job id and returning True while the batch
    system still runs it; None means "nothing runs" (at boot). A job whose
    lock is held (its prologue or epilogue is running) is skipped.
    """
    faults.check()
    report = {}
    for key in sorted(known_jobs(cfg)):
        state = load_state(cfg, key) or {}
        job_id = state.get("job_id", key)
        if alive is not None and alive(job_id):
            continue
        job_lock = lock.job_lock(cfg.run_dir, key, timeout=0)
        if not job_lock.acquire():
            report[key] = "busy: its prologue or epilogue is running"
            continue
        try:
            report[key] = _teardown(cfg, key, job_id, state.get("batch_system"), log)
        except JobrootError as exc:
            report[key] = "error: %s" % exc
        finally:
            job_lock.release()
    return report


def status(cfg):
    """Return a JSON-ready dict: the node's jobs (saved states), job LVs, roots and pins."""
    jobs = {key: load_state(cfg, key) for key in sorted(known_jobs(cfg))}
    volumes = [lv["name"] for lv in lvm.job_lvs(cfg.volume_group)] if cfg.volume_group else []
    return {"jobs": jobs, "volumes": volumes,
            "mounts": bindtree.mounted_under(cfg.root_base) if os.path.isdir(cfg.root_base) else [],
            "pins": chroot.pinned(cfg.run_dir)}
