# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images on a node: versions, switch, roll back, prune.

Layout (docs/design.md, "Image versions"): ``<image_base>/<name>-<version>/``
directories and the symlink ``<image_base>/<name>`` -> ``<name>-<version>``
(relative target). The deploy order is kept in
``<image_base>/.<name>.versions.json`` so that "the last K versions" and
"roll back to the version before" mean deploy order, not the sort order of
version strings. The versioned trees behind a symlink come from the
SL5-in-chroot slides (seed 003, "Deployment").

Prune decides under the node lock (lock.node_lock) that a prologue holds
while it resolves and pins a tree (lifecycle.prologue), so it never removes a
version between a prologue's check and its pin. The tree operations
(hardening, host files, RPM spec) are in imagetree.py.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time

from ansible_collections.hpc.jobroot.plugins.module_utils import (
    atomic, files, image_select, lock, mountinfo, procs, validate)
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, ValidationError

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+]{0,31}$")
STATES = ("query", "recorded", "switched", "rolled_back", "pruned")
METHODS = ("rsync", "rpm")


def version(value):
    """Return *value* (str) if it is a valid image version, else raise ValidationError.

    Rule: ``^[A-Za-z0-9][A-Za-z0-9._+]{0,31}$`` (no ``-``: it separates name
    and version in ``<name>-<version>``, and RPM versions may not hold one).
    """
    if not isinstance(value, str) or not VERSION_RE.match(value):
        raise ValidationError("version %r must match %s" % (value, VERSION_RE.pattern))
    return value


def version_dir(base, name, ver):
    """Return ``<base>/<name>-<ver>`` (str); *base* an absolute path, *name*/*ver* validated."""
    return os.path.join(base, "%s-%s" % (name, ver))


def record_path(base, name):
    """Return the deploy record ``<base>/.<name>.versions.json`` (str)."""
    return os.path.join(base, ".%s.versions.json" % name)


def load_record(base, name):
    """Return the recorded deploy order: a list of dicts (``version``, ``method``,
    ``package``, ``deployed`` UTC ISO 8601), oldest first; ``[]`` if there is no record.

    Raises JobrootError if the record is not a JSON object with a ``versions`` list.
    """
    text = files.read_text(record_path(base, name))
    if text is None:
        return []
    try:
        versions = json.loads(text).get("versions", [])
    except (ValueError, AttributeError):
        versions = None
    if not isinstance(versions, list):
        raise JobrootError("%s is malformed" % record_path(base, name))
    return versions


def save_record(base, name, versions):
    """Write the deploy record (list of dicts, see :func:`load_record`) with atomic.write, mode 0644."""
    atomic.write(record_path(base, name),
                 json.dumps({"name": name, "versions": versions}, indent=1, sort_keys=True) + "\n")


def record_userland(base, name, ver, facts, check=False):
    """Store *facts* as the ``userland`` of version *ver* in the deploy record; return True if changed.

    *facts*: a JSON-ready dict (userland.image_facts: ``glibc``,
    ``min_kernel`` ...). Extra keys in a record entry are ignored by older
    readers, so the record stays backward compatible. A version that is not
    recorded (switched to by hand) gets nothing. Raises JobrootError as
    :func:`load_record`.
    """
    versions = load_record(base, name)
    for entry in versions:
        if entry.get("version") == ver:
            if entry.get("userland") == facts:
                return False
            entry["userland"] = facts
            if not check:
                save_record(base, name, versions)
            return True
    return False


