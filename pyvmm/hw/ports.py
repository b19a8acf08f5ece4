"""The port-I/O bus of a ``--hw-api`` VM: ``KVM_EXIT_IO`` exits routed to emulated devices.

The run loop hands every port-I/O exit that is not a hypercall here
(:func:`pyvmm.loop.handle_slow_exit`); a port no device claims is still the crash
it is in the default VM. String I/O (``rep outsb``) arrives as *count* items in the
``kvm_run`` page; each goes to the device in order.
"""

from __future__ import annotations

from typing import Protocol

from pyvmm.kvm.constants import EXIT_IO_OUT


class PortDevice(Protocol):
    """A device on the bus: *offset* is from its base; *size* is 1, 2 or 4 bytes."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


class PortBus:
    """Port ranges and the devices behind them (no overlaps)."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int, PortDevice]] = []
        self.exits = 0

    def add(self, base: int, length: int, device: PortDevice) -> None:
        for b, n, _ in self._ranges:
            if base < b + n and b < base + length:
                raise ValueError(f"ports {base:#x}+{length} overlap {b:#x}+{n}")
        self._ranges.append((base, length, device))

    def handle(self, run, run_bytes: memoryview) -> bool:
        """Serve the I/O exit in *run*; False if no device has the port (the caller crashes the VM)."""
        io = run.exit.io
        port = io.port
        for base, length, dev in self._ranges:
            if base <= port < base + length:
                device = dev
                break
        else:
            return False
        size, count, data = io.size, io.count, io.data_offset
        # KVM places the data inside the kvm_run mapping; checked anyway, never trusted.
        if size not in (1, 2, 4) or count < 1 or data + size * count > len(run_bytes):
            return False
        self.exits += 1
        offset = port - base
        if io.direction == EXIT_IO_OUT:
            for i in range(count):
                at = data + i * size
                device.write(offset, size, int.from_bytes(run_bytes[at : at + size], "little"))
        else:
            for i in range(count):
                at = data + i * size
                value = device.read(offset, size) & ((1 << (8 * size)) - 1)
                run_bytes[at : at + size] = value.to_bytes(size, "little")
        return True
