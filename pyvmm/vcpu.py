"""A vCPU's state and the set of them: the one owner of everything per-vCPU.

:class:`Vcpu` wraps the KVM handle (:class:`~pyvmm.kvm.VcpuFd`, ``vcpu.fd``)
with what pyvmm keeps per vCPU: its thread, its lifecycle (:class:`VcpuState`),
work posted to it, where it sleeps (:class:`~pyvmm.parking.Parker`), its
upcall request and its one-shot timer. Only the methods here change those
fields. :class:`VcpuSet` is the machine's list of them, implementing
:class:`pyvmm.paravirt.services.VcpuSet` for the hypercall handlers.

The ordering rule that makes an upcall never lost
------------------------------------------------
A waker (any thread) must either find the vCPU outside the guest, where it
will see the request before it re-enters, or kick it out of ``KVM_RUN``:

- the vCPU's own thread calls :meth:`Vcpu.entering` before each ``KVM_RUN``:
  it sets ``in_guest`` *first*, then reads ``want_upcall``;
- a waker calls :meth:`Vcpu.request_upcall`: it sets ``want_upcall`` *first*,
  then reads ``in_guest`` and kicks when it is set.

Whatever the interleaving, one of the two sees the other's store (each store
and load is one bytecode under the GIL, so they are sequentially consistent).
A kick (``immediate_exit`` + a signal) that arrives before ``KVM_RUN`` makes
``KVM_RUN`` return ``EINTR`` at once, so a kick is never lost either.

Threads: a vCPU's registers, ``kvm_run`` page and TLB are touched only by its
own thread; others reach it with :meth:`Vcpu.post` (work run before its next
entry), :meth:`Vcpu.request_upcall` and :meth:`Vcpu.kick`.
"""

from __future__ import annotations

import enum
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm import stopsignals
from pyvmm.kvm.structs import KvmRegs
from pyvmm.paravirt.services import PauseKind, ThreadStartError
from pyvmm.parking import Parker

if TYPE_CHECKING:
    from pyvmm.kvm.vcpu import VcpuFd

#: The signal that kicks a vCPU thread out of ``KVM_RUN`` (installed without SA_RESTART);
#: defined beside the stop signals, which must never include it.
KICK_SIGNAL = stopsignals.KICK_SIGNAL


def install_kick_handler() -> None:
    """Install the (empty) :data:`KICK_SIGNAL` handler; main thread only, before any vCPU runs.

    Python installs it without SA_RESTART, so a kick makes ``KVM_RUN`` return ``EINTR``;
    without a handler the signal's default action would end the process.
    """
    signal.signal(KICK_SIGNAL, _ignore_signal)


def _ignore_signal(signum, frame) -> None:
    """The kick only needs to interrupt ``KVM_RUN``; nothing to do here."""


class VcpuState(enum.Enum):
    PARKED = "parked"  # created; a secondary waits here for VCPU_UP
    RUNNING = "running"  # its thread runs the loop (in the guest, or serving an exit, or BLOCKed)
    EXITED = "exited"  # its thread has returned


