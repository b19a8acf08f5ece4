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
CR0_PE = 1
#: Where x86 puts a vCPU at RESET/INIT: ``cs:rip`` = ``f000:fff0`` in real mode.
RESET_CS, RESET_RIP = 0xF000, 0xFFF0
RESET_NOTE = (
    "the backend reset this vCPU at the triple fault (AMD SVM does: the VMCB is undefined after a "
    "SHUTDOWN intercept), so its state at the fault is lost; shown: its registers at its last exit "
    "before the fault, the code at that rip through the kernel's page tables"
)
_GPRS = "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags".split()


@dataclass
class CrashReport:
    vcpu_id: int
    reason: str
    #: Set when the registers are not the vCPU's at the crash (see :data:`RESET_NOTE`).
    note: str = ""
    regs: dict[str, int] = field(default_factory=dict)
    sregs: dict[str, int] = field(default_factory=dict)
    code_gpa: int | None = None
    code: bytes = b""
    disassembly: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"pyvmm: guest crashed on vCPU {self.vcpu_id}: {self.reason}"]
        if self.note:
            lines.append(f"  note: {self.note}")
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


def is_reset_state(regs, sregs) -> bool:
    """True if *regs*/*sregs* are x86's RESET/INIT state: pyvmm starts every vCPU in long
    mode, so a guest found in real mode at the reset vector was reset by the backend."""
    return regs.rip == RESET_RIP and sregs.cs.selector == RESET_CS and not sregs.cr0 & CR0_PE


def build_report(
    vcpu, vcpu_id: int, reason: str, mem: GuestMemory, *, last_regs=None, kernel_cr3: int | None = None
) -> CrashReport:
    """Collect registers and code bytes from a stopped *vcpu* (never raises: a vCPU thread
    that raised here would die without stopping the VM).

    *last_regs* (a ``KvmRegs``, see ``Vcpu.last_regs``) and *kernel_cr3* are the fallback
    when the backend reset the vCPU at a triple fault: the report then says so and shows
    those registers, and the code at their ``rip`` through *kernel_cr3*'s tables."""
    report = CrashReport(vcpu_id, reason)
    try:
        return _fill_report(report, vcpu, mem, last_regs, kernel_cr3)
    except Exception as e:
        report.reason += f" (report incomplete: {type(e).__name__}: {e})"
        return report


def _fill_report(report: CrashReport, vcpu, mem: GuestMemory, last_regs, kernel_cr3: int | None) -> CrashReport:
    try:
        regs = vcpu.get_regs()
        sregs = vcpu.get_sregs()
    except OSError as e:
        report.reason += f" (registers unavailable: {e})"
        return report
    cr3 = sregs.cr3
    if is_reset_state(regs, sregs) and last_regs is not None and last_regs.rip != 0 and kernel_cr3 is not None:
        # The reset state says nothing about the guest; its last exit does, and the
        # control registers of a reset vCPU are not the guest's either: leave them out.
        report.note = RESET_NOTE
        regs, cr3 = last_regs, kernel_cr3
    else:
        report.sregs = {
            "cr0": sregs.cr0,
            "cr2": sregs.cr2,
            "cr3": sregs.cr3,
            "cr4": sregs.cr4,
            "efer": sregs.efer,
            "cs": sregs.cs.selector,
            "ss": sregs.ss.selector,
        }
    report.regs = {n: getattr(regs, n) for n in _GPRS}
    rip = regs.rip
    try:
        tr = PageTables(mem, None, root=cr3 & ~0xFFF).translate(rip)
        if tr is not None:
            n = min(CODE_BYTES, 0x1000 - (tr.phys & 0xFFF))
            report.code = mem.read(tr.phys, n)
            report.code_gpa = tr.phys
            report.disassembly = _disassemble(report.code, rip)
    except (GuestMemoryError, PagingError):
        pass
    return report
