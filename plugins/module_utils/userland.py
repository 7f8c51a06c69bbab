# -*- coding: utf-8 -*-
# Copyright: hpc.jobroot contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this node run this image's userland?  Facts of the image, facts of the node, the verdict.

An old userland (the seed's SL5, EL6) fails on a current kernel in ways nobody
sees until a job crashes (issue 16). Three facts decide it, all read from the
image's ``libc.so.6`` (resolved inside the tree, never through a symlink that
leaves it):

* **glibc version**: the ``release version X.Y`` string every glibc carries
  (what ``libc.so.6`` prints when run), else the highest ``GLIBC_X.Y``
  version definition in ``.gnu.version_d``.
* **minimum kernel**: glibc's ABI note, the ``NT_GNU_ABI_TAG`` (type 1) note
  of owner ``GNU`` (ELF gABI "Note Section"; glibc csu/abi-note.S): four 32-bit
  words, OS (0 = Linux) and the earliest kernel version X.Y.Z glibc was
  configured for (``--enable-kernel``). Its dynamic loader refuses to run on
  an older kernel ("FATAL: kernel too old").
* **vsyscall**: x86_64 glibc before 2.14 calls ``time``, ``gettimeofday``
  and ``getcpu`` at fixed addresses in the legacy vsyscall page; 2.14 and
  later use the vDSO (Linux arch/x86/Kconfig, LEGACY_VSYSCALL: "On a system
  with recent enough glibc (2.14 or newer) and no static binaries, you can
  say None").

The node's side is the running kernel (os.uname) and its vsyscall mode:
``vsyscall=`` on ``/proc/cmdline`` (the last one wins, as for every early
parameter), else the build default from the kernel config
(``/boot/config-<release>`` or ``/proc/config.gz``:
CONFIG_LEGACY_VSYSCALL_{EMULATE,XONLY,NONE}; a kernel without
CONFIG_X86_VSYSCALL_EMULATION has no vsyscall page whatever the command line
says). The modes (Documentation/admin-guide/kernel-parameters.txt,
``vsyscall=``): ``emulate`` - calls trap and are emulated, the page is
readable; ``xonly`` - calls trap and are emulated, the page is not readable;
``none`` - calls fault (SIGSEGV).

The rule (:func:`refusals`): an image whose glibc needs the vsyscall page is
refused on a node in mode ``none`` (or without the emulation), and on a node
whose mode cannot be told; ``xonly`` and ``emulate`` both run it, because
glibc only *calls* into the page, and xonly still emulates calls (what xonly
breaks is code that *reads* the page, such as binary instrumentation tools
like Pin: arch/x86/Kconfig, LEGACY_VSYSCALL_EMULATE, which no check of the
tree can see). An image whose ABI note names a newer kernel than the node
runs is refused.

ELF is parsed with struct from bytes (32/64-bit, either byte order); every
offset and size is bounds-checked, so a corrupt or hostile file raises
:class:`UserlandError` with the reason, never an IndexError or a hang.
"""

from __future__ import annotations

import errno as errnos
import gzip
import os
import re
import stat
import struct

from ansible_collections.hpc.jobroot.plugins.module_utils import beneath
from ansible_collections.hpc.jobroot.plugins.module_utils.errors import JobrootError

#: Where libc.so.6 lives in the trees we know (Debian multiarch, EL lib64, plain lib).
LIBC_DIRS = ("lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib/x86_64-linux-gnu", "usr/lib64",
             "usr/lib", "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu",
             "lib/powerpc64le-linux-gnu", "usr/lib/powerpc64le-linux-gnu")
#: A libc larger than this is not read (bytes); glibc's is 2-3 MB.
MAX_LIBC = 64 << 20
#: Symlinks followed (inside the tree) before giving up, as the kernel's MAXSYMLINKS.
MAX_LINKS = 40
#: The first glibc that no longer calls the vsyscall page on x86_64 (arch/x86/Kconfig).
VSYSCALL_FREE_GLIBC = (2, 14)
MODES = ("emulate", "xonly", "none")
#: ELF e_machine numbers (gABI) of the architectures we name.
MACHINES = {3: "i386", 62: "x86_64", 183: "aarch64", 21: "ppc64", 40: "arm", 22: "s390"}
NT_GNU_ABI_TAG = 1
ABI_OS = {0: "Linux", 1: "GNU Hurd", 2: "Solaris", 3: "FreeBSD"}
PT_NOTE = 4
SHT_NOTE = 7
SHT_GNU_VERDEF = 0x6FFFFFFD
_RELEASE_RE = re.compile(rb"release version (\d+)\.(\d+)(?:\.(\d+))?")
_GLIBC_DEF_RE = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")
_KERNEL_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


class UserlandError(JobrootError):
    """The image's libc cannot be found or read (missing, escaping symlink, corrupt ELF)."""


def _vtuple(text):
    """``"2.31"`` -> ``(2, 31)``; ``"3.2.0"`` -> ``(3, 2, 0)``."""
    return tuple(int(p) for p in text.split("."))


def _vtext(parts):
    return ".".join(str(p) for p in parts)


# --- resolving inside the tree ---------------------------------------------------------

def open_in_tree(tree_fd, rel):
    """Open *rel* below directory descriptor *tree_fd* for reading, following symlinks inside it.

    *rel*: a relative path. A symlink is read (readlinkat) and its target
    resolved as the job would see it after chroot: an absolute target from
    the tree's top, a relative one from the symlink's directory. ``..`` above
    the top, more than :data:`MAX_LINKS` symlinks, or anything but a regular
    file at the end raises UserlandError (a missing component or one that is
    not a directory: FileNotFoundError, NotADirectoryError); every component is opened by
    :func:`beneath.open_beneath` (one component at a time, no symlink
    followed), so nothing outside the tree is ever opened. Returns
    ``(fd, path)``: an ``O_RDONLY`` descriptor (close it) and the resolved
    path relative to the tree.
    """
    stack = [os.dup(tree_fd)]  # directory descriptors from the top down
    names = []
    todo = [p for p in rel.split("/") if p not in ("", ".")]
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) == 1:
                    raise UserlandError("%s leads out of the image tree" % rel)
                os.close(stack.pop())
                names.pop()
                continue
            st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise UserlandError("%s: more than %d symlinks" % (rel, MAX_LINKS))
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names = []
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if todo:
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errnos.ENOTDIR, "not a directory", "/".join(names + [part]))
                stack.append(beneath.open_beneath(stack[-1], part, os.O_PATH | os.O_DIRECTORY))
                names.append(part)
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UserlandError("%s is not a regular file" % "/".join(names + [part]))
            fd = beneath.open_beneath(stack[-1], part, os.O_RDONLY)
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the lstat
                os.close(fd)
                raise UserlandError("%s is not a regular file" % "/".join(names + [part]))
            return fd, "/".join(names + [part])
        raise UserlandError("%s names a directory, not a file" % rel)
    except OSError as exc:
        if exc.errno in (errnos.ELOOP, errnos.EXDEV):
            raise UserlandError("%s: a symlink changed under us or leads out of the tree (%s)"
                                % (rel, exc)) from None
        raise
    finally:
        for fd in stack:
            os.close(fd)


