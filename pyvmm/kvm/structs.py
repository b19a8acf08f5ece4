"""ctypes mirrors of the ``<linux/kvm.h>`` / ``<asm/kvm.h>`` structures pyvmm uses.

Every size and field offset here is checked against the real kernel headers by
``tests/test_kvm_structs.py``, which compiles a small C program; keep the two in step.
"""

from __future__ import annotations

import ctypes
from ctypes import c_int32, c_uint8, c_uint16, c_uint32, c_uint64

__all__ = [
    "KvmCpuid2",
    "KvmCpuidEntry2",
    "KvmDebugregs",
    "KvmDirtyLog",
    "KvmDtable",
    "KvmEnableCap",
    "KvmFpu",
    "KvmGuestDebug",
    "KvmInterrupt",
    "KvmIoeventfd",
    "KvmIrqRoutingEntry",
    "KvmIrqfd",
    "KvmLapicState",
    "KvmMpState",
    "KvmMsrEntry",
    "KvmMsrs",
    "KvmRegs",
    "KvmRun",
    "KvmSegment",
    "KvmSregs",
    "KvmUserspaceMemoryRegion",
    "KvmVcpuEvents",
    "KvmXcrs",
    "KvmXsave",
    "cpuid2_type",
    "msrs_type",
]


class KvmRegs(ctypes.Structure):
    _fields_ = [
        (name, c_uint64)
        for name in ("rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags".split())
    ]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("padding", c_uint8),
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("padding", c_uint16 * 3)]


class KvmSregs(ctypes.Structure):
    _fields_ = [
        ("cs", KvmSegment),
        ("ds", KvmSegment),
        ("es", KvmSegment),
        ("fs", KvmSegment),
        ("gs", KvmSegment),
        ("ss", KvmSegment),
        ("tr", KvmSegment),
        ("ldt", KvmSegment),
        ("gdt", KvmDtable),
        ("idt", KvmDtable),
        ("cr0", c_uint64),
        ("cr2", c_uint64),
        ("cr3", c_uint64),
        ("cr4", c_uint64),
        ("cr8", c_uint64),
        ("efer", c_uint64),
        ("apic_base", c_uint64),
        ("interrupt_bitmap", c_uint64 * 4),
    ]


class KvmFpu(ctypes.Structure):
    _fields_ = [
        ("fpr", c_uint8 * 16 * 8),
        ("fcw", c_uint16),
        ("fsw", c_uint16),
        ("ftwx", c_uint8),
        ("pad1", c_uint8),
        ("last_opcode", c_uint16),
        ("last_ip", c_uint64),
        ("last_dp", c_uint64),
        ("xmm", c_uint8 * 16 * 16),
        ("mxcsr", c_uint32),
        ("pad2", c_uint32),
    ]


class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [
        ("slot", c_uint32),
        ("flags", c_uint32),
        ("guest_phys_addr", c_uint64),
        ("memory_size", c_uint64),
        ("userspace_addr", c_uint64),
    ]


class KvmCpuidEntry2(ctypes.Structure):
    _fields_ = [
        ("function", c_uint32),
        ("index", c_uint32),
        ("flags", c_uint32),
        ("eax", c_uint32),
        ("ebx", c_uint32),
        ("ecx", c_uint32),
        ("edx", c_uint32),
        ("padding", c_uint32 * 3),
    ]


class KvmCpuid2(ctypes.Structure):
    """Header only; use :func:`cpuid2_type` for a variant with room for entries."""

    _fields_ = [("nent", c_uint32), ("padding", c_uint32)]


def cpuid2_type(n: int) -> type[ctypes.Structure]:
    """A ``struct kvm_cpuid2`` with room for *n* entries."""

    class _KvmCpuid2N(ctypes.Structure):
        _fields_ = [("nent", c_uint32), ("padding", c_uint32), ("entries", KvmCpuidEntry2 * n)]

    return _KvmCpuid2N


class KvmMsrEntry(ctypes.Structure):
    _fields_ = [("index", c_uint32), ("reserved", c_uint32), ("data", c_uint64)]


