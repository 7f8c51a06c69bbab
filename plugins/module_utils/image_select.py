# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image selection: the allow-list, resolution, path checks, pins and records.

A job may ask by name for an image, an alternate userland (e.g. a Debian 11
or EL7 tree). Only names on a root-owned allow-list of ``name:path`` lines
are honoured (CHOS keeps its list of allowed OS paths for the same reason:
a user who can chroot into a tree of their choosing can become root, seed
002 "SECURITY"; HTCondor's NAMED_CHROOT is the same idea). Improvements over both:

* every component of the resolved path is checked to be root-owned and not
  group- or world-writable, and a symlink in it may not lead outside the
  image base;
* the resolved real path is *pinned* for the job, so a later atomic symlink
  swap (seed 003: versioned trees behind a symlink) does not change the
  image version under a running job, and the deploy role never prunes a
  pinned version;
* an unknown name is refused with the list of names that exist; falling back
  to the default happens only when configured.

Records tell the batch system which root to chroot into: Torque reads
``$PBS_HOME/mom_priv/jobs/<jobid>.root`` through the patched
site_job_setup() (seed 000, section 2.2.1 and Appendix A); Slurm's SPANK
plugin reads ``<run_dir>/jobs/<job key>.root``. Both are written atomically.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.hpc.jobroot.plugins.module_utils import atomic, files, rundir, validate
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import (
    JobrootError, RefusedError, ValidationError)

HOST = "host"


def check_owner(path, what="path"):
    """Raise ValidationError unless *path* (lstat) is owned by root and not group/world-writable."""
    st = os.lstat(path)
    if st.st_uid != 0:
        raise ValidationError("%s %s is owned by uid %d, not root" % (what, path, st.st_uid))
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValidationError("%s %s is group- or world-writable (mode %o)"
                              % (what, path, stat.S_IMODE(st.st_mode)))


def read_allow_list(path):
    """Parse allow-list file *path*; return an ordered dict ``{name: path}``.

    The file must be root-owned, not group/world-writable and not a symlink.
    Lines are ``name:path``; blank lines and ``#`` comments are ignored.
    Raises ValidationError naming the line for a malformed or duplicate
    entry, and JobrootError if the file is missing.
    """
    validate.abs_path(path, "allow-list")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise JobrootError("allow-list %s does not exist" % path) from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise ValidationError("allow-list %s must be a regular file, not a symlink" % path)
    check_owner(path, "allow-list")
    entries = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, tree = line.partition(":")
            where = "%s line %d" % (path, number)
            if not sep:
                raise ValidationError("%s: expected name:path, got %r" % (where, line))
            name = name.strip()
            tree = tree.strip()
            try:
                validate.image_name(name)
                validate.abs_path(tree, "path of %s" % name)
            except ValidationError as exc:
                raise ValidationError("%s: %s" % (where, exc)) from None
            if name == HOST or name in entries:
                raise ValidationError("%s: name %s is %s" % (
                    where, name, "reserved for the node's own system" if name == HOST else "listed twice"))
            entries[name] = tree
    return entries


def select(requested, entries, default=None, fallback=False):
    """Pick the image to use; return ``(name, path)``.

    *requested*: the job's image name or None/"" for "none asked". *entries*:
    the allow-list (:func:`read_allow_list`). *default*: the node default
    name (``host`` = the node's own system, path ``/``). With *fallback*, an
    unknown name falls back to *default* instead of being refused.
    Raises RefusedError (the job's request is refused) with the names that
    exist, or ValidationError for a malformed name.
    """
    def path_of(name):
        return "/" if name == HOST else entries[name]

    if requested:
        validate.image_name(requested)
        if requested == HOST or requested in entries:
            return requested, path_of(requested)
        if not (fallback and default):
            raise RefusedError("image %r is not on this node's allow-list; choose one of: %s"
                               % (requested, ", ".join([HOST] + list(entries))))
    if not default:
        raise RefusedError("no image was requested and this node has no default image")
    if default != HOST and default not in entries:
        raise JobrootError("the node's default image %r is not on the allow-list" % default)
    return default, path_of(default)


def _components(path):
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def check_tree(path, image_base):
    """Check the image version's tree *path*; return its real path (what gets pinned).

    ``/`` (the node's own system) is returned as is. Otherwise *path* must be
    below *image_base*; every symlink on the way must resolve below
    *image_base*; and every component of the real path, from ``/`` down to
    the tree itself, must be a directory owned by root and not group- or
    world-writable. Raises ValidationError naming the offending component.
    """
    validate.abs_path(path, "image tree")
    if path == "/":
        return "/"
    validate.abs_path(image_base, "image base")
    validate.under(path, image_base, "image tree")
    base_real = os.path.realpath(image_base)
    for comp in _components(path):
        if os.path.islink(comp):
            target = os.path.realpath(comp)
            if not (target + "/").startswith(base_real.rstrip("/") + "/") or target == base_real:
                raise ValidationError("symlink %s leads to %s, outside the image base %s"
                                      % (comp, target, image_base))
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise ValidationError("image tree %s (%s) is not a directory" % (path, real))
    check_owner("/", "path component")
    for comp in _components(real):
        check_owner(comp, "path component")
    return real


def pin(run_dir, key, real_path):
    """Record that job *key* uses the image version at *real_path*; return True if the pin changed."""
    path = rundir.pin_path(run_dir, key)
    text = real_path + "\n"
    if files.read_text(path) == text:
        return False
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    atomic.write(path, text)
    return True


def pinned(run_dir):
    """Return ``{job key: pinned real path}`` of every pin under *run_dir*."""
    folder = rundir.folder(run_dir, rundir.PINS)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    return {n: (files.read_text(os.path.join(folder, n)) or "").strip()
            for n in names if not atomic.is_temp(n)}


def record_path(batch_system, job_id, run_dir, pbs_home):
    """Return where the batch system reads the root of job *job_id*.

    ``torque``: ``<pbs_home>/mom_priv/jobs/<job id>.root`` (what the patched
    pbs_mom reads). ``slurm``: ``<run_dir>/jobs/<job key>.root`` (what the
    SPANK plugin reads). ``none``: None.
    """
    validate.job_id(job_id)
    if batch_system == "torque":
        return os.path.join(pbs_home, "mom_priv", "jobs", job_id + ".root")
    if batch_system == "slurm":
        return rundir.slurm_record_path(run_dir, validate.job_key(job_id))
    if batch_system == "none":
        return None
    raise ValidationError("batch system %r is not torque, slurm or none" % (batch_system,))


def write_record(path, root):
    """Write the record *path* holding job root *root* (and a newline); return True if changed.

    The directory must exist for Torque (pbs_mom's); for Slurm it is created.
    """
    validate.abs_path(root, "job root")
    text = root + "\n"
    if files.read_text(path) == text:
        return False
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        if "/mom_priv/" in path:
            raise JobrootError("%s does not exist: is PBS_HOME right?" % folder)
        os.makedirs(folder, mode=0o755, exist_ok=True)
    atomic.write(path, text)
    return True
