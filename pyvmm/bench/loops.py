"""Run-loop variants for the baselines and the fast-path experiments.

Each is a :data:`pyvmm.loop.Loop` (``Machine.loop``) that changes only the part
it measures and takes the rest from :mod:`pyvmm.loop`: the hypercall test
(:func:`pyvmm.kvm.exits.is_hypercall`), the slow exits, kicks and upcalls.

- :func:`c_null_loop`: baseline (a), NULL hypercalls answered in C, no dispatch;
- :func:`~pyvmm.loop.python_loop`: the run loop in Python (pyvmm's default is the compiled
  :func:`~pyvmm.loop.native_loop`; this is its fallback without gcc);
- :func:`getregs_loop`: python_loop with registers by ``KVM_GET_REGS``/``KVM_SET_REGS``
  around ``KVM_RUN`` instead of sync regs;
- :func:`nodispatch_loop`: python_loop with NULL answered before the dispatcher (what it costs);
- :func:`cffi_loop`: python_loop with ``KVM_RUN`` called through cffi instead of ctypes;
- :func:`c_cffi_callback_loop`: the compiled loop entered and called back through cffi.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import get_errno, ioctl_int, ioctl_ptr
from pyvmm.kvm.constants import SYNC_X86_REGS, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.kvm.exits import finish_hypercall, is_hypercall
from pyvmm.loop import CONTINUE, STOPPED, Loop, LoopEnv, after_slow_exit, interrupted, python_loop, unwind
from pyvmm.outcome import Outcome
from pyvmm.paravirt.abi import HYPERCALL_PORT, Hypercall
from pyvmm.paravirt.dispatcher import GuestExit

if TYPE_CHECKING:
    from pyvmm.vcpu import Vcpu


def _python_exit(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """Handle the exit in ``kvm_run`` as pyvmm does (a hypercall or a slow exit)."""
    run = vcpu.fd.run
    if is_hypercall(run):
        r = vcpu.fd.sync_regs
        try:
            finish_hypercall(run, env.dispatch(vcpu, r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8))
        except GuestExit as e:
            return Outcome.shutdown(e.code)
        return CONTINUE
    return after_slow_exit(vcpu, env)


def c_null_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """Baseline (a): the C loop answers NULL hypercalls; Python sees only the other exits."""
    from pyvmm.bench.native import native

    lib = native()
    fd = vcpu.fd.fd
    run_addr = ctypes.addressof(vcpu.fd.run)
    answered = ctypes.c_ulong(0)
    while True:
        if vcpu.entering():
            env.events.deliver(vcpu)
        rc = lib.pyvmm_null_loop(fd, run_addr, HYPERCALL_PORT, ctypes.byref(answered))
        vcpu.left_guest()
        if rc < 0:
            if interrupted(vcpu, env.vcpus, -rc):
                return STOPPED
            continue
        outcome = _python_exit(vcpu, env)
        if outcome is not CONTINUE:
            return outcome


def c_cffi_callback_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """:func:`~pyvmm.loop.native_loop`'s C loop (``pyvmm/fastloop.c``), entered and called
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
        " uint64_t (*dispatch)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t), int *stop,"
        " void *last);"
    )
    lib = ffi.dlopen(compiled._name)
    dispatch = env.dispatch
    stop = ffi.new("int *")
    raised: list[BaseException] = []

    @ffi.callback("uint64_t(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)")
    def on_hypercall(nr, a0, a1, a2, a3, a4):
        vcpu.left_guest()
        try:
            result = dispatch(vcpu, nr, a0, a1, a2, a3, a4)
        except BaseException as e:
            raised.append(e)
            stop[0] = 1
            return 0
        if vcpu.entering():
            stop[0] = 1
        return result

    fd = vcpu.fd.fd
    run_ptr = ffi.cast("void *", ctypes.addressof(vcpu.fd.run))
    last_ptr = ffi.cast("void *", ctypes.addressof(vcpu.last_regs))
    loop = lib.pyvmm_run_loop
    while True:
        if vcpu.entering():
            env.events.deliver(vcpu)
        rc = loop(fd, run_ptr, HYPERCALL_PORT, on_hypercall, stop, last_ptr)
        vcpu.left_guest()
        if raised:
            return unwind(raised)
        if rc < 0:
            if interrupted(vcpu, env.vcpus, -rc):
                return STOPPED
            continue
        if rc == 1:
            stop[0] = 0
            continue
        outcome = after_slow_exit(vcpu, env)
        if outcome is not CONTINUE:
            return outcome


def getregs_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """Before sync regs: ``KVM_GET_REGS`` after and ``KVM_SET_REGS`` before every ``KVM_RUN``.

    KVM stops publishing the registers in ``kvm_run``; the hook fills the same
    block by ``KVM_GET_REGS`` and writes it back by ``KVM_SET_REGS`` when the loop
    marked it dirty, so the rest of the loop is python_loop's.
    """
    run = vcpu.fd.run
    regs = vcpu.fd.sync_regs
    get_req, set_req = int(Ioctl.GET_REGS), int(Ioctl.SET_REGS)
    dirty = SYNC_X86_REGS

    def enter(fd: int, req: int, arg: int) -> int:
        if run.kvm_dirty_regs & dirty:
            run.kvm_dirty_regs &= ~dirty
            if ioctl_ptr(fd, set_req, regs) < 0:
                raise KvmError("KVM_SET_REGS", get_errno())
        rc = ioctl_int(fd, req, arg)
        if rc == 0 and ioctl_ptr(fd, get_req, regs) < 0:
            raise KvmError("KVM_GET_REGS", get_errno())
        return rc

    run.kvm_valid_regs = 0  # KVM stops publishing registers in kvm_run
    try:
        return python_loop(vcpu, env, enter=enter)
    finally:
        run.kvm_valid_regs = SYNC_X86_REGS


def nodispatch_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """python_loop with NULL answered before the dispatcher: the difference is the dispatcher call."""
    real = env.dispatch
    null = int(Hypercall.NULL)

    def dispatch(vcpu, nr, a0, a1, a2, a3, a4) -> int:
        return 0 if nr == null else real(vcpu, nr, a0, a1, a2, a3, a4)

    return python_loop(vcpu, env, dispatch=dispatch)


def cffi_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """python_loop with ``KVM_RUN`` called through cffi (ABI mode) instead of ctypes."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef("int ioctl(int fd, unsigned long request, unsigned long arg);")
    libc = ffi.dlopen(None)
    return python_loop(vcpu, env, enter=libc.ioctl, last_errno=lambda: ffi.errno)


#: name -> loop, as the bench registry names them.
LOOPS: dict[str, Loop] = {
    "c-null": c_null_loop,
    "python": python_loop,
    "c-cffi-callback": c_cffi_callback_loop,
    "getregs": getregs_loop,
    "nodispatch": nodispatch_loop,
    "cffi": cffi_loop,
}
