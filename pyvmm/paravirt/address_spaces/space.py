"""What one address space is: its tables, its lazy ranges, the vCPUs that have it loaded;
and the host-side pagers that may serve its faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyvmm.paravirt.abi import AS_USER_BASE
from pyvmm.paravirt.address_spaces.stats import SpaceStats
from pyvmm.x86.paging import PageTables


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
    """A host-side pager (:meth:`AddressSpaceManager.add_pager`) for ``[start, end)``."""

    start: int
    end: int
    prot: int  # Prot bits
    fn: PagerFn
    handle: int | None  # None: every space


@dataclass(eq=False)
class AddressSpace:
    handle: int
    tables: PageTables  # over the VMM's copy of the pool (pyvmm.x86.tablemem)
    stats: SpaceStats
    regions: list[Region] = field(default_factory=list)  # sorted, disjoint
    loaded: set[int] = field(default_factory=set)  # ids of the vCPUs with it in CR3
    base: int = AS_USER_BASE  # first user address: AS_LOW_BASE for a low-window space

    def region_overlaps(self, start: int, end: int) -> bool:
        return any(r.start < end and start < r.end for r in self.regions)

    def region_at(self, va: int) -> Region | None:
        for r in self.regions:
            if r.start <= va < r.end:
                return r
        return None


def coalesce(regions: list[Region]) -> list[Region]:
    """*regions* sorted, with touching ranges of the same prot joined."""
    out: list[Region] = []
    for r in sorted(regions, key=lambda r: r.start):
        if out and out[-1].end == r.start and out[-1].prot == r.prot:
            out[-1] = Region(out[-1].start, r.end, r.prot)
        else:
            out.append(r)
    return out


def carve(regions: list[Region], start: int, end: int) -> list[Region]:
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
