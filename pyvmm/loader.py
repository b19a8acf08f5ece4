"""ELF64 guest loading, validated like rust-vmm's ``linux-loader``.

Every rejection is a :class:`LoaderError` whose message is one line a user can act on.
"""

from __future__ import annotations

import io
import itertools
import os
import stat
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

    from pyvmm.memory import GuestMemory

_PF_X = 1
_PF_W = 2


class LoaderError(Exception):
    """The guest image cannot be loaded; the message says why."""


class Segment(NamedTuple):
    gpa: int
    memsz: int
    filesz: int
    flags: int
    #: Where the segment is linked (``p_vaddr``); it is loaded at ``gpa`` (``p_paddr``).
    vaddr: int = -1

    @property
    def end(self) -> int:
        return self.gpa + self.memsz

    @property
    def executable(self) -> bool:
        return bool(self.flags & _PF_X)

    @property
    def writable(self) -> bool:
        return bool(self.flags & _PF_W)


@dataclass
class LoadedElf:
    """What was loaded: entry point, segments, and a symbol table on demand."""

    path: str
    entry: int
    segments: list[Segment]
    _image: bytes = field(repr=False)
    _symbols: dict[str, int] | None = field(default=None, repr=False)

    def symbol(self, name: str) -> int | None:
        """Address of symbol *name* from ``.symtab``, or None."""
        if self._symbols is None:
            from elftools.elf.elffile import ELFFile
            from elftools.elf.sections import SymbolTableSection

            self._symbols = {}
            elf = ELFFile(io.BytesIO(self._image))
            for section in elf.iter_sections():
                if isinstance(section, SymbolTableSection):
                    for sym in section.iter_symbols():
                        if sym.name:
                            self._symbols.setdefault(sym.name, sym["st_value"])
        return self._symbols.get(name)

    @property
    def end(self) -> int:
        """First byte after the highest loaded segment."""
        return max(seg.end for seg in self.segments)


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_ET_EXEC = 2
_EM_X86_64 = 62
_PT_LOAD = 1


class _Phdr(NamedTuple):
    type: int
    flags: int
    offset: int
    paddr: int
    filesz: int
    memsz: int
    vaddr: int


def _parse(path: str, image: bytes) -> tuple[int, list[_Phdr]]:
    """Validate the ELF header and return (entry, program headers).

    The header and program-header table are fixed little structs, read here
    with :mod:`struct` rather than pyelftools, whose import alone (about 30 ms,
    it pulls in DWARF and pdb) would be a third of a whole ``pyvmm run``;
    pyelftools serves symbol lookup and cross-checks this parser in the tests.
    """
    if image[:4] != b"\x7fELF":
        raise LoaderError(f"{path}: not an ELF file")
    if len(image) < _EHDR.size:
        raise LoaderError(f"{path}: truncated ELF header")
    if image[4] != 2:
        raise LoaderError(f"{path}: not a 64-bit ELF (class {image[4]})")
    if image[5] != 1:
        raise LoaderError(f"{path}: not little-endian")
    (_, etype, machine, _, entry, phoff, _, _, _, phentsize, phnum, _, _, _) = _EHDR.unpack_from(image)
    if machine != _EM_X86_64:
        raise LoaderError(f"{path}: wrong machine ({machine}), need x86-64 (62)")
    if etype != _ET_EXEC:
        raise LoaderError(f"{path}: not a statically linked executable (e_type {etype})")
    if phnum == 0:
        raise LoaderError(f"{path}: no program headers")
    if phentsize != _PHDR.size:
        raise LoaderError(f"{path}: malformed ELF (program header size {phentsize})")
    if phoff + phnum * _PHDR.size > len(image):
        raise LoaderError(f"{path}: truncated (program headers run past the end of the file)")
    phdrs = [
        _Phdr(ptype, flags, offset, paddr, filesz, memsz, vaddr)
        for ptype, flags, offset, vaddr, paddr, filesz, memsz, _ in (
            _PHDR.unpack_from(image, phoff + i * _PHDR.size) for i in range(phnum)
        )
    ]
    return entry, phdrs


