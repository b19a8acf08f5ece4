"""The hypercall dispatcher: a fixed handler table, syscall-shaped results.

A handler is ``handler(vcpu, a0, a1, a2, a3, a4) -> int``: the calling
:class:`~pyvmm.vcpu.Vcpu`, then the guest's ``rdi, rsi, rdx, r10, r8``. It
returns a non-negative result or raises :class:`HypercallError`,
:class:`~pyvmm.memory.GuestMemoryError` or a device's
:class:`~pyvmm.devices.base.ChannelError`; the dispatcher turns each into the
negative errno the guest sees in ``rax`` (the one place that does). Unknown
numbers get ``-ENOSYS``. Registering a number twice is an error, as in Solo5.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pyvmm.devices.base import ChannelError
from pyvmm.memory import GuestMemoryError
from pyvmm.paravirt.abi import EXT_BASE, EXT_COUNT, HYPERCALL_SPECS, Errno, Hypercall, errno_result
from pyvmm.paravirt.services import ThreadStartError

U64 = 0xFFFF_FFFF_FFFF_FFFF

if TYPE_CHECKING:
    from pyvmm.vcpu import Vcpu

Handler = Callable[["Vcpu", int, int, int, int, int], int]


class HypercallError(Exception):
    """Raised by a handler to fail the hypercall with ``-errno`` (an :class:`Errno`;
    public as ``pyvmm.HypercallError``)."""

    def __init__(self, err: Errno | int, why: str = "") -> None:
        err = Errno(err)
        super().__init__(f"{err.name}: {why}" if why else err.name)
        self.errno = err


class GuestExit(Exception):  # noqa: N818 - control flow, not an error
    """Raised by SHUTDOWN: the guest asked to stop with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


_ENOSYS = errno_result(Errno.ENOSYS)
_EFAULT = errno_result(Errno.EFAULT)
_EIO = errno_result(Errno.EIO)
_ENOMEM = errno_result(Errno.ENOMEM)


def _enosys(vcpu, a0, a1, a2, a3, a4) -> int:
    return _ENOSYS


def _check_arity(nr: int, handler: Handler) -> None:
    """A handler takes ``(vcpu, a0..a4)``, and the arguments past the call's signature
    (:data:`~pyvmm.paravirt.abi.HYPERCALL_SPECS`) keep their placeholder names ``a<i>``:
    a handler that reads an argument the ABI does not define fails here, not in a guest."""
    spec = HYPERCALL_SPECS.get(nr)
    code = getattr(handler, "__code__", None)
    if spec is None or code is None:
        return
    params = code.co_varnames[: code.co_argcount]
    if len(params) != 6:
        raise ValueError(f"{Hypercall(nr).name} handler takes {len(params)} parameters, not (vcpu, a0..a4)")
    for i in range(len(spec.args), 5):
        if params[1 + i] != f"a{i}":
            raise ValueError(f"{Hypercall(nr).name} has {len(spec.args)} arguments: its handler must not use a{i}")


class Dispatcher:
    """Maps hypercall numbers to handlers; :meth:`dispatch` is on the per-exit hot path.

    Numbers below ``EXT_BASE`` are the ABI's own (:meth:`register`); the extension
    range is the user's (:meth:`register_extension`).
    """

    SIZE = EXT_BASE + EXT_COUNT  # numbers >= SIZE are -ENOSYS without a table lookup

    def __init__(self) -> None:
        self.table: list[Handler] = [_enosys] * self.SIZE
        self.counts = [0] * self.SIZE
        #: Per extension number: calls whose handler raised an unexpected exception (-EIO).
        self.extension_errors = [0] * EXT_COUNT

    def register(self, nr: Hypercall, handler: Handler) -> None:
        """Serve hypercall *nr* with *handler*. Raises ``ValueError`` if *nr* has one already."""
        if not 0 <= nr < EXT_BASE:
            raise ValueError(f"hypercall {nr} is outside the ABI's range (0..{EXT_BASE - 1})")
        if self.table[nr] is not _enosys:
            raise ValueError(f"hypercall {nr} is registered twice")
        _check_arity(nr, handler)
        self.table[nr] = handler

    def register_extension(self, nr: int, handler: Handler) -> None:
        """Serve extension hypercall *nr* (``EXT_BASE <= nr < EXT_BASE + EXT_COUNT``) with
        *handler*. An exception other than the errno ones becomes ``-EIO`` for the guest
        (counted in :attr:`extension_errors`), never a stopped VM: the handler is the user's
        prototype. Raises ``ValueError`` for a number outside the range or taken."""
        if not EXT_BASE <= nr < EXT_BASE + EXT_COUNT:
            raise ValueError(f"hypercall {nr} is not in the extension range ({EXT_BASE}..{EXT_BASE + EXT_COUNT - 1})")
        if self.table[nr] is not _enosys:
            raise ValueError(f"hypercall {nr} is registered twice")

        def extension(vcpu, a0, a1, a2, a3, a4) -> int:
            try:
                return handler(vcpu, a0, a1, a2, a3, a4)
            except (HypercallError, ChannelError, GuestMemoryError, GuestExit):
                raise
            except Exception:
                self.extension_errors[nr - EXT_BASE] += 1
                return _EIO

        self.table[nr] = extension

    def extensions(self) -> int:
        """Bit i set: extension number ``EXT_BASE + i`` has a handler (``pvm_boot_info.ext_registered``)."""
        return sum(1 << i for i in range(EXT_COUNT) if self.table[EXT_BASE + i] is not _enosys)

    def register_all(self, handlers: Mapping[Hypercall, Handler]) -> None:
        """:meth:`register` each entry: a calls module's declaration of what it serves."""
        for nr, handler in handlers.items():
            self.register(nr, handler)

    def dispatch(self, vcpu: Vcpu, nr: int, a0: int, a1: int, a2: int, a3: int, a4: int) -> int:
        """Run hypercall *nr*; returns the u64 for ``rax``. Lets :class:`GuestExit` through."""
        if nr >= self.SIZE:
            return _ENOSYS
        self.counts[nr] += 1
        try:
            return self.table[nr](vcpu, a0, a1, a2, a3, a4) & U64
        except GuestMemoryError:
            return _EFAULT
        except (HypercallError, ChannelError) as e:
            return errno_result(e.errno)
        except ThreadStartError:  # a call that needed a host thread (a timer, a watcher) and got none
            return _ENOMEM
