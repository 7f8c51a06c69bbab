#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helper of the hpc.jobroot.chroot_image role, run on the target with ansible.builtin.script.

Usage: ``chroot_image_tool.py TOOL JSON`` where TOOL is one of ``version``,
``harden``, ``hostfiles``, ``rpmspec`` and JSON the tool's options (plus
``"_check": true`` for check mode). Prints one JSON object (``changed``,
``failed``, ``msg`` and the tool's results) and exits 0, or 1 on failure.

It is one self-contained file (standard library only) because roles inside
a collection cannot carry modules of their own, and the helpers must run on
build hosts and nodes that may not have the collection installed. The lock
and pin formats are the collection's (docs/design.md): ``<run_dir>/lock``
is taken with ``flock(2)``, pins are ``<run_dir>/pins/<job key>`` holding a
real path and a newline.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time


class Module:
    """The part of AnsibleModule the tools use: params with defaults, check mode, results."""

    def __init__(self, spec, params):
        self.params = {}
        for key, (default, required) in spec.items():
            value = params.get(key, default)
            if required and value is None:
                self.fail_json(msg="missing required option %r" % key)
            self.params[key] = value
        unknown = set(params) - set(spec) - {"_check"}
        if unknown:
            self.fail_json(msg="unknown options: %s" % ", ".join(sorted(unknown)))
        self.check_mode = bool(params.get("_check"))

    @staticmethod
    def exit_json(**result):
        """Print *result* as JSON and exit 0."""
        result.setdefault("changed", False)
        print(json.dumps(result, sort_keys=True))
        sys.exit(0)

    @staticmethod
    def fail_json(msg, **result):
        """Print *result* with ``failed`` and *msg* as JSON and exit 1."""
        result.update(failed=True, msg=msg)
        result.setdefault("changed", False)
        print(json.dumps(result, sort_keys=True))
        sys.exit(1)

    @staticmethod
    def run_command(cmd):
        """Run argv list *cmd*; return ``(rc, stdout, stderr)``."""
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


# ----------------------------------------------------------------------
# Tool "version": versions of one OS image on a node.
#
# Layout (docs/design.md, "Image versions"): ``<image_base>/<name>-<version>/``
# directories and the symlink ``<image_base>/<name>`` -> ``<name>-<version>``
# (relative target). The deploy order is kept in
# ``<image_base>/.<name>.versions.json`` so that "the last K versions" and
# "roll back to the version before" mean deploy order, not the sort order of
# version strings.


MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
    return MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mounts():
    """Return ``[(dev, root, mount_point)]`` from /proc/self/mountinfo (proc(5))."""
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            f = line.split(" ")
            mounts.append((f[2], _unescape(f[3]), _unescape(f[4])))
    return mounts


def bind_origin(mounts, real):
    """Return ``(dev, path inside its file system)`` of real path *real*."""
    best = None
    for dev, root, point in mounts:
        if real == point or point == "/" or real.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best[2]):
                best = (dev, root, point)
    dev, root, point = best
    rel = real[len(point):] if point != "/" else real
    return dev, os.path.normpath(root.rstrip("/") + "/" + rel.lstrip("/")) if rel.strip("/") else root


def read_pins(run_dir):
    """Return ``{job key: pinned path}`` of ``<run_dir>/pins/*`` ('' for an empty or unreadable pin)."""
    folder = os.path.join(run_dir, "pins")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    pins = {}
    for n in names:
        if ".tmp." in n:
            continue  # a pin being written (temp file + rename)
        try:
            with open(os.path.join(folder, n), encoding="utf-8") as handle:
                pins[n] = handle.read().strip()
        except OSError:
            pins[n] = ""
    return pins


class NodeLock:
    """``flock(2)`` on ``<run_dir>/lock``, the lock a prologue holds while it resolves and pins."""

    def __init__(self, run_dir, timeout):
        self.path = os.path.join(run_dir, "lock")
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise VersionError("timed out after %.0f s waiting for %s" % (self.timeout, self.path))
                time.sleep(0.05)

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+]{0,31}$")