def allow_listed_userland(allow_list, base):
    """Return ``{name: {"path", "version", "glibc", "min_kernel"}}`` for each allow-list entry.

    For ``jobroot status``: *allow_list* is read with
    image_select.read_allow_list (a missing file gives ``{}``); an entry
    ``<base>/<name>`` (what the job_image role writes) gets the current
    version and the glibc and minimum kernel recorded for it
    (:func:`record_userland`), None where nothing is recorded. Raises
    ValidationError/JobrootError as read_allow_list.
    """
    if not os.path.lexists(allow_list):
        return {}
    out = {}
    for name, path in image_select.read_allow_list(allow_list).items():
        info = {"path": path, "version": None, "glibc": None, "min_kernel": None}
        if path == os.path.join(base, name):
            try:
                info["version"] = current(base, name) or None
                facts = [v.get("userland") or {} for v in load_record(base, name)
                         if v.get("version") == info["version"]]
            except JobrootError:
                facts = []
            if facts:
                info.update(glibc=facts[0].get("glibc"), min_kernel=facts[0].get("min_kernel"))
        out[name] = info
    return out


def current(base, name):
    """Return the version the symlink ``<base>/<name>`` points at, '' if there is no symlink.

    Raises JobrootError if the path is not a symlink, or points anywhere but
    at a ``<name>-<version>`` directory beside it.
    """
    link = os.path.join(base, name)
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise JobrootError("%s exists and is not a symlink (%s); refusing to manage it" % (link, exc)) from None
    prefix = name + "-"
    if "/" in target or not target.startswith(prefix) or not VERSION_RE.match(target[len(prefix):]):
        raise JobrootError("%s points at %r, not at a %s<version> directory beside it"
                           % (link, target, prefix))
    return target[len(prefix):]


def check_version_dir(path, check=False):
    """Raise JobrootError unless *path* is a real directory owned by root, not group/world-writable.

    With *check* (check mode) a *path* that does not exist yet passes: a
    real run would deploy it first. Owner rule: image_select.check_owner.
    """
    if not os.path.lexists(path):
        if check:
            return
        raise JobrootError("%s does not exist (deploy it first)" % path)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise JobrootError("%s is not a directory" % path)
    image_select.check_owner(path, "version directory")


def switch(base, name, ver):
    """Point ``<base>/<name>`` at ``<name>-<ver>``: a temporary symlink renamed over it (rename(2)).

    A reader sees the old target or the new one, never no symlink; the
    directory is fsynced so the switch survives a crash. Raises OSError.
    """
    link = os.path.join(base, name)
    tmp = os.path.join(base, ".%s.swap-%d" % (name, os.getpid()))
    files.remove_file(tmp)
    os.symlink("%s-%s" % (name, ver), tmp)
    try:
        os.rename(tmp, link)
    except BaseException:
        files.remove_file(tmp)
        raise
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _allow_listed(path):
    """Real paths of the allow-list *path* (image_select.read_allow_list); none if it is missing."""
    if not os.path.lexists(path):
        return []
    return [os.path.realpath(tree) for tree in image_select.read_allow_list(path).values()]


def users(candidates, run_dir, allow_list, current_dir):
    """Return ``{real dir: [reasons]}`` for the *candidates* (list of real paths) in use.

    A directory is in use if a pin (image_select.pinned) or the allow-list
    *allow_list* (path) names it or a path below it, a process has its root
    there (procs.roots), a mount point lies inside it or a mount shows a
    directory of it (mountinfo.bind_origin), or it is *current_dir* (the
    version the symlink names; '' for none). Raises JobrootError for an
    empty pin: an unreadable pin must not let prune remove a pinned tree.
    """
    reasons = {}

    def add(real, why):
        reasons.setdefault(real, []).append(why)

    for key, pinned in sorted(image_select.pinned(run_dir).items()):
        if not pinned:
            raise JobrootError("pin %s is empty or unreadable; refusing to prune"
                               % os.path.join(run_dir, "pins", key))
        for real in candidates:
            if _under(os.path.realpath(pinned), real):
                add(real, "pinned by job %s" % key)
    for entry in _allow_listed(allow_list):
        for real in candidates:
            if _under(entry, real):
                add(real, "named by the allow-list %s" % allow_list)
    for pid, root in sorted(procs.roots().items()):
        for real in candidates:
            if _under(root, real):
                add(real, "root of process %s" % pid)
    mounts = mountinfo.read()
    for real in candidates:
        dev, root = mountinfo.bind_origin(mounts, real)
        for m in mounts:
            if _under(m.mount_point, real):
                add(real, "mount point %s inside it" % m.mount_point)
            elif m.dev == dev and _under(m.root, root):
                add(real, "bind mounted at %s" % m.mount_point)
    if current_dir:
        add(current_dir, "current version")
    return reasons


