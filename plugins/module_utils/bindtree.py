# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assemble and tear down the mount tree inside a job root.

A job root is populated with bind mounts of the image version's tree and host paths, and
kernel file systems (proc, sysfs, devpts, tmpfs for a private /dev/shm). The
order of operations and the list of what a job needs come from the seed
paper on per-job chroots (000, section 2.3.2) and the SL5-in-chroot slides
(003); the rules that make it safe are ours:

* mount targets are walked component by component and a symlink anywhere
  below the root is refused, so a tree cannot redirect a mount onto the host;
* every bind mount gets its propagation set right after it is made (default
  ``slave``/``rslave``): host automounts still propagate in, nothing made in
  the root propagates out;
* read-only/nosuid/nodev/noexec are applied with a bind remount, adding to
  the flags the source already has, never clearing one;
* teardown unmounts leaves first, tolerates mounts that are already gone,
  and only ever removes *empty* directories and empty files that
  :func:`apply` itself created (recorded in a manifest outside the root).
  Nothing is ever deleted recursively.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import namedtuple

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    atomic, beneath, faults, mountinfo, mounts, validate)
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    BusyError, JobrootError, ValidationError)

BIND_TYPES = ("bind", "rbind")
KERNEL_TYPES = ("proc", "sysfs", "devpts", "tmpfs", "mqueue")
#: kernel file systems of which every mount is a new, empty instance (its
#: own device number): one seen elsewhere in the mount table too is a copy
#: of that mount (a bind, or a submount an rbind carried in), not ours
NEW_INSTANCE_TYPES = ("tmpfs", "devpts")
TYPES = BIND_TYPES + KERNEL_TYPES + ("symlink",)
FLAG_OPTIONS = ("ro", "nosuid", "nodev", "noexec")
DEFAULT_PROPAGATION = {"bind": "slave", "rbind": "rslave"}
_DATA_KEYS = ("size", "mode", "nr_inodes", "newinstance", "ptmxmode", "gid")


# Named tuples and a plain class, not dataclasses: importing dataclasses
# pulls inspect, ast and dis into every hook start (issue 18).
class Spec(namedtuple("Spec", ("target", "type", "source", "options", "propagation", "data"),
                      defaults=("", (), "private", ""))):
    """One entry of a bind tree (a named tuple).

    ``target``: path relative to the root. ``type``: one of :data:`TYPES`.
    ``source``: absolute path for bind/rbind, the link text for ``symlink``.
    ``options``: subset of :data:`FLAG_OPTIONS`. ``propagation``: a key of
    ``mounts.PROPAGATION_FLAGS``. ``data``: file-system options for kernel
    types (e.g. ``size=64m,mode=1777`` for tmpfs).
    """

    __slots__ = ()


#: How each kind of :class:`Change` reads, for ``--diff`` and logs (made from the data, never parsed)
TEXTS = {
    "mkdir": "mkdir {path}",
    "touch": "touch {path}",
    "symlink": "symlink {path} -> {source}",
    "chmod": "chmod {mode:o} {path}",
    "mount": "mount {fstype} {source} on {path} ({options}, {propagation})",
    "remount": "remount {path} with {options}",
    "propagation": "make {path} {propagation}",
    "unmount": "unmount {path}",
    "lazy unmount": "lazy unmount {path} (busy)",
    "remove": "remove {path}",
    "rmdir": "rmdir {path}",
}
MADE = ("mkdir", "touch", "symlink")
UNMOUNTED = ("unmount", "lazy unmount")
REMOVED = ("remove", "rmdir")


class Change(namedtuple("Change", ("kind", "path", "source", "fstype", "options", "propagation", "mode"),
                        defaults=("", "", "", "", 0))):
    """One change to a tree (a named tuple): *kind* (a key of :data:`TEXTS`) at absolute *path*.

    The other fields are what that kind's text shows: *source* (a mount's
    source, or its type for a pseudo file system; a symlink's target),
    *fstype* (mount type), *options* (comma-separated flags, ``defaults``
    for none), *propagation* and *mode* (int, for chmod).
    """

    __slots__ = ()

    def __str__(self):
        return TEXTS[self.kind].format(**self._asdict())


