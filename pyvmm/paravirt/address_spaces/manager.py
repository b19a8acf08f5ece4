"""The handle table of one VM and the lifecycle of its spaces: create, destroy, switch,
clone, donate; the entry points each hypercall calls; snapshot state.

One lock serialises every call (handlers run on vCPU threads). The work behind each
call lives beside this module: validation in :mod:`.policy`, leaf writing in
:mod:`.leaves`, the batch path in :mod:`.batch`, faults in :mod:`.faults`, frame
references in :mod:`.frames`, TLB and shadow coherence in :mod:`.tlb`, counters in
:mod:`.stats`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import (
    AS_BATCH_MAX,
    AS_KERNEL_HANDLE,
    AS_LOW_BASE,
    AS_USER_BASE,
    AS_USER_END,
    AsCreateFlag,
    Errno,
)
from pyvmm.paravirt.address_spaces import batch, lowwindow, policy
from pyvmm.paravirt.address_spaces.faults import Faults
from pyvmm.paravirt.address_spaces.frames import FrameRefs
from pyvmm.paravirt.address_spaces.leaves import Leaves
from pyvmm.paravirt.address_spaces.policy import PAGE_MASK, PF_USER, PF_WRITE, USER_SLOTS, P
from pyvmm.paravirt.address_spaces.space import AddressSpace, Pager, PagerFn, Region
from pyvmm.paravirt.address_spaces.stats import SpaceStats, StatsHistory
from pyvmm.paravirt.address_spaces.tlb import Coherence, load_cr3
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K, FramePool, PageTables
from pyvmm.x86.tablemem import TableMemory

if TYPE_CHECKING:
    from pyvmm.kvm.shadow import ShadowMmu
    from pyvmm.paravirt.services import VcpuSet
    from pyvmm.vcpu import Vcpu


class AddressSpaceManager:
    """The address spaces of one VM.

    *pt_pool* hands out table frames through a :class:`~pyvmm.x86.tablemem.TableMemory`
    (its ``mem``): every table is read from the VMM's copy, never from guest RAM.
    Thread-safe. Each public ``as_*`` method validates everything before it changes
    anything, so a failed call leaves the tables as they were.
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
        if not isinstance(pt_pool.mem, TableMemory):
            raise TypeError("the page-table pool must write through a TableMemory (pyvmm.x86.tablemem)")
        self.memory = memory
        self.tables: TableMemory = pt_pool.mem
        self.pt_pool = pt_pool
        self.kernel_root = kernel_tables.root
        self.reserved_end = reserved_end
        self.vcpus = vcpus
        self.lock = threading.Lock()
        self.spaces: dict[int, AddressSpace] = {}
        self.history = StatsHistory()
        self.active: dict[int, int] = {}  # vCPU id -> handle loaded (absent: the boot space)
        self.refs = FrameRefs(memory, reserved_end)
        self.pagers: list[Pager] = []
        self.coherence = Coherence(pt_pool, self.tables, vcpus, shadow)
        self.leaves = Leaves(self.tables, self.refs, self.coherence, nx_bit=policy.NX if nx else 0)
        self.faults = Faults(memory, self.leaves, self.pagers)
        self._next_handle = AS_KERNEL_HANDLE + 1

    @property
    def shadow(self) -> ShadowMmu | None:
        return self.coherence.shadow

    @property
    def frames(self):
        """The donated frames (:class:`~pyvmm.paravirt.address_spaces.frames.DataFrames`)."""
        return self.refs.data

    def close(self) -> None:
        self.coherence.close()
        self.tables.close()

    # -- host-side API -----------------------------------------------------------
    def add_pager(
        self, start: int, length: int, fn: PagerFn, prot: int = policy.READ | policy.USER, handle: int | None = None
    ) -> None:
        """Serve not-present faults in ``[start, start+length)`` with ``fn(handle, va)``.

        Applies to every space, or to *handle* only. ``fn`` returns the page's
        bytes (zero-padded to 4 KiB) or None to refuse the fault; the page is
        mapped with *prot* in a donated frame. Lazy ranges take precedence.
        """
        policy.check_range(start, length)
        policy.check_prot(prot)
        with self.lock:
            self.pagers.append(Pager(start, start + length, prot, fn, handle))

    def stats(self) -> dict[int, SpaceStats]:
        """Metrics of every live space and of the last destroyed ones (``policy.RETAINED_STATS``)."""
        return self.history.all()

    def format_stats(self) -> str:
        h = self.history
        dropped = f" ({h.dropped} destroyed ones not listed)" if h.dropped else ""
        lines = [
            f"address spaces: {h.created} created, {len(self.spaces)} live{dropped}; "
            f"page-table frames {self.pt_pool.frames_in_use} used, {self.pt_pool.available} free; "
            f"data frames {self.frames.in_use}/{self.frames.total} in use"
        ]
        lines += ["  " + s.format() for s in h.all().values()]
        return "\n".join(lines)

    # -- helpers -----------------------------------------------------------------
    def _space(self, handle: int) -> AddressSpace:
        space = self.spaces.get(handle)
        if space is None:
            if handle == AS_KERNEL_HANDLE:
                raise HypercallError(Errno.EINVAL, "the boot address space cannot be changed")
            raise HypercallError(Errno.EBADF, f"no address space {handle}")
        return space

    def _new_handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    def _root_of(self, vcpu_id: int) -> int:
        """The CR3 vCPU *vcpu_id* should have now (read unlocked by a posted reload)."""
        space = self.spaces.get(self.active.get(vcpu_id, AS_KERNEL_HANDLE))
        return space.tables.root if space is not None else self.kernel_root

    def _reload_elsewhere(self, targets: list[int]) -> None:
        self.coherence.reload_elsewhere(targets, self._root_of)

    # -- snapshots (pyvmm.snapshot) ------------------------------------------------------
    def export_state(self) -> dict:
        """The handle table, frame pools and COW counts as plain data; the tables themselves
        are in guest RAM, which this first makes equal to the VMM's copy again (a guest may
        have written its pool pages). Host-side pagers are Python callables: not saved.
        Call paused, before the memory to save is chosen."""
        with self.lock:
            if self.tables.repair_guest_copy():
                self.coherence.flush_shadow()
            return {
                "next_handle": self._next_handle,
                "spaces": [
                    {
                        "handle": h,
                        "root": sp.tables.root,
                        "base": sp.base,
                        "regions": [[r.start, r.end, r.prot] for r in sp.regions],
                    }
                    for h, sp in self.spaces.items()
                ],
                "history": self.history.export_state(),
                "active": {str(v): h for v, h in self.active.items()},
                "frames": self.frames.export_state(),
                "cow_refs": {str(f): n for f, n in self.refs.cow.items()},
                "dirty_pt": self.coherence.export_state(),
                "pt_pool": self.pt_pool.export_state(),
            }

    def import_state(self, state: dict) -> None:
        """Load :meth:`export_state`'s data after guest RAM was written from the same
        snapshot (a restore; a reset). Raises ``ValueError``, ``KeyError`` or ``TypeError``
        for malformed data, changing nothing then."""
        history = StatsHistory.from_state(state["history"])
        live = history.all()
        spaces = {}
        for d in state["spaces"]:
            h, root, base = int(d["handle"]), int(d["root"]), int(d["base"])
            if not self.pt_pool.owns(root) or h not in live or base not in (AS_USER_BASE, AS_LOW_BASE):
                raise ValueError(f"address space {h}: bad root, base or no stats")
            regions = [Region(int(a), int(b), int(p)) for a, b, p in d["regions"]]
            tables = PageTables(self.tables, self.pt_pool, root=root)
            spaces[h] = AddressSpace(h, tables, live[h], regions, base=base)
        active = {int(v): int(h) for v, h in state["active"].items()}
        if any(h not in spaces for h in active.values()):
            raise ValueError("a vCPU has an unknown address space loaded")
        with self.lock:
            self.pt_pool.import_state(state["pt_pool"])
            self.frames.import_state(state["frames"])
            self.tables.reload()
            for frame in [*self.pt_pool.free_frames, *state["dirty_pt"]]:
                self.tables.forget(int(frame))  # a freed table's stale entries must not answer a scan
            self._next_handle = int(state["next_handle"])
            self.spaces, self.history, self.active = spaces, history, active
            for v, h in active.items():
                spaces[h].loaded.add(v)
            self.refs.cow = {int(f): int(n) for f, n in state["cow_refs"].items()}
            self.coherence.import_state(state["dirty_pt"])

    # -- hypercall entry points ------------------------------------------------------
    def as_create(self, ctx: Vcpu, flags: int = 0) -> int:
        if flags & ~int(AsCreateFlag.LOW_WINDOW):
            raise HypercallError(Errno.EINVAL, f"unknown AS_CREATE flags {flags:#x}")
        low = bool(flags & AsCreateFlag.LOW_WINDOW)
        with self.lock:
            if len(self.spaces) >= policy.MAX_SPACES:
                raise HypercallError(Errno.ENOSPC, "address-space table full")
            self.coherence.ensure_tables(3 if low else 1)
            tables = PageTables(self.tables, self.pt_pool)
            if low:
                lowwindow.build_slot0(self.tables, self.pt_pool, tables.root, self.kernel_root)
            else:
                # Slot 0: the kernel's identity map, shared with the boot tables (its PDPT and below).
                self.tables.write_u64(tables.root, self.tables.read_u64(self.kernel_root))
            handle = self._new_handle()
            stats = SpaceStats(handle)
            self.spaces[handle] = AddressSpace(handle, tables, stats, base=AS_LOW_BASE if low else AS_USER_BASE)
            self.history.add(stats)
            return handle

    def as_destroy(self, ctx: Vcpu, handle: int) -> int:
        with self.lock:
            space = self._space(handle)
            if space.loaded:
                raise HypercallError(Errno.EBUSY, f"address space {handle} is loaded on vCPU(s) {sorted(space.loaded)}")
            for _, _, entry in space.tables.iter_leaves(space.base, AS_USER_END):
                self.refs.release(entry)
            frames = space.tables.table_frames(USER_SLOTS)
            if space.base != AS_USER_BASE:
                frames += lowwindow.slot0_frames(space.tables)
            for frame in [*frames, space.tables.root]:
                self.coherence.free_table(frame)
            del self.spaces[handle]
            self.history.destroyed(handle)
            return 0

    def as_switch(self, ctx: Vcpu, handle: int) -> int:
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

    def as_call(self, ctx: Vcpu, op: Callable[..., bool], handle: int, *args: int) -> int:
        """Run one of the :class:`~.leaves.Leaves` operations on *handle* and flush where needed."""
        with self.lock:
            space = self._space(handle)
            try:
                flush = op(space, *args)
            finally:
                self.coherence.finish()
            targets = self.coherence.reload_here(ctx, space) if flush else []
        self._reload_elsewhere(targets)
        return 0

    def as_batch(self, ctx: Vcpu, handle: int, ops_gpa: int, count: int) -> int:
        """AS_MAP_BATCH (:mod:`.batch`): returns how many entries succeeded; each of those
        gets ``result = 0``, the failing one (if any) ``-errno``; later entries are not run
        and not written."""
        if count == 0:
            return 0
        if count > AS_BATCH_MAX:
            raise HypercallError(Errno.E2BIG, f"more than {AS_BATCH_MAX} entries")
        size = count * batch.OP.size
        self.memory.check(ops_gpa, size)
        if self.frames.vmm_owned(ops_gpa, size):
            raise HypercallError(Errno.EFAULT, "the op array lies in VMM-owned pages")
        raw = self.memory.read(ops_gpa, size)
        with self.lock:
            space = self._space(handle)
            try:
                flush, failed = batch.run_batch(self.leaves, space, raw, count)
            finally:
                self.coherence.finish()
            targets = self.coherence.reload_here(ctx, space) if flush else []
        done = failed[0] if failed else count
        batch.write_results(self.memory, ops_gpa, done, failed)
        self._reload_elsewhere(targets)
        return done

    def as_clone(self, ctx: Vcpu, handle: int) -> int:
        with self.lock:
            parent = self._space(handle)
            if parent.base != AS_USER_BASE:
                raise HypercallError(Errno.EINVAL, "cloning a low-window space is not supported")
            if len(self.spaces) >= policy.MAX_SPACES:
                raise HypercallError(Errno.ENOSPC, "address-space table full")
            self.coherence.ensure_tables(len(parent.tables.table_frames(USER_SLOTS)) + 1)
            child_tables = PageTables(self.tables, self.pt_pool)
            self.tables.write_u64(child_tables.root, self.tables.read_u64(self.kernel_root))
            changed = self.leaves.clone_user(parent.tables.root, child_tables.root, 0, USER_SLOTS)
            self.coherence.narrowed(changed)  # the parent's writable leaves are read-only now
            self.coherence.finish()
            handle = self._new_handle()
            stats = SpaceStats(handle, pages_mapped=parent.stats.pages_mapped)
            regions = [Region(r.start, r.end, r.prot) for r in parent.regions]
            self.spaces[handle] = AddressSpace(handle, child_tables, stats, regions=regions)
            self.history.add(stats)
            targets = self.coherence.reload_here(ctx, parent) if changed else []
        self._reload_elsewhere(targets)
        return handle

    def page_fault(self, ctx: Vcpu, handle: int, va: int, err: int, rip: int) -> int:
        """PAGE_FAULT: resolve and return 0 (the guest retries), or refuse with -EFAULT."""
        with self.lock:
            space = self.spaces.get(handle)
            if space is None:
                if handle == AS_KERNEL_HANDLE:
                    raise HypercallError(Errno.EFAULT, "no lazy ranges in the boot space")
                raise HypercallError(Errno.EBADF, f"no address space {handle}")
            try:
                kind, flush = self.faults.resolve(space, va & ~PAGE_MASK, err)
            except HypercallError:
                space.stats.refused += 1
                raise
            finally:
                self.coherence.finish()
            space.stats.faults[kind.value] += 1
            # A copied page moved: other vCPUs may still translate to the old frame.
            if flush and space.loaded - {ctx.id}:
                self.coherence.narrowed()
                self.coherence.finish()
            # The fault already dropped this vCPU's TLB entry for va; others may hold the old frame.
            targets = self.coherence.reload_here(ctx, space) if flush else []
        self._reload_elsewhere(targets)
        return 0

    def as_donate(self, ctx: Vcpu, gpa: int, length: int) -> int:
        policy.check_pages(gpa, length, "donation")
        self.memory.check(gpa, length)
        with self.lock:
            if self.frames.vmm_owned(gpa, length):
                raise HypercallError(Errno.EPERM, "range already owned by the VMM")
            if self.leaves.maps_guest_frame_in(self.pt_pool.high_water, gpa, gpa + length):
                raise HypercallError(Errno.EBUSY, "range is mapped in an address space")
            self.frames.donate(gpa, length)
            return 0

    def user_runs(self, ctx: Vcpu, handle: int, va: int, length: int, *, write: bool) -> list[tuple[int, int]]:
        """USER_SEND/USER_RECV: ``[va, va+length)`` of space *handle* as guest-physical runs
        ``(gpa, n)``, each page checked as a CPL3 access of that kind and faulted in as the
        MMU would (demand-zero, copy-on-write, pager). Stops at the first page that cannot
        be served: the runs cover a prefix (empty: the caller returns -EFAULT)."""
        err = PF_USER | (PF_WRITE if write else 0)
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
                    page = pos & ~PAGE_MASK
                    _, entry = self.faults.leaf(space, page)
                    if not (entry & P and policy.entry_allows(entry, err)):
                        try:
                            kind, flush = self.faults.resolve(space, page, err | (entry & P))
                        except HypercallError:
                            break
                        space.stats.faults[kind.value] += 1
                        if flush:
                            self.coherence.narrowed(bool(space.loaded - {ctx.id}))
                            targets.update(self.coherence.reload_here(ctx, space))
                        _, entry = self.faults.leaf(space, page)
                    gpa = (entry & ADDR_MASK) + (pos - page)
                    n = min(end, page + PAGE_4K) - pos
                    if runs and runs[-1][0] + runs[-1][1] == gpa:
                        runs[-1] = (runs[-1][0], runs[-1][1] + n)
                    else:
                        runs.append((gpa, n))
                    pos += n
            finally:
                self.coherence.finish()
        self._reload_elsewhere(sorted(targets))
        return runs