class Vcpu:
    """One vCPU: its KVM handle (:attr:`fd`), its thread and the state other threads share.

    Raises nothing; see the module docstring for which thread may call what.
    """

    __slots__ = (
        "_pending",
        "_start_regs",
        "_state",
        "_thread",
        "_timer_deadline",
        "fd",
        "id",
        "in_guest",
        "last_regs",
        "parker",
        "want_upcall",
    )

    def __init__(self, vcpu_id: int, fd: VcpuFd) -> None:
        self.id = vcpu_id
        self.fd = fd
        #: Where BLOCK/HLT sleep; ``parker.guard`` also guards the state, the timer and the start registers.
        self.parker = Parker()
        #: Read-only outside this module: True while the own thread is in (or entering) ``KVM_RUN``.
        self.in_guest = False
        #: Read-only outside this module: inject the upcall vector before the next entry.
        self.want_upcall = False
        self._state = VcpuState.PARKED
        self._thread: threading.Thread | None = None
        self._pending: deque[Callable[[Vcpu], None]] = deque()
        self._timer_deadline: int | None = None
        self._start_regs: tuple[int, int, int] | None = None
        #: The general registers at this vCPU's last exit before the current one (its own
        #: thread writes them: the loops, at each hypercall and slow exit but SHUTDOWN). The
        #: crash report falls back on them when the backend reset the vCPU at a triple fault.
        self.last_regs = KvmRegs()

    def __repr__(self) -> str:
        return f"Vcpu({self.id}, {self._state.value})"

    # -- lifecycle (any thread) ------------------------------------------------------
    @property
    def state(self) -> VcpuState:
        return self._state

    @property
    def started(self) -> bool:
        return self._state is not VcpuState.PARKED

    @property
    def start_regs(self) -> tuple[int, int, int] | None:
        """``(entry, stack, arg)`` given by ``VCPU_UP``; None for the boot vCPU."""
        return self._start_regs

    def start(self, target: Callable[[Vcpu], None], start_regs: tuple[int, int, int] | None = None) -> bool:
        """Start the vCPU's thread running ``target(self)``; False if it was started before.

        Raises :class:`ThreadStartError` if the host cannot start a thread; the vCPU is
        then parked again, as if never started (a later start may succeed)."""
        with self.parker.guard:
            if self._state is not VcpuState.PARKED:
                return False
            self._state = VcpuState.RUNNING
            self._start_regs = start_regs

        def main() -> None:
            try:
                target(self)
            finally:
                self._state = VcpuState.EXITED

        # Set before start(): a waker that sees RUNNING must find the thread to kick.
        self._thread = threading.Thread(target=main, name=f"vcpu{self.id}", daemon=True)
        try:
            self._thread.start()
        except RuntimeError as e:  # "can't start new thread"
            with self.parker.guard:
                self._thread = None
                self._state = VcpuState.PARKED
                self._start_regs = None
            raise ThreadStartError(f"cannot start a thread for vCPU {self.id} ({e})") from None
        return True

    def reset_lifecycle(self) -> None:
        """Back to PARKED once the thread has ended (an in-process reset restarts it)."""
        with self.parker.guard:
            self._state = VcpuState.PARKED
            self._thread = None
            self._start_regs = None
            self.want_upcall = False
            self._pending.clear()

    def join(self) -> None:
        thread = self._thread
        if thread is not None and thread.ident is not None:
            thread.join()

    @property
    def runs_guest_code(self) -> bool:
        """True if its thread is alive and not asleep in BLOCK/HLT: posted work runs soon."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self.parker.parked

    # -- the own thread, around KVM_RUN -------------------------------------------------
    def entering(self) -> bool:
        """Before ``KVM_RUN``: mark the vCPU in the guest, then say whether an upcall is wanted."""
        self.in_guest = True
        return self.want_upcall

    def left_guest(self) -> None:
        """After ``KVM_RUN``, or when a hypercall callback starts running pyvmm's code."""
        self.in_guest = False

    def drop_upcall_request(self) -> None:
        """The upcall was delivered, or the guest scans for events itself."""
        self.want_upcall = False

    def retry_upcall(self) -> None:
        """Deliver at the next entry (the guest could not take it now: interrupt window)."""
        self.want_upcall = True

    def run_posted(self) -> None:
        """Run the work other threads posted, in order (after a kick, before re-entry)."""
        pending = self._pending
        while pending:
            pending.popleft()(self)

    # -- other threads -------------------------------------------------------------------
    def request_upcall(self) -> None:
        """Make the vCPU take its pending upcall soon: unpark it if it sleeps in BLOCK/HLT,
        kick it if it runs guest code, nothing more if it is not started yet."""
        parker = self.parker
        with parker.guard:
            self.want_upcall = True  # before reading in_guest: see the module docstring
            if self._state is VcpuState.PARKED:
                return  # delivered when it comes up
        if parker.unpark():
            return  # it was sleeping in BLOCK/HLT: cheaper than a signal
        thread = self._thread
        if self.in_guest and thread is not None and thread.ident != threading.get_ident():
            self.kick()

    def post(self, work: Callable[[Vcpu], None]) -> bool:
        """Run ``work(self)`` on the own thread before the next entry; kicks it.
        True if it runs guest code now (it runs *work* within microseconds)."""
        self._pending.append(work)
        self.kick()
        return self.runs_guest_code

    def kick(self) -> None:
        """Make ``KVM_RUN`` return ``EINTR`` soon (``immediate_exit`` + :data:`KICK_SIGNAL`)."""
        run = self.fd.run
        if run is None:
            return  # closed
        run.immediate_exit = 1
        thread = self._thread
        if thread is not None and thread.is_alive() and thread.ident is not None:
            try:
                signal.pthread_kill(thread.ident, KICK_SIGNAL)
            except (ProcessLookupError, OSError):
                pass

    # -- the one-shot timer -------------------------------------------------------------
    @property
    def timer_deadline(self) -> int | None:
        """Monotonic ns of the armed timer, or None."""
        return self._timer_deadline

    def set_timer_deadline(self, deadline_ns: int | None) -> None:
        """Own thread only (``TIMER_SET``): it is not parked, so nobody else reads it meanwhile."""
        self._timer_deadline = deadline_ns

    def take_due_timer(self) -> bool:
        """Disarm and return True if the timer's deadline has passed (any thread; once per arming)."""
        with self.parker.guard:
            deadline = self._timer_deadline
            if deadline is None or deadline > time.monotonic_ns():
                return False
            self._timer_deadline = None
            return True


class _PauseRound:
    """One pause: who must arrive, who has (and where), and the release."""

    def __init__(self, expected: set[int]) -> None:
        self.expected = expected
        self.arrived: dict[int, PauseKind] = {}
        self.cond = threading.Condition()
        self.released = False