class Result:
    """What :func:`apply` or :func:`teardown` did (or would do in check mode), as data.

    ``changes``: the :class:`Change` list in the order done. The lists
    ``mounted``, ``unmounted`` (lazily too), ``made`` (directories, empty
    files, symlinks) and ``removed`` hold their absolute paths; ``actions``
    is one display string per change; ``changed`` is ``bool(changes)``.
    ``Result(changes=None)``: a new, empty list unless *changes* is given.
    """

    __slots__ = ("changes",)

    def __init__(self, changes=None):
        self.changes = [] if changes is None else changes

    def __eq__(self, other):
        return isinstance(other, Result) and self.changes == other.changes

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self):
        return "Result(changes=%r)" % (self.changes,)

    def add(self, kind, path, **data):
        """Append a :class:`Change` of *kind* at *path*; *data*: its other fields."""
        self.changes.append(Change(kind, path, **data))

    def _paths(self, kinds):
        return [c.path for c in self.changes if c.kind in kinds]

    @property
    def changed(self):
        return bool(self.changes)

    @property
    def actions(self):
        return [str(c) for c in self.changes]

    @property
    def mounted(self):
        return self._paths(("mount",))

    @property
    def unmounted(self):
        return self._paths(UNMOUNTED)

    @property
    def made(self):
        return self._paths(MADE)

    @property
    def removed(self):
        return self._paths(REMOVED)


def spec(entry):
    """Validate one mount entry (a dict as the module takes it) and return a :class:`Spec`.

    Keys: ``target`` (required), ``type`` (default ``bind``), ``source``,
    ``options`` (list), ``propagation``, ``data``. Raises ValidationError
    naming the entry on any unknown key or bad value.
    """
    if not isinstance(entry, dict):
        raise ValidationError("a mount entry must be a mapping, got %r" % (entry,))
    unknown = set(entry) - {"target", "type", "source", "options", "propagation", "data"}
    if unknown:
        raise ValidationError("mount entry has unknown keys: %s" % ", ".join(sorted(unknown)))
    kind = entry.get("type") or "bind"
    if kind not in TYPES:
        raise ValidationError("mount type %r is not one of %s" % (kind, ", ".join(TYPES)))
    target = validate.rel_path(entry.get("target"), "mount target", spaces=True)
    source = entry.get("source") or ""
    if kind in BIND_TYPES:
        source = validate.abs_path(source, "bind source of %s" % target, spaces=True)
        if not os.path.exists(source):
            raise ValidationError("bind source %s of %s does not exist" % (source, target))
    elif kind == "symlink":
        link = source[1:] if source.startswith("/") else source
        validate.rel_path(link, "symlink text of %s" % target)
        if source.startswith("/"):
            validate.abs_path(source, "symlink text of %s" % target)
    elif source:
        raise ValidationError("mount type %s of %s takes no source" % (kind, target))
    options = tuple(sorted(set(entry.get("options") or ())))
    bad = [o for o in options if o not in FLAG_OPTIONS]
    if bad:
        raise ValidationError("mount options %s of %s are not among %s"
                              % (", ".join(map(str, bad)), target, ", ".join(FLAG_OPTIONS)))
    propagation = entry.get("propagation") or DEFAULT_PROPAGATION.get(kind, "private")
    if propagation not in mounts.PROPAGATION_FLAGS:
        raise ValidationError("propagation %r of %s is not one of %s" % (
            propagation, target, ", ".join(mounts.PROPAGATION_FLAGS)))
    data = entry.get("data") or ""
    if data:
        if kind not in KERNEL_TYPES:
            raise ValidationError("data is only for kernel file systems, not %s (%s)" % (kind, target))
        for item in data.split(","):
            key, value = item.partition("=")[::2]
            if key not in _DATA_KEYS or not value.isalnum():
                raise ValidationError("file-system option %r of %s is not allowed" % (item, target))
    return Spec(target, kind, source, options, propagation, data)


