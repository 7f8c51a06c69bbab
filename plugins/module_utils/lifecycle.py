# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job lifecycle: prologue, epilogue, sweep and status, top to bottom.

This is the one place that says what happens to a node when a job starts and
ends. Everything else in module_utils is a building block; the Ansible
modules expose the blocks one by one, and the hook command on the nodes
calls the functions here directly (no Ansible start-up in the prologue).

Prologue, as the seed paper (000, section 2.3.2) runs it, hardened:
validate -> resolve and pin the image version -> one slot's LV with a
fresh file system mounted at the job root -> the bind tree -> the record
the batch system chroots by. Any failure undoes what was done, so nothing is
half-made. A job whose *request* is bad (an image not on the allow-list)
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

Imports: lvm (and with it subprocess) only when the node has a volume
group, torque only for Torque, procs only when a root is torn down, each at
the function that needs it, so the hook command's start pays for what its
job needs (issue 18).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    atomic, beneath, bindtree, faults, files, image_select, lock, rundir, validate)
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    JobrootError, RefusedError, ValidationError)

#: Directories every job root gets on its own volume (seed 000: mode 1777 for tmp dirs).
JOB_DIRS = ({"path": "tmp", "mode": "1777"}, {"path": "var", "mode": "0755"},
            {"path": "var/tmp", "mode": "1777"})


def _silent(message):
    del message


def _save_state(cfg, key, state):
    os.makedirs(rundir.folder(cfg.run_dir, rundir.JOBS), mode=0o755, exist_ok=True)
    atomic.write(rundir.state_path(cfg.run_dir, key), json.dumps(state, sort_keys=True) + "\n", 0o600)


