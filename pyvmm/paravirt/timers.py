"""Each vCPU's one-shot timer (``TIMER_SET``), firing its ``Virq.TIMER`` event.

The deadline lives in the :class:`~pyvmm.vcpu.Vcpu` (its one owner); the host
thread of :class:`~pyvmm.devices.timer.TimerService` fires timers of vCPUs that
are running guest code, and a vCPU blocked in BLOCK/HLT fires its own at the
deadline (:func:`pyvmm.paravirt.calls.sched.wait_for_event`), saving a hand-off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.devices.timer import TimerService
from pyvmm.paravirt.abi import Virq

if TYPE_CHECKING:
    from pyvmm.paravirt.events import EventChannels
    from pyvmm.vcpu import Vcpu


class VcpuTimers:
    """:class:`pyvmm.paravirt.services.Timers` over one host timer thread."""

    def __init__(self, events: EventChannels) -> None:
        self._events = events
        self._service = TimerService(self.fire_if_due)

    def arm(self, vcpu: Vcpu, deadline_ns: int) -> None:
        vcpu.set_timer_deadline(deadline_ns)
        self._service.arm(vcpu, deadline_ns)

    def cancel(self, vcpu: Vcpu) -> None:
        vcpu.set_timer_deadline(None)
        self._service.cancel(vcpu)

    def fire_if_due(self, vcpu: Vcpu) -> bool:
        if not vcpu.take_due_timer():
            return False
        self._events.raise_virq(vcpu.id, Virq.TIMER)
        return True

    def armed(self) -> bool:
        return self._service.armed()

    def stop(self) -> None:
        """Stop the host thread (machine close)."""
        self._service.stop()
