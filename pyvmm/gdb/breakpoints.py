"""Breakpoint and watchpoint bookkeeping, as pure logic over a small memory interface.

- :class:`SwBreakpoints`: ``int3`` (0xCC) written over the first byte of an
  instruction, the original byte kept to restore it and to hide the ``int3``
  from memory reads;
- :class:`HwSlots`: the four x86 debug-register slots (DR0-DR3) and the DR7
  value that arms them, for ``KVM_GUESTDBG_USE_HW_BP``;
- :class:`SoftWatch`: watchpoints checked by value after every single step,
  for backends whose instruction emulator never raises data breakpoints (PVM
  runs guest kernel code in KVM's emulator, which checks code breakpoints in
  DR7 but not data ones).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

INT3 = b"\xcc"
SLOTS = 4
_DR7_FIXED = 1 << 10  # reads as 1
_DR7_EXACT = 3 << 8  # LE | GE: exact breakpoint matching, what gdb's native x86 code sets


class ByteMemory(Protocol):
    def read(self, gpa: int, n: int) -> bytes: ...
    def write(self, gpa: int, data: bytes) -> None: ...


class BreakpointError(Exception):
    """A breakpoint or watchpoint that cannot be set; the message says why (the stub replies ``E``)."""


@dataclass
class SwBreakpoints:
    """Software breakpoints by guest-virtual address; each knows its guest-physical byte."""

    _by_va: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    def insert(self, mem: ByteMemory, va: int, gpa: int) -> None:
        if va in self._by_va:
            return  # gdb may insert one twice (two breakpoints at one address)
        original = mem.read(gpa, 1)
        mem.write(gpa, INT3)
        self._by_va[va] = (gpa, original)

    def remove(self, mem: ByteMemory, va: int) -> bool:
        entry = self._by_va.pop(va, None)
        if entry is None:
            return False
        gpa, original = entry
        mem.write(gpa, original)
        return True

    def clear(self, mem: ByteMemory) -> None:
        for va in list(self._by_va):
            self.remove(mem, va)

    def __contains__(self, va: int) -> bool:
        return va in self._by_va

    def __len__(self) -> int:
        return len(self._by_va)

    def planted_at(self, gpa: int) -> bool:
        return any(g == gpa for g, _ in self._by_va.values())

    def shadow(self, gpa: int, data: bytes) -> bytes:
        """*data* read at *gpa* with every planted ``int3`` replaced by the byte it covers."""
        out = None
        for g, original in self._by_va.values():
            if gpa <= g < gpa + len(data):
                out = out or bytearray(data)
                out[g - gpa] = original[0]
        return bytes(out) if out is not None else data


class HwKind(enum.IntEnum):
    """DR7 R/W encodings (x86 has no read-only data breakpoint: gdb's ``rwatch`` is refused)."""

    EXECUTE = 0b00
    WRITE = 0b01
    ACCESS = 0b11


_LEN_BITS = {1: 0b00, 2: 0b01, 8: 0b10, 4: 0b11}


@dataclass(frozen=True)
class HwSlot:
    kind: HwKind
    addr: int
    length: int


@dataclass
class HwSlots:
    slots: list[HwSlot | None] = field(default_factory=lambda: [None] * SLOTS)

    def insert(self, kind: HwKind, addr: int, length: int) -> int:
        """Arm a free slot; returns its index. Raises :class:`BreakpointError`."""
        if kind is HwKind.EXECUTE:
            length = 1  # instruction breakpoints are always LEN=00
        elif length not in _LEN_BITS:
            raise BreakpointError(f"a hardware watchpoint covers 1, 2, 4 or 8 bytes, not {length}")
        elif addr % length:
            raise BreakpointError(f"a {length}-byte hardware watchpoint must be {length}-byte aligned")
        slot = HwSlot(kind, addr, length)
        if slot in self.slots:
            return self.slots.index(slot)
        try:
            i = self.slots.index(None)
        except ValueError:
            raise BreakpointError(f"all {SLOTS} debug registers are in use") from None
        self.slots[i] = slot
        return i

    def remove(self, kind: HwKind, addr: int, length: int) -> bool:
        if kind is HwKind.EXECUTE:
            length = 1
        slot = HwSlot(kind, addr, length)
        if slot not in self.slots:
            return False
        self.slots[self.slots.index(slot)] = None
        return True

    def clear(self) -> None:
        self.slots = [None] * SLOTS

    def __len__(self) -> int:
        return sum(s is not None for s in self.slots)

    def dr7(self) -> int:
        value = 0
        for i, slot in enumerate(self.slots):
            if slot is None:
                continue
            value |= 1 << (2 * i)  # Li: enabled (local)
            value |= slot.kind << (16 + 4 * i)
            value |= _LEN_BITS[slot.length] << (18 + 4 * i)
        return value | _DR7_FIXED | (_DR7_EXACT if value else 0)

    def debugregs(self) -> tuple[int, ...]:
        """``kvm_guest_debug.arch.debugreg[0..7]``: DR0-DR3, two unused, DR6 (unused), DR7."""
        addrs = [s.addr if s is not None else 0 for s in self.slots]
        return (*addrs, 0, 0, 0, self.dr7())

    def hit(self, dr6: int) -> HwSlot | None:
        """The slot DR6's B0-B3 bits name (the lowest one, if several)."""
        for i in range(SLOTS):
            if dr6 >> i & 1 and self.slots[i] is not None:
                return self.slots[i]
        return None


@dataclass
class SoftWatch:
    """Watchpoints by value: :meth:`changed` after each step names the first watch whose bytes differ."""

    _watches: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def add(self, addr: int, length: int, current: bytes) -> None:
        self._watches[(addr, length)] = current

    def remove(self, addr: int, length: int) -> bool:
        return self._watches.pop((addr, length), None) is not None

    def clear(self) -> None:
        self._watches.clear()

    def __len__(self) -> int:
        return len(self._watches)

    def changed(self, read) -> int | None:
        """Compare each watch with ``read(addr, length)`` (None: unreadable now, skipped); update
        the snapshot of the one that changed and return its address."""
        for (addr, length), old in self._watches.items():
            now = read(addr, length)
            if now is not None and now != old:
                self._watches[(addr, length)] = now
                return addr
        return None
