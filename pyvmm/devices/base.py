"""The channel contract: what a device behind a guest's channel handle implements.

A channel is what a guest reaches with ``SEND``/``RECV``/``CHANNEL_FLUSH``/
``CHANNEL_INFO`` and, for readiness events, ``EVENT_BIND(CHANNEL)``. Every
device subclasses :class:`Channel`; the hypercall layer
(:mod:`pyvmm.paravirt.calls.channels`) calls only the methods below and maps
a :class:`ChannelError` to the ``-errno`` the guest sees, so a device knows
nothing about hypercalls. :class:`ChannelTable` maps handles to devices.

Contract for every method: called on a vCPU's thread (``send``/``recv``/
``flush``/``readiness``) with no pyvmm lock held; ``close`` on the main thread
once every vCPU has stopped. A host failure the guest should see as a specific
errno is a :class:`ChannelError`; any other ``OSError`` becomes ``-EIO``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyvmm.paravirt.abi import MAX_CHANNELS, ChannelFlag, ChannelKind, Errno, Feature, FileStat

#: Handles CHANNEL_OPEN returns start here (the boot-info table's never reach it), at most this many.
FIRST_OPENED_HANDLE = MAX_CHANNELS
MAX_OPENED = 1024


class DeviceError(Exception):
    """Root of the device layer's errors. Raised as such by ``open``: the host refused a
    channel's backing file or socket, and the message is the one line the user sees."""


class ChannelError(DeviceError):
    """A channel operation failed with *errno*: the guest gets ``-errno``."""

    def __init__(self, err: Errno, why: str = "") -> None:
        super().__init__(f"{err.name}: {why}" if why else err.name)
        self.errno = err


class Channel:
    """Base class of every channel device. Subclasses set :attr:`kind` and :attr:`name`
    and override what they support; the defaults are those of a channel that
    supports nothing (``-EINVAL``), is always writable and connected, and
    raises no readiness events."""

    kind: ChannelKind
    name: str
    #: Bytes addressable by offset (a disk's size); 0 for the unaddressed kinds.
    size: int = 0
    #: Whether ``EVENT_BIND(CHANNEL)`` may bind this channel's readiness to a port.
    has_readiness_events: bool = False
    #: Set by the event layer while bound: call it (from any thread) whenever
    #: :meth:`readiness` may have changed. Only where :attr:`has_readiness_events`.
    on_ready: Callable[[], None] | None = None

    def send(self, data: memoryview, offset: int) -> int:
        """Consume up to ``len(data)`` bytes at *offset*; returns how many (partial like
        write(2)). Raises :class:`ChannelError` (``-EAGAIN`` when it would block)."""
        raise ChannelError(Errno.EINVAL, f"channel {self.name} does not support send")

    def recv(self, buf: memoryview, offset: int) -> int:
        """Fill up to ``len(buf)`` bytes from *offset*; returns how many, 0 at end of input.
        Raises :class:`ChannelError` (``-EAGAIN`` when nothing is there yet)."""
        raise ChannelError(Errno.EINVAL, f"channel {self.name} does not support recv")

    def flush(self) -> None:
        """Return once what was sent is durable. Nothing to do unless the device buffers."""

    def readiness(self) -> ChannelFlag:
        """The ``ChannelFlag`` bits that hold now (``CHANNEL_INFO``)."""
        return ChannelFlag.WRITABLE | ChannelFlag.CONNECTED

    def stat(self) -> FileStat:
        """``FILE_STAT``: the host file's metadata. Raises :class:`ChannelError` (``EINVAL``:
        not a file)."""
        raise ChannelError(Errno.EINVAL, f"channel {self.name} is not a file")

    def close(self) -> None:
        """Release the device's host resources; idempotent."""


class ChannelTable:
    """Channel handles (like fds) to devices; handle = index, handle 0 is the console."""

    def __init__(self) -> None:
        self._devices: list[Channel] = []
        #: Handles CHANNEL_OPEN gave out (ABI 1.2), from FIRST_OPENED_HANDLE; closed by CHANNEL_CLOSE.
        self._opened: dict[int, Channel] = {}

    def add(self, device: Channel) -> int:
        """Append *device*; returns its handle."""
        self._devices.append(device)
        return len(self._devices) - 1

    def get(self, handle: int) -> Channel:
        """The device behind *handle*. Raises ``ChannelError(EBADF)``."""
        if handle < len(self._devices):
            return self._devices[handle]
        device = self._opened.get(handle)
        if device is None:
            raise ChannelError(Errno.EBADF, f"no channel {handle}")
        return device

    def open(self, device: Channel) -> int:
        """Give *device* (a file a share opened) the lowest free opened handle, as open(2) does.
        Raises ``ChannelError(EMFILE)`` (the device is closed) when MAX_OPENED are open."""
        if len(self._opened) >= MAX_OPENED:
            device.close()
            raise ChannelError(Errno.EMFILE, f"{MAX_OPENED} handles open")
        handle = FIRST_OPENED_HANDLE
        while handle in self._opened:
            handle += 1
        self._opened[handle] = device
        return handle

    def close_opened(self, handle: int) -> None:
        """CHANNEL_CLOSE: release an opened handle. Raises ``ChannelError(EBADF)`` for any other."""
        device = self._opened.pop(handle, None)
        if device is None:
            raise ChannelError(Errno.EBADF, f"channel {handle} was not opened with CHANNEL_OPEN")
        device.close()

    def __iter__(self):
        return iter(self._devices)

    def __len__(self) -> int:
        return len(self._devices)

    def features(self) -> Feature:
        """The boot-info feature bits these channels offer."""
        kinds = {device.kind for device in self._devices}
        features = Feature.CONSOLE
        if ChannelKind.BLOCK in kinds:
            features |= Feature.BLOCK_DEVICE
        if ChannelKind.STREAM in kinds:
            features |= Feature.INTER_VM
        if ChannelKind.SHARE in kinds:
            features |= Feature.SHARE
        return features

    def close(self) -> None:
        """Close every device, last first (flushes disks, closes sockets, stops their threads)."""
        for device in list(self._opened.values()):
            device.close()
        self._opened.clear()
        for device in reversed(self._devices):
            device.close()
