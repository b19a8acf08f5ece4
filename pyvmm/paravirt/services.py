"""What hypercall handlers and devices may reach: the narrow services, as Protocols.

Handlers never see the :class:`~pyvmm.machine.Machine`. Each calls module's
``install(dispatcher, ...)`` takes the services it uses, from this list:

- ``memory``: :class:`~pyvmm.memory.GuestMemory`, the one checked accessor;
- ``channels``: :class:`~pyvmm.devices.base.ChannelTable`, handle -> device;
- ``vcpus``: a :class:`VcpuSet` (below);
- ``events``: :class:`~pyvmm.paravirt.events.EventChannels`;
- ``timers``: a :class:`Timers` (below).

The machine implements them (``pyvmm.vcpu.VcpuSet``, ``pyvmm.paravirt.timers``);
tests pass their own. Contract common to every entry point here: a handler runs
on the calling vCPU's own thread, between two ``KVM_RUN``\\s of that vCPU, with
no pyvmm lock held; it may call any method below. Nothing here raises into the
guest except where a ``Raises`` line says so.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyvmm.devices.base import ChannelTable
    from pyvmm.memory import GuestMemory
    from pyvmm.paravirt.address_spaces import AddressSpaceManager
    from pyvmm.paravirt.events import EventChannels
    from pyvmm.vcpu import Vcpu

#: Work posted to a vCPU: runs on that vCPU's own thread, before it next enters the guest.
VcpuWork = Callable[["Vcpu"], None]


class PauseKind(enum.Enum):
    """Where a paused vCPU stands (what its restored copy resumes from)."""

    RUNNING = "running"  # between two exits: nothing pending
    BLOCK = "block"  # asleep in BLOCK: a restored copy returns from it with 0 (as if woken)
    HALT = "halt"  # asleep after HLT: a restored copy wakes (a HLT may always end early)
    SNAPSHOT = "snapshot"  # the vCPU whose SNAPSHOT call takes the snapshot


class ThreadStartError(Exception):
    """The host refused a new thread (``RLIMIT_AS``, ``RLIMIT_NPROC``, no memory for a stack)."""


class VcpuSet(Protocol):
    """The VM's vCPUs, by id (0 .. ``len - 1``). Every method is safe from any vCPU thread."""

    def __len__(self) -> int: ...

    def __getitem__(self, vcpu_id: int) -> Vcpu:
        """The vCPU *vcpu_id*. Raises ``IndexError`` for an id out of range."""
        ...

    @property
    def stopping(self) -> bool:
        """True once the VM is stopping: blocked vCPUs must return, none may start."""
        ...

    def bring_up(self, vcpu_id: int, *, entry: int, stack: int, arg: int) -> bool:
        """Start parked vCPU *vcpu_id* at *entry* with *stack* and *arg* in ``rdi``
        (``VCPU_UP``). False if it already runs or the VM is stopping.

        Raises :class:`ThreadStartError` when the host cannot start its thread (it stays parked)."""
        ...

    def wake(self, vcpu_id: int) -> None:
        """Make the vCPU take its pending upcall soon: unpark it if it sleeps in
        BLOCK/HLT, kick it out of ``KVM_RUN`` if it runs guest code."""
        ...

    def post(self, vcpu_id: int, work: VcpuWork) -> bool:
        """Run ``work(vcpu)`` on that vCPU's own thread before it next enters the guest.

        Returns True when the vCPU is running (kicked now, it runs *work* within
        microseconds: a caller may wait for it); False when it is not running guest
        code (parked in BLOCK/HLT, not started, or gone): *work* then runs before its
        next entry, if there is one, and waiting for it could take forever.
        """
        ...

    def others_started(self, vcpu_id: int) -> bool:
        """True if any vCPU other than *vcpu_id* has been started."""
        ...

    @property
    def pausing(self) -> bool:
        """True while a snapshot waits for the vCPUs to reach a consistent point."""
        ...

    def pause_wanted(self, vcpu_id: int) -> bool:
        """True if a pause waits for this vCPU (it has not arrived yet)."""
        ...

    def pause_point(self, vcpu: Vcpu, kind: PauseKind = PauseKind.RUNNING) -> None:
        """On *vcpu*'s own thread where its state is complete (*kind* says where): wait
        there while a pause holds it; returns at once otherwise."""
        ...


class Timers(Protocol):
    """Each vCPU's one-shot timer (``TIMER_SET``); expiry raises its ``Virq.TIMER``."""

    def arm(self, vcpu: Vcpu, deadline_ns: int) -> None:
        """Arm (or re-arm) *vcpu*'s timer for monotonic time *deadline_ns*. Its own thread only."""
        ...

    def cancel(self, vcpu: Vcpu) -> None:
        """Disarm *vcpu*'s timer (nothing if none is armed). Its own thread only."""
        ...

    def fire_if_due(self, vcpu: Vcpu) -> bool:
        """Raise *vcpu*'s timer VIRQ if its deadline has passed; exactly once per arming.
        True if it fired. Any thread."""
        ...


class Snapshots(Protocol):
    """The VM's snapshot controller, as the SNAPSHOT hypercall sees it."""

    def guest_snapshot(self, vcpu: Vcpu) -> int:
        """Pause the VM, write a snapshot, resume; 0 once written. On the caller's thread,
        inside its hypercall. Raises ``HypercallError`` (``-ENOSYS`` nowhere to write,
        ``-EBUSY`` one under way, ``-EIO``/``-ENOSPC`` a failed write)."""
        ...


@dataclass(frozen=True)
class Services:
    """Everything a calls module may be given, in one bundle (built by the machine, or a test)."""

    memory: GuestMemory
    channels: ChannelTable
    vcpus: VcpuSet
    events: EventChannels
    timers: Timers
    address_spaces: AddressSpaceManager
    snapshots: Snapshots | None = None
