"""A stream channel whose peer is gone: what a restored VM's unreattached streams become.

A snapshot cannot carry a socket's other end. Unless ``pyvmm restore --channel``
names a new one, the stream keeps its handle and name, and reports what a stream
reports once its peer went away (docs/abi.md "Stream"): ``RECV`` ``-ECONNRESET``,
``SEND`` ``-EPIPE``, ``CHANNEL_INFO`` ``CLOSED | READABLE | WRITABLE``.
"""

from __future__ import annotations

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno


class ResetStream(Channel):
    kind = ChannelKind.STREAM
    has_readiness_events = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_ready = None

    def send(self, data: memoryview, offset: int) -> int:
        if offset:
            raise ChannelError(Errno.EINVAL, "offset must be 0 on a stream")
        raise ChannelError(Errno.EPIPE, f"{self.name}: the peer is gone (restored from a snapshot)")

    def recv(self, buf: memoryview, offset: int) -> int:
        if offset:
            raise ChannelError(Errno.EINVAL, "offset must be 0 on a stream")
        raise ChannelError(Errno.ECONNRESET, f"{self.name}: the peer is gone (restored from a snapshot)")

    def readiness(self) -> ChannelFlag:
        return ChannelFlag.CLOSED | ChannelFlag.READABLE | ChannelFlag.WRITABLE
