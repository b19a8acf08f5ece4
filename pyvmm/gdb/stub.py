"""The gdb stub: one thread serving the remote serial protocol to one gdb at a time.

It accepts a connection on the listening socket (made before the seccomp
filter: :mod:`pyvmm.gdb.listen`), stops the VM (:mod:`pyvmm.gdb.control`),
answers packets (:mod:`pyvmm.gdb.packets`) while it is stopped, and waits for
a stop (a vCPU's event, Ctrl-C from gdb, the VM's end) while it runs. Threads
are vCPUs: thread id ``n + 1`` is vCPU ``n`` (gdb reserves 0 and -1).

The stub never raises into pyvmm: a gdb that sends garbage gets ``-``, ``E``
or empty replies; a gdb that goes away (EOF, reset) is a detach: breakpoints
are removed and the guest runs on, and another gdb may attach.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.gdb import rsp
from pyvmm.gdb.control import DebugControl
from pyvmm.gdb.packets import Session
from pyvmm.outcome import StopReason

if TYPE_CHECKING:
    from pyvmm.gdb.listen import GdbAddress
    from pyvmm.gdb.vmem import GuestView
    from pyvmm.outcome import RunResult
    from pyvmm.paravirt.services import VcpuSet

_RECV = 65536
#: How long close() waits for the stub's last words (a W packet) to go out.
CLOSE_WAIT_S = 2.0


@dataclass(frozen=True)
class GdbServices:
    """What the stub reaches (never the Machine)."""

    vcpus: VcpuSet
    view: GuestView
    #: Stop the VM for gdb's ``k`` (the machine records the result; any thread).
    kill: Callable[[], None]
    #: The backend runs guest kernel code in KVM's emulator (PVM): data watchpoints are
    #: checked by single-stepping, and breakpoints in CPL3 code are refused (they never fire).
    emulated_kernel: bool = False
    #: One-line notes for the user (pyvmm's stderr).
    say: Callable[[str], None] = lambda line: None


def exit_packet(result: RunResult | None) -> bytes | None:
    """How the VM's end is told to a gdb waiting for a stop: ``W`` code or ``X`` signal."""
    import signal

    if result is None or result.reason is StopReason.KILLED:
        return None
    if result.reason is StopReason.SHUTDOWN:
        return b"W%02x" % (result.exit_code & 0xFF)
    sig = {StopReason.CRASH: signal.SIGSEGV, StopReason.TIMEOUT: signal.SIGALRM}.get(result.reason)
    return b"X%02x" % int(sig or result.signal or signal.SIGKILL)


class GdbStub:
    """Start with :meth:`start` before the VM runs; :meth:`close` after it stopped."""

    def __init__(self, listener: socket.socket, address: GdbAddress, services: GdbServices, *, wait: bool) -> None:
        self.address = address
        self._listener = listener
        self._services = services
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.control = DebugControl(services.vcpus, services.view, wait=wait, notify=self._wake)
        self.control.soft_watch = services.emulated_kernel
        self._closing = False
        self._thread: threading.Thread | None = None
        self._conn: socket.socket | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="gdb-stub", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """After the VM stopped: let the session send its last packet, then close everything."""
        self._closing = True
        self._wake()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT_S)
        for sock in (self._conn, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self.address.is_unix:
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _over(self) -> bool:
        return self._closing or self.control.released

    # -- the stub's thread -------------------------------------------------------
    def _main(self) -> None:
        try:
            while not self._over():
                conn = self._accept()
                if conn is None:
                    break
                self._conn = conn
                try:
                    self._serve(conn)
                finally:
                    self._conn = None
                    with contextlib.suppress(OSError):
                        conn.close()
        except Exception as e:  # a stub bug must not take the VM with it: gdb loses, the guest runs on
            self._services.say(f"gdb stub stopped: {type(e).__name__}: {e}")
            with contextlib.suppress(Exception):
                self.control.detach()

    def _accept(self) -> socket.socket | None:
        poller = select.poll()
        poller.register(self._listener.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._over():
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    self._drain_wake()
                    continue
                try:
                    conn, _ = self._listener.accept()
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EINTR):
                        continue
                    raise
                if conn.family != socket.AF_UNIX:
                    with contextlib.suppress(OSError):
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one small packet per reply
                return conn
        return None

    def _serve(self, conn: socket.socket) -> None:
        control = self.control
        control.attach()
        control.stop_all()
        self._services.say(f"gdb attached on {self.address}")
        session = Session(control, self._services, send=lambda payload: self._send(conn, payload))
        reader = rsp.PacketReader()
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            if control.released or self._closing:
                if session.waiting:
                    last = exit_packet(control.finished)
                    if last is not None:
                        self._send(conn, last)
                return
            if session.waiting and control.has_event():
                session.report_stop()
            ready = poller.poll()
            for fd, _ in ready:
                if fd == self._wake_r:
                    self._drain_wake()
                    continue
                try:
                    data = conn.recv(_RECV)
                except OSError:
                    data = b""
                if not data:  # gdb went away: as a detach, the guest runs on
                    if control.released:
                        return
                    session.lost()
                    self._services.say("gdb disconnected: breakpoints removed, the guest runs on")
                    return
                for event in reader.feed(data):
                    if event.kind is rsp.EventKind.BAD:
                        self._raw(conn, b"-")
                        continue
                    if event.kind is rsp.EventKind.INTERRUPT:
                        session.interrupt()
                        continue
                    if event.kind is not rsp.EventKind.PACKET:
                        continue  # acks: replies are not retransmitted (gdb over a reliable stream)
                    if not session.no_ack:
                        self._raw(conn, b"+")
                    session.handle(event.payload)
                    if session.finished:
                        return

    def _send(self, conn: socket.socket, payload: bytes) -> None:
        self._raw(conn, rsp.frame(payload))

    def _raw(self, conn: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):  # gdb gone: the next recv sees EOF
            conn.sendall(data)
