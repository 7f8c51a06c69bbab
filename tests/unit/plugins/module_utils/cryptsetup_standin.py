# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""STAND-IN for the cryptsetup binary, for unit tests only.

This host has no device-mapper, so ``cryptsetup open`` cannot run here; the
real one runs in the QEMU guest (molecule/jobvol). :func:`install` writes an
executable named ``cryptsetup`` into a folder that the test puts first on
PATH, so dmcrypt.py starts it as a real process, through a real pipe, exactly
as it starts the real one. The stand-in does no part of our code's job; it
only answers and checks the contract of cryptsetup(8):

* ``open --type plain ... --key-file=- DEVICE NAME``: standard input must be
  a pipe holding exactly 64 bytes (the key); neither the key's bytes nor its
  hex spelling may appear in the argument vector or any environment value
  (else exit 99). It then makes the mapping's sysfs entries as the kernel
  does (``<sys block>/dm-N/dm/name`` and ``uuid CRYPT-PLAIN-NAME``).
* ``close -- NAME``: removes them (exit 4 if NAME is not open).

Every call is appended as one JSON line ``{"argv": [...]}`` to the events
file (``CRYPTSETUP_STANDIN_EVENTS``); the test's LVM stub and mount stub
append to the same file, so the order of all steps can be asserted. The key
of each open goes to ``<events>.keys`` (hex), so a test can compare keys;
the real cryptsetup is never given a place to write one.
"""

from __future__ import annotations

import os
import stat
import sys

_SCRIPT = r'''
import json, os, stat, sys
events = os.environ["CRYPTSETUP_STANDIN_EVENTS"]
sys_block = os.environ["CRYPTSETUP_STANDIN_SYS_BLOCK"]
argv = sys.argv[1:]
with open(events, "a") as log:
    log.write(json.dumps({"argv": ["cryptsetup"] + argv}) + "\n")
if argv[:3] == ["open", "--type", "plain"]:
    if "--key-file=-" not in argv or not stat.S_ISFIFO(os.fstat(0).st_mode):
        sys.exit("stand-in: the key must come on a pipe (--key-file=-)")
    key = sys.stdin.buffer.read()
    if len(key) != 64:
        sys.exit("stand-in: key of %d bytes, not 64" % len(key))
    spellings = (key, key.hex().encode(), key.hex().upper().encode())
    places = [a.encode("utf-8", "surrogateescape") for a in sys.argv]
    places += [k + b"=" + v for k, v in os.environb.items()]
    if any(s in p for s in spellings for p in places):
        print("stand-in: THE KEY IS IN THE ARGUMENT VECTOR OR ENVIRONMENT", file=sys.stderr)
        sys.exit(99)
    with open(events + ".keys", "a") as keys:
        keys.write(key.hex() + "\n")
    name = argv[-1]
    os.makedirs(sys_block, exist_ok=True)
    n = len(os.listdir(sys_block))
    while os.path.exists(os.path.join(sys_block, "dm-%d" % n)):
        n += 1
    os.makedirs(os.path.join(sys_block, "dm-%d" % n, "dm"))
    for field, value in (("name", name), ("uuid", "CRYPT-PLAIN-" + name)):
        with open(os.path.join(sys_block, "dm-%d" % n, "dm", field), "w") as f:
            f.write(value + "\n")
    sys.exit(int(os.environ.get("CRYPTSETUP_STANDIN_OPEN_RC", "0")))
if argv[:2] == ["close", "--"] and len(argv) == 3:
    for entry in os.listdir(sys_block) if os.path.isdir(sys_block) else []:
        with open(os.path.join(sys_block, entry, "dm", "name")) as f:
            if f.read().strip() == argv[2]:
                for field in ("name", "uuid"):
                    os.unlink(os.path.join(sys_block, entry, "dm", field))
                os.rmdir(os.path.join(sys_block, entry, "dm"))
                os.rmdir(os.path.join(sys_block, entry))
                sys.exit(0)
    sys.exit("stand-in: Device %s is not active." % argv[2])
sys.exit("stand-in: unexpected arguments %r" % argv)
'''


def install(folder):
    """Write the executable ``<folder>/cryptsetup``; return its path.

    The test must put *folder* first on PATH and set
    ``CRYPTSETUP_STANDIN_EVENTS`` (the events file) and
    ``CRYPTSETUP_STANDIN_SYS_BLOCK`` (the fake ``/sys/block`` the stand-in
    adds mappings to; the test points dmcrypt.SYS_BLOCK at it too).
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "cryptsetup")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("#!%s\n%s" % (sys.executable, _SCRIPT))
    os.chmod(path, stat.S_IRWXU)
    return path


def add_mapping(sys_block, name, uuid):
    """Make a device-mapper entry in the fake sysfs as the kernel would (any name and uuid)."""
    n = 0
    while os.path.exists(os.path.join(sys_block, "dm-%d" % n)):
        n += 1
    os.makedirs(os.path.join(sys_block, "dm-%d" % n, "dm"))
    for field, value in (("name", name), ("uuid", uuid)):
        with open(os.path.join(sys_block, "dm-%d" % n, "dm", field), "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
