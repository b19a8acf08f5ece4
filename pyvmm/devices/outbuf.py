"""A bounded output buffer drained into a host fd by its own thread: guest output never blocks a vCPU.

The console's stdout may stop taking data at any time (a reader that does not
read, ``| less``, Ctrl-S on a terminal). Writing it from a vCPU thread would
then block that thread in ``write``, and the whole VMM with it: ``--timeout``,
SIGINT and SIGTERM would wait forever for the join. So a SEND only copies into
this buffer (at most :data:`CAPACITY` bytes pending) and the writer thread does
the blocking ``write``. A full buffer is back-pressure for the guest: a partial
count, or ``-EAGAIN`` when nothing fits (docs/abi.md, "Console").

The fd itself is left as it is (blocking or not): it is usually the terminal or
pipe pyvmm shares with its shell, whose file description must not change mode.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable

#: Most bytes accepted but not yet written; a SEND past it is partial or -EAGAIN.
CAPACITY = 256 << 10
#: Largest single write (a copy taken out of the buffer under the lock).
_CHUNK = 64 << 10
#: At close, keep draining while the reader takes data at least this often (seconds).
DRAIN_STALL_S = 1.0
#: How long CHANNEL_FLUSH waits for the buffer to drain before it answers -EAGAIN.
FLUSH_WAIT_S = 1.0


class OutputBuffer:
    """Accepts bytes without blocking (:meth:`offer`), writes them to *fd* on its own thread.

    *on_space* is called (from the writer thread) when room appears after an
    :meth:`offer` came up short: the readiness edge of a console port.
    """

    def __init__(self, fd: int, *, capacity: int = CAPACITY, on_space: Callable[[], None] | None = None) -> None:
        self.fd = fd
        self.capacity = capacity
        self.on_space = on_space
        #: The errno that ended the writer (EPIPE: the reader went away), or 0.
        self.error = 0
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closing = False
        self._short = False  # an offer did not fit: raise on_space when room appears
        self._progress = time.monotonic()  # last time a write moved bytes
        self._thread = threading.Thread(target=self._run, name=f"output-fd{fd}", daemon=True)

    def start(self) -> None:
        """Start the writer thread unless it runs; call before the first :meth:`offer`.
        Raises ``RuntimeError`` if the host cannot start one (a later call tries again)."""
        if self._thread.ident is not None:
            return
        with self._cond:
            if self._thread.ident is None:
                try:
                    self._thread.start()
                except RuntimeError:
                    # A Thread object cannot be started twice, even after a failed start.
                    self._thread = threading.Thread(target=self._run, name=self._thread.name, daemon=True)
                    raise

    # -- producers (vCPU threads) ------------------------------------------------------
    def offer(self, data: memoryview) -> int:
        """Copy as much of *data* as fits; returns that count (0: full). Raises ``OSError``
        with the writer's errno once writing has failed for good."""
        with self._cond:
            if self.error:
                raise OSError(self.error, os.strerror(self.error))
            n = min(len(data), self.capacity - len(self._buf))
            if n < len(data):
                self._short = True
            if n > 0:
                if not self._buf:  # a new pending period: the stall clock at close starts now
                    self._progress = time.monotonic()
                self._buf += data[:n]
                self._cond.notify_all()
            return n

    def wait_space(self, timeout: float) -> bool:
        """Wait at most *timeout* seconds for room (or a lasting error); True if there is room."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._buf) >= self.capacity and not self.error and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return len(self._buf) < self.capacity

    def has_space(self) -> bool:
        return len(self._buf) < self.capacity or bool(self.error)

    @property
    def pending(self) -> int:
        """Bytes accepted and not yet written."""
        return len(self._buf)

    def wait_drained(self, timeout: float) -> bool:
        """Wait until everything accepted is written (or writing failed); False after *timeout*."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buf and not self.error and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return not self._buf or bool(self.error)

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buf and not self._closing:
                    self._cond.wait()
                if not self._buf:
                    return  # closing and drained
                chunk = bytes(self._buf[:_CHUNK])
            written = self._write(chunk)
            with self._cond:
                if written < 0:  # a host error: what is pending can never be written
                    self._buf.clear()
                else:
                    del self._buf[:written]
                    self._progress = time.monotonic()
                notify = self._short and (len(self._buf) < self.capacity or self.error)
                if notify:
                    self._short = False
                self._cond.notify_all()
            if notify and self.on_space is not None:
                self.on_space()
            if written < 0:
                return

    def _write(self, chunk: bytes) -> int:
        """One write of (part of) *chunk*; its count, or -1 after recording a lasting error."""
        while True:
            try:
                return os.write(self.fd, chunk)
            except InterruptedError:
                continue
            except BlockingIOError:  # an fd someone else set O_NONBLOCK: wait for room
                poller = select.poll()
                poller.register(self.fd, select.POLLOUT)
                poller.poll(100)
                if self._closing:
                    return -1
            except OSError as e:
                self.error = e.errno or errno.EIO
                return -1

    def reopen(self) -> None:
        """After :meth:`close`: accept output again (a VM reset to a snapshot runs on).
        The writer thread starts again with the next :meth:`start`."""
        with self._cond:
            if not self._closing:
                return
            self._closing = False
            if not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._thread.name, daemon=True)

    # -- teardown --------------------------------------------------------------------------
    def close(self, *, stall: float = DRAIN_STALL_S) -> bool:
        """Write what is pending while the reader keeps taking it (no progress for *stall*
        seconds: give up), then stop the thread. True if everything was written.

        The thread may stay blocked in ``write`` when the reader never reads; it is a
        daemon thread, so it does not keep the process alive."""
        with self._cond:
            while self._buf and not self.error and self._thread.is_alive():
                idle = time.monotonic() - self._progress
                if idle >= stall:
                    break
                self._cond.wait(stall - idle)
            drained = not self._buf
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive() and drained:
            self._thread.join(timeout=stall)
        return drained
