"""Assembling a ``--hw-api`` VM's hardware: the in-kernel LAPIC, the UART, the port bus.

The order KVM imposes: ``KVM_ENABLE_CAP(SPLIT_IRQCHIP)`` before the first vCPU exists;
then every vCPU is made runnable. With an in-kernel LAPIC KVM creates the vCPUs
other than the BSP in ``KVM_MP_STATE_UNINITIALIZED`` (waiting for INIT/SIPI, as an
AP on a PC does); pyvmm starts secondaries with ``VCPU_UP`` in long mode instead,
so each is set ``RUNNABLE`` explicitly before its first ``KVM_RUN``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from pyvmm.hw.doorbell import Doorbells
from pyvmm.hw.mmio import MmioBus
from pyvmm.hw.ports import PortBus
from pyvmm.hw.uart import COM1_BASE, REGISTERS, Uart16550
from pyvmm.hw.virtio_blk import VIRTIO_MMIO_BASE, WINDOW, VirtioMmioBlock
from pyvmm.kvm import Cap
from pyvmm.kvm.constants import MP_STATE_RUNNABLE
from pyvmm.kvm.structs import KvmLapicState, KvmMpState

#: What the mode needs from KVM, with the name the one-line refusal gives.
NEEDED = (
    (Cap.SPLIT_IRQCHIP, "an in-kernel local APIC (KVM_CAP_SPLIT_IRQCHIP)"),
    (Cap.TSC_DEADLINE_TIMER, "the LAPIC's TSC-deadline timer (KVM_CAP_TSC_DEADLINE_TIMER)"),
)
#: Pins reserved for a userspace IOAPIC: none, there is no IOAPIC (MSI routes only).
_IOAPIC_PINS = 0


class HwApiError(Exception):
    """This backend cannot give a ``--hw-api`` VM what it needs; the message is one line."""


def check_backend(check_extension: Callable[[int], int]) -> None:
    """Raise :class:`HwApiError` naming the first capability KVM lacks."""
    for cap, what in NEEDED:
        if not check_extension(cap):
            raise HwApiError(f"--hw-api: this KVM backend has no {what}; the hardware-API mode cannot run here")


class HwPlatform:
    """The hardware of one ``--hw-api`` VM. Build it on the VM before any vCPU exists."""

    def __init__(
        self,
        vm,
        console_send: Callable[[bytes], int],
        console_ready: Callable[[int], bool],
        memory,
        nr_vcpus: int,
        disk=None,
    ) -> None:
        vm.enable_cap(Cap.SPLIT_IRQCHIP, _IOAPIC_PINS)
        #: The in-kernel NOTIFY path (pyvmm.hw.doorbell): an ioeventfd per vCPU that is its irqfd.
        self.doorbells = Doorbells(vm, nr_vcpus)
        self.uart = Uart16550(console_send, console_ready)
        self.ports = PortBus()
        self.ports.add(COM1_BASE, REGISTERS, self.uart)
        #: virtio-mmio block at 3 GiB, backed by *disk* (the first --disk), or "no device".
        self.virtio = VirtioMmioBlock(memory, disk)
        self.mmio = MmioBus()
        self.mmio.add(VIRTIO_MMIO_BASE, WINDOW, self.virtio)

    def close(self) -> None:
        self.doorbells.close()

    @staticmethod
    def map_windows(tables, flags: int) -> None:
        """Map the device window into the kernel's identity map (the guest never writes a PTE)."""
        tables.map_page(VIRTIO_MMIO_BASE, VIRTIO_MMIO_BASE, flags)

    @staticmethod
    def setup_vcpu(fd) -> None:
        """Make *fd* runnable (see the module docstring); before its first ``KVM_RUN``."""
        fd.set_mp_state(KvmMpState(MP_STATE_RUNNABLE))

    def state_bytes(self, nr_vcpus: int) -> dict[str, int]:
        """What a snapshot must save for this hardware, in bytes, per device: each vCPU's
        ``KVM_GET_LAPIC`` page and the UART's registers (``pyvmm bench --hw-api``)."""
        return {
            "lapic": nr_vcpus * ctypes.sizeof(KvmLapicState),
            "uart": len(self.uart.state().pack()),
            "virtio_blk": self.virtio.state_bytes(),
        }
