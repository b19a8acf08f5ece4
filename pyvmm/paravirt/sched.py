"""Scheduling and time hypercalls: BLOCK, YIELD, TIMER_SET, CLOCK_GET, VCPU_UP.

Blocking happens on the vCPU's own thread, outside ``KVM_RUN``, on its
condition variable; an event raised for it (:meth:`Machine.wake_vcpu`)
notifies that condition, which is cheaper than a signal kick.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Clock, Errno, Hypercall, errno_result
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.machine import Machine, VcpuContext

_CANONICAL_LIMIT = 1 << 47
_ETIME = errno_result(Errno.ETIME)


def wait_for_event(machine: Machine, ctx: VcpuContext, deadline_ns: int) -> bool:
    """Sleep until an upcall is pending on *ctx*, the machine stops, or *deadline_ns*
    (0 = none). Fires *ctx*'s own timer if it expires meanwhile. True if woken by an event."""
    events = machine.events
    with ctx.cond:
        while True:
            if events.has_upcall_pending(ctx.id) or machine.stopping:
                return True
            now = time.monotonic_ns()
            timer = ctx.timer_deadline
            if timer is not None and timer <= now:
                machine.fire_timer(ctx)  # re-entrant lock: raising wakes us, no sleep needed
                continue
            if deadline_ns and deadline_ns <= now:
                return False
            until = min(d for d in (deadline_ns or None, timer) if d is not None) if (deadline_ns or timer) else None
            ctx.blocked = True
            try:
                ctx.cond.wait(None if until is None else (until - now) / 1e9)
            finally:
                ctx.blocked = False


def install_sched(dispatcher: Dispatcher, machine: Machine) -> None:
    mem = machine.memory

    def block(ctx, deadline, a1, a2, a3, a4) -> int:
        # Xen's SCHEDOP_block: unmask upcalls, then check and sleep atomically
        # with respect to raisers (they set upcall_pending under ctx.cond's lock).
        machine.events.unmask_upcalls(ctx.id)
        return 0 if wait_for_event(machine, ctx, deadline) else _ETIME

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
