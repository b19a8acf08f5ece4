"""NULL and SHUTDOWN: the calls that need no service at all."""

from __future__ import annotations

from pyvmm.paravirt.abi import Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher, GuestExit


def null(vcpu, a0, a1, a2, a3, a4) -> int:
    """The cheapest round trip, for benchmarks."""
    return 0


def shutdown(vcpu, code, a1, a2, a3, a4) -> int:
    raise GuestExit(code & 0xFF)


def install(dispatcher: Dispatcher) -> None:
    dispatcher.register_all({Hypercall.NULL: null, Hypercall.SHUTDOWN: shutdown})