def find_libc(tree):
    """Return ``(data, path)``: the bytes of the tree's ``libc.so.6`` and its resolved path in the tree.

    *tree*: absolute path of an image tree (its own components are the
    admin's). Tries :data:`LIBC_DIRS` in order. Raises UserlandError if there
    is none, it escapes the tree, or it is larger than :data:`MAX_LIBC`.
    """
    top = os.open(tree, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for folder in LIBC_DIRS:
            try:
                fd, path = open_in_tree(top, folder + "/libc.so.6")
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                size = os.fstat(fd).st_size
                if size > MAX_LIBC:
                    raise UserlandError("%s/%s is %d bytes, more than a libc (%d)" % (tree, path, size, MAX_LIBC))
                with os.fdopen(fd, "rb", closefd=False) as handle:
                    data = handle.read(MAX_LIBC + 1)
            finally:
                os.close(fd)
            return data, path
    finally:
        os.close(top)
    raise UserlandError("no libc.so.6 in %s (looked in %s)" % (tree, ", ".join(LIBC_DIRS)))


# --- ELF -------------------------------------------------------------------------------

class _Elf:  # pylint: disable=too-few-public-methods
    """Bounds-checked views of an ELF file held in memory (gABI, "ELF Header" and after)."""

    def __init__(self, data, name):
        self.data = data
        self.name = name
        if data[:4] != b"\x7fELF":
            raise UserlandError("%s is not an ELF file" % name)
        if len(data) < 6 or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise UserlandError("%s: unknown ELF class or byte order %r" % (name, data[4:6]))
        self.wide = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        if self.wide:
            (self.machine, self.phoff, self.shoff, self.phentsize, self.phnum, self.shentsize,
             self.shnum) = self.unpack("H12xQQ6xHHHH", 18)
        else:
            (self.machine, self.phoff, self.shoff, self.phentsize, self.phnum, self.shentsize,
             self.shnum) = self.unpack("H8xII6xHHHH", 18)

    def unpack(self, fmt, offset):
        fmt = self.end + fmt
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.data):
            raise UserlandError("%s is truncated or corrupt (a header at %d runs past its end, %d bytes)"
                                % (self.name, offset, len(self.data)))
        return struct.unpack_from(fmt, self.data, offset)

    def table(self, offset, entsize, count, need):
        """Yield the offsets of *count* table entries of *entsize* (at least *need*) bytes."""
        if not count:
            return
        if entsize < need or offset + entsize * count > len(self.data):
            raise UserlandError("%s: a header table at %d (%d x %d bytes) is corrupt"
                                % (self.name, offset, count, entsize))
        for i in range(count):
            yield offset + i * entsize

    def segments(self):
        """Yield ``(type, offset, filesz, align)`` of every program header."""
        need = 56 if self.wide else 32
        for at in self.table(self.phoff, self.phentsize, self.phnum, need):
            # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align;
            # Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align
            if self.wide:
                row = self.unpack("IIQQQQQQ", at)
                yield row[0], row[2], row[5], row[7]
            else:
                row = self.unpack("IIIIIIII", at)
                yield row[0], row[1], row[4], row[7]

    def sections(self):
        """Yield ``(type, offset, size, link)`` of every section header."""
        need = 64 if self.wide else 40
        for at in self.table(self.shoff, self.shentsize, self.shnum, need):
            # Elf_Shdr: name, type, flags, addr, offset, size, link
            row = self.unpack("IIQQQQI" if self.wide else "IIIIIII", at)
            yield row[1], row[4], row[5], row[6]

    def blob(self, offset, size):
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise UserlandError("%s: a part at %d (%d bytes) runs past the end of the file"
                                % (self.name, offset, size))
        return self.data[offset:offset + size]


