"""A KVM VM handle (rust-vmm's ``VmFd``): memory slots, vCPUs, ioeventfds."""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

from pyvmm.kvm import structs as s
from pyvmm.kvm._fd import IoctlFd
from pyvmm.kvm.constants import (
    IOEVENTFD_FLAG_DATAMATCH,
    IOEVENTFD_FLAG_DEASSIGN,
    IOEVENTFD_FLAG_PIO,
    Ioctl,
)

if TYPE_CHECKING:
    from pyvmm.kvm.system import Kvm
    from pyvmm.kvm.vcpu import Vcpu


class Vm(IoctlFd):
    """A VM file descriptor. Created by :meth:`Kvm.create_vm`."""

    def __init__(self, kvm: Kvm, fd: int) -> None:
        self.kvm = kvm
        self.fd = fd

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, size: int, host_addr: int, flags: int = 0
    ) -> None:
        """Map host memory at *host_addr* into the guest at *guest_phys_addr*.

        A *size* of 0 deletes the slot (do that before unmapping host memory).
        """
        region = s.KvmUserspaceMemoryRegion(slot, flags, guest_phys_addr, size, host_addr)
        self._ioctl_struct(Ioctl.SET_USER_MEMORY_REGION, region)

    def set_tss_addr(self, addr: int) -> None:
        """Three pages KVM may use for real-mode emulation on Intel (outside guest RAM)."""
        self._ioctl(Ioctl.SET_TSS_ADDR, addr)

    def set_identity_map_addr(self, addr: int) -> None:
        self._ioctl_struct(Ioctl.SET_IDENTITY_MAP_ADDR, ctypes.c_uint64(addr))

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

    def create_vcpu(self, vcpu_id: int, mmap_size: int | None = None) -> Vcpu:
        """Create vCPU *vcpu_id* and map its ``kvm_run`` page."""
        from pyvmm.kvm.vcpu import Vcpu

        fd = self._ioctl(Ioctl.CREATE_VCPU, vcpu_id)
        try:
            return Vcpu(self, fd, vcpu_id, mmap_size or self.kvm.vcpu_mmap_size())
        except BaseException:
            os.close(fd)
            raise
