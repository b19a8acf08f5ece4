"""Generate the guest's C header from :mod:`pyvmm.paravirt.abi`.

Run ``python -m pyvmm.paravirt.cheader > guest-kernel/include/pyvmm_abi.h``;
``tests/test_abi_header.py`` fails when the committed header is stale.
"""

from __future__ import annotations

import ctypes
import enum
import sys

from pyvmm.paravirt import abi

_CTYPES = {
    ctypes.c_uint8: "uint8_t",
    ctypes.c_uint16: "uint16_t",
    ctypes.c_uint32: "uint32_t",
    ctypes.c_uint64: "uint64_t",
    ctypes.c_int32: "int32_t",
    ctypes.c_int64: "int64_t",
    ctypes.c_char: "char",
}


def _struct_name(cls: type) -> str:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in cls.__name__).lstrip("_")
    return f"pvm_{snake}"


def _field(name: str, ctype) -> str:
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        inner = _field(name, ctype._type_)
        return inner.replace(f" {name};", f" {name}[{ctype._length_}];")
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
        return f"    struct {_struct_name(ctype)} {name};"
    return f"    {_CTYPES[ctype]} {name};"


def _struct(cls: type[ctypes.Structure]) -> list[str]:
    lines = [f"struct {_struct_name(cls)} {{"]
    lines += [_field(name, ctype) for name, ctype in cls._fields_]
    lines.append("};")
    lines.append(f'_Static_assert(sizeof(struct {_struct_name(cls)}) == {ctypes.sizeof(cls)}, "ABI size");')
    for name, _ in cls._fields_:
        off = getattr(cls, name).offset
        lines.append(f'_Static_assert(__builtin_offsetof(struct {_struct_name(cls)}, {name}) == {off}, "ABI offset");')
    return lines


def _enum(prefix: str, cls: type[enum.Enum]) -> list[str]:
    return [f"#define {prefix}{m.name} {int(m.value):#x}" for m in cls]


