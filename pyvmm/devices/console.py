"""The console channel: guest sends go to a host file descriptor (stdout by default);
guest receives read the host's stdin without ever blocking the vCPU."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.devices.watch import POLLIN, Watcher
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno
from pyvmm.paravirt.services import ThreadStartError

_INPUT = select.POLLIN | select.POLLHUP | select.POLLERR
_ALWAYS = int(ChannelFlag.WRITABLE | ChannelFlag.CONNECTED)


class Console(Channel):
    """Writes guest output to *out_fd* unbuffered, so it streams as the guest runs; reads *in_fd*.

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
        #: Called (from the stdin watcher thread) when input may have arrived.
        self.on_ready: Callable[[], None] | None = None
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, data: memoryview, offset: int) -> int:
        """Write all of *data*; returns the byte count (partial only if the host fd fails)."""
        if offset:
            raise ChannelError(Errno.EINVAL, "the console has no offsets")
        done = 0
        n = len(data)
        while done < n:
            try:
                written = os.write(self.out_fd, data[done:])
            except BlockingIOError:
                break
            except OSError:
                if done:
                    break
                raise
            if written <= 0:
                break
            done += written
        self.bytes_out += done
        return done

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
        return _ALWAYS | (int(ChannelFlag.READABLE) if self._poll_input() else 0)

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

    def close(self) -> None:
        with self._lock:
            watcher, thread = self._watcher, self._thread
            self._watcher = self._thread = None
        if watcher is not None:
            watcher.close()
            thread.join(timeout=5)
            watcher.release()
