"""ioctl request numbers, capabilities and exit reasons from ``<linux/kvm.h>``.

Numbers are computed with the kernel's ``_IOC`` encoding from the structure
sizes in :mod:`pyvmm.kvm.structs`; ``tests/test_kvm_structs.py`` compares every one
with the value the C preprocessor produces from the installed headers.
"""

from __future__ import annotations

import ctypes
import enum

from pyvmm.kvm import structs as s

KVMIO = 0xAE
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr: int) -> int:
    return _ioc(_IOC_NONE, nr, 0)


def _iow(nr: int, ctype) -> int:
    return _ioc(_IOC_WRITE, nr, ctypes.sizeof(ctype))


def _ior(nr: int, ctype) -> int:
    return _ioc(_IOC_READ, nr, ctypes.sizeof(ctype))


def _iowr(nr: int, ctype) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, nr, ctypes.sizeof(ctype))


class Ioctl(enum.IntEnum):
    """ioctl request numbers (system, VM and vCPU)."""

    GET_API_VERSION = _io(0x00)
    CREATE_VM = _io(0x01)
    CHECK_EXTENSION = _io(0x03)
    GET_VCPU_MMAP_SIZE = _io(0x04)
    GET_SUPPORTED_CPUID = _iowr(0x05, s.KvmCpuid2)
    CREATE_VCPU = _io(0x41)
    GET_DIRTY_LOG = _iow(0x42, s.KvmDirtyLog)
    SET_USER_MEMORY_REGION = _iow(0x46, s.KvmUserspaceMemoryRegion)
    SET_TSS_ADDR = _io(0x47)
    SET_IDENTITY_MAP_ADDR = _iow(0x48, ctypes.c_uint64)
    SET_GSI_ROUTING = _iow(0x6A, s.KvmIrqRouting)
    IRQFD = _iow(0x76, s.KvmIrqfd)
    IOEVENTFD = _iow(0x79, s.KvmIoeventfd)
    RUN = _io(0x80)
    GET_REGS = _ior(0x81, s.KvmRegs)
    SET_REGS = _iow(0x82, s.KvmRegs)
    GET_SREGS = _ior(0x83, s.KvmSregs)
    SET_SREGS = _iow(0x84, s.KvmSregs)
    INTERRUPT = _iow(0x86, s.KvmInterrupt)
    GET_MSRS = _iowr(0x88, s.KvmMsrs)
    SET_MSRS = _iow(0x89, s.KvmMsrs)
    GET_FPU = _ior(0x8C, s.KvmFpu)
    SET_FPU = _iow(0x8D, s.KvmFpu)
    GET_LAPIC = _ior(0x8E, s.KvmLapicState)
    SET_LAPIC = _iow(0x8F, s.KvmLapicState)
    SET_CPUID2 = _iow(0x90, s.KvmCpuid2)
    GET_CPUID2 = _iowr(0x91, s.KvmCpuid2)
    GET_MP_STATE = _ior(0x98, s.KvmMpState)
    SET_MP_STATE = _iow(0x99, s.KvmMpState)
    SET_GUEST_DEBUG = _iow(0x9B, s.KvmGuestDebug)
    GET_VCPU_EVENTS = _ior(0x9F, s.KvmVcpuEvents)
    SET_VCPU_EVENTS = _iow(0xA0, s.KvmVcpuEvents)
    GET_DEBUGREGS = _ior(0xA1, s.KvmDebugregs)
    SET_DEBUGREGS = _iow(0xA2, s.KvmDebugregs)
    GET_TSC_KHZ = _io(0xA3)
    ENABLE_CAP = _iow(0xA3, s.KvmEnableCap)
    GET_XSAVE = _ior(0xA4, s.KvmXsave)
    SET_XSAVE = _iow(0xA5, s.KvmXsave)
    GET_XCRS = _ior(0xA6, s.KvmXcrs)
    SET_XCRS = _iow(0xA7, s.KvmXcrs)
    GET_STATS_FD = _io(0xCE)


class Cap(enum.IntEnum):
    """``KVM_CAP_*`` numbers pyvmm asks about."""

    IRQCHIP = 0
    HLT = 1
    USER_MEMORY = 3
    SET_TSS_ADDR = 4
    EXT_CPUID = 7
    NR_VCPUS = 9
    NR_MEMSLOTS = 10
    SET_GUEST_DEBUG = 23
    IRQ_ROUTING = 25
    IRQFD = 32
    IOEVENTFD = 36
    DEBUGREGS = 50
    XSAVE = 55
    XCRS = 56
    GET_TSC_KHZ = 61
    MAX_VCPUS = 66
    TSC_DEADLINE_TIMER = 72
    SYNC_REGS = 74
    READONLY_MEM = 81
    SPLIT_IRQCHIP = 121
    X2APIC_API = 129
    IMMEDIATE_EXIT = 136
    BINARY_STATS_FD = 203


class ExitReason(enum.IntEnum):
    """``KVM_EXIT_*``: why ``KVM_RUN`` returned."""

    UNKNOWN = 0
    EXCEPTION = 1
    IO = 2
    HYPERCALL = 3
    DEBUG = 4
    HLT = 5
    MMIO = 6
    IRQ_WINDOW_OPEN = 7
    SHUTDOWN = 8
    FAIL_ENTRY = 9
    INTR = 10
    SET_TPR = 11
    TPR_ACCESS = 12
    NMI = 16
    INTERNAL_ERROR = 17
    SYSTEM_EVENT = 24
    IOAPIC_EOI = 26
    X86_RDMSR = 29
    X86_WRMSR = 30
    X86_BUS_LOCK = 33
    NOTIFY = 37


# struct kvm_run.io.direction
EXIT_IO_IN = 0
EXIT_IO_OUT = 1

# kvm_run.kvm_valid_regs / kvm_dirty_regs bits
SYNC_X86_REGS = 1 << 0
SYNC_X86_SREGS = 1 << 1
SYNC_X86_EVENTS = 1 << 2

# struct kvm_userspace_memory_region.flags
MEM_LOG_DIRTY_PAGES = 1 << 0
MEM_READONLY = 1 << 1

# struct kvm_ioeventfd.flags
IOEVENTFD_FLAG_DATAMATCH = 1 << 0
IOEVENTFD_FLAG_PIO = 1 << 1
IOEVENTFD_FLAG_DEASSIGN = 1 << 2

# struct kvm_guest_debug.control
GUESTDBG_ENABLE = 0x00000001
GUESTDBG_SINGLESTEP = 0x00000002
GUESTDBG_USE_SW_BP = 0x00010000  # x86: #BP (int3) exits to userspace
GUESTDBG_USE_HW_BP = 0x00020000  # x86: debugreg[] below are the vCPU's DR0-3/DR7

# struct kvm_irq_routing_entry.type
IRQ_ROUTING_MSI = 2

# struct kvm_mp_state.mp_state
MP_STATE_RUNNABLE = 0

# KVM_GET_API_VERSION must return this
API_VERSION = 12

# kvm_run.internal.suberror
INTERNAL_ERROR_EMULATION = 1
INTERNAL_ERROR_SIMUL_EX = 2
INTERNAL_ERROR_DELIVERY_EV = 3
