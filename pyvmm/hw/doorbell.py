"""The in-kernel NOTIFY path of a ``--hw-api`` VM: a doorbell port wired to each vCPU's upcall.

pyvmm's NOTIFY is a hypercall: an exit to pyvmm, which sets the event bytes and wakes
or kicks the target. Where the VM has KVM's in-kernel LAPIC, the interrupt half can
stay in the kernel: one eventfd per vCPU is both a ``KVM_IOEVENTFD`` (an ``outl`` of
the vCPU's id to :data:`DOORBELL_PORT` signals it, without leaving KVM) and a
``KVM_IRQFD`` whose GSI is routed as an MSI to that vCPU's APIC, fixed delivery of
the upcall vector. KVM links the two inside the kernel: the doorbell write makes the
interrupt pending and wakes the target from ``HLT``, no userspace thread involved.

The event semantics stay those of docs/abi.md section 8: the raiser sets the pending
byte, the selector and the target's ``upcall_pending`` (the stores pyvmm makes for a
NOTIFY, in the same order, all in the guest-writable shared page) and rings only if
``upcall_pending`` was 0. The guest's upcall handler EOIs (a LAPIC-delivered vector).
A guest waiting in ``BLOCK`` (in pyvmm) is not woken by it: the doorbell is for
waiters in ``HLT``. docs/hwapi.md gives the before/after figures.
"""

from __future__ import annotations

import os

from pyvmm.paravirt.abi import UPCALL_VECTOR

DOORBELL_PORT = 0xF6
#: GSIs 0.. are the vCPUs' doorbells (no IOAPIC pins are reserved: see pyvmm.hw.platform).
_MSI_ADDRESS = 0xFEE0_0000  # x86 MSI: destination APIC id in bits 12-19, physical mode


class Doorbells:
    """One doorbell per vCPU id in ``range(nr_vcpus)`` (ids are APIC ids); owns the eventfds."""

    def __init__(self, vm, nr_vcpus: int) -> None:
        self._fds: list[int] = []
        vm.set_gsi_routing({i: (_MSI_ADDRESS | (i & 0xFF) << 12, UPCALL_VECTOR) for i in range(nr_vcpus)})
        try:
            for i in range(nr_vcpus):
                fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                self._fds.append(fd)
                vm.irqfd(fd, i)
                vm.ioeventfd(fd, DOORBELL_PORT, 4, datamatch=i)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
