"""An inter-VM stream channel: a byte stream to another ``pyvmm run`` over a Unix socket.

``--channel NAME=unix:PATH,server`` listens on PATH and takes the first peer;
``--channel NAME=unix:PATH`` connects to it, retrying until the listener is
there. Both happen on a background thread, so the VM never waits: until the
peer is there, SEND and RECV return ``-EAGAIN``.

The semantics are a pipe's, with a system call's partial counts: RECV returns
what has arrived (``-EAGAIN`` if nothing), SEND what fits in the socket buffer
(``-EAGAIN`` if nothing does). When the peer goes away, RECV still returns
what it had sent and then ``-ECONNRESET``; SEND returns ``-EPIPE`` (never a
SIGPIPE: ``MSG_NOSIGNAL``). Data moves straight between guest memory and the
socket (``send``/``recv_into`` on the guest's memoryview): one copy each way.
"""

from __future__ import annotations

import enum
import errno
import os
import select
import socket
import threading
from collections.abc import Callable

from pyvmm.devices.base import Channel, ChannelError, DeviceError
from pyvmm.devices.broker import DirectEndpoint, Endpoint
from pyvmm.devices.watch import POLLIN, POLLOUT, Watcher
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno

_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_RECV_FLAGS = socket.MSG_DONTWAIT
#: A client retries its connect this often while the listener is not there yet.
CONNECT_RETRY_MS = 10
#: connect() results that mean "the listener is not (yet) there": try again.
_RETRY_CONNECT = {errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN}
#: Bigger socket buffers let one SEND move more of a bulk transfer (the kernel caps them at wmem_max).
SOCKET_BUFFER = 4 << 20

_GONE_FLAGS = int(ChannelFlag.CLOSED | ChannelFlag.READABLE | ChannelFlag.WRITABLE)


class State(enum.Enum):
    WAITING = "waiting"  # no peer yet
    CONNECTED = "connected"
    FAILED = "failed"  # the connect failed for good (e.g. permission): reported like a vanished peer


def _tune(sock: socket.socket) -> None:
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass


class StreamChannel(Channel):
    kind = ChannelKind.STREAM
    has_readiness_events = True

    def __init__(self, name: str, path: str, endpoint: Endpoint, listener: socket.socket | None) -> None:
        self.name = name
        self.path = path
        self.server = listener is not None
        self.state = State.WAITING
        self.error = ""  # why a connect failed for good
        #: Called (from the channel's thread or a vCPU's) whenever readiness may have changed.
        self.on_ready: Callable[[], None] | None = None
        self._listener = listener
        self._endpoint = endpoint  # where sockets come from, and who removes the socket file
        self._sock: socket.socket | None = None
        self._watcher = Watcher(self._ready_changed)
        self._thread = threading.Thread(target=self._io_main, name=f"channel-{name}", daemon=True)

    @classmethod
    def open(cls, name: str, path: str, *, server: bool, endpoint: Endpoint | None = None) -> StreamChannel:
        """Listen (*server*) or start connecting to *path*, through *endpoint* (the socket
        broker's, in a VM: :mod:`pyvmm.devices.broker`; by default in this process).
        Raises :class:`DeviceError`."""
        endpoint = endpoint or DirectEndpoint(name, path)
        if server:
            listener = endpoint.listen()
        else:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise DeviceError(f"--channel {name}: {parent} is not a directory")
            listener = None
        channel = cls(name, path, endpoint, listener)
        try:
            channel._thread.start()
        except RuntimeError as e:  # "can't start new thread": the host's limits, a one-line error
            channel.close()  # removes the socket file we made
            raise DeviceError(f"--channel {name}: cannot start its thread ({e})") from None
        return channel

    # -- the guest's operations (vCPU threads) ---------------------------------------
    def send(self, data: memoryview, offset: int) -> int:
        if offset:
            raise ChannelError(Errno.EINVAL, "stream channels have no offsets")
        sock = self._sock
        if sock is None:
            raise self._not_connected(Errno.EPIPE)
        if not len(data):
            return 0
        try:
            return sock.send(data, _SEND_FLAGS)
        except BlockingIOError:
            self._watcher.arm(POLLOUT)
            raise ChannelError(Errno.EAGAIN) from None
        except OSError as e:  # EPIPE, ECONNRESET: the peer is gone
            raise ChannelError(Errno.EPIPE, str(e)) from None

    def recv(self, buf: memoryview, offset: int) -> int:
        if offset:
            raise ChannelError(Errno.EINVAL, "stream channels have no offsets")
        sock = self._sock
        if sock is None:
            raise self._not_connected(Errno.ECONNRESET)
        if not len(buf):
            return 0
        try:
            n = sock.recv_into(buf, len(buf), _RECV_FLAGS)
        except BlockingIOError:
            self._watcher.arm(POLLIN)
            raise ChannelError(Errno.EAGAIN) from None
        except OSError as e:
            raise ChannelError(Errno.ECONNRESET, str(e)) from None
        if n == 0:  # end of stream: the peer closed (or died) and everything it sent is read
            raise ChannelError(Errno.ECONNRESET, "peer closed the channel")
        return n

    def _not_connected(self, gone: Errno) -> ChannelError:
        if self.state is State.FAILED:
            return ChannelError(gone, self.error)
        return ChannelError(Errno.EAGAIN, "no peer yet")  # the connect itself raises on_ready

    def readiness(self) -> int:
        sock = self._sock
        if sock is None:
            return _GONE_FLAGS if self.state is State.FAILED else 0
        poller = select.poll()
        poller.register(sock, POLLIN | POLLOUT)
        revents = 0
        for _, ev in poller.poll(0):
            revents = ev
        if revents & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return _GONE_FLAGS
        flags = int(ChannelFlag.CONNECTED)
        if revents & POLLIN:
            flags |= ChannelFlag.READABLE
        if revents & POLLOUT:
            flags |= ChannelFlag.WRITABLE
        return flags

    # -- the channel's own thread ---------------------------------------------------
    def _ready_changed(self) -> None:
        callback = self.on_ready
        if callback is not None:
            callback()

    def _io_main(self) -> None:
        try:
            sock = self._accept() if self.server else self._connect()
        except OSError as e:
            self.error = f"cannot connect to {self.path}: {e.strerror or e}"
            self.state = State.FAILED
            self._watcher.notify()
            return
        if sock is None:  # closing before a peer came
            return
        sock.setblocking(False)
        _tune(sock)
        self._sock = sock
        self.state = State.CONNECTED
        self._watcher.arm(POLLIN)  # the first data to arrive is an edge too
        self._watcher.notify()
        self._watcher.loop(sock.fileno())

    def _accept(self) -> socket.socket | None:
        listener = self._listener
        while not self._watcher.closing:
            if not self._watcher.wait(listener.fileno(), POLLIN, -1):
                continue
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                continue
            # One peer per channel: later connects are refused (the socket file stays until close).
            listener.close()
            self._listener = None
            return sock
        return None

    def _connect(self) -> socket.socket | None:
        while not self._watcher.closing:
            try:
                return self._endpoint.connect()
            except OSError as e:
                if e.errno not in _RETRY_CONNECT:
                    raise
            self._watcher.wait(-1, 0, CONNECT_RETRY_MS)
        return None

    # -- teardown ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the thread, close the sockets (the peer sees the channel close) and remove our socket file."""
        self._watcher.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._watcher.release()
        for sock in (self._sock, self._listener):
            if sock is not None:
                sock.close()
        self._sock = self._listener = None
        self._endpoint.release()
