"""Handlers for the channel calls beyond send/recv: CHANNEL_FLUSH and CHANNEL_INFO."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import ChannelStat, Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher
from pyvmm.paravirt.hypercalls import check_guest_writable

if TYPE_CHECKING:
    from pyvmm.machine import Machine

_STAT_SIZE = ctypes.sizeof(ChannelStat)


def install_channel_calls(dispatcher: Dispatcher, machine: Machine) -> None:
    """Register CHANNEL_FLUSH and CHANNEL_INFO against *machine*'s memory and channels."""
    mem = machine.memory
    channels = machine.channels

    def flush(vcpu, handle, a1, a2, a3, a4) -> int:
        """0 once what was sent is durable: fsync for a disk; nothing is buffered in the VMM for the others."""
        device = channels.get(handle)
        op = getattr(device, "flush", None)
        if op is not None:
            op()  # raises HypercallError(EIO/ENOSPC) when the host cannot
        return 0

    def info(vcpu, handle, info_gpa, a2, a3, a4) -> int:
        device = channels.get(handle)
        mem.check(info_gpa, _STAT_SIZE)
        check_guest_writable(info_gpa, _STAT_SIZE)
        stat = ChannelStat(kind=int(device.kind), flags=int(device.readiness()), size=getattr(device, "size", 0))
        mem.write(info_gpa, bytes(stat))
        return 0

    dispatcher.register(Hypercall.CHANNEL_FLUSH, flush)
    dispatcher.register(Hypercall.CHANNEL_INFO, info)
