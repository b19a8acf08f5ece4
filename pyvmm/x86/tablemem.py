"""The VMM's own copy of the page-table pool: tables are read from it and written through.

Every table pyvmm builds maps the pool read-only, but a CPL0 guest can clear CR0.WP,
or load a CR3 of its own, and rewrite it. What it writes there changes only what its
own MMU sees: pyvmm reads table entries from this copy, which only pyvmm writes, so a
guest-written entry can never make pyvmm follow, free, share or count a frame it did not
put there itself. A guest that garbles its tables hurts only its own translations.

The copy is the pool's size (under 2 MiB) and is the truth: guest RAM's pool pages are
made equal to it again (:meth:`TableMemory.repair_guest_copy`) before a snapshot saves
RAM, and it is reloaded from RAM (:meth:`TableMemory.reload`) after a restore or a reset
wrote RAM from a snapshot. A freed table frame is zeroed in the copy at once
(:meth:`TableMemory.forget`), so no stale entry of a destroyed space answers a scan.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

from pyvmm.x86.paging import PAGE_4K, PagingError

if TYPE_CHECKING:
    from pyvmm.memory import GuestMemory

_U64 = (1 << 64) - 1


class TableMemory:
    """``read``/``write``/``read_u64``/``write_u64`` over ``[start, end)`` of guest RAM
    (:class:`~pyvmm.x86.paging.PageMemory`), reading the VMM's copy. An address outside
    the pool raises :class:`~pyvmm.x86.paging.PagingError`: only a VMM bug can ask for one,
    since every table address comes from an entry pyvmm wrote."""

    def __init__(self, memory: GuestMemory, start: int, end: int) -> None:
        if start % PAGE_4K or end % PAGE_4K or end <= start:
            raise ValueError("the page-table pool must be whole pages")
        memory.check(start, end - start)
        self.memory = memory
        self.start = start
        self.end = end
        # An anonymous mapping, not a bytearray: returned to the OS at close (a 2 MiB heap
        # block per VM stayed in the heap: +25 MiB RSS over 100 sequential VMs).
        self._copy = mmap.mmap(-1, end - start, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._view = memoryview(self._copy)
        memory.readinto(start, self._view)

    def close(self) -> None:
        if self._copy is not None:
            self._view.release()
            self._copy.close()
            self._copy = None

    def _offset(self, gpa: int, length: int) -> int:
        off = gpa - self.start
        if off < 0 or off + length > len(self._copy):
            raise PagingError(f"[{gpa:#x}, +{length:#x}) is outside the page-table pool")
        return off

    def read(self, gpa: int, length: int) -> bytes:
        off = self._offset(gpa, length)
        return self._view[off : off + length].tobytes()

    def read_u64(self, gpa: int) -> int:
        off = self._offset(gpa, 8)
        return int.from_bytes(self._view[off : off + 8], "little")

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        off = self._offset(gpa, len(data))
        self._view[off : off + len(data)] = data
        self.memory.write(gpa, data)

    def write_u64(self, gpa: int, value: int) -> None:
        self.write(gpa, (value & _U64).to_bytes(8, "little"))

    def forget(self, frame: int) -> None:
        """Zero freed table *frame* in the copy only (guest RAM keeps it until reuse: KVM may
        still shadow it, see :mod:`pyvmm.paravirt.address_spaces.tlb`)."""
        off = self._offset(frame, PAGE_4K)
        self._view[off : off + PAGE_4K] = bytes(PAGE_4K)

    def used(self, end: int) -> bytes:
        """The copy of ``[start, end)``, for whole-pool scans."""
        return self._view[: self._offset(end, 0)].tobytes()

    def reload(self) -> None:
        """Take guest RAM's pool as the truth: call after RAM was written from a snapshot."""
        self.memory.readinto(self.start, self._view)

    def repair_guest_copy(self) -> int:
        """Write every pool page of guest RAM that differs from the copy back; returns how
        many. Call with the vCPUs paused (a snapshot), then flush KVM's shadow pages."""
        if self.memory.same(self.start, self._view):
            return 0  # the usual case: one compare
        repaired = 0
        for off in range(0, len(self._copy), PAGE_4K):
            want = self._view[off : off + PAGE_4K]
            if not self.memory.same(self.start + off, want):
                self.memory.write(self.start + off, want)
                repaired += 1
        return repaired
