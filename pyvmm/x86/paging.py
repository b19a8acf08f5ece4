"""4-level x86-64 page tables built in guest memory by the VMM.

Pure logic over two small interfaces (``read_u64``/``write_u64`` memory and a
frame allocator), so unit tests can walk what was built in Python.
"""

from __future__ import annotations

import enum
import functools
import struct
from typing import NamedTuple, Protocol

PAGE_4K = 1 << 12
PAGE_2M = 1 << 21
ADDR_MASK = 0x000F_FFFF_FFFF_F000
_LEVEL_SHIFTS = (39, 30, 21, 12)  # PML4, PDPT, PD, PT


class Pte(enum.IntFlag):
    PRESENT = 1 << 0
    WRITABLE = 1 << 1
    USER = 1 << 2
    PWT = 1 << 3
    PCD = 1 << 4
    ACCESSED = 1 << 5
    DIRTY = 1 << 6
    HUGE = 1 << 7  # PS bit in a PD/PDPT entry
    GLOBAL = 1 << 8
    # Bits 9-11 are ignored by the MMU and left to software; address spaces use them
    # (see pyvmm.paravirt.address_spaces): no page-table walk by the CPU depends on them.
    COW = 1 << 9  # shared by AS_CLONE: a write must copy the page first
    SOFT_WRITE = 1 << 10  # with COW: the mapping is writable once copied
    VMM_FRAME = 1 << 11  # the frame comes from the VMM's data-frame pool (refcounted)
    NO_EXECUTE = 1 << 63


# Plain ints for the hot paths: IntFlag arithmetic costs microseconds a call.
_PRESENT = int(Pte.PRESENT)
_HUGE = int(Pte.HUGE)
_TABLE = int(Pte.PRESENT | Pte.WRITABLE | Pte.USER)


@functools.lru_cache(maxsize=64)  # bounded: *count* is guest-chosen (a batch's, up to 4096)
def _lanes(count: int) -> tuple[int, int]:
    """(1 in each of *count* 64-bit lanes, i*4096 in lane i), as big ints."""
    ones = int.from_bytes(struct.pack("<Q", 1) * count, "little")
    steps = int.from_bytes(struct.pack(f"<{count}Q", *range(0, count * PAGE_4K, PAGE_4K)), "little")
    return ones, steps


def run_entries(first: int, count: int) -> bytes:
    """*count* little-endian u64 entries ``first + i*4096``: one big-int multiply-add, not a loop.

    No lane carries into the next: an entry stays below 2**64 (frames below 2**52).
    """
    ones, steps = _lanes(count)
    return (first * ones + steps).to_bytes(8 * count, "little")


def any_present(raw: bytes) -> bool:
    """Does any u64 entry in *raw* have its PRESENT bit set?"""
    count = len(raw) // 8
    return bool(int.from_bytes(raw[::8], "little") & int.from_bytes(b"\x01" * count, "little"))


class PageMemory(Protocol):
    def read_u64(self, gpa: int) -> int: ...
    def write_u64(self, gpa: int, value: int) -> None: ...
    def write(self, gpa: int, data: bytes) -> None: ...


class PagingError(Exception):
    """A mapping request the builder cannot honour (misaligned, already mapped, no frames)."""


