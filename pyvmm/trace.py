"""``--trace``: strace for hypercalls, one line per call, built on the hook API.

A line is written when the call returns (SHUTDOWN, which does not, when it is made)::

    0.004213 [0] SEND(console, buf=0x203000, len=13, offset=0) = 13 <4.1us>
    0.004401 [1] RECV(link, buf=0x204000, len=64, offset=0) = -EAGAIN <2.3us>
    0.004650 [0] nr64(0x203000, 4, 3, 4, 5) = 12 <1.2us>

The time is seconds since the VM started, then the vCPU, the call with its decoded
arguments (channel handles by name, pointers in hex, protections and kinds by name),
the result (``-ENAME`` for an error), and the dispatch time. MULTICALL is one line (its
entries run inside it). Lines from several vCPUs are whole lines, in the order the
calls returned. Nothing of this runs unless ``--trace`` is given: without hooks the
run loop dispatches directly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm.devices.outbuf import OutputBuffer
from pyvmm.paravirt.abi import (
    EXT_BASE,
    EXT_COUNT,
    HYPERCALL_SPECS,
    Clock,
    Errno,
    EventKind,
    Hypercall,
    Prot,
)

if TYPE_CHECKING:
    from pyvmm.machine import Machine

_U64 = 1 << 64
_CHANNEL_CALLS = {Hypercall.SEND, Hypercall.RECV, Hypercall.CHANNEL_FLUSH, Hypercall.CHANNEL_INFO}
_POINTERS = {"buf", "info", "entries", "ops", "gpa", "va", "entry", "stack", "rip"}


class TraceError(Exception):
    """``--trace`` cannot be set up as asked (a file that cannot be written, an unknown
    name in ``--trace-filter``); the message is one line."""


def parse_filter(text: str | None) -> frozenset[int] | None:
    """``--trace-filter``: comma-separated call names (``send,recv``; any case) or numbers
    (``64``, for an extension); None traces everything. Raises :class:`TraceError`."""
    if text is None:
        return None
    wanted = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word.isascii() and word.isdigit():
            wanted.add(int(word))
            continue
        try:
            wanted.add(int(Hypercall[word.upper()]))
        except KeyError:
            names = ", ".join(h.name.lower() for h in Hypercall)
            raise TraceError(f"--trace-filter: no hypercall named {word!r} (names: {names})") from None
    if not wanted:
        raise TraceError("--trace-filter: give at least one hypercall name")
    return frozenset(wanted)


def call_name(nr: int) -> str:
    try:
        return Hypercall(nr).name
    except ValueError:
        return f"nr{nr}"


def format_result(result: int) -> str:
    """``rax`` as the guest reads it: a count, or ``-ENAME`` for an error."""
    signed = result - _U64 if result >= 1 << 63 else result
    if -4096 < signed < 0:
        try:
            return f"-{Errno(-signed).name}"
        except ValueError:
            return str(signed)
    return str(signed) if signed < 1 << 20 else hex(result)


class Tracer:
    """Formats and writes the trace of one VM; :meth:`attach` installs it as hooks.

    *write* gets each finished line (with its newline); *channel_name* maps a handle to
    its channel's name (or None).
    """

    def __init__(
        self,
        write: Callable[[str], None],
        channel_name: Callable[[int], str | None],
        only: frozenset[int] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._write = write
        self._channel_name = channel_name
        self._only = only
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()  # one line at a time from several vCPU threads

    @classmethod
    def open(cls, target: str | os.PathLike | int, machine: Machine, filter_text: str | None = None) -> Tracer:
        """A tracer writing to *target* (a path, ``"-"`` for stderr, or an open host fd),
        naming *machine*'s channels. The file is opened now: once the seccomp filter is
        loaded nothing can be. Raises :class:`TraceError`."""
        only = parse_filter(filter_text)
        fd = _open_target(target)
        if not isinstance(target, int) and target != "-":
            machine.own(lambda: os.close(fd))
        table = machine.channels

        def channel_name(handle: int) -> str | None:
            try:
                return table.get(handle).name
            except Exception:  # a bad handle: the call's result says so
                return None

        write, finish = _writer(fd, lambda: machine.stopping)
        machine.own(finish)  # runs before the fd's close above (last registered, first run)
        return cls(write, channel_name, only)

    def attach(self, machine: Machine) -> None:
        machine.add_hooks(before=[self.before], after=[self.after])

    def before(self, vcpu_id: int, nr: int, args: tuple) -> None:
        if nr == Hypercall.SHUTDOWN and self._wanted(nr):
            self._emit(f"{self._stamp()} [{vcpu_id}] {self.format_call(nr, args)} = ?\n")

    def after(self, vcpu_id: int, nr: int, args: tuple, result: int, ns: int) -> None:
        if self._wanted(nr):
            call = self.format_call(nr, args)
            self._emit(f"{self._stamp()} [{vcpu_id}] {call} = {format_result(result)} <{ns / 1000:.1f}us>\n")

    def format_call(self, nr: int, args: tuple) -> str:
        """``NAME(arg=value, ...)``: the call's arguments by its signature; an extension
        or unknown number shows all five registers."""
        try:
            spec = HYPERCALL_SPECS[Hypercall(nr)]
        except (ValueError, KeyError):
            shown = ", ".join(hex(a) if a > 0xFFFF else str(a) for a in args)
            kind = "ext" if EXT_BASE <= nr < EXT_BASE + EXT_COUNT else "nr"
            return f"{kind}{nr}({shown})"
        parts = [self._arg(spec.nr, name, value, args) for name, value in zip(spec.args, args, strict=False)]
        return f"{spec.nr.name}({', '.join(parts)})"

    def _arg(self, nr: Hypercall, name: str, value: int, args: tuple) -> str:
        if name == "handle" and nr in _CHANNEL_CALLS:
            return self._channel_name(value) or f"handle={value}"
        if name == "target" and nr == Hypercall.EVENT_BIND and args[0] == EventKind.CHANNEL:
            channel = self._channel_name(value)
            return f"target={channel}" if channel else f"target={value}"
        if name == "kind" and nr == Hypercall.EVENT_BIND:
            return f"kind={_enum_name(EventKind, value)}"
        if name == "clock":
            return f"clock={_enum_name(Clock, value)}"
        if name == "prot":
            return f"prot={_flags(value)}"
        if name in _POINTERS:
            return f"{name}={value:#x}"
        return f"{name}={value:#x}" if value >= 1 << 32 else f"{name}={value}"  # a huge length: its bits

    def _wanted(self, nr: int) -> bool:
        return self._only is None or nr in self._only

    def _stamp(self) -> str:
        return f"{(self._clock() - self._t0) / 1e9:.6f}"

    def _emit(self, line: str) -> None:
        with self._lock:
            self._write(line)


def _enum_name(enum_type, value: int) -> str:
    try:
        return enum_type(value).name
    except ValueError:
        return str(value)


def _flags(value: int) -> str:
    known = [p.name for p in Prot if value & p]
    rest = value & ~sum(Prot)
    if rest:
        known.append(hex(rest))
    return "|".join(known) or "0"


def _open_target(target: str | os.PathLike | int) -> int:
    if isinstance(target, int):
        return target
    if target == "-":
        return 2
    path = os.fspath(target)
    try:
        # O_NONBLOCK: a FIFO nobody reads must not hang pyvmm in open(); a regular file only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise TraceError(f"--trace: cannot write {path}: {e.strerror}") from None
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TraceError(f"--trace: {path} is not a regular file (give a file, or --trace alone for stderr)")
    os.set_blocking(fd, True)
    return fd


def _writer(fd: int, stopping: Callable[[], bool]) -> tuple[Callable[[str], None], Callable[[], bool]]:
    """``(write, finish)``: *write* queues a line for *fd* through a bounded buffer and its own
    thread, so a trace reader that stops reading (``2>&1 | less``) slows the calling vCPU,
    as strace does, but never wedges the VMM: once the machine is *stopping* the line is
    dropped. *finish* writes what is left, bounded (see :class:`OutputBuffer`)."""
    out = OutputBuffer(fd, capacity=_TRACE_BUFFER)

    def write(line: str) -> None:
        data = memoryview(line.encode())
        while data:
            try:
                out.start()
                n = out.offer(data)
            except (RuntimeError, OSError):
                return  # no thread for it, or the reader went away: must not stop the VM
            data = data[n:]
            if data and not out.wait_space(_TRACE_WAIT_S) and stopping():
                return

    return write, out.close


#: Trace bytes pending at most; a vCPU waits for room in slices of _TRACE_WAIT_S.
_TRACE_BUFFER = 1 << 20
_TRACE_WAIT_S = 0.05


__all__ = ["TraceError", "Tracer", "call_name", "format_result", "parse_filter"]
