"""Typed VM exits (rust-vmm's ``VcpuExit``), decoded from the ``kvm_run`` page.

The per-exit hot path in :mod:`pyvmm.machine` reads the few ``kvm_run`` fields
it needs directly; these values are for everything else: the slow exits, crash
reports and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvmm.kvm.constants import EXIT_IO_OUT, ExitReason
from pyvmm.kvm.structs import KvmRun


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
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


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class IoExit(VcpuExit):
    port: int
    size: int
    is_write: bool
    count: int
    data: bytes

    def describe(self) -> str:
        kind = "out" if self.is_write else "in"
        return f"IO {kind} port={self.port:#x} size={self.size} count={self.count} data={self.data.hex()}"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class MmioExit(VcpuExit):
    phys_addr: int
    length: int
    is_write: bool
    data: bytes

    def describe(self) -> str:
        kind = "write" if self.is_write else "read"
        return f"MMIO {kind} gpa={self.phys_addr:#x} len={self.length} data={self.data.hex()}"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class InternalErrorExit(VcpuExit):
    suberror: int
    data: tuple[int, ...]

    def describe(self) -> str:
        names = {1: "emulation failure", 2: "exception while delivering exception", 3: "event delivery failed"}
        what = names.get(self.suberror, f"suberror {self.suberror}")
        return f"INTERNAL_ERROR ({what}) data=[{', '.join(hex(d) for d in self.data)}]"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class FailEntryExit(VcpuExit):
    hardware_reason: int
    cpu: int

    def describe(self) -> str:
        return f"FAIL_ENTRY hardware_entry_failure_reason={self.hardware_reason:#x} cpu={self.cpu}"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class DebugExit(VcpuExit):
    exception: int
    pc: int
    dr6: int
    dr7: int

    def describe(self) -> str:
        return f"DEBUG exception={self.exception} pc={self.pc:#x} dr6={self.dr6:#x} dr7={self.dr7:#x}"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
class SystemEventExit(VcpuExit):
    type: int
    data: tuple[int, ...]

    def describe(self) -> str:
        return f"SYSTEM_EVENT type={self.type} data={list(self.data)}"


@dataclass(slots=True)  # not frozen: frozen costs ~1 ms of import per class, and nothing mutates these
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
