"""ctypes structures and ioctl numbers against the installed <linux/kvm.h>.

A small C program prints sizeof/offsetof and the ioctl constants as the C
preprocessor computes them; every figure must match the Python mirror.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from pyvmm.kvm import structs as s
from pyvmm.kvm.constants import Cap, ExitReason, Ioctl

STRUCTS = {
    "kvm_regs": (s.KvmRegs, ["rax", "rdi", "r10", "r8", "rip", "rflags"]),
    "kvm_segment": (s.KvmSegment, ["base", "limit", "selector", "type", "unusable"]),
    "kvm_dtable": (s.KvmDtable, ["base", "limit"]),
    "kvm_sregs": (s.KvmSregs, ["cs", "tr", "ldt", "gdt", "idt", "cr0", "cr3", "efer", "apic_base", "interrupt_bitmap"]),
    "kvm_fpu": (s.KvmFpu, ["fcw", "last_ip", "xmm", "mxcsr"]),
    "kvm_userspace_memory_region": (s.KvmUserspaceMemoryRegion, ["slot", "guest_phys_addr", "userspace_addr"]),
    "kvm_cpuid_entry2": (s.KvmCpuidEntry2, ["function", "index", "flags", "eax", "edx"]),
    "kvm_cpuid2": (s.KvmCpuid2, ["nent"]),
    "kvm_msr_entry": (s.KvmMsrEntry, ["index", "data"]),
    "kvm_msrs": (s.KvmMsrs, ["nmsrs"]),
    "kvm_interrupt": (s.KvmInterrupt, ["irq"]),
    "kvm_ioeventfd": (s.KvmIoeventfd, ["datamatch", "addr", "len", "fd", "flags"]),
    "kvm_guest_debug": (s.KvmGuestDebug, ["control", "arch"]),
    "kvm_enable_cap": (s.KvmEnableCap, ["cap", "flags", "args"]),
    "kvm_vcpu_events": (
        s.KvmVcpuEvents,
        ["exception", "interrupt", "nmi", "sipi_vector", "flags", "exception_payload"],
    ),
    "kvm_mp_state": (s.KvmMpState, ["mp_state"]),
    "kvm_lapic_state": (s.KvmLapicState, ["regs"]),
    "kvm_irqfd": (s.KvmIrqfd, ["fd", "gsi", "flags", "resamplefd", "pad"]),
    "kvm_irq_routing_entry": (s.KvmIrqRoutingEntry, ["gsi", "type", "flags", "pad", "u"]),
    "kvm_irq_routing_msi": (s.KvmIrqRoutingMsi, ["address_lo", "address_hi", "data", "devid"]),
    "kvm_irq_routing": (s.KvmIrqRouting, ["nr", "flags"]),
    "kvm_xsave": (s.KvmXsave, ["region"]),
    "kvm_xcr": (s.KvmXcr, ["xcr", "value"]),
    "kvm_xcrs": (s.KvmXcrs, ["nr_xcrs", "flags", "xcrs", "padding"]),
    "kvm_debugregs": (s.KvmDebugregs, ["db", "dr6", "dr7", "flags", "reserved"]),
    "kvm_dirty_log": (s.KvmDirtyLog, ["slot", "dirty_bitmap"]),
    "kvm_run": (
        s.KvmRun,
        [
            "request_interrupt_window",
            "immediate_exit",
            "exit_reason",
            "ready_for_interrupt_injection",
            "if_flag",
            "cr8",
            "apic_base",
            "io",
            "kvm_valid_regs",
            "kvm_dirty_regs",
            "s",
        ],
    ),
}
# C member name -> Python attribute path, where they differ.
ALIASES = {("kvm_guest_debug", "arch"): "debugreg", ("kvm_run", "io"): "exit"}
NESTED = {
    "kvm_run.io.port": lambda: s.KvmRun.exit.offset + s._RunExit.io.offset + s._RunIo.port.offset,
    "kvm_run.io.data_offset": lambda: s.KvmRun.exit.offset + s._RunExit.io.offset + s._RunIo.data_offset.offset,
    "kvm_run.internal.suberror": lambda: s.KvmRun.exit.offset + s._RunExit.internal.offset,
    "kvm_run.internal.data": lambda: s.KvmRun.exit.offset + s._RunExit.internal.offset + s._RunInternal.data.offset,
    "kvm_run.fail_entry.cpu": lambda: s.KvmRun.exit.offset + s._RunFailEntry.cpu.offset,
    "kvm_run.mmio.is_write": lambda: s.KvmRun.exit.offset + s._RunMmio.is_write.offset,
    "kvm_run.s.regs.regs.rax": lambda: s.KvmRun.s.offset,
}


def _c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/kvm.h>", "int main(void) {"]
    for cname, (_, fields) in STRUCTS.items():
        lines.append(f'printf("size {cname} %zu\\n", sizeof(struct {cname}));')
        for f in fields:
            lines.append(f'printf("off {cname}.{f} %zu\\n", offsetof(struct {cname}, {f}));')
    for path in NESTED:
        cname, member = path.split(".", 1)
        lines.append(f'printf("nested {path} %zu\\n", offsetof(struct {cname}, {member}));')
    for ioc in Ioctl:
        lines.append(f'printf("ioctl {ioc.name} %lu\\n", (unsigned long)KVM_{ioc.name});')
    for cap in Cap:
        lines.append(f'printf("cap {cap.name} %d\\n", KVM_CAP_{cap.name});')
    for reason in ExitReason:
        lines.append(f'printf("exit {reason.name} %d\\n", KVM_EXIT_{reason.name});')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_facts(tmp_path_factory) -> dict[str, int]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to read <linux/kvm.h>")
    d = tmp_path_factory.mktemp("kvmabi")
    (d / "abi.c").write_text(_c_program())
    subprocess.run(["gcc", "-o", str(d / "abi"), str(d / "abi.c")], check=True)
    out = subprocess.run([str(d / "abi")], check=True, capture_output=True, text=True).stdout
    facts = {}
    for line in out.splitlines():
        kind, key, value = line.split()
        facts[f"{kind} {key}"] = int(value)
    return facts


@pytest.mark.parametrize("cname", list(STRUCTS))
def test_struct_layout_matches_kernel_header(c_facts, cname):
    cls, fields = STRUCTS[cname]
    if cname == "kvm_run":
        # We mirror the fixed part; the header's struct ends with the sync-regs union.
        assert ctypes.sizeof(cls) == c_facts[f"size {cname}"]
    else:
        assert ctypes.sizeof(cls) == c_facts[f"size {cname}"], cname
    for f in fields:
        attr = ALIASES.get((cname, f), f)
        assert getattr(cls, attr).offset == c_facts[f"off {cname}.{f}"], f"{cname}.{f}"


def test_nested_kvm_run_offsets(c_facts):
    for path, offset in NESTED.items():
        assert offset() == c_facts[f"nested {path}"], path


def test_ioctl_numbers_match_kernel_header(c_facts):
    for ioc in Ioctl:
        assert int(ioc) == c_facts[f"ioctl {ioc.name}"], ioc.name


def test_capability_and_exit_numbers_match(c_facts):
    for cap in Cap:
        assert int(cap) == c_facts[f"cap {cap.name}"], cap.name
    for reason in ExitReason:
        assert int(reason) == c_facts[f"exit {reason.name}"], reason.name
