"""Scheduling and time hypercalls: BLOCK, YIELD, TIMER_SET, CLOCK_GET, VCPU_UP.

Blocking happens on the vCPU's own thread, outside ``KVM_RUN``, in its
:class:`~pyvmm.parking.Parker`; an event raised for it
(:meth:`Machine.wake_vcpu`) unparks it, which is much cheaper than a signal kick.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Clock, Errno, Hypercall, errno_result
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError
from pyvmm.x86.boot import RFLAGS_IF

if TYPE_CHECKING:
    from pyvmm.machine import Machine, VcpuContext

_CANONICAL_LIMIT = 1 << 47
_ETIME = errno_result(Errno.ETIME)


def wait_for_event(machine: Machine, ctx: VcpuContext, deadline_ns: int) -> bool:
    """Sleep until an upcall is pending on *ctx*, the machine stops, or *deadline_ns*
    (0 = none). Fires *ctx*'s own timer if it expires meanwhile. True if woken by an event."""
    events = machine.events
    parker = ctx.parker
    while True:
        with parker.guard:
            if events.has_upcall_pending(ctx.id) or machine.stopping:
                return True
            now = time.monotonic_ns()
            timer = ctx.timer_deadline
            timer_due = timer is not None and timer <= now
            if not timer_due:
                if deadline_ns and deadline_ns <= now:
                    return False
                until = min(deadline_ns or timer or 0, timer or deadline_ns or 0)
                parker.parked = True
        if timer_due:
            machine.fire_timer(ctx)  # raises our own VIRQ: upcall_pending is set, loop returns
            continue
        parker.park(None if not until else (until - now) / 1e9)


def install_sched(dispatcher: Dispatcher, machine: Machine) -> None:
    mem = machine.memory

    def block(ctx, deadline, notify_port, a2, a3, a4) -> int:
        # "Reply and wait": raising notify_port in the same exit means the peer we
        # wake finds us already asleep, so it wakes us without a signal kick.
        if notify_port:
            machine.events.notify(notify_port)
        # Xen's SCHEDOP_block: unmask upcalls, then check and sleep atomically
        # with respect to raisers (they set upcall_pending before unparking us).
        machine.events.unmask_upcalls(ctx.id)
        woken = wait_for_event(machine, ctx, deadline)
        if not ctx.vcpu.sync_regs.rflags & RFLAGS_IF:
            # Interrupts off: the caller scans for events itself after BLOCK; an
            # upcall would only cost it an interrupt-window exit for nothing.
            ctx.want_upcall = False
        return 0 if woken else _ETIME

    def yield_(ctx, a0, a1, a2, a3, a4) -> int:
        time.sleep(0)  # releases the GIL: another vCPU thread may run
        return 0

    def timer_set(ctx, deadline, a1, a2, a3, a4) -> int:
        if deadline == 0:
            machine.cancel_timer(ctx)
            return 0
        if deadline <= time.monotonic_ns():
            return _ETIME  # as Xen's VCPU_SSHOTTMR_future: the caller handles "already late"
        machine.arm_timer(ctx, deadline)
        return 0

    def clock_get(ctx, clock, a1, a2, a3, a4) -> int:
        if clock == Clock.MONOTONIC:
            return time.monotonic_ns()
        if clock == Clock.REALTIME:
            return time.time_ns()
        raise HypercallError(Errno.EINVAL, f"unknown clock {clock}")

    def vcpu_up(ctx, vcpu_id, entry, stack, arg, a4) -> int:
        if vcpu_id >= len(machine.vcpus):
            raise HypercallError(Errno.EINVAL, f"no vCPU {vcpu_id}")
        # The guest kernel runs identity-mapped: entry and stack are addresses in RAM.
        mem.check(entry, 1)
        if not 0 < stack <= mem.size or entry >= _CANONICAL_LIMIT:
            raise HypercallError(Errno.EINVAL, "stack outside RAM")
        target = machine.vcpus[vcpu_id]
        if not machine.bring_up(target, entry=entry, stack=stack, arg=arg):
            raise HypercallError(Errno.EBUSY, f"vCPU {vcpu_id} is already running")
        return 0

    dispatcher.register(Hypercall.BLOCK, block)
    dispatcher.register(Hypercall.YIELD, yield_)
    dispatcher.register(Hypercall.TIMER_SET, timer_set)
    dispatcher.register(Hypercall.CLOCK_GET, clock_get)
    dispatcher.register(Hypercall.VCPU_UP, vcpu_up)
