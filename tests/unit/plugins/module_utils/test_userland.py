# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The userland compatibility check (issue 16): fixture libcs compiled here, at test time, with gcc."""
from __future__ import annotations

import collections
import gzip
import os
import random
import re
import struct

import pytest

from ansible_collections.hpc.jobroot.plugins.module_utils import beneath, userland
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

from .libc_fixtures import build_libc, make_tree

Uname = collections.namedtuple("Uname", "sysname nodename release version machine")


def node(tmp_path, release="6.1.0-18-amd64", cmdline="quiet", config=None, machine="x86_64"):
    """node_facts of a node whose /proc/cmdline and /boot/config-<release> are files under *tmp_path*."""
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    boot = tmp_path / "boot"
    boot.mkdir(exist_ok=True)
    if config is not None:
        (boot / ("config-" + release)).write_text(config)
    return userland.node_facts(Uname("Linux", "n1", release, "#1", machine), str(tmp_path / "cmdline"),
                               str(boot), str(tmp_path / "no-config.gz"))


@pytest.fixture(params=["openat2", "walk"])
def way(request, monkeypatch):
    monkeypatch.setitem(beneath._state, "openat2",  # pylint: disable=protected-access
                        request.param == "openat2")
    return request.param


def test_a_fixture_libc_gives_its_glibc_abi_note_and_version_definitions(tmp_path, way):
    facts = userland.image_facts(str(make_tree(tmp_path, "2.31", (3, 2, 0))))
    assert facts == {"machine": os.uname().machine, "glibc": "2.31", "glibc_release": "2.31",
                     "glibc_newest_symbol_version": "2.31", "abi_os": "Linux", "min_kernel": "3.2.0",
                     "libc": "lib64/libc-2.31.so", "needs_vsyscall": False}


def test_an_image_too_new_for_the_kernel_is_refused_with_the_kernel_it_needs(tmp_path, way):
    image = userland.image_facts(str(make_tree(tmp_path, "2.99", (7, 1, 0))))
    assert image["min_kernel"] == "7.1.0"
    reasons = userland.refusals(image, node(tmp_path, release="6.1.0-18-amd64"))
    assert len(reasons) == 1
    assert reasons[0].startswith("needs kernel >= 7.1.0 (the ABI note of lib64/libc-2.99.so, glibc 2.99), "
                                 "node runs 6.1.0-18-amd64")
    assert userland.refusals(image, node(tmp_path, release="7.1.0")) == []
    assert userland.refusals(image, node(tmp_path, release="7.10.2-rc1")) == []


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the vsyscall page exists on x86_64 only")
def test_an_old_glibc_needs_the_vsyscall_page_and_is_refused_on_vsyscall_none(tmp_path, way):
    image = userland.image_facts(str(make_tree(tmp_path, "2.12", (2, 6, 18))))
    assert image["needs_vsyscall"] is True
    facts = node(tmp_path, cmdline="ro vsyscall=none quiet")
    assert (facts["vsyscall"], facts["vsyscall_source"]) == ("none", str(tmp_path / "cmdline"))
    reasons = userland.refusals(image, facts)
    assert reasons == ["glibc 2.12 (before 2.14) calls the legacy vsyscall page, which this node does not "
                       "map (vsyscall=none, from %s): needs vsyscall=xonly or vsyscall=emulate on the "
                       "kernel command line" % (tmp_path / "cmdline")]
    # xonly still emulates calls (only reads of the page fault): glibc runs.
    assert userland.refusals(image, node(tmp_path, cmdline="vsyscall=xonly")) == []
    assert userland.refusals(image, node(tmp_path, cmdline="vsyscall=emulate")) == []


