"""One vCPU's architectural state, saved and restored in the order KVM needs.

Saved (as Firecracker's ``vstate/vcpu`` does): MP state first, then the general and
special registers, the FPU/SSE state (XSAVE where KVM has it, else ``KVM_GET_FPU``),
the XCRs, the debug registers, the MSRs, and the pending-event state last: reading
the events last sees whatever the reads before it may have settled. Restored in the
same order, with CPUID first (``KVM_SET_CPUID2`` must precede everything that checks
features against it, XSAVE and MSRs included) and the events last, since setting
registers or MSRs may queue or clear an event.

Every piece is the raw ``struct kvm_*`` as KVM gives it (its layout is tested against
``<linux/kvm.h>``, tests/test_kvm_structs.py); the snapshot format stores it as hex.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.kvm import structs as s
from pyvmm.kvm.errors import KvmError

if TYPE_CHECKING:
    from pyvmm.kvm.vcpu import VcpuFd

MSR_IA32_TSC = 0x10
#: The MSRs a pyvmm guest can change that live outside sregs: SYSCALL/SYSENTER entry,
#: the swapped GS base, PAT, TSC_AUX and the TSC itself (adjusted on restore, see
#: :func:`apply`). KVM leaves unknown ones out of a read; those are simply not saved.
SAVED_MSRS = (
    0x174,  # IA32_SYSENTER_CS
    0x175,  # IA32_SYSENTER_ESP
    0x176,  # IA32_SYSENTER_EIP
    0x277,  # IA32_PAT
    0x1A0,  # IA32_MISC_ENABLE
    0xC0000081,  # STAR
    0xC0000082,  # LSTAR
    0xC0000083,  # CSTAR
    0xC0000084,  # SFMASK
    0xC0000102,  # KERNEL_GS_BASE
    0xC0000103,  # TSC_AUX
    MSR_IA32_TSC,
)


@dataclass
class VcpuState:
    """The saved state of one vCPU (raw KVM structures)."""

    mp_state: s.KvmMpState
    regs: s.KvmRegs
    sregs: s.KvmSregs
    fpu: s.KvmFpu | None  # when KVM has no XSAVE
    xsave: s.KvmXsave | None
    xcrs: s.KvmXcrs | None
    debugregs: s.KvmDebugregs | None
    msrs: dict[int, int]
    events: s.KvmVcpuEvents
    cpuid: list[s.KvmCpuidEntry2]

    def to_json(self) -> dict:
        def raw(obj):
            return None if obj is None else bytes(obj).hex()

        return {
            "mp_state": raw(self.mp_state),
            "regs": raw(self.regs),
            "sregs": raw(self.sregs),
            "fpu": raw(self.fpu),
            "xsave": raw(self.xsave),
            "xcrs": raw(self.xcrs),
            "debugregs": raw(self.debugregs),
            "msrs": {f"{k:#x}": v for k, v in self.msrs.items()},
            "events": raw(self.events),
            "cpuid": [raw(e) for e in self.cpuid],
        }

    @classmethod
    def from_json(cls, d: dict) -> VcpuState:
        """Raises ``ValueError``/``KeyError``/``TypeError`` on a malformed record."""

        def raw(key, ctype, *, optional=False):
            value = d[key]
            if value is None and optional:
                return None
            data = bytes.fromhex(value)
            if len(data) != ctypes.sizeof(ctype):
                raise ValueError(f"vCPU {key}: {len(data)} bytes, not {ctypes.sizeof(ctype)}")
            return ctype.from_buffer_copy(data)

        cpuid = []
        for entry in d["cpuid"]:
            data = bytes.fromhex(entry)
            if len(data) != ctypes.sizeof(s.KvmCpuidEntry2):
                raise ValueError("vCPU cpuid entry of the wrong size")
            cpuid.append(s.KvmCpuidEntry2.from_buffer_copy(data))
        return cls(
            mp_state=raw("mp_state", s.KvmMpState),
            regs=raw("regs", s.KvmRegs),
            sregs=raw("sregs", s.KvmSregs),
            fpu=raw("fpu", s.KvmFpu, optional=True),
            xsave=raw("xsave", s.KvmXsave, optional=True),
            xcrs=raw("xcrs", s.KvmXcrs, optional=True),
            debugregs=raw("debugregs", s.KvmDebugregs, optional=True),
            msrs={int(k, 16): int(v) for k, v in d["msrs"].items()},
            events=raw("events", s.KvmVcpuEvents),
            cpuid=cpuid,
        )


def _optional(get):
    """*get()*, or None where this KVM lacks the ioctl (ENOTTY/EINVAL: e.g. no XSAVE)."""
    try:
        return get()
    except KvmError as e:
        if e.errno in (25, 22):  # ENOTTY, EINVAL
            return None
        raise


def capture(fd: VcpuFd) -> VcpuState:
    """Read *fd*'s state. Call on a vCPU that is not running, after
    :meth:`~pyvmm.kvm.vcpu.VcpuFd.complete_pending_io`. Raises :class:`KvmError`."""
    mp_state = fd.get_mp_state()
    regs = fd.get_regs()
    sregs = fd.get_sregs()
    xsave = _optional(fd.get_xsave)
    fpu = fd.get_fpu() if xsave is None else None
    xcrs = _optional(fd.get_xcrs)
    debugregs = _optional(fd.get_debugregs)
    msrs = fd.get_msrs(list(SAVED_MSRS))
    events = fd.get_vcpu_events()
    return VcpuState(mp_state, regs, sregs, fpu, xsave, xcrs, debugregs, msrs, events, fd.get_cpuid2())


def apply(fd: VcpuFd, state: VcpuState, *, tsc_advance: int = 0, set_cpuid: bool = True) -> None:
    """Load *state* into *fd*; the TSC moves on by *tsc_advance* ticks (the time the
    snapshot spent on disk), so the guest's TSC clock keeps up with the monotonic clock
    its deadlines use. *set_cpuid*: False for a vCPU that has run already (KVM refuses
    a CPUID change after the first ``KVM_RUN``; it is the same one). Raises :class:`KvmError`."""
    if set_cpuid:
        fd.set_cpuid2(state.cpuid)
    fd.set_mp_state(state.mp_state)
    fd.set_regs(state.regs)
    fd.set_sregs(state.sregs)
    if state.xsave is not None:
        fd.set_xsave(state.xsave)
    elif state.fpu is not None:
        fd.set_fpu(state.fpu)
    if state.xcrs is not None:
        fd.set_xcrs(state.xcrs)
    if state.debugregs is not None:
        fd.set_debugregs(state.debugregs)
    msrs = dict(state.msrs)
    if MSR_IA32_TSC in msrs:
        msrs[MSR_IA32_TSC] += tsc_advance
    if msrs:
        fd.set_msrs(msrs)
    events = s.KvmVcpuEvents.from_buffer_copy(state.events)
    # KVM_VCPUEVENT_VALID_NMI_PENDING | _SIPI_VECTOR | _SHADOW: the fields it should take back.
    events.flags &= 0x7
    fd.set_vcpu_events(events)
