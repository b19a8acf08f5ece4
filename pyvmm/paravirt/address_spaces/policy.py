"""What an address-space request may ask for: ranges, protections, the leaf flags a
protection becomes, fault permissions, and the limits on what a guest can make pyvmm hold.

Pure functions over plain ints (IntFlag arithmetic costs microseconds a call on the hot
paths); each raises :class:`~pyvmm.paravirt.dispatcher.HypercallError` with the errno
docs/abi.md gives.
"""

from __future__ import annotations

from pyvmm.paravirt.abi import AS_USER_BASE, AS_USER_END, Errno, PfError, Prot
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import PAGE_4K, Pte

PAGE_MASK = PAGE_4K - 1
P, W, U, NX = int(Pte.PRESENT), int(Pte.WRITABLE), int(Pte.USER), int(Pte.NO_EXECUTE)
HUGE = int(Pte.HUGE)
COW, SOFT_WRITE, VMM_FRAME = int(Pte.COW), int(Pte.SOFT_WRITE), int(Pte.VMM_FRAME)
SOFT_BITS = COW | SOFT_WRITE | VMM_FRAME
ACCESSED_DIRTY = int(Pte.ACCESSED | Pte.DIRTY)
READ, WRITE, EXEC, USER = int(Prot.READ), int(Prot.WRITE), int(Prot.EXEC), int(Prot.USER)
ALL_PROT = READ | WRITE | EXEC | USER
PF_WRITE, PF_USER, PF_FETCH = int(PfError.WRITE), int(PfError.USER), int(PfError.FETCH)
#: PML4 slots of the user window of an ordinary space (slot 0 is the kernel's identity map).
USER_SLOTS = range(AS_USER_BASE >> 39, AS_USER_END >> 39)

# Limits on what a guest can make pyvmm hold (docs/abi.md §9 and docs/robustness.md).
MAX_SPACES = 1024  # live address spaces per VM
MAX_REGIONS = 64  # lazy ranges per space (touching ones of one prot join)
MAX_DONATIONS = 256  # disjoint donated ranges (adjacent donations join)
RETAINED_STATS = 256  # destroyed spaces whose stats are kept; older ones are folded into totals


def check_range(va: int, length: int, base: int = AS_USER_BASE) -> None:
    """EINVAL unless ``[va, va+length)`` is whole pages inside the user window from *base*."""
    if va & PAGE_MASK or length & PAGE_MASK or length == 0:
        raise HypercallError(Errno.EINVAL, "address and length must be page aligned, length > 0")
    if not base <= va < AS_USER_END or length > AS_USER_END - va:
        raise HypercallError(Errno.EINVAL, f"[{va:#x}, +{length:#x}) is outside the user window")


def check_pages(gpa: int, length: int, what: str) -> None:
    """EINVAL unless the guest-physical ``[gpa, gpa+length)`` is whole pages."""
    if gpa & PAGE_MASK or length & PAGE_MASK or length == 0:
        raise HypercallError(Errno.EINVAL, f"{what} must be page aligned, length > 0")


def check_prot(prot: int) -> int:
    """*prot* if it is known bits with READ, else EINVAL."""
    if prot & ~ALL_PROT or not prot & READ:
        raise HypercallError(Errno.EINVAL, f"bad prot {prot:#x}")
    return prot


def leaf_flags(prot: int, nx_bit: int) -> int:
    """The hardware bits of a present leaf with *prot* (*nx_bit*: 0 where the CPU has no NX)."""
    flags = P
    if prot & WRITE:
        flags |= W
    if prot & USER:
        flags |= U
    if not prot & EXEC:
        flags |= nx_bit
    return flags


def entry_allows(entry: int, err: int) -> bool:
    """Does present leaf *entry* permit the access described by page-fault error code *err*?"""
    if err & PF_WRITE and not entry & W:
        return False
    if err & PF_USER and not entry & U:
        return False
    return not (err & PF_FETCH and entry & NX)


def prot_allows(prot: int, err: int) -> bool:
    """Does a range with *prot* permit the access *err* describes?"""
    if err & PF_WRITE and not prot & WRITE:
        return False
    if err & PF_USER and not prot & USER:
        return False
    return not (err & PF_FETCH and not prot & EXEC)
