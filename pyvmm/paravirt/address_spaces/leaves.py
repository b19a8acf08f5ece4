"""Writing user leaves: the map, unmap, protect and lazy operations, and clone's COW copy.

Each operation validates everything before it changes anything, so a failed call
leaves the tables as they were; each returns True when vCPUs that have the space
loaded must reload CR3 (a translation was narrowed or removed). Tables are read from
the VMM's copy of the pool (:class:`~pyvmm.x86.tablemem.TableMemory`), never from guest
RAM. Whole tables are handled as big-int lanes (:mod:`pyvmm.x86.lanes`): a Python loop
over 512 entries costs tens of microseconds, one big-int operation about one.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable
from functools import reduce
from operator import or_

from pyvmm.paravirt.abi import AS_USER_END, Errno
from pyvmm.paravirt.address_spaces import policy
from pyvmm.paravirt.address_spaces.frames import FrameRefs
from pyvmm.paravirt.address_spaces.policy import (
    ACCESSED_DIRTY,
    COW,
    HUGE,
    NX,
    PAGE_MASK,
    SOFT_WRITE,
    VMM_FRAME,
    P,
    U,
    W,
)
from pyvmm.paravirt.address_spaces.space import AddressSpace, Region, carve, coalesce
from pyvmm.paravirt.address_spaces.tlb import Coherence
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86 import lanes
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K, any_present, run_entries
from pyvmm.x86.tablemem import TableMemory


class Leaves:
    """The leaf-writing operations over one VM's tables (called with the manager's lock held)."""

    def __init__(self, tables: TableMemory, refs: FrameRefs, coherence: Coherence, *, nx_bit: int) -> None:
        self.tables = tables
        self.refs = refs
        self.coherence = coherence
        self.nx_bit = nx_bit

    def flags(self, prot: int) -> int:
        return policy.leaf_flags(prot, self.nx_bit)

    # -- building blocks ---------------------------------------------------------
    def check_free(self, space: AddressSpace, va: int, end: int) -> None:
        """EEXIST unless ``[va, end)`` has no present page and no lazy range."""
        if space.region_overlaps(va, end):
            raise HypercallError(Errno.EEXIST, "range overlaps a lazy range")
        if space.tables.any_present(va, end):
            raise HypercallError(Errno.EEXIST, "range already mapped")

    def install(self, space: AddressSpace, va: int, n: int, leaves: Callable[[int, int], bytes]) -> None:
        """Map *n* pages from *va* (range and frames already checked), all or nothing.

        ``leaves(i, count)`` gives the u64 entries of pages ``i .. i+count-1``;
        each page table takes one write. EEXIST unless the range is free;
        missing tables are reserved first. A range inside one existing page
        table (the usual case) is checked and written after one table walk.
        """
        end = va + n * PAGE_4K
        tables = space.tables
        mem = self.tables
        if not (va ^ (end - 1)) >> 21 and (addr := tables.leaf_entry_addr(va)) is not None:
            if space.region_overlaps(va, end):
                raise HypercallError(Errno.EEXIST, "range overlaps a lazy range")
            if any_present(mem.read(addr, 8 * n)):
                raise HypercallError(Errno.EEXIST, "range already mapped")
            mem.write(addr, leaves(0, n))
            return
        self.check_free(space, va, end)
        self.coherence.ensure_tables(tables.missing_tables(va, end))
        done = 0
        while done < n:
            cur = va + done * PAGE_4K
            count = min(512 - ((cur >> 12) & 511), n - done)
            mem.write(tables.leaf_entry_addr(cur, create=True), leaves(done, count))
            done += count

    def leaf_for_new_page(self, space: AddressSpace, va: int, addr: int | None) -> int:
        """The leaf entry address for *va*, creating its tables (all-or-nothing) if absent."""
        if addr is None:
            self.coherence.ensure_tables(space.tables.missing_tables(va, va + PAGE_4K))
            addr = space.tables.leaf_entry_addr(va, create=True)
        return addr

    def guest_leaves(self, frames: bytes, n: int, flags: int) -> bytes:
        """The leaves mapping *n* u64 *frames* with *flags*; EPERM unless each is a page of RAM the guest owns."""
        g = int.from_bytes(frames, "little")
        if g & lanes.splat(PAGE_MASK | lanes.TOP, n):  # misaligned, or far outside RAM
            raise HypercallError(Errno.EPERM, "frame not page aligned or outside RAM")
        if not lanes.all_within(g, n, self.refs.data.guest_frame_bounds()):
            raise HypercallError(Errno.EPERM, "frame outside RAM or VMM-owned")
        # Flags fill the low 12 bits (0: aligned) and bit 63 (0: inside RAM): no lane carries.
        return lanes.pack(g + lanes.splat(flags, n), n)

    def maps_guest_frame_in(self, pool_end: int, gpa: int, end: int) -> bool:
        """Does any table in the pool (up to *pool_end*) have a present 4 KiB leaf for a
        frame in ``[gpa, end)``? One pass over the VMM's copy at C speed, whatever the
        number of spaces: AS_DONATE's check that no page of a donation is mapped.

        Needs ``gpa >= RESERVED_END``: then table entries (which point into the pool) never
        match, nor do the kernel's 2 MiB pages (their PS bit is bit 7), and freed tables are
        zero in the copy."""
        raw = self.tables.used(pool_end)
        n = len(raw) // 8
        if not n:
            return False
        x = int.from_bytes(raw, "little")
        # Lane value: the frame address, plus bit 62 if not present, plus bit 61 if PS: only a
        # present 4 KiB leaf can land in [gpa, end), and no lane reaches bit 63.
        key = (
            (x & lanes.pattern(ADDR_MASK, n))
            | ((~x & lanes.pattern(P, n)) << 62)
            | ((x & lanes.pattern(HUGE, n)) << 54)
        )
        # all_within, spelled out with uncached patterns: is every lane below gpa or at/above end?
        odd = (key + lanes.pattern(lanes.TOP - gpa, n)) ^ (key + lanes.pattern(lanes.TOP - end, n))
        tops = lanes.pattern(lanes.TOP, n)
        return odd & tops != 0

    # -- the operations ----------------------------------------------------------
    def map(self, space: AddressSpace, va: int, gpa: int, length: int, prot: int) -> bool:
        policy.check_range(va, length, space.base)
        prot = policy.check_prot(prot)
        if gpa & PAGE_MASK:
            raise HypercallError(Errno.EINVAL, "gpa must be page aligned")
        self.refs.data.memory.check(gpa, length)  # GuestMemoryError -> -EFAULT
        if self.refs.data.vmm_owned(gpa, length):
            raise HypercallError(Errno.EPERM, f"[{gpa:#x}, +{length:#x}) holds VMM-owned pages")
        n = length // PAGE_4K
        first = gpa | self.flags(prot)
        self.install(space, va, n, lambda i, count: run_entries(first + i * PAGE_4K, count))
        space.stats.pages_mapped += n
        space.stats.maps += n
        return False  # only not-present entries changed

    def map_pages(self, space: AddressSpace, vas: array, gpas: array, prot: int) -> bool:
        """Map single pages ``vas[i] -> gpas[i]`` (a batch's 1-page MAP entries), all or nothing.

        Refuses (raises) exactly when some entry alone would be refused by
        :meth:`map` given the others (an address twice counts as mapped): the
        caller then replays entry by entry for the failing index and errno.
        The frames are checked and turned into leaves all at once; when the
        addresses are contiguous (the usual batch: a buffer's pages in order) the
        whole run is one range, as for :meth:`map`.
        """
        prot = policy.check_prot(prot)
        n = len(vas)
        leaves = self.guest_leaves(gpas.tobytes(), n, self.flags(prot))
        va = vas[0]
        if va <= AS_USER_END - n * PAGE_4K and vas.tobytes() == run_entries(va, n):  # va, va+4K, ...: one range
            policy.check_range(va, n * PAGE_4K, space.base)
            self.install(space, va, n, lambda i, count: leaves[8 * i : 8 * (i + count)])
        else:
            self._map_scattered(space, list(vas), leaves)
        space.stats.pages_mapped += n
        space.stats.maps += n
        return False  # only not-present entries changed

    def _map_scattered(self, space: AddressSpace, vas: list[int], entries: bytes) -> None:
        """Write leaves ``entries[i]`` at ``vas[i]`` in any order (frames checked; tables untouched on failure)."""
        n = len(vas)
        if reduce(or_, vas) & PAGE_MASK:
            raise HypercallError(Errno.EINVAL, "address not page aligned")
        if min(vas) < space.base or max(vas) > AS_USER_END - PAGE_4K:
            raise HypercallError(Errno.EINVAL, "outside the user window")
        pairs = sorted(zip(vas, struct.unpack(f"<{n}Q", entries), strict=True))
        svas = [v for v, _ in pairs]
        if len(set(svas)) != n:
            raise HypercallError(Errno.EEXIST, "a page appears twice")
        for r in space.regions:
            i = bisect_left(svas, r.start)
            if i < n and svas[i] < r.end:
                raise HypercallError(Errno.EEXIST, "range overlaps a lazy range")
        tables = space.tables
        groups: list[tuple[int, int | None, list[tuple[int, int]]]] = []  # (2 MiB block, PT, pages)
        need = 0
        for va, entry in pairs:
            block = va >> 21
            if not groups or groups[-1][0] != block:
                addr = tables.leaf_entry_addr(va)
                pt = None if addr is None else addr - 8 * ((va >> 12) & 511)
                if pt is None:
                    need += tables.missing_tables(block << 21, (block + 1) << 21)
                groups.append((block, pt, []))
            groups[-1][2].append((va, entry))
        current: dict[int, list[int]] = {}
        for block, pt, pages in groups:
            if pt is not None:
                old = list(tables.table_entries(pt))
                if any(old[(va >> 12) & 511] & P for va, _ in pages):
                    raise HypercallError(Errno.EEXIST, "range already mapped")
                current[block] = old
        self.coherence.ensure_tables(need)
        for block, pt, pages in groups:
            table = current.get(block)
            if table is None:
                pt = tables.leaf_entry_addr(block << 21, create=True)
                table = [0] * 512
            for va, entry in pages:
                table[(va >> 12) & 511] = entry
            self.tables.write(pt, struct.pack("<512Q", *table))

    def unmap(self, space: AddressSpace, va: int, length: int) -> bool:
        policy.check_range(va, length, space.base)
        end = va + length
        space.regions = carve(space.regions, va, end)
        mem = self.tables
        n = 0
        # Each page table's part of the range at once: count, release and clear its leaves as lanes.
        for addr, count in space.tables.leaf_spans(va, end):
            raw = mem.read(addr, 8 * count)
            x = int.from_bytes(raw, "little")
            present = (x & lanes.ones(count)).bit_count()
            if not present:
                continue
            if x & lanes.splat(COW | VMM_FRAME, count):  # some leaves hold references
                for entry in struct.unpack(f"<{count}Q", raw):
                    if entry & P:
                        self.refs.release(entry)
            mem.write(addr, bytes(8 * count))  # absent leaves are 0 already
            n += present
        space.stats.pages_mapped -= n
        space.stats.unmaps += n
        self.coherence.narrowed(n > 0)
        return n > 0

    def protect(self, space: AddressSpace, va: int, length: int, prot: int) -> bool:
        policy.check_range(va, length, space.base)
        prot = policy.check_prot(prot)
        end = va + length
        carved = carve(space.regions, va, end)
        for r in space.regions:  # lazy ranges inside take the new protection
            lo, hi = max(r.start, va), min(r.end, end)
            if lo < hi:
                carved.append(Region(lo, hi, prot))
        space.regions = sorted(carved, key=lambda r: r.start)
        flags = self.flags(prot)
        mem = self.tables
        changed = False
        for _, addr, entry in list(space.tables.iter_leaves(va, end)):
            keep = entry & (ADDR_MASK | COW | VMM_FRAME | ACCESSED_DIRTY)
            if entry & COW:
                # Still shared: writable only after the copy (the write fault does it).
                new = keep | (flags & ~W) | (SOFT_WRITE if prot & policy.WRITE else 0)
            else:
                new = keep | flags
            if new != entry:
                mem.write_u64(addr, new)
                changed = True
                lost = entry & ~new & (W | U)
                self.coherence.narrowed(bool(lost or new & ~entry & NX))
        return changed

    def lazy(self, space: AddressSpace, va: int, length: int, prot: int) -> bool:
        policy.check_range(va, length, space.base)
        prot = policy.check_prot(prot)
        end = va + length
        self.check_free(space, va, end)
        # A range that extends a neighbour with the same prot joins it (a growing heap, mmaps
        # placed one after another): the same pages are served, and the limit counts gaps.
        for r in space.regions:
            if r.prot == prot and (r.end == va or r.start == end):
                r.start, r.end = min(r.start, va), max(r.end, end)
                space.regions = coalesce(space.regions)
                return False
        if len(space.regions) >= policy.MAX_REGIONS:
            raise HypercallError(Errno.ENOSPC, "too many lazy ranges")
        space.regions.append(Region(va, end, prot))
        space.regions.sort(key=lambda r: r.start)
        return False

    def clone_user(self, src: int, dst: int, level: int, slots: range) -> bool:
        """Copy the user part of table *src* into *dst*; leaves become COW in both.
        Returns True if a leaf of *src* changed (it was made COW)."""
        mem = self.tables
        entries = list(struct.unpack("<512Q", mem.read(src, PAGE_4K)))
        out = list(struct.unpack("<512Q", mem.read(dst, PAGE_4K)))
        changed = False
        for i in slots:
            entry = entries[i]
            if not entry & P:
                continue
            if level < 3:
                child = self.coherence.pool.alloc()
                out[i] = child | (entry & ~ADDR_MASK)
                changed |= self.clone_user(entry & ADDR_MASK, child, level + 1, range(512))
                continue
            shared = self.refs.share(entry)
            if shared != entry:
                entries[i] = shared
                changed = True
            out[i] = shared
        if changed:
            mem.write(src, struct.pack("<512Q", *entries))
        mem.write(dst, struct.pack("<512Q", *out))
        return changed
