"""The instrumented run loop behind ``pyvmm run --stats`` (``MachineConfig.stats``).

It does what :func:`pyvmm.runloop.run_loop` does, exit for exit, and also
times each exit into :class:`pyvmm.metrics.VcpuMetrics`: time inside
``KVM_RUN``, time in pyvmm's own code, and each hypercall handler's time.
It is a separate function so the default loop carries no timing code; keep
the two in step when the default loop changes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import get_errno, ioctl_int
from pyvmm.kvm.constants import EXIT_IO_OUT, SYNC_X86_REGS, Ioctl
from pyvmm.metrics import INTERRUPTED, OUT_OF_RANGE, add, new_agg
from pyvmm.paravirt.abi import HYPERCALL_PORT
from pyvmm.paravirt.dispatcher import GuestExit
from pyvmm.runloop import _EXIT_IO, handle_slow_exit, interrupted

if TYPE_CHECKING:
    from pyvmm.machine import VcpuContext

_NEGATIVE = 1 << 63  # a u64 result with the sign bit set is -errno


def run_loop_stats(ctx: VcpuContext) -> str | None:
    """:func:`pyvmm.runloop.run_loop` with per-exit timing; same contract."""
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
    clock = time.perf_counter_ns
    m = machine.metrics.for_vcpu(ctx.id)
    kvm_aggs = m.kvm_run
    vmm_aggs = m.vmm
    hc_aggs = m.hypercalls
    errors = m.errors
    s_run = m.samples_kvm_run
    s_vmm = m.samples_vmm
    io_run = kvm_aggs.setdefault(_EXIT_IO, new_agg())
    io_vmm = vmm_aggs.setdefault(_EXIT_IO, new_agg())
    seen_first = ctx.id != 0
    if not seen_first:
        machine.times.first_run = time.monotonic_ns()
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            deliver(ctx)
        t0 = clock()
        rc = ioctl_int(fd, req, 0)
        t1 = clock()
        ctx.in_guest = False
        if rc != 0:
            add(kvm_aggs.setdefault(INTERRUPTED, new_agg()), t1 - t0)
            if interrupted(ctx, get_errno()):
                return None
            add(vmm_aggs.setdefault(INTERRUPTED, new_agg()), clock() - t1)
            continue
        reason = run.exit_reason
        if reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4 and io.count == 1:
            if not seen_first:
                machine.times.first_hypercall = time.monotonic_ns()
                seen_first = True
            nr = regs.rax
            slot = nr if nr < OUT_OF_RANGE else OUT_OF_RANGE
            th = clock()
            try:
                result = dispatch(ctx, nr, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
            except GuestExit:
                t2 = clock()
                add(hc_aggs[slot], t2 - th)
                add(io_run, t1 - t0)
                add(io_vmm, t2 - t1)
                raise
            regs.rax = result
            run.kvm_dirty_regs |= dirty
            t2 = clock()
            add(hc_aggs[slot], t2 - th)
            if result & _NEGATIVE:
                errors[slot] += 1
            add(io_run, t1 - t0)
            add(io_vmm, t2 - t1)
            if s_run is not None:
                s_run.append(t1 - t0)
                s_vmm.append(t2 - t1)
            continue
        crash = handle_slow_exit(ctx)
        add(kvm_aggs.setdefault(reason, new_agg()), t1 - t0)
        add(vmm_aggs.setdefault(reason, new_agg()), clock() - t1)
        if crash is not None:
            return crash
        if machine.stopping:
            return None
