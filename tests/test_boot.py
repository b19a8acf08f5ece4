"""Boot the real bundled guest on /dev/kvm through the real CLI."""

from __future__ import annotations

import pytest

from pyvmm.paravirt import abi

from .conftest import assert_crash_report_of_ud2, pyvmm

pytestmark = pytest.mark.kvm


def test_default_boot_prints_banner_and_exits_zero():
    run = pyvmm("run")
    assert run.returncode == 0, run
    assert f"pyvmm guest kernel: ABI 1.{abi.ABI_VERSION_MINOR}, 64 MiB, 1 vCPU(s)" in run.stdout
    assert run.stderr == ""


def test_cmdline_reaches_guest_and_exit_code_comes_back():
    run = pyvmm("run", "--memory", "128M", "--cmdline", "hello=world exit=42")
    assert run.returncode == 42, run
    assert "128 MiB" in run.stdout
    assert "cmdline: hello=world exit=42" in run.stdout


def test_guest_receives_negative_errnos():
    """The guest passes bad pointers, bad handles and unknown numbers and prints what it got."""
    run = pyvmm("run", "--cmdline", "test=errno")
    assert run.returncode == 0, run
    for line in (
        "errno bad-pointer: -14",
        "errno overflow: -14",
        "errno huge-length: -14",
        "errno bad-handle: -9",
        "errno unknown-small: -38",
        "errno unknown-huge: -38",
        "errno null: 0",
        "errno: ok",
    ):
        assert line in run.stdout


def test_triple_fault_gives_crash_report():
    run = pyvmm("run", "--cmdline", "test=crash")
    assert run.returncode == 125, run
    assert "crash: executing ud2" in run.stdout
    assert "guest crashed on vCPU 0: triple fault" in run.stderr
    assert "Traceback" not in run.stderr
    assert_crash_report_of_ud2(run)


def test_runaway_guest_is_stopped_by_timeout():
    run = pyvmm("run", "--cmdline", "test=spin", "--timeout", "0.5", timeout=20)
    assert run.returncode == 124, run
    assert "spin: looping forever" in run.stdout
    assert "--timeout 0.5s" in run.stderr


def test_unknown_test_program():
    run = pyvmm("run", "--cmdline", "test=nonesuch")
    assert run.returncode == 127
    assert "unknown test program 'nonesuch'" in run.stdout


def test_info_lists_capabilities():
    run = pyvmm("info")
    assert run.returncode == 0, run
    assert "KVM API version: 12" in run.stdout
    for cap in ("SYNC_REGS", "IMMEDIATE_EXIT", "IOEVENTFD", "USER_MEMORY"):
        assert cap in run.stdout


def test_guest_kernel_traps_reach_its_own_handlers():
    """The kernel's own GDT/TSS/IDT: #UD is handled and resumed; a NULL read is reported by the guest."""
    run = pyvmm("run", "--cmdline", "test=trap")
    assert "trap: #UD handled 1 time(s)" in run.stdout
    assert "unhandled trap 14 error=0x0 rip=0x" in run.stdout and "cr2=0x0" in run.stdout
    assert run.returncode == 126, run
