# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of every externally supplied string.

Job ids, user names, image names and paths reach this module before
they reach a path, an LV name or a command line. Each function returns the
value (or a derived safe form) or raises
:class:`~ansible_collections.hpc.jobroot.plugins.module_utils.errors.ValidationError`
with a message that names the field and the rule it broke. Nothing here
touches the system except :func:`real_user`, which reads the passwd database.

The grammars are deliberately narrower than what the batch systems accept:
an id we cannot prove harmless is refused rather than escaped.
"""

from __future__ import annotations

import os
import pwd
import re

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import ValidationError

MAX_JOB_ID = 128
MAX_PATH = 1024

# Slurm: 4711, array task 17_3 or 17[3]. Torque/PBS: 123.server.domain,
# array task 123[4].server.domain. Host labels follow RFC 1123.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_JOB_ID = re.compile(r"\A[0-9]{1,12}(?:_[0-9]{1,9}|\[[0-9]{1,9}\])?(?:\.%s)*\Z" % _LABEL)
# Debian's adduser rule (NAME_REGEX) widened to what sites use: dots,
# upper case, and the trailing $ of machine accounts is refused.
_USER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")
_IMAGE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_PATH_CHARS = re.compile(r"\A[A-Za-z0-9._/+@:=-]+\Z")
# Mount targets and bind sources (a home like "/home/Alice Smith"): a space
# too. mount(2) takes the path as is, mountinfo escapes it (\040).
_MOUNT_PATH_CHARS = re.compile(r"\A[A-Za-z0-9._/+@:= -]+\Z")
_VG = re.compile(r"\A[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}\Z")
_TAG = re.compile(r"\A[A-Za-z0-9_+.-]{1,1024}\Z")
# A batch system's node name: a host name (letters, digits, ".", "_", "-"),
# never starting like an option.
_NODE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,252}\Z")
# Substrings LVM reserves for its own sub-LVs (lvm(8), "VALID NAMES").
_LV_RESERVED = ("_cdata", "_cmeta", "_corig", "_mlog", "_mimage", "_pmspare",
                "_rimage", "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata")


def _text(value, field):
    if not isinstance(value, str):
        raise ValidationError("%s must be a string, got %s" % (field, type(value).__name__))
    if value == "":
        raise ValidationError("%s must not be empty" % field)
    return value


def job_id(value):
    """Return *value* if it is a job id we accept, else raise ValidationError.

    Accepted shapes: Slurm ``4711``, Slurm array tasks ``17_3`` and ``17[3]``,
    Torque/PBS ``123.server.domain`` and array tasks ``123[4].server`` (the
    server part is dot-separated RFC 1123 host labels). At most 128
    characters. Everything else (``..``, ``/``, whitespace, commas, a leading
    ``-``, non-ASCII) is refused.
    """
    _text(value, "job id")
    if len(value) > MAX_JOB_ID:
        raise ValidationError("job id is longer than %d characters" % MAX_JOB_ID)
    if not _JOB_ID.match(value):
        raise ValidationError(
            "job id %r is not a Slurm id (4711, 17_3, 17[3]) or a Torque id "
            "(123.server.domain, 123[4].server)" % value)
    return value


def job_key(value):
    """Return the job key of job id *value*: the id made safe for paths and LV names.

    ``[`` becomes ``_`` and ``]`` is dropped (``17[3]`` -> ``17_3``,
    ``123[4].srv`` -> ``123_4.srv``), see docs/design.md. Raises
    ValidationError if *value* is not a valid job id.
    """
    return job_id(value).replace("[", "_").replace("]", "")


def user_name(value):
    """Return *value* if it is a syntactically valid user name, else raise ValidationError.

    Rule: a letter or ``_`` first, then up to 31 letters, digits, ``_``, ``.``
    or ``-`` (Debian's adduser NAME_REGEX, widened to upper case and dots).
    """
    _text(value, "user name")
    if not _USER.match(value):
        raise ValidationError(
            "user name %r must start with a letter or _ and hold at most 32 "
            "letters, digits, '_', '.' or '-'" % value)
    return value


def real_user(value):
    """Return the ``pwd.struct_passwd`` entry of user *value*.

    Raises ValidationError if the name is malformed or the user does not
    exist in the passwd database (NSS, so LDAP/SSSD users count).
    """
    user_name(value)
    try:
        return pwd.getpwnam(value)
    except KeyError:
        raise ValidationError("user %r does not exist on this node" % value) from None


def image_name(value):
    """Return *value* if it is a valid image name, else raise ValidationError.

    Rule: ``^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`` and no ``..``; the same rule
    the allow-list entries follow (docs/design.md).
    """
    _text(value, "image name")
    if not _IMAGE_NAME.match(value) or ".." in value:
        raise ValidationError(
            "image name %r must be 1-64 letters, digits, '.', '_' or '-', start with "
            "a letter or digit, and not contain '..'" % value)
    return value


def abs_path(value, field="path", spaces=False):
    """Return *value* if it is a clean absolute path, else raise ValidationError.

    Clean means: starts with ``/``, is already normalised (no ``.``/``..``
    components, no ``//``, no trailing ``/`` except for ``/`` itself), at
    most 1024 bytes, and only ASCII letters, digits and ``._/+@:=-``. Spaces,
    commas, newlines and other control or non-ASCII characters are refused
    because they break mount option strings, Torque's attribute lists or logs.
    *field* names the value in the message. With *spaces* (mount targets and
    bind sources only, which go to mount(2) as they are), a space is allowed
    too, but not at the start or end of a component.
    """
    _text(value, field)
    if len(value) > MAX_PATH:
        raise ValidationError("%s is longer than %d bytes" % (field, MAX_PATH))
    if not value.startswith("/"):
        raise ValidationError("%s %r must be absolute" % (field, value))
    if not (_MOUNT_PATH_CHARS if spaces else _PATH_CHARS).match(value) or \
            (spaces and any(p != p.strip() for p in value.split("/"))):
        raise ValidationError(
            "%s %r may only contain ASCII letters, digits and . _ / + @ : = -%s"
            % (field, value, " and inner spaces" if spaces else ""))
    if os.path.normpath(value) != value or value.startswith("//"):
        raise ValidationError("%s %r must be normalised (no '.', '..', '//' or trailing '/')"
                              % (field, value))
    return value


def rel_path(value, field="target", spaces=False):
    """Return *value* if it is a clean relative path inside a root, else raise ValidationError.

    Same character rule as :func:`abs_path`; no leading ``/``, no ``.`` or
    ``..`` components. Used for mount targets relative to a job root.
    """
    _text(value, field)
    if value.startswith("/"):
        raise ValidationError("%s %r must be relative to the root" % (field, value))
    try:
        abs_path("/" + value, field, spaces)
    except ValidationError as exc:
        raise ValidationError(str(exc).replace(repr("/" + value), repr(value))) from None
    if value in (".", "..") or value.startswith("../"):
        raise ValidationError("%s %r leaves the root" % (field, value))
    return value


def under(path, base, field="path"):
    """Return *path* if it is strictly below *base* (both clean absolute paths).

    Raises ValidationError otherwise. This is the "never outside the managed
    prefix" check; it compares path components, so ``/a/bc`` is not under
    ``/a/b``.
    """
    abs_path(path, field)
    abs_path(base, "base directory")
    prefix = base.rstrip("/") + "/"
    if not path.startswith(prefix) or path == base:
        raise ValidationError("%s %r is not below %r" % (field, path, base))
    return path


#: System directories that are never a job root, root base, mount point or state
#: directory, nor is anything above them; and any top-level ``/lib*``.
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/run",
               "/var", "/home", "/root", "/tmp")


def managed_path(value, field="path"):
    """Return *value* if it may be a managed prefix (a root, root base, mount point, state dir).

    *value* must be a clean absolute path (:func:`abs_path`, so relative
    paths are refused) and not ``/``, a directory of :data:`SYSTEM_DIRS`, a
    top-level ``/lib*`` directory, or anything above one of them. Paths
    *below* them are fine (``/var/lib/hpc-jobroot/roots``,
    ``/run/hpc-jobroot``). Raises ValidationError naming *field*: a careless
    ``root_base: /var`` must not make the epilogue work on ``/var``.
    """
    abs_path(value, field)
    top = value.split("/")[1] if value != "/" else ""
    if value == "/" or value in SYSTEM_DIRS or (value.count("/") == 1 and top.startswith("lib")):
        raise ValidationError("%s %r is / or a system directory (%s, /lib*): refusing to manage it"
                              % (field, value, ", ".join(SYSTEM_DIRS)))
    return value


def node_name(value, field="node name"):
    """Return *value* if it is a node name we pass to scontrol or pbsnodes, else raise ValidationError.

    A host name: letters, digits and ``._-``, starting with a letter or
    digit (so never an option), at most 253 characters.
    """
    _text(value, field)
    if not _NODE.match(value):
        raise ValidationError("%s %r is not a plain host name" % (field, value))
    return value


def volume_group(value):
    """Return *value* if it is a valid LVM volume group name, else raise ValidationError.

    lvm(8) rule: letters, digits and ``+_.-``, not starting with ``-``, at
    most 127 characters, not ``.`` or ``..``. A ``-`` is allowed (device-mapper
    doubles it in /dev/mapper names, see lvm.dm_name).
    """
    _text(value, "volume group")
    if not _VG.match(value) or value in (".", ".."):
        raise ValidationError("volume group %r is not a valid LVM name" % value)
    return value


def lv_name(value):
    """Return *value* if it is a valid logical volume name, else raise ValidationError.

    Same rule as :func:`volume_group`, and none of the substrings LVM
    reserves for sub-LVs (``_tdata``, ``_rimage`` ...), and not starting with
    ``snapshot`` or ``pvmove``.
    """
    volume_group(value)
    if value.startswith(("snapshot", "pvmove")) or any(r in value for r in _LV_RESERVED):
        raise ValidationError("logical volume name %r uses a name LVM reserves" % value)
    return value


def lv_tag(value):
    """Return *value* if it is a tag we put on job LVs, else raise ValidationError.

    Letters, digits and ``_+.-``, 1 to 1024 characters: a subset of what
    lvm(8) allows in tags ("VALID NAMES"), so that a tag is safe in an LVM
    argument vector and in a comma-separated ``lv_tags`` report field.
    """
    if not isinstance(value, str) or not _TAG.match(value):
        raise ValidationError("tag %r may only hold letters, digits and _+.-" % (value,))
    return value
