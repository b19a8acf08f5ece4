"""The MMIO bus of a ``--hw-api`` VM: ``KVM_EXIT_MMIO`` exits routed to emulated devices.

An access outside guest RAM that no device window claims stays what it is in the
default VM: a crash report (:func:`pyvmm.loop.handle_slow_exit`).
"""

from __future__ import annotations

from typing import Protocol


class MmioDevice(Protocol):
    """A device window: *offset* from its base, *size* 1, 2, 4 or 8 bytes."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


class MmioBus:
    def __init__(self) -> None:
        self._windows: list[tuple[int, int, MmioDevice]] = []
        self.exits = 0

    def add(self, base: int, length: int, device: MmioDevice) -> None:
        for b, n, _ in self._windows:
            if base < b + n and b < base + length:
                raise ValueError(f"MMIO {base:#x}+{length:#x} overlaps {b:#x}+{n:#x}")
        self._windows.append((base, length, device))

    def handle(self, run) -> bool:
        """Serve the MMIO exit in *run*; False if no window has the address."""
        mmio = run.exit.mmio
        gpa, size = mmio.phys_addr, mmio.len
        if size not in (1, 2, 4, 8):
            return False
        for base, length, dev in self._windows:
            if base <= gpa and gpa + size <= base + length:
                device = dev
                break
        else:
            return False
        self.exits += 1
        if mmio.is_write:
            device.write(gpa - base, size, int.from_bytes(bytes(mmio.data)[:size], "little"))
        else:
            value = device.read(gpa - base, size) & ((1 << (8 * size)) - 1)
            data = value.to_bytes(8, "little")
            for i in range(8):
                mmio.data[i] = data[i]
        return True
