"""``--gdb HOST:PORT`` / ``--gdb unix:PATH``: parse it and open the listening socket.

The socket is made (``socket``, ``bind``, ``listen``) before the seccomp filter is
loaded, which refuses ``bind`` and network sockets; afterwards the stub only calls
``accept4``, ``poll``, ``recvfrom``/``sendto`` and ``close`` on it. A mistake here is a
:class:`GdbSetupError` whose message is the one line ``pyvmm run`` prints (exit 2).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"


class GdbSetupError(Exception):
    """``--gdb`` is malformed or its address cannot be listened on."""


@dataclass(frozen=True)
class GdbAddress:
    """Where to listen: a TCP ``host``/``port`` (port 0: the kernel picks one), or a Unix ``path``."""

    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_gdb_address(text: str) -> GdbAddress:
    """``HOST:PORT``, ``:PORT`` (localhost), ``[V6]:PORT`` or ``unix:PATH``. Raises :class:`GdbSetupError`."""
    bad = f"--gdb {text!r}: expected HOST:PORT (e.g. 127.0.0.1:1234) or unix:PATH"
    if text.startswith("unix:"):
        path = text[5:]
        if not path or "\0" in path:
            raise GdbSetupError(bad)
        return GdbAddress(path=path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise GdbSetupError(bad)
    port = int(port_text)
    if port > 65535:
        raise GdbSetupError(f"--gdb {text!r}: port {port} is not between 0 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii() or any(c.isspace() for c in host):
        raise GdbSetupError(bad)
    return GdbAddress(host=host or DEFAULT_HOST, port=port)


def open_listener(addr: GdbAddress) -> socket.socket:
    """A listening, non-inheritable socket for *addr*. Raises :class:`GdbSetupError`."""
    if addr.is_unix:
        return _listen_unix(addr)
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise GdbSetupError(f"--gdb {addr}: unknown host ({e})") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted pyvmm may listen at once
        sock.bind(sockaddr)
        sock.listen(1)
    except OSError as e:
        sock.close()
        raise GdbSetupError(f"--gdb {addr}: cannot listen ({e.strerror or e})") from None
    return sock


def _listen_unix(addr: GdbAddress) -> socket.socket:
    path = addr.path
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise GdbSetupError(f"--gdb {addr}: directory {parent} does not exist")
    # As a ,server channel's: a stale socket file (a contained pyvmm cannot remove its own
    # at exit) is replaced, a live listener or a file that is not a socket refused.
    from pyvmm.devices import sockfile
    from pyvmm.devices.base import DeviceError

    try:
        sock, _ = sockfile.listen("gdb", path, label=f"--gdb {addr}")
    except DeviceError as e:
        raise GdbSetupError(str(e)) from None
    sock.setblocking(True)
    return sock


def bound_address(sock: socket.socket, addr: GdbAddress) -> GdbAddress:
    """*addr* with the port the kernel chose (for ``:0``)."""
    if addr.is_unix:
        return addr
    return GdbAddress(host=addr.host, port=sock.getsockname()[1])