def _notes(elf, blob, align):
    """Yield ``(owner, type, desc)`` of the notes in *blob* (gABI "Note Section"; 8-byte
    alignment only for PT_NOTE segments aligned so, as the GNU property notes)."""
    align = 8 if align == 8 else 4
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, kind = struct.unpack_from(elf.end + "III", blob, pos)
        pos += 12
        name_end = pos + namesz
        desc_at = (name_end + align - 1) & ~(align - 1)
        desc_end = desc_at + descsz
        if desc_end > len(blob):
            raise UserlandError("%s: a note runs past the end of its section" % elf.name)
        yield blob[pos:name_end].rstrip(b"\0"), kind, blob[desc_at:desc_end]
        pos = (desc_end + align - 1) & ~(align - 1)


def _abi_tag(elf):
    """Return ``(os, (major, minor, sub))`` of the NT_GNU_ABI_TAG note, or None without one."""
    places = [(off, size, align) for kind, off, size, align in elf.segments() if kind == PT_NOTE]
    if not places:
        places = [(sec[1], sec[2], 4) for sec in elf.sections() if sec[0] == SHT_NOTE]
    for off, size, align in places:
        for owner, kind, desc in _notes(elf, elf.blob(off, size), align):
            if owner == b"GNU" and kind == NT_GNU_ABI_TAG:
                if len(desc) < 16:
                    raise UserlandError("%s: the GNU ABI note has %d bytes, not 16" % (elf.name, len(desc)))
                words = struct.unpack_from(elf.end + "IIII", desc)
                return words[0], tuple(words[1:])
    return None


