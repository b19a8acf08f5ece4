"""Guest memory as a vCPU sees it: virtual addresses through that vCPU's CR3.

Every byte goes through :class:`~pyvmm.memory.GuestMemory`, the one checked
accessor, after a walk of the guest's own page tables (:mod:`pyvmm.x86.paging`,
as the crash report translates ``rip``). An address the tables do not map is
``None`` here and an ``E`` reply for gdb, never an exception.

One fallback: an address inside an ELF segment linked away from where it is
loaded (the bundled kernel's CPL3 user text, linked at ``USER_TEXT`` and loaded
above the kernel) is reached through the ELF's load map when the current tables
do not map it, so ``break`` on user code works while the kernel runs.
"""

from __future__ import annotations

from typing import NamedTuple

from pyvmm.memory import GuestMemory, GuestMemoryError
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K, PageTables, PagingError


class LoadedRange(NamedTuple):
    vaddr: int
    gpa: int
    size: int


class GuestView:
    def __init__(self, mem: GuestMemory, load_map: tuple[LoadedRange, ...] = ()) -> None:
        self._mem = mem
        #: The checked physical accessor (breakpoint bytes are planted through it).
        self.memory = mem
        self._load_map = tuple(r for r in load_map if r.vaddr != r.gpa)

    def translate(self, cr3: int, va: int) -> int | None:
        """The guest-physical address of *va* under *cr3*, or None."""
        if not 0 <= va < 1 << 64:
            return None
        try:
            tr = PageTables(self._mem, None, root=cr3 & ADDR_MASK).translate(va)
        except (GuestMemoryError, PagingError):
            tr = None
        if tr is not None:
            return tr.phys
        for r in self._load_map:
            if r.vaddr <= va < r.vaddr + r.size:
                return r.gpa + (va - r.vaddr)
        return None

    def is_user(self, cr3: int, va: int) -> bool:
        """Is *va* CPL3 code or data: user-accessible in the tables, or in a relocated ELF range?"""
        try:
            tr = PageTables(self._mem, None, root=cr3 & ADDR_MASK).translate(va)
        except (GuestMemoryError, PagingError):
            tr = None
        if tr is not None:
            return tr.user
        return any(r.vaddr <= va < r.vaddr + r.size for r in self._load_map)

    def read(self, cr3: int, va: int, n: int) -> bytes | None:
        """Up to *n* bytes from *va*: stops at the first unmapped page (None if that is the first)."""
        out = bytearray()
        while len(out) < n:
            gpa = self.translate(cr3, va + len(out))
            if gpa is None:
                break
            chunk = min(n - len(out), PAGE_4K - (gpa & (PAGE_4K - 1)))
            try:
                out += self._mem.read(gpa, chunk)
            except GuestMemoryError:
                break
        return bytes(out) if out or n == 0 else None

    def write(self, cr3: int, va: int, data: bytes) -> bool:
        """Write all of *data* at *va*, or nothing (every page is translated first)."""
        pieces = []
        done = 0
        while done < len(data):
            gpa = self.translate(cr3, va + done)
            if gpa is None:
                return False
            chunk = min(len(data) - done, PAGE_4K - (gpa & (PAGE_4K - 1)))
            try:
                self._mem.check(gpa, chunk)
            except GuestMemoryError:
                return False
            pieces.append((gpa, data[done : done + chunk]))
            done += chunk
        for gpa, piece in pieces:
            self._mem.write(gpa, piece)
        return True