def load_state(cfg, key):
    """Return the saved state dict of job key *key*, or None if there is none."""
    try:
        with open(rundir.state_path(cfg.run_dir, key), encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def job_mounts(cfg, tree, user):
    """Return the bind-tree entries (bindtree.spec dicts) for a job using image version *tree*.

    *tree*: the pinned real path of the image version's tree (``/`` for the
    node's own system). *user*: the job owner's ``pwd.struct_passwd``. Order
    matters: the image directories come first, so host files can be bound
    over files inside them. Images other than ``host`` are mounted ``nosuid``
    too: their setuid binaries are not the node's to trust (CHOS disables
    them for the same reason).
    """
    own = tree == "/"
    flags = ["ro", "nodev"] if own else ["ro", "nodev", "nosuid"]
    entries = []
    for rel in cfg.image_dirs:
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


def requested_image(cfg, batch_system, env=None, queue=None):
    """Return the image name a job asked for, or None.

    Slurm: ``SPANK_JOBROOT_IMAGE`` in *env* (the SPANK plugin passes the job's
    ``--jobroot-image`` or ``JOBROOT_IMAGE`` there). Torque: the node's
    ``queue_image`` entry for the job's *queue* (a Torque prologue sees no job
    variables).
    """
    if batch_system == "slurm":
        return (env or {}).get("SPANK_JOBROOT_IMAGE") or None
    if batch_system == "torque" and queue:
        return cfg.queue_image.get(queue)
    return None


def requested_encryption(batch_system, env=None):
    """Return True if the job asked for an encrypted volume.

    Slurm: ``SPANK_JOBROOT_ENCRYPT=1`` in *env* (the SPANK plugin passes the
    job's ``--jobroot-encrypt`` there). Torque has no per-job request (a
    Torque prologue sees no job variables): the node config decides alone.
    """
    return batch_system == "slurm" and (env or {}).get("SPANK_JOBROOT_ENCRYPT") == "1"


def encryption(cfg, requested):
    """Decide whether a job's volume is encrypted; return ``(encrypt, refusal)``.

    *cfg*: the node config; *requested*: the job asked for it (bool). The
    node's ``encrypt`` encrypts every job; ``encrypt_on_request`` lets a job
    ask. A request the node does not allow gives ``(False, reason)``: the
    job is refused (never silently run unencrypted). Directory mode (no
    volume group) has no volume: ``encrypt`` needs one (config.py).
    """
    if requested and not (cfg.encrypt or cfg.encrypt_on_request):
        return False, ("it asks for an encrypted job volume (--jobroot-encrypt), and this node "
                       "does not allow that (node config encrypt_on_request is false)")
    return bool(cfg.volume_group) and bool(cfg.encrypt or requested), None


def prologue(cfg, job_id, user, image_name=None, batch_system="slurm", log=_silent, encrypt=False):
    """Prepare the root of job *job_id* for *user*; return a result dict.

    *cfg*: a validated config.NodeConfig. *image_name*: the requested image name or
    None for the node default. *batch_system*: ``slurm``, ``torque`` or
    ``none`` (where to write the record). *log*: a callable taking one str.
    *encrypt*: the job asked for an encrypted volume
    (:func:`requested_encryption`). The volume is encrypted (dmcrypt.py) when
    the node's ``encrypt`` is set, or the job asks and the node's
    ``encrypt_on_request`` allows it; a request the node does not allow is
    refused before anything is made.

    With a volume group the root is a fresh LV of one slot; without one
    (directory mode) it is a plain directory under root_base: same bind
    tree, lifecycle, gc and safety, but no size limit (``lv`` and
    ``size_bytes`` are None).

    Returns ``{"job_id", "root", "image", "tree", "lv", "size_bytes", "record", "encrypted"}``,
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
        started = int(time.time())
        _save_state(cfg, key, {"job_id": job_id, "user": user, "phase": "setup",
                               "batch_system": batch_system, "started": started})
        faults.checkpoint("prologue.state-saved")

        def refuse(why):
            reason = "job %s refused: %s" % (job_id, why)
            atomic.write(rundir.refusal_path(cfg.run_dir, key), reason + "\n")
            _save_state(cfg, key, {"job_id": job_id, "user": user, "phase": "refused",
                                   "batch_system": batch_system, "reason": reason, "started": started})
            log(reason)
            return {"job_id": job_id, "refused": reason}

        encrypted, refusal = encryption(cfg, encrypt)
        if refusal:
            return refuse(refusal)

        # A bad allow-list or image refuses the jobs that need it, never the
        # node: a failed Slurm Prolog drains it for every job (issue 11, item 7).
        try:
            entries = image_select.read_allow_list(cfg.allow_list) if os.path.exists(cfg.allow_list) else {}
            broken_list = None
        except (JobrootError, OSError) as exc:
            entries, broken_list = {}, str(exc)
            log("BROKEN ALLOW-LIST: %s; only the host image is served until it is fixed" % exc)
        try:
            name, tree = image_select.select(image_name, entries, cfg.default_image, cfg.fallback_to_default)
        except (RefusedError, ValidationError) as exc:
            return refuse("the node's allow-list is unusable (%s)" % broken_list
                          if broken_list and image_name != image_select.HOST else exc)
        except JobrootError:  # the node's default image is not on the allow-list
            if not broken_list:
                raise
            return refuse("the node's allow-list is unusable (%s)" % broken_list)
        try:
            # Resolve and pin under the node lock: job_image's prune takes
            # it too, so it never removes a version between our check and pin.
            with lock.node_lock(cfg.run_dir):
                try:
                    real_tree = image_select.check_tree(tree, cfg.image_base)
                except (ValidationError, OSError) as exc:
                    log("BROKEN IMAGE: image %s at %s fails the path checks (%s); jobs asking "
                        "for it are refused, other images are still served" % (name, tree, exc))
                    return refuse("image %s is broken on this node: %s" % (name, exc))
                image_select.pin(cfg.run_dir, key, real_tree)
                faults.checkpoint("prologue.pinned")
                os.makedirs(cfg.root_base, mode=0o755, exist_ok=True)
                bindtree.make_private_base(cfg.root_base)
            if cfg.volume_group:
                from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
                lv = lvm.lv_name_for(key)
                size = lvm.create(cfg.volume_group, lv, cfg.slot_extents, root, cfg.fstype,
                                  cfg.thin_pool, max_lvs=cfg.slots,
                                  lock=lock.node_lock(cfg.run_dir), encrypt=encrypted)["size_bytes"]
            else:
                lv, size = None, None
                _make_dir_root(root)
            os.chmod(root, 0o755)
            faults.checkpoint("prologue.volume-mounted")
            entries = job_mounts(cfg, real_tree, owner)
            script = None
            if batch_system == "torque":
                from ansible_collections.hpc.jobroot.plugins.module_utils import torque
                script = torque.script_entry(cfg.pbs_home, job_id)
            if script:
                entries.append(script)
            bindtree.apply(root, entries, JOB_DIRS, rundir.trees_path(cfg.run_dir))
            faults.checkpoint("prologue.tree-built")
            record = image_select.record_path(batch_system, job_id, cfg.run_dir, cfg.pbs_home)
            if record:
                image_select.write_record(record, root)
            faults.checkpoint("prologue.record-written")
        except BaseException as exc:
            log("job %s: setup failed (%s), undoing it" % (job_id, exc))
            try:
                _teardown(cfg, key, job_id, batch_system, log)
            except JobrootError:
                pass  # logged by _teardown; the cause to report is the setup failure
            raise
        result = {"job_id": job_id, "root": root, "image": name, "tree": real_tree, "lv": lv,
                  "size_bytes": size, "record": record, "encrypted": encrypted}
        _save_state(cfg, key, dict(result, user=user, phase="ready", batch_system=batch_system,
                                   started=started))
        faults.checkpoint("prologue.ready")
        files.remove_file(rundir.failures_path(cfg.run_dir, key))
        log("job %s: root %s ready (image %s, %s)" % (
            job_id, root, name, "directory mode, no size limit" if lv is None else
            "%d MiB on %s/%s%s" % (size >> 20, cfg.volume_group, lv, ", encrypted" if encrypted else "")))
        return result


def _make_dir_root(root):
    """Directory mode: make *root* a plain directory (mode 0755), or reuse an empty one.

    A leftover that is not an empty directory of ours (a symlink, a file, or
    what a crashed run left) is refused: gc removes it first.
    """
    try:
        os.mkdir(root, 0o755)
        return
    except FileExistsError:
        pass
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or os.listdir(root):
        raise JobrootError("%s exists and is not an empty root-owned directory: "
                           "left by an earlier run, gc removes it" % root)


def epilogue(cfg, job_id, batch_system="slurm", log=_silent):
    """Tear down the root of job *job_id*; return the list of actions taken (str).

    Idempotent: a job that was never set up, or is already gone, gives an
    empty list. Raises JobrootError if something could not be removed
    (e.g. the LV is still in use); what could be removed was removed, and a
    later epilogue or gc retries the rest.
    """
    faults.check()
    key = validate.job_key(job_id)
    with lock.job_lock(cfg.run_dir, key) as job_lock:
        faults.checkpoint("epilogue.locked")
        actions = _teardown(cfg, key, job_id, batch_system, log)
        job_lock.remove()
        return actions


def note_failure(cfg, job_id):
    """Count one failed prologue of job *job_id* on this node; return the count (int >= 1).

    The count is kept in ``<run_dir>/failures/<job key>`` (root-owned,
    written atomically under the job's lock; an unreadable count starts
    again at 1). A successful prologue and gc remove it. The hook command
    uses it to stop a requeue loop: Torque requeues a job whose prologue
    exits 2, and the scheduler may start it on the same node at once.
    Raises ValidationError for a bad job id.
    """
    key = validate.job_key(job_id)
    path = rundir.failures_path(cfg.run_dir, key)
    with lock.job_lock(cfg.run_dir, key):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, encoding="ascii") as handle:
                count = int(handle.read(32).strip())
        except (OSError, ValueError):
            count = 0
        count = max(count, 0) + 1
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write(path, "%d\n" % count, 0o600)
    return count


def _teardown(cfg, key, job_id, batch_system, log):
    root = os.path.join(cfg.root_base, key)
    actions = []   # everything done, in order: the return value
    shown = []     # what the log line names (not the bind tree's changes, not the rmdir)
    tree = bindtree.Result()
    errors = []

    def note(what, show=True):
        actions.append(what)
        if show:
            shown.append(what)

    def step(what, func, *args, show=True, **kwargs):
        try:
            out = func(*args, **kwargs)
        except (JobrootError, OSError) as exc:
            errors.append("%s: %s" % (what, exc))
            return None
        if out:
            note(what, show)
        return out

    for system in ("slurm", "torque"):
        if batch_system in (system, None):
            step("remove %s record" % system, files.remove_file,
                 image_select.record_path(system, job_id, cfg.run_dir, cfg.pbs_home))
    step("remove refusal", files.remove_file, rundir.refusal_path(cfg.run_dir, key))
    faults.checkpoint("epilogue.records-removed")
    if os.path.isdir(root) and not os.path.islink(root):
        from ansible_collections.hpc.jobroot.plugins.module_utils import procs
        ended, spared = procs.end_in_root(root, _owner_uid(cfg, key), procs.job_devices(root))
        if ended:
            note("ended PIDs %s" % ", ".join(map(str, ended)))
        if spared:
            # Root's or another user's: never signalled, reported. If they keep
            # the volume busy, the teardown below fails and gc retries.
            note("left alone PIDs %s (not the job user's)" % ", ".join(
                "%d (uid %s, %s)" % (pid, uid, why) for pid, (uid, why) in sorted(spared.items())))
    faults.checkpoint("epilogue.processes-ended")
    if os.path.isdir(root) and not os.path.islink(root):
        try:
            tree = bindtree.teardown(root, rundir.trees_path(cfg.run_dir), lazy=True, keep_made=True)
            actions += tree.actions
        except (JobrootError, OSError) as exc:
            errors.append("unmount the bind tree: %s" % exc)
    faults.checkpoint("epilogue.tree-unmounted")
    if cfg.volume_group:
        from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
        step("remove volume", lvm.remove, cfg.volume_group, lvm.lv_name_for(key), root, lazy=True)
    elif os.path.isdir(root) and not os.path.islink(root) and not errors:
        # Directory mode: the job's files (tmp, var/tmp) and the mount points
        # are on the root's own file system; removed by descriptor, never
        # through a mount (beneath.Root.purge), then the root itself.
        step("empty %s" % root, _purge, root)
        step("rmdir %s" % root, os.rmdir, root, show=False)
    faults.checkpoint("epilogue.volume-removed")
    if not errors:
        step("unpin", files.remove_file, rundir.pin_path(cfg.run_dir, key))
        faults.checkpoint("epilogue.unpinned")
        step("forget state", files.remove_file, rundir.state_path(cfg.run_dir, key))
        faults.checkpoint("epilogue.state-forgotten")
    if actions:
        log("job %s: torn down: %d unmounts; %s" % (job_id, len(tree.unmounted), ", ".join(shown)))
    if errors:
        log("job %s: teardown incomplete: %s" % (job_id, "; ".join(errors)))
        raise JobrootError("teardown of job %s incomplete: %s" % (job_id, "; ".join(errors)))
    return actions


def _purge(root):
    with beneath.Root(root) as handle:
        return handle.purge()


def _owner_uid(cfg, key):
    """The uid of the job's user from its saved state, or None (then nothing is signalled)."""
    try:
        return pwd.getpwnam(validate.user_name((load_state(cfg, key) or {}).get("user"))).pw_uid
    except (KeyError, ValidationError):
        return None


def known_jobs(cfg):
    """Return the job keys this node holds anything for (set of str).

    Sources: tagged LVs, directories under root_base, state files, pins,
    records, refusals, failure counts and lock files.
    """
    keys = set()
    if cfg.volume_group:
        from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
        keys |= {lv["name"][len(lvm.LV_PREFIX):] for lv in lvm.job_lvs(cfg.volume_group)
                 if lv["name"].startswith(lvm.LV_PREFIX)}
    folders = [(cfg.root_base, ("",))] + [(rundir.folder(cfg.run_dir, name), suffixes)
                                          for name, suffixes in rundir.PER_JOB.items()]
    for folder, suffixes in folders:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            for suffix in suffixes:
                if suffix and name.endswith(suffix):
                    keys.add(name[:-len(suffix)])
                elif not suffix and not atomic.is_temp(name):
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
    lock is held (its prologue or epilogue is running) is skipped. Then the
    temp files of interrupted atomic writes whose writer is gone are removed
    (:func:`sweep_temps`); if there were any, the report lists them under
    the key ``temp files``. A swept job's failure count and lock file are
    removed too.
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
            files.remove_file(rundir.failures_path(cfg.run_dir, key))
            job_lock.remove()
        except JobrootError as exc:
            report[key] = "error: %s" % exc
        finally:
            job_lock.release()
    if cfg.volume_group:
        try:
            stale = _close_stale_mappings(cfg)
        except JobrootError as exc:
            stale = "error: closing stale crypt mappings: %s" % exc
        if stale:
            report["stale mappings"] = stale
    temps = sweep_temps(cfg)
    if temps:
        report["temp files"] = ["remove %s" % path for path in temps]
    return report


def _close_stale_mappings(cfg):
    """Close our crypt mappings of the node's VG whose LV is gone; return actions (list of str).

    A job's own teardown closes its mapping before it removes the LV
    (lvm.remove); this catches a mapping whose LV is no longer there (so no
    job key leads to it). Mappings of LVs that exist (running jobs, or jobs
    whose teardown failed) are left alone. Sysfs is read first, so a node
    with no mapping of ours costs no LVM call. Raises JobrootError (an LVM
    or cryptsetup failure).
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import dmcrypt, lvm
    if not dmcrypt.mappings():
        return []
    keep = set()
    for lv in lvm.list_lvs(cfg.volume_group):
        try:
            keep.add(lvm.crypt_name(cfg.volume_group, lv["name"]))
        except ValidationError:
            pass  # a name too long for a mapping: no mapping of ours can be over it
    return ["close %s" % name for name in dmcrypt.close_stale(lvm.dm_name(cfg.volume_group, ""), keep)]


def _is_key(name, suffixes=("",)):
    for suffix in suffixes:
        if name.endswith(suffix):
            try:
                validate.job_key(name[:len(name) - len(suffix)])
                return True
            except ValidationError:
                pass
    return False


def sweep_temps(cfg):
    """Remove the temp files of atomic writes whose writer died; return their paths.

    Only names this code writes are touched: ``<key>.json``, ``.root`` and
    ``.refused`` in ``<run_dir>/jobs``, pins, failure counts, bind-tree manifests
    (``<24 hex>.json`` in ``<run_dir>/trees``) and Torque records
    (``<job id>.root`` in ``<pbs_home>/mom_priv/jobs``), the metrics counters
    (``<run_dir>/metrics.json``) and textfiles (metrics.py), the retry file
    (``<run_dir>/retry.json``, drain.py), each followed by
    ``.tmp.<PID>`` of a process that no longer exists (atomic.sweep).
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import drain, metrics, torque
    trees = re.compile(r"\A[0-9a-f]{24}\.json\Z")
    folders = [(rundir.folder(cfg.run_dir, name),
                lambda n, suffixes=rundir.PER_JOB[name]: _is_key(n, suffixes))
               for name in rundir.WRITTEN_ATOMICALLY]
    folders += [
        (rundir.trees_path(cfg.run_dir), lambda n: trees.match(n) is not None),
        (torque.jobs_dir(cfg.pbs_home),
         lambda n: n.endswith(".root") and _is_key(n[:-len(".root")])),
        (cfg.run_dir, lambda n: n in (metrics.COUNTERS_FILE, drain.RETRY_FILE)),
    ]
    if cfg.metrics_dir:
        folders.append((cfg.metrics_dir, lambda n: n in (metrics.HOOKS_FILE, metrics.NODE_FILE)))
    removed = []
    for folder, owns in folders:
        removed += atomic.sweep(folder, owns)
    return removed


def status(cfg, now=None):
    """Return a JSON-ready dict of what the node holds: jobs, volumes, mounts, pins, images, slots, pool, leaks.

    Keys (the first five as before issue 15, the rest added):

    * ``jobs``: job key -> saved state (None if the node holds something of
      the job but no state);
    * ``volumes``: names of the LVs with our tag; ``mounts``: mount points
      under root_base, in mount-table order; ``pins``: job key -> pinned
      image version (real path); ``images``: images.allow_listed_userland
      (per allow-list name: path, current version, recorded glibc and minimum
      kernel), or ``{"error": reason}`` if the allow-list cannot be read;
    * ``usage``: job key -> ``{"age_seconds", "used_bytes", "mounts"}`` for
      each job with a state: seconds since its prologue started (since its
      state was last written for a state without ``started``), bytes in use
      on its root's file system (None if the root is not mounted on its own
      volume), mounts at or below its root;
    * ``slots``: ``{"total", "free"}`` (a refused job holds no slot);
    * ``pool``: None in directory mode, else metrics.pool_use (``size_bytes``,
      ``used_ratio``, ``metadata_ratio``; None where the pool is missing);
    * ``leaked``: ``{"volume": [LV names], "mount": [mount points]}`` that no
      saved state names: the prologue saves the state before it makes
      anything and the teardown forgets it last, so what a running job or a
      teardown still to retry holds always has one (gc removes the rest of
      a job whose batch job is gone);
    * ``stale``: job keys whose state is still ``setup`` after
      :data:`STALE_SETUP_SECONDS`: a prologue that died (gc tears them down).

    *now*: the current Unix time (float, default ``time.time()``). Raises
    JobrootError (LVM), OSError.
    """
    from ansible_collections.hpc.jobroot.plugins.module_utils import images, metrics, mountinfo
    now = time.time() if now is None else now
    jobs = {key: load_state(cfg, key) for key in sorted(known_jobs(cfg))}
    volumes, pool = [], None
    if cfg.volume_group:
        from ansible_collections.hpc.jobroot.plugins.module_utils import lvm
        report = lvm.fullreport(cfg.volume_group)
        volumes = sorted(row["lv_name"] for row in (report or {}).get("lv", [])
                         if lvm.TAG in row["lv_tags"].split(","))
        pool = metrics.pool_use(report, cfg.thin_pool, lvm.TAG)
        leaked_volumes = [name for name in volumes if not (
            name.startswith(lvm.LV_PREFIX) and jobs.get(name[len(lvm.LV_PREFIX):]))]
    else:
        leaked_volumes = []
    table = mountinfo.read() if os.path.isdir(cfg.root_base) else []
    mounts = [m.mount_point for m in mountinfo.under(table, cfg.root_base, include_self=False)]
    usage = {}
    for key, state in jobs.items():
        if not state:
            continue
        root = os.path.join(cfg.root_base, key)
        started = state.get("started")
        if started is None:
            try:
                started = os.stat(rundir.state_path(cfg.run_dir, key)).st_mtime
            except FileNotFoundError:
                started = now
        usage[key] = {"age_seconds": max(int(now - started), 0), "used_bytes": None,
                      "mounts": sum(1 for m in mounts if m == root or m.startswith(root + "/"))}
        if state.get("lv") and root in mounts:
            st = os.statvfs(root)
            usage[key]["used_bytes"] = (st.f_blocks - st.f_bfree) * st.f_frsize
    holding = sum(1 for state in jobs.values() if state and state.get("phase") in ("setup", "ready"))
    try:
        shown = images.allow_listed_userland(cfg.allow_list, cfg.image_base)
    except JobrootError as exc:  # a broken allow-list must not hide the rest of the status
        shown = {"error": str(exc)}
    return {"jobs": jobs, "volumes": volumes, "mounts": mounts,
            "pins": image_select.pinned(cfg.run_dir), "images": shown, "usage": usage,
            "slots": {"total": cfg.slots, "free": max(cfg.slots - holding, 0)}, "pool": pool,
            "leaked": {"volume": leaked_volumes,
                       "mount": [m for m in mounts
                                 if not jobs.get(os.path.relpath(m, cfg.root_base).split(os.sep)[0])]},
            "stale": sorted(key for key, state in jobs.items() if state and state.get("phase") == "setup"
                            and usage[key]["age_seconds"] > STALE_SETUP_SECONDS)}


#: a prologue holds its job's lock for at most 300 s (lock.py) before it
#: gives up: a state still in ``setup`` after this long is a dead prologue's
STALE_SETUP_SECONDS = 600
