"""A KVM VM handle (rust-vmm's ``VmFd``): memory slots, vCPUs, ioeventfds."""

from __future__ import annotations

import os

from pyvmm.kvm import structs as s
from pyvmm.kvm._fd import IoctlFd
from pyvmm.kvm.constants import (
    IOEVENTFD_FLAG_DATAMATCH,
    IOEVENTFD_FLAG_DEASSIGN,
    IOEVENTFD_FLAG_PIO,
    IRQ_ROUTING_MSI,
    Ioctl,
)
from pyvmm.kvm.vcpu import VcpuFd


class Vm(IoctlFd):
    """A VM file descriptor. Created by :meth:`Kvm.create_vm`; holds no link to it, only
    the one scalar it needs from it: the size of a vCPU's ``kvm_run`` mapping."""

    def __init__(self, fd: int, vcpu_mmap_size: int) -> None:
        self.fd = fd
        self.vcpu_mmap_size = vcpu_mmap_size

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, size: int, host_addr: int, flags: int = 0
    ) -> None:
        """Map host memory at *host_addr* into the guest at *guest_phys_addr*.

        A *size* of 0 deletes the slot (do that before unmapping host memory).
        """
        region = s.KvmUserspaceMemoryRegion(slot, flags, guest_phys_addr, size, host_addr)
        self._ioctl_struct(Ioctl.SET_USER_MEMORY_REGION, region)

    def get_dirty_log(self, slot: int, bitmap) -> None:
        """``KVM_GET_DIRTY_LOG``: fill *bitmap* (a ctypes buffer, one bit per page of the
        slot, rounded up to 64 bits) with the pages the guest wrote since the last call,
        and clear KVM's copy. The slot needs ``MEM_LOG_DIRTY_PAGES``."""
        import ctypes

        self._ioctl_struct(Ioctl.GET_DIRTY_LOG, s.KvmDirtyLog(slot, 0, ctypes.addressof(bitmap)))

    def set_tss_addr(self, addr: int) -> None:
        """Three pages KVM may use for real-mode emulation on Intel (outside guest RAM)."""
        self._ioctl(Ioctl.SET_TSS_ADDR, addr)

    def ioeventfd(
        self,
        fd: int,
        addr: int,
        length: int,
        *,
        pio: bool = True,
        datamatch: int | None = None,
        deassign: bool = False,
    ) -> None:
        """Signal eventfd *fd* when the guest writes *length* bytes at port/MMIO *addr*.

        The write completes in the kernel: no exit reaches userspace.
        """
        flags = (IOEVENTFD_FLAG_PIO if pio else 0) | (IOEVENTFD_FLAG_DEASSIGN if deassign else 0)
        if datamatch is not None:
            flags |= IOEVENTFD_FLAG_DATAMATCH
        req = s.KvmIoeventfd(datamatch=datamatch or 0, addr=addr, len=length, fd=fd, flags=flags)
        self._ioctl_struct(Ioctl.IOEVENTFD, req)

    def enable_cap(self, cap: int, *args: int) -> None:
        """``KVM_ENABLE_CAP`` on the VM (e.g. ``SPLIT_IRQCHIP``, before any vCPU exists)."""
        req = s.KvmEnableCap(cap=cap)
        for i, value in enumerate(args[:4]):
            req.args[i] = value
        self._ioctl_struct(Ioctl.ENABLE_CAP, req)

    def irqfd(self, fd: int, gsi: int, *, deassign: bool = False) -> None:
        """``KVM_IRQFD``: a write to eventfd *fd* raises *gsi* inside the kernel (an
        in-kernel irqchip is needed; EINVAL without)."""
        self._ioctl_struct(Ioctl.IRQFD, s.KvmIrqfd(fd=fd, gsi=gsi, flags=1 if deassign else 0))

    def set_gsi_routing(self, msi_routes: dict[int, tuple[int, int]]) -> None:
        """``KVM_SET_GSI_ROUTING``: the whole table, one MSI entry per GSI
        (``gsi: (address, data)``); replaces what was there."""
        buf = s.irq_routing_type(len(msi_routes))()
        buf.nr = len(msi_routes)
        for i, (gsi, (address, data)) in enumerate(sorted(msi_routes.items())):
            entry = buf.entries[i]
            entry.gsi, entry.type = gsi, IRQ_ROUTING_MSI
            entry.u.msi.address_lo, entry.u.msi.address_hi = address & 0xFFFF_FFFF, address >> 32
            entry.u.msi.data = data
        self._ioctl_struct(Ioctl.SET_GSI_ROUTING, buf)

    def create_vcpu(self, vcpu_id: int) -> VcpuFd:
        """Create vCPU *vcpu_id* and map its ``kvm_run`` page."""
        fd = self._ioctl(Ioctl.CREATE_VCPU, vcpu_id)
        try:
            return VcpuFd(fd, vcpu_id, self.vcpu_mmap_size)
        except BaseException:
            os.close(fd)
            raise
