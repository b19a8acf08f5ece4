"""Serving page faults: demand-zero lazy ranges, copy-on-write breaks and host-side pagers.

The guest forwards each fault (PAGE_FAULT) and retries the access once it returns 0;
USER_SEND/USER_RECV fault pages in the same way before pyvmm touches them. Frames come
from the donated pool (:class:`~pyvmm.paravirt.address_spaces.frames.DataFrames`).
"""

from __future__ import annotations

from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import AS_USER_END, Errno
from pyvmm.paravirt.address_spaces.leaves import Leaves
from pyvmm.paravirt.address_spaces.policy import (
    COW,
    PF_WRITE,
    SOFT_BITS,
    SOFT_WRITE,
    VMM_FRAME,
    P,
    W,
    entry_allows,
    prot_allows,
)
from pyvmm.paravirt.address_spaces.space import AddressSpace, Pager
from pyvmm.paravirt.address_spaces.stats import FaultKind
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K


class Faults:
    """Resolves one fault in one space (called with the manager's lock held)."""

    def __init__(self, memory: GuestMemory, leaves: Leaves, pagers: list[Pager]) -> None:
        self.memory = memory  # guest RAM: the data frames' contents
        self.leaves = leaves
        self.tables = leaves.tables
        self.refs = leaves.refs
        self.pagers = pagers  # the manager's list (add_pager appends)

    def leaf(self, space: AddressSpace, va: int) -> tuple[int | None, int]:
        """(address of *va*'s leaf entry or None, the entry or 0)."""
        addr = space.tables.leaf_entry_addr(va)
        return addr, self.tables.read_u64(addr) if addr is not None else 0

    def resolve(self, space: AddressSpace, va: int, err: int) -> tuple[FaultKind, bool]:
        """Serve a fault at page *va* with error code *err*: (how, must loaded vCPUs reload CR3?).
        EFAULT when nothing may serve it (nothing changed then)."""
        if not space.base <= va < AS_USER_END:
            raise HypercallError(Errno.EFAULT, f"fault at {va:#x} outside the user window")
        addr, entry = self.leaf(space, va)
        if entry & P:
            if err & PF_WRITE and entry & COW and entry & SOFT_WRITE:
                if not entry_allows(entry | W, err):
                    raise HypercallError(Errno.EFAULT, "access not permitted")
                return self._break_cow(addr, entry), True
            if entry_allows(entry, err):
                return FaultKind.SPURIOUS, False
            raise HypercallError(Errno.EFAULT, "access not permitted")
        region = space.region_at(va)
        if region is not None:
            if not prot_allows(region.prot, err):
                raise HypercallError(Errno.EFAULT, "access not permitted by the lazy range")
            addr = self.leaves.leaf_for_new_page(space, va, addr)
            frame = self.refs.data.alloc()
            self.tables.write_u64(addr, frame | self.leaves.flags(region.prot) | VMM_FRAME)
            space.stats.pages_mapped += 1
            return FaultKind.DEMAND_ZERO, False
        for p in self.pagers:
            if p.start <= va < p.end and p.handle in (None, space.handle):
                if not prot_allows(p.prot, err):
                    raise HypercallError(Errno.EFAULT, "access not permitted by the pager range")
                addr = self.leaves.leaf_for_new_page(space, va, addr)
                data = p.fn(space.handle, va)
                if data is None:
                    raise HypercallError(Errno.EFAULT, "the pager refused")
                frame = self.refs.data.alloc()
                self.memory.write(frame, bytes(data[:PAGE_4K]))
                self.tables.write_u64(addr, frame | self.leaves.flags(p.prot) | VMM_FRAME)
                space.stats.pages_mapped += 1
                return FaultKind.PAGER, False
        raise HypercallError(Errno.EFAULT, f"no mapping at {va:#x}")

    def _break_cow(self, addr: int, entry: int) -> FaultKind:
        frame = entry & ADDR_MASK
        flags = (entry & ~ADDR_MASK & ~SOFT_BITS) | W
        owned = entry & VMM_FRAME
        if self.refs.sole_sharer(entry):
            self.refs.unshare_last(entry)  # the last sharer keeps the frame
            self.tables.write_u64(addr, frame | flags | owned)
            return FaultKind.COW_REUSE
        new = self.refs.data.alloc(zero=False)
        self.memory.write(new, self.memory.read(frame, PAGE_4K))
        self.refs.release(entry)
        self.tables.write_u64(addr, new | flags | VMM_FRAME)
        return FaultKind.COW_COPY
