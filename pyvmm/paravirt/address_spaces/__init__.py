"""Address spaces as handles (pagetable-set): the VMM owns every page table.

The guest kernel never writes a page-table entry. It asks for address spaces
(handles, like fds), maps ranges of its RAM into them, switches between them
and forwards its page faults, all by hypercall; this package validates each
request and edits the tables (:mod:`pyvmm.x86.paging`) in frames of the
VMM-owned pool below ``Layout.RESERVED_END``, which the guest sees read-only and
which pyvmm reads only from its own copy (:mod:`pyvmm.x86.tablemem`): a CPL0 guest
that writes its pool pages anyway garbles only its own translations.

Every space shares PML4 slot 0 with the boot tables (the kernel's identity map
of RAM, supervisor-only) and keeps its user mappings in slots 1-255
(``AS_USER_BASE``..``AS_USER_END``). A *low-window* space (ABI 1.2,
``AsCreateFlag.LOW_WINDOW``, for unmodified Linux programs linked at 0x400000)
has its own slot-0 PDPT and first PD, sharing only the kernel's first 4 MiB, and
owns everything from ``AS_LOW_BASE`` up (:mod:`.lowwindow`). The software bits
9-11 of a leaf record copy-on-write state and frame ownership (see
:class:`~pyvmm.x86.paging.Pte`).

One concern per module:

- :mod:`.manager`: the handle table, each space's lifecycle, the entry points, snapshot state;
- :mod:`.policy`: what a request may ask for, and the limits;
- :mod:`.frames`: donated frames, their refcounts and COW shares; the ownership test;
- :mod:`.leaves`: writing leaves (map, unmap, protect, lazy, clone);
- :mod:`.batch`: AS_MAP_BATCH;
- :mod:`.faults`: demand-zero, copy-on-write and pager faults;
- :mod:`.tlb`: CR3 reloads and shadow-page flushes;
- :mod:`.stats`: per-space counters, bounded after destruction;
- :mod:`.space`, :mod:`.lowwindow`: what a space is; the low-window slot 0;
- :mod:`.hypercalls`: the hypercall table (32-42).
"""

from pyvmm.paravirt.address_spaces.hypercalls import install_address_spaces
from pyvmm.paravirt.address_spaces.manager import AddressSpaceManager
from pyvmm.paravirt.address_spaces.space import PagerFn
from pyvmm.paravirt.address_spaces.stats import FaultKind, SpaceStats
from pyvmm.paravirt.address_spaces.tlb import load_cr3

__all__ = ["AddressSpaceManager", "FaultKind", "PagerFn", "SpaceStats", "install_address_spaces", "load_cr3"]
