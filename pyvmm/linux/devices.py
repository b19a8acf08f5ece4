"""The channels ``pyvmm exec`` adds for the guest kernel's exec program, found by name:
``exec`` (the manifest; it takes the system-call counters back), ``program`` (the ELF file,
read at offsets), ``stderr`` (a second console on the host's fd 2) and ``share``."""

from __future__ import annotations

import ctypes

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.paravirt.abi import EXEC_MAGIC, ChannelFlag, ChannelKind, Errno, ExecStats


class ExecBlob(Channel):
    """The manifest, read at offsets like a file; one SEND at offset 0 of ``struct pvm_exec_stats``."""

    kind = ChannelKind.FILE
    name = "exec"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.stats: ExecStats | None = None

    def recv(self, buf: memoryview, offset: int) -> int:
        chunk = self.data[offset : offset + len(buf)]
        buf[: len(chunk)] = chunk
        return len(chunk)

    def send(self, data: memoryview, offset: int) -> int:
        if offset != 0 or len(data) != ctypes.sizeof(ExecStats):
            raise ChannelError(Errno.EINVAL, "the exec channel takes one struct pvm_exec_stats")
        stats = ExecStats.from_buffer_copy(data)
        if stats.magic == EXEC_MAGIC:
            self.stats = stats
        return len(data)

    def readiness(self) -> ChannelFlag:
        return ChannelFlag.READABLE | ChannelFlag.WRITABLE | ChannelFlag.CONNECTED
