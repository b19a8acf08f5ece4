"""Address spaces as handles (pagetable-set): the VMM owns every page table.

The guest kernel never writes a page-table entry. It asks for address spaces
(handles, like fds), maps ranges of its RAM into them, switches between them
and forwards its page faults, all by hypercall; this module validates each
request and edits the tables (:mod:`pyvmm.x86.paging`) in frames of the
VMM-owned pool below ``Layout.RESERVED_END``, which the guest sees read-only.

Every space shares PML4 slot 0 with the boot tables (the kernel's identity map
of RAM, supervisor-only) and keeps its user mappings in slots 1-255
(``AS_USER_BASE``..``AS_USER_END``). A *low-window* space (ABI 1.2,
``AsCreateFlag.LOW_WINDOW``, for unmodified Linux programs linked at 0x400000)
has its own slot-0 PDPT and first PD, sharing only the kernel's first 4 MiB, and
owns everything from ``AS_LOW_BASE`` up (see :mod:`pyvmm.paravirt.lowwindow`). The software bits 9-11 of a leaf record
copy-on-write state and frame ownership (see :class:`~pyvmm.x86.paging.Pte`).

Data frames for demand-zero, copy-on-write and pager pages come from guest RAM
the kernel donated with ``AS_DONATE``: the VMM owns them from then on (they
cannot be mapped with ``AS_MAP``), hands them out zeroed, refcounts them, and
takes them back when the last mapping goes.

TLB coherence: whenever an existing translation is narrowed or removed (unmap,
protect, clone's write-protect, a copy-on-write break), every vCPU that has the
space loaded reloads CR3 before it runs guest code again: the caller at once,
others through :meth:`VcpuSet.post <pyvmm.paravirt.services.VcpuSet.post>`,
waited for. Adding translations needs no flush (a CPU does not cache
not-present entries). Where KVM shadows page tables in software (PVM; ept=0),
a CR3 reload is not enough: the same events also drop KVM's shadow pages
(:class:`~pyvmm.kvm.shadow.ShadowMmu`), and page-table frames of destroyed
spaces are reused only after such a flush.

Over ~400 lines for now: its split into a package with one concern per module is issue 9's
item 5, built on a branch but not merged yet (it must be redone over pyvmm exec's
low-window spaces and the snapshot state below).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING

from pyvmm.kvm.constants import SYNC_X86_SREGS
from pyvmm.memory import GuestMemory, GuestMemoryError
from pyvmm.paravirt import lowwindow
from pyvmm.paravirt.abi import (
    AS_BATCH_MAX,
    AS_KERNEL_HANDLE,
    AS_LOW_BASE,
    AS_USER_BASE,
    AS_USER_END,
    AsCreateFlag,
    AsOpCode,
    Errno,
    Hypercall,
    PfError,
    Prot,
)
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError
from pyvmm.x86 import lanes
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K, FramePool, PageTables, Pte, any_present, run_entries

if TYPE_CHECKING:
    from pyvmm.kvm.shadow import ShadowMmu
    from pyvmm.paravirt.services import VcpuSet
    from pyvmm.vcpu import Vcpu as VcpuContext

_PAGE_MASK = PAGE_4K - 1
# Plain ints on the hot paths (IntFlag arithmetic costs microseconds a call).
_P, _W, _U, _NX = int(Pte.PRESENT), int(Pte.WRITABLE), int(Pte.USER), int(Pte.NO_EXECUTE)
_COW, _SW, _VMM = int(Pte.COW), int(Pte.SOFT_WRITE), int(Pte.VMM_FRAME)
_R, _WR, _X, _US = int(Prot.READ), int(Prot.WRITE), int(Prot.EXEC), int(Prot.USER)
_PF_W, _PF_U, _PF_I = int(PfError.WRITE), int(PfError.USER), int(PfError.FETCH)
_USER_SLOTS = range(AS_USER_BASE >> 39, AS_USER_END >> 39)
_ALL_PROT = int(Prot.READ | Prot.WRITE | Prot.EXEC | Prot.USER)
_SOFT = _COW | _SW | _VMM
_ACCESSED_DIRTY = int(Pte.ACCESSED | Pte.DIRTY)
_OP = struct.Struct("<IIQQQq")  # struct pvm_as_op
_ONE_PAGE = struct.pack("<Q", PAGE_4K)
MAX_SPACES = 1024  # live address spaces per VM
MAX_REGIONS = 64  # lazy ranges per space
FLUSH_WAIT_S = 2.0  # longest wait for another vCPU to reload CR3


class FaultKind(enum.Enum):
    """How a forwarded page fault was served (the per-space counters)."""

    DEMAND_ZERO = "demand_zero"
    COW_COPY = "cow_copy"  # copied to a fresh frame
    COW_REUSE = "cow_reuse"  # the last sharer: made writable in place
    PAGER = "pager"  # filled by a host-side pager callback
    SPURIOUS = "spurious"  # already resolved (another vCPU, or a stale TLB entry)


@dataclass
class SpaceStats:
    """Per-space metrics, kept after the space is destroyed."""

    handle: int
    pages_mapped: int = 0  # present user pages now
    faults: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in FaultKind})
    refused: int = 0
    maps: int = 0  # pages mapped by AS_MAP (and batch MAP ops)
    unmaps: int = 0  # pages removed by AS_UNMAP
    switches: int = 0
    destroyed: bool = False

    @property
    def faults_served(self) -> int:
        return sum(self.faults.values())

    def format(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in self.faults.items())
        state = " (destroyed)" if self.destroyed else ""
        return (
            f"as {self.handle}{state}: pages_mapped={self.pages_mapped} maps={self.maps} unmaps={self.unmaps} "
            f"switches={self.switches} {faults} refused={self.refused}"
        )


@dataclass
class Region:
    """A demand-zero range declared with AS_LAZY: ``[start, end)`` with *prot*."""

    start: int
    end: int
    prot: int  # Prot bits


#: ``pager(handle, va) -> bytes | None``: the page's contents (up to 4 KiB), or None to refuse.
PagerFn = Callable[[int, int], "bytes | None"]


@dataclass
class Pager:
    start: int
    end: int
    prot: int  # Prot bits
    fn: PagerFn
    handle: int | None  # None: every space


@dataclass(eq=False)
class AddressSpace:
    handle: int
    tables: PageTables
    stats: SpaceStats
    regions: list[Region] = field(default_factory=list)
    loaded: set[int] = field(default_factory=set)  # ids of the vCPUs with it in CR3
    base: int = AS_USER_BASE  # first user address: AS_LOW_BASE for a low-window space


class DataFrames:
    """Guest RAM donated by the kernel (AS_DONATE): the frames demand paging hands out."""

    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        self.ranges: list[tuple[int, int]] = []
        self.free: list[int] = []
        self.refs: dict[int, int] = {}  # frame -> leaves mapping it
        self.total = 0

    def overlaps(self, gpa: int, length: int) -> bool:
        end = gpa + length
        return any(start < end and gpa < stop for start, stop in self.ranges)

    def donate(self, gpa: int, length: int) -> None:
        self.ranges.append((gpa, gpa + length))
        # Popped from the end: hand out the lowest frames first.
        self.free.extend(range(gpa + length - PAGE_4K, gpa - 1, -PAGE_4K))
        self.total += length // PAGE_4K

    def alloc(self, *, zero: bool = True) -> int:
        if not self.free:
            raise HypercallError(Errno.ENOMEM, "no donated frames left")
        frame = self.free.pop()
        if zero:
            self.memory.write(frame, bytes(PAGE_4K))
        self.refs[frame] = 1
        return frame

    def ref(self, frame: int) -> None:
        self.refs[frame] += 1

    def unref(self, frame: int) -> None:
        n = self.refs[frame] - 1
        if n:
            self.refs[frame] = n
        else:
            del self.refs[frame]
            self.free.append(frame)

    @property
    def in_use(self) -> int:
        return len(self.refs)


def load_cr3(ctx: VcpuContext, cr3: int) -> None:
    """Set CR3 on *ctx*'s vCPU; call on that vCPU's thread between exits.

    Through ``KVM_CAP_SYNC_REGS``: the sregs arrive in ``kvm_run`` on every exit
    once ``SYNC_X86_SREGS`` is in ``kvm_valid_regs``, and the next ``KVM_RUN``
    loads them when it is in ``kvm_dirty_regs``: no ioctl. The first call pays
    ``KVM_GET_SREGS``/``KVM_SET_SREGS`` once and turns the sync on. The run
    loop ORs its own dirty bit in, so this one survives the hypercall return.
    Loading CR3 flushes the vCPU's non-global TLB entries (CR4.PCIDE is off).
    """
    vcpu = ctx.fd
    run = vcpu.run
    if run.kvm_valid_regs & SYNC_X86_SREGS:
        run.s.regs.sregs.cr3 = cr3
        run.kvm_dirty_regs |= SYNC_X86_SREGS
        return
    sregs = vcpu.get_sregs()
    sregs.cr3 = cr3
    vcpu.set_sregs(sregs)
    run.kvm_valid_regs |= SYNC_X86_SREGS


def _check_range(va: int, length: int, base: int = AS_USER_BASE) -> None:
    if va & _PAGE_MASK or length & _PAGE_MASK or length == 0:
        raise HypercallError(Errno.EINVAL, "address and length must be page aligned, length > 0")
    if not base <= va < AS_USER_END or length > AS_USER_END - va:
        raise HypercallError(Errno.EINVAL, f"[{va:#x}, +{length:#x}) is outside the user window")


def _check_prot(prot: int) -> int:
    if prot & ~_ALL_PROT or not prot & _R:
        raise HypercallError(Errno.EINVAL, f"bad prot {prot:#x}")
    return prot


def _allows(entry: int, err: int) -> bool:
    """Does present leaf *entry* permit the access described by page-fault error code *err*?"""
    if err & _PF_W and not entry & _W:
        return False
    if err & _PF_U and not entry & _U:
        return False
    return not (err & _PF_I and entry & _NX)


def _prot_allows(prot: int, err: int) -> bool:
    if err & _PF_W and not prot & _WR:
        return False
    if err & _PF_U and not prot & _US:
        return False
    return not (err & _PF_I and not prot & _X)


class AddressSpaceManager:
    """The handle table of one VM and the page-table work behind each call.

    Thread-safe: handlers run on vCPU threads, one lock serialises them. Each
    public ``as_*`` method validates everything before it changes anything, so
    a failed call leaves the tables as they were.
    """

    def __init__(
        self,
        memory: GuestMemory,
        pt_pool: FramePool,
        kernel_tables: PageTables,
        *,
        nx: bool,
        reserved_end: int,
        vcpus: VcpuSet | None = None,
        shadow: ShadowMmu | None = None,
    ) -> None:
        self.memory = memory
        self.pt_pool = pt_pool
        self.kernel_root = kernel_tables.root
        self.reserved_end = reserved_end
        self.vcpus = vcpus
        self.nx_bit = int(_NX) if nx else 0
        self.lock = threading.Lock()
        self.spaces: dict[int, AddressSpace] = {}
        self.history: dict[int, SpaceStats] = {}
        self.active: dict[int, int] = {}  # vCPU id -> handle loaded (absent: the boot space)
        self.frames = DataFrames(memory)
        self.cow_refs: dict[int, int] = {}  # frame -> COW leaves sharing it
        self.pagers: list[Pager] = []
        self._next_handle = AS_KERNEL_HANDLE + 1
        self.shadow = shadow
        self._zap = False  # a translation was narrowed: drop shadow pages before the guest runs
        self._dirty_pt: list[int] = []  # freed table frames KVM may still shadow

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()

    # -- host-side API -----------------------------------------------------------
    def add_pager(self, start: int, length: int, fn: PagerFn, prot: int = _R | _US, handle: int | None = None) -> None:
        """Serve not-present faults in ``[start, start+length)`` with ``fn(handle, va)``.

        Applies to every space, or to *handle* only. ``fn`` returns the page's
        bytes (zero-padded to 4 KiB) or None to refuse the fault; the page is
        mapped with *prot* in a donated frame. Lazy ranges take precedence.
        """
        _check_range(start, length)
        _check_prot(prot)
        with self.lock:
            self.pagers.append(Pager(start, start + length, prot, fn, handle))

    def stats(self) -> dict[int, SpaceStats]:
        """Metrics of every space this VM created, destroyed ones included."""
        return dict(self.history)

    def format_stats(self) -> str:
        lines = [
            f"address spaces: {len(self.history)} created, {len(self.spaces)} live; "
            f"page-table frames {self.pt_pool.frames_in_use} used, {self.pt_pool.available} free; "
            f"data frames {self.frames.in_use}/{self.frames.total} in use"
        ]
        lines += ["  " + s.format() for s in self.history.values()]
        return "\n".join(lines)

    # -- helpers -----------------------------------------------------------------
    def _space(self, handle: int) -> AddressSpace:
        space = self.spaces.get(handle)
        if space is None:
            if handle == AS_KERNEL_HANDLE:
                raise HypercallError(Errno.EINVAL, "the boot address space cannot be changed")
            raise HypercallError(Errno.EBADF, f"no address space {handle}")
        return space

    def _flags(self, prot: int) -> int:
        flags = int(_P)
        if prot & _WR:
            flags |= _W
        if prot & _US:
            flags |= _U
        if not prot & _X:
            flags |= self.nx_bit
        return flags

    def _check_gpa(self, gpa: int, length: int) -> None:
        if gpa & _PAGE_MASK:
            raise HypercallError(Errno.EINVAL, "gpa must be page aligned")
        self.memory.check(gpa, length)  # GuestMemoryError -> -EFAULT
        if gpa < self.reserved_end or self.frames.overlaps(gpa, length):
            raise HypercallError(Errno.EPERM, f"[{gpa:#x}, +{length:#x}) holds VMM-owned pages")

    def _check_free(self, space: AddressSpace, va: int, end: int) -> None:
        """EEXIST unless ``[va, end)`` has no present page and no lazy range."""
        if any(r.start < end and va < r.end for r in space.regions):
            raise HypercallError(Errno.EEXIST, "range overlaps a lazy range")
        if space.tables.any_present(va, end):
            raise HypercallError(Errno.EEXIST, "range already mapped")

    def _reserve_tables(self, space: AddressSpace, va: int, end: int) -> None:
        self._ensure_pt(space.tables.missing_tables(va, end))

    def _ensure_pt(self, n: int) -> None:
        """Make *n* table frames allocatable, recycling freed ones after a shadow flush."""
        if n > self.pt_pool.available and self._dirty_pt:
            self.shadow.flush()
            self._zap = False
            for frame in self._dirty_pt:
                self.pt_pool.free(frame)
            self._dirty_pt.clear()
        if n > self.pt_pool.available:
            raise HypercallError(Errno.ENOMEM, "page-table pool exhausted")

    def _free_pt(self, frame: int) -> None:
        if self.shadow is None:
            self.pt_pool.free(frame)
        else:
            self._dirty_pt.append(frame)

    def _finish(self) -> None:
        """End of a call that changed tables: drop shadow pages if a translation narrowed."""
        if self._zap and self.shadow is not None:
            self.shadow.flush()
        self._zap = False

    def _install(self, space: AddressSpace, va: int, n: int, leaves: Callable[[int, int], bytes]) -> None:
        """Map *n* pages from *va* (range and frames already checked), all or nothing.

        ``leaves(i, count)`` gives the u64 entries of pages ``i .. i+count-1``;
        each page table takes one write. EEXIST unless the range is free;
        missing tables are reserved first. A range inside one existing page
        table (the usual case) is checked and written after one table walk.
        """
        end = va + n * PAGE_4K
        tables = space.tables
        mem = self.memory
        if not (va ^ (end - 1)) >> 21 and (addr := tables.leaf_entry_addr(va)) is not None:
            if any(r.start < end and va < r.end for r in space.regions):
                raise HypercallError(Errno.EEXIST, "range overlaps a lazy range")
            if any_present(mem.read(addr, 8 * n)):
                raise HypercallError(Errno.EEXIST, "range already mapped")
            mem.write(addr, leaves(0, n))
            return
        self._check_free(space, va, end)
        self._reserve_tables(space, va, end)
        done = 0
        while done < n:
            cur = va + done * PAGE_4K
            count = min(512 - ((cur >> 12) & 511), n - done)
            mem.write(tables.leaf_entry_addr(cur, create=True), leaves(done, count))
            done += count

    def _release(self, entry: int) -> None:
        """Drop the references a leaf held (its COW share, its donated frame)."""
        frame = entry & ADDR_MASK
        if entry & _COW:
            n = self.cow_refs[frame] - 1
            if n:
                self.cow_refs[frame] = n
            else:
                del self.cow_refs[frame]
        if entry & _VMM:
            self.frames.unref(frame)

    def _leaf_for_new_page(self, space: AddressSpace, va: int, addr: int | None) -> int:
        """The leaf entry address for *va*, creating its tables (all-or-nothing) if absent."""
        if addr is None:
            self._reserve_tables(space, va, va + PAGE_4K)
            addr = space.tables.leaf_entry_addr(va, create=True)
        return addr

    # -- the operations (each returns True when loaded vCPUs must reload CR3) -------
    def _map(self, space: AddressSpace, va: int, gpa: int, length: int, prot: int) -> bool:
        _check_range(va, length, space.base)
        prot = _check_prot(prot)
        self._check_gpa(gpa, length)
        n = length // PAGE_4K
        first = gpa | self._flags(prot)
        self._install(space, va, n, lambda i, count: run_entries(first + i * PAGE_4K, count))
        space.stats.pages_mapped += n
        space.stats.maps += n
        return False  # only not-present entries changed

    def _map_pages(self, space: AddressSpace, vas: array, gpas: array, prot: int) -> bool:
        """Map single pages ``vas[i] -> gpas[i]`` (a batch's 1-page MAP entries), all or nothing.

        Refuses (raises) exactly when some entry alone would be refused by
        :meth:`_map` given the others (an address twice counts as mapped): the
        caller then replays entry by entry for the failing index and errno.
        The frames are checked and turned into leaves all at once, as bytes
        and big-int lanes (:mod:`pyvmm.x86.lanes`); when the addresses are
        contiguous (the usual batch: a buffer's pages in order) the whole run
        is one range, as for :meth:`_map`.
        """
        prot = _check_prot(prot)
        n = len(vas)
        leaves = self._leaves(gpas.tobytes(), n, self._flags(prot))
        va = vas[0]
        if va <= AS_USER_END - n * PAGE_4K and vas.tobytes() == run_entries(va, n):  # va, va+4K, ...: one range
            _check_range(va, n * PAGE_4K, space.base)
            self._install(space, va, n, lambda i, count: leaves[8 * i : 8 * (i + count)])
        else:
            self._map_scattered(space, list(vas), leaves)
        space.stats.pages_mapped += n
        space.stats.maps += n
        return False  # only not-present entries changed

    def _leaves(self, frames: bytes, n: int, flags: int) -> bytes:
        """The leaves mapping *n* u64 *frames* with *flags*; EPERM unless each is a page of RAM the guest owns."""
        g = int.from_bytes(frames, "little")
        if g & lanes.splat(_PAGE_MASK | lanes.TOP, n):  # misaligned, or far outside RAM
            raise HypercallError(Errno.EPERM, "frame not page aligned or outside RAM")
        if not lanes.all_within(g, n, self._frame_bounds()):
            raise HypercallError(Errno.EPERM, "frame outside RAM or VMM-owned")
        # Flags fill the low 12 bits (0: aligned) and bit 63 (0: inside RAM): no lane carries.
        return lanes.pack(g + lanes.splat(flags, n), n)

    def _frame_bounds(self) -> tuple[int, ...]:
        """The guest's own RAM as sorted bounds ``[b0, b1), [b2, b3), ...`` for :func:`lanes.all_within`.

        RAM above the VMM-owned low pages, less the donated ranges (disjoint and
        inside it, as :meth:`as_donate` checks).
        """
        bounds = [self.reserved_end, self.memory.size]
        for start, stop in self.frames.ranges:
            bounds += (start, stop)
        return tuple(sorted(bounds))

    def _map_scattered(self, space: AddressSpace, vas: list[int], entries: bytes) -> None:
        """Write leaves ``entries[i]`` at ``vas[i]`` in any order (frames checked; tables untouched on failure)."""
        n = len(vas)
        if reduce(or_, vas) & _PAGE_MASK:
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
                if any(old[(va >> 12) & 511] & _P for va, _ in pages):
                    raise HypercallError(Errno.EEXIST, "range already mapped")
                current[block] = old
        self._ensure_pt(need)
        for block, pt, pages in groups:
            table = current.get(block)
            if table is None:
                pt = tables.leaf_entry_addr(block << 21, create=True)
                table = [0] * 512
            for va, entry in pages:
                table[(va >> 12) & 511] = entry
            self.memory.write(pt, struct.pack("<512Q", *table))

    def _unmap(self, space: AddressSpace, va: int, length: int) -> bool:
        _check_range(va, length, space.base)
        end = va + length
        space.regions = _carve(space.regions, va, end)
        mem = self.memory
        n = 0
        # Each page table's part of the range at once: count, release and clear its leaves as lanes.
        for addr, count in space.tables.leaf_spans(va, end):
            raw = mem.read(addr, 8 * count)
            x = int.from_bytes(raw, "little")
            present = (x & lanes.ones(count)).bit_count()
            if not present:
                continue
            if x & lanes.splat(_COW | _VMM, count):  # some leaves hold references
                for entry in struct.unpack(f"<{count}Q", raw):
                    if entry & _P:
                        self._release(entry)
            mem.write(addr, bytes(8 * count))  # absent leaves are 0 already
            n += present
        space.stats.pages_mapped -= n
        space.stats.unmaps += n
        self._zap |= n > 0
        return n > 0

    def _protect(self, space: AddressSpace, va: int, length: int, prot: int) -> bool:
        _check_range(va, length, space.base)
        prot = _check_prot(prot)
        end = va + length
        carved = _carve(space.regions, va, end)
        for r in space.regions:  # lazy ranges inside take the new protection
            lo, hi = max(r.start, va), min(r.end, end)
            if lo < hi:
                carved.append(Region(lo, hi, prot))
        space.regions = sorted(carved, key=lambda r: r.start)
        flags = self._flags(prot)
        mem = self.memory
        changed = False
        for _, addr, entry in list(space.tables.iter_leaves(va, end)):
            keep = entry & (ADDR_MASK | _COW | _VMM | _ACCESSED_DIRTY)
            if entry & _COW:
                # Still shared: writable only after the copy (the write fault does it).
                new = keep | (flags & ~_W) | (_SW if prot & _WR else 0)
            else:
                new = keep | flags
            if new != entry:
                mem.write_u64(addr, new)
                changed = True
                lost = entry & ~new & (_W | _U)
                self._zap |= bool(lost or new & ~entry & _NX)
        return changed

    def _lazy(self, space: AddressSpace, va: int, length: int, prot: int) -> bool:
        _check_range(va, length, space.base)
        prot = _check_prot(prot)
        end = va + length
        self._check_free(space, va, end)
        # A range that extends a neighbour with the same prot joins it (a growing heap, mmaps
        # placed one after another): the same pages are served, and the limit counts gaps.
        for r in space.regions:
            if r.prot == prot and (r.end == va or r.start == end):
                r.start, r.end = min(r.start, va), max(r.end, end)
                space.regions = _coalesce(space.regions)
                return False
        if len(space.regions) >= MAX_REGIONS:
            raise HypercallError(Errno.ENOSPC, "too many lazy ranges")
        space.regions.append(Region(va, end, prot))
        space.regions.sort(key=lambda r: r.start)
        return False

    # -- snapshots (pyvmm.snapshot) ------------------------------------------------------
    def export_state(self) -> dict:
        """The handle table, frame pools and COW counts as plain data; the tables themselves
        are in guest RAM. Host-side pagers are Python callables: not saved. Call paused."""
        with self.lock:
            return {
                "next_handle": self._next_handle,
                "spaces": [
                    {"handle": h, "root": sp.tables.root, "regions": [[r.start, r.end, r.prot] for r in sp.regions]}
                    for h, sp in self.spaces.items()
                ],
                "stats": [dataclasses.asdict(st) for st in self.history.values()],
                "active": {str(v): h for v, h in self.active.items()},
                "frames": {
                    "ranges": self.frames.ranges,
                    "free": self.frames.free,
                    "refs": {str(f): n for f, n in self.frames.refs.items()},
                    "total": self.frames.total,
                },
                "cow_refs": {str(f): n for f, n in self.cow_refs.items()},
                "dirty_pt": self._dirty_pt,
                "pt_pool": self.pt_pool.export_state(),
            }

    def import_state(self, state: dict) -> None:
        """Load :meth:`export_state`'s data (a restore; a reset). Raises ``ValueError``,
        ``KeyError`` or ``TypeError`` for malformed data, changing nothing then."""
        stats = {int(d["handle"]): SpaceStats(**d) for d in state["stats"]}
        spaces = {}
        for d in state["spaces"]:
            h, root = int(d["handle"]), int(d["root"])
            if not self.pt_pool.owns(root) or h not in stats:
                raise ValueError(f"address space {h}: bad root or no stats")
            regions = [Region(int(a), int(b), int(p)) for a, b, p in d["regions"]]
            spaces[h] = AddressSpace(h, PageTables(self.memory, self.pt_pool, root=root), stats[h], regions)
        active = {int(v): int(h) for v, h in state["active"].items()}
        if any(h not in spaces for h in active.values()):
            raise ValueError("a vCPU has an unknown address space loaded")
        fr = state["frames"]
        with self.lock:
            self.pt_pool.import_state(state["pt_pool"])
            self._next_handle = int(state["next_handle"])
            self.spaces, self.history, self.active = spaces, stats, active
            for v, h in active.items():
                spaces[h].loaded.add(v)
            self.frames.ranges = [(int(a), int(b)) for a, b in fr["ranges"]]
            self.frames.free = [int(f) for f in fr["free"]]
            self.frames.refs = {int(f): int(n) for f, n in fr["refs"].items()}
            self.frames.total = int(fr["total"])
            self.cow_refs = {int(f): int(n) for f, n in state["cow_refs"].items()}
            self._dirty_pt = [int(f) for f in state["dirty_pt"]]
            self._zap = bool(self._dirty_pt)

    # -- hypercall entry points ------------------------------------------------------
    def as_create(self, ctx: VcpuContext, flags: int = 0) -> int:
        if flags & ~int(AsCreateFlag.LOW_WINDOW):
            raise HypercallError(Errno.EINVAL, f"unknown AS_CREATE flags {flags:#x}")
        low = bool(flags & AsCreateFlag.LOW_WINDOW)
        with self.lock:
            if len(self.spaces) >= MAX_SPACES:
                raise HypercallError(Errno.ENOSPC, "address-space table full")
            self._ensure_pt(3 if low else 1)
            tables = PageTables(self.memory, self.pt_pool)
            if low:
                lowwindow.build_slot0(self.memory, self.pt_pool, tables.root, self.kernel_root)
            else:
                # Slot 0: the kernel's identity map, shared with the boot tables (its PDPT and below).
                self.memory.write_u64(tables.root, self.memory.read_u64(self.kernel_root))
            handle = self._next_handle
            self._next_handle += 1
            stats = SpaceStats(handle)
            self.spaces[handle] = AddressSpace(handle, tables, stats, base=AS_LOW_BASE if low else AS_USER_BASE)
            self.history[handle] = stats
            return handle

    def as_destroy(self, ctx: VcpuContext, handle: int) -> int:
        with self.lock:
            space = self._space(handle)
            if space.loaded:
                raise HypercallError(Errno.EBUSY, f"address space {handle} is loaded on vCPU(s) {sorted(space.loaded)}")
            for _, _, entry in space.tables.iter_leaves(space.base, AS_USER_END):
                self._release(entry)
            for frame in space.tables.table_frames(_USER_SLOTS):
                self._free_pt(frame)
            if space.base != AS_USER_BASE:
                for frame in lowwindow.slot0_frames(space.tables):
                    self._free_pt(frame)
            self._free_pt(space.tables.root)
            del self.spaces[handle]
            space.stats.destroyed = True
            space.stats.pages_mapped = 0
            return 0

    def as_switch(self, ctx: VcpuContext, handle: int) -> int:
        with self.lock:
            if handle == AS_KERNEL_HANDLE:
                root = self.kernel_root
                space = None
            else:
                space = self._space(handle)
                root = space.tables.root
            old = self.spaces.get(self.active.get(ctx.id, AS_KERNEL_HANDLE))
            if old is not None:
                old.loaded.discard(ctx.id)
            if space is not None:
                space.loaded.add(ctx.id)
                space.stats.switches += 1
                self.active[ctx.id] = handle
            else:
                self.active.pop(ctx.id, None)
            load_cr3(ctx, root)
            return 0

    def as_call(self, ctx: VcpuContext, op: Callable[..., bool], handle: int, *args: int) -> int:
        """Run one of ``_map``/``_unmap``/``_protect``/``_lazy`` and flush where needed."""
        with self.lock:
            space = self._space(handle)
            try:
                flush = op(space, *args)
            finally:
                self._finish()
            targets = self._reload_here(ctx, space) if flush else []
        self._reload_elsewhere(targets)
        return 0

    def as_batch(self, ctx: VcpuContext, handle: int, ops_gpa: int, count: int) -> int:
        """AS_MAP_BATCH: run entries in order, stop at the first failure.

        Returns how many entries succeeded; each of those gets ``result = 0``,
        the failing one (if any) ``-errno``; later entries are not run and not
        written. Consecutive MAP entries with contiguous va and gpa and the same
        prot are applied as one run (the validation is all-or-nothing per run,
        and a failing run is replayed entry by entry to find the entry at fault).
        """
        if count == 0:
            return 0
        if count > AS_BATCH_MAX:
            raise HypercallError(Errno.E2BIG, f"more than {AS_BATCH_MAX} entries")
        size = count * _OP.size
        self.memory.check(ops_gpa, size)
        if ops_gpa < self.reserved_end or self.frames.overlaps(ops_gpa, size):
            raise HypercallError(Errno.EFAULT, "the op array lies in VMM-owned pages")
        raw = self.memory.read(ops_gpa, size)
        with self.lock:
            space = self._space(handle)
            flush, failed = self._run_batch(space, raw, count)
            self._finish()
            targets = self._reload_here(ctx, space) if flush else []
        done = failed[0] if failed else count
        written = done + (1 if failed else 0)
        words = array("q", raw[: written * _OP.size])
        words[4 : 5 * done : 5] = array("q", bytes(8 * done))
        if failed:
            words[5 * done + 4] = -failed[1]
        self.memory.write(ops_gpa, words.tobytes())
        self._reload_elsewhere(targets)
        return done

    def _run_batch(self, space: AddressSpace, raw: bytes, count: int) -> tuple[bool, tuple[int, int] | None]:
        """Run the *count* entries in *raw*: (reload CR3?, (index, errno) of the first failure or None)."""
        words = array("Q", raw)
        # The usual batch, all one-page MAPs with one prot: checked and written as
        # whole columns, without unpacking an entry (the ops' heads and lengths
        # compared as bytes).
        if (
            words[0] & 0xFFFF_FFFF == AsOpCode.MAP
            and words[0::5].tobytes() == raw[:8] * count
            and words[3::5].tobytes() == _ONE_PAGE * count
        ):
            try:
                return self._map_pages(space, words[1::5], words[2::5], words[0] >> 32), None
            except (HypercallError, GuestMemoryError):
                return self._run_ops(space, list(_OP.iter_unpack(raw)), 0, count)  # nothing changed: replay
        ops = list(_OP.iter_unpack(raw))
        flush = False
        i = 0
        while i < count:
            j = _map_run_end(ops, i)  # contiguous MAP entries: one range
            jp = _page_run_end(ops, i)  # one-page MAP entries anywhere: one pass
            try:
                if jp > j:
                    run = ops[i:jp]
                    vas, gpas = array("Q", [op[2] for op in run]), array("Q", [op[3] for op in run])
                    flush |= self._map_pages(space, vas, gpas, ops[i][1])
                    i = jp
                    continue
                if j - i > 1:
                    _, prot, va, gpa, _, _ = ops[i]
                    flush |= self._map(space, va, gpa, sum(op[4] for op in ops[i:j]), prot)
                    i = j
                    continue
            except (HypercallError, GuestMemoryError):
                j = max(j, jp)  # nothing changed: replay entry by entry to find the one at fault
            more, failed = self._run_ops(space, ops, i, j)
            flush |= more
            if failed:
                return flush, failed
            i = j
        return flush, None

    def _run_ops(self, space: AddressSpace, ops: list[tuple], i: int, j: int) -> tuple[bool, tuple[int, int] | None]:
        """Run ``ops[i:j]`` one by one: (reload CR3?, (index, errno) of the first failure or None)."""
        flush = False
        for k in range(i, j):
            try:
                flush |= self._run_op(space, ops[k])
            except HypercallError as e:
                return flush, (k, int(e.errno))
            except GuestMemoryError:
                return flush, (k, int(Errno.EFAULT))
        return flush, None

    def _run_op(self, space: AddressSpace, op: tuple) -> bool:
        code, prot, va, gpa, length, _ = op
        if code == AsOpCode.MAP:
            return self._map(space, va, gpa, length, prot)
        if code == AsOpCode.UNMAP:
            return self._unmap(space, va, length)
        if code == AsOpCode.PROTECT:
            return self._protect(space, va, length, prot)
        if code == AsOpCode.LAZY:
            return self._lazy(space, va, length, prot)
        raise HypercallError(Errno.EINVAL, f"unknown op {code}")

    def as_clone(self, ctx: VcpuContext, handle: int) -> int:
        with self.lock:
            parent = self._space(handle)
            if parent.base != AS_USER_BASE:
                raise HypercallError(Errno.EINVAL, "cloning a low-window space is not supported")
            if len(self.spaces) >= MAX_SPACES:
                raise HypercallError(Errno.ENOSPC, "address-space table full")
            self._ensure_pt(len(parent.tables.table_frames(_USER_SLOTS)) + 1)
            mem = self.memory
            child_tables = PageTables(mem, self.pt_pool)
            mem.write_u64(child_tables.root, mem.read_u64(self.kernel_root))
            changed = self._clone_level(parent.tables.root, child_tables.root, 0, _USER_SLOTS)
            self._zap |= changed  # the parent's writable leaves are read-only now
            self._finish()
            handle = self._next_handle
            self._next_handle += 1
            stats = SpaceStats(handle, pages_mapped=parent.stats.pages_mapped)
            child = AddressSpace(
                handle, child_tables, stats, regions=[Region(r.start, r.end, r.prot) for r in parent.regions]
            )
            self.spaces[handle] = child
            self.history[handle] = stats
            targets = self._reload_here(ctx, parent) if changed else []
        self._reload_elsewhere(targets)
        return handle

    def _clone_level(self, src: int, dst: int, level: int, slots: range) -> bool:
        """Copy the user part of table *src* into *dst*; leaves become COW in both."""
        mem = self.memory
        entries = list(struct.unpack("<512Q", mem.read(src, PAGE_4K)))
        out = list(struct.unpack("<512Q", mem.read(dst, PAGE_4K)))
        changed = False
        for i in slots:
            entry = entries[i]
            if not entry & _P:
                continue
            if level < 3:
                child = self.pt_pool.alloc()
                out[i] = child | (entry & ~ADDR_MASK)
                changed |= self._clone_level(entry & ADDR_MASK, child, level + 1, range(512))
                continue
            frame = entry & ADDR_MASK
            if entry & _COW:
                self.cow_refs[frame] += 1
                shared = entry
            else:
                self.cow_refs[frame] = self.cow_refs.get(frame, 0) + 2
                shared = entry | _COW
                if entry & _W:
                    shared = (shared & ~_W) | _SW
                entries[i] = shared
                changed = True
            if entry & _VMM:
                self.frames.ref(frame)
            out[i] = shared
        if changed:
            mem.write(src, struct.pack("<512Q", *entries))
        mem.write(dst, struct.pack("<512Q", *out))
        return changed

    def page_fault(self, ctx: VcpuContext, handle: int, va: int, err: int, rip: int) -> int:
        """PAGE_FAULT: resolve and return 0 (the guest retries), or refuse with -EFAULT."""
        with self.lock:
            space = self.spaces.get(handle)
            if space is None:
                if handle == AS_KERNEL_HANDLE:
                    raise HypercallError(Errno.EFAULT, "no lazy ranges in the boot space")
                raise HypercallError(Errno.EBADF, f"no address space {handle}")
            try:
                kind, flush = self._resolve(space, va & ~_PAGE_MASK, err)
            except HypercallError:
                space.stats.refused += 1
                raise
            space.stats.faults[kind.value] += 1
            # A copied page moved: other vCPUs may still translate to the old frame.
            self._zap |= flush and bool(space.loaded - {ctx.id})
            self._finish()
            # The fault already dropped this vCPU's TLB entry for va; others may hold the old frame.
            targets = self._reload_here(ctx, space) if flush else []
        self._reload_elsewhere(targets)
        return 0

    def _resolve(self, space: AddressSpace, va: int, err: int) -> tuple[FaultKind, bool]:
        if not space.base <= va < AS_USER_END:
            raise HypercallError(Errno.EFAULT, f"fault at {va:#x} outside the user window")
        addr = space.tables.leaf_entry_addr(va)
        entry = self.memory.read_u64(addr) if addr is not None else 0
        if entry & _P:
            if err & _PF_W and entry & _COW and entry & _SW:
                if not _allows(entry | _W, err):
                    raise HypercallError(Errno.EFAULT, "access not permitted")
                return self._break_cow(addr, entry), True
            if _allows(entry, err):
                return FaultKind.SPURIOUS, False
            raise HypercallError(Errno.EFAULT, "access not permitted")
        for r in space.regions:
            if r.start <= va < r.end:
                if not _prot_allows(r.prot, err):
                    raise HypercallError(Errno.EFAULT, "access not permitted by the lazy range")
                addr = self._leaf_for_new_page(space, va, addr)
                frame = self.frames.alloc()
                self.memory.write_u64(addr, frame | self._flags(r.prot) | _VMM)
                space.stats.pages_mapped += 1
                return FaultKind.DEMAND_ZERO, False
        for p in self.pagers:
            if p.start <= va < p.end and p.handle in (None, space.handle):
                if not _prot_allows(p.prot, err):
                    raise HypercallError(Errno.EFAULT, "access not permitted by the pager range")
                addr = self._leaf_for_new_page(space, va, addr)
                data = p.fn(space.handle, va)
                if data is None:
                    raise HypercallError(Errno.EFAULT, "the pager refused")
                frame = self.frames.alloc()
                self.memory.write(frame, bytes(data[:PAGE_4K]))
                self.memory.write_u64(addr, frame | self._flags(p.prot) | _VMM)
                space.stats.pages_mapped += 1
                return FaultKind.PAGER, False
        raise HypercallError(Errno.EFAULT, f"no mapping at {va:#x}")

    def _break_cow(self, addr: int, entry: int) -> FaultKind:
        frame = entry & ADDR_MASK
        flags = (entry & ~ADDR_MASK & ~_SOFT) | _W
        owned = entry & _VMM
        if self.cow_refs[frame] == 1 and (not owned or self.frames.refs[frame] == 1):
            del self.cow_refs[frame]  # the last sharer keeps the frame
            self.memory.write_u64(addr, frame | flags | owned)
            return FaultKind.COW_REUSE
        new = self.frames.alloc(zero=False)
        self.memory.write(new, self.memory.read(frame, PAGE_4K))
        self._release(entry)
        self.memory.write_u64(addr, new | flags | _VMM)
        return FaultKind.COW_COPY

    def as_donate(self, ctx: VcpuContext, gpa: int, length: int) -> int:
        with self.lock:
            if gpa & _PAGE_MASK or length & _PAGE_MASK or length == 0:
                raise HypercallError(Errno.EINVAL, "donation must be page aligned, length > 0")
            self.memory.check(gpa, length)
            if gpa < self.reserved_end or self.frames.overlaps(gpa, length):
                raise HypercallError(Errno.EPERM, "range already owned by the VMM")
            for space in self.spaces.values():  # no page of it may be mapped anywhere
                for _, _, entry in space.tables.iter_leaves(space.base, AS_USER_END):
                    if gpa <= entry & ADDR_MASK < gpa + length:
                        raise HypercallError(Errno.EBUSY, "range is mapped in an address space")
            self.frames.donate(gpa, length)
            return 0

    def user_runs(self, ctx: VcpuContext, handle: int, va: int, length: int, *, write: bool) -> list[tuple[int, int]]:
        """USER_SEND/USER_RECV: ``[va, va+length)`` of space *handle* as guest-physical runs
        ``(gpa, n)``, each page checked as a CPL3 access of that kind and faulted in as the
        MMU would (demand-zero, copy-on-write, pager). Stops at the first page that cannot
        be served: the runs cover a prefix (empty: the caller returns -EFAULT)."""
        err = _PF_U | (_PF_W if write else 0)
        runs: list[tuple[int, int]] = []
        with self.lock:
            space = self._space(handle)
            if not space.base <= va < AS_USER_END or length > AS_USER_END - va:
                raise HypercallError(Errno.EFAULT, f"[{va:#x}, +{length:#x}) is outside the user window")
            end = va + length
            pos = va
            targets: set[int] = set()
            try:
                while pos < end:
                    page = pos & ~_PAGE_MASK
                    addr = space.tables.leaf_entry_addr(page)
                    entry = self.memory.read_u64(addr) if addr is not None else 0
                    if not (entry & _P and _allows(entry, err)):
                        try:
                            kind, flush = self._resolve(space, page, err | (entry & _P))
                        except HypercallError:
                            break
                        space.stats.faults[kind.value] += 1
                        if flush:
                            self._zap |= bool(space.loaded - {ctx.id})
                            targets.update(self._reload_here(ctx, space))
                        entry = self.memory.read_u64(space.tables.leaf_entry_addr(page))
                    gpa = (entry & ADDR_MASK) + (pos - page)
                    n = min(end, page + PAGE_4K) - pos
                    if runs and runs[-1][0] + runs[-1][1] == gpa:
                        runs[-1] = (runs[-1][0], runs[-1][1] + n)
                    else:
                        runs.append((gpa, n))
                    pos += n
            finally:
                self._finish()
        self._reload_elsewhere(sorted(targets))
        return runs

    # -- TLB ---------------------------------------------------------------------
    def _reload_here(self, ctx: VcpuContext, space: AddressSpace) -> list[int]:
        """Reload CR3 on the caller if it has *space* loaded; return the ids of the other vCPUs that do."""
        if ctx.id in space.loaded:
            load_cr3(ctx, space.tables.root)
        if self.vcpus is None:
            return []
        return [i for i in space.loaded if i != ctx.id]

    def _reload_elsewhere(self, targets: list[int]) -> None:
        """Make each target vCPU reload its CR3 on its own thread, and wait until the running ones have."""
        waits = []
        for target in targets:
            done = threading.Event()

            def work(c: VcpuContext, done: threading.Event = done) -> None:
                space = self.spaces.get(self.active.get(c.id, AS_KERNEL_HANDLE))
                load_cr3(c, space.tables.root if space is not None else self.kernel_root)
                done.set()

            # A vCPU asleep outside KVM_RUN runs its queue before it enters the guest again: no wait.
            if self.vcpus.post(target, work):
                waits.append(done)
        for done in waits:
            done.wait(FLUSH_WAIT_S)


def _page_run_end(ops: list[tuple], i: int) -> int:
    """End of the run of one-page MAP entries from *i* with one prot (any addresses)."""
    code, prot, _, _, length, _ = ops[i]
    if code != AsOpCode.MAP or length != PAGE_4K:
        return i + 1
    j = i + 1
    n = len(ops)
    while j < n and ops[j][0] == code and ops[j][1] == prot and ops[j][4] == PAGE_4K:
        j += 1
    return j


def _map_run_end(ops: list[tuple], i: int) -> int:
    """End of the run of MAP entries from *i* with contiguous va and gpa and one prot."""
    code, prot, va, gpa, length, _ = ops[i]
    # Only whole-page entries merge: then the run is valid exactly when each entry is.
    if code != AsOpCode.MAP or not length or length & _PAGE_MASK:
        return i + 1
    j = i + 1
    n = len(ops)
    while j < n:
        c2, p2, va2, gpa2, len2, _ = ops[j]
        if c2 != code or p2 != prot or va2 != va + length or gpa2 != gpa + length or not len2 or len2 & _PAGE_MASK:
            break
        va, gpa, length = va2, gpa2, len2
        j += 1
    return j


def _coalesce(regions: list[Region]) -> list[Region]:
    """*regions* sorted, with touching ranges of the same prot joined."""
    out: list[Region] = []
    for r in sorted(regions, key=lambda r: r.start):
        if out and out[-1].end == r.start and out[-1].prot == r.prot:
            out[-1] = Region(out[-1].start, r.end, r.prot)
        else:
            out.append(r)
    return out


def _carve(regions: list[Region], start: int, end: int) -> list[Region]:
    """*regions* without ``[start, end)`` (ranges split where needed)."""
    out = []
    for r in regions:
        if r.end <= start or end <= r.start:
            out.append(r)
            continue
        if r.start < start:
            out.append(Region(r.start, start, r.prot))
        if end < r.end:
            out.append(Region(end, r.end, r.prot))
    return out


def install_address_spaces(dispatcher: Dispatcher, manager: AddressSpaceManager) -> None:
    """Register hypercalls 32-42 against *manager*."""
    m = manager

    def create(ctx, flags, a1, a2, a3, a4) -> int:
        return m.as_create(ctx, flags)

    def destroy(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_destroy(ctx, handle)

    def map_(ctx, handle, va, gpa, length, prot) -> int:
        return m.as_call(ctx, m._map, handle, va, gpa, length, prot)

    def unmap(ctx, handle, va, length, a3, a4) -> int:
        return m.as_call(ctx, m._unmap, handle, va, length)

    def protect(ctx, handle, va, length, prot, a4) -> int:
        return m.as_call(ctx, m._protect, handle, va, length, prot)

    def lazy(ctx, handle, va, length, prot, a4) -> int:
        return m.as_call(ctx, m._lazy, handle, va, length, prot)

    def switch(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_switch(ctx, handle)

    def clone(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_clone(ctx, handle)

    def batch(ctx, handle, ops_gpa, count, a3, a4) -> int:
        return m.as_batch(ctx, handle, ops_gpa, count)

    def fault(ctx, handle, va, err, rip, a4) -> int:
        return m.page_fault(ctx, handle, va, err, rip)

    def donate(ctx, gpa, length, a2, a3, a4) -> int:
        return m.as_donate(ctx, gpa, length)

    dispatcher.register(Hypercall.AS_CREATE, create)
    dispatcher.register(Hypercall.AS_DESTROY, destroy)
    dispatcher.register(Hypercall.AS_MAP, map_)
    dispatcher.register(Hypercall.AS_UNMAP, unmap)
    dispatcher.register(Hypercall.AS_PROTECT, protect)
    dispatcher.register(Hypercall.AS_SWITCH, switch)
    dispatcher.register(Hypercall.AS_CLONE, clone)
    dispatcher.register(Hypercall.AS_MAP_BATCH, batch)
    dispatcher.register(Hypercall.AS_LAZY, lazy)
    dispatcher.register(Hypercall.PAGE_FAULT, fault)
    dispatcher.register(Hypercall.AS_DONATE, donate)