class VcpuSet:
    """The machine's vCPUs by id; :class:`pyvmm.paravirt.services.VcpuSet` for handlers.

    *thread_main* is what a started vCPU's thread runs (the run loop's entry).

    Pausing (snapshots): :meth:`pause` asks every running vCPU to stop at a point
    where its state is complete: between two exits (the loop calls :meth:`pause_point`
    after a kick's ``EINTR``), or asleep in BLOCK/HLT (``wait_for_event`` calls it);
    each then waits there until :meth:`resume`. A vCPU busy in a longer hypercall
    (a MULTICALL, a console flush) arrives when that call is done.
    """

    def __init__(self, thread_main: Callable[[Vcpu], None]) -> None:
        self._vcpus: list[Vcpu] = []
        self._thread_main = thread_main
        self._stopping = False
        self._pause: _PauseRound | None = None

    def add(self, vcpu: Vcpu) -> None:
        self._vcpus.append(vcpu)

    def __len__(self) -> int:
        return len(self._vcpus)

    def __getitem__(self, vcpu_id: int) -> Vcpu:
        return self._vcpus[vcpu_id]

    def __iter__(self):
        return iter(self._vcpus)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start_boot_vcpu(self) -> None:
        """Raises :class:`ThreadStartError`."""
        self._vcpus[0].start(self._thread_main)

    def bring_up(self, vcpu_id: int, *, entry: int, stack: int, arg: int) -> bool:
        """Raises :class:`ThreadStartError` (``VCPU_UP``'s ``-ENOMEM``)."""
        if self._stopping:
            return False
        return self._vcpus[vcpu_id].start(self._thread_main, (entry, stack, arg))

    def wake(self, vcpu_id: int) -> None:
        self._vcpus[vcpu_id].request_upcall()

    def post(self, vcpu_id: int, work: Callable[[Vcpu], None]) -> bool:
        return self._vcpus[vcpu_id].post(work)

    def others_started(self, vcpu_id: int) -> bool:
        return any(v.started for v in self._vcpus if v.id != vcpu_id)

    def stop_all(self) -> None:
        """Stop every vCPU: none starts from now on; running ones are kicked, sleeping ones woken."""
        self._stopping = True
        for vcpu in self._vcpus:
            vcpu.kick()
            vcpu.parker.unpark()

    def join_all(self) -> None:
        for vcpu in self._vcpus:
            vcpu.join()

    def rearm(self) -> None:
        """After :meth:`join_all`: make the set runnable again (an in-process reset)."""
        self._stopping = False
        for vcpu in self._vcpus:
            vcpu.reset_lifecycle()

    def start_vcpus(self, ids: list[int]) -> None:
        """Start the threads of vCPUs *ids* with the state already loaded into them
        (a restored VM). Raises :class:`ThreadStartError`."""
        for vcpu_id in ids:
            self._vcpus[vcpu_id].start(self._thread_main)

    # -- pausing -------------------------------------------------------------------------
    @property
    def pausing(self) -> bool:
        """True while a pause waits for vCPUs (read on every kick: one attribute test)."""
        return self._pause is not None

    def pause(self, caller: Vcpu | None, timeout_s: float) -> dict[int, PauseKind] | None:
        """Stop every running vCPU but *caller* at a consistent point; returns where each
        stands (the caller as ``SNAPSHOT``), or None if one did not arrive within
        *timeout_s* or the VM stopped meanwhile (then nothing stays paused). Call
        :meth:`resume` after a successful pause. One pause at a time (the caller's lock)."""
        expected = {v.id for v in self._vcpus if v.state is VcpuState.RUNNING and v is not caller}
        round_ = _PauseRound(expected)
        self._pause = round_
        for vcpu_id in expected:
            vcpu = self._vcpus[vcpu_id]
            vcpu.kick()
            vcpu.parker.unpark()
        deadline = time.monotonic() + timeout_s
        with round_.cond:
            while set(round_.arrived) != expected:
                left = deadline - time.monotonic()
                gone = {i for i in expected - set(round_.arrived) if self._vcpus[i].state is not VcpuState.RUNNING}
                if gone:  # a thread ended (shutdown, crash) before arriving: it will not
                    expected -= gone
                    continue
                if left <= 0 or self._stopping:
                    self.resume()
                    return None
                round_.cond.wait(min(left, 0.05))
        kinds = dict(round_.arrived)
        if caller is not None:
            kinds[caller.id] = PauseKind.SNAPSHOT
        return kinds

    def resume(self) -> None:
        """Let every paused vCPU go on."""
        round_ = self._pause
        self._pause = None
        if round_ is not None:
            with round_.cond:
                round_.released = True
                round_.cond.notify_all()

    def pause_wanted(self, vcpu_id: int) -> bool:
        round_ = self._pause
        return round_ is not None and vcpu_id in round_.expected and vcpu_id not in round_.arrived

    def pause_point(self, vcpu: Vcpu, kind: PauseKind = PauseKind.RUNNING) -> None:
        """On *vcpu*'s own thread, where its state is complete: wait here while a pause
        holds it. Returns at once when no pause wants this vCPU."""
        round_ = self._pause
        if round_ is None or vcpu.id not in round_.expected:
            return
        with round_.cond:
            if vcpu.id in round_.arrived:
                return
            round_.arrived[vcpu.id] = kind
            round_.cond.notify_all()
            while not round_.released and not self._stopping:
                round_.cond.wait(0.05)
