"""Event channels: ports, the shared pending/mask page, and upcall delivery.

The model is Xen's: a port is bound to a vCPU (``IPI``), a virtual IRQ
(``VIRQ``, e.g. the timer) or a channel's readiness (``CHANNEL``). Raising a
port sets its pending byte in the shared page, then the vCPU's group
selector and ``upcall_pending``, then makes sure the vCPU gets one
``UPCALL_VECTOR`` interrupt: woken if it is blocked, kicked if it is running.

Every flag in the shared page is a byte that one side sets with a plain
store and the other consumes with ``xchg``, so neither side needs an atomic
read-modify-write on memory the other writes (Python has none). Ordering:
pending, then selector, then upcall_pending (x86 stores are not reordered);
the guest consumes in the reverse order, so an event is never lost and,
being consumed by exactly one ``xchg``, never delivered twice.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from typing import TYPE_CHECKING, NamedTuple

from pyvmm.kvm.errors import KvmError
from pyvmm.paravirt.abi import (
    NR_PORTS,
    PORTS_PER_GROUP,
    UPCALL_VECTOR,
    Errno,
    EventKind,
    Layout,
    SharedInfo,
    Virq,
)
from pyvmm.paravirt.dispatcher import HypercallError

if TYPE_CHECKING:
    from pyvmm.devices.base import ChannelTable
    from pyvmm.memory import GuestMemory
    from pyvmm.paravirt.services import VcpuSet
    from pyvmm.vcpu import Vcpu


class PortBinding(NamedTuple):
    kind: EventKind
    vcpu: int  # the vCPU the event is delivered to
    target: int  # vCPU (IPI), Virq number (VIRQ) or channel handle (CHANNEL)


class EventChannels:
    """Port table and delivery for one VM. :meth:`raise_port` may be called from any thread;
    the rest on a vCPU's thread (a handler's, or :meth:`deliver` on the target's own)."""

    def __init__(self, memory: GuestMemory, channels: ChannelTable, vcpus: VcpuSet) -> None:
        self._channels = channels
        self._vcpus = vcpus
        view = memory.view(Layout.SHARED_PAGE, ctypes.sizeof(SharedInfo))
        self._view = view
        self.shared = SharedInfo.from_buffer(view)
        self.ports: list[PortBinding | None] = [None] * NR_PORTS
        self._lock = threading.Lock()  # port table changes and per-port raise ordering
        # (vcpu, virq) -> port, so the timer finds its port in O(1)
        self.virq_ports: dict[tuple[int, int], int] = {}
        self.raised = 0

    def close(self) -> None:
        self.shared = None
        self._view.release()

    # -- snapshots (pyvmm.snapshot) ------------------------------------------------
    def export_state(self) -> list[list[int]]:
        """The port table as ``[port, kind, vcpu, target]`` rows; the pending and mask
        bits are in the shared page, which is guest RAM."""
        return [[p, int(b.kind), b.vcpu, b.target] for p, b in enumerate(self.ports) if b is not None]

    def import_state(self, rows: list[list[int]]) -> None:
        """Rebind the ports of :meth:`export_state` (channel ports to the channels with the
        same handles). Raises ``ValueError`` for a row that does not fit this VM."""
        ports: list[PortBinding | None] = [None] * NR_PORTS
        virq: dict[tuple[int, int], int] = {}
        for port, kind, vcpu, target in rows:
            binding = PortBinding(EventKind(kind), int(vcpu), int(target))
            if not 0 < port < NR_PORTS or not 0 <= binding.vcpu < len(self._vcpus) or ports[port] is not None:
                raise ValueError(f"event port {port} does not fit this VM")
            if binding.kind == EventKind.CHANNEL and binding.target >= len(self._channels):
                raise ValueError(f"event port {port}: no channel {binding.target}")
            ports[port] = binding
            if binding.kind == EventKind.VIRQ:
                virq[(binding.vcpu, binding.target)] = port
        for device in self._channels:
            device.on_ready = None
        with self._lock:
            self.ports, self.virq_ports = ports, virq
        for port, binding in enumerate(ports):
            if binding is not None and binding.kind == EventKind.CHANNEL:
                self._channels.get(binding.target).on_ready = lambda p=port: self.raise_port(p)

    # -- binding ---------------------------------------------------------------
    def bind(self, kind: int, target: int, arg: int) -> int:
        nr_vcpus = len(self._vcpus)
        if kind == EventKind.IPI:
            if target >= nr_vcpus:
                raise HypercallError(Errno.EINVAL, f"no vCPU {target}")
            binding = PortBinding(EventKind.IPI, target, target)
        elif kind == EventKind.VIRQ:
            if target not in Virq._value2member_map_ or arg >= nr_vcpus:
                raise HypercallError(Errno.EINVAL, "bad VIRQ or vCPU")
            binding = PortBinding(EventKind.VIRQ, arg, target)
        elif kind == EventKind.CHANNEL:
            if arg >= nr_vcpus:
                raise HypercallError(Errno.EINVAL, f"no vCPU {arg}")
            device = self._channels.get(target)  # -EBADF for a bad handle
            if not device.has_readiness_events:
                raise HypercallError(Errno.EINVAL, "channel has no readiness events")
            if device.on_ready is not None:
                raise HypercallError(Errno.EBUSY, "channel already bound to a port")
            binding = PortBinding(EventKind.CHANNEL, arg, target)
        else:
            raise HypercallError(Errno.EINVAL, f"unknown event kind {kind}")
        with self._lock:
            if binding.kind == EventKind.VIRQ and (binding.vcpu, binding.target) in self.virq_ports:
                raise HypercallError(Errno.EBUSY, "VIRQ already bound on that vCPU")
            try:
                port = self.ports.index(None, 1)  # port 0 is never valid, as in Xen
            except ValueError:
                raise HypercallError(Errno.ENOSPC, "no free event port") from None
            self.ports[port] = binding
            self.shared.evtchn_pending[port] = 0
            if binding.kind == EventKind.VIRQ:
                self.virq_ports[(binding.vcpu, binding.target)] = port
        if binding.kind == EventKind.CHANNEL:
            device.on_ready = lambda: self.raise_port(port)
        return port

    def unbind(self, port: int) -> None:
        binding = self._binding(port)
        with self._lock:
            self.ports[port] = None
            if binding.kind == EventKind.VIRQ:
                self.virq_ports.pop((binding.vcpu, binding.target), None)
        if binding.kind == EventKind.CHANNEL:
            self._channels.get(binding.target).on_ready = None

    def _binding(self, port: int) -> PortBinding:
        binding = self.ports[port] if 0 < port < NR_PORTS else None
        if binding is None:
            raise HypercallError(Errno.EINVAL, f"port {port} is not bound")
        return binding

    # -- raising -----------------------------------------------------------------
    def notify(self, port: int) -> None:
        """``NOTIFY``: only IPI ports may be raised by the guest."""
        binding = self._binding(port)
        if binding.kind != EventKind.IPI:
            raise HypercallError(Errno.EINVAL, f"port {port} is not an IPI port")
        self.raise_port(port)

    def raise_virq(self, vcpu: int, virq: Virq) -> bool:
        port = self.virq_ports.get((vcpu, virq))
        if port is None:
            return False
        self.raise_port(port)
        return True

    def raise_port(self, port: int) -> None:
        """Mark *port* pending and get the upcall to its vCPU (any thread)."""
        shared = self.shared
        binding = self.ports[port]
        if binding is None or shared is None:
            return
        with self._lock:
            if shared.evtchn_pending[port]:
                return  # coalesced: the guest has not consumed the earlier raise yet
            shared.evtchn_pending[port] = 1
            self.raised += 1
            if shared.evtchn_mask[port]:
                return  # the guest checks pending ports when it unmasks
            info = shared.vcpu[binding.vcpu]
            info.pending_sel[port // PORTS_PER_GROUP] = 1
            if info.upcall_pending:
                return  # an upcall is already on its way
            info.upcall_pending = 1
        self._vcpus.wake(binding.vcpu)

    # -- delivery, on the target vCPU's own thread -------------------------------------
    def deliver(self, vcpu: Vcpu) -> None:
        """Inject the upcall vector into *vcpu* if it is wanted and the guest can take it.

        Called on the vCPU's own thread before re-entering the guest whenever
        :meth:`Vcpu.entering <pyvmm.vcpu.Vcpu.entering>` says an upcall is wanted.
        With the guest's interrupts off, ask KVM for an interrupt-window exit
        and inject then.
        """
        vcpu.drop_upcall_request()  # first: a raise from now on sets it again
        info = self.shared.vcpu[vcpu.id]
        run = vcpu.fd.run
        if info.upcall_mask or not info.upcall_pending:
            run.request_interrupt_window = 0
            return  # masked: the guest checks upcall_pending when it unmasks
        if run.ready_for_interrupt_injection and run.if_flag:
            try:
                vcpu.fd.interrupt(UPCALL_VECTOR)
            except KvmError as e:
                if e.errno != errno.EEXIST:  # one already queued: that one will do
                    raise
            run.request_interrupt_window = 0
        else:
            vcpu.retry_upcall()
            run.request_interrupt_window = 1

    def has_external_sources(self) -> bool:
        """True if a VIRQ or channel port is bound: something besides a vCPU may raise an event."""
        return any(p is not None and p.kind != EventKind.IPI for p in self.ports)

    def has_upcall_pending(self, vcpu_id: int) -> bool:
        return bool(self.shared.vcpu[vcpu_id].upcall_pending)

    def unmask_upcalls(self, vcpu_id: int) -> None:
        self.shared.vcpu[vcpu_id].upcall_mask = 0