@pytest.mark.parametrize("cmdline,config,mode", [
    ("quiet", "CONFIG_LEGACY_VSYSCALL_XONLY=y\n", "xonly"),
    ("quiet", "CONFIG_LEGACY_VSYSCALL_NONE=y\n", "none"),
    ("quiet", "CONFIG_LEGACY_VSYSCALL_EMULATE=y\n", "emulate"),
    ("vsyscall=emulate", "CONFIG_LEGACY_VSYSCALL_NONE=y\n", "emulate"),
    ("vsyscall=none vsyscall=xonly", None, "xonly"),  # the last one wins
    ("vsyscall=bogus", "CONFIG_LEGACY_VSYSCALL_NONE=y\n", "none"),  # the kernel ignores a bad value
    ("vsyscall=emulate", "# CONFIG_X86_VSYSCALL_EMULATION is not set\n", "none"),
    ("quiet", None, None),
])
def test_the_vsyscall_mode_comes_from_the_command_line_then_the_kernel_config(tmp_path, cmdline, config, mode):
    assert node(tmp_path, cmdline=cmdline, config=config)["vsyscall"] == mode


def test_the_config_may_come_from_proc_config_gz(tmp_path):
    with gzip.open(tmp_path / "config.gz", "wt") as handle:
        handle.write("CONFIG_LEGACY_VSYSCALL_NONE=y\n")
    (tmp_path / "cmdline").write_text("quiet\n")
    facts = userland.node_facts(Uname("Linux", "n", "6.1.0", "#1", "x86_64"), str(tmp_path / "cmdline"),
                                str(tmp_path), str(tmp_path / "config.gz"))
    wanted = ("none", "%s (the kernel's default)" % (tmp_path / "config.gz"))
    assert (facts["vsyscall"], facts["vsyscall_source"]) == wanted


def test_an_unknown_mode_or_a_kernel_without_emulation_refuses_an_old_glibc(tmp_path):
    image = {"machine": "x86_64", "glibc": "2.5", "libc": "lib64/libc.so.6", "min_kernel": "2.6.9",
             "abi_os": "Linux", "needs_vsyscall": True}
    assert "put vsyscall=xonly (or emulate) on the kernel command line" in \
        userland.refusals(image, node(tmp_path))[0]
    built_without = node(tmp_path, cmdline="vsyscall=emulate",
                         config="# CONFIG_X86_VSYSCALL_EMULATION is not set\n")
    assert "needs a kernel built with CONFIG_X86_VSYSCALL_EMULATION" in userland.refusals(image, built_without)[0]
    # not an x86_64 node: there is no vsyscall page to ask for (and no x86_64 glibc would run anyway)
    assert userland.refusals(image, node(tmp_path, machine="aarch64")) == []
    assert userland.refusals(dict(image, abi_os="FreeBSD", needs_vsyscall=False), node(tmp_path)) == [
        "the ABI note of lib64/libc.so.6 is for FreeBSD, not Linux: this image cannot run on a Linux node"]


def test_a_symlink_leading_out_of_the_tree_is_refused(tmp_path, way):
    outside = build_libc(tmp_path / "outside")
    tree = tmp_path / "tree"
    (tree / "lib64").mkdir(parents=True)
    (tree / "lib64" / "libc.so.6").symlink_to("../../outside/" + outside.name)
    with pytest.raises(userland.UserlandError, match="leads out of the image tree"):
        userland.image_facts(str(tree))


def test_an_absolute_symlink_resolves_inside_the_tree_as_after_chroot(tmp_path, way):
    tree = make_tree(tmp_path, "2.17", (2, 6, 32), libdir="usr/lib64")
    (tree / "lib64").symlink_to("/usr/lib64")  # not the host's /usr/lib64
    assert userland.image_facts(str(tree))["libc"] == "usr/lib64/libc-2.17.so"
    (tree / "usr" / "lib64" / "libc.so.6").unlink()
    (tree / "usr" / "lib64" / "libc.so.6").symlink_to(os.path.realpath("/proc/self/exe"))
    with pytest.raises(userland.UserlandError, match="no libc.so.6 in"):  # the host's file is not in the tree
        userland.image_facts(str(tree))


def test_a_file_where_a_library_directory_should_be_is_passed_over(tmp_path, way):
    tree = make_tree(tmp_path, "2.28", (3, 2, 0), libdir="usr/lib64")
    (tree / "lib").write_text("not a directory")
    (tree / "lib64").symlink_to("lib/x")
    assert userland.image_facts(str(tree))["libc"] == "usr/lib64/libc-2.28.so"