class VersionError(Exception):
    """A refusal with a message for the user."""


def version_dir(base, name, version):
    """Return ``<base>/<name>-<version>`` (str)."""
    return os.path.join(base, "%s-%s" % (name, version))


def state_path(base, name):
    """Return the deploy record ``<base>/.<name>.versions.json`` (str)."""
    return os.path.join(base, ".%s.versions.json" % name)


def load_state(base, name):
    """Return the recorded deploy order: a list of dicts, oldest first."""
    try:
        with open(state_path(base, name), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    versions = data.get("versions", [])
    if not isinstance(versions, list):
        raise VersionError("%s is malformed" % state_path(base, name))
    return versions


def save_state(base, name, versions):
    """Write the deploy record atomically (temp file, fsync, rename); *versions* is a list of dicts."""
    path = state_path(base, name)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"name": name, "versions": versions}, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def current_version(base, name):
    """Return the version the symlink points at, '' if there is no symlink."""
    link = os.path.join(base, name)
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise VersionError("%s exists and is not a symlink (%s); refusing to manage it" % (link, exc))
    prefix = name + "-"
    if "/" in target or not target.startswith(prefix) or not VERSION_RE.match(target[len(prefix):]):
        raise VersionError("%s points at %r, not at a %s<version> directory beside it"
                           % (link, target, prefix))
    return target[len(prefix):]


