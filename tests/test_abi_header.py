"""The guest's C header is generated from pyvmm.paravirt.abi and must not drift."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvmm.paravirt import abi, cheader

from .conftest import ROOT

HEADER = ROOT / "guest-kernel" / "include" / "pyvmm_abi.h"


def test_committed_header_is_generated_from_python():
    assert HEADER.read_text() == cheader.render(), (
        "guest-kernel/include/pyvmm_abi.h is stale: run "
        "`python -m pyvmm.paravirt.cheader > guest-kernel/include/pyvmm_abi.h`"
    )


def test_header_numbers_match(tmp_path):
    """Compile the header and print what C sees: numbers and struct layout agree with Python."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc needed")
    prog = ["#include <stdio.h>", '#include "pyvmm_abi.h"', "int main(void) {"]
    for hc in abi.Hypercall:
        prog.append(f'printf("%d\\n", PVM_HC_{hc.name});')
    prog.append('printf("%zu\\n", sizeof(struct pvm_boot_info));')
    prog.append('printf("%d\\n", PVM_HYPERCALL_PORT);')
    prog += ["return 0;", "}"]
    (tmp_path / "t.c").write_text("\n".join(prog))
    subprocess.run(["gcc", "-I", str(HEADER.parent), "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True)
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split()
    import ctypes

    expected = [int(hc) for hc in abi.Hypercall] + [ctypes.sizeof(abi.BootInfo), abi.HYPERCALL_PORT]
    assert [int(x) for x in out] == expected


def test_errno_results_are_twos_complement():
    assert abi.errno_result(abi.Errno.EFAULT) == (1 << 64) - 14
    assert abi.errno_result(abi.Errno.ENOSYS) == (1 << 64) - 38


def test_committed_call_wrappers_are_generated_from_python():
    calls = HEADER.with_name("pyvmm_calls.h")
    assert calls.read_text() == cheader.render_calls(), (
        "guest-kernel/include/pyvmm_calls.h is stale: run "
        "`python -m pyvmm.paravirt.cheader --calls > guest-kernel/include/pyvmm_calls.h`"
    )


def test_every_call_has_a_signature():
    assert set(abi.HYPERCALL_SPECS) == set(abi.Hypercall)
    assert all(len(spec.args) <= 5 for spec in abi.HYPERCALL_SPECS.values())
