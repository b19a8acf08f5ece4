"""Boot-time CPU state: vCPUs start directly in 64-bit long mode.

The state is complete and architecturally valid (what VMX/SVM entry checks
demand), as Firecracker and Solo5 set it, so the same code runs on VT-x, AMD-V
and KVM's PVM backend alike.
"""

from __future__ import annotations

import struct

from pyvmm.kvm.structs import KvmFpu, KvmRegs, KvmSegment, KvmSregs

# Control registers and EFER
CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_AM = 1 << 18
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
CR4_PGE = 1 << 7
CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11
RFLAGS_RESERVED = 1 << 1
RFLAGS_IF = 1 << 9

# GDT selectors. The order suits SYSCALL/SYSRET: STAR[47:32] = KERNEL_CS
# (SS = +8), STAR[63:48] = USER32_CS (SYSRET: SS = +8, CS = +16).
KERNEL_CS = 0x08
KERNEL_DS = 0x10
USER32_CS = 0x18
USER_DS = 0x20 | 3
USER_CS = 0x28 | 3
TSS_SEL = 0x30
GDT_ENTRIES = 8
TSS_OFFSET = 0x100  # the TSS lives in the GDT page, after the table
TSS_LIMIT = 0x67

# MSRs
MSR_IA32_SYSENTER_CS = 0x174
MSR_IA32_SYSENTER_ESP = 0x175
MSR_IA32_SYSENTER_EIP = 0x176
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_MTRR_DEF_TYPE = 0x2FF
MSR_IA32_CR_PAT = 0x277
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SYSCALL_MASK = 0xC0000084
MSR_KERNEL_GS_BASE = 0xC0000102
MISC_ENABLE_FAST_STRING = 1 << 0
MTRR_ENABLE_WB = (1 << 11) | 6
PAT_DEFAULT = 0x0007_0406_0007_0406


def _descriptor(base: int, limit: int, access: int, flags: int) -> int:
    return (
        (limit & 0xFFFF)
        | ((base & 0xFFFFFF) << 16)
        | (access << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (flags << 52)
        | (((base >> 24) & 0xFF) << 56)
    )


def gdt_page(gdt_gpa: int) -> bytes:
    """The boot GDT page: descriptors, then a zeroed 64-bit TSS at ``TSS_OFFSET``."""
    tss_base = gdt_gpa + TSS_OFFSET
    entries = [
        0,
        _descriptor(0, 0xFFFFF, 0x9B, 0xA),  # kernel code, 64-bit
        _descriptor(0, 0xFFFFF, 0x93, 0xC),  # kernel data
        _descriptor(0, 0xFFFFF, 0xFB, 0xC),  # user code, 32-bit (SYSRET base)
        _descriptor(0, 0xFFFFF, 0xF3, 0xC),  # user data
        _descriptor(0, 0xFFFFF, 0xFB, 0xA),  # user code, 64-bit
        _descriptor(tss_base, TSS_LIMIT, 0x8B, 0x0),  # TSS (busy), low half
        tss_base >> 32,  # TSS, high half
    ]
    table = struct.pack(f"<{GDT_ENTRIES}Q", *entries)
    return table.ljust(4096, b"\0")


def _segment(selector: int, code: bool) -> KvmSegment:
    return KvmSegment(
        base=0,
        limit=0xFFFFFFFF,
        selector=selector,
        type=0xB if code else 0x3,  # execute/read or read/write, accessed
        present=1,
        dpl=selector & 3,
        db=0 if code else 1,
        s=1,
        l=1 if code else 0,
        g=1,
    )


def long_mode_sregs(base: KvmSregs, *, cr3: int, gdt_gpa: int, nx: bool) -> KvmSregs:
    """Segment and control state for 64-bit long mode with paging at *cr3*.

    *base* is the vCPU's ``KVM_GET_SREGS`` (kept for fields we do not own,
    such as ``apic_base`` and the interrupt bitmap).
    """
    sregs = KvmSregs.from_buffer_copy(base)
    sregs.cs = _segment(KERNEL_CS, code=True)
    data = _segment(KERNEL_DS, code=False)
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data
    sregs.tr = KvmSegment(base=gdt_gpa + TSS_OFFSET, limit=TSS_LIMIT, selector=TSS_SEL, type=0xB, present=1, s=0, g=0)
    # An LDT is not used: present-but-empty system segment (type 2), valid for VMX.
    sregs.ldt = KvmSegment(base=0, limit=0xFFFF, selector=0, type=0x2, present=1, s=0)
    sregs.gdt.base = gdt_gpa
    sregs.gdt.limit = GDT_ENTRIES * 8 - 1
    sregs.idt.base = 0
    sregs.idt.limit = 0  # the guest installs its own IDT; until then a fault is a triple fault
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG
    sregs.cr3 = cr3
    sregs.cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT
    sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | (EFER_NXE if nx else 0)
    return sregs


def boot_regs(*, entry: int, stack: int, arg: int) -> KvmRegs:
    """General registers at entry: ``rip``, ``rsp``, and the argument in ``rdi``."""
    return KvmRegs(rip=entry, rsp=stack, rdi=arg, rflags=RFLAGS_RESERVED)


def boot_fpu() -> KvmFpu:
    """x87/SSE state after FNINIT with SSE exceptions masked."""
    fpu = KvmFpu()
    fpu.fcw = 0x37F
    fpu.mxcsr = 0x1F80
    return fpu


def boot_msrs() -> dict[int, int]:
    """MSRs with defined boot values (SYSCALL entry points are the guest's to set)."""
    return {
        MSR_IA32_SYSENTER_CS: 0,
        MSR_IA32_SYSENTER_ESP: 0,
        MSR_IA32_SYSENTER_EIP: 0,
        MSR_STAR: 0,
        MSR_CSTAR: 0,
        MSR_KERNEL_GS_BASE: 0,
        MSR_SYSCALL_MASK: 0,
        MSR_LSTAR: 0,
        MSR_IA32_MISC_ENABLE: MISC_ENABLE_FAST_STRING,
        MSR_MTRR_DEF_TYPE: MTRR_ENABLE_WB,
        MSR_IA32_CR_PAT: PAT_DEFAULT,
    }