def check_version_dir(path):
    """Raise VersionError unless *path* is a real directory, root-owned, not group/world-writable."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise VersionError("%s does not exist (deploy it first)" % path) from None
    if not stat.S_ISDIR(st.st_mode):
        raise VersionError("%s is not a directory" % path)
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise VersionError("%s must be owned by root and not group/world-writable (uid %d, mode %o)"
                           % (path, st.st_uid, stat.S_IMODE(st.st_mode)))


def checked(path, check):
    """check_version_dir(), except in check mode for a directory a real run would deploy first."""
    if check and not os.path.lexists(path):
        return
    check_version_dir(path)


def switch(base, name, version):
    """Point ``<base>/<name>`` at ``<name>-<version>`` with symlink + rename(2)."""
    link = os.path.join(base, name)
    tmp = os.path.join(base, ".%s.swap-%d" % (name, os.getpid()))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink("%s-%s" % (name, version), tmp)
    try:
        os.rename(tmp, link)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def allow_list_paths(path):
    """Return the real paths the allow-list names (empty if there is no allow-list)."""
    out = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.split("#", 1)[0].strip()
                if ":" in line:
                    out.append(os.path.realpath(line.split(":", 1)[1].strip()))
    except FileNotFoundError:
        pass
    return out


def users(candidates, run_dir, allow_list, current_dir):
    """Return ``{real dir: [reasons]}`` for the *candidates* (real paths) that are in use."""
    reasons = {}

    def add(real, why):
        reasons.setdefault(real, []).append(why)

    for key, pinned in sorted(read_pins(run_dir).items()):
        if not pinned:
            raise VersionError("pin %s is empty or unreadable; refusing to prune"
                               % os.path.join(run_dir, "pins", key))
        for real in candidates:
            if _under(os.path.realpath(pinned), real):
                add(real, "pinned by job %s" % key)
    for entry in allow_list_paths(allow_list):
        for real in candidates:
            if _under(entry, real):
                add(real, "named by the allow-list %s" % allow_list)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            root = os.readlink("/proc/%s/root" % pid)
        except OSError:
            continue
        for real in candidates:
            if _under(root, real):
                add(real, "root of process %s" % pid)
    mounts = read_mounts()
    for real in candidates:
        dev, root = bind_origin(mounts, real)
        for m_dev, m_root, m_point in mounts:
            if _under(m_point, real):
                add(real, "mount point %s inside it" % m_point)
            elif m_dev == dev and _under(m_root, root):
                add(real, "bind mounted at %s" % m_point)
    if current_dir:
        add(current_dir, "current version")
    return reasons


def remove_tree(path):
    """Remove directory *path*, staying on its file system (never through a mount)."""
    if any(_under(point, path) for _dev, _root, point in read_mounts()):
        raise VersionError("%s has mounts under it; not removing" % path)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=True)


def prune(module, base, name, run_dir, allow_list, keep, rpm_dbpath, check):
    """Decide under the node lock; remove afterwards. Return (removed, in_use, versions)."""
    versions = load_state(base, name)
    cur = current_version(base, name)
    present = [v for v in versions if os.path.isdir(version_dir(base, name, v["version"]))]
    newest = {v["version"] for v in present[-keep:]}
    candidates = {os.path.realpath(version_dir(base, name, v["version"])): v for v in present}
    cur_real = os.path.realpath(version_dir(base, name, cur)) if cur else ""
    victims = []
    renamed = []
    with NodeLock(run_dir, module.params["lock_timeout"]):
        in_use = users(list(candidates), run_dir, allow_list, cur_real)
        for real, entry in candidates.items():
            if entry["version"] in newest or real in in_use:
                continue
            victims.append(entry)
            if not check and entry.get("method") != "rpm":
                # Out of every name a job could resolve, while no prologue can pin it.
                hidden = os.path.join(base, ".%s-%s.prune-%d" % (name, entry["version"], os.getpid()))
                os.rename(real, hidden)
                renamed.append(hidden)
    removed = [v["version"] for v in victims]
    if not check and victims:
        gone = set(removed)
        save_state(base, name, [v for v in versions if v["version"] not in gone
                                and os.path.isdir(version_dir(base, name, v["version"]))])
        for hidden in renamed:
            remove_tree(hidden)
        for entry in victims:
            if entry.get("method") == "rpm":
                cmd = ["rpm", "-e"]
                if rpm_dbpath:
                    cmd += ["--dbpath", rpm_dbpath]
                cmd.append(entry["package"])
                rc, out, err = module.run_command(cmd)
                if rc != 0:
                    raise VersionError("%s failed: %s" % (" ".join(cmd), (err or out).strip()))
    names = {os.path.realpath(version_dir(base, name, v["version"])): v["version"] for v in present}
    return removed, {names[k]: v for k, v in in_use.items() if k in names}


def main_version(params):
    """Tool ``version``: query, record, switch, roll back or prune (*params*: dict, see ``state``)."""
    module = Module(
        dict(name=(None, True), image_base=("/var/lib/hpc-jobroot/images", False),
             run_dir=("/run/hpc-jobroot", False), allow_list=("/etc/hpc-jobroot/chroots.conf", False),
             state=("query", False), version=(None, False), method=("rsync", False),
             package=(None, False), rpm_dbpath=("", False), keep=(3, False),
             lock_timeout=(300.0, False)), params)
    p = module.params
    if p["state"] not in ("query", "recorded", "switched", "rolled_back", "pruned"):
        module.fail_json(msg="state must be query, recorded, switched, rolled_back or pruned")
    if p["state"] in ("recorded", "switched") and not p["version"]:
        module.fail_json(msg="state=%s needs a version" % p["state"])
    if p["method"] not in ("rsync", "rpm") or (p["method"] == "rpm" and not p["package"]):
        module.fail_json(msg="method must be rsync or rpm (rpm needs a package name)")
    p["keep"] = int(p["keep"])
    p["version"] = p["version"] or None
    p["package"] = p["package"] or None
    name, base, version, state = p["name"], p["image_base"], p["version"], p["state"]
    check = module.check_mode
    result = dict(changed=False)
    try:
        if not NAME_RE.match(name) or ".." in name:
            raise VersionError("image name %r is not valid" % name)
        if version is not None and not VERSION_RE.match(version):
            raise VersionError("version %r must match %s" % (version, VERSION_RE.pattern))
        if p["keep"] < 1:
            raise VersionError("keep must be at least 1")
        if not os.path.isdir(base):
            if state == "query" or check:
                # Nothing deployed yet: a check-mode run of a first deploy lands here.
                module.exit_json(changed=state in ("recorded", "switched"), current=version or "",
                                 previous="", versions=[], present=[], in_use={}, removed=[])
            raise VersionError("image base %s does not exist" % base)
        versions = load_state(base, name)
        cur = current_version(base, name)
        result["previous"] = cur
        if state == "recorded":
            if version not in [v["version"] for v in versions]:
                checked(version_dir(base, name, version), check)
                versions.append(dict(version=version, method=p["method"], package=p["package"],
                                     deployed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
                result["changed"] = True
                if not check:
                    save_state(base, name, versions)
        elif state in ("switched", "rolled_back"):
            target = version
            if target is None:
                order = [v["version"] for v in versions]
                if cur not in order:
                    raise VersionError("current version %r is not in the deploy record %s; name the "
                                       "version to roll back to" % (cur, state_path(base, name)))
                earlier = [v for v in order[:order.index(cur)]
                           if os.path.isdir(version_dir(base, name, v))]
                if not earlier:
                    raise VersionError("no version deployed before %r is left to roll back to" % cur)
                target = earlier[-1]
            if target != cur:
                checked(version_dir(base, name, target), check)
                result["changed"] = True
                if not check:
                    switch(base, name, target)
                cur = target
        elif state == "pruned":
            removed, in_use = prune(module, base, name, p["run_dir"], p["allow_list"], p["keep"],
                                    p["rpm_dbpath"], check)
            result.update(removed=removed, in_use=in_use, changed=bool(removed))
            versions = [v for v in versions if v["version"] not in removed]
        elif state == "query":
            present = [os.path.realpath(version_dir(base, name, v["version"])) for v in versions]
            cur_real = os.path.realpath(version_dir(base, name, cur)) if cur else ""
            in_use = users([x for x in present if os.path.isdir(x)], p["run_dir"], p["allow_list"],
                           cur_real)
            names = dict(zip(present, [v["version"] for v in versions]))
            result["in_use"] = {names[k]: v for k, v in in_use.items() if k in names}
        result.update(current=cur, versions=versions,
                      present=[v["version"] for v in versions
                               if os.path.isdir(version_dir(base, name, v["version"]))])
    except (VersionError, OSError, subprocess.CalledProcessError) as exc:
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:  # the library's JobrootError (lock timeout) and friends
        module.fail_json(msg="%s: %s" % (type(exc).__name__, exc), **result)
    module.exit_json(**result)


# ----------------------------------------------------------------------
# Tool "harden": take privileges out of an OS tree.
#
# An alternate OS tree is often an old distribution; its set-uid programs
# (``su``, ``mount``, ``passwd``) carry that distribution's bugs into a node
# whose base OS is kept patched. CHOS (seed 002, "SECURITY") disables set-uid
# programs in its trees for this reason; file capabilities are the modern
# equivalent and go too.


CAP = "security.capability"


def plan(top, setid, caps, world):
    """Yield ``(path, what, new_mode)`` for every change; new_mode is None for xattr removal."""
    top_dev = os.lstat(top).st_dev
    for dirpath, dirnames, filenames in os.walk(top):
        keep = []
        for d in dirnames:
            full = os.path.join(dirpath, d)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top_dev:
                keep.append(d)
                mode = stat.S_IMODE(st.st_mode)
                if world and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
                    yield full, "world-writable dir", mode & ~stat.S_IWOTH
        dirnames[:] = keep
        for f in filenames:
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            new = mode
            if setid:
                new &= ~(stat.S_ISUID | stat.S_ISGID)
            if world:
                new &= ~stat.S_IWOTH
            if new != mode:
                yield full, "setid" if mode & (stat.S_ISUID | stat.S_ISGID) else "world-writable", new
            if caps:
                try:
                    os.getxattr(full, CAP, follow_symlinks=False)
                    yield full, "capabilities", None
                except OSError as exc:
                    if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                        raise


def main_harden(params):
    """Tool ``harden``: strip set-id bits, capabilities and o+w below ``path`` (*params*: dict)."""
    module = Module(
        dict(path=(None, True), setid=(True, False), capabilities=(True, False),
             world_writable=(True, False)), params)
    top = module.params["path"]
    if not os.path.isdir(top) or os.path.islink(top) or top == "/":
        module.fail_json(msg="%s is not an OS tree directory" % top)
    stripped = []
    try:
        for full, what, new in list(plan(top, module.params["setid"], module.params["capabilities"],
                                         module.params["world_writable"])):
            stripped.append("%s %s" % (os.path.relpath(full, top), what))
            if module.check_mode:
                continue
            if new is None:
                os.removexattr(full, CAP, follow_symlinks=False)
            else:
                os.chmod(full, new)  # full is a regular file or directory (lstat)
    except OSError as exc:
        module.fail_json(msg="hardening %s failed: %s" % (top, exc), stripped=stripped)
    module.exit_json(changed=bool(stripped), stripped=stripped)


# ----------------------------------------------------------------------
# Tool "hostfiles": the host files an OS tree needs.
#
# Seed 003 ("Deployment") lists what a tree needs from the node: passwd,
# group, resolv.conf, CA certificates and daemon sockets (nscd). Entries
# with ``how: bind`` are bound in per job by the prologue; here their mount
# points are made to exist in the tree (an empty file or directory), because
# a bind mount needs something to mount on and the OS dirs of a job root are
# read-only. Entries with ``how: sync`` (a CA bundle) are copied into the
# tree, so they need no mount at all.
#
# Paths inside the tree are resolved the way a process chrooted into it
# would resolve them: an absolute symlink such as ``var/run -> /run`` leads
# to ``<tree>/run``, never to the host's ``/run``.


class TreeError(Exception):
    """A path that cannot be placed safely in the tree."""


def resolve(tree, path, depth=0):
    """Return the host path of *path* (absolute, inside the tree) as seen chrooted into *tree*."""
    if depth > 40:
        raise TreeError("too many symlinks resolving %s" % path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    cur = tree
    for i, part in enumerate(parts):
        if part == "..":
            cur = os.path.dirname(cur) if cur != tree else tree
            continue
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            rest = "/".join(parts[i + 1:])
            inside = os.path.relpath(cur, tree)
            base = "/" if inside == "." else "/" + inside
            new = target if target.startswith("/") else os.path.join(base, target)
            return resolve(tree, new.rstrip("/") + ("/" + rest if rest else ""), depth + 1)
        cur = nxt
    real = os.path.realpath(cur) if os.path.exists(cur) else cur
    if not (real == tree or real.startswith(tree.rstrip("/") + "/")):
        raise TreeError("%s leads outside the tree" % path)
    return cur


def main_hostfiles(params):
    """Tool ``hostfiles``: mount points and synced files in ``tree`` (*params*: dict with ``files``)."""
    module = Module(dict(tree=(None, True), files=(None, True)), params)
    tree = os.path.realpath(module.params["tree"])
    check = module.check_mode
    created, synced, skipped = [], [], []
    try:
        for entry in module.params["files"]:
            path = entry.get("path")
            kind = entry.get("type", "file")
            how = entry.get("how", "bind")
            if not isinstance(path, str) or not path.startswith("/") or kind not in ("file", "directory") \
                    or how not in ("bind", "sync") or (how == "sync" and kind != "file"):
                raise TreeError("bad host file entry %r (need an absolute path, type file|directory, "
                                "how bind|sync; sync is for files)" % (entry,))
            dest = resolve(tree, path)
            if how == "sync":
                srcs = entry.get("src") or path
                srcs = [srcs] if isinstance(srcs, str) else list(srcs)
                src = next((s for s in srcs if os.path.isfile(s)), None)
                if src is None:
                    if entry.get("optional"):
                        skipped.append(path)
                        continue
                    raise TreeError("none of %s exists on this host" % ", ".join(srcs))
                with open(src, "rb") as handle:
                    data = handle.read()
                old = None
                if os.path.isfile(dest) and not os.path.islink(dest):
                    with open(dest, "rb") as handle:
                        old = handle.read()
                if old != data:
                    synced.append(path)
                    if not check:
                        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
                        tmp = "%s.hpc-jobroot.tmp" % dest
                        with open(tmp, "wb") as handle:
                            handle.write(data)
                        os.chmod(tmp, 0o644)
                        os.replace(tmp, dest)  # a new inode: never writes through a hard link
                continue
            if os.path.lexists(dest):
                st = os.lstat(dest)
                want_dir = kind == "directory"
                if stat.S_ISDIR(st.st_mode) != want_dir:
                    raise TreeError("%s exists in the tree but is not a %s" % (path, kind))
                continue
            created.append(path)
            if check:
                continue
            os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
            if kind == "directory":
                os.mkdir(dest, 0o755)
            else:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                os.close(fd)
    except (TreeError, OSError) as exc:
        module.fail_json(msg=str(exc), created=created, synced=synced)
    module.exit_json(changed=bool(created or synced), created=created, synced=synced, skipped=skipped)


# ----------------------------------------------------------------------
# Tool "rpmspec": write the RPM spec that packages an OS tree.
#
# Seed 003 ("Deployment") names the two ways to ship a tree: rsync, or "a
# giant RPM" that configuration systems know how to install. This writes
# that RPM's spec. Choices, each for a measured reason:
#
# * every path is listed explicitly, with ``%attr`` from the *tree's own*
#   passwd/group: rpmbuild 4.18 records root:root for anything without an
#   ``%attr`` (measured), and the tree's uids only mean something in the
#   tree's user database;
# * device nodes are left out: rpm opens each file it installs, and opening
#   ``dev/ptmx`` or ``dev/tty`` outside a real /dev fails (measured on rpm
#   4.18); a job root binds the node's /dev over the tree's anyway;
# * the payload is stored uncompressed (``w.ufdio``), so rpmbuild of a 215 MB
#   bullseye tree takes seconds, not minutes; compress on the wire if needed;
# * no dependency generation, no debuginfo, no build-id links, no
#   ``__os_install_post`` (strip/compress would change the tree);
# * the package is relocatable (``Prefix:`` is the image base it was built
#   for), so ``rpm -i --prefix`` can install it under another image base.


BAD = re.compile(r'[\n"\\]')
GLOB = re.compile(r"([*?\[\]{}])")

SPEC = """\
# Written by hpc.jobroot.chroot_image; see chroot_image_rpmspec.py for the choices.
%%global debug_package %%{nil}
%%global __os_install_post %%{nil}
%%global _build_id_links none
%%global _binary_payload w.ufdio
%%global _unpackaged_files_terminate_build 0
Name: %(package)s
Version: %(version)s
Release: %(release)s
Summary: OS image %(name)s version %(version)s for hpc.jobroot
License: Distributable
Prefix: %(prefix)s
AutoReqProv: no