def render() -> str:
    out = [
        "/* Generated from pyvmm/paravirt/abi.py by `python -m pyvmm.paravirt.cheader`. Do not edit. */",
        "#ifndef PYVMM_ABI_H",
        "#define PYVMM_ABI_H",
        "",
        "/* Constants are usable from assembly; structures only from C. */",
        "",
        f"#define PVM_ABI_VERSION_MAJOR {abi.ABI_VERSION_MAJOR}",
        f"#define PVM_ABI_VERSION_MINOR {abi.ABI_VERSION_MINOR}",
        f"#define PVM_ABI_VERSION {abi.ABI_VERSION:#x}",
        f"#define PVM_HYPERCALL_PORT {abi.HYPERCALL_PORT:#x}",
        f"#define PVM_BOOT_INFO_MAGIC {abi.BOOT_INFO_MAGIC:#x}ULL",
        f"#define PVM_CMDLINE_MAX {abi.CMDLINE_MAX}",
        f"#define PVM_CONSOLE_HANDLE {abi.CONSOLE_HANDLE}",
        f"#define PVM_MAX_CHANNELS {abi.MAX_CHANNELS}",
        f"#define PVM_CHANNEL_NAME_LEN {abi.CHANNEL_NAME_LEN}",
        "",
        "/* Guest-physical layout */",
        *_enum("PVM_LAYOUT_", abi.Layout),
        "",
        "/* Hypercall numbers (rax) */",
        *_enum("PVM_HC_", abi.Hypercall),
        "",
        "/* Error numbers: a failing hypercall returns -PVM_E* */",
        *[f"#define PVM_{m.name} {int(m.value)}" for m in abi.Errno],
        "",
        "/* Feature bits in pvm_boot_info.features */",
        *_enum("PVM_FEAT_", abi.Feature),
        "",
        "/* Channel kinds */",
        *_enum("PVM_CHANNEL_", abi.ChannelKind),
        "",
        "/* Events */",
        *_enum("PVM_EVENT_", abi.EventKind),
        *_enum("PVM_VIRQ_", abi.Virq),
        *_enum("PVM_CLOCK_", abi.Clock),
        f"#define PVM_UPCALL_VECTOR {abi.UPCALL_VECTOR}",
        f"#define PVM_NR_PORTS {abi.NR_PORTS}",
        f"#define PVM_PORTS_PER_GROUP {abi.PORTS_PER_GROUP}",
        f"#define PVM_MAX_VCPUS {abi.MAX_VCPUS}",
        f"#define PVM_MULTICALL_MAX {abi.MULTICALL_MAX}",
        *_enum("PVM_CHAN_", abi.ChannelFlag),
        "",
        "/* Address spaces: prot bits, batch ops, page-fault error code, user window */",
        *_enum("PVM_PROT_", abi.Prot),
        *_enum("PVM_AS_OP_", abi.AsOpCode),
        *_enum("PVM_PF_", abi.PfError),
        f"#define PVM_AS_USER_BASE {abi.AS_USER_BASE:#x}ULL",
        f"#define PVM_AS_USER_END {abi.AS_USER_END:#x}ULL",
        f"#define PVM_AS_LOW_BASE {abi.AS_LOW_BASE:#x}ULL",
        *_enum("PVM_AS_CREATE_", abi.AsCreateFlag),
        f"#define PVM_AS_KERNEL_HANDLE {abi.AS_KERNEL_HANDLE}",
        f"#define PVM_AS_BATCH_MAX {abi.AS_BATCH_MAX}",
        "",
        "/* The extension range: hypercalls registered in Python (ABI 1.1) */",
        f"#define PVM_EXT_BASE {abi.EXT_BASE}",
        f"#define PVM_EXT_COUNT {abi.EXT_COUNT}",
        "",
        "/* Shares and files (ABI 1.2): CHANNEL_OPEN flags are Linux's O_* values */",
        *_enum("PVM_O_", abi.OpenFlag),
        "",
        '/* pyvmm exec: the manifest on the "exec" channel */',
        f"#define PVM_EXEC_MAGIC {abi.EXEC_MAGIC:#x}ULL",
        f"#define PVM_EXEC_MAX_REGIONS {abi.EXEC_MAX_REGIONS}",
        f"#define PVM_EXEC_MAX_COPIES {abi.EXEC_MAX_COPIES}",
        f"#define PVM_EXEC_CWD_MAX {abi.EXEC_CWD_MAX}",
        f"#define PVM_EXEC_NR_SYSCALLS {abi.EXEC_NR_SYSCALLS}",
        *_enum("PVM_EXEC_", abi.ExecFlag),
    ]
    out += ["", "#ifndef __ASSEMBLER__", "#include <stdint.h>"]
    for cls in abi.C_STRUCTS:
        out += ["", *_struct(cls)]
    out += ["#endif /* __ASSEMBLER__ */", "", "#endif /* PYVMM_ABI_H */", ""]
    return "\n".join(out)


def render_calls() -> str:
    """``pyvmm_calls.h``: one inline wrapper per call, from ``abi.HYPERCALL_SPECS``.

    Included by ``guest-kernel/include/pvm.h`` after ``pvm_hypercall``; arguments are
    ``unsigned long`` as the registers are, the result ``long`` (``-errno`` on failure).
    """
    out = [
        "/* Generated from pyvmm/paravirt/abi.py by `python -m pyvmm.paravirt.cheader --calls`. Do not edit. */",
        "#ifndef PYVMM_CALLS_H",
        "#define PYVMM_CALLS_H",
        "",
        "/* Needs pvm_hypercall() (pvm.h). */",
    ]
    for spec in abi.HYPERCALL_SPECS.values():
        params = ", ".join(f"unsigned long {a}" for a in spec.args) or "void"
        regs = list(spec.args) + ["0"] * (5 - len(spec.args))
        out += [
            "",
            f"/* {spec.nr.name}({', '.join(spec.args)}) -> {spec.returns} */",
            f"static inline long pvm_hc_{spec.nr.name.lower()}({params})",
            "{",
            f"    return pvm_hypercall(PVM_HC_{spec.nr.name}, {', '.join(regs)});",
            "}",
        ]
    out += ["", "#endif /* PYVMM_CALLS_H */", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render_calls() if sys.argv[1:] == ["--calls"] else render())
