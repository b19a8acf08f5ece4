"""A VM's hypercall side without KVM: the real handlers over real guest memory and devices.

The calls layer takes narrow services (:mod:`pyvmm.paravirt.services`), so a test can
build them itself: real :class:`GuestMemory`, a real channel table holding one device of
every kind (console, disk, stream, null sink), real event channels and timers, a real
address-space manager, and vCPUs whose ``kvm_run`` page is a plain ``KvmRun`` structure
(what AS_SWITCH and BLOCK read and write). Only ``KVM_RUN`` itself is missing, so a
started vCPU's thread does nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyvmm.devices.base import ChannelTable
from pyvmm.devices.block import BlockDevice
from pyvmm.devices.console import Console
from pyvmm.devices.null_sink import NullSink
from pyvmm.devices.stream import StreamChannel
from pyvmm.kvm import structs as s
from pyvmm.kvm.constants import SYNC_X86_REGS, SYNC_X86_SREGS
from pyvmm.memory import GuestMemory
from pyvmm.paravirt.abi import Layout
from pyvmm.paravirt.address_spaces import AddressSpaceManager
from pyvmm.paravirt.calls import install_all
from pyvmm.paravirt.dispatcher import Dispatcher
from pyvmm.paravirt.events import EventChannels
from pyvmm.paravirt.services import Services
from pyvmm.paravirt.timers import VcpuTimers
from pyvmm.vcpu import Vcpu, VcpuSet
from pyvmm.x86.paging import FramePool, Pte, identity_map
from pyvmm.x86.tablemem import TableMemory


class FakeVcpuFd:
    """A vCPU handle with a ``kvm_run`` page in host memory and no file descriptor."""

    def __init__(self, vcpu_id: int) -> None:
        self.id = vcpu_id
        self.fd = -1
        self.run = s.KvmRun()
        self.run.kvm_valid_regs = SYNC_X86_REGS | SYNC_X86_SREGS
        self.sync_regs = self.run.s.regs.regs

    def close(self) -> None:
        pass


@dataclass
class ServicesVm:
    services: Services
    dispatcher: Dispatcher
    handles: dict[str, int]  # device kind name -> channel handle

    @property
    def memory(self) -> GuestMemory:
        return self.services.memory

    @property
    def vcpus(self) -> VcpuSet:
        return self.services.vcpus

    @property
    def events(self) -> EventChannels:
        return self.services.events

    def close(self) -> None:
        self.services.timers.stop()
        self.services.channels.close()
        self.services.events.close()
        self.services.address_spaces.close()
        self.services.memory.close()


def build(tmp_dir: str, memory: int = 16 << 20, nr_vcpus: int = 2) -> ServicesVm:
    """The services of a VM with one device of every kind; vCPU 0 is started (the caller)."""
    mem = GuestMemory(
        memory,
        vmm_owned_end=Layout.RESERVED_END,
        guest_shared=(Layout.SHARED_PAGE, Layout.SHARED_PAGE + Layout.PAGE_SIZE),
    )
    pool = FramePool(
        TableMemory(mem, Layout.PAGE_TABLE_POOL, Layout.RESERVED_END), Layout.PAGE_TABLE_POOL, Layout.RESERVED_END
    )
    kernel = identity_map(
        pool.mem, pool, mem.size, low_flags=lambda g: Pte.PRESENT if g else 0, high_flags=Pte.PRESENT | Pte.WRITABLE
    )
    channels = ChannelTable()
    null_out = os.open(os.devnull, os.O_WRONLY)
    null_in = os.open(os.devnull, os.O_RDONLY)
    handles = {"console": channels.add(Console(null_out, in_fd=null_in))}
    disk = os.path.join(tmp_dir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    handles["block"] = channels.add(BlockDevice.open("disk0", disk))
    handles["stream"] = channels.add(StreamChannel.open("link", os.path.join(tmp_dir, "link.sock"), server=True))
    handles["null_sink"] = channels.add(NullSink())
    vcpus = VcpuSet(lambda vcpu: None)
    for i in range(nr_vcpus):
        vcpus.add(Vcpu(i, FakeVcpuFd(i)))
    vcpus[0].start(lambda vcpu: None)  # the caller: a started vCPU, as a real guest's is
    events = EventChannels(mem, channels, vcpus)
    timers = VcpuTimers(events)
    spaces = AddressSpaceManager(mem, pool, kernel, nx=True, reserved_end=Layout.RESERVED_END, vcpus=vcpus)
    services = Services(memory=mem, channels=channels, vcpus=vcpus, events=events, timers=timers, address_spaces=spaces)
    dispatcher = Dispatcher()
    install_all(dispatcher, services)
    return ServicesVm(services, dispatcher, handles)
