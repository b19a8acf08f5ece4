"""Handlers for the core hypercalls: null, shutdown, send and recv on channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import ChannelKind, Errno, Feature, Hypercall, Layout
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

    def features(self) -> Feature:
        """The boot-info feature bits these channels offer."""
        kinds = {device.kind for device in self.channels}
        features = Feature.CONSOLE
        if ChannelKind.BLOCK in kinds:
            features |= Feature.BLOCK_DEVICE
        if ChannelKind.STREAM in kinds:
            features |= Feature.INTER_VM
        return features

    def close(self) -> None:
        """Close every device (flushes disks, closes sockets, stops their threads)."""
        for device in reversed(self.channels):
            close = getattr(device, "close", None)
            if close is not None:
                close()


def check_guest_writable(gpa: int, length: int) -> None:
    """Refuse (``-EFAULT``) a destination in the VMM-owned pages below ``RESERVED_END``
    (boot info, GDT, page tables), the shared page excepted: the VMM must not write
    there on the guest's behalf what the guest may not write itself."""
    if length and gpa < Layout.RESERVED_END:
        shared = Layout.SHARED_PAGE
        if not (gpa >= shared and gpa + length <= shared + Layout.PAGE_SIZE):
            raise HypercallError(Errno.EFAULT, f"{gpa:#x}: destination in VMM-owned memory")


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
        if method == "recv":
            check_guest_writable(buf, length)
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