class KvmMsrs(ctypes.Structure):
    """Header only; use :func:`msrs_type` for a variant with room for entries."""

    _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32)]


def msrs_type(n: int) -> type[ctypes.Structure]:
    """A ``struct kvm_msrs`` with room for *n* entries."""

    class _KvmMsrsN(ctypes.Structure):
        _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32), ("entries", KvmMsrEntry * n)]

    return _KvmMsrsN


class KvmInterrupt(ctypes.Structure):
    _fields_ = [("irq", c_uint32)]


class KvmIoeventfd(ctypes.Structure):
    _fields_ = [
        ("datamatch", c_uint64),
        ("addr", c_uint64),
        ("len", c_uint32),
        ("fd", c_int32),
        ("flags", c_uint32),
        ("pad", c_uint8 * 36),
    ]


class KvmGuestDebug(ctypes.Structure):
    _fields_ = [("control", c_uint32), ("pad", c_uint32), ("debugreg", c_uint64 * 8)]


class KvmEnableCap(ctypes.Structure):
    _fields_ = [("cap", c_uint32), ("flags", c_uint32), ("args", c_uint64 * 4), ("pad", c_uint8 * 64)]


class _Exception(ctypes.Structure):
    _fields_ = [("exception", c_uint32), ("error_code", c_uint32)]


class KvmVcpuEvents(ctypes.Structure):
    _fields_ = [
        ("exception", c_uint8 * 4),  # injected, nr, has_error_code, pending
        ("exception_error_code", c_uint32),
        ("interrupt", c_uint8 * 4),  # injected, nr, soft, shadow
        ("nmi", c_uint8 * 4),  # injected, pending, masked, pad
        ("sipi_vector", c_uint32),
        ("flags", c_uint32),
        ("smi", c_uint8 * 4),
        ("triple_fault", c_uint8),
        ("reserved", c_uint8 * 26),
        ("exception_has_payload", c_uint8),
        ("exception_payload", c_uint64),
    ]


# --- vCPU state a snapshot saves (pyvmm.snapshot) -------------------------------


class KvmMpState(ctypes.Structure):
    _fields_ = [("mp_state", c_uint32)]


class KvmXsave(ctypes.Structure):
    """The legacy 4 KiB XSAVE area (``KVM_GET_XSAVE``; ``KVM_GET_XSAVE2`` is for larger ones)."""

    _fields_ = [("region", c_uint32 * 1024)]


class KvmXcr(ctypes.Structure):
    _fields_ = [("xcr", c_uint32), ("reserved", c_uint32), ("value", c_uint64)]


class KvmXcrs(ctypes.Structure):
    _fields_ = [("nr_xcrs", c_uint32), ("flags", c_uint32), ("xcrs", KvmXcr * 16), ("padding", c_uint64 * 16)]


class KvmDebugregs(ctypes.Structure):
    _fields_ = [
        ("db", c_uint64 * 4),
        ("dr6", c_uint64),
        ("dr7", c_uint64),
        ("flags", c_uint64),
        ("reserved", c_uint64 * 9),
    ]


class KvmDirtyLog(ctypes.Structure):
    """``struct kvm_dirty_log``: *dirty_bitmap* is the address of a bitmap, one bit per page."""

    _fields_ = [("slot", c_uint32), ("padding1", c_uint32), ("dirty_bitmap", c_uint64)]


# --- the in-kernel local APIC and interrupt routing (``--hw-api``, pyvmm.hw) ------------


class KvmLapicState(ctypes.Structure):
    """``struct kvm_lapic_state``: the local APIC's 4 KiB register page, first 1 KiB."""

    _fields_ = [("regs", ctypes.c_char * 1024)]


class KvmIrqfd(ctypes.Structure):
    _fields_ = [
        ("fd", c_uint32),
        ("gsi", c_uint32),
        ("flags", c_uint32),
        ("resamplefd", c_uint32),
        ("pad", c_uint8 * 16),
    ]


