"""The per-vCPU run loop: ``KVM_RUN``, then route the exit.

The hypercall exit is the hot path and is handled inline with everything
bound to locals: registers come from the ``kvm_run`` page (sync regs, no
ioctl), the result goes back the same way. Every other exit goes to
:func:`handle_slow_exit`.
"""

from __future__ import annotations

import ctypes
import errno
import time
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import get_errno, ioctl_int, set_timer_slack
from pyvmm.kvm.constants import EXIT_IO_OUT, SYNC_X86_REGS, ExitReason, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.paravirt.abi import HYPERCALL_PORT
from pyvmm.paravirt.dispatcher import GuestExit
from pyvmm.paravirt.sched import wait_for_event
from pyvmm.x86.boot import RFLAGS_IF, boot_regs

if TYPE_CHECKING:
    from pyvmm.machine import VcpuContext

_EXIT_IO = int(ExitReason.IO)
_EXIT_INTR = int(ExitReason.INTR)
_EXIT_HLT = int(ExitReason.HLT)
_EXIT_IRQ_WINDOW = int(ExitReason.IRQ_WINDOW_OPEN)


def vcpu_thread_main(ctx: VcpuContext) -> None:
    """Thread body: run the loop, and turn whatever ends it into a machine stop."""
    from pyvmm.crash import build_report
    from pyvmm.machine import RunResult, StopReason

    machine = ctx.machine
    set_timer_slack(1)  # BLOCK deadlines and timers wake this thread: no 50 us rounding
    try:
        if ctx.start_regs is not None:  # a secondary brought up by VCPU_UP
            entry, stack, arg = ctx.start_regs
            ctx.vcpu.set_regs(boot_regs(entry=entry, stack=stack, arg=arg))
        reason = (machine.loop or run_loop)(ctx)  # machine.loop: --stats or a benchmark variant
        if reason is not None:
            report = build_report(ctx.vcpu, ctx.id, reason, machine.memory)
            machine.stop(RunResult(StopReason.CRASH, exit_code=125, crash=report))
    except GuestExit as e:
        machine.stop(RunResult(StopReason.SHUTDOWN, exit_code=e.code))
    except KvmError as e:
        report = build_report(ctx.vcpu, ctx.id, str(e), machine.memory)
        machine.stop(RunResult(StopReason.CRASH, exit_code=125, crash=report))
    except BaseException as e:  # a VMM bug: stop the VM, never hang the process
        report = build_report(ctx.vcpu, ctx.id, f"pyvmm internal error: {type(e).__name__}: {e}", machine.memory)
        machine.stop(RunResult(StopReason.CRASH, exit_code=125, crash=report))


def run_loop(ctx: VcpuContext) -> str | None:
    """Run *ctx*'s vCPU until the machine stops (None) or the guest crashes (a reason).

    Raises :class:`GuestExit` when the guest shuts down. Uses the compiled loop
    (:mod:`pyvmm.fastloop`) where it could be built, else :func:`python_loop`.
    """
    from pyvmm.fastloop import library

    lib = library()
    return python_loop(ctx) if lib is None else native_loop(ctx, lib)


def native_loop(ctx: VcpuContext, lib) -> str | None:
    """:func:`python_loop`'s contract, with ``KVM_RUN`` and the hypercall test in C.

    Each hypercall calls back into Python for the dispatch; the callback sets
    ``stop`` to come back here (an exception to re-raise, or an upcall to
    deliver before re-entry), as does every other exit.
    """
    from pyvmm.fastloop import DISPATCH_FN

    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    dispatch = machine.dispatcher.dispatch
    deliver = machine.events.deliver
    stop = ctypes.c_int(0)
    raised: list[BaseException] = []
    first = [ctx.id == 0]

    def on_hypercall(nr, a0, a1, a2, a3, a4):
        ctx.in_guest = False  # running our code: wakers need not kick (see Machine.wake_vcpu)
        if first[0]:
            machine.times.first_hypercall = time.monotonic_ns()
            first[0] = False
        try:
            result = dispatch(ctx, nr, a0, a1, a2, a3, a4)
        except BaseException as e:  # cannot unwind through C: hand it to the loop below
            raised.append(e)
            stop.value = 1
            return 0
        ctx.in_guest = True  # then the want_upcall check, as in python_loop
        if ctx.want_upcall:
            stop.value = 1
        return result

    callback = DISPATCH_FN(on_hypercall)  # kept alive by this frame for the whole loop
    loop = lib.pyvmm_run_loop
    fd = vcpu.fd
    run_addr = ctypes.addressof(run)
    if ctx.id == 0:
        machine.times.first_run = time.monotonic_ns()
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            deliver(ctx)
        rc = loop(fd, run_addr, HYPERCALL_PORT, callback, stop)
        ctx.in_guest = False
        if raised:
            exc = raised.pop()
            try:
                raise exc
            finally:
                del exc  # no frame -> exception -> traceback -> frame cycle holding the kvm_run view
        if rc == 1:
            stop.value = 0
            continue
        if rc < 0:
            if interrupted(ctx, -rc):
                return None
            continue
        reason = handle_slow_exit(ctx)
        if reason is not None:
            return reason
        if machine.stopping:
            return None


