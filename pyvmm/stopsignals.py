"""The host signals that stop pyvmm, in one table, handled from the first line of ``main``.

Every signal whose default action would end the process (terminate, or dump core)
without being a fault in pyvmm's own code is a *stop signal*: SIGINT and SIGTERM,
but also SIGHUP (the terminal went away), SIGQUIT (Ctrl-\\), SIGUSR1/2, the timer
signals, SIGXCPU/SIGXFSZ, SIGIO, SIGPWR, SIGSTKFLT and the real-time signals pyvmm
does not use itself. Left at their default, each of them killed pyvmm mid-run with no
cleanup: a listening socket file stayed behind and disks were not fsync'd. pyvmm
handles every one of them as it handles SIGTERM: the VM stops, its devices are
closed (disks fsync'd, socket files removed) and the exit status is 128 + N.

Not in the table: SIGKILL and SIGSTOP (they cannot be caught), SIGPIPE (ignored by
Python: a gone reader is ``-EPIPE`` for the guest), the synchronous faults (SIGSEGV,
SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS: a handler cannot resume pyvmm after
them), the job-control and ignored-by-default signals, and :data:`KICK_SIGNAL`.

There are two phases. From the first line of ``main`` until the VM runs,
:func:`install_early` makes a stop signal raise :class:`StopSignal`, which unwinds
the build like any error (every resource is released by the stack that acquired it)
and ``main`` turns into exit status 128 + N with at most one line: no
``KeyboardInterrupt`` traceback, no default death. While the VM runs, the runner
installs its own handler for :func:`stop_signals` (it asks the machine to stop: a
handler there must not unwind a vCPU's thread). One table, so that an option that
gives a signal another meaning (a later ``--snapshot-on SIGUSR1``) takes it out
with ``exclude``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator

#: The signal that kicks a vCPU thread out of ``KVM_RUN`` (:mod:`pyvmm.vcpu`): never a stop signal.
KICK_SIGNAL = signal.SIGRTMIN

_NAMED = (
    "SIGHUP SIGINT SIGQUIT SIGTERM SIGUSR1 SIGUSR2 SIGALRM SIGVTALRM SIGPROF SIGXCPU SIGXFSZ SIGIO SIGPWR SIGSTKFLT"
).split()

#: Every stop signal this host has, in number order.
STOP_SIGNALS: tuple[int, ...] = tuple(
    sorted(
        {int(getattr(signal, name)) for name in _NAMED if hasattr(signal, name)}
        | {n for n in range(signal.SIGRTMIN, signal.SIGRTMAX + 1) if n != KICK_SIGNAL}
    )
)


def stop_signals(exclude: Iterable[int] = ()) -> tuple[int, ...]:
    """:data:`STOP_SIGNALS` without *exclude* (signals an option has given another meaning)."""
    taken = {int(s) for s in exclude}
    return tuple(s for s in STOP_SIGNALS if s not in taken)


def name(signum: int) -> str:
    """``SIGTERM``, or ``SIGRTMIN+3`` for a real-time signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


class StopSignal(BaseException):
    """A stop signal arrived before the VM ran: unwind, then exit with :attr:`status`.

    A ``BaseException``, as ``KeyboardInterrupt`` is: ``except Exception`` clauses that
    turn errors into one-line messages must let it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.status = 128 + signum


def unwrap(exc: BaseException) -> StopSignal | None:
    """The StopSignal behind *exc*, if Python wrapped one (``type.__new__`` turns an exception
    from ``__set_name__`` into ``RuntimeError``, with the StopSignal as its cause: a signal
    that lands while a dataclass is being created arrives that way)."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, StopSignal):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


_first: int | None = None
_raising = False
_default_unraisablehook = sys.unraisablehook


def _raise_once(signum, frame) -> None:
    global _first
    if _first is not None or not _raising:
        return  # a second signal while the first unwinds, or after main: the cleanup goes on
    _first = signum
    raise StopSignal(signum)


def _unraisable(unraisable) -> None:
    """A :class:`StopSignal` raised where Python cannot propagate it (a weakref callback such
    as importlib's module-lock one, a ``__del__``) would be printed as "Exception ignored"
    and lost: send the signal again instead, so it is raised at the next ordinary bytecode."""
    global _first
    exc = unraisable.exc_value
    if not isinstance(exc, StopSignal):
        _default_unraisablehook(unraisable)
        return
    _first = None
    _send_later(exc.signum)


#: How long after a lost StopSignal it is sent again: the main thread is back in ordinary code by then.
RESEND_DELAY_S = 0.005


def _send_later(signum: int) -> None:
    """Send *signum* to this process again, from another thread, a moment from now.

    Not from here: ``os.kill`` of this process checks for signals before it returns (as
    ``signal.raise_signal`` does), so the handler would run inside the hook and its
    StopSignal would be lost a second time ("Exception ignored in sys.unraisablehook",
    seen on a slow nested host). If it lands in such a callback again, this repeats."""
    import threading  # here: stopsignals is imported before anything else, threads are rare

    try:
        timer = threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
    except RuntimeError:  # no thread (a tiny RLIMIT_AS): the old way, at worst a printed traceback
        os.kill(os.getpid(), signum)


def install_early(exclude: Iterable[int] = ()) -> None:
    """Make every stop signal raise :class:`StopSignal` (once); main thread only."""
    global _raising
    _raising = True
    sys.unraisablehook = _unraisable
    for sig in stop_signals(exclude):
        signal.signal(sig, _raise_once)


def received() -> int | None:
    """The stop signal :func:`install_early`'s handler took, if any (whether or not its
    exception got through: the runner checks this once its own handler is in place)."""
    return _first


def quiet() -> None:
    """From now on stop signals raise nothing (``main`` is returning: an exception
    raised at interpreter exit would print a traceback). The handlers stay, so the
    signals still do not kill pyvmm half-way through its exit."""
    global _raising
    _raising = False
    sys.unraisablehook = _default_unraisablehook


def handle(handler: Callable[[int, object], None], exclude: Iterable[int] = ()) -> dict[int, object]:
    """Install *handler* for every stop signal; returns the previous handlers for :func:`restore`."""
    return {sig: signal.signal(sig, handler) for sig in stop_signals(exclude)}


def restore(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold the stop signals back (blocked, in this thread) for the body: for steps that must
    not be cut in two, such as forking a helper and recording it so that it is cleaned up.
    A signal that arrived meanwhile is handled once the body is done."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
