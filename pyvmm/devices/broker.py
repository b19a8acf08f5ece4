"""The socket broker: a small uncontained helper that alone touches the stream channels' paths.

Seccomp sees system-call numbers and integer arguments, never paths, so a VMM that
may ``connect`` may connect anywhere: ``/run/docker.sock``, D-Bus, ``/dev/log``. A
contained pyvmm therefore makes no ``socket``, ``connect``, ``bind``, ``unlink`` or
``stat`` call at all (:mod:`pyvmm.sandbox`); a stream channel gets its sockets from
here instead. Before anything else is built, :meth:`SocketBroker.start` forks a child
that holds only the table of this VM's stream channels (name, path, listen or
connect) and one ``SOCK_SEQPACKET`` socketpair. Asked ``(LISTEN | CONNECT | RELEASE,
index)``, it does that for entry *index* and nothing else, and passes a listening
or connected socket back with ``SCM_RIGHTS``. A compromised VMM can therefore ask
only for the sockets it was given on the command line: exactly the channels of its
own VM, which it holds anyway.

The broker also owns the socket files it made: ``RELEASE`` removes one when its
channel closes, and when the VMM goes away (its end of the socketpair closes: an
orderly exit or a SIGKILL alike) the broker removes what is left and exits. It
keeps the stop signals blocked (a Ctrl-C reaches the whole process group), so the
cleanup always runs; it holds none of the VM's files or memory (it is forked before
``/dev/kvm`` is opened) and points 0-2 at ``/dev/null``, so a pipe reading pyvmm's
output sees EOF when pyvmm itself exits.

Wire format: a request is two bytes (op, index); a reply is a little-endian
``int32`` status (0, a positive errno, or ``-1`` with the user's one-line message
following as UTF-8) with the socket, if any, as ancillary data.
"""

from __future__ import annotations

import array
import enum
import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import Protocol

from pyvmm import stopsignals
from pyvmm.devices import sockfile
from pyvmm.devices.base import DeviceError
from pyvmm.devices.spec import StreamSpec

#: How long the VMM waits for one reply (the broker never blocks: its sockets are non-blocking).
REPLY_TIMEOUT_S = 5.0
#: How long closing waits for the broker to remove its files and exit.
EXIT_WAIT_S = 2.0
_STATUS = struct.Struct("<i")
_MESSAGE = -1


class Op(enum.IntEnum):
    LISTEN = 1
    CONNECT = 2
    RELEASE = 3


_OPS = frozenset(int(op) for op in Op)


class Endpoint(Protocol):
    """The sockets of one stream channel (what :class:`~pyvmm.devices.stream.StreamChannel` uses)."""

    def listen(self) -> socket.socket:
        """The listening socket. Raises :class:`DeviceError` (the user's one line)."""
        ...

    def connect(self) -> socket.socket:
        """A connected non-blocking socket. Raises ``OSError`` (``ENOENT``/``ECONNREFUSED``/
        ``EAGAIN`` while the listener is not there: try again)."""
        ...

    def release(self) -> None:
        """Remove the socket file :meth:`listen` made, if it is still ours; idempotent."""
        ...