def _check_root(root, state_dir):
    """Validate *root* and *state_dir* before anything is read or written (issue 11, item 8)."""
    validate.managed_path(root, "root")
    validate.managed_path(state_dir, "state_dir")
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise ValidationError("root %s does not exist" % root) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ValidationError("root %s is not a directory (or is a symlink)" % root)


def _walk(root, rel, last_may_be_link=False, planned=()):
    """Return ``(path, missing)``: the absolute target and its missing components.

    Raises ValidationError if any existing component below *root* is a
    symlink (except the last one when *last_may_be_link*), or the parent of a
    component is not a directory. Paths in *planned* (check mode: to be
    created by an earlier step) count as existing directories.
    """
    path = root
    missing = []
    parts = rel.split("/")
    for i, part in enumerate(parts):
        path = path + "/" + part
        if missing:
            missing.append(path)
            continue
        if path in planned:
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            missing.append(path)
            continue
        if stat.S_ISLNK(st.st_mode) and not (last_may_be_link and i == len(parts) - 1):
            raise ValidationError("%s is a symlink: refusing to mount through it" % path)
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise ValidationError("%s is not a directory" % path)
    return path, missing


def _manifest_path(state_dir, root):
    return os.path.join(state_dir, hashlib.sha256(root.encode()).hexdigest()[:24] + ".json")


def _load_manifest(state_dir, root):
    try:
        with open(_manifest_path(state_dir, root), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"root": root, "dirs": [], "files": []}
    if data.get("root") != root:
        raise JobrootError("manifest %s belongs to %s" % (_manifest_path(state_dir, root), data.get("root")))
    return data


def _save_manifest(state_dir, root, data):
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = _manifest_path(state_dir, root)
    if not data["dirs"] and not data["files"]:
        if os.path.exists(path):
            os.unlink(path)
        return
    atomic.write(path, json.dumps(data), 0o600)


def _expected_propagation(table, wanted, source):
    """The propagation mountinfo will show after setting *wanted* on a bind of *source*.

    A slave of a private mount has no master, so the kernel leaves it private.
    """
    base = wanted.lstrip("r") if wanted.startswith("r") else wanted
    if base == "slave" and source:
        origin = mountinfo.containing(table, os.path.realpath(source))
        if origin is None or mountinfo.propagation(origin) not in ("shared", "slave"):
            return "private"
    return base


def _state(table, path, entry):
    """Return ``(present, fix)`` for *entry* at *path*: is it mounted, and what needs fixing.

    ``fix`` is a list among ``remount``, ``propagation``. Raises JobrootError
    if a different mount already occupies *path*. A tmpfs or devpts at *path*
    whose device another mount point shows is a copy of a host mount (the
    host's /dev/shm, carried in by the rbind of /dev): it is not the private
    instance asked for, so it counts as absent and a new one is stacked on it.
    """
    top = mountinfo.top_at(table, path)
    if top is None:
        return False, []
    if entry.type in NEW_INSTANCE_TYPES and top.fstype == entry.type and any(
            m.dev == top.dev and m.mount_point != path for m in table):
        return False, []
    if entry.type in BIND_TYPES:
        if (top.dev, top.root) != mountinfo.bind_origin(table, entry.source):
            raise JobrootError("%s already has a different mount (%s of %s on %s); "
                               "refusing to stack another" % (path, top.root, top.source, top.dev))
    elif top.fstype != entry.type:
        raise JobrootError("%s already has a %s mount, not %s" % (path, top.fstype, entry.type))
    fix = []
    if not set(entry.options) <= top.options:
        fix.append("remount")
    if mountinfo.propagation(top) != _expected_propagation(table, entry.propagation, entry.source):
        fix.append("propagation")
    return True, fix


