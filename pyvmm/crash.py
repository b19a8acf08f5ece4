"""Crash reports: what a stopped guest was doing, for a human.

Built from the vCPU's registers and the code bytes at ``rip`` (translated
through the guest's own page tables, read through the checked accessor), and
disassembled when capstone or iced-x86 is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvmm.memory import GuestMemory, GuestMemoryError
from pyvmm.x86.paging import PageTables, PagingError

CODE_BYTES = 16
_GPRS = "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags".split()


@dataclass
class CrashReport:
    vcpu_id: int
    reason: str
    regs: dict[str, int] = field(default_factory=dict)
    sregs: dict[str, int] = field(default_factory=dict)
    code_gpa: int | None = None
    code: bytes = b""
    disassembly: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"pyvmm: guest crashed on vCPU {self.vcpu_id}: {self.reason}"]
        names = list(self.regs)
        for i in range(0, len(names), 4):
            lines.append("  " + "  ".join(f"{n:>6}={self.regs[n]:016x}" for n in names[i : i + 4]))
        if self.sregs:
            lines.append("  " + "  ".join(f"{n}={v:#x}" for n, v in self.sregs.items()))
        if self.code:
            lines.append(f"  code at rip (gpa {self.code_gpa:#x}): {self.code.hex(' ')}")
        elif "rip" in self.regs:
            lines.append("  code at rip: not mapped in guest memory")
        for insn in self.disassembly:
            lines.append(f"    {insn}")
        return "\n".join(lines)


def _disassemble(code: bytes, address: int) -> list[str]:
    try:
        import capstone
    except Exception:  # not installed, or cannot be loaded now (no fd left, seccomp): no disassembly
        capstone = None
    if capstone is not None:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        return [f"{i.address:#x}: {i.mnemonic} {i.op_str}".rstrip() for i in md.disasm(code, address)][:4]
    try:
        import iced_x86
    except Exception:
        return []
    decoder = iced_x86.Decoder(64, code, ip=address)
    formatter = iced_x86.Formatter(iced_x86.FormatterSyntax.GAS)
    return [f"{i.ip:#x}: {formatter.format(i)}" for i in decoder][:4]


def build_report(vcpu, vcpu_id: int, reason: str, mem: GuestMemory) -> CrashReport:
    """Collect registers and code bytes from a stopped *vcpu* (never raises: a vCPU thread
    that raised here would die without stopping the VM)."""
    report = CrashReport(vcpu_id, reason)
    try:
        return _fill_report(report, vcpu, mem)
    except Exception as e:
        report.reason += f" (report incomplete: {type(e).__name__}: {e})"
        return report


def _fill_report(report: CrashReport, vcpu, mem: GuestMemory) -> CrashReport:
    try:
        regs = vcpu.get_regs()
        sregs = vcpu.get_sregs()
    except OSError as e:
        report.reason += f" (registers unavailable: {e})"
        return report
    report.regs = {n: getattr(regs, n) for n in _GPRS}
    report.sregs = {
        "cr0": sregs.cr0,
        "cr2": sregs.cr2,
        "cr3": sregs.cr3,
        "cr4": sregs.cr4,
        "efer": sregs.efer,
        "cs": sregs.cs.selector,
        "ss": sregs.ss.selector,
    }
    rip = regs.rip
    try:
        tr = PageTables(mem, None, root=sregs.cr3 & ~0xFFF).translate(rip)
        if tr is not None:
            n = min(CODE_BYTES, 0x1000 - (tr.phys & 0xFFF))
            report.code = mem.read(tr.phys, n)
            report.code_gpa = tr.phys
            report.disassembly = _disassemble(report.code, rip)
    except (GuestMemoryError, PagingError):
        pass
    return report