def _glibc_defs(elf):
    """Return the ``GLIBC_X.Y[.Z]`` version definitions (.gnu.version_d) as sorted tuples."""
    sections = list(elf.sections())
    found = set()
    for kind, off, size, link in sections:
        if kind != SHT_GNU_VERDEF:
            continue
        if link >= len(sections):
            raise UserlandError("%s: the version definitions name no string table" % elf.name)
        strtab = elf.blob(sections[link][1], sections[link][2])
        blob = elf.blob(off, size)
        pos = 0
        for _step in range(4096):  # a libc has ~40; a loop in vd_next cannot hang us
            if pos + 20 > len(blob):
                raise UserlandError("%s: a version definition runs past its section" % elf.name)
            # Elf_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next
            verdef = struct.unpack_from(elf.end + "HHHHIII", blob, pos)
            cnt, aux, nxt = verdef[3], verdef[5], verdef[6]
            if cnt:
                if pos + aux + 8 > len(blob):
                    raise UserlandError("%s: a version name runs past its section" % elf.name)
                name_off = struct.unpack_from(elf.end + "I", blob, pos + aux)[0]
                end = strtab.find(b"\0", name_off)
                if name_off >= len(strtab) or end < 0:
                    raise UserlandError("%s: a version name lies outside its string table" % elf.name)
                match = _GLIBC_DEF_RE.match(strtab[name_off:end].decode("ascii", "replace"))
                if match:
                    found.add(tuple(int(p) for p in match.groups() if p is not None))
            if not nxt:
                break
            pos += nxt
        else:
            raise UserlandError("%s: the version definitions do not end" % elf.name)
    return sorted(found)


def read_libc(data, name="libc.so.6"):
    """Return the facts of a ``libc.so.6`` given as bytes *data* (*name* names it in errors).

    A dict: ``machine`` (str, e.g. ``x86_64``, or ``EM_<n>``), ``glibc``
    (``"2.31"``: the release string, else the highest GLIBC_ definition;
    None if neither), ``glibc_release`` and ``glibc_newest_symbol_version``
    (each or None), ``abi_os`` (``Linux`` ...; None without an ABI note),
    ``min_kernel`` (``"3.2.0"`` or None). Raises UserlandError for a file that
    is not ELF or whose headers, notes or version definitions are corrupt.
    """
    elf = _Elf(data, name)
    tag = _abi_tag(elf)
    defs = _glibc_defs(elf)
    match = _RELEASE_RE.search(data)
    release = ".".join(g.decode() for g in match.groups() if g is not None) if match else None
    newest = _vtext(defs[-1]) if defs else None
    return {
        "machine": MACHINES.get(elf.machine, "EM_%d" % elf.machine),
        "glibc": release or newest,
        "glibc_release": release,
        "glibc_newest_symbol_version": newest,
        "abi_os": None if tag is None else ABI_OS.get(tag[0], "OS %d" % tag[0]),
        "min_kernel": None if tag is None else _vtext(tag[1]),
    }


def needs_vsyscall(facts):
    """True if the libc of *facts* (:func:`read_libc`) calls the legacy vsyscall page.

    Rule: an x86_64 glibc before 2.14 (:data:`VSYSCALL_FREE_GLIBC`; arch/x86/Kconfig,
    LEGACY_VSYSCALL). An unknown glibc version counts as not needing it.
    """
    return bool(facts.get("machine") == "x86_64" and facts.get("glibc")
                and _vtuple(facts["glibc"])[:2] < VSYSCALL_FREE_GLIBC)


def image_facts(tree):
    """Return the userland facts of image tree *tree* (absolute path): :func:`read_libc`'s
    dict plus ``libc`` (its resolved path in the tree) and ``needs_vsyscall`` (bool).

    Raises UserlandError as :func:`find_libc` and :func:`read_libc`.
    """
    data, path = find_libc(tree)
    facts = read_libc(data, "%s/%s" % (tree.rstrip("/"), path))
    facts["libc"] = path
    facts["needs_vsyscall"] = needs_vsyscall(facts)
    return facts


# --- the node --------------------------------------------------------------------------

def cmdline_vsyscall(cmdline):
    """Return the ``vsyscall=`` mode of kernel command line *cmdline* (str), or None.

    The last valid occurrence wins (early_param runs for each); a value the
    kernel rejects (not emulate/xonly/none) is ignored, as the kernel does.
    """
    mode = None
    for word in cmdline.split():
        if word.startswith("vsyscall=") and word[9:] in MODES:
            mode = word[9:]
    return mode


def config_vsyscall(config):
    """Return the vsyscall default of kernel config text *config*, or None if it does not say.

    ``none`` when CONFIG_X86_VSYSCALL_EMULATION is not set (no page at all);
    else the CONFIG_LEGACY_VSYSCALL_{EMULATE,XONLY,NONE}=y choice.
    """
    if "# CONFIG_X86_VSYSCALL_EMULATION is not set" in config:
        return "none"
    for mode in MODES:
        if re.search(r"^CONFIG_LEGACY_VSYSCALL_%s=y$" % mode.upper(), config, re.M):
            return mode
    return None


