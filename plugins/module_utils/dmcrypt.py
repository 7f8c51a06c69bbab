# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted job volumes: a dm-crypt plain mapping over the job LV, its key never on disk.

A job's volume may be opened through dm-crypt in plain mode (cryptsetup(8),
``open --type plain``): no header on the disk, AES-XTS with a 512-bit key
(``aes-xts-plain64``, two AES-256 keys). The key is 64 bytes from the
kernel's random source (``os.urandom``), written to cryptsetup's standard
input, a pipe (``--key-file=-``; with ``--hash plain`` the bytes are the key
itself), and dropped at once: it is never in an argument vector, an
environment or any file, tmpfs included. Once the mapping is open the key
lives only in kernel memory; ``cryptsetup close`` wipes it, and from then on
what the job wrote is ciphertext nobody can read, on the LV's extents, on a
stolen disk or after the LV is reused.

HTCondor's ``ENCRYPT_EXECUTE_DIRECTORY`` (23.10+, prior-art.md) does the same
for thick LVs but writes its key to a file in /dev/shm before it unlinks it;
this module improves on it with the pipe, and works on thin LVs as well (the
mapping sits over any block device).

The mapping's name is :data:`PREFIX` plus the LV's own device-mapper name
(``lvm.dm_name``: each ``-`` of VG and LV doubled), so it is unique per
VG/LV and gc can find leftovers by prefix. cryptsetup gives a plain mapping
the dm uuid ``CRYPT-PLAIN-<name>``; :func:`mappings` reads names and uuids
from sysfs (``/sys/block/dm-*/dm/``), not from extra processes, and counts
a mapping as ours only if both match, so an LVM device whose VG happens to
start with the prefix (uuid ``LVM-...``) is never touched.
"""

from __future__ import annotations

import os
import re
import subprocess

from ansible_collections.hpc.jobroot.plugins.module_utils.errors import CommandError, ValidationError

#: Every mapping we open has a name starting with this.
PREFIX = "jobroot_crypt-"
#: dm-crypt cipher spec and key size (bits): AES-XTS, two AES-256 keys.
CIPHER = "aes-xts-plain64"
KEY_BITS = 512
#: cryptsetup's uuid prefix for plain mappings (lib/setup.c, CRYPT_PLAIN).
UUID_PREFIX = "CRYPT-PLAIN-"
#: Where the kernel lists block devices; device-mapper ones have a dm/ folder.
SYS_BLOCK = "/sys/block"
TIMEOUT = 120
#: device-mapper names: DM_NAME_LEN is 128 with the terminating NUL.
_NAME = re.compile(r"\A[A-Za-z0-9+_.-]{1,127}\Z")


def mapping_name(lv_dm_name):
    """Return the dm-crypt mapping name for an LV whose device-mapper name is *lv_dm_name*.

    *lv_dm_name*: ``lvm.dm_name(vg, lv)`` (str). The result is
    ``PREFIX + lv_dm_name``, e.g. ``jobroot_crypt-vg--jobs-jobroot_7``.
    Raises ValidationError if the result is not a device-mapper name we
    would make (letters, digits, ``+_.-``; at most 127 characters).
    """
    name = PREFIX + lv_dm_name
    if not isinstance(lv_dm_name, str) or not _NAME.match(name):
        raise ValidationError("device-mapper name %r is not valid (letters, digits, +_.- only, "
                              "at most 127 characters)" % (name,))
    return name


def device(name):
    """Return ``/dev/mapper/<name>``: the path of mapping *name*, and what mountinfo shows."""
    return "/dev/mapper/" + name


def open_cmd(backing, name):
    """Return the argument vector of ``cryptsetup open`` for *backing* (a device path) as *name*.

    It names no key: the key comes on standard input (``--key-file=-``).
    """
    return ["cryptsetup", "open", "--type", "plain", "--cipher", CIPHER, "--key-size", str(KEY_BITS),
            "--hash", "plain", "--key-file=-", "--batch-mode", backing, name]


def _run(cmd, key=None):
    # The environment is read now, not at import: PATH decides which cryptsetup runs.
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(cmd, input=key if key is not None else b"", capture_output=True,
                              timeout=TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise CommandError(cmd, None, "timed out after %d s" % TIMEOUT) from None
    except FileNotFoundError:
        raise CommandError(cmd, 127, "%s: command not found (install cryptsetup)" % cmd[0]) from None
    if proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stderr.decode("utf-8", "replace").strip())


def open_plain(backing, name):
    """Open a plain dm-crypt mapping *name* over block device *backing* with a fresh random key.

    *backing*: the LV's device path (str); *name*: from :func:`mapping_name`.
    The 64-byte key (``os.urandom``) goes to cryptsetup through a pipe on its
    standard input, then this function's copy is overwritten and dropped:
    nothing keeps it but the kernel's dm-crypt table. Nobody can open the
    same data again, by design: the data lives as long as the mapping.

    Raises ValidationError for a bad *name* and CommandError if cryptsetup
    fails or is missing (nothing is left open then: cryptsetup creates the
    mapping last).
    """
    if not _NAME.match(name) or not name.startswith(PREFIX):
        raise ValidationError("refusing to open mapping %r: not a name of ours" % (name,))
    key = bytearray(os.urandom(KEY_BITS // 8))
    try:
        _run(open_cmd(backing, name), key=bytes(key))
    finally:
        key[:] = bytes(len(key))
        del key


def close(name):
    """Close mapping *name* (``cryptsetup close``): the kernel drops the key; return True if it was open.

    A mapping that is not open is fine (False). Refuses a name without
    :data:`PREFIX` (ValidationError). Raises CommandError if cryptsetup
    fails, e.g. the mapping is still in use (a file system on it mounted).
    """
    if not _NAME.match(name) or not name.startswith(PREFIX):
        raise ValidationError("refusing to close mapping %r: not a name of ours" % (name,))
    if name not in mappings():
        return False
    _run(["cryptsetup", "close", "--", name])
    return True


def mappings(sys_block=None):
    """Return the names of the open plain mappings of ours (set of str), read from sysfs.

    *sys_block*: the block-device folder (default :data:`SYS_BLOCK`). A
    device counts when ``dm/name`` starts with :data:`PREFIX` and
    ``dm/uuid`` is ``CRYPT-PLAIN-<name>`` (cryptsetup's uuid for a plain
    mapping). Devices that vanish while being read are skipped.
    """
    folder = SYS_BLOCK if sys_block is None else sys_block
    found = set()
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.startswith("dm-"):
            continue
        try:
            with open(os.path.join(folder, entry, "dm", "name"), encoding="utf-8") as handle:
                name = handle.read().strip()
            with open(os.path.join(folder, entry, "dm", "uuid"), encoding="utf-8") as handle:
                uuid = handle.read().strip()
        except OSError:
            continue
        if name.startswith(PREFIX) and uuid.startswith(UUID_PREFIX) and uuid[len(UUID_PREFIX):] == name:
            found.add(name)
    return found


def close_stale(lv_dm_prefix, keep):
    """Close our mappings over LVs that no longer exist; return the names closed (sorted list).

    *lv_dm_prefix*: the device-mapper name prefix of one VG's LVs
    (``lvm.dm_name(vg, "")``, e.g. ``vg--jobs-``): only mappings of that VG
    are considered. *keep*: mapping names to leave open (those of LVs that
    still exist: their job's teardown closes them). Raises CommandError if
    one cannot be closed (still in use); those before it stay closed.
    """
    start = PREFIX + lv_dm_prefix
    closed = []
    for name in sorted(mappings()):
        # An LV name never starts with "-": "vg-" + "-jobs-..." is VG "vg-jobs", not "vg".
        if name.startswith(start) and not name[len(start):].startswith("-") and name not in keep:
            if close(name):
                closed.append(name)
    return closed
