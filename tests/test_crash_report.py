"""Crash reports when the backend reset the vCPU at a triple fault (AMD SVM does).

Pure logic: a stand-in for the vCPU handle that returns the reset state, real guest
memory and real page tables. The KVM-backed half is tests/test_boot.py's triple-fault
test, which takes this path under nested SVM (scripts/nested_svm.py).
"""

from __future__ import annotations

import pytest

from pyvmm.crash import RESET_NOTE, build_report, is_reset_state
from pyvmm.kvm.structs import KvmRegs, KvmSregs
from pyvmm.memory import GuestMemory
from pyvmm.x86.paging import FramePool, Pte, identity_map

SIZE = 8 << 20
CODE_GPA = 0x200010


class ResetVcpu:
    """What KVM_GET_REGS/SREGS return after SVM's SHUTDOWN intercept: x86's INIT state."""

    def __init__(self, reset: bool = True) -> None:
        self.reset = reset

    def get_regs(self) -> KvmRegs:
        regs = KvmRegs()
        regs.rip, regs.rflags, regs.rdx = (0xFFF0, 2, 0x60FB1) if self.reset else (CODE_GPA, 2, 0)
        return regs

    def get_sregs(self) -> KvmSregs:
        sregs = KvmSregs()
        if self.reset:
            sregs.cs.selector, sregs.cr0 = 0xF000, 0x10
        else:
            sregs.cs.selector, sregs.cr0, sregs.cr3 = 0x8, 0x80050033, 0x10000
        return sregs


@pytest.fixture
def mem():
    m = GuestMemory(SIZE)
    yield m
    m.close()


@pytest.fixture
def kernel_cr3(mem):
    pool = FramePool(mem, 0x10000, 0x20000)
    tables = identity_map(mem, pool, SIZE, low_flags=lambda gpa: Pte.PRESENT, high_flags=Pte.PRESENT)
    mem.write(CODE_GPA, bytes.fromhex("e6 40 0f 0b"))  # what the last exit's rip points at
    return tables.root


def last_exit_regs() -> KvmRegs:
    regs = KvmRegs()
    regs.rip, regs.rax, regs.rsp = CODE_GPA, 3, 0x7FF000
    return regs


def test_reset_state_is_recognised():
    assert is_reset_state(ResetVcpu().get_regs(), ResetVcpu().get_sregs())
    assert not is_reset_state(ResetVcpu(reset=False).get_regs(), ResetVcpu(reset=False).get_sregs())


def test_a_reset_vcpu_is_reported_with_its_last_exit(mem, kernel_cr3):
    report = build_report(ResetVcpu(), 0, "triple fault", mem, last_regs=last_exit_regs(), kernel_cr3=kernel_cr3)
    text = report.format()
    assert report.note == RESET_NOTE and "the backend reset this vCPU" in text
    assert report.regs["rip"] == CODE_GPA and report.regs["rax"] == 3 and report.regs["rsp"] == 0x7FF000
    assert report.code.startswith(bytes.fromhex("e6 40 0f 0b")) and report.code_gpa == CODE_GPA
    assert "cr0=" not in text  # a reset vCPU's control registers are not the guest's


def test_a_reset_vcpu_with_no_exit_before_shows_the_reset_state(mem, kernel_cr3):
    # A triple fault before the first exit: nothing better is known than what the backend shows.
    report = build_report(ResetVcpu(), 0, "triple fault", mem, last_regs=KvmRegs(), kernel_cr3=kernel_cr3)
    assert not report.note and report.regs["rip"] == 0xFFF0 and report.sregs["cs"] == 0xF000


def test_a_vcpu_not_reset_is_reported_as_it_is(mem, kernel_cr3):
    vcpu = ResetVcpu(reset=False)
    report = build_report(vcpu, 1, "triple fault", mem, last_regs=last_exit_regs(), kernel_cr3=kernel_cr3)
    assert not report.note and report.regs["rip"] == CODE_GPA and report.sregs["cr3"] == 0x10000
