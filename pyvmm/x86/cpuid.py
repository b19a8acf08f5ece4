"""The CPUID a pyvmm guest sees: KVM's supported set, minus emulated hardware.

A paravirtual guest has no local APIC, so APIC, x2APIC and the TSC-deadline
timer are hidden (a ``--hw-api`` VM, :mod:`pyvmm.hw`, has KVM's in-kernel LAPIC
and shows the three bits where KVM supports them); the hypervisor leaves announce pyvmm and the ABI version
instead of KVM's own paravirtual features (kvmclock etc., which we do not offer).
"""

from __future__ import annotations

from pyvmm.kvm.structs import KvmCpuidEntry2
from pyvmm.paravirt.abi import ABI_VERSION

HYPERVISOR_SIGNATURE = b"PyVMMPyVMMPV"  # cpuid 0x40000000 ebx:ecx:edx

_LEAF1_EDX_APIC = 1 << 9
_LEAF1_ECX_X2APIC = 1 << 21
_LEAF1_ECX_TSC_DEADLINE = 1 << 24
_LEAF1_ECX_HYPERVISOR = 1 << 31
_EXT1_EDX_NX = 1 << 20


def _sig_words(sig: bytes) -> tuple[int, int, int]:
    return tuple(int.from_bytes(sig[i : i + 4], "little") for i in (0, 4, 8))  # type: ignore[return-value]


def guest_cpuid(
    supported: list[KvmCpuidEntry2], vcpu_id: int, nr_vcpus: int, *, lapic: bool = False
) -> list[KvmCpuidEntry2]:
    """CPUID entries for vCPU *vcpu_id*, derived from ``KVM_GET_SUPPORTED_CPUID``;
    *lapic*: the VM has an in-kernel local APIC (``--hw-api``), so its bits stay."""
    out: list[KvmCpuidEntry2] = []
    for src in supported:
        e = KvmCpuidEntry2.from_buffer_copy(src)
        fn = e.function
        if fn == 1:
            if not lapic:
                e.edx &= ~_LEAF1_EDX_APIC
                e.ecx &= ~(_LEAF1_ECX_X2APIC | _LEAF1_ECX_TSC_DEADLINE)
            else:
                # KVM leaves TSC-deadline out of KVM_GET_SUPPORTED_CPUID even where its LAPIC
                # emulates it (api.rst: check KVM_CAP_TSC_DEADLINE_TIMER, which --hw-api requires,
                # and set the bit): SVM does, PVM happens to report it.
                e.ecx |= _LEAF1_ECX_TSC_DEADLINE
            e.ecx |= _LEAF1_ECX_HYPERVISOR
            # EBX[31:24] initial APIC id (our vCPU id), EBX[23:16] logical CPU count.
            e.ebx = (e.ebx & 0x0000FFFF) | (min(nr_vcpus, 255) << 16) | ((vcpu_id & 0xFF) << 24)
        elif fn in (0xB, 0x1F):
            e.edx = vcpu_id
        elif 0x40000000 <= fn < 0x40000100:
            continue  # replaced below
        out.append(e)
    ebx, ecx, edx = _sig_words(HYPERVISOR_SIGNATURE)
    out.append(KvmCpuidEntry2(function=0x40000000, eax=0x40000001, ebx=ebx, ecx=ecx, edx=edx))
    out.append(KvmCpuidEntry2(function=0x40000001, eax=ABI_VERSION))
    return out


def has_nx(supported: list[KvmCpuidEntry2]) -> bool:
    return any(e.function == 0x80000001 and e.edx & _EXT1_EDX_NX for e in supported)
