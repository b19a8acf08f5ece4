"""The per-vCPU run loop: ``KVM_RUN``, then route the exit.

The hypercall exit is the hot path and is handled inline with everything
bound to locals: registers come from the ``kvm_run`` page (sync regs, no
ioctl), the result goes back the same way. Every other exit goes to
:func:`handle_slow_exit`.
"""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import get_errno, ioctl_int
from pyvmm.kvm.constants import EXIT_IO_OUT, SYNC_X86_REGS, ExitReason, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.paravirt.abi import HYPERCALL_PORT
from pyvmm.paravirt.dispatcher import GuestExit

if TYPE_CHECKING:
    from pyvmm.machine import VcpuContext

_EXIT_IO = int(ExitReason.IO)
_EXIT_INTR = int(ExitReason.INTR)


def vcpu_thread_main(ctx: VcpuContext) -> None:
    """Thread body: run the loop, and turn whatever ends it into a machine stop."""
    from pyvmm.crash import build_report
    from pyvmm.machine import RunResult, StopReason

    machine = ctx.machine
    try:
        reason = run_loop(ctx)
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

    Raises :class:`GuestExit` when the guest shuts down.
    """
    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    regs = vcpu.sync_regs
    io = run.exit.io
    fd = vcpu.fd
    req = int(Ioctl.RUN)
    dispatch = machine.dispatcher.dispatch
    port = HYPERCALL_PORT
    out = EXIT_IO_OUT
    dirty = SYNC_X86_REGS
    pending = ctx.pending
    seen_first = ctx.id != 0
    if not seen_first:
        machine.times.first_run = time.monotonic_ns()
    while True:
        if ioctl_int(fd, req, 0) != 0:
            err = get_errno()
            if err != errno.EINTR and err != errno.EAGAIN:
                raise KvmError("KVM_RUN", err)
            run.immediate_exit = 0  # before draining: a later kick re-arms it
            if machine.stopping:
                return None
            while pending:
                pending.popleft()(ctx)
            continue
        if run.exit_reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4:
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


def handle_slow_exit(ctx: VcpuContext) -> str | None:
    """Handle a non-hypercall exit; returns a crash reason, or None to keep running."""
    info = ctx.vcpu.exit_info()
    reason = info.reason
    if reason == _EXIT_INTR:
        return None
    if reason == ExitReason.IO:
        if info.port == HYPERCALL_PORT:
            return f"bad hypercall access ({info.describe()}): hypercalls are 'outl %eax, ${HYPERCALL_PORT:#x}'"
        return f"unhandled port I/O: {info.describe()}"
    if reason == ExitReason.MMIO:
        return f"access outside guest RAM: {info.describe()}"
    if reason == ExitReason.SHUTDOWN:
        return "triple fault (KVM_EXIT_SHUTDOWN)"
    if reason == ExitReason.HLT:
        return "HLT with nothing to wake the vCPU"
    return f"unhandled exit: {info.describe()}"