class KvmIrqRoutingMsi(ctypes.Structure):
    _fields_ = [("address_lo", c_uint32), ("address_hi", c_uint32), ("data", c_uint32), ("devid", c_uint32)]


class _IrqRoutingUnion(ctypes.Union):
    _fields_ = [("msi", KvmIrqRoutingMsi), ("pad", c_uint32 * 8)]


class KvmIrqRoutingEntry(ctypes.Structure):
    _fields_ = [("gsi", c_uint32), ("type", c_uint32), ("flags", c_uint32), ("pad", c_uint32), ("u", _IrqRoutingUnion)]


class KvmIrqRouting(ctypes.Structure):
    """``struct kvm_irq_routing`` without its entries (see :func:`irq_routing_type`)."""

    _fields_ = [("nr", c_uint32), ("flags", c_uint32)]


def irq_routing_type(n: int):
    """``struct kvm_irq_routing`` followed by *n* entries."""

    class _KvmIrqRoutingN(ctypes.Structure):
        _fields_ = [("nr", c_uint32), ("flags", c_uint32), ("entries", KvmIrqRoutingEntry * n)]

    return _KvmIrqRoutingN


# --- struct kvm_run -----------------------------------------------------------


class _RunIo(ctypes.Structure):
    _fields_ = [
        ("direction", c_uint8),
        ("size", c_uint8),
        ("port", c_uint16),
        ("count", c_uint32),
        ("data_offset", c_uint64),
    ]


class _RunMmio(ctypes.Structure):
    _fields_ = [("phys_addr", c_uint64), ("data", c_uint8 * 8), ("len", c_uint32), ("is_write", c_uint8)]


class _RunFailEntry(ctypes.Structure):
    _fields_ = [("hardware_entry_failure_reason", c_uint64), ("cpu", c_uint32)]


class _RunInternal(ctypes.Structure):
    _fields_ = [("suberror", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class _RunDebug(ctypes.Structure):
    _fields_ = [
        ("exception", c_uint32),
        ("pad", c_uint32),
        ("pc", c_uint64),
        ("dr6", c_uint64),
        ("dr7", c_uint64),
    ]


class _RunSystemEvent(ctypes.Structure):
    _fields_ = [("type", c_uint32), ("ndata", c_uint32), ("data", c_uint64 * 16)]


class _RunMsr(ctypes.Structure):
    _fields_ = [
        ("error", c_uint8),
        ("pad", c_uint8 * 7),
        ("reason", c_uint32),
        ("index", c_uint32),
        ("data", c_uint64),
    ]


class _RunExit(ctypes.Union):
    _fields_ = [
        ("ex", _Exception),
        ("io", _RunIo),
        ("mmio", _RunMmio),
        ("fail_entry", _RunFailEntry),
        ("internal", _RunInternal),
        ("debug", _RunDebug),
        ("system_event", _RunSystemEvent),
        ("msr", _RunMsr),
        ("padding", c_uint8 * 256),
    ]


class _SyncRegs(ctypes.Structure):
    _fields_ = [
        ("regs", KvmRegs),
        ("sregs", KvmSregs),
        ("events", KvmVcpuEvents),
    ]


class _SyncRegsUnion(ctypes.Union):
    _fields_ = [("regs", _SyncRegs), ("padding", c_uint8 * 2048)]


class KvmRun(ctypes.Structure):
    """The shared ``kvm_run`` page (the fixed part; the I/O data area follows it)."""

    _fields_ = [
        ("request_interrupt_window", c_uint8),
        ("immediate_exit", c_uint8),
        ("padding1", c_uint8 * 6),
        ("exit_reason", c_uint32),
        ("ready_for_interrupt_injection", c_uint8),
        ("if_flag", c_uint8),
        ("flags", c_uint16),
        ("cr8", c_uint64),
        ("apic_base", c_uint64),
        ("exit", _RunExit),
        ("kvm_valid_regs", c_uint64),
        ("kvm_dirty_regs", c_uint64),
        ("s", _SyncRegsUnion),
    ]