class FramePool:
    """Hands out zeroed 4 KiB frames from a fixed guest-physical range."""

    def __init__(self, mem: PageMemory, start: int, end: int) -> None:
        if start % PAGE_4K or end % PAGE_4K or end < start:
            raise ValueError("frame pool bounds must be page aligned")
        self.mem = mem
        self.start = start
        self.end = end
        self._next = start
        self._free: list[int] = []

    def alloc(self) -> int:
        if self._free:
            frame = self._free.pop()
        elif self._next < self.end:
            frame = self._next
            self._next += PAGE_4K
        else:
            raise PagingError("page-table frame pool exhausted")
        self.mem.write(frame, bytes(PAGE_4K))
        return frame

    def free(self, frame: int) -> None:
        self._free.append(frame)

    def owns(self, gpa: int) -> bool:
        return self.start <= gpa < self.end

    def export_state(self) -> dict:
        """What a snapshot keeps: the bump pointer and the free list (frames are in RAM)."""
        return {"next": self._next, "free": list(self._free)}

    def import_state(self, state: dict) -> None:
        nxt, free = int(state["next"]), [int(f) for f in state["free"]]
        if not self.start <= nxt <= self.end or any(not self.start <= f < nxt or f % PAGE_4K for f in free):
            raise ValueError("page-table pool state outside the pool")
        self._next, self._free = nxt, free

    @property
    def high_water(self) -> int:
        """The end of the frames ever handed out: ``[start, high_water)`` holds every table."""
        return self._next

    @property
    def free_frames(self) -> list[int]:
        return list(self._free)

    @property
    def frames_in_use(self) -> int:
        return (self._next - self.start) // PAGE_4K - len(self._free)

    @property
    def available(self) -> int:
        """Frames :meth:`alloc` can still hand out."""
        return (self.end - self._next) // PAGE_4K + len(self._free)


class Translation(NamedTuple):
    """Result of a walk: the physical address and the effective permissions."""

    phys: int
    page_size: int
    writable: bool
    user: bool
    executable: bool
    flags: int = 0  # the leaf entry's flag bits (software bits included)


def _index(va: int, shift: int) -> int:
    return (va >> shift) & 0x1FF


