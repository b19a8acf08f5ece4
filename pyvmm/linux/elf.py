"""Reading a Linux program: a static x86-64 ELF, non-PIE (``ET_EXEC``) or static-PIE (``ET_DYN``
without ``PT_INTERP``). Everything is validated here, before a VM exists, as rust-vmm's
linux-loader does: a bad file is one line of error, never a guest that faults."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise

from pyvmm.paravirt.abi import AS_LOW_BASE, AS_USER_END

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
ET_EXEC, ET_DYN = 2, 3
PF_X, PF_W, PF_R = 1, 2, 4
EM_X86_64 = 62
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
#: Where a static-PIE is placed (Linux puts PIEs near 2/3 of the 47-bit space).
PIE_BASE = 0x5555_5555_4000
MAX_PROGRAM = 512 << 20


class LinuxElfError(Exception):
    """The program cannot run under ``pyvmm exec``; the message is the one line the user sees."""


@dataclass(frozen=True)
class Segment:
    vaddr: int  # after the load bias
    memsz: int
    offset: int
    filesz: int
    flags: int  # PF_*


@dataclass(frozen=True)
class LinuxElf:
    entry: int  # after the load bias
    phdr: int  # AT_PHDR: where the program headers are in memory
    phent: int
    phnum: int
    segments: tuple[Segment, ...]
    bias: int
    pie: bool
    size: int  # bytes of the file

    @property
    def end(self) -> int:
        """The first address past every segment (the heap starts at the page after)."""
        return max(s.vaddr + s.memsz for s in self.segments)


def parse(data: bytes, name: str = "program") -> LinuxElf:
    """Validate *data* as a static x86-64 Linux executable. Raises :class:`LinuxElfError`."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
        raise LinuxElfError(f"{name}: not an ELF file")
    ident, etype, machine, _, entry, phoff, _, _, _, phentsize, phnum, _, _, _ = _EHDR.unpack_from(data)
    if ident[4] != 2 or ident[5] != 1:
        raise LinuxElfError(f"{name}: not a 64-bit little-endian ELF")
    if machine != EM_X86_64:
        raise LinuxElfError(f"{name}: not an x86-64 program (e_machine {machine})")
    if etype not in (ET_EXEC, ET_DYN):
        raise LinuxElfError(f"{name}: not an executable (e_type {etype})")
    if phentsize != _PHDR.size or phnum == 0 or phnum > 64 or phoff + phnum * phentsize > len(data):
        raise LinuxElfError(f"{name}: bad program headers")
    phdrs = [_PHDR.unpack_from(data, phoff + i * phentsize) for i in range(phnum)]
    if any(p[0] == PT_INTERP for p in phdrs):
        raise LinuxElfError(f"{name}: dynamically linked (has PT_INTERP); pyvmm exec runs static programs")
    bias = PIE_BASE if etype == ET_DYN else 0
    segments = []
    phdr_va = None
    for ptype, flags, offset, vaddr, _, filesz, memsz, _align in phdrs:
        if ptype == PT_PHDR:
            phdr_va = vaddr + bias
        if ptype != PT_LOAD or memsz == 0:
            continue
        if filesz > memsz or offset + filesz > len(data) or (vaddr - offset) % 4096:
            raise LinuxElfError(f"{name}: bad PT_LOAD segment at {vaddr:#x}")
        va = vaddr + bias
        if va < AS_LOW_BASE or va + memsz > AS_USER_END:
            raise LinuxElfError(
                f"{name}: segment [{va:#x}, {va + memsz:#x}) is outside the program window "
                f"[{AS_LOW_BASE:#x}, {AS_USER_END:#x})"
            )
        segments.append(Segment(va, memsz, offset, filesz, flags))
    if not segments:
        raise LinuxElfError(f"{name}: no loadable segment")
    segments.sort(key=lambda s: s.vaddr)
    for a, b in pairwise(segments):
        if a.vaddr + a.memsz > b.vaddr:
            raise LinuxElfError(f"{name}: PT_LOAD segments overlap at {b.vaddr:#x}")
    entry += bias
    if not any(s.vaddr <= entry < s.vaddr + s.memsz and s.flags & PF_X for s in segments):
        raise LinuxElfError(f"{name}: entry point {entry:#x} is not in an executable segment")
    if phdr_va is None:  # the headers' address: inside the segment that maps file offset phoff
        for s in segments:
            if s.offset <= phoff < s.offset + s.filesz:
                phdr_va = s.vaddr + (phoff - s.offset)
                break
        else:
            phdr_va = 0
    return LinuxElf(entry, phdr_va, phentsize, phnum, tuple(segments), bias, etype == ET_DYN, len(data))