def remove_tree(path):
    """Remove directory *path* with ``rm -rf --one-file-system``, never through a mount.

    Raises JobrootError if a mount lies at or below *path*, and
    subprocess.CalledProcessError if rm fails.
    """
    if mountinfo.under(mountinfo.read(), path):
        raise JobrootError("%s has mounts under it; not removing" % path)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=True)


def _present(base, name, versions):
    return [v for v in versions if os.path.isdir(version_dir(base, name, v["version"]))]


def prune(base, name, run_dir, allow_list, keep, rpm_dbpath="", check=False, timeout=300.0,
          run_command=None):
    """Remove the versions of image *name* below *base* that nothing uses, keeping the last *keep*.

    Decides under the node lock of *run_dir* (waiting *timeout* seconds):
    a victim is renamed to ``.<name>-<version>.prune-<PID>`` while the lock
    is held (out of every name a job could resolve), then removed after
    the lock is released (:func:`remove_tree`); a version deployed by RPM
    is removed with ``rpm -e [--dbpath rpm_dbpath] <package>`` through
    *run_command* (argv list -> ``(rc, out, err)``), then what rpm left of
    its directory (files the package does not own) with :func:`remove_tree`. With *check* nothing
    changes. Returns ``(removed versions, {version: [reasons in use]})``.
    Raises JobrootError (lock timeout, rpm failure), OSError.
    """
    versions = load_record(base, name)
    cur = current(base, name)
    present = _present(base, name, versions)
    newest = {v["version"] for v in present[-keep:]}
    candidates = {os.path.realpath(version_dir(base, name, v["version"])): v for v in present}
    cur_real = os.path.realpath(version_dir(base, name, cur)) if cur else ""
    victims, renamed = [], []
    with lock.node_lock(run_dir, timeout):
        in_use = users(list(candidates), run_dir, allow_list, cur_real)
        for real, entry in candidates.items():
            if entry["version"] in newest or real in in_use:
                continue
            victims.append(entry)
            if not check and entry.get("method") != "rpm":
                hidden = os.path.join(base, ".%s-%s.prune-%d" % (name, entry["version"], os.getpid()))
                os.rename(real, hidden)
                renamed.append(hidden)
    removed = [v["version"] for v in victims]
    if not check and victims:
        gone = set(removed)
        save_record(base, name, [v for v in versions if v["version"] not in gone
                                 and os.path.isdir(version_dir(base, name, v["version"]))])
        for hidden in renamed:
            remove_tree(hidden)
        for entry in victims:
            if entry.get("method") == "rpm":
                cmd = ["rpm", "-e"] + (["--dbpath", rpm_dbpath] if rpm_dbpath else []) + [entry["package"]]
                rc, out, err = run_command(cmd)
                if rc != 0:
                    raise JobrootError("%s failed: %s" % (" ".join(cmd), (err or out).strip()))
                # rpm -e leaves what the package does not own (the Apptainer
                # sandbox files job_image adds at deploy); remove the rest.
                left = version_dir(base, name, entry["version"])
                if os.path.isdir(left) and not os.path.islink(left):
                    remove_tree(left)
    names = {os.path.realpath(version_dir(base, name, v["version"])): v["version"] for v in present}
    return removed, {names[k]: v for k, v in in_use.items() if k in names}


def snapshot(base, name):
    """Return ``{"current": version or '', "versions": [versions in deploy order]}`` of image *name*.

    For a diff: a missing *base* gives an empty snapshot. Raises ValidationError
    for a bad *name*, JobrootError like :func:`current` and :func:`load_record`.
    """
    validate.image_name(name)
    if not os.path.isdir(base):
        return {"current": "", "versions": []}
    return {"current": current(base, name), "versions": [v.get("version") for v in load_record(base, name)]}