class PageTables:
    """One 4-level hierarchy rooted at :attr:`root` (the value for CR3)."""

    # Intermediate entries are permissive; leaves carry the real permissions.
    _TABLE_FLAGS = Pte.PRESENT | Pte.WRITABLE | Pte.USER

    def __init__(self, mem: PageMemory, pool: FramePool | None, root: int | None = None) -> None:
        """A new hierarchy from *pool*, or (with *root*) a view of an existing one.

        With ``pool=None`` the tables are read-only: :meth:`translate` works,
        mapping raises. That is how crash reports walk the guest's CR3.
        """
        self.mem = mem
        self.pool = pool
        if root is None:
            if pool is None:
                raise PagingError("a new hierarchy needs a frame pool")
            root = pool.alloc()
        self.root = root

    def _entry_addr(self, va: int, leaf_level: int, create: bool) -> int | None:
        """Address of the entry for *va* at *leaf_level* (2 = PD, 3 = PT)."""
        table = self.root
        for level in range(leaf_level):
            addr = table + 8 * _index(va, _LEVEL_SHIFTS[level])
            entry = self.mem.read_u64(addr)
            if not entry & _PRESENT:
                if not create:
                    return None
                if self.pool is None:
                    raise PagingError("read-only page-table view")
                new = self.pool.alloc()
                self.mem.write_u64(addr, new | _TABLE)
                table = new
            elif entry & _HUGE:
                raise PagingError(f"{va:#x} is already covered by a large page")
            else:
                table = entry & ADDR_MASK
        return table + 8 * _index(va, _LEVEL_SHIFTS[leaf_level])

    def map_page(self, va: int, pa: int, flags: Pte, page_size: int = PAGE_4K) -> None:
        """Map one page; *flags* should include ``PRESENT``."""
        if page_size not in (PAGE_4K, PAGE_2M):
            raise PagingError("page size must be 4 KiB or 2 MiB")
        if va % page_size or pa % page_size:
            raise PagingError(f"unaligned mapping {va:#x} -> {pa:#x}")
        level = 3 if page_size == PAGE_4K else 2
        addr = self._entry_addr(va, level, create=True)
        if page_size == PAGE_2M:
            flags |= Pte.HUGE
        self.mem.write_u64(addr, (pa & ADDR_MASK) | int(flags))

    def unmap_page(self, va: int) -> bool:
        """Clear the 4 KiB leaf for *va*; False if it was not mapped."""
        addr = self._entry_addr(va, 3, create=False)
        if addr is None or not self.mem.read_u64(addr) & _PRESENT:
            return False
        self.mem.write_u64(addr, 0)
        return True

    def translate(self, va: int) -> Translation | None:
        """Walk the tables like the MMU does; None if not present."""
        table = self.root
        writable = user = executable = True
        for level, shift in enumerate(_LEVEL_SHIFTS):
            entry = self.mem.read_u64(table + 8 * _index(va, shift))
            if not entry & _PRESENT:
                return None
            writable &= bool(entry & Pte.WRITABLE)
            user &= bool(entry & Pte.USER)
            executable &= not entry & Pte.NO_EXECUTE
            if level == 3 or (level in (1, 2) and entry & _HUGE):
                size = 1 << shift
                phys = (entry & ADDR_MASK & ~(size - 1)) | (va & (size - 1))
                return Translation(phys, size, writable, user, executable, entry & ~ADDR_MASK)
            table = entry & ADDR_MASK
        return None  # unreachable

    # -- range operations (4 KiB leaves), for the address-space manager ---------
    def leaf_entry_addr(self, va: int, create: bool = False) -> int | None:
        """Address of the 4 KiB leaf entry for *va* (creating tables if asked); None if absent."""
        return self._entry_addr(va, 3, create)

    def table_entries(self, table: int) -> tuple[int, ...]:
        return struct.unpack("<512Q", self.mem.read(table, PAGE_4K))

    def iter_leaves(self, start: int, end: int):
        """Yield ``(va, entry_addr, entry)`` for each present 4 KiB leaf in ``[start, end)``.

        Large pages are skipped (only the kernel's identity map uses them).
        """
        if start < end:
            yield from self._iter(self.root, 0, 0, start, end)

    def _iter(self, table: int, level: int, base: int, start: int, end: int):
        shift = _LEVEL_SHIFTS[level]
        first = max(0, (start - base) >> shift)
        last = min(511, (end - 1 - base) >> shift)
        count = last - first + 1
        entries = struct.unpack(f"<{count}Q", self.mem.read(table + 8 * first, 8 * count))
        for i in range(first, last + 1):
            entry = entries[i - first]
            if not entry & _PRESENT:
                continue
            va = base + (i << shift)
            if level == 3:
                yield va, table + 8 * i, entry
            elif not entry & _HUGE:
                yield from self._iter(entry & ADDR_MASK, level + 1, va, start, end)

    def leaf_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(entry_addr, count)`` of the 4 KiB leaves over ``[start, end)``, one per existing page table.

        Absent subtrees are skipped whole; large pages are skipped. The leaves
        themselves are not read: the caller takes each span in one read.
        """
        spans: list[tuple[int, int]] = []
        if start < end:
            self._spans(self.root, 0, 0, start, end, spans)
        return spans

    def _spans(self, table: int, level: int, base: int, start: int, end: int, out: list[tuple[int, int]]) -> None:
        shift = _LEVEL_SHIFTS[level]
        first = max(0, (start - base) >> shift)
        last = min(511, (end - 1 - base) >> shift)
        if level == 3:
            out.append((table + 8 * first, last - first + 1))
            return
        count = last - first + 1
        entries = struct.unpack(f"<{count}Q", self.mem.read(table + 8 * first, 8 * count))
        for i, entry in enumerate(entries, first):
            if entry & _PRESENT and not entry & _HUGE:
                self._spans(entry & ADDR_MASK, level + 1, base + (i << shift), start, end, out)

    def any_present(self, start: int, end: int) -> bool:
        """Is any 4 KiB page in ``[start, end)`` mapped? Skips absent subtrees whole."""
        va = start
        while va < end:
            table = self.root
            for level in range(3):
                entry = self.mem.read_u64(table + 8 * _index(va, _LEVEL_SHIFTS[level]))
                if not entry & _PRESENT:
                    break
                if entry & _HUGE:
                    return True
                table = entry & ADDR_MASK
            else:  # a page table: look at the entries in range
                index = _index(va, 12)
                count = min(512 - index, (end - va) >> 12)
                if any_present(self.mem.read(table + 8 * index, 8 * count)):
                    return True
                va += count << 12
                continue
            shift = _LEVEL_SHIFTS[level]  # nothing below this absent entry
            va = ((va >> shift) + 1) << shift
        return False

    def missing_tables(self, start: int, end: int) -> int:
        """How many table frames mapping 4 KiB pages over ``[start, end)`` would allocate."""
        if start >= end:
            return 0
        return self._missing(self.root, 0, 0, start, end)

    def _missing(self, table: int, level: int, base: int, start: int, end: int) -> int:
        if level == 3:
            return 0
        shift = _LEVEL_SHIFTS[level]
        need = 0
        for i in range((start - base) >> shift, ((end - 1 - base) >> shift) + 1):
            lo = max(start, base + (i << shift))
            hi = min(end, base + ((i + 1) << shift))
            entry = self.mem.read_u64(table + 8 * i)
            if entry & _PRESENT:
                if entry & _HUGE:
                    raise PagingError(f"{lo:#x} is already covered by a large page")
                need += self._missing(entry & ADDR_MASK, level + 1, base + (i << shift), lo, hi)
            else:
                # A fresh subtree: one table per distinct block at each level below.
                for sub in range(level, 3):
                    s = _LEVEL_SHIFTS[sub]
                    need += ((hi - 1) >> s) - (lo >> s) + 1
        return need

    def table_frames(self, slots: range) -> list[int]:
        """Every table frame below the PML4 entries in *slots* (not the root itself)."""
        frames: list[int] = []

        def collect(table: int, level: int) -> None:
            for entry in self.table_entries(table):
                if entry & _PRESENT and not entry & _HUGE and level < 3:
                    child = entry & ADDR_MASK
                    frames.append(child)
                    collect(child, level + 1)

        root_entries = self.table_entries(self.root)
        for slot in slots:
            entry = root_entries[slot]
            if entry & _PRESENT:
                frames.append(entry & ADDR_MASK)
                collect(entry & ADDR_MASK, 1)
        return frames


def identity_map(
    mem: PageMemory,
    pool: FramePool,
    size: int,
    *,
    low_flags,
    high_flags: Pte,
) -> PageTables:
    """Identity-map guest-physical ``[0, size)`` for the kernel.

    The first 2 MiB use 4 KiB pages so each low page can carry its own
    permissions: ``low_flags(gpa)`` returns its flags, or 0 for not present.
    The rest uses 2 MiB pages with *high_flags* (1 GiB pages are not offered
    everywhere). Each table is written in one go: this runs on every boot.
    """
    if size % PAGE_2M:
        raise PagingError("identity map size must be a multiple of 2 MiB")
    table_flags = int(PageTables._TABLE_FLAGS)
    pml4 = pool.alloc()
    pdpt = pool.alloc()
    mem.write_u64(pml4, pdpt | table_flags)
    low_pt = pool.alloc()
    pt_entries = []
    for i in range(512):
        flags = int(low_flags(i * PAGE_4K))
        pt_entries.append((i * PAGE_4K) | flags if flags else 0)
    mem.write(low_pt, struct.pack("<512Q", *pt_entries))
    n_2m = size // PAGE_2M
    huge = int(high_flags | Pte.HUGE)
    for gib in range((n_2m + 511) // 512):
        pd = pool.alloc()
        mem.write_u64(pdpt + 8 * gib, pd | table_flags)
        first = gib * 512
        entries = [((first + i) * PAGE_2M) | huge if first + i < n_2m else 0 for i in range(512)]
        if gib == 0:
            entries[0] = low_pt | table_flags
        mem.write(pd, struct.pack("<512Q", *entries))
    return PageTables(mem, pool, root=pml4)
