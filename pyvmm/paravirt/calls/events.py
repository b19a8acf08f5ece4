"""EVENT_BIND, EVENT_CLOSE and NOTIFY: thin calls onto the event channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher

if TYPE_CHECKING:
    from pyvmm.paravirt.events import EventChannels


def install(dispatcher: Dispatcher, events: EventChannels) -> None:
    def event_bind(vcpu, kind, target, arg, a3, a4) -> int:
        return events.bind(kind, target, arg)

    def event_close(vcpu, port, a1, a2, a3, a4) -> int:
        events.unbind(port)
        return 0

    def notify(vcpu, port, a1, a2, a3, a4) -> int:
        events.notify(port)
        return 0

    dispatcher.register_all(
        {Hypercall.EVENT_BIND: event_bind, Hypercall.EVENT_CLOSE: event_close, Hypercall.NOTIFY: notify}
    )