def _read_config(release, boot="/boot", proc_config="/proc/config.gz"):
    """Return ``(text, path)`` of the running kernel's config, or ``(None, None)``."""
    path = os.path.join(boot, "config-" + release)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(), path
    except OSError:
        pass
    try:
        with gzip.open(proc_config, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read(), proc_config
    except (OSError, EOFError):
        return None, None


def node_facts(uname=None, cmdline="/proc/cmdline", boot="/boot", proc_config="/proc/config.gz"):
    """Return the facts of this node (or of the given sources, for tests).

    *uname*: an os.uname() result (default: this node's). *cmdline*,
    *boot*, *proc_config*: where the command line, ``config-<release>`` and
    the compressed config are read. A dict: ``kernel_release`` (str),
    ``kernel`` (``"6.1.0"``, or None if the release does not start with
    X.Y), ``machine``, ``vsyscall`` (emulate/xonly/none, None if unknown or
    not an x86_64 node) and ``vsyscall_source`` (where it was read, or why
    it is unknown). Raises nothing for a missing source: it is reported as
    unknown.
    """
    uname = uname or os.uname()
    match = _KERNEL_RE.match(uname.release)
    facts = {"kernel_release": uname.release, "machine": uname.machine,
             "kernel": _vtext(int(g or 0) for g in match.groups()) if match else None,
             "vsyscall": None, "vsyscall_source": "not an x86_64 node"}
    if uname.machine != "x86_64":
        return facts
    config, config_path = _read_config(uname.release, boot, proc_config)
    default = config_vsyscall(config) if config else None
    if config and "# CONFIG_X86_VSYSCALL_EMULATION is not set" in config:
        facts.update(vsyscall="none", vsyscall_source="%s (built without CONFIG_X86_VSYSCALL_EMULATION)"
                     % config_path)
        return facts
    try:
        with open(cmdline, encoding="utf-8", errors="replace") as handle:
            given = cmdline_vsyscall(handle.read())
    except OSError:
        given = None
    if given:
        facts.update(vsyscall=given, vsyscall_source=cmdline)
    elif default:
        facts.update(vsyscall=default, vsyscall_source="%s (the kernel's default)" % config_path)
    else:
        facts["vsyscall_source"] = "unknown (no vsyscall= in %s and no kernel config in %s/config-%s or %s)" % (
            cmdline, boot, uname.release, proc_config)
    return facts


# --- the verdict -----------------------------------------------------------------------

def refusals(image, node):
    """Return the reasons (list of str, empty if none) why *node* cannot run *image*.

    *image*: :func:`image_facts`; *node*: :func:`node_facts`. Pure. Each
    reason names the cause and the fix. Rules (module docstring): ABI note
    kernel newer than the node's; vsyscall needed but mode ``none`` or
    unknown. Non-Linux ABI notes are refused too (the node runs Linux).
    """
    out = []
    libc = image.get("libc", "libc.so.6")
    if image.get("abi_os") not in (None, "Linux"):
        out.append("the ABI note of %s is for %s, not Linux: this image cannot run on a Linux node"
                   % (libc, image["abi_os"]))
    if image.get("min_kernel") and node.get("kernel") and \
            _vtuple(image["min_kernel"]) > _vtuple(node["kernel"]):
        out.append("needs kernel >= %s (the ABI note of %s, glibc %s), node runs %s: deploy it on "
                   "nodes with a newer kernel, or use an image whose glibc supports this kernel"
                   % (image["min_kernel"], libc, image.get("glibc") or "?", node["kernel_release"]))
    if image.get("needs_vsyscall") and node.get("machine") == "x86_64":
        why = "glibc %s (before 2.14) calls the legacy vsyscall page" % image.get("glibc")
        if node.get("vsyscall") == "none":
            if "CONFIG_X86_VSYSCALL_EMULATION" in node.get("vsyscall_source", ""):
                out.append("%s, which this kernel cannot emulate (%s): needs a kernel built with "
                           "CONFIG_X86_VSYSCALL_EMULATION and vsyscall=xonly" % (why, node["vsyscall_source"]))
            else:
                out.append("%s, which this node does not map (vsyscall=none, from %s): needs "
                           "vsyscall=xonly or vsyscall=emulate on the kernel command line"
                           % (why, node.get("vsyscall_source")))
        elif node.get("vsyscall") is None:
            out.append("%s, and this node's vsyscall mode is %s: put vsyscall=xonly (or emulate) on "
                       "the kernel command line so it can be checked" % (why, node.get("vsyscall_source")))
    return out
