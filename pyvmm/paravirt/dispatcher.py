"""The hypercall dispatcher: a fixed handler table, syscall-shaped results.

A handler is ``handler(vcpu, a0, a1, a2, a3, a4) -> int`` where the arguments
are the guest's ``rdi, rsi, rdx, r10, r8``. It returns a non-negative result or
raises :class:`HypercallError` (or :class:`~pyvmm.memory.GuestMemoryError`);
the dispatcher turns either into the negative errno the guest sees in ``rax``.
Unknown numbers get ``-ENOSYS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyvmm.memory import GuestMemoryError
from pyvmm.paravirt.abi import Errno, Hypercall, errno_result

U64 = 0xFFFF_FFFF_FFFF_FFFF

Handler = Callable[[Any, int, int, int, int, int], int]


class HypercallError(Exception):
    """Raised by a handler to fail the hypercall with ``-errno``."""

    def __init__(self, err: Errno, why: str = "") -> None:
        super().__init__(f"{err.name}: {why}" if why else err.name)
        self.errno = err


class GuestExit(Exception):  # noqa: N818 - control flow, not an error
    """Raised by SHUTDOWN: the guest asked to stop with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


_ENOSYS = errno_result(Errno.ENOSYS)
_EFAULT = errno_result(Errno.EFAULT)


def _enosys(vcpu, a0, a1, a2, a3, a4) -> int:
    return _ENOSYS


class Dispatcher:
    """Maps hypercall numbers to handlers; :meth:`dispatch` is on the per-exit hot path."""

    SIZE = 64  # numbers >= SIZE are -ENOSYS without a table lookup

    def __init__(self) -> None:
        self.table: list[Handler] = [_enosys] * self.SIZE
        self.counts = [0] * self.SIZE

    def register(self, nr: Hypercall, handler: Handler) -> None:
        self.table[nr] = handler

    def dispatch(self, vcpu, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int) -> int:
        """Run hypercall *nr*; returns the u64 for ``rax``. Lets :class:`GuestExit` through."""
        if nr >= self.SIZE:
            return _ENOSYS
        self.counts[nr] += 1
        try:
            return self.table[nr](vcpu, a0, a1, a2, a3, a4) & U64
        except GuestMemoryError:
            return _EFAULT
        except HypercallError as e:
            return errno_result(e.errno)
