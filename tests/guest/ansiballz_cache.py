"""Test guests only: keep the code Python compiles from Ansible's module payloads.

Every Ansible module run ships its module and ``ansible.module_utils`` to the
guest as a zip (AnsiballZ) and imports them with zipimport, which compiles
every file from source each time and never writes a ``.pyc``.  Under TCG
that compile is about a third of a module run (measured on the sid guest,
Nov 30 2026: importing ``ansible.module_utils.basic`` took 4.5 s from the
zip and 2.9 s from the same files with their ``.pyc``).  The molecule
scenarios run some hundreds of modules, so it adds up to minutes of
``make test``.

This file replaces ``zipimport._compile_source`` (CPython 3.8 and later) by
one that keeps the compiled code of files inside an AnsiballZ payload
(``..._payload.zip/<path>``) in ``CACHE``, keyed by the interpreter's cache
tag, the file's path inside the zip and the SHA-256 of its source, and loads
it with marshal on the next run, like a ``.pyc``.  Same source, same code:
only ``co_filename`` is set to this run's payload path, so tracebacks stay
right.  Anything else, and any error of the cache itself, takes the normal
compile.

tests/guest/guest.sh installs it when a guest starts (a ``.pth`` file in
the guest's site-packages imports it).  It never goes onto a real node and
is not part of the collection.
"""

import marshal
import os
import sys
import zipimport

CACHE = "/var/cache/hpc-jobroot-test/ansiballz"
_MARK = "_payload.zip" + os.sep
_compile = zipimport._compile_source


def _with_filename(code, filename):
    consts = tuple(_with_filename(c, filename) if isinstance(c, type(code)) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _compile_source(pathname, source):
    inner = pathname.partition(_MARK)[2]
    if not inner:
        return _compile(pathname, source)
    import hashlib  # only in module runs: no cost for other Python programs

    digest = hashlib.sha256(source).hexdigest()
    cached = os.path.join(CACHE, "%s-%s-%s" % (
        sys.implementation.cache_tag, inner.replace(os.sep, "."), digest))
    try:
        with open(cached, "rb") as f:
            return _with_filename(marshal.load(f), pathname)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = _compile(pathname, source)
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        tmp = "%s.%d.tmp" % (cached, os.getpid())
        with open(tmp, "wb") as f:
            marshal.dump(code, f)
        os.replace(tmp, cached)
    except OSError:
        pass
    return code


zipimport._compile_source = _compile_source
