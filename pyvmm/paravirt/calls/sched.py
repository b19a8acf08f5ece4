"""Scheduling and time hypercalls: BLOCK, YIELD, TIMER_SET, CLOCK_GET, VCPU_UP.

Blocking happens on the vCPU's own thread, outside ``KVM_RUN``, in its
:class:`~pyvmm.parking.Parker`; an event raised for it
(:meth:`pyvmm.vcpu.Vcpu.request_upcall`) unparks it, which is much cheaper than a signal kick.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Clock, Errno, Hypercall, errno_result
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError
from pyvmm.paravirt.services import PauseKind, ThreadStartError
from pyvmm.x86.boot import RFLAGS_IF

if TYPE_CHECKING:
    from pyvmm.memory import GuestMemory
    from pyvmm.paravirt.events import EventChannels
    from pyvmm.paravirt.services import Timers, VcpuSet
    from pyvmm.vcpu import Vcpu

_CANONICAL_LIMIT = 1 << 47
_ETIME = errno_result(Errno.ETIME)
_BLOCK_NR = int(Hypercall.BLOCK)


def wait_for_event(
    vcpu: Vcpu,
    vcpus: VcpuSet,
    events: EventChannels,
    timers: Timers,
    deadline_ns: int,
    pause_as: PauseKind | None = None,
) -> bool:
    """Sleep until an upcall is pending on *vcpu*, the VM stops, or *deadline_ns*
    (0 = none). Fires *vcpu*'s own timer if it expires meanwhile. True if woken by an event.
    On *vcpu*'s own thread. *pause_as*: where a snapshot may pause the vCPU while it
    sleeps here (None: not here, e.g. a BLOCK inside a MULTICALL; it pauses after the call)."""
    parker = vcpu.parker
    vcpu_id = vcpu.id
    while True:
        with parker.guard:
            if events.has_upcall_pending(vcpu_id) or vcpus.stopping:
                return True
            # Under the guard: a pauser sets its request before it unparks us.
            pause = pause_as is not None and vcpus.pause_wanted(vcpu_id)
            now = time.monotonic_ns()
            timer = vcpu.timer_deadline
            timer_due = timer is not None and timer <= now
            if not timer_due and not pause:
                if deadline_ns and deadline_ns <= now:
                    return False
                until = min(deadline_ns or timer or 0, timer or deadline_ns or 0)
                parker.parked = True
        if pause:
            vcpus.pause_point(vcpu, pause_as)
            continue
        if timer_due:
            timers.fire_if_due(vcpu)  # raises our own VIRQ: upcall_pending is set, loop returns
            continue
        parker.park(None if not until else (until - now) / 1e9)


def install(dispatcher: Dispatcher, memory: GuestMemory, vcpus: VcpuSet, events: EventChannels, timers: Timers) -> None:
    mem = memory

    def block(vcpu, deadline, notify_port, a2, a3, a4) -> int:
        # "Reply and wait": raising notify_port in the same exit means the peer we
        # wake finds us already asleep, so it wakes us without a signal kick.
        if notify_port:
            events.notify(notify_port)
        # Xen's SCHEDOP_block: unmask upcalls, then check and sleep atomically
        # with respect to raisers (they set upcall_pending before unparking us).
        events.unmask_upcalls(vcpu.id)
        # A snapshot may pause us in here, unless this BLOCK is an entry of a MULTICALL
        # (the exit is that call's; the vCPU pauses once the whole batch is done).
        pause_as = PauseKind.BLOCK if vcpu.fd.sync_regs.rax == _BLOCK_NR else None
        woken = wait_for_event(vcpu, vcpus, events, timers, deadline, pause_as)
        if not vcpu.fd.sync_regs.rflags & RFLAGS_IF:
            # Interrupts off: the caller scans for events itself after BLOCK; an
            # upcall would only cost it an interrupt-window exit for nothing.
            vcpu.drop_upcall_request()
        return 0 if woken else _ETIME

    def yield_(vcpu, a0, a1, a2, a3, a4) -> int:
        time.sleep(0)  # releases the GIL: another vCPU thread may run
        return 0

    def timer_set(vcpu, deadline, a1, a2, a3, a4) -> int:
        if deadline == 0:
            timers.cancel(vcpu)
            return 0
        if deadline <= time.monotonic_ns():
            return _ETIME  # as Xen's VCPU_SSHOTTMR_future: the caller handles "already late"
        timers.arm(vcpu, deadline)
        return 0

    def clock_get(vcpu, clock, a1, a2, a3, a4) -> int:
        if clock == Clock.MONOTONIC:
            return time.monotonic_ns()
        if clock == Clock.REALTIME:
            return time.time_ns()
        raise HypercallError(Errno.EINVAL, f"unknown clock {clock}")

    def vcpu_up(vcpu, vcpu_id, entry, stack, arg, a4) -> int:
        if vcpu_id >= len(vcpus):
            raise HypercallError(Errno.EINVAL, f"no vCPU {vcpu_id}")
        # The guest kernel runs identity-mapped: entry and stack are addresses in RAM.
        mem.check(entry, 1)
        if not 0 < stack <= mem.size or entry >= _CANONICAL_LIMIT:
            raise HypercallError(Errno.EINVAL, "stack outside RAM")
        try:
            started = vcpus.bring_up(vcpu_id, entry=entry, stack=stack, arg=arg)
        except ThreadStartError as e:  # the host is out of threads: the guest may retry later
            raise HypercallError(Errno.ENOMEM, str(e)) from None
        if not started:
            raise HypercallError(Errno.EBUSY, f"vCPU {vcpu_id} is already running")
        return 0

    dispatcher.register_all(
        {
            Hypercall.BLOCK: block,
            Hypercall.YIELD: yield_,
            Hypercall.TIMER_SET: timer_set,
            Hypercall.CLOCK_GET: clock_get,
            Hypercall.VCPU_UP: vcpu_up,
        }
    )