class DirectEndpoint:
    """In this process (an uncontained VMM, the device tests, and the broker itself)."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self._made: sockfile.Identity | None = None

    def listen(self) -> socket.socket:
        sock, self._made = sockfile.listen(self.name, self.path)
        return sock

    def connect(self) -> socket.socket:
        return sockfile.connect(self.path)

    def release(self) -> None:
        if self._made is not None:
            sockfile.remove(self.path, self._made)
            self._made = None


class BrokerError(OSError):
    """The broker did not answer (it was killed, or it hangs): the channel fails like a lost peer."""


class SocketBroker:
    """The VMM's side: one request at a time (a lock), a bounded wait for each reply."""

    def __init__(self, pid: int, sock: socket.socket, specs: tuple[StreamSpec, ...] = ()) -> None:
        self.pid = pid
        self._sock = sock
        self._lock = threading.Lock()
        self._specs = specs

    @classmethod
    def for_channels(cls, specs: Iterable[object]) -> SocketBroker | None:
        """The broker for the stream channels among *specs*; None if there is none (a
        plain VM forks nothing). Raises ``OSError`` if the host cannot fork."""
        streams = tuple(spec for spec in specs if isinstance(spec, StreamSpec))
        if not streams:
            return None
        broker = cls.start([(spec.name, spec.path, spec.server) for spec in streams])
        broker._specs = streams
        return broker

    def endpoint_for(self, spec: StreamSpec) -> BrokerEndpoint:
        """The endpoint of *spec*, one of those given to :meth:`for_channels`."""
        return self.endpoint(self._specs.index(spec), spec.name)

    @classmethod
    def start(cls, channels: list[tuple[str, str, bool]]) -> SocketBroker:
        """Fork the broker for *channels*, (name, path, server) by index. Raises ``OSError``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        # Stop signals blocked across the fork, and for good in the child: it must outlive a
        # Ctrl-C sent to the whole process group, to remove the socket files (SIGKILL still ends it).
        with stopsignals.deferred():
            pid = os.fork()
            if pid == 0:
                try:
                    _child(theirs, channels)
                finally:
                    os._exit(1)  # whatever Python raised in the child, it never returns into the VMM's code
            theirs.close()
        ours.settimeout(REPLY_TIMEOUT_S)
        return cls(pid, ours)

    def endpoint(self, index: int, name: str) -> BrokerEndpoint:
        """Channel *index* of the table given to :meth:`start`, named *name* in messages."""
        return BrokerEndpoint(self, index, name)

    def request(self, op: Op, index: int) -> socket.socket | None:
        """Ask for *op* on channel *index*; the socket it returns, if any. Raises
        :class:`DeviceError` (the broker's message), ``OSError`` (its errno) or :class:`BrokerError`."""
        with self._lock:
            try:
                self._sock.send(bytes((op, index)))
                data, fds = _recv_with_fd(self._sock)
            except OSError as e:
                raise BrokerError(e.errno or errno.EPIPE, f"the socket broker is gone ({e})") from None
        if len(data) < _STATUS.size:
            for fd in fds:
                os.close(fd)
            raise BrokerError(errno.EPIPE, "the socket broker is gone")
        (status,) = _STATUS.unpack_from(data)
        if status == _MESSAGE:
            raise DeviceError(data[_STATUS.size :].decode("utf-8", "replace"))
        if status:
            raise OSError(status, os.strerror(status))
        if not fds:
            return None
        # Family, type and protocol given: left out, Python asks getsockname(2), which the filter refuses.
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fds[0])

    def close(self) -> None:
        """Close our end (the broker removes its socket files and exits); wait a bounded time
        for it. Idempotent."""
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        deadline = time.monotonic() + EXIT_WAIT_S
        while True:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done or time.monotonic() > deadline:
                return  # not reaped in time: it exits on its own once its files are gone
            time.sleep(0.002)


class BrokerEndpoint:
    """One channel's :class:`Endpoint` through the broker."""

    def __init__(self, broker: SocketBroker, index: int, name: str) -> None:
        self._broker = broker
        self._index = index
        self._name = name

    def listen(self) -> socket.socket:
        try:
            sock = self._broker.request(Op.LISTEN, self._index)
        except OSError as e:
            raise DeviceError(f"--channel {self._name}: cannot listen: {e.strerror or e}") from None
        assert sock is not None
        return sock

    def connect(self) -> socket.socket:
        sock = self._broker.request(Op.CONNECT, self._index)
        assert sock is not None
        return sock

    def release(self) -> None:
        try:
            self._broker.request(Op.RELEASE, self._index)
        except OSError:
            pass  # the broker is gone: it removed its files when it went


def _recv_with_fd(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


# -- the broker process --------------------------------------------------------------------
def _child(sock: socket.socket, channels: list[tuple[str, str, bool]]) -> None:
    """The forked broker's whole life; ends with ``os._exit``, whatever happens."""
    status = 0
    try:
        _detach(sock.fileno())
        _serve(sock, [(DirectEndpoint(name, path), server) for name, path, server in channels])
    except BaseException:  # nothing to report to: the VMM sees the broker gone
        status = 1
    os._exit(status)


def _detach(keep: int) -> None:
    """Hold nothing of the VMM's: 0-2 on /dev/null, every other fd but *keep* closed."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(3, keep)
    os.closerange(keep + 1, 2**31 - 1)  # close_range(2): one system call


def _serve(sock: socket.socket, table: list[tuple[DirectEndpoint, bool]]) -> None:
    try:
        while True:
            request = sock.recv(16)
            if not request:
                return  # the VMM has gone: remove our files below and exit
            _answer(sock, request, table)
    finally:
        for endpoint, _ in table:
            endpoint.release()


def _answer(sock: socket.socket, request: bytes, table: list[tuple[DirectEndpoint, bool]]) -> None:
    result: socket.socket | None = None
    try:
        if len(request) != 2 or request[1] >= len(table) or request[0] not in _OPS:
            raise OSError(errno.EINVAL, "bad request")
        op, (endpoint, server) = Op(request[0]), table[request[1]]
        if op is Op.LISTEN and server and endpoint._made is None:  # once: one listener per channel
            result = endpoint.listen()
        elif op is Op.CONNECT and not server:
            result = endpoint.connect()
        elif op is Op.RELEASE:
            endpoint.release()
        else:
            raise OSError(errno.EPERM, "not this channel's operation")
    except DeviceError as e:
        sock.send(_STATUS.pack(_MESSAGE) + str(e).encode()[:2048])
        return
    except OSError as e:
        sock.send(_STATUS.pack(e.errno or errno.EIO))
        return
    if result is None:
        sock.send(_STATUS.pack(0))
        return
    try:
        sock.sendmsg([_STATUS.pack(0)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [result.fileno()]))])
    finally:
        result.close()  # the VMM holds it now: when it closes its copy, the socket is gone
