# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image's tree on a build host: take privileges out, place host files, write its RPM spec.

Hardening: an image is often an old distribution; its set-uid
programs (``su``, ``mount``, ``passwd``) carry that distribution's bugs into
a node whose base OS is kept patched. CHOS (seed 002, "SECURITY") disables
set-uid programs in its trees for this reason; file capabilities are the
modern equivalent and go too.

Host files: seed 003 ("Deployment") lists what a tree needs from the node:
passwd, group, resolv.conf, CA certificates and daemon sockets (nscd).
Entries with ``how: bind`` are bound in per job by the prologue; here their
mount points are made to exist in the tree (an empty file or directory),
because a bind mount needs something to mount on and the image directories of
a job root are read-only. Entries with ``how: sync`` (a CA bundle) are copied into
the tree. Paths inside the tree are resolved the way a process chrooted into
it would resolve them: an absolute symlink such as ``var/run -> /run`` leads
to ``<tree>/run``, never to the host's ``/run``.

RPM spec: seed 003 names the two ways to ship a tree: rsync, or "a giant
RPM". Choices, each for a measured reason:

* every path is listed explicitly, with ``%attr`` from the *tree's own*
  passwd/group: rpmbuild 4.18 records root:root for anything without an
  ``%attr`` (measured), and the tree's uids only mean something in the
  tree's user database;
* device nodes are left out: rpm opens each file it installs, and opening
  ``dev/ptmx`` or ``dev/tty`` outside a real /dev fails (measured on rpm
  4.18); a job root binds the node's /dev over the tree's anyway;
* the payload is stored uncompressed (``w.ufdio``), so rpmbuild of a 215 MB
  bullseye tree takes seconds, not minutes;
* no dependency generation, no debuginfo, no build-id links, no
  ``__os_install_post`` (strip/compress would change the tree);
* the package is relocatable (``Prefix:`` is the image base it was built
  for), so ``rpm -i --prefix`` can install it under another image base.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError, ValidationError

CAP = "security.capability"


def harden_plan(top, setid=True, caps=True, world=True):
    """Yield ``(path, what, new_mode)`` for every change below directory *top* (str).

    *what* is ``setid``, ``world-writable``, ``world-writable dir`` or
    ``capabilities``; *new_mode* (int) is None for the removal of the
    ``security.capability`` xattr. Only regular files and directories on
    *top*'s file system are looked at (lstat: never through a symlink or
    a mount); sticky world-writable directories (``/tmp``) are kept.
    Raises OSError.
    """
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


def harden(top, setid=True, caps=True, world=True, check=False):
    """Apply :func:`harden_plan` to tree *top*; return the list of ``"<relative path> <what>"`` changed.

    With *check* nothing changes. Raises ValidationError if *top* is not a
    real directory other than ``/``, OSError if a change fails.
    """
    if not os.path.isdir(top) or os.path.islink(top) or top == "/":
        raise ValidationError("%s is not an image tree directory" % top)
    stripped = []
    for full, what, new in list(harden_plan(top, setid, caps, world)):
        stripped.append("%s %s" % (os.path.relpath(full, top), what))
        if check:
            continue
        if new is None:
            os.removexattr(full, CAP, follow_symlinks=False)
        else:
            os.chmod(full, new)  # full is a regular file or directory (lstat)
    return stripped


def resolve(tree, path, depth=0):
    """Return the host path of *path* (absolute, inside the tree) as seen chrooted into *tree*.

    Symlinks in the tree are followed as the chrooted process would (an
    absolute target is taken relative to *tree*; ``..`` stops at *tree*).
    Raises JobrootError after 40 symlinks, or if the result leads outside
    *tree*.
    """
    if depth > 40:
        raise JobrootError("too many symlinks resolving %s" % path)
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
        raise JobrootError("%s leads outside the tree" % path)
    return cur


