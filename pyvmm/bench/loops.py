"""Run-loop variants for the baselines and the fast-path experiments.

Each is a drop-in for :func:`pyvmm.runloop.run_loop` (``Machine.loop``):
same contract, same handling of every exit but the one it changes, so a
benchmark running the same guest measures only that change.

- :func:`c_null_loop`: baseline (a), NULL hypercalls answered in C, no dispatch;
- :func:`~pyvmm.runloop.python_loop`: the run loop in Python (pyvmm's default is the compiled
  :func:`~pyvmm.runloop.native_loop`; this is its fallback without gcc);
- :func:`getregs_loop`: registers by ``KVM_GET_REGS``/``KVM_SET_REGS`` instead of sync regs;
- :func:`nodispatch_loop`: NULL answered inline in the loop (what the dispatcher call costs);
- :func:`cffi_loop`: ``KVM_RUN`` through cffi instead of ctypes;
- :func:`lean_loop`: the exit read as 64-bit words of a memoryview instead of ctypes fields.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm.kvm import structs as s
from pyvmm.kvm._libc import get_errno, ioctl_int, ioctl_ptr
from pyvmm.kvm.constants import EXIT_IO_OUT, SYNC_X86_REGS, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.paravirt.abi import HYPERCALL_PORT, Hypercall
from pyvmm.runloop import _EXIT_IO, handle_slow_exit, interrupted, python_loop

if TYPE_CHECKING:
    from pyvmm.machine import VcpuContext

Loop = Callable[["VcpuContext"], "str | None"]
_RUN = int(Ioctl.RUN)


def _is_hypercall(run) -> bool:
    io = run.exit.io
    return run.exit_reason == _EXIT_IO and io.port == HYPERCALL_PORT and io.direction == EXIT_IO_OUT and io.size == 4


def _python_exit(ctx: VcpuContext) -> str | bool | None:
    """Handle the exit in ``kvm_run`` as pyvmm does; False = keep running."""
    run = ctx.vcpu.run
    if _is_hypercall(run):
        r = ctx.vcpu.sync_regs
        r.rax = ctx.machine.dispatcher.dispatch(ctx, r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8)
        run.kvm_dirty_regs = SYNC_X86_REGS
        return False
    reason = handle_slow_exit(ctx)
    if reason is not None:
        return reason
    return None if ctx.machine.stopping else False


def c_null_loop(ctx: VcpuContext) -> str | None:
    """Baseline (a): the C loop answers NULL hypercalls; Python sees only the other exits."""
    from pyvmm.bench.native import native

    lib = native()
    vcpu = ctx.vcpu
    fd = vcpu.fd
    run_addr = ctypes.addressof(vcpu.run)
    answered = ctypes.c_ulong(0)
    machine = ctx.machine
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            machine.events.deliver(ctx)
        rc = lib.pyvmm_null_loop(fd, run_addr, HYPERCALL_PORT, ctypes.byref(answered))
        ctx.in_guest = False
        if rc < 0:
            if interrupted(ctx, -rc):
                return None
            continue
        done = _python_exit(ctx)
        if done is not False:
            return done


def c_cffi_callback_loop(ctx: VcpuContext) -> str | None:
    """:func:`~pyvmm.runloop.native_loop`'s C loop (``pyvmm/fastloop.c``), entered and called
    back through cffi (ABI mode) instead of ctypes."""
    import cffi

    from pyvmm.bench.native import NativeBuildError
    from pyvmm.fastloop import library

    compiled = library()
    if compiled is None:
        raise NativeBuildError("the compiled run loop is not available (gcc missing, or PYVMM_LOOP=python)")
    ffi = cffi.FFI()
    ffi.cdef(
        "long pyvmm_run_loop(int fd, void *run, unsigned port,"
        " uint64_t (*dispatch)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t), int *stop);"
    )
    lib = ffi.dlopen(compiled._name)
    vcpu = ctx.vcpu
    machine = ctx.machine
    dispatch = machine.dispatcher.dispatch
    stop = ffi.new("int *")
    raised: list[BaseException] = []

    @ffi.callback("uint64_t(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)")
    def on_hypercall(nr, a0, a1, a2, a3, a4):
        try:
            result = dispatch(ctx, nr, a0, a1, a2, a3, a4)
        except BaseException as e:
            raised.append(e)
            stop[0] = 1
            return 0
        if ctx.want_upcall:
            stop[0] = 1
        return result

    fd = vcpu.fd
    run_ptr = ffi.cast("void *", ctypes.addressof(vcpu.run))
    loop = lib.pyvmm_run_loop
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            machine.events.deliver(ctx)
        rc = loop(fd, run_ptr, HYPERCALL_PORT, on_hypercall, stop)
        ctx.in_guest = False
        if raised:
            raise raised[0]
        if rc < 0:
            if interrupted(ctx, -rc):
                return None
            continue
        if rc == 1:
            stop[0] = 0
            if machine.stopping:
                return None
            continue
        reason = handle_slow_exit(ctx)
        if reason is not None:
            return reason
        if machine.stopping:
            return None


def getregs_loop(ctx: VcpuContext) -> str | None:
    """Before sync regs: ``KVM_GET_REGS`` and ``KVM_SET_REGS`` around every hypercall."""
    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    run.kvm_valid_regs = 0  # KVM stops publishing registers in kvm_run
    regs = s.KvmRegs()
    get_req, set_req = int(Ioctl.GET_REGS), int(Ioctl.SET_REGS)
    io = run.exit.io
    fd = vcpu.fd
    dispatch = machine.dispatcher.dispatch
    port, out = HYPERCALL_PORT, EXIT_IO_OUT
    try:
        while True:
            ctx.in_guest = True
            if ctx.want_upcall:
                machine.events.deliver(ctx)
            rc = ioctl_int(fd, _RUN, 0)
            ctx.in_guest = False
            if rc != 0:
                if interrupted(ctx, get_errno()):
                    return None
                continue
            if run.exit_reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4:
                if ioctl_ptr(fd, get_req, regs) < 0:
                    raise KvmError("KVM_GET_REGS", get_errno())
                regs.rax = dispatch(ctx, regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
                if ioctl_ptr(fd, set_req, regs) < 0:
                    raise KvmError("KVM_SET_REGS", get_errno())
                continue
            # Slow paths read sync regs: fill them the slow way (KVM leaves them alone while not valid).
            if ioctl_ptr(fd, get_req, vcpu.sync_regs) < 0:
                raise KvmError("KVM_GET_REGS", get_errno())
            reason = handle_slow_exit(ctx)
            if reason is not None:
                return reason
            if machine.stopping:
                return None
    finally:
        run.kvm_valid_regs = SYNC_X86_REGS


def nodispatch_loop(ctx: VcpuContext) -> str | None:
    """The default loop with NULL answered inline: the difference is the dispatcher call."""
    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    regs = vcpu.sync_regs
    io = run.exit.io
    fd = vcpu.fd
    dispatch = machine.dispatcher.dispatch
    port, out, dirty, null = HYPERCALL_PORT, EXIT_IO_OUT, SYNC_X86_REGS, int(Hypercall.NULL)
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            machine.events.deliver(ctx)
        rc = ioctl_int(fd, _RUN, 0)
        ctx.in_guest = False
        if rc != 0:
            if interrupted(ctx, get_errno()):
                return None
            continue
        if run.exit_reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4:
            nr = regs.rax
            regs.rax = 0 if nr == null else dispatch(ctx, nr, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
            run.kvm_dirty_regs = dirty
            continue
        reason = handle_slow_exit(ctx)
        if reason is not None:
            return reason
        if machine.stopping:
            return None


def cffi_loop(ctx: VcpuContext) -> str | None:
    """The default loop with ``KVM_RUN`` called through cffi (ABI mode) instead of ctypes."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef("int ioctl(int fd, unsigned long request, unsigned long arg);")
    libc = ffi.dlopen(None)
    ioctl = libc.ioctl
    machine = ctx.machine
    vcpu = ctx.vcpu
    run = vcpu.run
    regs = vcpu.sync_regs
    io = run.exit.io
    fd = vcpu.fd
    dispatch = machine.dispatcher.dispatch
    port, out, dirty = HYPERCALL_PORT, EXIT_IO_OUT, SYNC_X86_REGS
    while True:
        ctx.in_guest = True
        if ctx.want_upcall:
            machine.events.deliver(ctx)
        rc = ioctl(fd, _RUN, 0)
        ctx.in_guest = False
        if rc != 0:
            if interrupted(ctx, ffi.errno):
                return None
            continue
        if run.exit_reason == _EXIT_IO and io.port == port and io.direction == out and io.size == 4:
            regs.rax = dispatch(ctx, regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
            run.kvm_dirty_regs = dirty
            continue
        reason = handle_slow_exit(ctx)
        if reason is not None:
            return reason
        if machine.stopping:
            return None


# kvm_run as 64-bit words: exit_reason in the low half of word 1; the io exit
# (direction, size, port, count) is word 4; kvm_dirty_regs word 37; sync regs from word 38.
_W_REASON, _W_IO, _W_DIRTY = 1, 4, 37
_W_RAX, _W_RDX, _W_RSI, _W_RDI, _W_R8, _W_R10 = 38, 41, 42, 43, 46, 48
_HYPERCALL_IO_WORD = EXIT_IO_OUT | 4 << 8 | HYPERCALL_PORT << 16 | 1 << 32


def lean_loop(ctx: VcpuContext) -> str | None:
    """The default loop reading the exit as memoryview words (one compare for the io exit)."""
    machine = ctx.machine
    vcpu = ctx.vcpu
    words = vcpu.run_bytes.cast("Q")
    fd = vcpu.fd
    dispatch = machine.dispatcher.dispatch
    hc_word, dirty, io_reason = _HYPERCALL_IO_WORD, SYNC_X86_REGS, _EXIT_IO
    try:
        while True:
            ctx.in_guest = True
            if ctx.want_upcall:
                machine.events.deliver(ctx)
            rc = ioctl_int(fd, _RUN, 0)
            ctx.in_guest = False
            if rc != 0:
                if interrupted(ctx, get_errno()):
                    return None
                continue
            if words[_W_IO] == hc_word and words[_W_REASON] & 0xFFFF_FFFF == io_reason:
                words[_W_RAX] = dispatch(
                    ctx, words[_W_RAX], words[_W_RDI], words[_W_RSI], words[_W_RDX], words[_W_R10], words[_W_R8]
                )
                words[_W_DIRTY] = dirty
                continue
            reason = handle_slow_exit(ctx)
            if reason is not None:
                return reason
            if machine.stopping:
                return None
    finally:
        words.release()  # the mapping is closed with the vCPU: no export may outlive the loop


#: name -> loop, as the bench registry names them.
LOOPS: dict[str, Loop] = {
    "c-null": c_null_loop,
    "python": python_loop,
    "c-cffi-callback": c_cffi_callback_loop,
    "getregs": getregs_loop,
    "nodispatch": nodispatch_loop,
    "cffi": cffi_loop,
    "lean": lean_loop,
}
