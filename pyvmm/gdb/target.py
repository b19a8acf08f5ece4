"""What gdb is told about the target: the target description XML and the register file.

The register order is gdb's amd64 layout (the ``g`` packet is every register
in that order, little-endian): the general registers, ``rip``, ``eflags``, the
segment selectors, the x87 and SSE state (gdb's amd64 support requires them in
the core feature), then ``fs_base``/``gs_base`` and pyvmm's system registers.
Values come from ``KVM_GET_REGS``/``KVM_GET_SREGS``/``KVM_GET_FPU``; the
general registers, ``rip`` and ``eflags`` can be written, the rest are
read-only (a ``P`` to them is refused, a ``G`` leaves them as they were).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pyvmm.gdb.rsp import hex_u64_le, parse_hex_le


class Register(NamedTuple):
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""


_CORE = "org.gnu.gdb.i386.core"
_SSE = "org.gnu.gdb.i386.sse"
_SEGMENTS = "org.gnu.gdb.i386.segments"
_SYS = "org.pyvmm.x86.sys"

_GPR_NAMES = "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15".split()
_SEGMENT_NAMES = "cs ss ds es fs gs".split()
_X87_CONTROL = "fctrl fstat ftag fiseg fioff foseg fooff fop".split()
_SYS_NAMES = "cr0 cr2 cr3 cr4 cr8 efer".split()

REGISTERS: tuple[Register, ...] = (
    *(Register(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", _CORE) for n in _GPR_NAMES),
    Register("rip", 64, "code_ptr", _CORE),
    Register("eflags", 32, "i386_eflags", _CORE),
    *(Register(n, 32, "int32", _CORE) for n in _SEGMENT_NAMES),
    *(Register(f"st{i}", 80, "i387_ext", _CORE, "float") for i in range(8)),
    *(Register(n, 32, "int", _CORE, "float") for n in _X87_CONTROL),
    *(Register(f"xmm{i}", 128, "vec128", _SSE, "vector") for i in range(16)),
    Register("mxcsr", 32, "int", _SSE, "vector"),
    Register("fs_base", 64, "int", _SEGMENTS),
    Register("gs_base", 64, "int", _SEGMENTS),
    *(Register(n, 64, "int", _SYS, "system") for n in _SYS_NAMES),
)
REGNUM = {r.name: i for i, r in enumerate(REGISTERS)}
#: What ``P``/``G`` may change: ``KVM_SET_REGS`` fields (eflags is ``rflags`` there).
WRITABLE = frozenset((*_GPR_NAMES, "rip", "eflags"))

_EFLAGS_FIELDS = (
    "CF 0, 1 1, PF 2, AF 4, ZF 6, SF 7, TF 8, IF 9, DF 10, OF 11, NT 14, RF 16, VM 17, AC 18, VIF 19, VIP 20, ID 21"
)


def target_xml() -> str:
    """The ``target.xml`` gdb reads with ``qXfer:features:read``."""
    lines = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
        "<target>",
        "<architecture>i386:x86-64</architecture>",
    ]
    feature = None
    for i, reg in enumerate(REGISTERS):
        if reg.feature != feature:
            if feature is not None:
                lines.append("</feature>")
            feature = reg.feature
            lines.append(f'<feature name="{feature}">')
            if feature == _CORE:
                lines.append('<flags id="i386_eflags" size="4">')
                for item in _EFLAGS_FIELDS.split(", "):
                    name, bit = item.split()
                    lines.append(f'<field name="{name}" start="{bit}" end="{bit}"/>')
                lines.append("</flags>")
            elif feature == _SSE:
                lines += [
                    '<vector id="v4f" type="ieee_single" count="4"/>',
                    '<vector id="v2d" type="ieee_double" count="2"/>',
                    '<vector id="v16i8" type="int8" count="16"/>',
                    '<vector id="v8i16" type="int16" count="8"/>',
                    '<vector id="v4i32" type="int32" count="4"/>',
                    '<vector id="v2i64" type="int64" count="2"/>',
                    '<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>'
                    '<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>'
                    '<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>'
                    '<field name="uint128" type="uint128"/></union>',
                ]
        group = f' group="{reg.group}"' if reg.group else ""
        lines.append(f'<reg name="{reg.name}" bitsize="{reg.bits}" type="{reg.type}" regnum="{i}"{group}/>')
    lines += ["</feature>", "</target>"]
    return "\n".join(lines) + "\n"


@dataclass
class RegisterFile:
    """One vCPU's registers as gdb numbers them (values as unsigned ints; st/xmm as raw bytes)."""

    values: list[int]

    @classmethod
    def from_kvm(cls, regs, sregs, fpu) -> RegisterFile:
        v = [getattr(regs, n) for n in _GPR_NAMES]
        v += [regs.rip, regs.rflags & 0xFFFF_FFFF]
        v += [getattr(sregs, n).selector for n in _SEGMENT_NAMES]
        v += [int.from_bytes(bytes(fpu.fpr[i])[:10], "little") for i in range(8)]
        ftag = _full_tag_word(fpu.ftwx)
        v += [fpu.fcw, fpu.fsw, ftag, 0, fpu.last_ip & 0xFFFF_FFFF, 0, fpu.last_dp & 0xFFFF_FFFF, fpu.last_opcode]
        v += [int.from_bytes(bytes(fpu.xmm[i]), "little") for i in range(16)]
        v += [fpu.mxcsr, sregs.fs.base, sregs.gs.base]
        v += [getattr(sregs, n) for n in _SYS_NAMES]
        return cls(v)

    def encode(self) -> str:
        """The ``g`` reply."""
        return "".join(hex_u64_le(val, reg.bits // 8) for val, reg in zip(self.values, REGISTERS, strict=True))

    def encode_one(self, regnum: int) -> str:
        """A ``p`` reply. Raises ``IndexError``."""
        return hex_u64_le(self.values[regnum], REGISTERS[regnum].bits // 8)

    def decode(self, text: str) -> RegisterFile:
        """A ``G`` packet's registers (a short packet leaves the rest as they were). Raises ``ValueError``."""
        values = list(self.values)
        pos = 0
        for i, reg in enumerate(REGISTERS):
            width = reg.bits // 4
            if pos + width > len(text):
                break
            values[i] = parse_hex_le(text[pos : pos + width])
            pos += width
        return RegisterFile(values)

    def apply_to(self, regs) -> None:
        """Copy the writable registers into a ``KvmRegs``."""
        for name in WRITABLE:
            value = self.values[REGNUM[name]]
            if name == "eflags":
                regs.rflags = (regs.rflags & ~0xFFFF_FFFF) | value | 0x2  # bit 1 is always set
            else:
                setattr(regs, name, value)


def _full_tag_word(abridged: int) -> int:
    """KVM's abridged (FXSAVE) tag byte as the x87 16-bit tag word gdb shows: empty = 11, else valid (00)."""
    return sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8))
