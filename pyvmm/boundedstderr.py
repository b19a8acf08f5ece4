"""pyvmm's last words on stderr, written without waiting forever for a reader that does not read.

After a run pyvmm reports on stderr (``--stats``, a crash report, "stopped after
--timeout"). When stderr is a pipe nobody drains (``pyvmm run --trace 2>&1 | less``
left on its first page), a plain ``write`` would block there forever, after the VM
has already stopped: a stop request that never finishes. :class:`BoundedStderr`
waits for room with ``poll`` (at most :data:`GIVE_UP_S` in all) and writes at most
``PIPE_BUF`` bytes per ready ``poll``, which a pipe takes without blocking; past
the deadline the rest is dropped. fd 2 keeps its mode (it is shared with the shell).
"""

from __future__ import annotations

import io
import os
import select
import time

#: The whole wait for a stderr that takes nothing, per process.
GIVE_UP_S = 1.0
_PIPE_BUF = 4096


class BoundedStderr(io.TextIOBase):
    """A text stream for ``sys.stderr`` that never blocks longer than :data:`GIVE_UP_S` in all."""

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._budget = GIVE_UP_S
        self._dead = False

    def write(self, text: str) -> int:
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while data and not self._dead:
            start = time.monotonic()
            ready = poller.poll(max(0, int(self._budget * 1000)))
            self._budget -= time.monotonic() - start
            if not ready or ready[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                self._dead = True  # nobody reads: drop this and everything after it
                break
            try:
                data = data[os.write(self._fd, data[:_PIPE_BUF]) :]
            except BlockingIOError:
                continue
            except OSError:
                self._dead = True
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return os.isatty(self._fd)