%%description
OS tree %(name)s-%(version)s, installed as %(prefix)s/%(name)s-%(version)s.
Switch the %(prefix)s/%(name)s symlink to it with the hpc.jobroot.chroot_image role.

%%install
mkdir -p %%{buildroot}%(prefix)s
cp -al -- '%(tree)s' %%{buildroot}%(prefix)s/%(name)s-%(version)s 2>/dev/null || \\
  { rm -rf %%{buildroot}%(prefix)s/%(name)s-%(version)s; \\
    cp -a -- '%(tree)s' %%{buildroot}%(prefix)s/%(name)s-%(version)s; }

%%files
%%defattr(-,root,root,-)
"""


def read_names(path):
    """Return ``{id: name}`` from a passwd/group style file (empty if missing)."""
    out = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                f = line.rstrip("\n").split(":")
                if len(f) > 2 and f[2].isdigit():
                    out.setdefault(int(f[2]), f[0])
    except FileNotFoundError:
        pass
    return out


def main_rpmspec(params):
    """Tool ``rpmspec``: write the spec packaging ``tree`` as ``<prefix>/<name>-<version>`` (*params*: dict)."""
    module = Module(
        dict(tree=(None, True), name=(None, True), version=(None, True), release=("1", False),
             prefix=("/var/lib/hpc-jobroot/images", False), package=(None, True), dest=(None, True)),
        params)
    p = module.params
    tree = p["tree"].rstrip("/")
    for key in ("name", "version", "release", "package"):
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", p[key]) or (key == "version" and "-" in p[key]):
            module.fail_json(msg="%s %r is not usable in an RPM" % (key, p[key]))
    if "'" in tree or "'" in p["prefix"] or BAD.search(tree + p["prefix"]) or GLOB.search(p["prefix"]):
        module.fail_json(msg="tree and prefix paths may not contain quotes, backslashes or glob characters")
    users = read_names(os.path.join(tree, "etc/passwd"))
    groups = read_names(os.path.join(tree, "etc/group"))
    top = "%s/%s-%s" % (p["prefix"].rstrip("/"), p["name"], p["version"])
    lines, excluded, bad = [], [], []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        entries = [(d, True) for d in dirnames] + [(f, False) for f in sorted(filenames)]
        if dirpath == tree:
            entries.insert(0, ("", True))
        for entry, _is_dir in entries:
            full = os.path.join(dirpath, entry) if entry else tree
            rel = os.path.relpath(full, tree)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                excluded.append(rel)
                continue
            if BAD.search(rel):
                bad.append(rel)
                continue
            path = top if rel == "." else "%s/%s" % (top, rel)
            path = GLOB.sub(r"[\1]", path.replace("%", "%%"))  # rpm globs; [x] is a literal x
            if " " in path or "\t" in path:
                path = '"%s"' % path
            if st.st_uid not in users or st.st_gid not in groups:
                module.fail_json(msg="%s is owned by %d:%d, which the tree's passwd/group do not name"
                                 % (rel, st.st_uid, st.st_gid))
            attr = ""
            if st.st_uid != 0 or st.st_gid != 0:
                attr = "%%attr(-,%s,%s) " % (users[st.st_uid], groups[st.st_gid])
            real_dir = stat.S_ISDIR(st.st_mode)
            lines.append("%s%s%s" % ("%dir " if real_dir else "", attr, path))
    if bad:
        module.fail_json(msg="paths rpm cannot list literally (double quote, backslash, newline): %s"
                         % ", ".join(bad[:20]), bad=bad)
    text = SPEC % dict(package=p["package"], version=p["version"], release=p["release"],
                       name=p["name"], prefix=p["prefix"].rstrip("/"), tree=tree)
    text += "\n".join(lines) + "\n"
    old = None
    try:
        with open(p["dest"], encoding="utf-8", errors="surrogateescape") as handle:
            old = handle.read()
    except FileNotFoundError:
        pass
    changed = old != text
    if changed and not module.check_mode:
        tmp = p["dest"] + ".tmp"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p["dest"])
    module.exit_json(changed=changed, files=len(lines), excluded=excluded,
                     checksum=hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest())


TOOLS = {"version": main_version, "harden": main_harden, "hostfiles": main_hostfiles,
         "rpmspec": main_rpmspec}


def main(argv):
    """Run ``TOOL JSON`` (see the module docstring)."""
    if len(argv) != 3 or argv[1] not in TOOLS:
        Module.fail_json(msg="usage: %s {%s} JSON" % (argv[0], "|".join(sorted(TOOLS))))
    try:
        params = json.loads(argv[2])
    except ValueError as exc:
        Module.fail_json(msg="options are not JSON: %s" % exc)
    if not isinstance(params, dict):
        Module.fail_json(msg="options must be a JSON object")
    TOOLS[argv[1]](params)


if __name__ == "__main__":
    main(sys.argv)