def python_loop(ctx: VcpuContext) -> str | None:
    """The run loop in Python: the reference, and the fallback without gcc."""
    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    regs = vcpu.sync_regs
    io = run.exit.io
    fd = vcpu.fd
    req = int(Ioctl.RUN)
    dispatch = machine.dispatcher.dispatch
    deliver = machine.events.deliver
    port = HYPERCALL_PORT
    out = EXIT_IO_OUT
    dirty = SYNC_X86_REGS
    seen_first = ctx.id != 0
    if not seen_first:
        machine.times.first_run = time.monotonic_ns()
    while True:
        # in_guest before the want_upcall check: a waker that sets want_upcall
        # after our check sees in_guest and kicks us (see Machine.wake_vcpu).
        ctx.in_guest = True
        if ctx.want_upcall:
            deliver(ctx)
        rc = ioctl_int(fd, req, 0)
        ctx.in_guest = False
        if rc != 0:
            if interrupted(ctx, get_errno()):
                return None
            continue
        # count == 1: a `rep outsl` of several dwords is an ABI violation, not a hypercall (issue 6).
        if run.exit_reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4 and io.count == 1:
            if not seen_first:
                machine.times.first_hypercall = time.monotonic_ns()
                seen_first = True
            regs.rax = dispatch(ctx, regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
            run.kvm_dirty_regs |= dirty  # |=: AS_SWITCH may have marked the sregs dirty too
            continue
        reason = handle_slow_exit(ctx)
        if reason is not None:
            return reason
        if machine.stopping:
            return None


def interrupted(ctx: VcpuContext, err: int) -> bool:
    """``KVM_RUN`` failed with *err*: raise unless it was a kick (``EINTR``/``EAGAIN``),
    then run the work posted to this vCPU. True when the loop must end (machine stopping)."""
    if err != errno.EINTR and err != errno.EAGAIN:
        raise KvmError("KVM_RUN", err)
    ctx.vcpu.run.immediate_exit = 0  # before draining: a later kick re-arms it
    if ctx.machine.stopping:
        return True
    pending = ctx.pending
    while pending:
        pending.popleft()(ctx)
    return False


def handle_slow_exit(ctx: VcpuContext) -> str | None:
    """Handle a non-hypercall exit; returns a crash reason, or None to keep running."""
    reason = ctx.vcpu.run.exit_reason
    if reason == _EXIT_INTR or reason == _EXIT_IRQ_WINDOW:
        ctx.vcpu.run.request_interrupt_window = 0
        ctx.want_upcall = True  # the window is open: the caller injects now
        return None
    if reason == _EXIT_HLT:
        return halt(ctx)
    info = ctx.vcpu.exit_info()
    if reason == ExitReason.IO:
        if info.port == HYPERCALL_PORT:
            return f"bad hypercall access ({info.describe()}): hypercalls are 'outl %eax, ${HYPERCALL_PORT:#x}'"
        return f"unhandled port I/O: {info.describe()}"
    if reason == ExitReason.MMIO:
        return f"access outside guest RAM: {info.describe()}"
    if reason == ExitReason.SHUTDOWN:
        return "triple fault (KVM_EXIT_SHUTDOWN)"
    return f"unhandled exit: {info.describe()}"


def halt(ctx: VcpuContext) -> str | None:
    """HLT waits for an event, like a CPU for an interrupt.

    A vCPU that halts with interrupts off while nothing else can ever raise an
    event for it (no other vCPU up, no timer armed, no channel bound) would
    sleep forever: that is reported as a crash instead.
    """
    machine = ctx.machine
    interrupts_on = bool(ctx.vcpu.sync_regs.rflags & RFLAGS_IF)
    others = any(c.started for c in machine.vcpus if c is not ctx)
    bound = any(p is not None and p.kind != 1 for p in machine.events.ports)  # VIRQ or CHANNEL ports
    if not interrupts_on and not others and ctx.timer_deadline is None and not bound:
        if not machine.events.has_upcall_pending(ctx.id):
            return "HLT with interrupts disabled and nothing to wake the vCPU"
    wait_for_event(machine, ctx, 0)
    return None
