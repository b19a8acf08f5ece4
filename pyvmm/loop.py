"""The per-vCPU run loop: ``KVM_RUN``, then route the exit. One loop, in two builds.

- :func:`native_loop` (the default): ``KVM_RUN`` and the hypercall test in C
  (``pyvmm/fastloop.c``), each hypercall called back into Python for dispatch;
- :func:`python_loop`: the same in Python, the fallback without gcc
  (``PYVMM_LOOP=python``), and the one ``--stats`` runs with its hooks
  (:mod:`pyvmm.statshooks`): a timed ``KVM_RUN`` and a timed dispatch passed in
  as parameters, so the default loop carries no timing code at all.

Both handle every exit but the hypercall in :func:`handle_slow_exit` and return
an :class:`~pyvmm.outcome.Outcome`. The hypercall test is
:func:`pyvmm.kvm.exits.is_hypercall`. The ordering rule around ``KVM_RUN``
(``entering()`` before the upcall check) is :mod:`pyvmm.vcpu`'s.
"""

from __future__ import annotations

import ctypes
import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.kvm._libc import get_errno, ioctl_int, set_timer_slack
from pyvmm.kvm.constants import ExitReason, Ioctl
from pyvmm.kvm.errors import KvmError
from pyvmm.kvm.exits import finish_hypercall, is_hypercall
from pyvmm.outcome import CONTINUE, STOPPED, Outcome, OutcomeKind
from pyvmm.paravirt.abi import HYPERCALL_PORT
from pyvmm.paravirt.calls.sched import wait_for_event
from pyvmm.paravirt.dispatcher import GuestExit
from pyvmm.paravirt.services import PauseKind
from pyvmm.x86.boot import RFLAGS_IF, boot_regs

if TYPE_CHECKING:
    from pyvmm.debughook import VcpuDebugger
    from pyvmm.hw.mmio import MmioBus
    from pyvmm.hw.ports import PortBus
    from pyvmm.paravirt.events import EventChannels
    from pyvmm.paravirt.services import Timers, VcpuSet
    from pyvmm.vcpu import Vcpu

_EXIT_INTR = int(ExitReason.INTR)
_EXIT_HLT = int(ExitReason.HLT)
_EXIT_IO = int(ExitReason.IO)
_EXIT_MMIO = int(ExitReason.MMIO)
_EXIT_IRQ_WINDOW = int(ExitReason.IRQ_WINDOW_OPEN)
_EXIT_SHUTDOWN = int(ExitReason.SHUTDOWN)
_EXIT_DEBUG = int(ExitReason.DEBUG)
_EXIT_INTERNAL_ERROR = int(ExitReason.INTERNAL_ERROR)
_RUN = int(Ioctl.RUN)

#: ``dispatch(vcpu, nr, a0, a1, a2, a3, a4) -> u64``: :meth:`pyvmm.paravirt.dispatcher.Dispatcher.dispatch`.
Dispatch = Callable[..., int]
#: ``enter(fd, KVM_RUN, 0) -> 0 or -1 (errno set)``: how a Python loop issues ``KVM_RUN``.
Enter = Callable[[int, int, int], int]


@dataclass(frozen=True, slots=True)
class LoopEnv:
    """What a run loop reaches: the machine builds one, a loop gets nothing else."""

    dispatch: Dispatch
    events: EventChannels
    vcpus: VcpuSet
    timers: Timers
    #: Called once with ``time.monotonic_ns()`` just before the boot vCPU's first ``KVM_RUN``,
    #: and once at its first hypercall (boot milestones; see ``Machine.times``).
    on_first_run: Callable[[int], None]
    on_first_hypercall: Callable[[int], None]
    #: ``fn(vcpu_id, exit_reason)`` before each exit that is not a hypercall is handled
    #: (:mod:`pyvmm.extensions`' ``"exit"`` hooks); None when there is none.
    on_exit: Callable[[int, int], None] | None = None
    #: ``pyvmm run --gdb`` (:mod:`pyvmm.debughook`): asked at thread start and on debug exits only.
    debugger: VcpuDebugger | None = None
    #: ``--hw-api``: the emulated port devices (:mod:`pyvmm.hw.ports`); None in the default VM.
    ports: PortBus | None = None
    #: ``--hw-api``: the emulated MMIO devices (:mod:`pyvmm.hw.mmio`); None in the default VM.
    mmio: MmioBus | None = None


#: A loop: ``loop(vcpu, env) -> Outcome``; raises ``KvmError`` (and lets a VMM bug through).
Loop = Callable[["Vcpu", LoopEnv], Outcome]