def _read_bytes(path):
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def host_files(tree, entries, check=False, done=None):
    """Make the host files *entries* ready in *tree*; return ``(created, synced, skipped)`` path lists.

    *entries*: list of dicts ``path`` (absolute, inside the tree), ``type``
    (``file``/``directory``, default file), ``how`` (``bind``: make an empty
    mount point if missing; ``sync``: copy ``src`` (a path or a list, the
    first that exists; default ``path``) atomically, files only), and
    ``optional`` (skip a sync with no source). *done* (dict, optional)
    gets the partial lists as they grow, for an error report. With
    *check* nothing changes. Raises ValidationError for a bad entry,
    JobrootError for a path that cannot be placed safely, OSError.
    """
    tree = os.path.realpath(tree)
    done = {} if done is None else done
    created, synced, skipped = done.setdefault("created", []), done.setdefault("synced", []), []
    for entry in entries:
        path = entry.get("path")
        kind = entry.get("type", "file")
        how = entry.get("how", "bind")
        if not isinstance(path, str) or not path.startswith("/") or kind not in ("file", "directory") \
                or how not in ("bind", "sync") or (how == "sync" and kind != "file"):
            raise ValidationError("bad host file entry %r (need an absolute path, type file|directory, "
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
                raise JobrootError("none of %s exists on this host" % ", ".join(srcs))
            with open(src, "rb") as handle:
                data = handle.read()
            if _read_bytes(dest) != data:
                synced.append(path)
                if not check:
                    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
                    atomic.write(dest, data)  # a new inode: never writes through a hard link
            continue
        if os.path.lexists(dest):
            if stat.S_ISDIR(os.lstat(dest).st_mode) != (kind == "directory"):
                raise JobrootError("%s exists in the tree but is not a %s" % (path, kind))
            continue
        created.append(path)
        if check:
            continue
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        if kind == "directory":
            os.mkdir(dest, 0o755)
        else:
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    return created, synced, skipped


BAD = re.compile(r'[\n"\\]')
GLOB = re.compile(r"([*?\[\]{}])")

SPEC = """\
# Written by hpc.jobroot.job_image; see hpc.jobroot's module_utils/imagetree.py for the choices.
%%global debug_package %%{nil}
%%global __os_install_post %%{nil}
%%global _build_id_links none
%%global _binary_payload w.ufdio
%%global _unpackaged_files_terminate_build 0
Name: %(package)s
Version: %(version)s
Release: %(release)s
Summary: Image %(name)s version %(version)s for hpc.jobroot
License: Distributable
Prefix: %(prefix)s
AutoReqProv: no

%%description
Image version %(name)s-%(version)s, installed as %(prefix)s/%(name)s-%(version)s.
Switch the %(prefix)s/%(name)s symlink to it with the hpc.jobroot.job_image role.

%%install
mkdir -p %%{buildroot}%(prefix)s
cp -al -- '%(tree)s' %%{buildroot}%(prefix)s/%(name)s-%(version)s 2>/dev/null || \\
  { rm -rf %%{buildroot}%(prefix)s/%(name)s-%(version)s; \\
    cp -a -- '%(tree)s' %%{buildroot}%(prefix)s/%(name)s-%(version)s; }

%%files
%%defattr(-,root,root,-)
"""


def read_names(path):
    """Return ``{id: name}`` (int: str) from a passwd/group style file *path*; empty if it is missing."""
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


def _spec_path(top, rel):
    path = top if rel == "." else "%s/%s" % (top, rel)
    path = GLOB.sub(r"[\1]", path.replace("%", "%%"))  # rpm globs; [x] is a literal x
    return '"%s"' % path if " " in path or "\t" in path else path


def rpm_spec(tree, name, ver, package, release="1", prefix="/var/lib/hpc-jobroot/images"):
    """Return ``(spec text, files listed, excluded device nodes)`` packaging *tree* as ``<prefix>/<name>-<ver>``.

    *name*, *ver* (no ``-``), *release* and *package* must match
    ``^[A-Za-z0-9][A-Za-z0-9._+-]*$``; *tree* and *prefix* may not hold
    quotes, backslashes or newlines (*prefix* no glob characters either).
    Raises ValidationError for these, and JobrootError for a path rpm
    cannot list literally or a file whose owner the tree's passwd/group do
    not name.
    """
    tree = tree.rstrip("/")
    for key, value in (("name", name), ("version", ver), ("release", release), ("package", package)):
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", value) or (key == "version" and "-" in value):
            raise ValidationError("%s %r is not usable in an RPM" % (key, value))
    if "'" in tree or "'" in prefix or BAD.search(tree + prefix) or GLOB.search(prefix):
        raise ValidationError("tree and prefix paths may not contain quotes, backslashes or glob characters")
    users = read_names(os.path.join(tree, "etc/passwd"))
    groups = read_names(os.path.join(tree, "etc/group"))
    top = "%s/%s-%s" % (prefix.rstrip("/"), name, ver)
    lines, excluded, bad = [], [], []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        entries = list(dirnames) + sorted(filenames)
        if dirpath == tree:
            entries.insert(0, "")
        for entry in entries:
            full = os.path.join(dirpath, entry) if entry else tree
            rel = os.path.relpath(full, tree)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                excluded.append(rel)
                continue
            if BAD.search(rel):
                bad.append(rel)
                continue
            if st.st_uid not in users or st.st_gid not in groups:
                raise JobrootError("%s is owned by %d:%d, which the tree's passwd/group do not name"
                                   % (rel, st.st_uid, st.st_gid))
            attr = ""
            if st.st_uid != 0 or st.st_gid != 0:
                attr = "%%attr(-,%s,%s) " % (users[st.st_uid], groups[st.st_gid])
            lines.append("%s%s%s" % ("%dir " if stat.S_ISDIR(st.st_mode) else "", attr, _spec_path(top, rel)))
    if bad:
        raise JobrootError("paths rpm cannot list literally (double quote, backslash, newline): %s"
                           % ", ".join(bad[:20]))
    text = SPEC % dict(package=package, version=ver, release=release, name=name,
                       prefix=prefix.rstrip("/"), tree=tree)
    return text + "\n".join(lines) + "\n", len(lines), excluded


def compare(path, text):
    """Return ``(old text or None, sha256 hex of *text*)`` for spec file *path* (str) and new *text* (str)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            old = handle.read()
    except FileNotFoundError:
        old = None
    return old, hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def write_text(path, text):
    """Write *text* (str, surrogate escapes allowed) to *path* with atomic.write, mode 0644."""
    atomic.write(path, text.encode("utf-8", "surrogateescape"))