def test_a_symlink_loop_and_a_tree_without_libc_are_errors(tmp_path, way):
    tree = tmp_path / "tree"
    (tree / "lib64").mkdir(parents=True)
    (tree / "lib64" / "libc.so.6").symlink_to("libc.so.6")
    with pytest.raises(userland.UserlandError, match="more than 40 symlinks"):
        userland.image_facts(str(tree))
    (tree / "lib64" / "libc.so.6").unlink()
    with pytest.raises(userland.UserlandError, match="no libc.so.6 in"):
        userland.image_facts(str(tree))


def _elf64(phoff=64, phnum=1, phentsize=56, shoff=0, shnum=0, notes=b"", note_at=None):
    """Crafted little-endian ELF64 header + one PT_NOTE program header (+ *notes*)."""
    note_at = 64 + 56 if note_at is None else note_at
    head = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    head += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, phoff, shoff, 0, 64, phentsize, phnum, 64, shnum, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 4, note_at, 0, 0, len(notes), len(notes), 4)
    return head + ph + notes


@pytest.mark.parametrize("data,message", [
    (b"", "is not an ELF file"),
    (b"#!/bin/sh\necho hello\n" * 4, "is not an ELF file"),
    (b"\x7fELF" + bytes([3, 1]) + bytes(60), "unknown ELF class or byte order"),
    (_elf64()[:40], "truncated or corrupt"),
    (_elf64(phnum=65535), re.escape("a header table at 64 (65535 x 56 bytes) is corrupt")),
    (_elf64(phentsize=8), "is corrupt"),
    (_elf64(notes=struct.pack("<III", 4, 0xFFFFFFF0, 1) + b"GNU\0"), "a note runs past the end"),
    (_elf64(notes=struct.pack("<III", 4, 8, 1) + b"GNU\0" + bytes(8)), "the GNU ABI note has 8 bytes, not 16"),
    (_elf64(notes=b"x" * 16, note_at=1 << 40), "runs past the end of the file"),
    (_elf64(shoff=1 << 20, shnum=3), "a header table at 1048576"),
])
def test_a_corrupt_libc_is_a_clear_error(data, message):
    with pytest.raises(userland.UserlandError, match=message):
        userland.read_libc(data, "bad")


def test_a_corrupt_libc_in_a_tree_names_the_file(tmp_path, way):
    tree = make_tree(tmp_path)
    lib = tree / "lib64" / "libc-2.31.so"
    lib.write_bytes(lib.read_bytes()[:200])
    with pytest.raises(JobrootError, match=r"tree/lib64/libc-2\.31\.so(: a | is truncated)"):
        userland.image_facts(str(tree))


def test_mangled_libcs_give_facts_or_a_clear_error_never_a_crash(tmp_path):
    good = build_libc(tmp_path / "lib").read_bytes()
    rng = random.Random(16)
    errors = 0
    for _round in range(400):
        data = bytearray(good[:rng.choice([64, 300, 2000, len(good)])])
        for _flip in range(rng.randint(1, 8)):
            at = rng.randrange(min(len(data), 1024))  # the headers, where offsets and sizes are
            data[at] = rng.randrange(256)
        try:
            userland.read_libc(bytes(data), "mangled")
        except userland.UserlandError:
            errors += 1
    assert errors > 0


def test_a_big_endian_32_bit_abi_note_is_read():
    notes = struct.pack(">III", 4, 16, 1) + b"GNU\0" + struct.pack(">IIII", 0, 2, 6, 9)
    head = b"\x7fELF" + bytes([1, 2, 1]) + bytes(9)
    head += struct.pack(">HHIIIIIHHHHHH", 3, 20, 1, 0, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    ph = struct.pack(">IIIIIIII", 4, 52 + 32, 0, 0, len(notes), len(notes), 4, 4)
    facts = userland.read_libc(head + ph + notes + b"release version 2.5.1 ")
    assert (facts["min_kernel"], facts["glibc"], facts["machine"]) == ("2.6.9", "2.5.1", "EM_20")
    assert userland.needs_vsyscall(facts) is False  # not x86_64


def test_the_hosts_own_libc_passes_on_this_node():
    image = userland.image_facts("/")
    assert image["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert image["abi_os"] == "Linux" and image["min_kernel"]
    assert userland.refusals(image, userland.node_facts()) == []