def start(vcpu: Vcpu, env: LoopEnv, loop: Loop | None) -> Outcome:
    """A vCPU thread's body up to its loop's outcome: registers of a ``VCPU_UP``'d
    secondary, then *loop* (None: :func:`run_loop`). Raises what the loop raises."""
    set_timer_slack(1)  # BLOCK deadlines and timers wake this thread: no 50 us rounding
    if env.vcpus.stopping:
        return STOPPED  # brought up just as the VM stopped
    if vcpu.start_regs is not None:
        entry, stack, arg = vcpu.start_regs
        vcpu.fd.set_regs(boot_regs(entry=entry, stack=stack, arg=arg))
    if env.debugger is not None and not env.debugger.vcpu_starting(vcpu):
        return STOPPED
    return (loop or run_loop)(vcpu, env)


def run_loop(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """Run *vcpu* until the VM stops, the guest shuts down or crashes.

    Uses the compiled loop (:mod:`pyvmm.fastloop`) where it could be built, else
    :func:`python_loop`. Raises :class:`~pyvmm.kvm.KvmError`.
    """
    from pyvmm.fastloop import library

    lib = library()
    return python_loop(vcpu, env) if lib is None else native_loop(vcpu, env, lib)


def native_loop(vcpu: Vcpu, env: LoopEnv, lib) -> Outcome:
    """:func:`python_loop`'s contract, with ``KVM_RUN`` and the hypercall test in C.

    Each hypercall calls back into Python for the dispatch; the callback sets
    ``stop`` to come back here (an exception to re-raise, or an upcall to
    deliver before re-entry), as does every other exit.
    """
    from pyvmm.fastloop import DISPATCH_FN

    run = vcpu.fd.run
    dispatch = env.dispatch
    deliver = env.events.deliver
    vcpus = env.vcpus
    entering = vcpu.entering
    left_guest = vcpu.left_guest
    stop = ctypes.c_int(0)
    raised: list[BaseException] = []
    first = [vcpu.id == 0]

    def on_hypercall(nr, a0, a1, a2, a3, a4):
        left_guest()  # running our code: wakers need not kick
        if first[0]:
            env.on_first_hypercall(time.monotonic_ns())
            first[0] = False
        try:
            result = dispatch(vcpu, nr, a0, a1, a2, a3, a4)
        except BaseException as e:  # cannot unwind through C: hand it to the loop below
            raised.append(e)
            stop.value = 1
            return 0
        if entering():  # C re-enters the guest next: return to deliver the upcall first
            stop.value = 1
        return result

    callback = DISPATCH_FN(on_hypercall)  # kept alive by this frame for the whole loop
    loop = lib.pyvmm_run_loop
    fd = vcpu.fd.fd
    run_addr = ctypes.addressof(run)
    last_addr = ctypes.addressof(vcpu.last_regs)
    if vcpu.id == 0:
        env.on_first_run(time.monotonic_ns())
    while True:
        if entering():
            deliver(vcpu)
        rc = loop(fd, run_addr, HYPERCALL_PORT, callback, stop, last_addr)
        left_guest()
        if raised:
            return unwind(raised)
        if rc == 1:
            stop.value = 0
            continue
        if rc < 0:
            if interrupted(vcpu, vcpus, -rc):
                return STOPPED
            continue
        outcome = after_slow_exit(vcpu, env)
        if outcome is not CONTINUE:
            return outcome


def python_loop(
    vcpu: Vcpu,
    env: LoopEnv,
    enter: Enter = ioctl_int,
    dispatch: Dispatch | None = None,
    last_errno: Callable[[], int] = get_errno,
) -> Outcome:
    """The run loop in Python: the reference, the fallback without gcc, and ``--stats``'s.

    *enter* issues ``KVM_RUN`` (its errno read by *last_errno*) and *dispatch*
    runs a hypercall (default: the dispatcher's); :mod:`pyvmm.statshooks` passes
    timed ones, :mod:`pyvmm.bench.loops` the variants it measures.
    """
    fdh = vcpu.fd
    run = fdh.run
    regs = fdh.sync_regs
    fd = fdh.fd
    dispatch = dispatch or env.dispatch
    deliver = env.events.deliver
    vcpus = env.vcpus
    entering = vcpu.entering
    left_guest = vcpu.left_guest
    memmove = ctypes.memmove
    last_addr = ctypes.addressof(vcpu.last_regs)
    regs_addr = ctypes.addressof(regs)
    regs_size = ctypes.sizeof(regs)
    seen_first = vcpu.id != 0
    if not seen_first:
        env.on_first_run(time.monotonic_ns())
    while True:
        if entering():
            deliver(vcpu)
        rc = enter(fd, _RUN, 0)
        left_guest()
        if rc != 0:
            if interrupted(vcpu, vcpus, last_errno()):
                return STOPPED
            continue
        if is_hypercall(run):
            if not seen_first:
                env.on_first_hypercall(time.monotonic_ns())
                seen_first = True
            memmove(last_addr, regs_addr, regs_size)  # as the C loop does: see Vcpu.last_regs
            try:
                result = dispatch(vcpu, regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8)
            except GuestExit as e:
                return Outcome.shutdown(e.code)
            finish_hypercall(run, result)
            continue
        outcome = after_slow_exit(vcpu, env)
        if outcome is not CONTINUE:
            return outcome


def unwind(raised: list[BaseException]) -> Outcome:
    """The exception a hypercall callback handed back across C: SHUTDOWN's becomes the
    outcome, any other is re-raised here."""
    exc = raised.pop()
    try:
        if isinstance(exc, GuestExit):
            return Outcome.shutdown(exc.code)
        raise exc
    finally:
        # The traceback holds the callback's frame, whose caller is the loop's frame, which
        # held the exception: without the del, that cycle keeps the kvm_run view (and the
        # vCPU fd's mmap) alive until the garbage collector runs.
        del exc


def after_slow_exit(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """:func:`handle_slow_exit`, then :data:`~pyvmm.outcome.STOPPED` if the VM is stopping."""
    run = vcpu.fd.run
    if env.on_exit is not None:
        env.on_exit(vcpu.id, run.exit_reason)
    if run.exit_reason != _EXIT_SHUTDOWN:  # SHUTDOWN's registers may be the backend's reset state
        ctypes.memmove(ctypes.byref(vcpu.last_regs), ctypes.byref(vcpu.fd.sync_regs), ctypes.sizeof(vcpu.last_regs))
    outcome = handle_slow_exit(vcpu, env)
    if outcome is CONTINUE and env.vcpus.stopping:
        return STOPPED
    return outcome


def interrupted(vcpu: Vcpu, vcpus: VcpuSet, err: int) -> bool:
    """``KVM_RUN`` failed with *err*: raise unless it was a kick (``EINTR``/``EAGAIN``),
    then run the work posted to this vCPU. True when the loop must end (VM stopping)."""
    if err != errno.EINTR and err != errno.EAGAIN:
        raise KvmError("KVM_RUN", err)
    vcpu.fd.run.immediate_exit = 0  # before draining: a later kick re-arms it
    if vcpus.stopping:
        return True
    vcpu.run_posted()
    if vcpus.pausing:  # a snapshot: every exit is finished here (KVM_RUN returned EINTR)
        vcpus.pause_point(vcpu)
        return vcpus.stopping
    return False


def handle_slow_exit(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """Handle a non-hypercall exit: :data:`~pyvmm.outcome.CONTINUE` or a crash."""
    run = vcpu.fd.run
    reason = run.exit_reason
    if reason == _EXIT_INTR or reason == _EXIT_IRQ_WINDOW:
        run.request_interrupt_window = 0
        vcpu.retry_upcall()  # the window is open: the loop injects now
        return CONTINUE
    if reason == _EXIT_IO and env.ports is not None and env.ports.handle(run, vcpu.fd.run_bytes):
        return CONTINUE  # a --hw-api device (the UART): served, the guest goes on
    if reason == _EXIT_MMIO and env.mmio is not None and env.mmio.handle(run):
        return CONTINUE  # the --hw-api virtio-mmio window
    if reason == _EXIT_HLT:
        return halt(vcpu, env)
    if env.debugger is not None and (reason == _EXIT_DEBUG or reason == _EXIT_INTERNAL_ERROR):
        outcome = env.debugger.debug_exit(vcpu)  # a breakpoint, a step; None: a crash after all
        if outcome is not None:
            return outcome
    info = vcpu.fd.exit_info()
    if reason == ExitReason.IO:
        if info.port == HYPERCALL_PORT:
            return Outcome.crash(
                f"bad hypercall access ({info.describe()}): hypercalls are 'outl %eax, ${HYPERCALL_PORT:#x}'"
            )
        return Outcome.crash(f"unhandled port I/O: {info.describe()}")
    if reason == ExitReason.MMIO:
        return Outcome.crash(f"access outside guest RAM: {info.describe()}")
    if reason == ExitReason.SHUTDOWN:
        return Outcome.crash("triple fault (KVM_EXIT_SHUTDOWN)")
    return Outcome.crash(f"unhandled exit: {info.describe()}")


def halt(vcpu: Vcpu, env: LoopEnv) -> Outcome:
    """HLT waits for an event, like a CPU for an interrupt.

    A vCPU that halts with interrupts off while nothing else can ever raise an
    event for it (no other vCPU up, no timer armed, no VIRQ or channel port
    bound) would sleep forever: that is reported as a crash instead.
    """
    events = env.events
    interrupts_on = bool(vcpu.fd.sync_regs.rflags & RFLAGS_IF)
    if not interrupts_on and vcpu.timer_deadline is None and not env.vcpus.others_started(vcpu.id):
        if not events.has_external_sources() and not events.has_upcall_pending(vcpu.id):
            return Outcome.crash("HLT with interrupts disabled and nothing to wake the vCPU")
    wait_for_event(vcpu, env.vcpus, events, env.timers, 0, PauseKind.HALT)
    return CONTINUE


__all__ = ["CONTINUE", "STOPPED", "LoopEnv", "Outcome", "OutcomeKind", "native_loop", "python_loop", "run_loop"]
