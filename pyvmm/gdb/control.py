"""All-stop control of every vCPU for the gdb stub: the gate, stop, resume.

The VM is either *running* (gdb waits for a stop reply) or *stopped* (gdb is
in charge, every vCPU out of ``KVM_RUN``). A vCPU stops by waiting in the
*gate* (:meth:`DebugControl._gate`) on its own thread: after a debug exit (a
breakpoint, a step, a watchpoint), after a crash, before its first entry under
``--gdb-wait``, or when :meth:`DebugControl.stop_all` posts it the stop work
(:meth:`pyvmm.vcpu.Vcpu.post`: it runs before the vCPU's next entry; a vCPU
asleep in ``BLOCK``/``HLT`` is already out of the guest and passes the gate
before it re-enters).

While a vCPU waits in the gate its thread only waits: it hands its registers to
the stub's thread, which reads and writes them with ``KVM_GET_*``/``KVM_SET_REGS``
(KVM serialises vCPU ioctls; none is in ``KVM_RUN`` then). Leaving the gate, the
vCPU applies its debug state (``KVM_SET_GUEST_DEBUG``: breakpoints, slots, single
step) itself. Each stop is an *epoch*: stop work posted in an earlier epoch, run
late by a vCPU that slept through that stop, only refreshes the debug state.
"""

from __future__ import annotations

import enum
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.gdb.breakpoints import HwKind, HwSlots, SoftWatch, SwBreakpoints
from pyvmm.kvm.constants import (
    GUESTDBG_ENABLE,
    GUESTDBG_SINGLESTEP,
    GUESTDBG_USE_HW_BP,
    GUESTDBG_USE_SW_BP,
    ExitReason,
)
from pyvmm.kvm.errors import KvmError
from pyvmm.outcome import CONTINUE, STOPPED, Outcome
from pyvmm.vcpu import VcpuState

if TYPE_CHECKING:
    from pyvmm.gdb.vmem import GuestView
    from pyvmm.outcome import RunResult
    from pyvmm.paravirt.services import VcpuSet
    from pyvmm.vcpu import Vcpu

_DR6_BS = 1 << 14  # single step
_BP_VECTOR = 3
_DB_VECTOR = 1
#: How long stop_all waits for a vCPU still running guest code (it is kicked: microseconds,
#: unless its thread is stuck in a host call); past it the stop is reported anyway.
STOP_WAIT_S = 5.0
_UNDEBUGGED = (0, ())


class Action(enum.Enum):
    CONTINUE = "c"
    STEP = "s"


class StopKind(enum.Enum):
    SIGNAL = ""  # Ctrl-C, attach, a crash: only the signal
    SWBREAK = "swbreak"
    HWBREAK = "hwbreak"
    WATCH = "watch"
    AWATCH = "awatch"
    STEP = "step"


@dataclass(frozen=True)
class StopEvent:
    vcpu_id: int
    signal: int = signal.SIGTRAP
    kind: StopKind = StopKind.SIGNAL
    addr: int = 0  # the watched address for WATCH/AWATCH
    note: str = ""  # why, for a crash (shown on pyvmm's stderr)


