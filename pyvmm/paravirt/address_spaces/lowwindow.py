"""Low-window address spaces (ABI 1.2): PML4 slot 0 for user code, less the kernel's first 4 MiB.

An ordinary space shares the boot tables' whole slot 0 (the kernel's identity map of
RAM) and keeps user mappings from ``AS_USER_BASE`` (512 GiB) up. Unmodified Linux
programs are linked at 0x400000, inside slot 0, so a space created with
``AsCreateFlag.LOW_WINDOW`` gets a private PDPT for slot 0 and a private first PD
whose entries 0 and 1 are the boot PD's (the low 4 KiB-page table: boot info, shared
page, page-table pool; and the 2 MiB page of the kernel image at 2 MiB). Everything
else from ``AS_LOW_BASE`` (4 MiB) up is the space's own. The kernel keeps working while
such a space is loaded as long as it touches only its first 4 MiB through the identity
map (the bundled kernel's image, stacks and buffers live there; the VMM moves data to and
from user pages itself with USER_SEND/USER_RECV).
"""

from __future__ import annotations

from pyvmm.x86.paging import ADDR_MASK, FramePool, PageTables, Pte

_P = int(Pte.PRESENT)
_HUGE = int(Pte.HUGE)
_TABLE = int(Pte.PRESENT | Pte.WRITABLE | Pte.USER)  # leaves carry the real permissions
#: PD entries 0 and 1 (the first 4 MiB) stay the kernel's.
KERNEL_PD_ENTRIES = 2


def build_slot0(mem, pool: FramePool, root: int, kernel_root: int) -> None:
    """Give the new space at *root* a private slot 0: PDPT -> PD sharing the kernel's first 4 MiB."""
    kernel_pdpt = mem.read_u64(kernel_root) & ADDR_MASK
    kernel_pd = mem.read_u64(kernel_pdpt) & ADDR_MASK
    pdpt = pool.alloc()
    pd = pool.alloc()
    for i in range(KERNEL_PD_ENTRIES):
        mem.write_u64(pd + 8 * i, mem.read_u64(kernel_pd + 8 * i))
    mem.write_u64(pdpt, pd | _TABLE)
    mem.write_u64(root, pdpt | _TABLE)


def slot0_frames(tables: PageTables) -> list[int]:
    """The table frames a low-window space owns in slot 0 (its PDPT, PD and everything below
    them), never the kernel's shared low page table."""
    pdpt = tables.table_entries(tables.root)[0] & ADDR_MASK
    frames = [pdpt]

    def below(table: int, level: int, first: int) -> None:
        for entry in tables.table_entries(table)[first:]:
            if entry & _P and not entry & _HUGE and level < 3:
                frames.append(entry & ADDR_MASK)
                below(entry & ADDR_MASK, level + 1, 0)

    pdpt_entries = tables.table_entries(pdpt)
    pd = pdpt_entries[0] & ADDR_MASK
    frames.append(pd)
    below(pd, 2, KERNEL_PD_ENTRIES)  # page tables under PD entries 2..511
    for entry in pdpt_entries[1:]:  # PDs (and their tables) from 1 GiB up
        if entry & _P:
            frames.append(entry & ADDR_MASK)
            below(entry & ADDR_MASK, 2, 0)
    return frames
