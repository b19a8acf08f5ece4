"""SEND, RECV, CHANNEL_FLUSH and CHANNEL_INFO: guest buffers checked, then the device.

The device (a :class:`~pyvmm.devices.base.Channel`) sees a checked view of guest
RAM, never a guest address; its :class:`~pyvmm.devices.base.ChannelError` becomes
``-errno`` in the dispatcher, and any other host ``OSError`` ``-EIO`` here.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import ChannelStat, Errno, Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.devices.base import ChannelTable
    from pyvmm.memory import GuestMemory

#: Largest transfer one send/recv moves; more is a partial transfer, as with write(2).
MAX_TRANSFER = 16 << 20
_STAT_SIZE = ctypes.sizeof(ChannelStat)


def check_guest_writable(mem: GuestMemory, gpa: int, length: int) -> None:
    """``-EFAULT`` for a destination the VMM may not write for the guest
    (:meth:`GuestMemory.guest_writable <pyvmm.memory.GuestMemory.guest_writable>`)."""
    if not mem.guest_writable(gpa, length):
        raise HypercallError(Errno.EFAULT, f"{gpa:#x}: destination in VMM-owned memory")


def install(dispatcher: Dispatcher, memory: GuestMemory, channels: ChannelTable) -> None:
    mem = memory

    def transfer(op, buf: int, length: int, offset: int) -> int:
        """*op* (a device's send or recv) over the checked guest range, at most MAX_TRANSFER of it."""
        view = mem.view(buf, min(length, MAX_TRANSFER))
        try:
            return op(view, offset)
        except OSError as e:
            raise HypercallError(Errno.EIO, str(e)) from None
        finally:
            view.release()

    def send(vcpu, handle, buf, length, offset, a4) -> int:
        device = channels.get(handle)
        mem.check(buf, length)  # the whole range, as write(2)'s access_ok() does
        return transfer(device.send, buf, length, offset)

    def recv(vcpu, handle, buf, length, offset, a4) -> int:
        device = channels.get(handle)
        mem.check(buf, length)
        check_guest_writable(mem, buf, length)
        return transfer(device.recv, buf, length, offset)

    def flush(vcpu, handle, a1, a2, a3, a4) -> int:
        """0 once what was sent is durable: fsync for a disk, written to stdout for the console
        (a bounded wait: -EAGAIN while nobody reads); streams buffer nothing in the VMM."""
        channels.get(handle).flush()  # ChannelError(EIO/ENOSPC/EAGAIN/EPIPE) when it cannot
        return 0

    def info(vcpu, handle, info_gpa, a2, a3, a4) -> int:
        device = channels.get(handle)
        mem.check(info_gpa, _STAT_SIZE)
        check_guest_writable(mem, info_gpa, _STAT_SIZE)
        mem.write_obj(info_gpa, ChannelStat(kind=int(device.kind), flags=int(device.readiness()), size=device.size))
        return 0

    dispatcher.register_all(
        {
            Hypercall.SEND: send,
            Hypercall.RECV: recv,
            Hypercall.CHANNEL_FLUSH: flush,
            Hypercall.CHANNEL_INFO: info,
        }
    )
