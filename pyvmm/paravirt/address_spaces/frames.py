"""Who holds each frame a leaf maps: donated frames and their refcounts, and COW shares.

Two kinds of frame can sit in a user leaf. The guest's own RAM, mapped with AS_MAP
(never below ``RESERVED_END``, never donated), and *donated* frames: RAM the kernel
handed over with AS_DONATE, which the VMM owns from then on and hands out for
demand-zero, copy-on-write and pager pages (leaf bit ``VMM_FRAME``). Either kind may be
shared copy-on-write after AS_CLONE (leaf bit ``COW``), counted here per frame.

Bounded: the donated ranges are kept sorted and joined (at most ``MAX_DONATIONS``
disjoint ones), the free list and refcounts hold at most one entry per donated page.
"""

from __future__ import annotations

from bisect import bisect_right

from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import Errno
from pyvmm.paravirt.address_spaces.policy import COW, MAX_DONATIONS, SOFT_WRITE, VMM_FRAME, W
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.x86.paging import ADDR_MASK, PAGE_4K


class DataFrames:
    """Guest RAM donated by the kernel (AS_DONATE): the frames demand paging hands out."""

    def __init__(self, memory: GuestMemory, reserved_end: int) -> None:
        self.memory = memory
        self.reserved_end = reserved_end
        self.ranges: list[tuple[int, int]] = []  # sorted, disjoint, non-touching
        self.free: list[int] = []
        self.refs: dict[int, int] = {}  # frame -> leaves mapping it
        self.total = 0
        self._bounds: tuple[int, ...] | None = None

    def vmm_owned(self, gpa: int, length: int) -> bool:
        """Does ``[gpa, gpa+length)`` touch a page the VMM owns (anything below
        ``RESERVED_END``, or a donated frame)? The one ownership test of the address-space
        calls: such pages are never mapped for the guest, donated again, or written with
        a batch's results. Each caller picks the errno docs/abi.md gives."""
        if gpa < self.reserved_end:
            return True
        i = bisect_right(self.ranges, (gpa, 1 << 64)) - 1
        if i >= 0 and self.ranges[i][1] > gpa:
            return True
        return i + 1 < len(self.ranges) and self.ranges[i + 1][0] < gpa + length

    def guest_frame_bounds(self) -> tuple[int, ...]:
        """The guest's own RAM as sorted bounds ``[b0, b1), [b2, b3), ...``
        (for :func:`pyvmm.x86.lanes.all_within`): above the VMM's low pages, less the
        donated ranges."""
        if self._bounds is None:
            bounds = [self.reserved_end]
            for start, stop in self.ranges:
                bounds += (start, stop)
            bounds.append(self.memory.size)
            self._bounds = tuple(bounds)
        return self._bounds

    def donate(self, gpa: int, length: int) -> None:
        """Take ``[gpa, gpa+length)`` (checked by the caller: whole pages of RAM, not owned)."""
        end = gpa + length
        merged = sorted([*self.ranges, (gpa, end)])
        joined: list[tuple[int, int]] = []
        for start, stop in merged:
            if joined and joined[-1][1] == start:
                joined[-1] = (joined[-1][0], stop)
            else:
                joined.append((start, stop))
        if len(joined) > MAX_DONATIONS:
            raise HypercallError(Errno.ENOSPC, f"more than {MAX_DONATIONS} disjoint donated ranges")
        self.ranges = joined
        self._bounds = None
        # Popped from the end: hand out the lowest frames first.
        self.free.extend(range(end - PAGE_4K, gpa - 1, -PAGE_4K))
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

    def export_state(self) -> dict:
        return {
            "ranges": self.ranges,
            "free": self.free,
            "refs": {str(f): n for f, n in self.refs.items()},
            "total": self.total,
        }

    def import_state(self, state: dict) -> None:
        self.ranges = sorted((int(a), int(b)) for a, b in state["ranges"])
        self.free = [int(f) for f in state["free"]]
        self.refs = {int(f): int(n) for f, n in state["refs"].items()}
        self.total = int(state["total"])
        self._bounds = None


class FrameRefs:
    """The references leaves hold: donated-frame refcounts and COW share counts."""

    def __init__(self, memory: GuestMemory, reserved_end: int) -> None:
        self.data = DataFrames(memory, reserved_end)
        self.cow: dict[int, int] = {}  # frame -> COW leaves sharing it

    def release(self, entry: int) -> None:
        """Drop the references present leaf *entry* held (its COW share, its donated frame)."""
        frame = entry & ADDR_MASK
        if entry & COW:
            n = self.cow[frame] - 1
            if n:
                self.cow[frame] = n
            else:
                del self.cow[frame]
        if entry & VMM_FRAME:
            self.data.unref(frame)

    def share(self, entry: int) -> int:
        """Count one more leaf sharing present leaf *entry*'s frame after a clone; returns the
        entry both leaves get (COW, and read-only until copied if it was writable)."""
        frame = entry & ADDR_MASK
        if entry & COW:
            self.cow[frame] += 1
            shared = entry
        else:
            self.cow[frame] = self.cow.get(frame, 0) + 2
            shared = entry | COW
            if entry & W:
                shared = (shared & ~W) | SOFT_WRITE
        if entry & VMM_FRAME:
            self.data.ref(frame)
        return shared

    def sole_sharer(self, entry: int) -> bool:
        """Is the COW leaf *entry* the last one holding its frame (it may be made writable in place)?"""
        frame = entry & ADDR_MASK
        return self.cow[frame] == 1 and (not entry & VMM_FRAME or self.data.refs[frame] == 1)

    def unshare_last(self, entry: int) -> None:
        """The last sharer keeps the frame: drop its COW count (the donated ref stays)."""
        del self.cow[entry & ADDR_MASK]