@dataclass
class ElfImage:
    """A validated guest ELF, not yet in guest memory (parse before creating the VM)."""

    path: str
    entry: int
    image: bytes = field(repr=False)
    segments: list[tuple[Segment, int]] = field(repr=False)  # (segment, file offset)

    def load(self, mem: GuestMemory, *, reserved_end: int, zeroed: bool = False) -> LoadedElf:
        """Copy the PT_LOAD segments into *mem*; they must lie in ``[reserved_end, mem.size)``.

        Each segment's ``.bss`` (``memsz`` past ``filesz``) must read as zero. Pass
        *zeroed* when the segments' memory is known to be zero already (a fresh
        anonymous mapping, as :class:`~pyvmm.machine.Machine` loads into): then
        nothing is written there, so a guest declaring a 2000 MiB ``.bss`` costs
        no host memory and no time. Segments never overlap (:func:`read_elf`
        refuses that), so no segment's file bytes lie under another's ``.bss``:
        only memory written before the load (a reused *mem*) could be non-zero, and
        without *zeroed* it is cleared in bounded chunks, never one host allocation.
        """
        path = self.path
        for seg, _ in self.segments:
            if seg.gpa < reserved_end:
                raise LoaderError(
                    f"{path}: segment at {seg.gpa:#x} overlaps the VMM-reserved pages below {reserved_end:#x}"
                )
            if seg.end > mem.size:
                raise LoaderError(
                    f"{path}: segment [{seg.gpa:#x}, {seg.end:#x}) does not fit in guest memory "
                    f"({mem.size >> 20} MiB); use a larger --memory"
                )
        for seg, offset in self.segments:
            mem.write(seg.gpa, self.image[offset : offset + seg.filesz])
            if not zeroed:
                _zero(mem, seg.gpa + seg.filesz, seg.memsz - seg.filesz)
        return LoadedElf(path, self.entry, [seg for seg, _ in self.segments], self.image)


#: Largest guest file read: more could never fit in guest RAM, and reading it whole would
#: only exhaust the host's memory.
MAX_IMAGE_SIZE = 1 << 30


def _read_image(path: str) -> bytes:
    """The file's bytes; only a regular file, so a FIFO cannot hang pyvmm nor /dev/zero fill its memory."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LoaderError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoaderError(f"{path}: is a directory, not a guest ELF") from None
    except OSError as e:
        raise LoaderError(f"{path}: cannot open ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise LoaderError(f"{path}: is a directory, not a guest ELF")
        if not stat.S_ISREG(st.st_mode):
            raise LoaderError(f"{path}: not a regular file")
        if st.st_size > MAX_IMAGE_SIZE:
            raise LoaderError(f"{path}: too large for a guest ELF ({st.st_size} bytes, at most {MAX_IMAGE_SIZE})")
        chunks = []
        total = 0
        while total <= MAX_IMAGE_SIZE:  # a file that grows while we read stops here too
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_IMAGE_SIZE:
            raise LoaderError(f"{path}: too large for a guest ELF (more than {MAX_IMAGE_SIZE} bytes)")
        return b"".join(chunks)
    except OSError as e:
        raise LoaderError(f"{path}: cannot read ({e.strerror})") from None
    finally:
        os.close(fd)


#: The zero-filling buffer's size: the host allocation is this, whatever the ``.bss`` size.
_ZERO_CHUNK = 1 << 20


def _zero(mem: GuestMemory, gpa: int, length: int) -> None:
    """Write *length* zero bytes at *gpa*, one bounded chunk at a time."""
    if length <= 0:
        return
    chunk = bytes(min(length, _ZERO_CHUNK))
    end = gpa + length
    while gpa < end:
        n = min(len(chunk), end - gpa)
        mem.write(gpa, memoryview(chunk)[:n])
        gpa += n


def read_elf(path: str | Path) -> ElfImage:
    """Read and validate *path*: ELF64, x86-64, static executable, sane segments and entry."""
    path = str(path)
    image = _read_image(path)

    entry, phdrs = _parse(path, image)
    segments: list[tuple[Segment, int]] = []
    for ph in phdrs:
        if ph.type != _PT_LOAD or ph.memsz == 0:
            continue
        gpa, memsz, filesz, offset = ph.paddr, ph.memsz, ph.filesz, ph.offset
        if filesz > memsz:
            raise LoaderError(f"{path}: segment at {gpa:#x} has file size larger than memory size")
        if offset + filesz > len(image):
            raise LoaderError(f"{path}: truncated (segment at {gpa:#x} runs past the end of the file)")
        if gpa + memsz > 1 << 52:
            raise LoaderError(f"{path}: segment at {gpa:#x} is beyond any physical address")
        segments.append((Segment(gpa, memsz, filesz, ph.flags, ph.vaddr), offset))
    if not segments:
        raise LoaderError(f"{path}: no loadable segments")
    ordered = sorted(seg for seg, _ in segments)
    for a, b in itertools.pairwise(ordered):
        if b.gpa < a.end:
            raise LoaderError(f"{path}: segments at {a.gpa:#x} and {b.gpa:#x} overlap")
    if not any(seg.executable and seg.gpa <= entry < seg.gpa + seg.filesz for seg, _ in segments):
        raise LoaderError(f"{path}: entry point {entry:#x} is outside the loaded code")
    return ElfImage(path, entry, image, segments)


def load_elf(path: str | Path, mem: GuestMemory, *, reserved_end: int) -> LoadedElf:
    """:func:`read_elf` then :meth:`ElfImage.load`."""
    return read_elf(path).load(mem, reserved_end=reserved_end)
