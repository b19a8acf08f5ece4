"""The hypercall handlers, one module per group of calls.

Each module's ``install(dispatcher, ...)`` registers its calls (one mapping per
module, :meth:`~pyvmm.paravirt.dispatcher.Dispatcher.register_all`) against the
narrow services it names (:mod:`pyvmm.paravirt.services`); none sees the machine.
A handler is ``handler(vcpu, a0, a1, a2, a3, a4) -> int`` with the calling
:class:`~pyvmm.vcpu.Vcpu` first and the guest's ``rdi, rsi, rdx, r10, r8`` after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmm.paravirt.dispatcher import Dispatcher
    from pyvmm.paravirt.services import Services


def install_all(dispatcher: Dispatcher, services: Services) -> None:
    """Register every ABI v1 call, each module with the services it names (and nothing else)."""
    from pyvmm.paravirt.address_spaces import install_address_spaces
    from pyvmm.paravirt.calls import channels, core, events, files, multicall, sched, snapshot, user_io

    mem = services.memory
    core.install(dispatcher)
    channels.install(dispatcher, mem, services.channels)
    events.install(dispatcher, services.events)
    sched.install(dispatcher, mem, services.vcpus, services.events, services.timers)
    multicall.install(dispatcher, mem)
    install_address_spaces(dispatcher, services.address_spaces)
    files.install(dispatcher, mem, services.channels)
    user_io.install(dispatcher, mem, services.channels, services.address_spaces)
    snapshot.install(dispatcher, services.snapshots)
