"""The hypercall test, and typed VM exits (rust-vmm's ``VcpuExit``) for everything else.

:func:`is_hypercall` is THE test of "this exit is a hypercall" and
:func:`finish_hypercall` THE way to hand its result back; every Python run
loop (:mod:`pyvmm.loop`, :mod:`pyvmm.bench.loops`) uses them, and the one C
copy is ``pyvmm_run_loop`` in ``pyvmm/fastloop.c`` (keep the two in step).

The typed values are for the slow exits, crash reports and tests: copies of
the exit data rather than views of the page, so they outlive the next
``KVM_RUN``. They are slotted dataclasses, not frozen ones: frozen costs about
1 ms of import per class on the boot path, and nothing mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvmm.kvm.constants import EXIT_IO_OUT, SYNC_X86_REGS, ExitReason
from pyvmm.kvm.structs import KvmRun

_EXIT_IO = int(ExitReason.IO)
#: The hypercall port (``pyvmm.paravirt.abi.HYPERCALL_PORT``; this layer sits below the ABI's).
HYPERCALL_PORT = 0xF5


def is_hypercall(run: KvmRun) -> bool:
    """Is the exit in *run* a hypercall: ``outl %eax`` to the hypercall port, once?

    4 bytes, OUT, count 1: a ``rep outsl`` of several dwords, an ``outb`` or an
    ``in`` on the port is an ABI violation (a crash report), not a hypercall.
    """
    if run.exit_reason != _EXIT_IO:
        return False
    io = run.exit.io
    return io.port == HYPERCALL_PORT and io.direction == EXIT_IO_OUT and io.size == 4 and io.count == 1


def finish_hypercall(run: KvmRun, result: int) -> None:
    """Put *result* in the guest's ``rax`` for the next ``KVM_RUN`` (sync regs).

    ORs the dirty bit: a handler may have marked the sregs dirty too (``AS_SWITCH``).
    """
    run.s.regs.regs.rax = result
    run.kvm_dirty_regs |= SYNC_X86_REGS


@dataclass(slots=True)
class VcpuExit:
    """Base class: an exit whose reason needs no payload."""

    reason: int

    @property
    def name(self) -> str:
        try:
            return ExitReason(self.reason).name
        except ValueError:
            return f"UNKNOWN_EXIT_{self.reason}"

    def describe(self) -> str:
        return self.name


@dataclass(slots=True)
class IoExit(VcpuExit):
    port: int
    size: int
    is_write: bool
    count: int
    data: bytes

    def describe(self) -> str:
        kind = "out" if self.is_write else "in"
        return f"IO {kind} port={self.port:#x} size={self.size} count={self.count} data={self.data.hex()}"


@dataclass(slots=True)
class MmioExit(VcpuExit):
    phys_addr: int
    length: int
    is_write: bool
    data: bytes

    def describe(self) -> str:
        kind = "write" if self.is_write else "read"
        return f"MMIO {kind} gpa={self.phys_addr:#x} len={self.length} data={self.data.hex()}"


@dataclass(slots=True)
class InternalErrorExit(VcpuExit):
    suberror: int
    data: tuple[int, ...]

    def describe(self) -> str:
        names = {1: "emulation failure", 2: "exception while delivering exception", 3: "event delivery failed"}
        what = names.get(self.suberror, f"suberror {self.suberror}")
        return f"INTERNAL_ERROR ({what}) data=[{', '.join(hex(d) for d in self.data)}]"


@dataclass(slots=True)
class FailEntryExit(VcpuExit):
    hardware_reason: int
    cpu: int

    def describe(self) -> str:
        return f"FAIL_ENTRY hardware_entry_failure_reason={self.hardware_reason:#x} cpu={self.cpu}"


@dataclass(slots=True)
class DebugExit(VcpuExit):
    exception: int
    pc: int
    dr6: int
    dr7: int

    def describe(self) -> str:
        return f"DEBUG exception={self.exception} pc={self.pc:#x} dr6={self.dr6:#x} dr7={self.dr7:#x}"


@dataclass(slots=True)
class SystemEventExit(VcpuExit):
    type: int
    data: tuple[int, ...]

    def describe(self) -> str:
        return f"SYSTEM_EVENT type={self.type} data={list(self.data)}"


@dataclass(slots=True)
class ExceptionExit(VcpuExit):
    exception: int
    error_code: int

    def describe(self) -> str:
        return f"EXCEPTION vector={self.exception} error_code={self.error_code:#x}"


def decode_exit(run: KvmRun, run_bytes: memoryview) -> VcpuExit:
    """Decode the exit described by *run* (the mapped page, also as *run_bytes*)."""
    reason = run.exit_reason
    e = run.exit
    if reason == ExitReason.IO:
        io = e.io
        n = io.size * io.count
        off = io.data_offset
        data = bytes(run_bytes[off : off + n]) if 0 < off and off + n <= len(run_bytes) else b""
        return IoExit(reason, io.port, io.size, io.direction == EXIT_IO_OUT, io.count, data)
    if reason == ExitReason.MMIO:
        m = e.mmio
        return MmioExit(reason, m.phys_addr, m.len, bool(m.is_write), bytes(m.data)[: min(m.len, 8)])
    if reason == ExitReason.INTERNAL_ERROR:
        i = e.internal
        return InternalErrorExit(reason, i.suberror, tuple(i.data[: min(i.ndata, 16)]))
    if reason == ExitReason.FAIL_ENTRY:
        return FailEntryExit(reason, e.fail_entry.hardware_entry_failure_reason, e.fail_entry.cpu)
    if reason == ExitReason.DEBUG:
        d = e.debug
        return DebugExit(reason, d.exception, d.pc, d.dr6, d.dr7)
    if reason == ExitReason.SYSTEM_EVENT:
        se = e.system_event
        return SystemEventExit(reason, se.type, tuple(se.data[: min(se.ndata, 16)]))
    if reason == ExitReason.EXCEPTION:
        return ExceptionExit(reason, e.ex.exception, e.ex.error_code)
    return VcpuExit(reason)
