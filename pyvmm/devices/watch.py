"""Readiness watching for channels: a poll loop that calls a device's ``notify`` from its own thread.

Edge-triggered, like ``EPOLLET``: an operation that returns ``-EAGAIN`` *arms*
the direction it waited for (``POLLIN`` for RECV, ``POLLOUT`` for SEND); the
watcher polls only armed directions, and when one becomes ready it disarms it
and calls ``notify()`` once. So a guest that is not waiting costs no wake-ups,
and data sitting unread does not make the loop spin. A hang-up or error is
always reported once and ends the loop.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable

POLLIN = select.POLLIN
POLLOUT = select.POLLOUT
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class Watcher:
    """The poll loop, its wake-up pipe and the armed event mask of one channel."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self._lock = threading.Lock()
        self._armed = 0
        self.closing = False
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def arm(self, events: int) -> None:
        """Watch for *events* (``POLLIN``/``POLLOUT``) and notify once when one is ready."""
        with self._lock:
            if self._armed & events == events:
                return
            self._armed |= events
        self.wake()

    def wake(self) -> None:
        """Make a :meth:`wait` in progress return (it re-reads the armed mask)."""
        try:
            os.write(self._w, b"\0")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or closed
            pass

    def wait(self, fd: int, events: int, timeout_ms: int) -> int:
        """Poll *fd* for *events* (when both are set) and the wake pipe; *fd*'s revents, 0 if none."""
        poller = select.poll()
        poller.register(self._r, POLLIN)
        if fd >= 0 and events:
            poller.register(fd, events)
        revents = 0
        for ready_fd, ev in poller.poll(timeout_ms):
            if ready_fd == self._r:
                self._drain()
            else:
                revents = ev
        return revents

    def loop(self, fd: int) -> None:
        """Until :meth:`close` or *fd* hangs up: wait for the armed events, disarm, notify."""
        while not self.closing:
            with self._lock:
                armed = self._armed
            revents = self.wait(fd, armed, -1)
            if not revents or self.closing:
                continue
            with self._lock:
                self._armed &= ~revents
            self.notify()
            if revents & _GONE:
                return

    def notify(self) -> None:
        """Call the owner's callback; a failing callback must not kill the watcher."""
        try:
            self._notify()
        except Exception:  # the callback is the event core's: its bug must not stop the watching
            pass

    def close(self) -> None:
        """Ask the loop to end; call :meth:`release` once its thread has been joined."""
        self.closing = True
        self.wake()

    def release(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._r = self._w = -1

    def _drain(self) -> None:
        try:
            while os.read(self._r, 64):
                pass
        except OSError:
            pass