def _mount(path, entry):
    if entry.type in BIND_TYPES:
        mounts.bind(entry.source, path, recursive=entry.type == "rbind")
    else:
        mounts.mount(entry.type, path, entry.type, mounts.flags_of(entry.options), entry.data or None)
    # Propagation first: until it is set, a mount under a shared parent is a
    # peer of its source, and what we stack on it would leak back to the host.
    mounts.set_propagation(path, entry.propagation)
    if entry.type in BIND_TYPES and entry.options:
        _remount(path, entry, mountinfo.read())


def _remount(path, entry, table):
    top = mountinfo.top_at(table, path)
    mounts.remount_bind(path, mounts.flags_of(top.options) | mounts.flags_of(entry.options))


def apply(root, entries, dirs=(), state_dir="/run/hpc-jobroot/trees", check=False):
    """Make the mount tree *entries* under *root*; return a :class:`Result`.

    *root*: clean absolute path of an existing directory (not ``/``).
    *entries*: list of dicts accepted by :func:`spec`, applied in order (a
    parent before what is mounted inside it). *dirs*: list of
    ``{"path": rel, "mode": "1777"}`` directories to create (modes as octal
    strings). Missing mount points are created (directories, or empty files
    for single-file binds), owned by root, and recorded in the manifest under
    *state_dir*. With *check*, nothing is changed and the actions that would
    run are returned.

    Idempotent: a mount already present from the same source is left alone;
    missing flags are added by a bind remount; propagation is corrected.
    Raises ValidationError for bad input (before anything changes) and
    JobrootError/MountError on failure, after undoing whatever this call
    mounted or created, so nothing is left half-done.
    """
    _check_root(root, state_dir)
    specs = [spec(e) for e in entries]
    wanted_dirs = []
    for d in dirs:
        rel = validate.rel_path(d.get("path"), "directory")
        mode = str(d.get("mode") or "0755")
        if not mode or len(mode) > 4 or any(c not in "01234567" for c in mode):
            raise ValidationError("directory mode %r of %s is not an octal mode" % (mode, rel))
        wanted_dirs.append((rel, int(mode, 8)))

    result = Result()
    manifest = _load_manifest(state_dir, root)
    made = []      # (kind, path) created by this call, for rollback
    mounted = []   # paths mounted by this call, for rollback
    planned = set()  # check mode: paths an earlier step would have created
    try:
        for rel, mode in wanted_dirs:
            path, missing = _walk(root, rel, planned=planned)
            planned.update(missing)
            for p in missing:
                result.add("mkdir", p)
                if not check:
                    _mkdir(p)
                    made.append(("dir", p))
            if not check or not missing:
                if stat.S_IMODE(os.lstat(path).st_mode) != mode:
                    result.add("chmod", path, mode=mode)
                    if not check:
                        os.chmod(path, mode)
        for entry in specs:
            table = mountinfo.read()
            path, missing = _walk(root, entry.target, entry.type == "symlink", planned)
            planned.update(missing)
            if entry.type == "symlink":
                present = missing == [] and os.path.islink(path)
                if present and os.readlink(path) != entry.source:
                    raise JobrootError("%s is a symlink to %s, not %s" % (path, os.readlink(path), entry.source))
                if not present:
                    if not missing:
                        raise JobrootError("%s exists and is not the wanted symlink" % path)
                    _create_parents(missing[:-1], check, made, result)
                    result.add("symlink", path, source=entry.source)
                    if not check:
                        os.symlink(entry.source, path)
                        made.append(("file", path))
                continue
            present, fix = (False, []) if missing else _state(table, path, entry)
            if missing:
                is_file = entry.type in BIND_TYPES and not os.path.isdir(entry.source)
                _create_parents(missing[:-1], check, made, result)
                result.add("touch" if is_file else "mkdir", path)
                if not check:
                    if is_file:
                        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
                        made.append(("file", path))
                    else:
                        _mkdir(path)
                        made.append(("dir", path))
            if not present:
                what = entry.source or entry.type
                result.add("mount", path, source=what, fstype=entry.type,
                           options=",".join(entry.options) or "defaults",
                           propagation=entry.propagation)
                if not check:
                    _mount(path, entry)
                    mounted.append(path)
                    faults.checkpoint("prologue.bind-mounted")
                continue
            if "remount" in fix:
                result.add("remount", path, options=",".join(entry.options))
                if not check:
                    _remount(path, entry, table)
            if "propagation" in fix:
                result.add("propagation", path, propagation=entry.propagation)
                if not check:
                    mounts.set_propagation(path, entry.propagation)
    except (JobrootError, OSError) as exc:
        if check:
            raise
        _rollback(root, mounted, made)
        if isinstance(exc, OSError):
            raise JobrootError("building the tree under %s failed: %s" % (root, exc)) from exc
        raise
    if not check:
        manifest["dirs"] += [p for k, p in made if k == "dir"]
        manifest["files"] += [p for k, p in made if k == "file"]
        _save_manifest(state_dir, root, manifest)
    return result


