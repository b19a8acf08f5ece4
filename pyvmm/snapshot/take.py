"""Taking a snapshot of a running VM: pause, capture, write, resume.

All vCPUs are paused first (:meth:`pyvmm.vcpu.VcpuSet.pause`): each stops between two
exits or asleep in BLOCK/HLT, never in the middle of another hypercall. Then, from
the snapshotting thread, each vCPU's pending exit is completed (``KVM_RUN`` with
``immediate_exit``: on VT-x the ``out`` of a hypercall is only finished by the next
``KVM_RUN``) and its state read; the VMM's state is read as plain data; guest RAM's
touched, non-zero pages are written. The VM then goes on, whether the write worked
or not (a full disk is an error for the requester, never a stopped VM).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

# Imported here, at build time, not when a snapshot is taken: the seccomp filter refuses imports then.
from pyvmm.devices.block import BlockDevice
from pyvmm.devices.stream import StreamChannel
from pyvmm.paravirt import abi
from pyvmm.paravirt.services import PauseKind
from pyvmm.snapshot import vcpustate
from pyvmm.snapshot.format import ChannelRecord, Manifest, SnapshotError, VcpuRecord, page_runs
from pyvmm.vcpu import VcpuState as Lifecycle

if TYPE_CHECKING:
    from pyvmm.vcpu import Vcpu

#: How long a pause waits for every vCPU to reach a consistent point.
PAUSE_TIMEOUT_S = 5.0


def pause_and_capture(machine, caller: Vcpu | None) -> Manifest:
    """Pause *machine*'s vCPUs and capture the VM; the caller must :meth:`resume` them
    (``machine.vcpus.resume()``) once the memory is written. Raises :class:`SnapshotError`
    (nothing stays paused then)."""
    kinds = machine.vcpus.pause(caller, PAUSE_TIMEOUT_S)
    if kinds is None:
        raise SnapshotError(f"the vCPUs did not reach a consistent point within {PAUSE_TIMEOUT_S:g} s")
    try:
        return capture(machine, kinds)
    except BaseException:
        machine.vcpus.resume()
        raise


def capture(machine, kinds: dict[int, PauseKind]) -> Manifest:
    """The manifest of a paused (or stopped) VM, with its memory runs."""
    records = []
    for vcpu in machine.vcpus:
        started = vcpu.state is not Lifecycle.PARKED
        if started:
            vcpu.fd.complete_pending_io()
        records.append(
            VcpuRecord(
                vcpu.id,
                started,
                kinds.get(vcpu.id, PauseKind.RUNNING),
                vcpu.timer_deadline,
                vcpustate.capture(vcpu.fd),
            )
        )
    # First: it makes RAM's page-table pool equal to the VMM's copy again (writes pages).
    address_spaces = machine.address_spaces.export_state()
    mem = machine.memory
    pages = mem.nonzero_pages(mem.resident_pages())
    return Manifest(
        abi_version=abi.ABI_VERSION,
        memory_size=mem.size,
        cmdline=machine.config.cmdline,
        tsc_khz=machine.tsc_khz,
        monotonic_ns=time.monotonic_ns(),
        boot_id=machine.boot_id,
        kernel_root=machine.kernel_tables.root,
        vcpus=records,
        channels=channel_records(machine.channels),
        events=machine.events.export_state(),
        address_spaces=address_spaces,
        memory_runs=page_runs(pages),
    )


def channel_records(channels) -> list[ChannelRecord]:
    """What restore needs to reattach each channel: its kind, name, and for a disk the
    path, size and a hash of its contents (checked at restore)."""
    out = []
    for handle, device in enumerate(channels):
        rec = ChannelRecord(handle, int(device.kind), device.name)
        if isinstance(device, BlockDevice):
            rec.path, rec.size, rec.sha256 = device.path, device.size, device.content_hash()
        elif isinstance(device, StreamChannel):
            rec.path, rec.server = device.path, device.server
        out.append(rec)
    return out
