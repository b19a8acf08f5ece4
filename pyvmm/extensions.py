"""What a user adds to a VM without changing pyvmm: extension hypercalls, Python channels, hooks.

One registry, :class:`Extensions`, filled before the machine is built by
:class:`pyvmm.api.VM` (its ``hypercall``/``add_channel``/``on`` methods) and by
``pyvmm run --plugin`` (a plugin's ``setup(vm)`` gets one), then attached to the
built machine by :meth:`Extensions.attach`. Registration errors are
:class:`ExtensionError`, one line each.

Hooks (``on(event, fn)``), all called on the vCPU's thread unless said otherwise:

- ``"before_hypercall"``: ``fn(vcpu_id, nr, args)`` before each hypercall is dispatched;
- ``"hypercall"``: ``fn(vcpu_id, nr, args, result, ns)`` after it (``result`` the u64 the
  guest gets in ``rax``; ``ns`` the dispatch time). SHUTDOWN does not return, so it has
  only a ``before_hypercall``;
- ``"exit"``: ``fn(vcpu_id, exit_reason)`` for every exit that is not a hypercall (a
  :class:`pyvmm.kvm.constants.ExitReason` value: HLT, the interrupt window, a crash);
- ``"stop"``: ``fn(result)`` once, on the thread that ran the VM, after every vCPU stopped.

With no hypercall hook registered the run loop dispatches directly: hooks cost nothing
unless used. A hook that raises stops the VM with a crash report (a hook is the user's
code observing the VM: it must not fail silently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.paravirt.abi import EXT_BASE, EXT_COUNT, ChannelFlag, Errno

if TYPE_CHECKING:
    from pyvmm.machine import Machine
    from pyvmm.memory import GuestMemory

#: A hypercall written in Python: ``fn(vcpu_id, args, memory) -> int``; *args* are the
#: guest's ``rdi, rsi, rdx, r10, r8``; *memory* the checked accessor.
PyHypercall = Callable[[int, tuple, "GuestMemory"], int]

EVENTS = ("before_hypercall", "hypercall", "exit", "stop")


class ExtensionError(Exception):
    """A registration pyvmm refuses (a number outside the extension range or taken, an
    unknown event, something that is not a Channel). The message is one line."""


@dataclass
class Extensions:
    """The user's additions to one VM, collected before it is built.

    *first_channel_handle*: the handle the first added channel gets (after the
    console and the configured disks and streams).
    """

    first_channel_handle: int = 1
    hypercalls: dict[int, PyHypercall] = field(default_factory=dict)
    channels: list[Channel] = field(default_factory=list)
    hooks: dict[str, list[Callable]] = field(default_factory=lambda: {event: [] for event in EVENTS})

    def hypercall(self, nr: int, fn: PyHypercall) -> None:
        """Serve extension hypercall *nr* (``EXT_BASE <= nr < EXT_BASE + EXT_COUNT``) with
        *fn*: it returns a non-negative int or raises :class:`pyvmm.HypercallError`; any
        other exception gives the guest ``-EIO``."""
        if not isinstance(nr, int) or not EXT_BASE <= nr < EXT_BASE + EXT_COUNT:
            raise ExtensionError(
                f"hypercall {nr!r} is not in the extension range ({EXT_BASE}..{EXT_BASE + EXT_COUNT - 1})"
            )
        if nr in self.hypercalls:
            raise ExtensionError(f"hypercall {nr} is registered twice")
        if not callable(fn):
            raise ExtensionError(f"hypercall {nr}: {fn!r} is not callable")
        self.hypercalls[nr] = fn

    def add_channel(self, channel: Channel) -> int:
        """Give the guest *channel*; returns the handle it will have."""
        if not isinstance(channel, Channel):
            raise ExtensionError(f"{channel!r} is not a pyvmm.Channel")
        self.channels.append(channel)
        return self.first_channel_handle + len(self.channels) - 1

    def on(self, event: str, fn: Callable) -> None:
        """Call *fn* on *event* (see the module docstring for each one's arguments)."""
        if event not in self.hooks:
            raise ExtensionError(f"unknown event {event!r} ({', '.join(EVENTS)})")
        if not callable(fn):
            raise ExtensionError(f"on({event!r}): {fn!r} is not callable")
        self.hooks[event].append(fn)

    def devices(self) -> tuple[Channel, ...]:
        """The added channels as the machine gets them (``MachineConfig.extra_channels``):
        each behind a guard that turns its unexpected exceptions into ``-EIO``."""
        return tuple(GuardedChannel(channel) for channel in self.channels)

    def attach(self, machine: Machine) -> None:
        """Register the hypercalls and hooks on a built (not yet running) *machine*.
        The channels went in at build time (``MachineConfig.extra_channels``)."""
        mem = machine.memory
        for nr, fn in self.hypercalls.items():
            machine.dispatcher.register_extension(nr, _adapt(fn, mem))
        machine.add_hooks(
            before=self.hooks["before_hypercall"],
            after=self.hooks["hypercall"],
            on_exit=self.hooks["exit"],
        )

    def stopped(self, result) -> None:
        """Call the ``"stop"`` hooks with the run's :class:`pyvmm.Result`."""
        for fn in self.hooks["stop"]:
            fn(result)


def _adapt(fn: PyHypercall, mem: GuestMemory):
    """A dispatcher handler around the user's ``fn(vcpu_id, args, memory)``: a result that
    is not a non-negative int is the handler's bug, so ``-EIO`` (counted as one)."""

    def handler(vcpu, a0, a1, a2, a3, a4) -> int:
        result = fn(vcpu.id, (a0, a1, a2, a3, a4), mem)
        if type(result) is not int or result < 0:
            raise TypeError(f"a Python hypercall returned {result!r}, not a non-negative int")
        return result

    return handler


def format_errors(machine: Machine) -> str | None:
    """``--stats``' line for the user's code that failed (extension handlers and Python
    channels whose exceptions became ``-EIO``); None when nothing did."""
    parts = [f"nr{EXT_BASE + i}={n}" for i, n in enumerate(machine.dispatcher.extension_errors) if n]
    parts += [f"{ch.name}={ch.errors}" for ch in machine.channels if isinstance(ch, GuardedChannel) and ch.errors]
    return f"pyvmm: stats: -EIO from exceptions in Python: {' '.join(parts)}" if parts else None


class GuardedChannel(Channel):
    """A user's channel as the guest reaches it: an exception other than
    :class:`ChannelError` (a bug in the prototype) is ``-EIO`` for the guest, counted in
    :attr:`errors`, never a stopped VM, as for extension hypercalls."""

    def __init__(self, inner: Channel) -> None:
        self._inner = inner
        self.kind = inner.kind
        self.name = inner.name
        self.size = inner.size
        self.has_readiness_events = inner.has_readiness_events
        self.errors = 0

    # The event layer sets on_ready on the device: it must reach the user's object.
    @property
    def on_ready(self):
        return self._inner.on_ready

    @on_ready.setter
    def on_ready(self, fn) -> None:
        self._inner.on_ready = fn

    def _failed(self, what: str, e: Exception) -> ChannelError:
        self.errors += 1
        return ChannelError(Errno.EIO, f"channel {self.name}: {what} raised {type(e).__name__}: {e}")

    def send(self, data: memoryview, offset: int) -> int:
        try:
            return _count(self._inner.send(data, offset), len(data))
        except ChannelError:
            raise
        except Exception as e:
            raise self._failed("send", e) from None

    def recv(self, buf: memoryview, offset: int) -> int:
        try:
            return _count(self._inner.recv(buf, offset), len(buf))
        except ChannelError:
            raise
        except Exception as e:
            raise self._failed("recv", e) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except ChannelError:
            raise
        except Exception as e:
            raise self._failed("flush", e) from None

    def readiness(self) -> ChannelFlag:
        try:
            return ChannelFlag(self._inner.readiness())
        except Exception:
            self.errors += 1
            return ChannelFlag(0)  # a broken readiness: nothing holds

    def close(self) -> None:
        try:
            self._inner.close()
        except Exception:
            self.errors += 1  # the machine's teardown goes on


def _count(n, limit: int) -> int:
    """A send/recv result the dispatcher can trust: an int in ``0..limit``."""
    if type(n) is not int or not 0 <= n <= limit:
        raise TypeError(f"returned {n!r}, not a byte count in 0..{limit}")
    return n
