"""The console channel: guest sends go to a host file descriptor (stdout by default)."""

from __future__ import annotations

import os

from pyvmm.paravirt.abi import ChannelKind


class Console:
    """Writes guest output to *out_fd* unbuffered, so it streams as the guest runs."""

    kind = ChannelKind.CONSOLE

    def __init__(self, out_fd: int = 1, name: str = "console") -> None:
        self.out_fd = out_fd
        self.name = name
        self.bytes_out = 0

    def send(self, data: memoryview, offset: int) -> int:
        """Write all of *data*; returns the byte count (partial only if the host fd fails)."""
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