def _rollback_target(base, name, versions, cur):
    order = [v["version"] for v in versions]
    if cur not in order:
        raise JobrootError("current version %r is not in the deploy record %s; name the "
                           "version to roll back to" % (cur, record_path(base, name)))
    earlier = [v for v in order[:order.index(cur)] if os.path.isdir(version_dir(base, name, v))]
    if not earlier:
        raise JobrootError("no version deployed before %r is left to roll back to" % cur)
    return earlier[-1]


def manage(name, state="query", image_base="/var/lib/hpc-jobroot/images", run_dir="/run/hpc-jobroot",
           allow_list="/etc/hpc-jobroot/images.conf", ver=None, method="rsync", package=None,
           rpm_dbpath="", keep=3, lock_timeout=300.0, check=False, run_command=None):
    """Bring image *name*'s versions to *state*; return the result dict of the image_version module.

    *state*: ``query`` (read), ``recorded`` (append *ver* to the deploy
    order, deployed by *method* ``rsync``/``rpm`` with RPM *package*),
    ``switched`` (point the symlink at *ver*), ``rolled_back`` (at *ver*,
    or the version deployed before the current one), ``pruned`` (see
    :func:`prune`). The result has ``changed``, ``previous`` and
    ``current`` (versions, '' for none), ``versions`` (the record),
    ``present`` (versions whose directory exists), and for query/pruned
    ``in_use`` (``{version: [reasons]}``), for pruned ``removed``.
    With *check* nothing is written. Raises ValidationError for a bad
    name, version or option, JobrootError for a refusal, OSError.
    """
    validate.image_name(name)
    validate.abs_path(image_base, "image_base")
    if state not in STATES:
        raise ValidationError("state must be one of %s" % ", ".join(STATES))
    if state in ("recorded", "switched") and not ver:
        raise ValidationError("state=%s needs a version" % state)
    if method not in METHODS or (method == "rpm" and not package):
        raise ValidationError("method must be rsync or rpm (rpm needs a package name)")
    if ver:
        version(ver)
    if int(keep) < 1:
        raise ValidationError("keep must be at least 1")
    base = image_base
    if not os.path.isdir(base):
        if state == "query" or check:
            # Nothing deployed yet: a check-mode run of a first deploy lands here.
            return dict(changed=state in ("recorded", "switched"), current=ver or "", previous="",
                        versions=[], present=[], in_use={}, removed=[])
        raise JobrootError("image base %s does not exist" % base)
    versions = load_record(base, name)
    cur = current(base, name)
    result = dict(changed=False, previous=cur)
    if state == "recorded":
        if ver not in [v["version"] for v in versions]:
            check_version_dir(version_dir(base, name, ver), check)
            versions.append(dict(version=ver, method=method, package=package or None,
                                 deployed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
            result["changed"] = True
            if not check:
                save_record(base, name, versions)
    elif state in ("switched", "rolled_back"):
        target = ver or _rollback_target(base, name, versions, cur)
        if target != cur:
            check_version_dir(version_dir(base, name, target), check)
            result["changed"] = True
            if not check:
                switch(base, name, target)
            cur = target
    elif state == "pruned":
        removed, in_use = prune(base, name, run_dir, allow_list, int(keep), rpm_dbpath, check,
                                lock_timeout, run_command)
        result.update(removed=removed, in_use=in_use, changed=bool(removed))
        versions = [v for v in versions if v["version"] not in removed]
    else:
        present = [os.path.realpath(version_dir(base, name, v["version"])) for v in versions]
        cur_real = os.path.realpath(version_dir(base, name, cur)) if cur else ""
        in_use = users([x for x in present if os.path.isdir(x)], run_dir, allow_list, cur_real)
        names = dict(zip(present, [v["version"] for v in versions]))
        result["in_use"] = {names[k]: v for k, v in in_use.items() if k in names}
    result.update(current=cur, versions=versions,
                  present=[v["version"] for v in _present(base, name, versions)])
    return result
