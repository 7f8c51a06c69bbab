# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixture libcs for the userland check (issue 16), compiled with gcc when a test runs."""
from __future__ import annotations

import subprocess

# A libc stand-in: the ABI note glibc's csu/abi-note.S emits (owner GNU, type 1,
# OS and kernel X.Y.Z), a "release version" string, and GLIBC_ version definitions.
SOURCE = r"""
__asm__(".section .note.ABI-tag,\"a\",@note\n"
        ".p2align 2\n.long 4\n.long 16\n.long 1\n.asciz \"GNU\"\n"
        ".long %(os)d\n.long %(major)d\n.long %(minor)d\n.long %(sub)d\n.previous\n");
const char fixture_release[] = "GNU C Library (fixture) stable release version %(glibc)s.";
int fixture_old(void) { return 1; }
int fixture_new(void) { return 2; }
"""
VERSION_SCRIPT = "GLIBC_2.2.5 { global: fixture_old; local: *; };\nGLIBC_%s { global: fixture_new; } GLIBC_2.2.5;\n"


def build_libc(folder, glibc="2.31", kernel=(3, 2, 0), os_=0):
    """Compile a shared object carrying an ABI note for *kernel* and glibc version *glibc*; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "fixture.c"
    src.write_text(SOURCE % dict(os=os_, major=kernel[0], minor=kernel[1], sub=kernel[2], glibc=glibc))
    (folder / "fixture.map").write_text(VERSION_SCRIPT % glibc)
    out = folder / ("libc-%s.so" % glibc)
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(out), str(src),
                    "-Wl,--version-script=" + str(folder / "fixture.map")], check=True)
    return out


def make_tree(tmp_path, glibc="2.31", kernel=(3, 2, 0), libdir="lib64", **kw):
    """An image tree with libdir/libc.so.6 -> libc-<glibc>.so (a symlink inside the tree, as in EL)."""
    tree = tmp_path / "tree"
    lib = build_libc(tree / libdir, glibc, kernel, **kw)
    (tree / libdir / "fixture.c").unlink()
    (tree / libdir / "libc.so.6").symlink_to(lib.name)
    return tree
