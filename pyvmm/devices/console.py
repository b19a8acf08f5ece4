"""The console channel: guest sends go to a host file descriptor (stdout by default)
through a bounded buffer and a writer thread; guest receives read the host's stdin
without ever blocking the vCPU."""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Callable

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.devices.outbuf import FLUSH_WAIT_S, OutputBuffer
from pyvmm.devices.watch import POLLIN, Watcher
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno
from pyvmm.paravirt.services import ThreadStartError

_INPUT = select.POLLIN | select.POLLHUP | select.POLLERR
_CONNECTED = int(ChannelFlag.CONNECTED)


def _output_error(e: OSError) -> ChannelError:
    """The writer's lasting failure as the guest sees it: -EPIPE when the reader went away."""
    return ChannelError(Errno.EPIPE if e.errno == errno.EPIPE else Errno.EIO, str(e))


class Console(Channel):
    """Writes guest output to *out_fd* as the guest runs, never blocking a vCPU; reads *in_fd*.

    Output goes through an :class:`~pyvmm.devices.outbuf.OutputBuffer` (256 KiB):
    when *out_fd*'s reader stops reading, SEND becomes partial, then ``-EAGAIN``,
    and the console's port is raised when room appears again.

    stdin is never switched to non-blocking mode (the terminal's file description
    is shared with the shell); a zero-timeout ``poll`` decides instead, and a
    thread watches it only after a RECV has returned ``-EAGAIN`` (see
    :mod:`pyvmm.devices.watch`).

    """

    kind = ChannelKind.CONSOLE
    has_readiness_events = True

    def __init__(self, out_fd: int = 1, name: str = "console", in_fd: int = 0) -> None:
        self.out_fd = out_fd
        self.in_fd = in_fd
        self.name = name
        self.bytes_out = 0
        #: Called (from the stdin watcher or the output writer thread) when readiness may have changed.
        self.on_ready: Callable[[], None] | None = None
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._out = OutputBuffer(out_fd, on_space=self._ready_changed)

    def send(self, data: memoryview, offset: int) -> int:
        """Queue what fits of *data* for the host fd; the count, ``-EAGAIN`` when nothing fits."""
        if offset:
            raise ChannelError(Errno.EINVAL, "the console has no offsets")
        if not len(data):
            return 0
        try:
            # Started by the first SEND, not at build: a guest that never prints costs no thread.
            self._out.start()
        except RuntimeError as e:  # -ENOMEM: a later SEND tries again
            raise ThreadStartError(f"cannot start the console's output thread ({e})") from None
        try:
            n = self._out.offer(data)
        except OSError as e:
            raise _output_error(e) from None
        if n == 0:
            raise ChannelError(Errno.EAGAIN, "console output is not being read")
        self.bytes_out += n
        return n

    def send_bytes(self, data: bytes) -> int:
        """:meth:`send` for a device in pyvmm (the ``--hw-api`` UART): the count taken,
        0 when nothing fits or output has failed (the UART reports it as not ready)."""
        try:
            return self.send(memoryview(data), 0)
        except (ChannelError, ThreadStartError):
            return 0

    def can_send(self, n: int = 1) -> bool:
        """Whether *n* more bytes fit (the UART's THRE bit); cheap: no poll of stdin."""
        out = self._out
        return out.capacity - out.pending >= n or bool(out.error)

    def flush(self) -> None:
        """Wait (at most ``FLUSH_WAIT_S``) until everything sent is written to the host fd."""
        if not self._out.wait_drained(FLUSH_WAIT_S):
            raise ChannelError(Errno.EAGAIN, "console output is not being read")
        if self._out.error:
            raise _output_error(OSError(self._out.error, os.strerror(self._out.error)))

    def recv(self, buf: memoryview, offset: int) -> int:
        """What stdin has now: a byte count, 0 at end of input, ``-EAGAIN`` when nothing is there yet."""
        if offset:
            raise ChannelError(Errno.EINVAL, "the console has no offsets")
        if not len(buf):
            return 0
        revents = self._poll_input()
        if revents & select.POLLNVAL:
            return 0  # no stdin at all reads as end of input
        if not revents:
            self._watch()
            raise ChannelError(Errno.EAGAIN)
        try:
            return os.readv(self.in_fd, [buf])
        except BlockingIOError:
            self._watch()
            raise ChannelError(Errno.EAGAIN) from None

    def readiness(self) -> int:
        flags = _CONNECTED | (int(ChannelFlag.READABLE) if self._poll_input() else 0)
        return flags | (int(ChannelFlag.WRITABLE) if self._out.has_space() else 0)

    def _poll_input(self) -> int:
        poller = select.poll()
        poller.register(self.in_fd, _INPUT)
        for _, ev in poller.poll(0):
            return ev
        return 0

    def _watch(self) -> None:
        """Arm the stdin watcher, starting its thread the first time a RECV has to wait."""
        with self._lock:
            if self._watcher is None:
                watcher = Watcher(self._ready_changed)
                thread = threading.Thread(target=watcher.loop, args=(self.in_fd,), name="console-stdin", daemon=True)
                try:
                    thread.start()
                except RuntimeError as e:  # RECV fails with -ENOMEM; a later one tries again
                    watcher.release()
                    raise ThreadStartError(f"cannot start the console's stdin thread ({e})") from None
                self._watcher, self._thread = watcher, thread
        self._watcher.arm(POLLIN)

    def _ready_changed(self) -> None:
        callback = self.on_ready
        if callback is not None:
            callback()

    def finish_output(self) -> bool:
        """Once no vCPU runs: write out what the guest sent, as long as the reader takes it
        (see :meth:`OutputBuffer.close <pyvmm.devices.outbuf.OutputBuffer.close>`), and stop
        the writer. True if everything was written. Idempotent."""
        return self._out.close()

    def reopen_output(self) -> None:
        """After :meth:`finish_output`: take output again (the VM runs on after a reset)."""
        self._out.reopen()

    def close(self) -> None:
        """:meth:`finish_output`, then stop the stdin watcher."""
        self._out.close()
        with self._lock:
            watcher, thread = self._watcher, self._thread
            self._watcher = self._thread = None
        if watcher is not None:
            watcher.close()
            thread.join(timeout=5)
            watcher.release()
