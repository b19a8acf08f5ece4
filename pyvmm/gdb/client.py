"""A minimal remote-protocol client: what the tests and ``scripts/bench_gdb.py`` speak to the stub.

Not a debugger: it frames packets, checks the checksum of each reply and
hands back the payload. Acks from the stub are skipped.
"""

from __future__ import annotations

import re
import socket
import time

from pyvmm.gdb.rsp import checksum, frame

_REPLY = re.compile(rb"[+-]*\$([^#]*)#([0-9a-fA-F]{2})", re.S)


class RspClient:
    def __init__(self, path: str, timeout: float = 20.0) -> None:
        # The path may exist before pyvmm listens there: a stale socket file of an earlier
        # run (a contained pyvmm leaves it), which pyvmm replaces as it starts.
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> None:
        self.raw(frame(payload))

    def read_ack(self) -> bytes:
        """The next single byte (``+`` or ``-``)."""
        while not self.buf:
            self._fill()
        byte, self.buf = self.buf[:1], self.buf[1:]
        return byte

    def reply(self) -> bytes:
        while True:
            m = _REPLY.match(self.buf)
            if m:
                self.buf = self.buf[m.end() :]
                if int(m.group(2), 16) != checksum(m.group(1)):
                    raise ValueError(f"bad checksum in reply {m.group(0)!r}")
                return m.group(1)
            self._fill()

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.reply()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the stub closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()
