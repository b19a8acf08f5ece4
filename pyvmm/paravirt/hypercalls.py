"""Handlers for the core hypercalls: null, shutdown, send and recv on channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Errno, Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher, GuestExit, HypercallError

if TYPE_CHECKING:
    from pyvmm.machine import Machine

#: Largest transfer one send/recv moves; more is a partial transfer, as with write(2).
MAX_TRANSFER = 16 << 20


class ChannelTable:
    """Channel handles (like fds) to device backends; handle = index."""

    def __init__(self) -> None:
        self.channels: list = []

    def add(self, device) -> int:
        self.channels.append(device)
        return len(self.channels) - 1

    def get(self, handle: int):
        if handle >= len(self.channels):
            raise HypercallError(Errno.EBADF, f"no channel {handle}")
        return self.channels[handle]


def install_core(dispatcher: Dispatcher, machine: Machine) -> None:
    """Register NULL, SHUTDOWN, SEND and RECV against *machine*'s memory and channels."""
    mem = machine.memory
    channels = machine.channels

    def null(vcpu, a0, a1, a2, a3, a4) -> int:
        return 0

    def shutdown(vcpu, code, a1, a2, a3, a4) -> int:
        raise GuestExit(code & 0xFF)

    def _transfer(method: str, handle: int, buf: int, length: int, offset: int) -> int:
        device = channels.get(handle)
        op = getattr(device, method, None)
        if op is None:
            raise HypercallError(Errno.EINVAL, f"channel {handle} does not support {method}")
        mem.check(buf, length)  # the whole range, as write(2)'s access_ok() does
        view = mem.view(buf, min(length, MAX_TRANSFER))
        try:
            return op(view, offset)
        except OSError as e:
            raise HypercallError(Errno.EIO, str(e)) from None
        finally:
            view.release()

    def send(vcpu, handle, buf, length, offset, a4) -> int:
        return _transfer("send", handle, buf, length, offset)

    def recv(vcpu, handle, buf, length, offset, a4) -> int:
        return _transfer("recv", handle, buf, length, offset)

    dispatcher.register(Hypercall.NULL, null)
    dispatcher.register(Hypercall.SHUTDOWN, shutdown)
    dispatcher.register(Hypercall.SEND, send)
    dispatcher.register(Hypercall.RECV, recv)
