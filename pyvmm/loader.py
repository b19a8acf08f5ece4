"""ELF64 guest loading with pyelftools, validated like rust-vmm's ``linux-loader``.

Every rejection is a :class:`LoaderError` whose message is one line a user can act on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmm.memory import GuestMemory

_PF_X = 1
_PF_W = 2


class LoaderError(Exception):
    """The guest image cannot be loaded; the message says why."""


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    gpa: int
    memsz: int
    filesz: int
    flags: int

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


def _parse(path: str, image: bytes):
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    if image[:4] != b"\x7fELF":
        raise LoaderError(f"{path}: not an ELF file")
    if len(image) < 64:
        raise LoaderError(f"{path}: truncated ELF header")
    if image[4] != 2:
        raise LoaderError(f"{path}: not a 64-bit ELF (class {image[4]})")
    if image[5] != 1:
        raise LoaderError(f"{path}: not little-endian")
    try:
        elf = ELFFile(io.BytesIO(image))
        machine = elf["e_machine"]
        etype = elf["e_type"]
        entry = elf["e_entry"]
        phdrs = [elf.get_segment(i).header for i in range(elf.num_segments())]
    except (ELFError, ValueError, KeyError, AssertionError) as e:
        raise LoaderError(f"{path}: malformed ELF ({e})") from None
    except Exception as e:  # construct raises its own StreamError etc. on truncation
        raise LoaderError(f"{path}: truncated or malformed ELF ({type(e).__name__})") from None
    if machine != "EM_X86_64":
        raise LoaderError(f"{path}: wrong machine {machine}, need x86-64")
    if etype != "ET_EXEC":
        raise LoaderError(f"{path}: not a statically linked executable ({etype})")
    return entry, phdrs


def load_elf(path: str | Path, mem: GuestMemory, *, reserved_end: int) -> LoadedElf:
    """Validate *path* and copy its PT_LOAD segments into *mem* at their physical addresses.

    Segments must lie in ``[reserved_end, mem.size)`` and not overlap; the
    entry point must be inside an executable segment. BSS is zero-filled.
    """
    path = str(path)
    p = Path(path)
    if p.is_dir():
        raise LoaderError(f"{path}: is a directory, not a guest ELF")
    try:
        image = p.read_bytes()
    except FileNotFoundError:
        raise LoaderError(f"{path}: no such file") from None
    except OSError as e:
        raise LoaderError(f"{path}: cannot read ({e.strerror})") from None

    entry, phdrs = _parse(path, image)
    segments: list[tuple[Segment, int]] = []
    for ph in phdrs:
        if ph["p_type"] != "PT_LOAD" or ph["p_memsz"] == 0:
            continue
        gpa, memsz, filesz, offset = ph["p_paddr"], ph["p_memsz"], ph["p_filesz"], ph["p_offset"]
        if filesz > memsz:
            raise LoaderError(f"{path}: segment at {gpa:#x} has file size larger than memory size")
        if offset + filesz > len(image):
            raise LoaderError(f"{path}: truncated (segment at {gpa:#x} runs past the end of the file)")
        if gpa < reserved_end:
            raise LoaderError(
                f"{path}: segment at {gpa:#x} overlaps the VMM-reserved pages below {reserved_end:#x}"
            )
        if gpa + memsz > mem.size:
            raise LoaderError(
                f"{path}: segment [{gpa:#x}, {gpa + memsz:#x}) does not fit in guest memory "
                f"({mem.size >> 20} MiB); use a larger --memory"
            )
        segments.append((Segment(gpa, memsz, filesz, ph["p_flags"]), offset))
    if not segments:
        raise LoaderError(f"{path}: no loadable segments")
    ordered = sorted(seg for seg, _ in segments)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.gpa < a.end:
            raise LoaderError(f"{path}: segments at {a.gpa:#x} and {b.gpa:#x} overlap")
    if not any(seg.executable and seg.gpa <= entry < seg.gpa + seg.filesz for seg, _ in segments):
        raise LoaderError(f"{path}: entry point {entry:#x} is outside the loaded code")

    for seg, offset in segments:
        mem.write(seg.gpa, image[offset : offset + seg.filesz])
        if seg.memsz > seg.filesz:
            mem.write(seg.gpa + seg.filesz, bytes(seg.memsz - seg.filesz))
    return LoadedElf(path, entry, [seg for seg, _ in segments], image)