class DebugControl:
    """Implements :class:`pyvmm.debughook.VcpuDebugger` for the stub, and the stop/resume it drives.

    *notify* is called (any thread, no lock held by the caller's caller... but under
    this object's lock) when a stop event arrives or the VM stops: it wakes the stub.
    """

    def __init__(self, vcpus: VcpuSet, view: GuestView, *, wait: bool, notify: Callable[[], None]) -> None:
        self._vcpus = vcpus
        self.view = view
        self._notify = notify
        self._cond = threading.Condition()
        self._running = not wait  # --gdb-wait: the boot vCPU stops before its first instruction
        self._attached = False
        self._released = False  # the VM is stopping: nobody waits in the gate any more
        self._epoch = 0
        self._gated: dict[int, Vcpu] = {}
        self._events: list[StopEvent] = []
        self._actions: dict[int, Action] = {}
        self._applied: dict[int, tuple[int, tuple[int, ...]]] = {}  # what each vCPU's KVM has now
        self._debug_refused = False  # KVM_SET_GUEST_DEBUG failed once (said on stderr)
        self.finished: RunResult | None = None
        self.sw = SwBreakpoints()
        self.hw = HwSlots()
        self.soft = SoftWatch()
        #: Data watchpoints by single-stepping (:class:`~pyvmm.gdb.breakpoints.SoftWatch`) instead
        #: of DR slots: where the backend's emulator never raises data breakpoints (PVM).
        self.soft_watch = False

    # -- vCPU side (each vCPU's own thread) -------------------------------------------
    def vcpu_starting(self, vcpu: Vcpu) -> bool:
        with self._cond:
            stopped = not self._running and not self._released
        if stopped:
            return self._gate(vcpu, None)
        self._apply(vcpu)
        return not self._released

    def debug_exit(self, vcpu: Vcpu) -> Outcome | None:
        event = self._classify(vcpu)
        if event is None:
            return None
        if event is CONTINUE:
            return CONTINUE
        return CONTINUE if self._gate(vcpu, event) else STOPPED

    def crashed(self, vcpu: Vcpu, reason: str) -> None:
        with self._cond:
            attached = self._attached and not self._released
        if attached:
            self._gate(vcpu, StopEvent(vcpu.id, signal.SIGSEGV, note=reason))

    def vm_stopping(self, result: RunResult) -> None:
        with self._cond:
            if self.finished is None:
                self.finished = result
            self._released = True
            self._cond.notify_all()
            self._notify()

    def _stop_work(self, epoch: int) -> Callable[[Vcpu], None]:
        def work(vcpu: Vcpu) -> None:
            with self._cond:
                current = epoch == self._epoch and not self._running
            if current:
                self._gate(vcpu, None)
            else:
                self._apply(vcpu)  # a stop it slept through: only the new breakpoints matter

        return work

    def _gate(self, vcpu: Vcpu, event: StopEvent | None) -> bool:
        """Wait until gdb resumes this vCPU or the VM stops; True to run on."""
        with self._cond:
            if event is not None:
                self._events.append(event)
            self._gated[vcpu.id] = vcpu
            self._cond.notify_all()
            self._notify()
            seen = self._epoch
            while not self._released:
                if self._epoch != seen:
                    seen = self._epoch
                    if self._actions.get(vcpu.id) is not None:
                        break
                self._cond.wait()
            del self._gated[vcpu.id]
            released = self._released
        if released:
            return False
        self._apply(vcpu)
        return True

    def _apply(self, vcpu: Vcpu) -> None:
        state = self._debug_state(vcpu.id)
        if self._applied.get(vcpu.id, _UNDEBUGGED) == state:
            return  # an ioctl saved, and a vCPU never debugged is never touched
        try:
            vcpu.fd.set_guest_debug(*state)
        except KvmError as e:
            # A backend without SET_GUEST_DEBUG: breakpoints then never fire, gdb still attaches.
            # Said once, so that a breakpoint that never fires has a reason on the console.
            if not self._debug_refused:
                self._debug_refused = True
                print(
                    f"pyvmm: gdb: {e.strerror}: breakpoints and single-step cannot work on this backend",
                    file=sys.stderr,
                )
            return
        self._applied[vcpu.id] = state

    def _debug_state(self, vcpu_id: int) -> tuple[int, tuple[int, ...]]:
        with self._cond:
            if not self._attached:
                return 0, ()
            action = self._actions.get(vcpu_id, Action.CONTINUE)
            control = GUESTDBG_ENABLE
            if len(self.sw):
                control |= GUESTDBG_USE_SW_BP
            if len(self.hw):
                control |= GUESTDBG_USE_HW_BP
            if action is Action.STEP or len(self.soft):
                control |= GUESTDBG_SINGLESTEP
            if control == GUESTDBG_ENABLE:
                return 0, ()
            return control, self.hw.debugregs()

    def _classify(self, vcpu: Vcpu) -> StopEvent | Outcome | None:
        """What a debug or internal-error exit means: a stop event, CONTINUE (nothing for gdb),
        or None (not the debugger's: a crash)."""
        fd = vcpu.fd
        run = fd.run
        if run.exit_reason == ExitReason.INTERNAL_ERROR:
            # PVM's emulator cannot run int3 under GUESTDBG_USE_SW_BP: it reports an
            # emulation failure with rip on the int3. Ours, if a breakpoint is planted there.
            rip = fd.get_regs().rip
            gpa = self.view.translate(fd.get_sregs().cr3, rip)
            if gpa is not None and self.sw.planted_at(gpa):
                return StopEvent(vcpu.id, kind=StopKind.SWBREAK)
            return None
        if run.exit_reason != ExitReason.DEBUG:
            return None
        info = run.exit.debug
        if not self._attached:
            self._apply(vcpu)  # left over from a session that is gone: disarm, run on
            return CONTINUE
        if info.exception == _BP_VECTOR:
            regs = fd.get_regs()
            cr3 = fd.get_sregs().cr3
            here = self.view.translate(cr3, regs.rip)
            if here is None or not self.sw.planted_at(here):
                before = self.view.translate(cr3, regs.rip - 1)
                if before is not None and self.sw.planted_at(before):
                    regs.rip -= 1  # a backend that reports #BP after the int3, as the CPU pushes it
                    fd.set_regs(regs)
            return StopEvent(vcpu.id, kind=StopKind.SWBREAK)
        if info.exception != _DB_VECTOR:
            return StopEvent(vcpu.id)
        slot = self.hw.hit(info.dr6)
        if slot is not None:
            if slot.kind is HwKind.EXECUTE:
                return StopEvent(vcpu.id, kind=StopKind.HWBREAK)
            kind = StopKind.WATCH if slot.kind is HwKind.WRITE else StopKind.AWATCH
            return StopEvent(vcpu.id, kind=kind, addr=slot.addr)
        if len(self.soft):
            cr3 = fd.get_sregs().cr3
            addr = self.soft.changed(lambda a, n: self.view.read(cr3, a, n))
            if addr is not None:
                return StopEvent(vcpu.id, kind=StopKind.WATCH, addr=addr)
            with self._cond:
                stepping = self._actions.get(vcpu.id) is Action.STEP
            if not stepping:
                return CONTINUE  # a step only the software watchpoints asked for
        return StopEvent(vcpu.id, kind=StopKind.STEP)

    # -- stub side (the stub's thread) --------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def released(self) -> bool:
        return self._released

    def attach(self) -> None:
        with self._cond:
            self._attached = True

    def stop_all(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop every vCPU and wait until each one running guest code waits in the gate."""
        with self._cond:
            if self._running:
                self._running = False
                epoch = self._epoch
                for vcpu in self._vcpus:
                    if vcpu.started and vcpu.id not in self._gated:
                        vcpu.post(self._stop_work(epoch))
            deadline = time.monotonic() + timeout
            while not self._released and not self._all_out():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    def _all_out(self) -> bool:
        return all(
            v.id in self._gated or not v.runs_guest_code or v.state is not VcpuState.RUNNING for v in self._vcpus
        )

    def take_event(self) -> StopEvent | None:
        """The next stop event to report (the oldest), or None."""
        with self._cond:
            return self._events.pop(0) if self._events else None

    def has_event(self) -> bool:
        with self._cond:
            return bool(self._events)

    def is_gated(self, vcpu_id: int) -> bool:
        with self._cond:
            return vcpu_id in self._gated

    def first_gated(self) -> int:
        with self._cond:
            return min(self._gated) if self._gated else 0

    def resume(self, actions: dict[int, Action]) -> StopEvent | None:
        """Run the vCPUs *actions* name (the others stay stopped), unless a stop is still
        to be reported: then that event, and nothing runs. Software-breakpoint stops not
        yet reported are dropped: the vCPU is still on the int3 and traps again if the
        breakpoint is still there."""
        with self._cond:
            self._events = [e for e in self._events if e.kind is not StopKind.SWBREAK]
            if self._events:
                return self._events.pop(0)
            self._actions = dict(actions)
            self._epoch += 1
            self._running = True
            self._cond.notify_all()
        return None

    def detach(self) -> None:
        """Forget every breakpoint and let every vCPU run undebugged."""
        self.sw.clear(self.view_memory)
        self.hw.clear()
        self.soft.clear()
        with self._cond:
            self._attached = False
            self._events.clear()
        self.resume({v.id: Action.CONTINUE for v in self._vcpus})

    @property
    def view_memory(self):
        return self.view.memory
