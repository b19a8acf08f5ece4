"""The null-sink channel (``ChannelKind.NULL_SINK``): sends are discarded, like writes to /dev/null.

Present only when ``MachineConfig.null_sink`` asks for it (``pyvmm bench``):
it measures the cost of a ``SEND`` itself, the checked guest range and the
view of it included, with no device work behind it. Like /dev/null it does
not read the data.
"""

from __future__ import annotations

from pyvmm.devices.base import Channel
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind


class NullSink(Channel):
    kind = ChannelKind.NULL_SINK

    def __init__(self, name: str = "null") -> None:
        self.name = name
        self.sends = 0
        self.bytes_in = 0

    def send(self, data: memoryview, offset: int) -> int:
        n = len(data)
        self.sends += 1
        self.bytes_in += n
        return n

    def recv(self, data: memoryview, offset: int) -> int:
        return 0  # end of file, as reading /dev/null

    def readiness(self) -> ChannelFlag:
        # As poll(2) on /dev/null: a read returns at once (end of file), a write never blocks.
        return ChannelFlag.READABLE | ChannelFlag.WRITABLE | ChannelFlag.CONNECTED
