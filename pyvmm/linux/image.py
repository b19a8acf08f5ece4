"""The new process's memory: the load plan of its segments and its initial stack, as the
``struct pvm_exec_info`` manifest the guest kernel's exec program follows (pure logic: no KVM).

Built on the host, in Python, because it is all validation and layout (argv, envp and the
auxiliary vector laid out as the System V x86-64 ABI and Linux's ``create_elf_tables`` do);
the guest kernel then makes three kinds of hypercall: AS_LAZY per region, USER_RECV per copy
(file bytes and the stack image go straight into the program's pages) and AS_PROTECT.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

from pyvmm.linux.elf import PF_W, PF_X, LinuxElf
from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import AS_USER_END, ExecFlag, ExecInfo, Prot

PAGE = 4096
STACK_HI = AS_USER_END - PAGE  # a guard page above, as Linux leaves
STACK_SIZE = 8 << 20  # RLIMIT_STACK's usual value
MMAP_BASE = 0x7F00_0000_0000
MMAP_END = STACK_HI - STACK_SIZE - (1 << 30)
#: x86 AT_HWCAP is CPUID.1:EDX; programs use CPUID itself, this is the common x86-64 baseline.
HWCAP_X86_64 = 0x178BFBFF
DEFAULT_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/")

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN = 23, 25, 26, 31


class ImageError(Exception):
    """The process cannot be laid out (too many segments, arguments too long)."""


@dataclass(frozen=True)
class Process:
    argv: tuple[bytes, ...]
    env: tuple[bytes, ...]
    execfn: bytes
    cwd: bytes = b"/"
    uid: int = 0
    gid: int = 0
    stats: bool = False


def _prot(flags: int) -> int:
    p = Prot.READ  # x86 cannot map a page without read
    if flags & PF_W:
        p |= Prot.WRITE
    if flags & PF_X:
        p |= Prot.EXEC
    return int(p)


def regions(elf: LinuxElf) -> list[tuple[int, int, int]]:
    """Page-aligned ``(va, len, prot)`` covering every segment; a page two segments share gets both's prot."""
    pages: dict[int, int] = {}
    for s in elf.segments:
        for page in range(s.vaddr & ~(PAGE - 1), (s.vaddr + s.memsz + PAGE - 1) & ~(PAGE - 1), PAGE):
            pages[page] = pages.get(page, 0) | _prot(s.flags)
    out: list[tuple[int, int, int]] = []
    for page in sorted(pages):
        prot = pages[page]
        if out and out[-1][0] + out[-1][1] == page and out[-1][2] == prot:
            out[-1] = (out[-1][0], out[-1][1] + PAGE, prot)
        else:
            out.append((page, PAGE, prot))
    return out


def stack_image(elf: LinuxElf, proc: Process, random16: bytes) -> tuple[int, bytes]:
    """The initial stack: ``(sp, bytes at sp up to STACK_HI)``. Strings at the top, then the
    16 AT_RANDOM bytes, then (16-byte aligned at sp) argc, argv, NULL, envp, NULL, auxv."""
    strings = bytearray()
    top = STACK_HI

    def put(s: bytes) -> int:
        strings[:0] = s + b"\0"  # grow downwards: earlier strings end up higher
        return len(strings)

    # Place in order, remembering each one's distance from the top.
    offs_execfn = put(proc.execfn)
    offs_platform = put(b"x86_64")
    offs_env = [put(e) for e in proc.env]
    offs_argv = [put(a) for a in proc.argv]
    strings[:0] = random16
    offs_random = len(strings)
    pad = (-len(strings)) % 16
    strings[:0] = bytes(pad)

    def addr(off: int) -> int:
        return top - off

    auxv = [
        (AT_PHDR, elf.phdr),
        (AT_PHENT, elf.phent),
        (AT_PHNUM, elf.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, elf.entry),
        (AT_UID, proc.uid),
        (AT_EUID, proc.uid),
        (AT_GID, proc.gid),
        (AT_EGID, proc.gid),
        (AT_PLATFORM, addr(offs_platform)),
        (AT_HWCAP, HWCAP_X86_64),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, addr(offs_random)),
        (AT_HWCAP2, 0),
        (AT_EXECFN, addr(offs_execfn)),
        (AT_NULL, 0),
    ]
    words = [len(proc.argv), *(addr(o) for o in offs_argv), 0, *(addr(o) for o in offs_env), 0]
    for k, v in auxv:
        words += (k, v)
    if len(words) % 2:
        words.append(0)  # keeps sp 16-byte aligned (the strings part is a multiple of 16)
    vector = struct.pack(f"<{len(words)}Q", *words)
    image = vector + bytes(strings)
    if len(image) > STACK_SIZE // 4:
        raise ImageError(f"arguments and environment take {len(image)} bytes (more than {STACK_SIZE // 4})")
    return top - len(image), image


def build(elf: LinuxElf, proc: Process, *, random: bytes | None = None) -> bytes:
    """The whole "exec" channel: ``struct pvm_exec_info``, then the stack image."""
    rnd = random if random is not None else os.urandom(48)
    regs = regions(elf)
    copies = [(s.vaddr, s.offset, s.filesz) for s in elf.segments if s.filesz]
    if len(regs) > abi.EXEC_MAX_REGIONS or len(copies) > abi.EXEC_MAX_COPIES:
        raise ImageError(f"too many segments ({len(elf.segments)})")
    if len(proc.cwd) >= abi.EXEC_CWD_MAX or not proc.cwd.startswith(b"/"):
        raise ImageError("--cwd must be an absolute path shorter than 256 bytes")
    sp, stack = stack_image(elf, proc, rnd[:16])
    brk = (elf.end + PAGE - 1) & ~(PAGE - 1)
    info = ExecInfo(
        magic=abi.EXEC_MAGIC,
        entry=elf.entry,
        sp=sp,
        stack_lo=STACK_HI - STACK_SIZE,
        stack_hi=STACK_HI,
        stack_image_off=ctypes.sizeof(ExecInfo),
        stack_image_len=len(stack),
        brk=brk,
        brk_max=min(brk + (64 << 30), MMAP_BASE),
        mmap_base=MMAP_BASE,
        mmap_end=MMAP_END,
        nr_regions=len(regs),
        nr_copies=len(copies),
        uid=proc.uid,
        gid=proc.gid,
        flags=int(ExecFlag.STATS) if proc.stats else 0,
        cwd=proc.cwd,
    )
    for i, word in enumerate(struct.unpack("<4Q", rnd[16:48])):
        info.random[i] = word
    for i, (va, length, prot) in enumerate(regs):
        info.regions[i].va, info.regions[i].len, info.regions[i].prot = va, length, prot
    for i, (va, off, length) in enumerate(copies):
        info.copies[i].va, info.copies[i].file_off, info.copies[i].len = va, off, length
    return bytes(info) + stack