def _mkdir(path):
    # Explicit mode: the caller's umask may be 077 (pbs_mom runs its
    # prologue so), and the job's user must be able to traverse.
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)


def _create_parents(paths, check, made, result):
    for p in paths:
        result.add("mkdir", p)
        if not check:
            _mkdir(p)
            made.append(("dir", p))


def _rollback(root, mounted, made):
    for path in reversed(mounted):
        try:
            _unmount_subtree(root, path, lazy=True)
        except (JobrootError, OSError):
            pass
    for kind, path in reversed(made):
        try:
            (os.rmdir if kind == "dir" else os.unlink)(path)
        except OSError:
            pass


def _leaves_first(selected):
    """Order mounts so that every mount comes before the mount it sits on."""
    order = []
    remaining = list(selected)
    while remaining:
        leaves = [m for m in remaining if not any(o.parent_id == m.mount_id for o in remaining)]
        if not leaves:  # a cycle cannot happen in a mount tree; be safe anyway
            leaves = remaining
        order.extend(sorted(leaves, key=lambda m: (-m.mount_point.count("/"), -m.mount_id)))
        remaining = [m for m in remaining if m not in leaves]
    return order


def users_of(path):
    """Return the PIDs (sorted ints) whose cwd or root lies at or below *path*.

    Used to say *who* keeps a mount busy; reads /proc/PID/cwd and root.
    """
    prefix = path.rstrip("/") + "/"
    pids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for link in ("cwd", "root"):
            try:
                target = os.readlink("/proc/%s/%s" % (pid, link))
            except OSError:
                continue
            if target == path or target.startswith(prefix):
                pids.add(int(pid))
    return sorted(pids)


#: How often teardown reads mountinfo again after the job's user moved a mount's path.
PASSES = 8


def _unmount_subtree(root, path, lazy, include_self=True, result=None):
    """Unmount every mount at/below *path* (at or below *root*), leaves first.

    Each unmount is resolved from *root* by descriptor (beneath.Root), so a
    directory the job's user swaps for a symlink cannot redirect it to the
    host. A mount whose path moved is retried after mountinfo is read
    again, up to :data:`PASSES` times. Returns the mount points that stayed
    (busy ones, when not *lazy*, and ones that kept moving).
    """
    busy = []
    with beneath.Root(root) as handle:
        for _attempt in range(PASSES):
            table = mountinfo.read()
            handle.refresh(table)
            moved = False
            for m in _leaves_first(mountinfo.under(table, path, include_self)):
                if m.mount_point in busy:
                    continue
                try:
                    gone = handle.umount(m)
                except beneath.MovedError:
                    moved = True
                    continue
                except BusyError:
                    if not lazy:
                        busy.append(m.mount_point)
                        continue
                    try:
                        gone = handle.umount(m, lazy=True)
                    except beneath.MovedError:
                        moved = True
                        continue
                    if result is not None and gone:
                        result.add("lazy unmount", m.mount_point)
                    continue
                if result is not None and gone:
                    result.add("unmount", m.mount_point)
            if not moved:
                break
        left = [m.mount_point for m in mountinfo.under(mountinfo.read(), path, include_self)]
    return busy + [p for p in left if p not in busy]


def teardown(root, state_dir="/run/hpc-jobroot/trees", lazy=False, check=False, keep_made=False):
    """Unmount everything below *root* (not *root* itself), deepest first; return a :class:`Result`.

    Then remove, deepest first, the directories and empty files that
    :func:`apply` created (from the manifest in *state_dir*), and only if
    empty: ``rmdir``/``unlink`` of single entries, never a recursive delete,
    and never while anything is still mounted below *root*.

    A mount that is already gone is skipped. A busy mount raises BusyError
    naming the PIDs that use it (after the other mounts were unmounted),
    unless *lazy*, which detaches it (MNT_DETACH, umount(8) ``-l``) so it
    disappears when its last user goes. With *check*, nothing is changed.
    With *keep_made*, the created directories are left and only the manifest
    is dropped: for a root on a job volume that is removed next, removing
    them one by one would be wasted work.
    """
    _check_root(root, state_dir)
    result = Result()
    table = mountinfo.under(mountinfo.read(), root, include_self=False)
    if check:
        for m in _leaves_first(table):
            result.add("unmount", m.mount_point)
    else:
        left = _unmount_subtree(root, root, lazy, include_self=False, result=result)
        if left:
            pids = sorted({p for b in left for p in users_of(b)})
            raise BusyError("cannot unmount %s under %s: in use by PIDs %s, or moved by the "
                            "job while it was unmounted. Nothing was deleted; end those "
                            "processes or use lazy unmount" % (
                                ", ".join(left), root, ", ".join(map(str, pids)) or "unknown"))
    manifest = _load_manifest(state_dir, root)
    kept = {"root": root, "dirs": [], "files": []}
    if keep_made:
        manifest = dict(kept)
    # Resolved from the root by descriptor too: a created directory's parent
    # may be the user's (a home bound below it), renamed to a symlink.
    with beneath.Root(root) as handle:
        for path in sorted(manifest["files"], key=lambda p: -p.count("/")):
            st = _lstat(handle, path)
            if st is None:
                continue
            if st is False or not _removable_file(st):
                kept["files"].append(path)
                continue
            result.add("remove", path)
            if not check:
                handle.unlink(path)
        for path in sorted(manifest["dirs"], key=lambda p: -p.count("/")):
            st = _lstat(handle, path)
            if st is None:
                continue
            if not check:
                try:
                    handle.rmdir(path)
                except (OSError, JobrootError):
                    kept["dirs"].append(path)   # not empty, or moved: leave it
                    continue
            result.add("rmdir", path)
    if not check:
        _save_manifest(state_dir, root, kept)
    return result


def _lstat(handle, path):
    """lstat *path* through *handle*: the stat, None if gone, False if it moved away."""
    try:
        return handle.lstat(path)
    except FileNotFoundError:
        return None
    except beneath.MovedError:
        return False if os.path.lexists(path) else None


def _removable_file(st):
    return stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def make_private_base(path):
    """Make directory *path* a private mount point (a bind of itself); return True if changed.

    Job roots are mounted below it. On a node whose ``/`` is shared
    (systemd's default), a mount made below a plain directory propagates to
    every peer of ``/``, including the binds of host directories inside
    other jobs' roots: one job would see another's volume. Below a private
    mount nothing propagates. Slurm's job_container/tmpfs does the same with
    its BasePath. Idempotent; *path* must exist.
    """
    validate.abs_path(path, "root base")
    top = mountinfo.top_at(mountinfo.read(), path)
    changed = False
    if top is None:
        mounts.bind(path, path)
        changed = True
        top = mountinfo.top_at(mountinfo.read(), path)
    if mountinfo.propagation(top) != "private":
        mounts.set_propagation(path, "private")
        changed = True
    return changed


def mounted_under(root):
    """Return the mount points (list of str) at or below *root*, in table order."""
    return [m.mount_point for m in mountinfo.under(mountinfo.read(), root, include_self=False)]
